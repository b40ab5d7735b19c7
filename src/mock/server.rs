//! The mock's listener: accepting, serving each connection over HTTP/1.1 with keep-alive
//! under its controls (conn.rs), and shutting down gracefully; plus `MockHandle`, the
//! in-process face of a running mock.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::openai::{ModelInfo, ModelList, fingerprint_for, unix_now};

use super::cache::PrefixCache;
use super::conn::{Conn, ConnCtl, Guarded, Registry};
use super::fault::FaultSpec;
use super::handler;
use super::inject::{FaultEntry, FaultId, Injector};
use super::limits::RateLimiter;
use super::profile::{Profile, valid_name};
use super::provider::Forward;
use super::state::{MockState, stopping};
use super::stats::{Counters, MockStats};

/// How long in-flight responses may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{0:?} is not a valid upstream name; use 1-64 letters, digits, '-', '_' or '.'")]
    InvalidName(String),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
}

/// Starts a mock provider on `addr` (port 0 picks a free port) on the current tokio runtime.
/// The control API requires `admin_token` when one is given.
pub async fn start(
    profile: Profile,
    name: &str,
    addr: SocketAddr,
    admin_token: Option<String>,
) -> Result<MockHandle, MockError> {
    start_with(profile, name, addr, admin_token, None, None).await
}

/// Starts a fault proxy on `addr` that forwards to `forward`'s provider, with a mock's control
/// API (faults, stats, reset) and its fault kinds; `tls` serves it over HTTPS.
pub async fn start_proxy(
    name: &str,
    addr: SocketAddr,
    admin_token: Option<String>,
    forward: Forward,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<MockHandle, MockError> {
    let text = format!(
        "name = \"{name}\"\n[[models]]\nname = \"proxied\"\ninput_price_per_m = 0\n\
         output_price_per_m = 0\n"
    );
    let profile = Profile::parse(&crate::config::Source::new("proxy", text))
        .map_err(|_| MockError::InvalidName(name.to_string()))?;
    start_with(
        profile,
        name,
        addr,
        admin_token,
        tls.map(TlsAcceptor::from),
        Some(forward),
    )
    .await
}

/// Like `start`, serving HTTPS with `tls` (see `tls::server_config`; ALPN http/1.1).
pub async fn start_tls(
    profile: Profile,
    name: &str,
    addr: SocketAddr,
    admin_token: Option<String>,
    tls: Arc<rustls::ServerConfig>,
) -> Result<MockHandle, MockError> {
    start_with(
        profile,
        name,
        addr,
        admin_token,
        Some(TlsAcceptor::from(tls)),
        None,
    )
    .await
}

async fn start_with(
    profile: Profile,
    name: &str,
    addr: SocketAddr,
    admin_token: Option<String>,
    tls: Option<TlsAcceptor>,
    forward: Option<Forward>,
) -> Result<MockHandle, MockError> {
    if !valid_name(name) {
        return Err(MockError::InvalidName(name.to_string()));
    }
    let upstream_header =
        HeaderValue::from_str(name).map_err(|_| MockError::InvalidName(name.to_string()))?;
    // Loaded before the port opens: the first request must not pay for building the tables.
    let tokenizer = crate::tokenizer::Tokenizer::new(profile.tokenizer)?;
    let listener = crate::net::listen(addr).map_err(|source| MockError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MockError::Bind { addr, source })?;
    let created = unix_now();
    let models = ModelList::new(
        profile
            .models
            .iter()
            .map(|m| ModelInfo::new(m.name.clone(), created, profile.name.clone()))
            .collect(),
    );
    let models_json = Bytes::from(serde_json::to_vec(&models).unwrap_or_default());
    let (tx, rx) = watch::channel(false);
    let shared = Arc::new(MockState {
        name: name.to_string(),
        fingerprint: fingerprint_for(name),
        upstream_header,
        models_json,
        tokenizer,
        counters: Counters::new(profile.models.iter().map(|m| m.name.clone()).collect()),
        injector: Injector::new(&profile.faults),
        limiter: RateLimiter::new(
            profile.limits.requests_per_minute,
            profile.limits.tokens_per_minute,
        ),
        slots: profile
            .capacity
            .max_concurrent
            .map(|n| Arc::new(Semaphore::new(n.get() as usize))),
        cache: profile
            .capacity
            .prefix_cache_tokens
            .map(|n| PrefixCache::new(n.get())),
        admin_token,
        seq: AtomicU64::new(0),
        shutdown: rx.clone(),
        profile,
        forward,
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(accept_loop(listener, shared.clone(), rx, tls));
    Ok(MockHandle {
        addr: local,
        scheme,
        shared,
        shutdown: tx,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<MockState>,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let mut conns = JoinSet::new();
    let registry = Registry::default();
    let mut stopped = stop;
    loop {
        tokio::select! {
            biased;
            _ = stopping(&mut stopped) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    let ctl = Arc::new(ConnCtl::default());
                    registry.add(&ctl);
                    conns.spawn(serve_conn(tcp, shared.clone(), ctl, tls.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(upstream = %shared.name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    registry.shut_down_all();
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

async fn serve_conn(
    tcp: TcpStream,
    shared: Arc<MockState>,
    ctl: Arc<ConnCtl>,
    tls: Option<TlsAcceptor>,
) {
    let conn = Conn::new(tcp, ctl.clone());
    let Some(acceptor) = tls else {
        return serve_http(TokioIo::new(conn), shared, ctl).await;
    };
    // A client that never finishes its handshake is dropped like one that never sends a
    // request head; a failed handshake is the client's to report, nothing is served.
    let handshake = tokio::time::timeout(crate::net::HEADER_READ_TIMEOUT, acceptor.accept(conn));
    if let Ok(Ok(stream)) = handshake.await {
        serve_http(TokioIo::new(stream), shared, ctl).await;
    }
}

async fn serve_http<I>(io: I, shared: Arc<MockState>, ctl: Arc<ConnCtl>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc_ctl = ctl.clone();
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let ctl = svc_ctl.clone();
        async move { Ok::<_, Infallible>(handler::handle(shared, ctl, req).await) }
    });
    let conn = pin!(
        http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(crate::net::HEADER_READ_TIMEOUT)
            .serve_connection(io, svc)
    );
    Guarded::new(conn, &ctl).await;
}

/// A running mock. Dropping the handle stops it; `shutdown` also waits until it has.
pub struct MockHandle {
    addr: SocketAddr,
    /// `https` when it serves TLS.
    scheme: &'static str,
    shared: Arc<MockState>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (append `/v1/chat/completions`); `https://`
    /// when it serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn profile(&self) -> &Profile {
        &self.shared.profile
    }

    pub fn stats(&self) -> MockStats {
        self.shared.counters.snapshot(&self.shared.name)
    }

    pub fn add_fault(&self, spec: FaultSpec) -> FaultId {
        self.shared.injector.add(spec)
    }

    /// Whether a fault with that id was active.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.shared.injector.remove(id)
    }

    /// Removes every fault, the profile's defaults included; returns how many there were.
    pub fn clear_faults(&self) -> usize {
        self.shared.injector.clear()
    }

    pub fn faults(&self) -> Vec<FaultEntry> {
        self.shared.injector.list()
    }

    /// Stops accepting, lets in-flight responses finish (for a short grace period), and
    /// waits until every connection is closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
