//! Drives the engine at a URL for the throughput benchmark, without a scenario file:
//! engine_bench URL SECONDS (closed CONNECTIONS | open RATE) [MAX_IN_FLIGHT]
//! Prints one JSON line: rps, successes, errors, latency and schedule-lag percentiles.
//! The model asked for is `$BENCH_MODEL` (default `m`). With `BENCH_DATASET=FILE.jsonl` every
//! class draws seeded random requests from that dataset (a body built per request, prompt
//! tokens counted with the tokenizer) instead of sending one fixed prompt; with
//! `BENCH_PROMPT_BYTES=N` the fixed prompt is N bytes long, and with `BENCH_MAX_TOKENS=N` it
//! asks for N tokens (16 otherwise; a dataset's lines ask for their own). `BENCH_STREAM=1`
//! asks for streams: every token is parsed and timed, and the JSON adds the completion tokens
//! received, tokens/s and the inter-token gaps.
//!
//! Diagnostics, all optional: `BENCH_LOAD_THREADS` (the load runtime's threads),
//! `BENCH_WARMUP_MS`, `BENCH_INTERVAL_MS`, and `BENCH_INTERVALS=1` to print each interval's
//! latency p99 (ms) and drops to stderr as `t:p99/dropped`. `BENCH_CA_CERT=FILE` trusts a
//! private CA when the URL is https://.
//!
//! In open mode the JSON also reports the machine's hiccups while the load ran, measured as
//! jHiccup does: a thread that asks to sleep 1 ms and records how much longer it slept. A
//! generator stall that coincides with a hiccup of the same size was the machine (host or OS
//! scheduler), not the generator.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gauntlet::engine::{self, RunOptions};
use gauntlet::openai::Message;
use gauntlet::scenario::{
    Arrival, LoadPlan, RequestClass, Scenario, Sla, Stage, StageLoad, Target,
};
use gauntlet::workload::{Dataset, DatasetFormat, PromptSource, Workload};

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_default()
}

