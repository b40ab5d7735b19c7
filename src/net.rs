//! Listening sockets for gauntlet's servers (mocks and the reference gateway), the accept
//! loop of its small control servers, and the keep-alive times its servers and clients agree
//! on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Connections the kernel queues for a server before it accepts them. tokio's `bind` asks for
/// 1024; a load generator opening connections in a burst (the first moments of a run, after a
/// stall) overflows that, and a SYN dropped at a full queue is retried only after a second:
/// requests that waited a whole second for a connection, blamed on the server. The kernel
/// caps the request at `net.core.somaxconn`.
const BACKLOG: u32 = 8192;

/// Listens on `addr` with a backlog fit for bursts of connections.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As std and tokio do on Unix: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A client that never finishes its request head (slowloris) loses its connection after
/// this; hyper counts an idle keep-alive connection's wait for its next request the same way,
/// so this is also when gauntlet's servers close a connection left idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long gauntlet's HTTP clients (load generator, gateway upstreams, control API) keep an
/// idle pooled connection. A connection idle about as long as the server's own cutoff may be
/// closing just as the next request is written on it, a failure the client caused and would
/// record as the server's; this stays under common cutoffs (uvicorn's 5 s, ours above).
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(4);

/// Serves HTTP/1 on `listener`, each request answered by `answer`, until `stop` turns true;
/// for the small servers beside a run (the live exporter, the coordinator's API), whose
/// answers are whole bodies. Each connection is a task, reaped as it ends so a long run's
/// connections do not pile up, and cut (never waited on) when the loop ends.
pub fn serve_http1<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    answer: F,
) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.wait_for(|s| *s) => break,
            };
            // A failed accept (descriptors exhausted, a reset before accept) costs that
            // connection, not the server.
            let Ok((stream, _)) = accepted else {
                continue;
            };
            let answer = answer.clone();
            connections.spawn(async move {
                let svc = service_fn(move |req| {
                    let answered = answer(req);
                    async move { Ok::<_, Infallible>(answered.await) }
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}
