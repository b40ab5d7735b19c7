//! Analysis: a recording in, a `Summary` out. Percentiles, availability, rates, the nines
//! spectrum and the trust flags; SLA, faults and cost stay empty until their analysis exists.

use std::time::{Duration, SystemTime};

use hdrhistogram::{Counter, Histogram};

use super::recorder::{Cell, Counts, Recorder, new_cumulative};
use super::summary::{
    ClassStats, Generator, Interval, IntervalStats, Percentiles, SCHEMA_VERSION, SlaResult, Stats,
    Summary, Tokens, Trust,
};

/// Schedule lag beyond which the generator is considered to have fallen behind.
pub const MAX_TRUSTED_LAG: Duration = Duration::from_millis(10);

/// Percentiles (0..100) of the "nines" chart.
const SPECTRUM: [f64; 14] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

/// What the summary says about a class beyond its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassInfo {
    pub name: String,
    pub weight: u32,
    pub model: String,
    pub stream: bool,
    pub primary: Option<String>,
}

/// The facts about a run that the recording does not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub scenario: String,
    pub description: Option<String>,
    pub seed: u64,
    pub target: String,
    pub started_at: SystemTime,
    /// How long the plan actually ran (shorter than planned when interrupted).
    pub ran_for: Duration,
    pub interrupted: bool,
    /// In the same order as the recorder's classes.
    pub classes: Vec<ClassInfo>,
}

/// Percentiles of a microsecond histogram, in milliseconds.
pub fn percentiles<T: Counter>(h: &Histogram<T>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        samples: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

fn optional<T: Counter>(h: &Histogram<T>) -> Option<Percentiles> {
    (!h.is_empty()).then(|| percentiles(h))
}

fn availability(c: &Counts) -> f64 {
    if c.requests == 0 {
        1.0
    } else {
        c.successes as f64 / c.requests as f64
    }
}

fn stats(
    counts: &Counts,
    latency: &Histogram<u64>,
    ttft: &Histogram<u64>,
    itl: &Histogram<u64>,
    tokens: Tokens,
    seconds: f64,
) -> Stats {
    Stats {
        requests: counts.requests,
        successes: counts.successes,
        dropped: counts.dropped,
        availability: availability(counts),
        rps: if seconds > 0.0 {
            counts.requests as f64 / seconds
        } else {
            0.0
        },
        latency_ms: percentiles(latency),
        ttft_ms: optional(ttft),
        itl_ms: optional(itl),
        errors: counts.error_map(),
        served_by: counts
            .served_by
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        tokens,
        gateway_rate_limited: counts.gateway_rate_limited,
    }
}

fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    SPECTRUM
        .iter()
        .map(|&p| (p, h.value_at_quantile(p / 100.0) as f64 / 1000.0))
        .collect()
}

fn interval_stats(
    counts: &Counts,
    latency: Option<&Histogram<u32>>,
    ttft: Option<&Histogram<u32>>,
) -> IntervalStats {
    IntervalStats {
        requests: counts.requests,
        successes: counts.successes,
        dropped: counts.dropped,
        availability: (counts.requests > 0).then(|| availability(counts)),
        latency_ms: latency.and_then(optional),
        ttft_ms: ttft.and_then(optional),
        errors: counts.error_map(),
        served_by: counts
            .served_by
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    }
}

fn merged<'a>(hs: impl Iterator<Item = Option<&'a Histogram<u32>>>) -> Option<Histogram<u32>> {
    let mut out: Option<Histogram<u32>> = None;
    for h in hs.flatten() {
        match &mut out {
            None => out = Some(h.clone()),
            Some(o) => {
                if o.add(h).is_err() {
                    // Only a u32 count overflow can fail; keep what merged so far.
                    continue;
                }
            }
        }
    }
    out
}