fn env_ms(name: &str) -> Option<Duration> {
    let ms: u64 = std::env::var(name).ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// Oversleeps of a thread that sleeps 1 ms at a time, in microseconds, until `stop`.
fn hiccups(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<hdrhistogram::Histogram<u64>> {
    std::thread::spawn(move || {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant figures");
        let tick = Duration::from_millis(1);
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            std::thread::sleep(tick);
            let over = at.elapsed().saturating_sub(tick);
            let _ = h.record(u64::try_from(over.as_micros()).unwrap_or(u64::MAX));
        }
        h
    })
}

// Measured as shipped: the gauntlet binary runs on mimalloc too.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = arg(1);
    let secs: f64 = arg(2).parse()?;
    let mode = arg(3);
    let n: f64 = arg(4).parse()?;
    let cap: usize = arg(5).parse().unwrap_or(100_000);
    let load = match mode.as_str() {
        "closed" => StageLoad::Concurrency(NonZeroUsize::new(n as usize).ok_or("connections")?),
        "open" => StageLoad::Rate { from: n, to: n },
        _ => return Err("mode is `closed` or `open`".into()),
    };
    let model = std::env::var("BENCH_MODEL").unwrap_or_else(|_| "m".into());
    let workload = match std::env::var_os("BENCH_DATASET") {
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            let dataset = Dataset::open(&path, DatasetFormat::Jsonl)?;
            Workload {
                source: PromptSource::Dataset(Arc::new(dataset)),
                ..Workload::default()
            }
        }
        None => Workload::default(),
    };
    // A fixed prompt as long as a dataset's average one, so a comparison of the two measures
    // drawing requests, not the server reading longer ones.
    let mut prompt = String::from("Generate a product description");
    if let Some(bytes) = std::env::var("BENCH_PROMPT_BYTES")
        .ok()
        .and_then(|b| b.parse::<usize>().ok())
    {
        while prompt.len() < bytes {
            prompt.push_str(" with care, and then once more");
        }
        prompt.truncate(bytes.max(1));
    }
    let max_tokens = std::env::var("BENCH_MAX_TOKENS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(16);
    let stream = std::env::var("BENCH_STREAM").is_ok_and(|v| v == "1");
    let class = |name: &str, weight| RequestClass {
        name: name.into(),
        weight: NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN),
        model: model.clone(),
        messages: vec![Message::new("user", prompt.clone())],
        max_tokens: Some(max_tokens),
        workload: workload.clone(),
        stream,
        api: Default::default(),
        api_key: None,
        headers: Vec::new(),
        primary: None,
        tier: None,
        stage_weights: None,
    };
    let scenario = Scenario {
        name: "bench".into(),
        description: None,
        seed: 1,
        target: Target::Url(url),
        upstreams: Vec::new(),
        load: LoadPlan {
            stages: vec![Stage {
                duration: Duration::from_secs_f64(secs),
                load,
            }],
            warmup: env_ms("BENCH_WARMUP_MS")
                .unwrap_or(Duration::from_secs(1).min(Duration::from_secs_f64(secs / 5.0))),
            max_in_flight: NonZeroUsize::new(cap).ok_or("max_in_flight")?,
            timeout: Duration::from_secs(10),
            interval: env_ms("BENCH_INTERVAL_MS").unwrap_or(Duration::from_secs(1)),
            arrival: Arrival::Constant,
            baseline: None,
        },
        requests: vec![
            class("everyday", 80),
            class("fallback", 15),
            class("premium", 5),
        ],
        faults: Vec::new(),
        sla: Sla::default(),
        compare_to: Vec::new(),
        capacity: Default::default(),
        tls: Default::default(),
        budget: None,
        probe: Default::default(),
        observe: Default::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    // `BENCH_LOAD_THREADS` overrides the load runtime's default (one thread per core).
    let load_threads = std::env::var("BENCH_LOAD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok());
    // `BENCH_CA_CERT=FILE` trusts a private CA for an https:// URL.
    let tls = gauntlet::tls::ClientSettings {
        ca_certs: std::env::var_os("BENCH_CA_CERT")
            .map(Into::into)
            .into_iter()
            .collect(),
        identity: None,
    };
    let options = RunOptions {
        quiet: true,
        load_threads,
        tls,
        ..RunOptions::default()
    };
    let stop_meter = Arc::new(AtomicBool::new(false));
    // Open runs only: the closed loop measures throughput, and the meter's thousand wake-ups
    // a second would take CPU from it.
    let meter = (mode == "open").then(|| hiccups(stop_meter.clone()));
    let run = rt.block_on(engine::run_scenario(&scenario, &options, rx))?;
    stop_meter.store(true, Ordering::Relaxed);
    let hiccup = meter
        .map(|m| m.join().map_err(|_| "the hiccup meter panicked"))
        .transpose()?;
    let ms = |us: u64| us as f64 / 1000.0;
    let s = &run.summary;
    if std::env::var_os("BENCH_INTERVALS").is_some() {
        for i in &s.intervals {
            if let Some(l) = &i.overall.latency_ms {
                eprint!("{:.2}:{:.1}/{} ", i.t_s, l.p99, i.overall.dropped);
            }
        }
        eprintln!();
    }
    println!(
        "{}",
        serde_json::json!({
            "rps": s.overall.rps,
            "requests": s.overall.requests,
            "successes": s.overall.successes,
            "dropped": s.overall.dropped,
            "errors": s.overall.errors,
            "latency_ms": s.overall.latency_ms,
            "schedule_lag_ms": s.generator.schedule_lag_ms,
            "completion_tokens": s.overall.tokens.completion,
            "tokens_per_s": s.overall.rps * s.overall.tokens.completion as f64
                / s.overall.requests.max(1) as f64,
            "itl_ms": s.overall.itl_ms,
            "hiccup_ms": hiccup.map(|h| serde_json::json!({
                "p99": ms(h.value_at_quantile(0.99)),
                "p999": ms(h.value_at_quantile(0.999)),
                "max": ms(h.max()),
            })),
        })
    );
    Ok(())
}
