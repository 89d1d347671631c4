//! `<service> healthcheck`: the service binary probes its own readiness and exits 0 or 1.
//!
//! Distroless images have no shell, `curl` or `wget`, yet Docker's `HEALTHCHECK` and
//! compose's `healthcheck` must run a command inside the container. So the service's own
//! binary is the probe: it loads the config exactly as the service does (`MS_CONFIG_FILE`,
//! `MS_PROFILE`, `MS__*`, `MS_KEY_FILE`), finds the port the health endpoints are on (the
//! management port when `server.management` is set), and asks `GET /health/ready` on
//! loopback.
//!
//! The request is written by hand on a blocking socket, not with reqwest: it is one
//! HTTP/1.1 request to our own server, and only the status line is read. reqwest would load
//! the TLS roots on every probe and would honour `HTTP_PROXY` from the environment, sending
//! a loopback probe to a proxy.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::ConfigLoader;

/// The argument that asks for the probe: `<service> healthcheck`.
pub const SUBCOMMAND: &str = "healthcheck";

/// The path the probe asks.
pub const READY_PATH: &str = "/health/ready";

/// How long the probe waits to connect, and then for the status line.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest status line read; the rest of the answer is not needed.
const MAX_STATUS_LINE: usize = 1024;

/// When the process was started as `<service> healthcheck`, probes the service's readiness
/// and exits the process: 0 when `/health/ready` answers 200, 1 otherwise (DOWN, refused,
/// timed out, or a config that does not load). Otherwise returns, and `main` goes on.
///
/// Call it first in `main`, before the service is built:
///
/// ```no_run
/// use ms_chassis::prelude::*;
///
/// #[tokio::main]
/// async fn main() -> ms_chassis::Result<()> {
///     ms_chassis::health::exit_if_healthcheck();
///     let svc = Service::from_env()?;
///     svc.serve(Router::new()).await
/// }
/// ```
pub fn exit_if_healthcheck() {
    if std::env::args_os().nth(1).as_deref() != Some(SUBCOMMAND.as_ref()) {
        return;
    }
    let code = match healthcheck(ConfigLoader::from_env()) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(why) => {
            eprintln!("{SUBCOMMAND}: {why}");
            1
        }
    };
    std::process::exit(code);
}

/// Probes the readiness of the service that `loader`'s config describes, and returns the
/// status line on a 200, or why not. [`exit_if_healthcheck`] is this with the standard
/// loader and an exit code.
pub fn healthcheck(loader: ConfigLoader) -> Result<String, String> {
    let config = loader
        .load()
        .map_err(|e| format!("the config does not load: {e}"))?;
    let server = &config.chassis().server;
    let target = match &server.management {
        Some(m) => SocketAddr::new(loopback_for(m.host), m.port),
        None => SocketAddr::new(loopback_for(server.host), server.port),
    };
    let url = format!("http://{target}{READY_PATH}");
    let line = status_line(target).map_err(|e| format!("GET {url}: {e}"))?;
    verdict(&line).map_err(|why| format!("GET {url}: {why}"))?;
    Ok(format!("GET {url}: {line}"))
}

/// An address the probe can reach the listener bound to `host` at: a wildcard bind is
/// reached on loopback of the same family.
fn loopback_for(host: IpAddr) -> IpAddr {
    match host {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Asks `GET /health/ready` at `target` and returns the first line of the answer.
fn status_line(target: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    write!(
        stream,
        "GET {READY_PATH} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: ms-chassis-healthcheck\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < MAX_STATUS_LINE {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

/// `Ok` for a 200 status line; otherwise what was wrong with it.
fn verdict(line: &str) -> Result<(), String> {
    let mut parts = line.splitn(3, ' ');
    let (version, status) = (parts.next().unwrap_or_default(), parts.next());
    match status {
        Some("200") if version.starts_with("HTTP/1.") => Ok(()),
        Some(_) if version.starts_with("HTTP/1.") => Err(format!("{line} (not ready)")),
        _ => Err(format!(
            "not an HTTP/1.x status line: {:?}",
            line.chars().take(80).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_is_ready() {
        assert!(verdict("HTTP/1.1 200 OK").is_ok());
        let down = verdict("HTTP/1.1 503 Service Unavailable").unwrap_err();
        assert!(down.contains("503") && down.contains("not ready"), "{down}");
        let junk = verdict("SSH-2.0-OpenSSH").unwrap_err();
        assert!(junk.contains("not an HTTP/1.x status line"), "{junk}");
        assert!(verdict("").is_err());
    }

    #[test]
    fn a_wildcard_bind_is_probed_on_loopback() {
        assert_eq!(
            loopback_for("0.0.0.0".parse().unwrap()),
            Ipv4Addr::LOCALHOST
        );
        assert_eq!(loopback_for("::".parse().unwrap()), Ipv6Addr::LOCALHOST);
        assert_eq!(
            loopback_for("10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_config_that_does_not_load_is_not_ready() {
        let why = healthcheck(ConfigLoader::new().yaml("server: { port: eighty }")).unwrap_err();
        assert!(why.contains("server.port"), "{why}");
    }
}
