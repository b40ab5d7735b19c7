//! A lean streaming client for `benches/streams.sh`: keeps STREAMS chat streams going at once
//! (each connection asks for the next stream as soon as one ends) for SECONDS, and times every
//! token as it arrives.
//!
//! Usage: stream_gaps URL STREAMS SECONDS INTERVAL_US
//!
//! INTERVAL_US is the gap the server means to leave between tokens (2500 for 400 tokens/s). For
//! each token it records the gap error (|gap since the previous token - INTERVAL|; tokens read
//! together have a gap of zero) and the lateness (arrival - request sent - its index x
//! INTERVAL: how late against a server that paces from the moment it read the request).
//! Prints `open N` once every stream has its first bytes, then one JSON line at the end.
//!
//! Environment: GAPS_MODEL (`bench-model`), GAPS_TOKENS (max_tokens, 400), GAPS_KEY (a bearer
//! key), GAPS_THREADS (runtime threads; all cores otherwise), GAPS_WARMUP_MS (1000: streams
//! sent earlier are not measured).
//!
//! Deliberately minimal so it is not the bottleneck: one hyper connection per stream, tokens
//! found by a byte search (`{"content":"`, which only content deltas carry), no JSON parsing.
//! It reports its own CPU time so a reader can check that claim.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const TOKEN: &[u8] = b"{\"content\":\"";
const DONE: &[u8] = b"data: [DONE]";

struct Shared {
    addr: SocketAddr,
    body: Bytes,
    key: Option<String>,
    interval: Duration,
    measure_from: Instant,
    until: Instant,
    connect_gate: Semaphore,
    opened: AtomicUsize,
    tokens: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    hist: Mutex<Hists>,
}

struct Hists {
    gap_err: Histogram<u64>,
    gap: Histogram<u64>,
    late: Histogram<u64>,
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Searches `hay` for `needle`, counting hits that may straddle frames through `carry`.
fn count_across(carry: &mut Vec<u8>, frame: &[u8], needle: &[u8]) -> usize {
    carry.extend_from_slice(frame);
    let n = memchr::memmem::find_iter(carry, needle).count();
    let keep = needle.len() - 1;
    if carry.len() > keep {
        carry.drain(..carry.len() - keep);
    }
    n
}

async fn one_stream(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    s: &Shared,
    first: &mut bool,
    samples: &mut Vec<(u64, u64, u64)>,
) -> Result<(), String> {
    let mut req = Request::post("/v1/chat/completions")
        .header("host", "bench")
        .header("content-type", "application/json");
    if let Some(k) = &s.key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req
        .body(Full::new(s.body.clone()))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| format!("ready: {e}"))?;
    let sent = Instant::now();
    let measured = sent >= s.measure_from;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = resp.into_body();
    let (mut tokens, mut prev) = (0u64, None::<Instant>);
    let (mut tok_carry, mut done_carry) = (Vec::new(), Vec::new());
    let mut done = false;
    let interval_ns = s.interval.as_nanos() as u64;
    samples.clear();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let now = Instant::now();
        if *first {
            *first = false;
            s.opened.fetch_add(1, Ordering::Relaxed);
        }
        let k = count_across(&mut tok_carry, data, TOKEN) as u64;
        done |= count_across(&mut done_carry, data, DONE) > 0;
        for _ in 0..k {
            let late = (now.saturating_duration_since(sent).as_nanos() as u64)
                .saturating_sub(tokens * interval_ns);
            let gap = prev.map_or(u64::MAX, |p| {
                now.saturating_duration_since(p).as_nanos() as u64
            });
            let err = if gap == u64::MAX {
                u64::MAX
            } else {
                gap.abs_diff(interval_ns)
            };
            if measured {
                samples.push((err, gap, late));
            }
            prev = Some(now);
            tokens += 1;
        }
        if measured && now <= s.until {
            s.tokens.fetch_add(k, Ordering::Relaxed);
        }
    }
    if !done {
        return Err(format!("stream ended after {tokens} tokens without [DONE]"));
    }
    if measured {
        let mut h = s.hist.lock().map_err(|_| "a recorder panicked")?;
        for &(err, gap, late) in samples.iter() {
            if err != u64::MAX {
                let _ = h.gap_err.record(err.max(1));
                let _ = h.gap.record(gap.max(1));
            }
            let _ = h.late.record(late.max(1));
        }
    }
    Ok(())
}

