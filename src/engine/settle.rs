//! Letting upstreams that outlive a run go quiet, and resetting them, before the next run
//! against them: one run's faults, budgets and retries still in flight must not leak into the
//! next (a bake-off's targets, a capacity search's probes).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::mock::{ControlClient, ControlError};
use crate::observe::{ScrapedSample, Scraper};
use crate::tls::ClientTls;

/// Longest wait for the upstreams to go quiet (a gateway still retrying, streams still
/// draining); past it the next run starts anyway, with a warning.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// The upstreams count as settled when nothing is in flight and no request arrived for this
/// long: longer than a gateway's usual retry backoff, so a late retry is not mistaken for calm.
const QUIET: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(50);
/// Longest wait for one read of a gateway's `/metrics`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until no upstream has a request in flight and none arrived for `QUIET`.
pub(super) async fn settle(controls: &HashMap<String, ControlClient>) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last: Option<(u64, Instant)> = None;
    while Instant::now() < deadline {
        let mut total = 0u64;
        let mut busy = false;
        // An upstream that does not answer has nothing to settle; the reset says more.
        for control in controls.values() {
            if let Ok(s) = control.stats().await {
                total += s.requests_total;
                busy |= s.in_flight > 0;
            }
        }
        let now = Instant::now();
        if busy {
            last = None;
        } else {
            match last {
                Some((seen, since)) if seen == total => {
                    if now.duration_since(since) >= QUIET {
                        return;
                    }
                }
                _ => last = Some((total, now)),
            }
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(
        "the upstreams were still busy after {SETTLE_LIMIT:?}; the next run starts anyway"
    );
}

/// Lifts every fault and refills every budget; the error names the upstream that refused.
pub(super) async fn reset(
    controls: &HashMap<String, ControlClient>,
) -> Result<(), (String, ControlError)> {
    for (name, control) in controls {
        control.reset().await.map_err(|e| (name.clone(), e))?;
    }
    Ok(())
}

/// What a gateway's own `/metrics` says is still going on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Busy {
    in_flight: u64,
    /// Breakers not closed (half-open or open).
    breakers: u64,
}

/// Reads the reference gateway's gauges from its scraped samples: requests in flight per
/// tier, and breaker states (0 closed). None when there are neither: nothing to wait on.
fn busy(samples: &[ScrapedSample]) -> Option<Busy> {
    let mut seen = false;
    let mut b = Busy::default();
    for s in samples {
        match s.name.as_str() {
            "gateway_tier_in_flight" => b.in_flight += s.value.max(0.0) as u64,
            "gateway_breaker_state" => b.breakers += u64::from(s.value > 0.0),
            _ => continue,
        }
        seen = true;
    }
    seen.then_some(b)
}

/// Waits until a gateway gauntlet does not start has nothing in flight and every breaker
/// closed, as far as its `/metrics` tells (the reference gateway's gauges), read over http or
/// https trusting what the run's clients trust (`tls`); a gateway without them is not waited
/// on. Past `SETTLE_LIMIT` the next run starts anyway, with a warning.
pub(super) async fn settle_gateway(base_url: &str, tls: &ClientTls) {
    let url = format!("{}/metrics", base_url.trim_end_matches('/'));
    let Ok(scraper) = Scraper::new(&url, tls, SCRAPE_TIMEOUT) else {
        return;
    };
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last = None;
    while Instant::now() < deadline {
        match scraper.scrape().await.ok().and_then(|s| busy(&s)) {
            Some(b) if b == Busy::default() => return,
            Some(b) => last = Some(b),
            // No metrics to read: nothing gauntlet can wait on.
            None => return,
        }
        tokio::time::sleep(POLL).await;
    }
    if let Some(b) = last {
        tracing::warn!(
            "the gateway at {base_url} still had {} requests in flight and {} breakers not \
             closed after {SETTLE_LIMIT:?}; the next run starts anyway",
            b.in_flight,
            b.breakers
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::parse_exposition;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn busy_in(text: &str) -> Option<Busy> {
        busy(&parse_exposition(text).unwrap())
    }

    #[test]
    fn the_gateways_gauges_are_read_from_prometheus_text() {
        let text = "# HELP gateway_tier_in_flight Admitted requests\n\
                    # TYPE gateway_tier_in_flight gauge\n\
                    gateway_tier_in_flight{tier=\"pro\"} 2\n\
                    gateway_tier_in_flight{tier=\"standard\"} 3\n\
                    gateway_breaker_state{upstream=\"a\"} 0\n\
                    gateway_breaker_state{upstream=\"b\"} 2\n\
                    gateway_breaker_state{upstream=\"c\"} 1\n\
                    gateway_requests_total{route=\"m\",status=\"200\"} 40\n";
        assert_eq!(
            busy_in(text),
            Some(Busy {
                in_flight: 5,
                breakers: 2
            })
        );
        let calm =
            "gateway_tier_in_flight{tier=\"pro\"} 0\ngateway_breaker_state{upstream=\"a\"} 0\n";
        assert_eq!(busy_in(calm), Some(Busy::default()));
        // Another gateway's metrics: nothing to wait on.
        assert_eq!(busy_in("litellm_requests_total 3\n"), None);
        assert_eq!(busy_in(""), None);
    }

    /// A gateway whose /metrics shows a breaker open for its first three reads, then closed,
    /// over TLS when `tls` is given; the count of reads it served.
    async fn breaker_closing_after_three(
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        let state = if n < 3 { 2 } else { 0 };
                        let body = format!("gateway_breaker_state{{upstream=\"a\"}} {state}\n");
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(body)),
                            ))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = http.serve_connection(io, svc).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = http.serve_connection(io, svc).await;
                        }
                    }
                });
            }
        });
        (addr, served)
    }

    /// A gateway whose /metrics shows a breaker open, then closed: the wait ends when it closes.
    #[tokio::test]
    async fn the_wait_ends_when_the_breakers_close() {
        let (addr, served) = breaker_closing_after_three(None).await;
        let tls = ClientTls::system().unwrap();
        let started = Instant::now();
        settle_gateway(&format!("http://{addr}"), &tls).await;
        assert_eq!(
            served.load(Ordering::SeqCst),
            4,
            "read until the breaker closed"
        );
        assert!(started.elapsed() < SETTLE_LIMIT);
        // Nothing listening: no metrics, no wait.
        let started = Instant::now();
        settle_gateway("http://127.0.0.1:1", &tls).await;
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// The same over https behind a private CA the run's clients trust: waited on too, not
    /// skipped as a gateway without metrics.
    #[tokio::test]
    async fn an_https_gateway_is_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let certs = crate::tls::SelfSigned::generate(dir.path()).unwrap();
        let server = crate::tls::server_config(&certs.server, &[b"http/1.1"]).unwrap();
        let (addr, served) = breaker_closing_after_three(Some(server)).await;
        let tls = ClientTls::new(&crate::tls::ClientSettings {
            ca_certs: vec![certs.ca.clone()],
            identity: None,
        })
        .unwrap();
        settle_gateway(&format!("https://localhost:{}", addr.port()), &tls).await;
        assert_eq!(
            served.load(Ordering::SeqCst),
            4,
            "read over TLS until the breaker closed"
        );
    }
}
