//! The mock's listener and connections: accepting, serving HTTP/1.1 with keep-alive, aborting
//! a connection when a fault says so (closed, or reset with a real TCP RST), and shutting
//! down gracefully; plus `MockHandle`, the in-process face of a running mock.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::openai::{ModelInfo, ModelList, fingerprint_for, unix_now};

use super::fault::FaultSpec;
use super::handler;
use super::inject::{FaultEntry, FaultId, Injector};
use super::limits::RateLimiter;
use super::profile::{Profile, valid_name};
use super::stats::{Counters, MockStats};

/// How long in-flight responses may take to finish once shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// A client that never finishes its request head (slowloris) loses its connection after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Everything the request handlers of one mock share.
pub(crate) struct Shared {
    pub name: String,
    pub profile: Profile,
    pub fingerprint: String,
    pub upstream_header: HeaderValue,
    pub models_json: Bytes,
    pub counters: Counters,
    pub injector: Injector,
    pub limiter: Option<RateLimiter>,
    pub admin_token: Option<String>,
    /// Numbers requests: ids, and the per-request RNG seed.
    pub seq: AtomicU64,
    pub shutdown: watch::Receiver<bool>,
}

/// Lets a request handler (or shutdown) end its connection. Checked with atomics on every
/// poll of the connection, so the hot path takes no lock for it.
#[derive(Default)]
pub(crate) struct ConnCtl {
    abort: AtomicBool,
    reset: AtomicBool,
    graceful: AtomicBool,
    waker: AtomicWaker,
}

impl ConnCtl {
    /// Close the connection without answering.
    pub fn close(&self) {
        self.abort.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Abort the connection with a TCP RST.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::Release);
        self.close();
    }

    /// Finish the response in progress, then close.
    fn shut_down(&self) {
        self.graceful.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Drives a connection until it ends, is aborted, or has shut down gracefully.
struct Guarded<'a, F> {
    conn: Pin<&'a mut F>,
    ctl: &'a ConnCtl,
    graceful_started: bool,
}

impl<I, S> Future for Guarded<'_, http1::Connection<I, S>>
where
    http1::Connection<I, S>: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.ctl.waker.register(cx.waker());
        if this.ctl.abort.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if !this.graceful_started && this.ctl.graceful.load(Ordering::Acquire) {
            this.graceful_started = true;
            this.conn.as_mut().graceful_shutdown();
        }
        this.conn.as_mut().poll(cx).map(|_| ())
    }
}

/// The connections of one mock, so shutdown can reach them.
#[derive(Default)]
struct Registry {
    conns: std::sync::Mutex<Vec<std::sync::Weak<ConnCtl>>>,
}

impl Registry {
    fn add(&self, ctl: &Arc<ConnCtl>) {
        let mut v = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == v.capacity() {
            v.retain(|w| w.strong_count() > 0);
        }
        v.push(Arc::downgrade(ctl));
    }

    fn shut_down_all(&self) {
        let v = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for ctl in v.iter().filter_map(std::sync::Weak::upgrade) {
            ctl.shut_down();
        }
    }
}

/// The accepted socket; when its connection is aborted for a reset, it is closed with
/// `SO_LINGER = 0`, which makes the kernel send RST instead of FIN.
struct Conn {
    tcp: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::Acquire) {
            let _ = self.tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Starts a mock provider on `addr` (port 0 picks a free port) on the current tokio runtime.
/// The control API requires `admin_token` when one is given.
pub async fn start(
    profile: Profile,
    name: &str,
    addr: SocketAddr,
    admin_token: Option<String>,
) -> Result<MockHandle, MockError> {
    if !valid_name(name) {
        return Err(MockError::InvalidName(name.to_string()));
    }
    let upstream_header =
        HeaderValue::from_str(name).map_err(|_| MockError::InvalidName(name.to_string()))?;
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
    let shared = Arc::new(Shared {
        name: name.to_string(),
        fingerprint: fingerprint_for(name),
        upstream_header,
        models_json,
        counters: Counters::new(profile.models.iter().map(|m| m.name.clone()).collect()),
        injector: Injector::new(&profile.faults),
        limiter: RateLimiter::new(
            profile.limits.requests_per_minute,
            profile.limits.tokens_per_minute,
        ),
        admin_token,
        seq: AtomicU64::new(0),
        shutdown: rx.clone(),
        profile,
    });
    let task = tokio::spawn(accept_loop(listener, shared.clone(), rx));
    Ok(MockHandle {
        addr: local,
        shared,
        shutdown: tx,
        task: Some(task),
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
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
                    conns.spawn(serve_conn(tcp, shared.clone(), ctl));
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

async fn serve_conn(tcp: TcpStream, shared: Arc<Shared>, ctl: Arc<ConnCtl>) {
    let io = TokioIo::new(Conn {
        tcp,
        ctl: ctl.clone(),
    });
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
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(io, svc)
    );
    Guarded {
        conn,
        ctl: &ctl,
        graceful_started: false,
    }
    .await;
}

/// Resolves once shutdown has been asked for (or the handle is gone).
pub(crate) async fn stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A running mock. Dropping the handle stops it; `shutdown` also waits until it has.
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (append `/v1/chat/completions`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
