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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
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

/// The protocols the gateway serves a connection with, built once and shared by every
/// connection (a clone per connection would be kept for the connection's whole life).
struct Protocols {
    /// Plain connections that do not open with HTTP/2's preface.
    http1: http1::Builder,
    /// Plain connections that do (HTTP/2 with prior knowledge).
    http2: http2::Builder<TokioExecutor>,
    /// TLS connections: hyper-util's `auto` tells the two apart by the preface, as before
    /// (peeking would see TLS records, not the preface).
    tls: auto::Builder<TokioExecutor>,
}

/// What a client speaking HTTP/2 with prior knowledge sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<server::GatewayState>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // A client that never finishes its request head cannot hold a connection forever.
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(crate::net::HEADER_READ_TIMEOUT);
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(crate::net::HEADER_READ_TIMEOUT);
    let protocols = Arc::new(Protocols {
        http1,
        http2: http2::Builder::new(TokioExecutor::new()),
        tls: auto,
    });
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
        let protocols = Arc::clone(&protocols);
        let stop = stop.clone();
        let alive = alive.clone();
        // Plain and TLS connections are separate tasks: a task's memory is the size of its
        // largest state, and a plain connection held for a long stream should not carry room
        // for a TLS session it never has.
        match &tls {
            None => tokio::spawn(serve_plain(tcp, shared, protocols, stop, alive)),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _alive = alive;
                    // Bounded like a request head: a client stuck in its handshake holds nothing long.
                    let handshake =
                        tokio::time::timeout(crate::net::HEADER_READ_TIMEOUT, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let conn = protocols
                                .tls
                                .serve_connection(TokioIo::new(stream), Handler { shared });
                            serve_conn(conn, stop).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                })
            }
        };
    }
}

/// The gateway's service for one connection. The request's future is boxed: hyper keeps the
/// slot a service future lives in for the connection's whole life, and the gateway's is
/// kilobytes; boxed, the slot is a pointer and the future is freed once the answer's head
/// is out, while a stream goes on for minutes.
#[derive(Clone)]
struct Handler {
    shared: Arc<server::GatewayState>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Handler {
    type Response = hyper::Response<body::GatewayBody>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        Box::pin(server::handle(Arc::clone(&self.shared), req))
    }
}

/// Serves one plain connection: HTTP/2 when it opens with the preface, HTTP/1.1 otherwise.
/// The choice is made by peeking, so the bytes stay in the socket for the protocol that reads
/// them: hyper-util's `auto` sniffing reads them into a buffer of its own and hands them back
/// through a wrapper, which made hyper grow every connection's read buffer to 16 KiB and
/// kept its HTTP/2 state's room in every HTTP/1 connection's task (issue 19: memory per
/// relayed stream).
async fn serve_plain(
    tcp: TcpStream,
    shared: Arc<server::GatewayState>,
    protocols: Arc<Protocols>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let _alive = alive;
    // Bounded like a request head: a client that connects and says nothing holds nothing long.
    let opening = tokio::time::timeout(crate::net::HEADER_READ_TIMEOUT, opens_h2(&tcp));
    let h2 = tokio::select! {
        r = opening => match r {
            Ok(Ok(h2)) => h2,
            Ok(Err(e)) => return tracing::debug!(error = %e, "connection failed before its first request"),
            Err(_) => return tracing::debug!("connection sent nothing in time"),
        },
        _ = stop.changed() => return,
    };
    let io = TokioIo::new(tcp);
    if h2 {
        // Boxed: HTTP/2's connection state is larger than HTTP/1's, and only its connections
        // should pay for it.
        let conn = Box::pin(protocols.http2.serve_connection(io, Handler { shared }));
        serve_conn(conn, stop).await;
    } else {
        serve_conn(
            protocols.http1.serve_connection(io, Handler { shared }),
            stop,
        )
        .await;
    }
}

/// Whether a plain connection opens with HTTP/2's preface, without taking its bytes.
async fn opens_h2(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        // Closed, or a byte that no preface starts with: HTTP/1 (which sees the end itself).
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == buf.len() {
            return Ok(true);
        }
        // Only the start of the preface so far. Peeking again returns at once while those
        // bytes wait unread, so wait a moment for the rest instead of spinning.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A connection being served, whatever its protocol: it ends by itself, or is asked to finish
/// its requests in flight and stop.
trait ServedConnection: Future<Output = Result<(), Self::Failure>> {
    type Failure: std::fmt::Display;
    fn finish(self: Pin<&mut Self>);
}

impl<I, S> ServedConnection for http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = body::GatewayBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Failure = hyper::Error;
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> ServedConnection for Pin<Box<http2::Connection<I, S, TokioExecutor>>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = body::GatewayBody>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Failure = hyper::Error;
    fn finish(self: Pin<&mut Self>) {
        self.get_mut().as_mut().graceful_shutdown();
    }
}

impl<I, S> ServedConnection for auto::Connection<'_, I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<body::GatewayBody>,
        >,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Failure = Box<dyn std::error::Error + Send + Sync>;
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Serves one connection until it ends or the gateway stops.
async fn serve_conn<C: ServedConnection>(conn: C, mut stop: watch::Receiver<bool>) {
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().finish();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
    }
}
