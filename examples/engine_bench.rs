//! Drives the engine at a URL for the throughput benchmark, without a scenario file:
//! engine_bench URL SECONDS (closed CONNECTIONS | open RATE) [MAX_IN_FLIGHT]
//! Prints one JSON line: rps, successes, errors, latency and schedule-lag percentiles.
//! The model asked for is `$BENCH_MODEL` (default `m`).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use gauntlet::config::Source;
use gauntlet::engine::{self, RunOptions};
use gauntlet::openai::Message;
use gauntlet::scenario::{
    Arrival, LoadPlan, RequestClass, Scenario, Sla, Stage, StageLoad, Target,
};

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_default()
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
    let class = |name: &str, weight| RequestClass {
        name: name.into(),
        weight: NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN),
        model: model.clone(),
        messages: vec![Message::new("user", "Generate a product description")],
        max_tokens: Some(16),
        stream: false,
        api_key: None,
        headers: Vec::new(),
        primary: None,
    };
    let scenario = Scenario {
        name: "bench".into(),
        description: None,
        seed: 1,
        source: Source::new("bench", ""),
        target: Target::Url(url),
        upstreams: Vec::new(),
        load: LoadPlan {
            stages: vec![Stage {
                duration: Duration::from_secs_f64(secs),
                load,
            }],
            warmup: Duration::from_secs(1).min(Duration::from_secs_f64(secs / 5.0)),
            max_in_flight: NonZeroUsize::new(cap).ok_or("max_in_flight")?,
            timeout: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            arrival: Arrival::Constant,
        },
        requests: vec![
            class("everyday", 80),
            class("fallback", 15),
            class("premium", 5),
        ],
        faults: Vec::new(),
        sla: Sla::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (_tx, rx) = tokio::sync::watch::channel(false);
    // `BENCH_LOAD_THREADS` overrides the load runtime's default (one thread per core).
    let load_threads = std::env::var("BENCH_LOAD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok());
    let options = RunOptions {
        quiet: true,
        load_threads,
        ..RunOptions::default()
    };
    let run = rt.block_on(engine::run_scenario(&scenario, &options, rx))?;
    let s = &run.summary;
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
        })
    );
    Ok(())
}
