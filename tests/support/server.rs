//! The one way tests run a server of their own: a route table with a behaviour per path
//! (served by hyper, HTTP/1.1 and HTTP/2), or one raw TCP behaviour for answers HTTP cannot
//! express. Both listen on 127.0.0.1:0 behind a [`TestServer`] whose `join` stops the server
//! and re-raises the first panic of any of its tasks: an assertion inside a behaviour fails
//! the test instead of vanishing with the connection it ran on.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinError, JoinHandle, JoinSet};

/// A response body: whole, streamed, or broken off by an error.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
/// A behaviour's answer, once it is ready.
pub type Reply = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
type Behaviour = Arc<dyn Fn(Received) -> Reply + Send + Sync>;
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;
type Accept = Arc<dyn Fn(TcpStream) -> Task + Send + Sync>;

/// A request as a behaviour sees it, its body read to the end.
#[derive(Debug)]
pub struct Received {
    /// Its place among the requests (or, raw, the connections) the server logged, from 0;
    /// `usize::MAX` for an unlogged request to an unrouted path.
    pub index: usize,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The address the request's connection came from.
    pub peer: Option<SocketAddr>,
}

/// A route table: exact paths to behaviours, and one behaviour for every other path.
pub struct Routes {
    routes: HashMap<String, Behaviour>,
    otherwise: Behaviour,
    /// Whether requests answered by `otherwise` are logged: not for the default 404, so a
    /// run's preflight (GET /v1/models) neither counts nor shifts the scripted indexes.
    log_otherwise: bool,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    /// No routes yet: every path answers 404.
    pub fn new() -> Self {
        Self {
            routes: HashMap::new(),
            otherwise: Arc::new(|r: Received| reply(404, &[], format!("no route {}", r.path))),
            log_otherwise: false,
        }
    }

    /// Requests for exactly `path` get `behaviour`'s answer.
    pub fn route(
        mut self,
        path: &str,
        behaviour: impl Fn(Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.routes.insert(path.to_string(), Arc::new(behaviour));
        self
    }

    /// Requests for a path no route names get `behaviour`'s answer (instead of a 404).
    pub fn otherwise(
        mut self,
        behaviour: impl Fn(Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.otherwise = Arc::new(behaviour);
        self.log_otherwise = true;
        self
    }

    /// Serves the table on 127.0.0.1:0.
    pub async fn serve(self) -> TestServer {
        let routes = Arc::new(self);
        let log = Log::default();
        let tasks = Tasks::default();
        let (l, t) = (log.clone(), tasks.clone());
        let accept: Accept = Arc::new(move |tcp: TcpStream| {
            let (routes, log, tasks) = (routes.clone(), l.clone(), t.clone());
            Box::pin(async move {
                let _ = tcp.set_nodelay(true);
                let peer = tcp.peer_addr().ok();
                let service = service_fn(move |req: Request<Incoming>| {
                    let (routes, log) = (routes.clone(), log.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let path = parts.uri.path().to_string();
                        let routed = routes.routes.get(&path);
                        let index = if routed.is_some() || routes.log_otherwise {
                            log.record(&path)
                        } else {
                            usize::MAX
                        };
                        let behaviour = routed.unwrap_or(&routes.otherwise);
                        let received = Received {
                            index,
                            method: parts.method,
                            path,
                            headers: parts.headers,
                            body,
                            peer,
                        };
                        Ok::<_, hyper::Error>(behaviour(received).await)
                    }
                });
                // HTTP/2 streams run on tasks of their own: spawned through `tasks` too, so
                // their panics surface and `join` ends them.
                let _ = auto::Builder::new(tasks)
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            })
        });
        start(accept, log, tasks).await
    }
}

/// Serves each connection on 127.0.0.1:0 with `behaviour`, which owns the socket: for
/// answers that break HTTP. `received` counts connections.
pub async fn serve_raw<F, Fut>(behaviour: F) -> TestServer
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let log = Log::default();
    let l = log.clone();
    let accept: Accept = Arc::new(move |tcp| {
        l.record("");
        Box::pin(behaviour(tcp))
    });
    start(accept, log, Tasks::default()).await
}

async fn start(accept: Accept, log: Log, tasks: Tasks) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let t = tasks.clone();
    let acceptor = tokio::spawn(async move {
        loop {
            // A failed accept (out of descriptors, a peer gone at once) ends one connection,
            // not the server.
            if let Ok((tcp, _)) = listener.accept().await {
                t.spawn(accept(tcp));
            }
        }
    });
    TestServer {
        addr,
        log,
        tasks,
        acceptor,
    }
}

/// What a server received: when each request arrived and at which path.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, String)>>>);

impl Log {
    fn record(&self, path: &str) -> usize {
        let mut log = self.0.lock().unwrap();
        log.push((Instant::now(), path.to_string()));
        log.len() - 1
    }
}

/// Every task of one server (connections, HTTP/2 streams), and the first panic among them.
#[derive(Clone, Default)]
struct Tasks {
    running: Arc<Mutex<JoinSet<()>>>,
    panic: Arc<Mutex<Option<Box<dyn Any + Send>>>>,
}

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let panic = self.panic.clone();
        let mut running = self.running.lock().unwrap();
        // A panic is caught where it happens, so neither aborting nor reaping can lose it.
        running.spawn(async move {
            if let Err(p) = AssertUnwindSafe(task).catch_unwind().await {
                panic.lock().unwrap().get_or_insert(p);
            }
        });
        while running.try_join_next().is_some() {}
    }

    fn abort_all(&self) {
        self.running.lock().unwrap().abort_all();
    }
}

