//! [[ name ]]: `cargo run` serves it on config.yaml, with `config.$MS_PROFILE.yaml` and
//! `MS__*` variables over it. `[[ name ]] healthcheck` asks a running instance whether it
//! is ready and exits 0 or 1: the probe of Docker's HEALTHCHECK, in images with no curl.

use ms_chassis::Service;

#[tokio::main]
async fn main() -> ms_chassis::Result<()> {
    ms_chassis::health::exit_if_healthcheck();
    // Config, JSON logs, tracing and metrics, from config.yaml and the environment.
    let (svc, router) = [[ crate_name ]]::app(Service::from_env()?)?;
    // The chassis stack around the routes, its endpoints beside them (health, metrics,
    // OpenAPI, admin), and a graceful shutdown on SIGTERM.
    svc.serve(router).await
}
