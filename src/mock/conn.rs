//! One connection's controls: a request handler (or shutdown) closes it, resets it with a
//! real TCP RST, or lets it finish gracefully, checked with atomics on every poll.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use hyper::server::conn::http1;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
pub(crate) struct Guarded<'a, F> {
    conn: Pin<&'a mut F>,
    ctl: &'a ConnCtl,
    graceful_started: bool,
}

impl<'a, F> Guarded<'a, F> {
    pub fn new(conn: Pin<&'a mut F>, ctl: &'a ConnCtl) -> Self {
        Self {
            conn,
            ctl,
            graceful_started: false,
        }
    }
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
pub(crate) struct Registry {
    conns: std::sync::Mutex<Vec<std::sync::Weak<ConnCtl>>>,
}

impl Registry {
    pub fn add(&self, ctl: &Arc<ConnCtl>) {
        let mut v = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == v.capacity() {
            v.retain(|w| w.strong_count() > 0);
        }
        v.push(Arc::downgrade(ctl));
    }

    pub fn shut_down_all(&self) {
        let v = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for ctl in v.iter().filter_map(std::sync::Weak::upgrade) {
            ctl.shut_down();
        }
    }
}

/// The accepted socket; when its connection is aborted for a reset, it is closed with
/// `SO_LINGER = 0`, which makes the kernel send RST instead of FIN.
pub(crate) struct Conn {
    tcp: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Conn {
    pub fn new(tcp: TcpStream, ctl: Arc<ConnCtl>) -> Self {
        Self { tcp, ctl }
    }
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
