//! `gauntlet mock` (alias `gauntlet proxy`): start the mock providers and fault proxies a
//! fleet file lists and serve until told to stop.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use gauntlet::mock::{self, FleetSource, MockFleet, MockHandle};
use gauntlet::tls::ALPN_HTTP1;

use super::{InvalidInput, Outcome};

/// Start scripted mock providers, or fault proxies in front of real ones.
///
/// Starts every provider listed in the fleet file, each on its own port: a scripted mock
/// (`profile = "..."`), or a fault proxy (`proxy_to = "https://api.openai.com"`, with
/// `api_key = "env:NAME"`) that forwards every request to the real provider and plays the same
/// faults on the way. Prints one JSON line per provider on stdout as soon as it listens:
/// {"upstream":"deepseek","url":"http://127.0.0.1:41234"} (with TLS, an https URL and the CA
/// file clients must trust, "ca_cert"). Serves until Ctrl-C or SIGTERM,
/// then shuts down cleanly. Faults can be set at run time through each provider's control
/// API under /__gauntlet/ (stats, faults).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The fleet file listing providers, their profiles and ports.
    #[arg(
        long,
        short,
        value_name = "FILE",
        default_value = "mock-upstreams/fleet.toml"
    )]
    pub config: PathBuf,
    /// Address to bind. Loopback by default; anything else exposes the mocks to the network
    /// and is only used when given explicitly.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen: IpAddr,
    #[command(flatten)]
    pub tls: super::tls_args::ServeTlsArgs,
    /// What the proxies trust in the providers they forward to (the system's roots, plus
    /// --ca-cert), and the client certificate they present.
    #[command(flatten)]
    pub upstream_tls: super::tls_args::TlsArgs,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let fleet = MockFleet::load(&args.config)?;
    if !args.listen.is_loopback() {
        tracing::warn!(
            "listening on {}: the mocks are reachable from the network",
            args.listen
        );
    }
    // The mock speaks HTTP/1.1 only, so that is all it offers by ALPN.
    let tls = args.tls.config(&[ALPN_HTTP1])?;
    let upstream_tls = args.upstream_tls.settings()?;
    super::runtime()?.block_on(serve(fleet, args.listen, tls, upstream_tls))
}

async fn serve(
    fleet: MockFleet,
    ip: IpAddr,
    tls: Option<super::tls_args::ServeTls>,
    upstream_tls: gauntlet::tls::ClientSettings,
) -> anyhow::Result<Outcome> {
    let mut handles: Vec<MockHandle> = Vec::new();
    for p in fleet.providers {
        let addr = SocketAddr::new(ip, p.port);
        let serve_tls = tls.as_ref().map(|(config, _)| config.clone());
        let started = match p.source {
            FleetSource::Profile { profile, .. } => match serve_tls {
                None => mock::start(*profile, &p.name, addr, p.admin_token).await,
                Some(config) => {
                    mock::start_tls(*profile, &p.name, addr, p.admin_token, config).await
                }
            },
            FleetSource::Proxy { url, api_key } => {
                let forward = mock::Forward::new(&url, api_key, &upstream_tls)
                    .map_err(|e| InvalidInput(format!("provider {}: {e}", p.name)))?;
                mock::start_proxy(&p.name, addr, p.admin_token, forward, serve_tls).await
            }
        };
        let handle = match started {
            Ok(h) => h,
            Err(e @ mock::MockError::InvalidName(_)) => {
                return Err(InvalidInput(e.to_string()).into());
            }
            Err(e) => {
                for h in handles {
                    h.shutdown().await;
                }
                return Err(e).with_context(|| format!("starting provider {}", p.name));
            }
        };
        let mut line = serde_json::json!({ "upstream": handle.name(), "url": handle.url() });
        if let Some((_, Some(ca))) = &tls {
            line["ca_cert"] = ca.display().to_string().into();
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        handles.push(handle);
    }
    super::stop_signal().await;
    for h in handles {
        h.shutdown().await;
    }
    Ok(Outcome::Ok)
}
