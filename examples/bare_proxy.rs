//! The least a reverse proxy can do with hyper: read the request, send its body to one fixed
//! upstream on hyper-util's pooled client, stream the answer back. No routing, auth, limits,
//! retries, breakers or metrics. `benches/gateway_overhead.sh` measures it beside the
//! reference gateway, so the gateway's ratio can be read against what the stack alone costs
//! on the same cores.
//!
//! Usage: cargo run --release --example bare_proxy -- LISTEN_PORT UPSTREAM_URL

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

// The same allocator as the gateway, so the two differ only in what their code does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Upstream = Client<HttpConnector, Full<Bytes>>;
type Body = BoxBody<Bytes, hyper::Error>;

async fn forward(
    client: Upstream,
    target: Uri,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let mut out = Request::new(Full::new(body));
    *out.method_mut() = parts.method;
    *out.uri_mut() = target;
    if let Some(ct) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        out.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, ct.clone());
    }
    match client.request(out).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let upstream = args
        .next()
        .ok_or("usage: bare_proxy LISTEN_PORT UPSTREAM_URL")?;
    let target: Uri = format!(
        "{}/v1/chat/completions",
        upstream.trim_end_matches('/').trim_end_matches("/v1")
    )
    .parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        println!("http://{}", listener.local_addr()?);
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => continue,
            };
            let _ = tcp.set_nodelay(true);
            let client = client.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| forward(client.clone(), target.clone(), req));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    })
}
