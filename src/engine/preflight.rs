//! Preflight: before any load, what a run depends on must answer — the target a TCP connect
//! and an HTTP request, each running mock upstream its control API — so a run that cannot
//! work fails in seconds saying what to start, instead of measuring connection errors for the
//! whole plan and blaming a gateway that is not there.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;

use super::fleet::StartedFleet;
use crate::mock::{ControlClient, ControlError};
use crate::scenario::{Scenario, UpstreamSource};
use crate::tls::ClientTls;

/// Loopback answers a connect at once; this only bounds a black-holed address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle server answers a single request well within this, even on a loaded machine.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Where a mock's counters are read; named in the message a user acts on.
const STATS_PATH: &str = "/__gauntlet/stats";

/// One thing the run needs that is not there.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    #[error("nothing listens at {url} ({reason}): start the gateway under test first")]
    NoTarget { url: String, reason: String },
    #[error(
        "{url} takes connections but gave no HTTP answer to GET {probe} ({reason}): is the \
         gateway under test what listens there?"
    )]
    TargetSilent {
        url: String,
        probe: String,
        reason: String,
    },
    #[error(
        "{url} takes connections but its TLS handshake failed: {reason}. Every request would \
         fail the same way, so the run stops here"
    )]
    TargetTls { url: String, reason: String },
    #[error(
        "the mock upstream `{name}` at {url} does not answer its control API ({STATS_PATH}: \
         {reason}): start it with `gauntlet mock --config FLEET.toml` (a fleet file with \
         `{name}` on that port, like examples/fleet.toml)"
    )]
    UpstreamDown {
        name: String,
        url: String,
        reason: String,
    },
    #[error(
        "the mock upstream `{name}` at {url} refused the control token ({status}): give the \
         upstream the `admin_token` it was started with"
    )]
    UpstreamToken {
        name: String,
        url: String,
        status: StatusCode,
    },
}

/// Everything the preflight found missing, in the scenario's order.
#[derive(Debug, thiserror::Error)]
pub struct PreflightError(pub Vec<Unready>);

impl std::fmt::Display for PreflightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "the run cannot start:")?;
                for u in all {
                    write!(f, "\n  - {u}")?;
                }
                Ok(())
            }
        }
    }
}

/// The fleet, once everything it points at answers; otherwise it is shut down and the error
/// lists every missing piece.
pub async fn checked(
    scenario: &Scenario,
    fleet: StartedFleet,
) -> Result<StartedFleet, PreflightError> {
    let problems = check(scenario, &fleet).await;
    if problems.is_empty() {
        Ok(fleet)
    } else {
        fleet.shutdown().await;
        Err(PreflightError(problems))
    }
}

/// Checks, all at once, the control API of every upstream gauntlet did not start and every
/// target that is not one of those upstreams (an upstream's own check says more).
pub(super) async fn check(scenario: &Scenario, fleet: &StartedFleet) -> Vec<Unready> {
    let running = scenario
        .upstreams
        .iter()
        .zip(&fleet.upstream_urls)
        .filter(|(u, _)| matches!(u.source, UpstreamSource::Url { .. }))
        .filter_map(|(u, url)| Some((u.name.clone(), url.clone(), fleet.controls.get(&u.name)?)))
        .map(|(name, url, control)| async move { upstream(name, url, control).await });
    let mut targets: Vec<&String> = fleet
        .targets
        .iter()
        .filter(|t| !fleet.upstream_urls.contains(t))
        .collect();
    targets.sort();
    targets.dedup();
    let (mut problems, found) = tokio::join!(
        join_all(running),
        join_all(targets.into_iter().map(|t| target(t, &fleet.tls)))
    );
    problems.extend(found);
    problems.into_iter().flatten().collect()
}

/// `host:port` of a base URL, for a plain TCP connect.
fn authority(url: &str) -> Result<String, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let auth = uri.authority().ok_or("no host")?;
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Ok(match auth.port_u16() {
        Some(_) => auth.as_str().to_string(),
        None => format!("{}:{default_port}", auth.as_str()),
    })
}

/// Why nothing answered a TCP connect, or `None` when something did.
async fn unreachable(url: &str) -> Option<String> {
    let addr = match authority(url) {
        Ok(a) => a,
        Err(e) => return Some(e),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no connection within {CONNECT_TIMEOUT:?}")),
    }
}

/// The path a target is probed at: its model list, which every OpenAI-compatible gateway
/// serves cheaply. Any HTTP status counts as an answer.
fn probe_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/chat/completions").unwrap_or(base);
    if base.ends_with("/v1") {
        format!("{base}/models")
    } else {
        format!("{base}/v1/models")
    }
}

async fn target(url: &str, tls: &crate::tls::ClientSettings) -> Option<Unready> {
    if let Some(reason) = unreachable(url).await {
        return Some(Unready::NoTarget {
            url: url.to_string(),
            reason,
        });
    }
    let probe = probe_url(url);
    let silent = |reason: String| {
        Some(Unready::TargetSilent {
            url: url.to_string(),
            probe: probe.clone(),
            reason,
        })
    };
    let request = match Request::get(&probe).body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return silent(e.to_string()),
    };
    let tls = match ClientTls::new(tls) {
        Ok(t) => t,
        Err(e) => return silent(e.to_string()),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let client =
        Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(tls.connector(http));
    match tokio::time::timeout(ANSWER_TIMEOUT, client.request(request)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            let reason = match crate::tls::failure(&e) {
                Some(r) => Some(r),
                None => tls_refusal(url, &tls).await,
            };
            match reason {
                Some(reason) => Some(Unready::TargetTls {
                    url: url.to_string(),
                    reason,
                }),
                None => silent(e.to_string()),
            }
        }
        Err(_) => silent(format!("no answer within {ANSWER_TIMEOUT:?}")),
    }
}

/// Why an https target refused the TLS session, when the HTTP request could not say: with
/// TLS 1.3 a server that wants a client certificate rejects it after the client's side of
/// the handshake is done, so the request sees only a closed connection, and the server's
/// alert is read here, on a connection of its own.
async fn tls_refusal(url: &str, tls: &ClientTls) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("https") {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_string()).ok()?;
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(443));
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let mut stream = match tokio_rustls::TlsConnector::from(tls.negotiating())
            .connect(name, tcp)
            .await
        {
            Ok(s) => s,
            Err(e) => return crate::tls::failure(&e),
        };
        let mut byte = [0u8; 1];
        match tokio::io::AsyncReadExt::read(&mut stream, &mut byte).await {
            Err(e) => crate::tls::failure(&e),
            Ok(_) => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

async fn upstream(name: String, url: String, control: &ControlClient) -> Option<Unready> {
    let down = |name: String, url: String, reason: String| {
        Some(Unready::UpstreamDown { name, url, reason })
    };
    if let Some(reason) = unreachable(&url).await {
        return down(name, url, reason);
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, control.stats()).await {
        Ok(Ok(_)) => None,
        Ok(Err(ControlError::Status { status, .. }))
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
        {
            Some(Unready::UpstreamToken { name, url, status })
        }
        Ok(Err(e)) => down(name, url, e.to_string()),
        Err(_) => down(name, url, format!("no answer within {ANSWER_TIMEOUT:?}")),
    }
}
