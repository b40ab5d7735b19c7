//! The HTTP face of the live numbers: `GET /metrics` on the address `--metrics-listen` names,
//! serving whichever run is published on its board, until it is shut down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::exposition::CONTENT_TYPE;
use super::live::LiveMetrics;

/// Where a run publishes its live numbers for the server to read. Published once per run; a
/// scrape before any run (the fleet still starting) gets an empty, valid exposition.
#[derive(Clone, Default)]
pub struct Board(Arc<RwLock<Option<Arc<LiveMetrics>>>>);

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Board {
    /// From now on, scrapes read `metrics`.
    pub fn publish(&self, metrics: Arc<LiveMetrics>) {
        let mut slot = match self.0.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some(metrics);
    }

    /// The run published last, if any yet.
    pub fn current(&self) -> Option<Arc<LiveMetrics>> {
        // The lock is held only to clone the Arc: reading never blocks a publish.
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn render(&self) -> String {
        self.current().map(|m| m.render()).unwrap_or_default()
    }
}

/// The running exporter; dropping it without `shutdown` leaves the task to the runtime's end.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    board: Board,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `addr` (port 0 picks a free one) and serves the board's numbers on the
    /// current runtime. Any address is taken as given: the caller decides who may read.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = crate::net::listen(addr)?;
        let addr = listener.local_addr()?;
        let board = Board::default();
        let (stop, mut stopped) = watch::channel(false);
        let served = board.clone();
        let task = tokio::spawn(async move {
            // Dropped with the accept loop: a scrape in progress is cut, never waited on.
            let mut connections = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.wait_for(|s| *s) => break,
                };
                // A failed accept (descriptors exhausted, a reset before accept) costs that
                // scrape, not the exporter.
                let Ok((stream, _)) = accepted else {
                    continue;
                };
                let board = served.clone();
                connections.spawn(async move {
                    let svc = service_fn(move |req| {
                        let resp = respond(&req, &board);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(crate::net::HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                // Reap finished connections so a long run's scrapes do not pile up.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            board,
            stop,
            task,
        })
    }

    /// The address it listens on (the port chosen, when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where runs publish their numbers for this server.
    pub fn board(&self) -> Board {
        self.board.clone()
    }

    /// Stops listening and closes open connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn respond<B>(req: &Request<B>, board: &Board) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, CONTENT_TYPE, board.render())
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the run's metrics are at /metrics\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}
