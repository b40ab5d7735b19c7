//! `gauntlet gateway`: run the reference gateway standalone until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use super::{InvalidInput, Outcome};

/// Run the reference gateway (an OpenAI-compatible model router) from a config file.
///
/// It serves POST /v1/chat/completions (streamed or not), GET /v1/models, GET /health and
/// GET /metrics (Prometheus text), routing each public model to weighted upstreams with an
/// ordered fallback chain, retries within a budget, circuit breakers and per-key limits.
/// Runs until Ctrl-C or SIGTERM.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Gateway configuration file (TOML: [[upstreams]], keys, routes, [timeouts], [retry],
    /// [breaker]); see examples/gateway.toml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Address to listen on. Loopback by default; listening on a public address exposes
    /// the upstreams' keys to whoever holds a gateway key.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[command(flatten)]
    pub serve_tls: super::tls_args::ServeTlsArgs,
    /// Trust for https:// upstreams (and the certificate shown to them).
    #[command(flatten)]
    pub upstream_tls: super::tls_args::TlsArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let config = gauntlet::gateway::Config::load(&args.config)?;
    let addr: SocketAddr = args.listen.parse().map_err(|e| {
        InvalidInput(format!(
            "--listen `{}` is not an address like 127.0.0.1:8080 ({e})",
            args.listen
        ))
    })?;
    // hyper's auto builder serves both, so ALPN offers both, HTTP/2 first.
    let serve = args
        .serve_tls
        .config(&[gauntlet::tls::ALPN_H2, gauntlet::tls::ALPN_HTTP1])?;
    if let Some((_, Some(ca))) = &serve {
        eprintln!(
            "serving HTTPS; clients trust the generated CA {}",
            ca.display()
        );
    }
    let tls = gauntlet::gateway::GatewayTls {
        serve: serve.map(|(config, _)| config),
        upstreams: args.upstream_tls.settings()?,
    };
    let rt = super::runtime()?;
    rt.block_on(async move {
        let routes = config.routes.len();
        let handle = gauntlet::gateway::start_with(config, addr, tls)
            .await
            .context("starting the gateway")?;
        eprintln!(
            "gauntlet gateway listening on {} ({routes} routes); Ctrl-C to stop",
            handle.url()
        );
        // Ctrl-C is a person stopping it (exit 130); SIGTERM is a supervisor's normal stop.
        let outcome = match super::stop_signal().await {
            super::StopSignal::Interrupt => Outcome::Interrupted,
            super::StopSignal::Terminate => Outcome::Ok,
        };
        handle.shutdown().await;
        Ok(outcome)
    })
}
