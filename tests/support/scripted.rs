//! Scripted HTTP servers (answers chosen per request, arrival times recorded) and scenario
//! builders, for testing the load engine as a client.

use std::future::Future;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gauntlet::openai::Message;
use gauntlet::scenario::{
    Arrival, LoadPlan, RequestClass, Scenario, Sla, Stage, StageLoad, Target,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

pub type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;
type Handler = dyn Fn(usize, Bytes) -> Reply + Send + Sync;

/// A small HTTP server whose answers a test scripts; it records when each request arrived.
/// A GET (the run's preflight asking for the model list) gets a 404 and is not recorded: the
/// script and the counts are about the completions sent.
pub struct TestServer {
    pub addr: SocketAddr,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests the server received (read completely).
    pub fn received(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/1.1 and HTTP/2 on 127.0.0.1:0; `handler(index, body)` answers request `index`.
pub async fn serve(handler: impl Fn(usize, Bytes) -> Reply + Send + Sync + 'static) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let handler: Arc<Handler> = Arc::new(handler);
    let seen = arrivals.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handler = handler.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    let seen = seen.clone();
                    async move {
                        if req.method() == hyper::Method::GET {
                            return Ok(reply(404, &[], "{}").await);
                        }
                        let body = req.into_body().collect().await?.to_bytes();
                        let index = {
                            let mut s = seen.lock().unwrap();
                            s.push(Instant::now());
                            s.len() - 1
                        };
                        Ok::<_, hyper::Error>(handler(index, body).await)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    TestServer {
        addr,
        arrivals,
        task,
    }
}

/// A server that reads a request and answers with a TCP reset.
pub async fn serve_reset() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            seen.lock().unwrap().push(Instant::now());
            let _ = tcp.set_zero_linger();
            drop(tcp);
        }
    });
    TestServer {
        addr,
        arrivals,
        task,
    }
}

/// An address nothing listens on.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let r = b.body(Full::new(body.into())).unwrap();
    Box::pin(async move { r })
}

pub fn after(delay: Duration, r: Reply) -> Reply {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        r.await
    })
}

/// A well-formed chat completion served by `upstream`.
pub fn completion_json(upstream: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","system_fingerprint":"gauntlet-{upstream}","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi there"}},"finish_reason":"stop","logprobs":null}}],"usage":{{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}}}"#
    )
}

/// An SSE stream of `deltas` content chunks, optionally closed by a finish reason and `[DONE]`.
pub fn stream_body(upstream: &str, deltas: usize, finish: bool, done: bool) -> String {
    let mut s = String::new();
    for i in 0..deltas {
        s.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"system_fingerprint\":\"gauntlet-{upstream}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    if finish {
        s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    }
    if done {
        s.push_str("data: [DONE]\n\n");
    }
    s
}

pub fn class(name: &str, weight: u32, model: &str, stream: bool) -> RequestClass {
    RequestClass {
        name: name.into(),
        weight: NonZeroU32::new(weight).unwrap(),
        model: model.into(),
        messages: vec![Message::new("user", "Generate a product description")],
        max_tokens: Some(16),
        stream,
        api_key: None,
        headers: Vec::new(),
        primary: None,
    }
}

/// A load plan at a constant `rate` for `secs`, no warmup.
pub fn open_load(rate: f64, duration: Duration) -> LoadPlan {
    LoadPlan {
        stages: vec![Stage {
            duration,
            load: StageLoad::Rate {
                from: rate,
                to: rate,
            },
        }],
        warmup: Duration::ZERO,
        max_in_flight: NonZeroUsize::new(10_000).unwrap(),
        timeout: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        arrival: Arrival::Constant,
    }
}

/// A closed-model plan: `users` busy for `duration`, the first `warmup` of it not counted.
pub fn closed_load(users: usize, duration: Duration, warmup: Duration) -> LoadPlan {
    let mut load = open_load(1.0, duration);
    load.stages[0].load = StageLoad::Concurrency(NonZeroUsize::new(users).unwrap());
    load.warmup = warmup;
    load
}

/// A server answering every request with a completion after `delay`.
pub async fn answering_after(delay: Duration) -> TestServer {
    serve(move |_, _| after(delay, reply(200, &[], completion_json("alpha")))).await
}

/// A scenario sending `requests` at `url` with `load`.
pub fn scenario(url: &str, load: LoadPlan, requests: Vec<RequestClass>) -> Scenario {
    Scenario {
        name: "test".into(),
        description: None,
        seed: 7,
        target: Target::Url(url.into()),
        upstreams: Vec::new(),
        load,
        requests,
        faults: Vec::new(),
        sla: Sla::default(),
    }
}
