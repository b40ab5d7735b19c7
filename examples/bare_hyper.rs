//! A bare hyper 1 "hello" server: the baseline `benches/mock_throughput.sh` compares the mock
//! against. Same runtime and connection setup as the mock (multi-threaded tokio, HTTP/1.1
//! keep-alive, TCP_NODELAY); it reads the request body and answers a fixed JSON.
//!
//! Usage: cargo run --release --example bare_hyper -- [PORT]   (prints its URL, 0 = free port)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // A real server reads what it is sent; skipping it would make keep-alive impossible.
    let _ = req.into_body().collect().await;
    let mut r = Response::new(Full::new(Bytes::from_static(b"{\"hello\":\"world\"}")));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        println!("http://{}", listener.local_addr()?);
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => continue,
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tcp), service_fn(hello))
                    .await;
            });
        }
    })
}
