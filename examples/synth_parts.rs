//! Writes the parts of a sharded run that never happened, for `benches/merge.sh`: N shards of
//! one scenario (every class of it), each a run of S seconds in 1 s intervals at its share of a
//! total arrival rate, with realistic contents (log-normal latencies per class, TTFT, TPOT,
//! token gaps of streams, a few errors of several kinds, several upstreams serving). The parts
//! carry the scenario's real fingerprint, so `gauntlet merge` accepts them and judges the
//! merged run against the scenario's SLA.
//!
//!   cargo run --release --example synth_parts -- SCENARIO OUT_DIR SHARDS SECONDS TOTAL_RATE

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use gauntlet::cluster::{Part, PartHeader, ShardEvidence, ShardId, fingerprint};
use gauntlet::engine::{RunOptions, plan_for};
use gauntlet::metrics::{ErrorKind, Layout, Recorder, Sample, ServedBy, ShardStats};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [scenario_path, out, shards, seconds, rate] = args.as_slice() else {
        anyhow::bail!("usage: synth_parts SCENARIO OUT_DIR SHARDS SECONDS TOTAL_RATE");
    };
    let scenario_path = PathBuf::from(scenario_path);
    let out = PathBuf::from(out);
    let shards: u32 = shards.parse()?;
    let seconds: u64 = seconds.parse()?;
    let rate: f64 = rate.parse()?;
    let scenario = gauntlet::scenario::load(&scenario_path)?;
    let plan = plan_for(&scenario, &RunOptions::default())?;
    let classes: Vec<String> = scenario.requests.iter().map(|c| c.name.clone()).collect();
    let upstreams: Vec<String> = scenario.upstreams.iter().map(|u| u.name.clone()).collect();
    let layout = Layout::new(
        classes.clone(),
        upstreams.clone(),
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(seconds),
    );
    let weights: Vec<f64> = scenario
        .requests
        .iter()
        .map(|c| f64::from(c.weight.get()))
        .collect();
    let total_weight: f64 = weights.iter().sum();
    std::fs::create_dir_all(&out)?;
    let per_shard = rate / f64::from(shards);
    for index in 0..shards {
        let mut rng = SmallRng::seed_from_u64(u64::from(index) * 7919 + 1);
        let mut rec = Recorder::new(layout.clone());
        let mut carry = 0.0;
        for t in 0..seconds {
            carry += per_shard;
            let n = carry.floor() as u64;
            carry -= n as f64;
            for k in 0..n {
                let at = Duration::from_secs(t) + Duration::from_secs_f64(k as f64 / n as f64);
                rec.record(&sample(
                    &mut rng,
                    &weights,
                    total_weight,
                    at,
                    upstreams.len(),
                ));
            }
        }
        let header = PartHeader {
            scenario: scenario.name.clone(),
            scenario_path: std::path::absolute(&scenario_path).ok(),
            fingerprint: gauntlet::cluster::file_fingerprint(&scenario_path)?,
            plan_fingerprint: fingerprint(&plan),
            seed: scenario.seed,
            shard: ShardId {
                index,
                count: NonZeroU32::new(shards).ok_or_else(|| anyhow::anyhow!("0 shards"))?,
            },
            gauntlet_version: env!("CARGO_PKG_VERSION").to_string(),
            interval: Duration::from_secs(1),
            started_at: SystemTime::now(),
            stats: ShardStats {
                index,
                requests: rec.classes().iter().map(|c| c.counts.requests).sum(),
                rps: per_shard,
                ..ShardStats::default()
            },
        };
        let part = Part {
            header,
            evidence: ShardEvidence {
                target: "synthetic".into(),
                ran_for: Duration::from_secs(seconds),
                ..ShardEvidence::default()
            },
            recording: rec,
        };
        let bytes = part.encode();
        let dir = out.join(format!("shard-{index}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("part.gpart"), &bytes)?;
        eprintln!("shard {index}: {} bytes", bytes.len());
    }
    Ok(())
}

/// One request as a loaded gateway answers it: log-normal latency around a per-class median,
/// streams with TTFT, TPOT and token gaps, 0.5% errors of several kinds.
fn sample(
    rng: &mut SmallRng,
    weights: &[f64],
    total: f64,
    at: Duration,
    upstreams: usize,
) -> Sample {
    let mut x = rng.random_range(0.0..total);
    let class = weights
        .iter()
        .position(|w| {
            x -= w;
            x < 0.0
        })
        .unwrap_or(0);
    let median_ms = [350.0, 900.0, 2_400.0][class % 3];
    let latency = LogNormal::new(f64::ln(median_ms), 0.35)
        .map(|d| d.sample(rng))
        .unwrap_or(median_ms);
    let mut s = Sample::new(class, at, Duration::from_micros(rng.random_range(20..900)));
    s.latency = Duration::from_secs_f64(latency / 1000.0);
    s.prompt_tokens = rng.random_range(50..4_000);
    s.completion_tokens = rng.random_range(10..400);
    if rng.random_bool(0.005) {
        s.result = Err([
            ErrorKind::Status5xx,
            ErrorKind::Timeout,
            ErrorKind::RateLimited,
        ][rng.random_range(0..3)]);
        return s;
    }
    s.served_by = Some(ServedBy::Known(rng.random_range(0..upstreams.max(1)) as u16));
    let ttft = latency * rng.random_range(0.15..0.35);
    s.ttft = Some(Duration::from_secs_f64(ttft / 1000.0));
    s.ttfot = s.ttft;
    s.tpot = Some(Duration::from_micros(rng.random_range(8_000..40_000)));
    s.itl = (0..8)
        .map(|_| Duration::from_micros(rng.random_range(5_000..60_000)))
        .collect();
    s
}
