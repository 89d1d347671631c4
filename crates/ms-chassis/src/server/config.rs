//! The `server` section: the public listener, its limits and shutdown timing, and the rules
//! types alone cannot express.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Rules, byte_size, duration, ip, port};

/// `server:` the public listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerSection {
    /// Address to bind. `127.0.0.1` by default; use `0.0.0.0` in containers.
    #[serde(with = "ip")]
    pub host: IpAddr,
    /// Port to bind; `0` picks a free port. Default 8080.
    #[serde(with = "port")]
    pub port: u16,
    /// Optional second listener for the chassis endpoints (health, metrics).
    pub management: Option<ManagementSection>,
    /// Request limits applied to the user's routes.
    pub limits: LimitsSection,
    /// Graceful shutdown timing.
    pub shutdown: ShutdownSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            management: None,
            limits: LimitsSection::default(),
            shutdown: ShutdownSection::default(),
        }
    }
}

/// `server.management:` moves health and metrics off the public port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ManagementSection {
    /// Address to bind. Default `127.0.0.1`.
    #[serde(with = "ip")]
    pub host: IpAddr,
    /// Port to bind; `0` picks a free port. Default 9090.
    #[serde(with = "port")]
    pub port: u16,
}

impl Default for ManagementSection {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9090,
        }
    }
}

/// `server.limits:` bounds on the user's routes (request timeout, body size, concurrency),
/// which the chassis endpoints are exempt from, and on every connection of both listeners
/// (head and idle timeouts, connection cap, header size, HTTP/2). The connection keys take
/// effect at a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LimitsSection {
    /// Whole-request timeout, reading a streamed body included; over it the client gets
    /// 504. `0` disables. Default `30s`.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Largest request body, however it is sent; over it the client gets 413. Default `2MiB`.
    #[serde(with = "byte_size")]
    pub body_size: u64,
    /// Requests handled at once across all routes; excess gets 503. `0` disables. Default 1024.
    pub concurrency: usize,
    /// Time a client gets to send a complete request head, from the accept or, on a
    /// keep-alive connection, from the first byte of the next request; then the connection
    /// is closed. `0` disables. Default `10s`.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight and no bytes moving stays open.
    /// `0` disables. Default `60s`.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Connections open at once on the main listener; more are closed as soon as they are
    /// accepted. `null` (default) derives it from the process's open-file limit
    /// (`RLIMIT_NOFILE` less a quarter, at least 64, for outgoing connections and files),
    /// logged at startup. `0` means no cap. The management listener takes at most 64.
    pub max_connections: Option<usize>,
    /// Largest request head: the HTTP/1 request line and headers, the HTTP/2 header list.
    /// At least `8KiB`. Default `64KiB`.
    #[serde(with = "byte_size")]
    pub header_size: u64,
    /// HTTP/2 (cleartext, with prior knowledge) limits.
    pub http2: Http2Section,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_size: 2 * 1024 * 1024,
            concurrency: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            header_size: 64 * 1024,
            http2: Http2Section::default(),
        }
    }
}

/// `server.limits.http2:` bounds on each HTTP/2 connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Http2Section {
    /// Streams a client may open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); more are
    /// refused with `REFUSED_STREAM`. At least 1. Default 256.
    pub max_concurrent_streams: u32,
    /// How long a connection may receive nothing before it is sent a PING. `0` disables.
    /// Default `20s`.
    #[serde(with = "duration")]
    pub keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed. Default `20s`.
    #[serde(with = "duration")]
    pub keep_alive_timeout: Duration,
}

impl Default for Http2Section {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 256,
            keep_alive_interval: Duration::from_secs(20),
            keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// `server.shutdown:` see the graceful shutdown sequence in the crate docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ShutdownSection {
    /// Time between readiness going DOWN and the listener closing, so that load balancers
    /// stop sending traffic first. Default `5s`.
    #[serde(with = "duration")]
    pub drain_delay: Duration,
    /// Time in-flight requests get to finish after the listener closes. Default `30s`.
    #[serde(with = "duration")]
    pub grace: Duration,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            grace: Duration::from_secs(30),
        }
    }
}

/// The largest `server.limits.header_size`: HTTP/2's header list size is a `u32`, and heads
/// this large are an attack rather than a request.
const MAX_HEADER_SIZE: u64 = 16 * 1024 * 1024;

impl ServerSection {
    /// Rules that types alone cannot express; keys relative to `server`.
    pub(crate) fn validate(&self, rules: &mut Rules<'_>) {
        if let Some(m) = &self.management
            && m.port != 0
            && m.port == self.port
            && !rules.defaulted("port")
        {
            rules.fail(
                "management.port",
                format!("must differ from server.port ({})", self.port),
            );
        }
        self.limits.validate(&mut rules.section("limits"));
    }
}

impl LimitsSection {
    fn validate(&self, rules: &mut Rules<'_>) {
        if !(super::MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&self.header_size) {
            rules.fail(
                "header_size",
                format!(
                    "expected a size from 8KiB to 16MiB, found {} bytes",
                    self.header_size
                ),
            );
        }
        if self.http2.max_concurrent_streams == 0 {
            rules.fail(
                "http2.max_concurrent_streams",
                "expected at least 1 stream, such as 256",
            );
        }
        if !self.http2.keep_alive_interval.is_zero() && self.http2.keep_alive_timeout.is_zero() {
            rules.fail(
                "http2.keep_alive_timeout",
                "expected a duration above zero, such as 20s, while keep_alive_interval is on",
            );
        }
        if self.body_size == 0 {
            rules.fail("body_size", "expected a size above zero, such as 2MiB");
        }
    }
}
