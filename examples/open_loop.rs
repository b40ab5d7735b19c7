//! A minimal HTTP load generator for the gateway benchmark when `oha` is not installed:
//! open loop at a fixed rate (latency measured from each request's intended send time, so
//! stalls are not hidden by coordinated omission) or closed loop with N workers.
//! Prints oha-shaped JSON (`summary.requestsPerSec`, `latencyPercentiles` in seconds,
//! `statusCodeDistribution`).
//!
//! `open_loop URL BODY RATE DURATION_SECS CONCURRENCY [HEADER: VALUE]...` (RATE 0: closed loop)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

type Hist = Arc<Mutex<Histogram<u64>>>;
type Codes = Arc<Mutex<BTreeMap<u16, u64>>>;

struct Target {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: http::Uri,
    body: Bytes,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Target {
    async fn once(&self) -> u16 {
        let mut req = http::Request::post(self.url.clone())
            .body(Full::new(self.body.clone()))
            .unwrap_or_default();
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        match self.client.request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.into_body().collect().await {
                    Ok(_) => status,
                    Err(_) => 0,
                }
            }
            Err(_) => 0,
        }
    }
}

fn record(hist: &Hist, codes: &Codes, since: Instant, status: u16) {
    let us = since.elapsed().as_micros() as u64;
    if let Ok(mut h) = hist.lock() {
        let _ = h.record(us.max(1));
    }
    if let Ok(mut c) = codes.lock() {
        *c.entry(status).or_default() += 1;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        return Err(
            "usage: open_loop URL BODY RATE DURATION_SECS CONCURRENCY [HEADER: VALUE]...".into(),
        );
    }
    let rate: f64 = args[3].parse()?;
    let duration = Duration::from_secs_f64(args[4].parse()?);
    let concurrency: usize = args[5].parse()?;
    let mut headers = vec![(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    )];
    for h in &args[6..] {
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().parse()?, v.trim().parse()?));
        }
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    let target = Arc::new(Target {
        client: Client::builder(TokioExecutor::new()).build(http),
        url: args[1].parse()?,
        body: Bytes::from(args[2].clone()),
        headers,
    });
    let hist: Hist = Arc::new(Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?));
    let codes: Codes = Arc::new(Mutex::new(BTreeMap::new()));
    let start = Instant::now();
    let end = start + duration;
    if rate > 0.0 {
        // Open loop: request i is due at start + i/rate whatever happened to earlier ones.
        let interval = Duration::from_secs_f64(1.0 / rate);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1) * 64));
        let mut i: u64 = 0;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let due = start + interval.mul_f64(i as f64);
            if due >= end {
                break;
            }
            tokio::time::sleep_until(due).await;
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                // Overloaded: count it as failed at its due time rather than queue it.
                record(&hist, &codes, due, 0);
                i += 1;
                continue;
            };
            let (t, h, c) = (Arc::clone(&target), Arc::clone(&hist), Arc::clone(&codes));
            tasks.spawn(async move {
                let status = t.once().await;
                record(&h, &c, due, status);
                drop(permit);
            });
            i += 1;
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    } else {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (t, h, c) = (Arc::clone(&target), Arc::clone(&hist), Arc::clone(&codes));
            tasks.spawn(async move {
                while Instant::now() < end {
                    let sent = Instant::now();
                    let status = t.once().await;
                    record(&h, &c, sent, status);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    let elapsed = start.elapsed().as_secs_f64();
    let h = hist.lock().map_err(|_| "histogram lock")?;
    let c = codes.lock().map_err(|_| "codes lock")?;
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e6;
    let out = serde_json::json!({
        "summary": { "requestsPerSec": h.len() as f64 / elapsed, "total": h.len() },
        "latencyPercentiles": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99.9": q(0.999) },
        "statusCodeDistribution": c.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
    });
    println!("{out}");
    Ok(())
}
