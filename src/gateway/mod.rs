//! The reference gateway: an OpenAI-compatible model router with weighted targets, ordered
//! fallback chains, retries within a budget, per-upstream circuit breakers, per-key auth and
//! rate limits, and Prometheus metrics. Clients may speak OpenAI chat, Anthropic's Messages
//! or OpenAI's Responses (each routed as the chat request it asks for) and embeddings;
//! upstreams speak chat or Messages.
//!
//! # Streams and failover
//!
//! A streamed request fails over only while nothing has reached the client: the gateway
//! holds the response until the upstream's first chunk arrives (within the first-byte
//! timeout), so an upstream that errors, hangs or resets before then is retried on the next
//! upstream like any other failure. Once the first chunk is forwarded, the gateway is
//! committed to that upstream: a later failure (reset, cut stream, total deadline passing)
//! is passed through by aborting the response, so the client sees a cut stream with no
//! `data: [DONE]` rather than a stream stitched together from two upstreams.
//!
//! A 200 is only a success when a client could use it: the content type the request asked
//! for and, not streamed, a JSON completion (for embeddings, a JSON list of them) of at most
//! 16 MiB. Anything else is the upstream's failure (`bad_response`, 502 on its own) and fails
//! over like a reset. A relayed stream is cut when a line outgrows the SSE event limit or the
//! upstream ends without `[DONE]`, and every cut is counted in `gateway_stream_cuts_total` by
//! reason.
//!
//! # Attempts
//!
//! Each request walks a chain: the weighted pick among the route's targets (whose breaker
//! admits traffic), then the fallbacks in order, then the remaining targets. Upstreams with
//! an open breaker are skipped. Moving to the next upstream is immediate; coming back to an
//! upstream already tried waits an exponential backoff with full jitter, and never before
//! the upstream's `Retry-After`. Every attempt after the first spends from the route's
//! retry budget. When nothing is left to try the gateway answers its own 503 naming each
//! upstream and why it was unavailable; when the total deadline passes, a 504.

mod admission;
mod auth;
mod body;
mod breaker;
mod budget;
mod config;
mod error;
mod metrics;
mod ratelimit;
mod responses;
mod router;
mod server;
mod translate;
pub(crate) mod upstream;
mod window;

pub use admission::SHED_HEADER;
pub use breaker::BreakerState;
pub use config::{
    AdmissionConfig, BindError, BreakerConfig, Config, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_TIER,
    EmbeddedConfig, KeyConfig, PRO_TIER, RawGatewayTable, RetryConfig, RouteConfig, Target,
    TierConfig, Timeouts, UpstreamApi, UpstreamConfig,
};
pub use error::{GatewayError, ProxyError, Side, TimeoutPhase};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How long shutdown waits for in-flight requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running gateway. Dropping it stops accepting connections; [`GatewayHandle::shutdown`]
/// also waits for in-flight requests to finish.
#[derive(Debug)]
pub struct GatewayHandle {
    addr: SocketAddr,
    /// `https` when it serves TLS.
    scheme: &'static str,
    stop: watch::Sender<bool>,
    /// Closed once the accept loop and every connection task have ended.
    done: mpsc::Receiver<()>,
}

impl GatewayHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (or `https://`), the base URL clients use (append
    /// `/v1/chat/completions`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ =
            tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), self.done.recv()).await;
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How the gateway speaks TLS: to its clients (when it serves HTTPS) and to its upstreams.
#[derive(Debug, Clone, Default)]
pub struct GatewayTls {
    /// Serve HTTPS with this (see `tls::server_config`; offer h2 and http/1.1).
    pub serve: Option<Arc<rustls::ServerConfig>>,
    /// What `https://` upstreams are trusted by, and the certificate shown to them.
    pub upstreams: crate::tls::ClientSettings,
}

/// Binds `addr` and serves the gateway on the current Tokio runtime.
pub async fn start(config: Config, addr: SocketAddr) -> Result<GatewayHandle, GatewayError> {
    start_with(config, addr, GatewayTls::default()).await
}

/// Like `start`, with TLS settings.
pub async fn start_with(
    config: Config,
    addr: SocketAddr,
    tls: GatewayTls,
) -> Result<GatewayHandle, GatewayError> {
    let upstream_tls = crate::tls::ClientTls::new(&tls.upstreams)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    for u in &config.upstreams {
        let breaker = Arc::new(breaker::Breaker::new(
            config.breaker.clone(),
            metrics.breaker_gauge(&u.name),
        ));
        let slots =
            admission::Admission::upstream_slots(&config, u.max_concurrent.map(|n| n.get()));
        let up = upstream::Upstream::new(u, breaker, metrics.upstream_histogram(&u.name), slots)
            .ok_or_else(|| GatewayError::BadUpstreamUrl {
                name: u.name.clone(),
                url: u.url.clone(),
            })?;
        upstreams.push(Arc::new(up));
    }
    let router = router::Router::new(&config, upstreams, &metrics, &upstream_tls);
    let models = server::GatewayState::models_json(&router);
    let admission = admission::Admission::new(&config, |t| metrics.tier(t));
    let keys = auth::Keys::new(
        &config.keys,
        |t| admission.tier_index(t),
        config.admission.enabled,
    );
    let shared = Arc::new(server::GatewayState {
        router,
        keys,
        admission,
        metrics,
        max_request_bytes: config.max_request_bytes,
        models,
    });
    let listener =
        crate::net::listen(addr).map_err(|source| GatewayError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| GatewayError::Bind { addr, source })?;
    let (stop, stop_rx) = watch::channel(false);
    let (alive, done) = mpsc::channel::<()>(1);
    let scheme = if tls.serve.is_some() { "https" } else { "http" };
    let acceptor = tls.serve.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(accept_loop(listener, shared, stop_rx, alive, acceptor));
    Ok(GatewayHandle {
        addr: local,
        scheme,
        stop,
        done,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<server::GatewayState>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request head cannot hold a connection forever.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(crate::net::HEADER_READ_TIMEOUT);
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let builder = builder.clone();
        let stop = stop.clone();
        let alive = alive.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let Some(acceptor) = tls else {
                return serve_conn(TokioIo::new(tcp), shared, builder, stop).await;
            };
            // Bounded like a request head: a client stuck in its handshake holds nothing long.
            let handshake =
                tokio::time::timeout(crate::net::HEADER_READ_TIMEOUT, acceptor.accept(tcp));
            match handshake.await {
                Ok(Ok(stream)) => serve_conn(TokioIo::new(stream), shared, builder, stop).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

/// Serves one accepted connection (plain or TLS) until it ends or the gateway stops.
async fn serve_conn<I>(
    io: I,
    shared: Arc<server::GatewayState>,
    builder: auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| server::handle(Arc::clone(&shared), req));
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
    }
}
