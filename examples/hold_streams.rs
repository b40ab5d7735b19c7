//! Opens many concurrent streaming completions against a mock and holds them open, for
//! `benches/mock_streams.sh` (which measures the mock's memory meanwhile).
//!
//! Usage: hold_streams URL STREAMS HOLD_SECONDS
//! Prints `open N` once every stream has received its first chunk, then `done` after the hold.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const BODY: &str = r#"{"model":"slow-model","messages":[{"role":"user","content":"Generate a product description"}],"max_tokens":400,"stream":true}"#;

async fn hold(
    addr: SocketAddr,
    gate: Arc<Semaphore>,
    open: Arc<AtomicUsize>,
    until: Duration,
) -> Result<(), String> {
    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; 2048];
    let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
    if n == 0 || !buf.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "bad answer: {}",
            String::from_utf8_lossy(&buf[..n])
        ));
    }
    open.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let deadline = tokio::time::Instant::now() + until;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(Ok(0)) => return Err("stream ended early".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("read: {e}")),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or("usage: hold_streams URL STREAMS HOLD_SECONDS")?;
    let streams: usize = args.get(2).map_or(Ok(5000), |s| s.parse())?;
    let hold_secs: u64 = args.get(3).map_or(Ok(10), |s| s.parse())?;
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let gate = Arc::new(Semaphore::new(200));
        let open = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let total = Duration::from_secs(hold_secs) + Duration::from_secs(60);
        let tasks: Vec<_> = (0..streams)
            .map(|_| tokio::spawn(hold(addr, gate.clone(), open.clone(), total)))
            .collect();
        while open.load(Ordering::Relaxed) < streams {
            if started.elapsed() > Duration::from_secs(60) {
                eprintln!(
                    "only {} of {streams} streams opened",
                    open.load(Ordering::Relaxed)
                );
                std::process::exit(3);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("open {streams} after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_secs(hold_secs)).await;
        let failed = tasks.iter().filter(|t| t.is_finished()).count();
        println!("done ({failed} streams ended early)");
        std::process::exit(if failed == 0 { 0 } else { 3 });
    })
}