impl<F> hyper::rt::Executor<F> for Tasks
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.spawn(async move {
            fut.await;
        });
    }
}

/// A running test server; dropping it stops accepting and ends every open connection.
pub struct TestServer {
    pub addr: SocketAddr,
    log: Log,
    tasks: Tasks,
    acceptor: JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received in total (read completely); connections for a raw server.
    pub fn received(&self) -> usize {
        self.log.0.lock().unwrap().len()
    }

    /// Requests received for exactly `path`.
    pub fn hits(&self, path: &str) -> usize {
        let log = self.log.0.lock().unwrap();
        log.iter().filter(|(_, p)| p == path).count()
    }

    /// When each request arrived, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        let log = self.log.0.lock().unwrap();
        log.iter().map(|(at, _)| *at).collect()
    }

    /// Stops the server and waits until every task of it has ended; then panics with the
    /// first panic any of them had (a failed assertion inside a behaviour).
    pub async fn join(mut self) {
        self.acceptor.abort();
        // Once the acceptor has ended, no connection can join the set taken below.
        let _ = (&mut self.acceptor).await;
        let mut running = std::mem::take(&mut *self.tasks.running.lock().unwrap());
        running.abort_all();
        let limit = Duration::from_secs(10);
        let drained = tokio::time::timeout(limit, async {
            while let Some(done) = running.join_next().await {
                not_a_panic(done);
            }
        })
        .await;
        assert!(
            drained.is_ok(),
            "the server's tasks did not end within {limit:?}"
        );
        let panic = self.tasks.panic.lock().unwrap().take();
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
    }
}

/// Tasks catch their own panics; one reaching the join set is a bug of this module.
fn not_a_panic(done: Result<(), JoinError>) {
    if let Err(e) = done {
        assert!(e.is_cancelled(), "a test server task failed: {e}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.tasks.abort_all();
    }
}

/// An answer with this status, headers and whole body.
pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let r = b.body(full(body)).unwrap();
    Box::pin(async move { r })
}

/// The answer `r`, `delay` later.
pub fn after(delay: Duration, r: Reply) -> Reply {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        r.await
    })
}

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An address nothing listens on.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::TestClient;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    fn echo_path(r: Received) -> Reply {
        reply(200, &[], format!("{} {} #{}", r.method, r.path, r.index))
    }

    #[tokio::test]
    async fn routes_answer_their_paths_and_count_each() {
        let server = Routes::new()
            .route("/a", echo_path)
            .route("/b", |_| reply(201, &[("x-b", "yes")], "b"))
            .serve()
            .await;
        let c = TestClient::new();
        assert_eq!(c.get(&server.url(), "/a").await.text(), "GET /a #0");
        let b = c.post(&server.url(), "/b", None, "{}".into()).await;
        assert_eq!((b.status, b.header("x-b")), (201, "yes"));
        let other = c.get(&server.url(), "/c").await;
        assert_eq!(
            (other.status, other.text()),
            (404, "no route /c".to_string())
        );
        // The default 404 of an unrouted path is neither logged nor indexed.
        assert_eq!(c.get(&server.url(), "/a").await.text(), "GET /a #2");
        assert_eq!(
            (server.hits("/a"), server.hits("/b"), server.hits("/c")),
            (2, 1, 0)
        );
        assert_eq!(server.received(), 3);
        let at = server.arrivals();
        assert!(at.windows(2).all(|w| w[0] <= w[1]), "{at:?}");
        server.join().await;
    }

    /// Whether `join` panicked, and with which message.
    async fn join_panic(server: TestServer) -> Option<String> {
        let joined = AssertUnwindSafe(server.join()).catch_unwind().await;
        let p = joined.err()?;
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .or(Some(String::new()))
    }

    #[tokio::test]
    async fn join_raises_a_panic_of_a_behaviour_over_http1_and_http2() {
        for (http2, path) in [(false, "/one"), (true, "/two")] {
            let server = Routes::new()
                .otherwise(|r: Received| -> Reply { panic!("behaviour saw {}", r.path) })
                .serve()
                .await;
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                .http2_only(http2)
                .build_http();
            let req = Request::get(format!("{}{path}", server.url()))
                .body(Full::new(Bytes::new()))
                .unwrap();
            // The client sees the connection or stream fail; the panic waits for `join`.
            let sent = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await;
            assert!(matches!(sent, Ok(Err(_))), "http2 {http2}: {sent:?}");
            let want = format!("behaviour saw {path}");
            assert_eq!(join_panic(server).await, Some(want), "http2 {http2}");
        }
    }

    #[tokio::test]
    async fn join_ends_connections_still_being_answered() {
        let server = Routes::new()
            .otherwise(|_| after(Duration::from_secs(3600), reply(200, &[], "late")))
            .serve()
            .await;
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let req = Request::get(server.url())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let waiting = tokio::spawn(client.request(req));
        let t0 = Instant::now();
        while server.received() == 0 {
            assert!(t0.elapsed() < Duration::from_secs(10), "no request arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(join_panic(server).await, None);
        // The client sees its connection closed rather than waiting for the hour.
        let outcome = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(matches!(outcome, Ok(Ok(Err(_)))), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_raw_server_counts_connections_and_joins_like_the_others() {
        let server = serve_raw(|mut tcp| async move {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.write_all(b"not http\r\n\r\n").await;
        })
        .await;
        for _ in 0..3 {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut got)
                .await
                .unwrap();
            assert_eq!(got, b"not http\r\n\r\n");
        }
        assert_eq!(server.received(), 3);
        assert_eq!(join_panic(server).await, None);
    }
}
