//! Analysis: a recording in, a `Summary` out. Percentiles, availability, rates, the nines
//! spectrum and the trust flags; SLA, faults and cost stay empty until their analysis exists.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::{Counter, Histogram};

use super::breakdown::{PromptLengths, Turns, prompt_bin_range};
use super::recorder::{Cell, ClassRecord, Counts, ErrorTimes, Recorder};
use super::sample::ErrorKind;
use super::summary::{
    ClassStats, Generator, Interval, IntervalStats, PerRequestBounds, Percentiles, PromptBin,
    SCHEMA_VERSION, SlaResult, Stats, Summary, TierStats, TokenSources, Tokens, Trust, TurnStats,
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
    /// The API the class spoke (`chat`, `messages`, `responses`, `embeddings`).
    pub api: &'static str,
    pub primary: Option<String>,
    /// The gateway tier of the class's key, if known.
    pub tier: Option<String>,
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

impl RunInfo {
    /// A run of `scenario` starting now, not yet ended: its length and whether it was stopped
    /// are filled in when it has ended (or, for a judgement while it runs, as of then).
    pub fn starting(scenario: &crate::scenario::Scenario, seed: u64, target: String) -> Self {
        Self {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            seed,
            target,
            started_at: SystemTime::now(),
            ran_for: Duration::ZERO,
            interrupted: false,
            classes: scenario
                .requests
                .iter()
                .map(|c| ClassInfo {
                    name: c.name.clone(),
                    weight: c.weight.get(),
                    model: c.model.clone(),
                    stream: c.stream,
                    api: c.api.name(),
                    primary: c.primary.clone(),
                    tier: c.tier.clone(),
                })
                .collect(),
        }
    }
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

/// Percentiles of a histogram, None when it is empty.
pub(super) fn optional<T: Counter>(h: &Histogram<T>) -> Option<Percentiles> {
    (!h.is_empty()).then(|| percentiles(h))
}

fn availability(c: &Counts) -> f64 {
    share(c.successes, c.requests)
}

/// `part` of `requests`; 1.0 when there were none (nothing was failed).
fn share(part: u64, requests: u64) -> f64 {
    if requests == 0 {
        1.0
    } else {
        part as f64 / requests as f64
    }
}

/// Error kind name -> percentiles of its time to error.
fn error_percentiles(errors: &ErrorTimes) -> BTreeMap<String, Percentiles> {
    errors
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(k, h)| (k.as_str().to_string(), percentiles(h)))
        .collect()
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// One scope's `Stats`: a class's record, or several classes' merged.
fn stats(rec: &ClassRecord, seconds: f64) -> Stats {
    let ClassRecord {
        counts,
        latency,
        ttft,
        ttfot,
        tpot,
        itl,
        errors,
        tokens,
        ..
    } = rec;
    Stats {
        requests: counts.requests,
        successes: counts.successes,
        dropped: counts.dropped,
        availability: availability(counts),
        rps: per_second(counts.requests, seconds),
        good: counts.good,
        goodput: share(counts.good, counts.requests),
        goodput_rps: per_second(counts.good, seconds),
        latency_ms: percentiles(latency),
        ttft_ms: optional(ttft),
        ttfot_ms: optional(ttfot),
        tpot_ms: optional(tpot),
        itl_ms: optional(itl),
        errors: counts.error_map(),
        time_to_error_ms: error_percentiles(errors),
        served_by: counts
            .served_by
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        tokens: Tokens {
            prompt: tokens.prompt,
            completion: tokens.completion,
            cached: tokens.cached,
            reasoning: tokens.reasoning,
        },
        prompt_tokens_from: TokenSources {
            usage: tokens.prompt_from_usage,
            tokenizer: tokens.prompt_from_tokenizer,
        },
        gateway_rate_limited: counts.gateway_rate_limited,
        shed: counts.shed,
        connections: (&counts.connections).into(),
    }
}

fn turn_stats(turns: &Turns) -> Vec<TurnStats> {
    turns
        .iter()
        .map(|(turn, t)| TurnStats {
            turn,
            requests: t.requests,
            successes: t.successes,
            latency_ms: percentiles(&t.latency),
            ttft_ms: optional(&t.ttft),
        })
        .collect()
}

fn prompt_bins(lengths: &PromptLengths) -> Vec<PromptBin> {
    lengths
        .bins()
        .map(|(bin, requests, ttft)| {
            let (min_tokens, max_tokens) = prompt_bin_range(bin);
            PromptBin {
                min_tokens,
                max_tokens,
                requests,
                ttft_ms: ttft.and_then(optional),
            }
        })
        .collect()
}

/// Each tier's classes merged, in the order tiers first appear among the classes.
fn tier_stats(rec: &Recorder, info: &RunInfo, seconds: f64) -> Vec<TierStats> {
    let mut names: Vec<&str> = Vec::new();
    for t in info.classes.iter().filter_map(|c| c.tier.as_deref()) {
        if !names.contains(&t) {
            names.push(t);
        }
    }
    names
        .into_iter()
        .map(|tier| {
            let mut merged = ClassRecord::empty();
            let mut classes = Vec::new();
            let members = rec
                .classes()
                .iter()
                .zip(&info.classes)
                .filter(|(_, i)| i.tier.as_deref() == Some(tier));
            for (c, i) in members {
                classes.push(i.name.clone());
                merged.merge_measures(c);
            }
            TierStats {
                name: tier.to_string(),
                classes,
                stats: stats(&merged, seconds),
            }
        })
        .collect()
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

/// One interval's time to error per kind, merged over the cells given.
fn interval_errors(cells: &[Cell]) -> BTreeMap<String, Percentiles> {
    let mut by_kind: BTreeMap<ErrorKind, Histogram<u32>> = BTreeMap::new();
    for cell in cells {
        for (kind, h) in cell.time_to_error() {
            match by_kind.get_mut(&kind) {
                // Only a u32 count overflow can fail; keep what merged so far.
                Some(into) => {
                    let _ = into.add(h.as_ref());
                }
                None => {
                    by_kind.insert(kind, h.into_owned());
                }
            }
        }
    }
    by_kind
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(k, h)| (k.as_str().to_string(), percentiles(h)))
        .collect()
}

/// One interval's success histograms of one scope: a cell's borrowed (or unpacked), or all
/// cells merged.
#[derive(Default)]
struct IntervalHists<'a> {
    latency: Option<Cow<'a, Histogram<u32>>>,
    ttft: Option<Cow<'a, Histogram<u32>>>,
    ttfot: Option<Cow<'a, Histogram<u32>>>,
    tpot: Option<Cow<'a, Histogram<u32>>>,
}

impl<'a> IntervalHists<'a> {
    fn of(cell: &'a Cell) -> Self {
        Self {
            latency: cell.latency(),
            ttft: cell.ttft(),
            ttfot: cell.ttfot(),
            tpot: cell.tpot(),
        }
    }

    fn merged(all: &[IntervalHists<'_>]) -> IntervalHists<'static> {
        let pick = |f: for<'h> fn(&'h IntervalHists<'_>) -> Option<&'h Histogram<u32>>| {
            merged(all.iter().map(f)).map(Cow::Owned)
        };
        IntervalHists {
            latency: pick(|h| h.latency.as_deref()),
            ttft: pick(|h| h.ttft.as_deref()),
            ttfot: pick(|h| h.ttfot.as_deref()),
            tpot: pick(|h| h.tpot.as_deref()),
        }
    }
}

fn interval_stats(
    counts: &Counts,
    h: &IntervalHists<'_>,
    time_to_error_ms: BTreeMap<String, Percentiles>,
) -> IntervalStats {
    IntervalStats {
        requests: counts.requests,
        successes: counts.successes,
        dropped: counts.dropped,
        availability: (counts.requests > 0).then(|| availability(counts)),
        latency_ms: h.latency.as_deref().and_then(optional),
        ttft_ms: h.ttft.as_deref().and_then(optional),
        ttfot_ms: h.ttfot.as_deref().and_then(optional),
        tpot_ms: h.tpot.as_deref().and_then(optional),
        errors: counts.error_map(),
        time_to_error_ms,
        served_by: counts
            .served_by
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        connections: (&counts.connections).into(),
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

    let mut all = ClassRecord::empty();
    let mut classes = Vec::with_capacity(rec.classes().len());
    for (i, c) in rec.classes().iter().enumerate() {
        all.merge_measures(c);
        let meta = info.classes.get(i);
        classes.push(ClassStats {
            name: layout.classes[i].clone(),
            weight: meta.map_or(0, |m| m.weight),
            model: meta.map_or_else(String::new, |m| m.model.clone()),
            stream: meta.is_some_and(|m| m.stream),
            api: meta.map_or("chat", |m| m.api).to_string(),
            primary: meta.and_then(|m| m.primary.clone()),
            stats: stats(c, seconds),
            latency_spectrum: spectrum(&c.latency),
            turns: turn_stats(&c.turns),
            prompt_lengths: prompt_bins(&c.prompt_lengths),
        });
    }
    let overall = stats(&all, seconds);

    let tiers = tier_stats(rec, info, seconds);

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
            let per_class: Vec<IntervalHists> = cells.iter().map(IntervalHists::of).collect();
            let all = IntervalHists::merged(&per_class);
            Interval {
                t_s: (layout.warmup + layout.interval * u32::try_from(i).unwrap_or(u32::MAX))
                    .as_secs_f64(),
                overall: interval_stats(&counts, &all, interval_errors(cells)),
                classes: cells
                    .iter()
                    .zip(&layout.classes)
                    .zip(&per_class)
                    .map(|((c, name), h)| {
                        (
                            name.clone(),
                            interval_stats(&c.counts, h, interval_errors(std::slice::from_ref(c))),
                        )
                    })
                    .collect(),
            }
        })
        .collect();

    let generator = Generator {
        schedule_lag_ms: percentiles(rec.lag()),
        dropped: all.counts.dropped,
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
        per_request: PerRequestBounds::of(&layout.per_request),
        warmup_s: layout.warmup.as_secs_f64(),
        interval_s: layout.interval.as_secs_f64(),
        interrupted: info.interrupted,
        overall,
        classes,
        tiers,
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
        budget: None,
        overhead: None,
        sut: None,
        shards: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::recorder::Layout;
    use crate::metrics::sample::Sample;

    const SECONDS: u64 = 10;

    fn info() -> RunInfo {
        RunInfo {
            scenario: "mix".into(),
            description: None,
            seed: 1,
            target: "test".into(),
            started_at: SystemTime::UNIX_EPOCH,
            ran_for: Duration::from_secs(SECONDS),
            interrupted: false,
            classes: Vec::new(),
        }
    }

    fn layout() -> Layout {
        Layout::new(
            vec!["a".into(), "b".into()],
            Vec::new(),
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(SECONDS),
        )
    }

    /// A run where every third request is refused in well under a millisecond, a few time out
    /// at 2 s, and the rest are answered in 150..450 ms; interval 7 is an outage (all refused).
    fn samples() -> Vec<Sample> {
        let mut out = Vec::new();
        for i in 0..3000u64 {
            let at = Duration::from_millis(i * SECONDS * 1000 / 3000);
            let mut s = Sample::new(usize::from(i % 4 == 0), at, Duration::ZERO);
            let outage = at.as_secs() == 7;
            if outage || i % 3 == 0 {
                s.result = Err(ErrorKind::Status5xx);
                s.latency = Duration::from_micros(150 + i % 400);
                // A refused stream may still have started; that is no answer's TTFT.
                s.ttft = Some(Duration::from_micros(100));
            } else if i % 97 == 0 {
                s.result = Err(ErrorKind::Timeout);
                s.latency = Duration::from_millis(2000) + Duration::from_micros(i);
            } else {
                s.latency = Duration::from_micros(150_000 + (i * 7919) % 300_000);
                s.ttft = Some(s.latency / 3);
                s.itl = vec![Duration::from_millis(12); 3];
            }
            out.push(s);
        }
        out
    }

    /// Nearest-rank percentile of sorted values, in milliseconds.
    fn exact(sorted: &[u64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        // Three significant digits: within 0.1%, plus a microsecond of rounding.
        assert!(
            (got - want).abs() <= want * 0.001 + 0.001,
            "{what}: {got} ms from the histograms, {want} ms from the samples"
        );
    }

    /// Stopped before any time was measured (interrupted in its warmup): the rates are 0, not
    /// a request count divided by zero seconds.
    #[test]
    fn a_run_that_measured_no_time_has_rates_of_zero() {
        let mut rec = Recorder::new(layout());
        rec.record(&Sample::new(0, Duration::ZERO, Duration::ZERO));
        let stopped = RunInfo {
            ran_for: Duration::ZERO,
            interrupted: true,
            ..info()
        };
        let summary = summarize(&rec, &stopped);
        assert_eq!(summary.overall.requests, 1);
        assert_eq!(summary.overall.rps, 0.0);
        assert_eq!(summary.overall.goodput_rps, 0.0);
    }

    #[test]
    fn latency_percentiles_are_those_of_the_successes_alone() {
        let all = samples();
        let mut rec = Recorder::new(layout());
        for s in &all {
            rec.record(s);
        }
        let summary = summarize(&rec, &info());

        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap();
        let mut ok: Vec<u64> = all
            .iter()
            .filter(|s| s.result.is_ok())
            .map(|s| micros(s.latency))
            .collect();
        ok.sort_unstable();
        let lat = summary.overall.latency_ms;
        assert_eq!(lat.samples, ok.len() as u64);
        assert_eq!(summary.overall.successes, ok.len() as u64);
        for (q, got) in [(0.5, lat.p50), (0.9, lat.p90), (0.99, lat.p99)] {
            assert_close(got, exact(&ok, q), &format!("p{}", q * 100.0));
        }
        assert!(lat.p50 >= 150.0, "no refusal drags the median down");
        let ttft = summary.overall.ttft_ms.expect("streams answered");
        assert_eq!(ttft.samples, ok.len() as u64, "refusals have no TTFT");
        assert_eq!(
            summary.overall.itl_ms.expect("gaps").samples,
            3 * ok.len() as u64
        );

        // Failures are timed apart, per kind.
        let by_kind = |kind: ErrorKind| -> Vec<u64> {
            let mut v: Vec<u64> = all
                .iter()
                .filter(|s| s.result == Err(kind))
                .map(|s| micros(s.latency))
                .collect();
            v.sort_unstable();
            v
        };
        let refused = &summary.overall.time_to_error_ms["status_5xx"];
        let want = by_kind(ErrorKind::Status5xx);
        assert_eq!(refused.samples, want.len() as u64);
        assert_close(refused.p50, exact(&want, 0.5), "refusal p50");
        assert!(refused.max < 1.0, "refusals took {} ms", refused.max);
        let timeouts = &summary.overall.time_to_error_ms["timeout"];
        assert_eq!(timeouts.samples, by_kind(ErrorKind::Timeout).len() as u64);
        assert!((2000.0..2010.0).contains(&timeouts.p50), "{timeouts:?}");

        // Each class the same way, against its own successes.
        let mut b_ok: Vec<u64> = all
            .iter()
            .filter(|s| s.class == 1 && s.result.is_ok())
            .map(|s| micros(s.latency))
            .collect();
        b_ok.sort_unstable();
        let b = &summary.classes[1].stats.latency_ms;
        assert_eq!(b.samples, b_ok.len() as u64);
        assert_close(b.p99, exact(&b_ok, 0.99), "class b p99");
        let spectrum_floor = summary.classes[1].latency_spectrum[0].1;
        assert!(
            spectrum_floor >= 150.0,
            "the spectrum starts at the fastest answer"
        );

        // The outage interval answered nothing: no latency at all, not a fast one.
        let outage = &summary.intervals[7].overall;
        assert_eq!(outage.successes, 0);
        assert_eq!(outage.latency_ms, None);
        assert_eq!(outage.ttft_ms, None);
        assert_eq!(
            outage.time_to_error_ms["status_5xx"].samples,
            outage.requests
        );
        for iv in summary
            .intervals
            .iter()
            .filter(|iv| iv.overall.successes > 0)
        {
            let p = iv.overall.latency_ms.expect("answered");
            assert_eq!(p.samples, iv.overall.successes);
            assert!(p.p50 >= 149.0, "interval at {} s: {p:?}", iv.t_s);
        }
    }

    #[test]
    fn error_times_merge_exactly_across_shards() {
        let all = samples();
        let mut one = Recorder::new(layout());
        let (mut left, mut right) = (Recorder::new(layout()), Recorder::new(layout()));
        for (i, s) in all.iter().enumerate() {
            one.record(s);
            if i % 2 == 0 {
                left.record(s);
            } else {
                right.record(s);
            }
        }
        left.merge(&right).expect("same layout");
        assert_eq!(summarize(&left, &info()), summarize(&one, &info()));
    }

    /// A tier is its classes' recordings merged: counts add up, the percentiles are those of
    /// the merged histogram (not an average of the classes'), shed marks are counted, and an
    /// SLA scoped to the tier is judged on exactly that.
    #[test]
    fn a_tier_merges_its_classes_exactly_and_its_sla_is_judged_on_them() {
        let layout = Layout::new(
            vec!["chat".into(), "batch".into(), "free".into()],
            Vec::new(),
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(SECONDS),
        );
        let mut rec = Recorder::new(layout);
        for i in 0..300u64 {
            let class = (i % 3) as usize;
            let mut s = Sample::new(class, Duration::from_millis(i * 30), Duration::ZERO);
            s.latency = Duration::from_millis([10, 30, 5][class]);
            if class == 2 && i % 2 == 0 {
                s.result = Err(ErrorKind::RateLimited);
                s.gateway_shed = true;
            }
            rec.record(&s);
        }
        let class = |name: &str, tier: &str| ClassInfo {
            name: name.into(),
            weight: 1,
            model: "m".into(),
            stream: false,
            api: "chat",
            primary: None,
            tier: Some(tier.into()),
        };
        let mut info = info();
        info.classes = vec![
            class("chat", "pro"),
            class("batch", "pro"),
            class("free", "standard"),
        ];
        let s = summarize(&rec, &info);
        let names: Vec<&str> = s.tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["pro", "standard"]);
        let pro = &s.tiers[0];
        assert_eq!(pro.classes, ["chat", "batch"]);
        assert_eq!((pro.stats.requests, pro.stats.successes), (200, 200));
        // Half the samples at 10 ms, half at 30 ms: the merged p50 is 10 ms, p99 30 ms.
        assert!((pro.stats.latency_ms.p50 - 10.0).abs() < 0.1, "{pro:?}");
        assert!((pro.stats.latency_ms.p99 - 30.0).abs() < 0.1, "{pro:?}");
        let free = &s.tiers[1];
        assert_eq!((free.stats.requests, free.stats.shed), (100, 50));
        assert!((free.stats.availability - 0.5).abs() < 1e-9);
        assert_eq!(s.overall.shed, 50);

        use crate::scenario::{Objective, Scope, Sla, SlaTarget};
        let target = |tier: &str, objective| SlaTarget {
            scope: Scope::Tier(tier.into()),
            objective,
        };
        let sla = Sla {
            targets: vec![
                target("pro", Objective::P99Latency(Duration::from_millis(20))),
                target("standard", Objective::Availability(0.9)),
            ],
            ..Default::default()
        };
        let result = crate::metrics::sla::evaluate(&sla, &s);
        let got: Vec<(String, String, f64)> = result
            .checks
            .iter()
            .map(|c| {
                (
                    c.scope.clone(),
                    format!("{:?}", c.status),
                    c.measured.unwrap_or(f64::NAN),
                )
            })
            .collect();
        assert_eq!(got[0].0, "tier:pro");
        assert_eq!(got[0].1, "Fail", "{got:?}");
        assert!((got[0].2 - 30.0).abs() < 0.1, "{got:?}");
        assert_eq!(
            (got[1].0.as_str(), got[1].1.as_str()),
            ("tier:standard", "Fail")
        );
        assert!((got[1].2 - 0.5).abs() < 1e-9, "{got:?}");
    }

    /// A run is trusted unless the generator dropped a request or its schedule lag p99 went
    /// over 10 ms; exactly 10 ms is still on time.
    #[test]
    fn a_run_is_distrusted_for_a_dropped_request_or_a_late_schedule() {
        let judged = |dropped, p99| {
            let g = Generator {
                schedule_lag_ms: Percentiles {
                    samples: 100,
                    p99,
                    ..Percentiles::default()
                },
                dropped,
                abandoned: 0,
            };
            let t = trust(&g);
            assert_eq!(t.trustworthy, t.reasons.is_empty(), "{t:?}");
            t.reasons
        };
        assert!(judged(0, 9.9).is_empty());
        assert!(
            judged(0, 10.0).is_empty(),
            "10 ms is the limit, not over it"
        );
        let late = judged(0, 10.1);
        assert_eq!(late.len(), 1);
        assert!(
            late[0].starts_with("schedule lag p99 10.1 ms exceeds 10 ms"),
            "{late:?}"
        );
        let dropped = judged(3, 1.0);
        assert_eq!(dropped.len(), 1);
        assert!(
            dropped[0].starts_with("3 requests were dropped"),
            "{dropped:?}"
        );
    }

    /// A second without requests has no availability, neither 100% nor 0%: uptime and the
    /// time series leave it out instead of counting it as met.
    #[test]
    fn a_second_without_requests_has_no_availability() {
        let mut rec = Recorder::new(layout());
        rec.record(&Sample::new(0, Duration::from_millis(500), Duration::ZERO));
        let mut failed = Sample::new(0, Duration::from_millis(2_500), Duration::ZERO);
        failed.result = Err(ErrorKind::Status5xx);
        rec.record(&failed);
        let summary = summarize(&rec, &info());
        let overall: Vec<_> = summary.intervals[..3]
            .iter()
            .map(|iv| iv.overall.availability)
            .collect();
        assert_eq!(overall, [Some(1.0), None, Some(0.0)]);
        let class = |i: usize| {
            summary.intervals[i]
                .classes
                .get("a")
                .map(|c| c.availability)
        };
        assert_eq!(class(0), Some(Some(1.0)));
        assert!(matches!(class(1), None | Some(None)), "{:?}", class(1));
    }
}
