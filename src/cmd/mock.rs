//! `gauntlet mock`: start the mock providers a fleet file lists and serve until told to stop.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use gauntlet::mock::{self, MockFleet, MockHandle};
use gauntlet::tls::ALPN_HTTP1;

use super::{InvalidInput, Outcome};

/// Start scripted OpenAI-compatible mock providers.
///
/// Starts every provider listed in the fleet file, each on its own port, and prints one JSON
/// line per provider on stdout as soon as it listens:
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
    super::runtime()?.block_on(serve(fleet, args.listen, tls))
}

async fn serve(
    fleet: MockFleet,
    ip: IpAddr,
    tls: Option<super::tls_args::ServeTls>,
) -> anyhow::Result<Outcome> {
    let mut handles: Vec<MockHandle> = Vec::new();
    for p in fleet.providers {
        let addr = SocketAddr::new(ip, p.port);
        let started = match &tls {
            None => mock::start(p.profile, &p.name, addr, p.admin_token).await,
            Some((config, _)) => {
                mock::start_tls(p.profile, &p.name, addr, p.admin_token, config.clone()).await
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