async fn connection(s: Arc<Shared>) {
    let result = async {
        let permit = s.connect_gate.acquire().await.map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(s.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        drop(permit);
        tokio::spawn(conn);
        let mut first = true;
        let mut samples = Vec::new();
        while Instant::now() < s.until {
            match one_stream(&mut sender, &s, &mut first, &mut samples).await {
                Ok(()) => s.done.fetch_add(1, Ordering::Relaxed),
                Err(e) => return Err(e),
            };
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = result {
        s.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut errs) = s.errors.lock()
            && errs.len() < 5
        {
            errs.push(e);
        }
    }
}

/// This process's user + system CPU seconds so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the file, counted from the state field (3) after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: stream_gaps URL STREAMS SECONDS INTERVAL_US";
    let addr: SocketAddr = args
        .get(1)
        .ok_or(usage)?
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let streams: usize = args.get(2).ok_or(usage)?.parse()?;
    let secs: f64 = args.get(3).ok_or(usage)?.parse()?;
    let interval = Duration::from_micros(args.get(4).ok_or(usage)?.parse()?);
    let model: String = env("GAPS_MODEL", "bench-model".to_string());
    let tokens: u32 = env("GAPS_TOKENS", 400);
    let warmup = Duration::from_millis(env("GAPS_WARMUP_MS", 1000));
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Generate a product description"}],
        "max_tokens": tokens,
        "stream": true,
    })
    .to_string();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("GAPS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    let hist = || Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        addr,
        body: Bytes::from(body),
        key: std::env::var("GAPS_KEY").ok(),
        interval,
        measure_from: start + warmup,
        until: start + warmup + Duration::from_secs_f64(secs),
        connect_gate: Semaphore::new(200),
        opened: AtomicUsize::new(0),
        tokens: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
        hist: Mutex::new(Hists {
            gap_err: hist()?,
            gap: hist()?,
            late: hist()?,
        }),
    });
    let cpu0 = cpu_seconds();
    rt.block_on(async {
        let tasks: Vec<_> = (0..streams)
            .map(|_| tokio::spawn(connection(shared.clone())))
            .collect();
        let s = shared.clone();
        let announce = tokio::spawn(async move {
            while s.opened.load(Ordering::Relaxed) + (s.failed.load(Ordering::Relaxed) as usize)
                < streams
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!(
                "open {} after {:?}",
                s.opened.load(Ordering::Relaxed),
                start.elapsed()
            );
        });
        for t in tasks {
            let _ = t.await;
        }
        announce.abort();
    });
    let wall = secs;
    let cpu = cpu_seconds() - cpu0;
    let h = shared.hist.lock().map_err(|_| "a recorder panicked")?;
    let us = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
    let q = |h: &Histogram<u64>| {
        serde_json::json!({
            "p50": us(h.value_at_quantile(0.5)),
            "p99": us(h.value_at_quantile(0.99)),
            "p999": us(h.value_at_quantile(0.999)),
            "max": us(h.max()),
            "n": h.len(),
        })
    };
    let tokens = shared.tokens.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "streams": streams,
            "streams_done": shared.done.load(Ordering::Relaxed),
            "connections_failed": shared.failed.load(Ordering::Relaxed),
            "errors": *shared.errors.lock().map_err(|_| "poisoned")?,
            "tokens": tokens,
            "tokens_per_s": (tokens as f64 / wall).round(),
            "gap_error_us": q(&h.gap_err),
            "gap_us": q(&h.gap),
            "late_us": q(&h.late),
            "client_cpu_s": (cpu * 100.0).round() / 100.0,
            "client_cpu_share": ((cpu / (warmup.as_secs_f64() + wall)) * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