/// Turns a recording into the run's `Summary`.
pub fn summarize(rec: &Recorder, info: &RunInfo) -> Summary {
    let layout = rec.layout();
    let measured = info.ran_for.saturating_sub(layout.warmup);
    let seconds = measured.as_secs_f64();

    let mut all = Counts::default();
    let mut latency = new_cumulative();
    let mut ttft = new_cumulative();
    let mut itl = new_cumulative();
    let mut tokens = Tokens::default();
    let mut classes = Vec::with_capacity(rec.classes().len());
    for (i, c) in rec.classes().iter().enumerate() {
        all.merge(&c.counts);
        let _ = latency.add(&c.latency);
        let _ = ttft.add(&c.ttft);
        let _ = itl.add(&c.itl);
        let class_tokens = Tokens {
            prompt: c.prompt_tokens,
            completion: c.completion_tokens,
        };
        tokens.prompt += class_tokens.prompt;
        tokens.completion += class_tokens.completion;
        let meta = info.classes.get(i);
        classes.push(ClassStats {
            name: layout.classes[i].clone(),
            weight: meta.map_or(0, |m| m.weight),
            model: meta.map_or_else(String::new, |m| m.model.clone()),
            stream: meta.is_some_and(|m| m.stream),
            primary: meta.and_then(|m| m.primary.clone()),
            stats: stats(
                &c.counts,
                &c.latency,
                &c.ttft,
                &c.itl,
                class_tokens,
                seconds,
            ),
            latency_spectrum: spectrum(&c.latency),
        });
    }
    let overall = stats(&all, &latency, &ttft, &itl, tokens, seconds);

    let ran_intervals = if info.interrupted {
        usize::try_from(measured.as_nanos().div_ceil(layout.interval.as_nanos()))
            .unwrap_or(usize::MAX)
            .min(layout.intervals)
    } else {
        layout.intervals
    };
    let intervals = (0..ran_intervals)
        .map(|i| {
            let cells = rec.interval(i);
            let mut counts = Counts::default();
            for cell in cells {
                counts.merge(&cell.counts);
            }
            let lats: Vec<_> = cells.iter().map(Cell::latency).collect();
            let ttfts: Vec<_> = cells.iter().map(Cell::ttft).collect();
            let lat = merged(lats.iter().map(Option::as_deref));
            let tt = merged(ttfts.iter().map(Option::as_deref));
            Interval {
                t_s: (layout.warmup + layout.interval * u32::try_from(i).unwrap_or(u32::MAX))
                    .as_secs_f64(),
                overall: interval_stats(&counts, lat.as_ref(), tt.as_ref()),
                classes: cells
                    .iter()
                    .zip(&layout.classes)
                    .zip(lats.iter().zip(&ttfts))
                    .map(|((c, name), (lat, ttft))| {
                        (
                            name.clone(),
                            interval_stats(&c.counts, lat.as_deref(), ttft.as_deref()),
                        )
                    })
                    .collect(),
            }
        })
        .collect();

    let generator = Generator {
        schedule_lag_ms: percentiles(rec.lag()),
        dropped: all.dropped,
        abandoned: rec.abandoned(),
    };
    let trust = trust(&generator);

    Summary {
        schema_version: SCHEMA_VERSION,
        gauntlet_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: info.scenario.clone(),
        description: info.description.clone(),
        seed: info.seed,
        target: info.target.clone(),
        started_at: humantime::format_rfc3339_millis(info.started_at).to_string(),
        duration_s: seconds,
        warmup_s: layout.warmup.as_secs_f64(),
        interval_s: layout.interval.as_secs_f64(),
        interrupted: info.interrupted,
        overall,
        classes,
        intervals,
        generator,
        faults: Vec::new(),
        upstreams: Vec::new(),
        retry_amplification: None,
        cost: None,
        // No promises checked yet: nothing failed. The SLA analysis replaces this.
        sla: SlaResult {
            passed: true,
            ..SlaResult::default()
        },
        trust,
    }
}

fn trust(g: &Generator) -> Trust {
    let mut reasons = Vec::new();
    if g.dropped > 0 {
        reasons.push(format!(
            "{} requests were dropped at the in-flight cap: the generator could not keep the schedule",
            g.dropped
        ));
    }
    let max_lag_ms = MAX_TRUSTED_LAG.as_secs_f64() * 1000.0;
    if g.schedule_lag_ms.p99 > max_lag_ms {
        reasons.push(format!(
            "schedule lag p99 {:.1} ms exceeds {max_lag_ms:.0} ms: requests left late",
            g.schedule_lag_ms.p99
        ));
    }
    Trust {
        trustworthy: reasons.is_empty(),
        reasons,
    }
}
