//! The HTTP face of the live numbers: `GET /metrics` on the address `--metrics-listen` names,
//! serving whichever run is published on its board, until it is shut down.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::exposition::CONTENT_TYPE;
use super::live::LiveMetrics;
use super::probe::ProbeGauges;
use super::protobuf;

/// What a scrape renders: the run's numbers, and a probe's own when a probe runs.
#[derive(Default)]
struct Published {
    run: Option<Arc<LiveMetrics>>,
    probe: Option<Arc<ProbeGauges>>,
}

/// Where a run publishes its live numbers for the server to read. Published once per run; a
/// scrape before any run (the fleet still starting) gets an empty, valid exposition.
#[derive(Clone, Default)]
pub struct Board(Arc<RwLock<Published>>);

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Board {
    /// From now on, scrapes read `metrics`.
    pub fn publish(&self, metrics: Arc<LiveMetrics>) {
        self.with(|p| p.run = Some(metrics));
    }

    /// From now on, scrapes also read a probe's gauges, after the run's families.
    pub fn publish_probe(&self, gauges: Arc<ProbeGauges>) {
        self.with(|p| p.probe = Some(gauges));
    }

    fn with(&self, f: impl FnOnce(&mut Published)) {
        f(&mut self.0.write().unwrap_or_else(PoisonError::into_inner));
    }

    fn published(&self) -> (Option<Arc<LiveMetrics>>, Option<Arc<ProbeGauges>>) {
        // The lock is held only to clone the Arcs: reading never blocks a publish.
        let s = self.0.read().unwrap_or_else(PoisonError::into_inner);
        (s.run.clone(), s.probe.clone())
    }

    /// The run published last, if any.
    pub fn current(&self) -> Option<Arc<LiveMetrics>> {
        self.published().0
    }

    /// Whether a probe's gauges are published: they exist only as text, so a probe's
    /// scrapes are answered in text whatever format the scraper prefers.
    fn has_probe(&self) -> bool {
        self.published().1.is_some()
    }

    fn render(&self) -> String {
        let (run, probe) = self.published();
        let mut out = run.map(|m| m.render()).unwrap_or_default();
        if let Some(p) = probe {
            p.render(&mut out);
        }
        out
    }

    fn render_protobuf(&self) -> Vec<u8> {
        self.current()
            .map(|m| m.render_protobuf())
            .unwrap_or_default()
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
    /// Listens on `addr` (port 0 picks a free one) and serves `board`'s numbers on the
    /// current runtime. Any address is taken as given: the caller decides who may read.
    pub async fn start(addr: SocketAddr, board: Board) -> std::io::Result<Self> {
        let listener = crate::net::listen(addr)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let served = board.clone();
        let task = crate::net::serve_http1(listener, stopped, move |req| {
            std::future::ready(respond(&req, &served))
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
    // Content negotiation: the protobuf format only for a scraper that prefers it.
    let protobuf = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(protobuf::preferred)
        && !board.has_probe();
    let (status, content_type, body): (_, _, Bytes) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") if protobuf => (
            StatusCode::OK,
            protobuf::CONTENT_TYPE,
            board.render_protobuf().into(),
        ),
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, CONTENT_TYPE, board.render().into())
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"use GET\n"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found: the run's metrics are at /metrics\n"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // One URL, two formats: a cache must key on what was asked for.
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}
