//! A realistic quickstart `Summary` built in code: 20 one-second intervals at 200 rps, the
//! primary (deepseek) out from 8 s to 14 s while qwen takes its traffic, SLA checks that pass,
//! fail and stay inconclusive, and cost. `tests/data/summary-quickstart.json` is this, written.

use std::collections::BTreeMap;

use gauntlet::metrics::*;

pub const FAULT_START: f64 = 8.0;
pub const FAULT_END: f64 = 14.0;
pub const INTERVALS: usize = 20;
pub const CLASSES: [&str; 3] = ["everyday", "fallback-tier", "premium"];

/// Deterministic jitter in [-1, 1], so the fixture looks measured without a random source.
fn wobble(i: usize, salt: usize) -> f64 {
    let x = ((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0;
    x * 2.0 - 1.0
}

fn pct(samples: u64, p50: f64, spread: f64) -> Percentiles {
    Percentiles {
        samples,
        p50,
        p90: p50 * (1.0 + 0.6 * spread),
        p99: p50 * (1.0 + 1.5 * spread),
        p999: p50 * (1.0 + 2.2 * spread),
        max: p50 * (1.0 + 2.8 * spread),
        mean: p50 * (1.0 + 0.2 * spread),
    }
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), *n))
        .collect()
}

struct ClassPlan {
    name: &'static str,
    model: &'static str,
    weight: u32,
    stream: bool,
    primary: &'static str,
    fallback: &'static str,
    base_ms: f64,
}

const PLANS: [ClassPlan; 3] = [
    ClassPlan {
        name: "everyday",
        model: "deepseek-v4-flash",
        weight: 80,
        stream: true,
        primary: "deepseek",
        fallback: "qwen",
        base_ms: 240.0,
    },
    ClassPlan {
        name: "fallback-tier",
        model: "qwen3-32b",
        weight: 15,
        stream: false,
        primary: "qwen",
        fallback: "deepseek",
        base_ms: 310.0,
    },
    ClassPlan {
        name: "premium",
        model: "deepseek-r1",
        weight: 5,
        stream: true,
        primary: "premium",
        fallback: "qwen",
        base_ms: 620.0,
    },
];

fn class_interval(plan: &ClassPlan, i: usize) -> IntervalStats {
    let t = i as f64;
    let requests = (200.0 * f64::from(plan.weight) / 100.0
        * (1.0 + 0.05 * wobble(i, plan.weight as usize)))
    .round() as u64;
    let in_fault = plan.primary == "deepseek" && (FAULT_START..FAULT_END).contains(&t);
    let first_second = plan.primary == "deepseek" && t == FAULT_START;
    let failed = if first_second {
        requests * 3 / 10
    } else if in_fault {
        1
    } else {
        0
    };
    let successes = requests - failed;
    let latency = if in_fault {
        plan.base_ms * 1.9
    } else {
        plan.base_ms
    } * (1.0 + 0.06 * wobble(i, 3));
    let spread = if first_second {
        3.5
    } else if in_fault {
        1.2
    } else {
        0.7
    };
    let served = if in_fault {
        plan.fallback
    } else {
        plan.primary
    };
    IntervalStats {
        requests,
        successes,
        dropped: 0,
        availability: Some(successes as f64 / requests as f64),
        latency_ms: Some(pct(successes, latency, spread)),
        ttft_ms: plan.stream.then(|| pct(successes, latency * 0.35, spread)),
        ttfot_ms: None,
        tpot_ms: None,
        errors: map(&[
            ("status_5xx", failed * 2 / 3),
            ("connect", failed - failed * 2 / 3),
        ]),
        // Refusals are fast: the gateway's 503 in about a millisecond, a refused connect faster.
        time_to_error_ms: [
            ("status_5xx", failed * 2 / 3, 1.4),
            ("connect", failed - failed * 2 / 3, 0.4),
        ]
        .iter()
        .filter(|(_, n, _)| *n > 0)
        .map(|(k, n, ms)| (k.to_string(), pct(*n, *ms, 0.8)))
        .collect(),
        served_by: map(&[(served, successes)]),
        connections: Default::default(),
    }
}

fn merge(into: &mut IntervalStats, add: &IntervalStats) {
    into.requests += add.requests;
    into.successes += add.successes;
    into.dropped += add.dropped;
    for (k, v) in &add.errors {
        *into.errors.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &add.served_by {
        *into.served_by.entry(k.clone()).or_default() += v;
    }
    // Percentiles do not add; weight by samples, which is close enough for a fixture.
    let merged = |a: Option<Percentiles>, b: Option<Percentiles>| match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => {
            let (wa, wb) = (a.samples as f64, b.samples as f64);
            let mix = |x: f64, y: f64| (x * wa + y * wb) / (wa + wb);
            Some(Percentiles {
                samples: a.samples + b.samples,
                p50: mix(a.p50, b.p50),
                p90: mix(a.p90, b.p90),
                p99: a.p99.max(b.p99),
                p999: a.p999.max(b.p999),
                max: a.max.max(b.max),
                mean: mix(a.mean, b.mean),
            })
        }
    };
    into.latency_ms = merged(into.latency_ms, add.latency_ms);
    for (k, p) in &add.time_to_error_ms {
        let sum = merged(into.time_to_error_ms.get(k).copied(), Some(*p));
        into.time_to_error_ms.extend(sum.map(|p| (k.clone(), p)));
    }
    into.ttft_ms = merged(into.ttft_ms, add.ttft_ms);
    into.availability = Some(into.successes as f64 / into.requests.max(1) as f64);
}

fn totals(ivs: &[&IntervalStats], duration: f64) -> Stats {
    let mut sum = IntervalStats::default();
    for iv in ivs {
        merge(&mut sum, iv);
    }
    let lat = sum.latency_ms.unwrap_or_default();
    Stats {
        requests: sum.requests,
        successes: sum.successes,
        dropped: 0,
        availability: sum.successes as f64 / sum.requests.max(1) as f64,
        rps: sum.requests as f64 / duration,
        good: sum.successes,
        goodput: sum.successes as f64 / sum.requests.max(1) as f64,
        goodput_rps: sum.successes as f64 / duration,
        latency_ms: lat,
        ttft_ms: sum.ttft_ms,
        ttfot_ms: None,
        tpot_ms: None,
        itl_ms: sum.ttft_ms.map(|t| pct(t.samples * 40, t.p50 / 9.0, 0.9)),
        errors: sum.errors,
        time_to_error_ms: sum.time_to_error_ms,
        served_by: sum.served_by.clone(),
        tokens: Tokens {
            prompt: sum.requests * 12,
            completion: sum.successes * 64,
            ..Tokens::default()
        },
        prompt_tokens_from: Default::default(),
        gateway_rate_limited: 0,
        shed: 0,
        connections: Default::default(),
    }
}

fn spectrum(p: &Percentiles) -> Vec<(f64, f64)> {
    let mut out = vec![
        (0.0, p.p50 * 0.45),
        (25.0, p.p50 * 0.8),
        (50.0, p.p50),
        (75.0, (p.p50 + p.p90) / 2.0),
        (90.0, p.p90),
        (95.0, (p.p90 + p.p99) / 2.0),
        (99.0, p.p99),
        (99.9, p.p999),
    ];
    out.push((99.99, p.max));
    out
}

/// Judged like the real checker: ratios are lower bounds, everything else upper bounds.
fn check(
    name: &str,
    scope: &str,
    target: f64,
    measured: Option<f64>,
    unit: &str,
    samples: u64,
    note: Option<&str>,
) -> SlaCheck {
    let status = match measured {
        None => CheckStatus::Inconclusive,
        Some(m) if (unit == "ratio" && m >= target) || (unit != "ratio" && m <= target) => {
            CheckStatus::Pass
        }
        Some(_) => CheckStatus::Fail,
    };
    SlaCheck {
        name: SlaKey::from_key(name).unwrap_or_else(|| panic!("no [sla] key `{name}`")),
        scope: scope.into(),
        target,
        measured,
        unit: unit.into(),
        samples,
        status,
        note: note.map(String::from),
        misses: None,
    }
}

pub fn sla(checks: Vec<SlaCheck>) -> SlaResult {
    let any = |st| checks.iter().any(|c| c.status == st);
    let verdict = if any(CheckStatus::Fail) {
        CheckStatus::Fail
    } else if any(CheckStatus::Inconclusive) {
        CheckStatus::Inconclusive
    } else {
        CheckStatus::Pass
    };
    SlaResult {
        passed: verdict == CheckStatus::Pass,
        verdict,
        checks,
    }
}

pub fn quickstart() -> Summary {
    let duration = INTERVALS as f64;
    let mut intervals = Vec::new();
    for i in 0..INTERVALS {
        let classes: BTreeMap<String, IntervalStats> = PLANS
            .iter()
            .map(|p| (p.name.to_string(), class_interval(p, i)))
            .collect();
        let mut overall = IntervalStats::default();
        for st in classes.values() {
            merge(&mut overall, st);
        }
        intervals.push(Interval {
            t_s: i as f64,
            overall,
            classes,
        });
    }
    let classes: Vec<ClassStats> = PLANS
        .iter()
        .map(|p| {
            let ivs: Vec<&IntervalStats> = intervals
                .iter()
                .filter_map(|iv| iv.classes.get(p.name))
                .collect();
            let mut stats = totals(&ivs, duration);
            if !p.stream {
                stats.ttft_ms = None;
                stats.itl_ms = None;
            }
            ClassStats {
                name: p.name.into(),
                weight: p.weight,
                model: p.model.into(),
                stream: p.stream,
                api: "chat".into(),
                primary: Some(p.primary.into()),
                latency_spectrum: spectrum(&stats.latency_ms),
                stats,
                turns: Vec::new(),
                prompt_lengths: Vec::new(),
            }
        })
        .collect();
    let all: Vec<&IntervalStats> = intervals.iter().map(|iv| &iv.overall).collect();
    let overall = totals(&all, duration);
    let everyday_requests = classes[0].stats.requests;
    let affected: u64 = intervals
        .iter()
        .filter(|iv| (FAULT_START..FAULT_END).contains(&iv.t_s))
        .map(|iv| iv.classes["everyday"].requests)
        .sum();
    let affected_ok: u64 = intervals
        .iter()
        .filter(|iv| (FAULT_START..FAULT_END).contains(&iv.t_s))
        .map(|iv| iv.classes["everyday"].successes)
        .sum();
    let upstream = |name: &str, price_in: f64, price_out: f64| {
        let served = overall.served_by.get(name).copied().unwrap_or(0);
        let tokens = Tokens {
            prompt: served * 12,
            completion: served * 64,
            ..Tokens::default()
        };
        let cost = (tokens.prompt as f64 * price_in + tokens.completion as f64 * price_out) / 1e6;
        UpstreamStats {
            name: name.into(),
            received: Some(served + if name == "deepseek" { 143 } else { 0 }),
            served,
            tokens,
            price_in_per_m: Some(price_in),
            price_cached_in_per_m: None,
            price_out_per_m: Some(price_out),
            cost_usd: Some(cost),
        }
    };
    let upstreams = vec![
        upstream("deepseek", 0.25, 0.25),
        upstream("qwen", 0.28, 0.28),
        upstream("premium", 2.5, 2.5),
    ];
    let total_usd: f64 = upstreams.iter().filter_map(|u| u.cost_usd).sum();
    let all_tokens = (overall.tokens.prompt + overall.tokens.completion) as f64;
    let blended = total_usd / all_tokens * 1e6;
    Summary {
        schema_version: SCHEMA_VERSION,
        gauntlet_version: "0.1.0".into(),
        scenario: "quickstart".into(),
        per_request: Default::default(),
        description: Some("the 80/15/5 model router rides out a 6 s primary outage".into()),
        seed: 7,
        target: "embedded gateway".into(),
        started_at: "2025-06-01T12:00:00Z".into(),
        duration_s: duration,
        warmup_s: 2.0,
        interval_s: 1.0,
        interrupted: false,
        overall: overall.clone(),
        classes,
        tiers: Vec::new(),
        intervals,
        generator: Generator {
            schedule_lag_ms: pct(overall.requests, 0.18, 2.0),
            dropped: 0,
            abandoned: 0,
        },
        faults: vec![FaultWindow {
            upstream: "deepseek".into(),
            kind: "outage".into(),
            start_s: FAULT_START,
            end_s: FAULT_END,
            applied_at_s: Some(FAULT_START + 0.003),
            lifted_at_s: Some(FAULT_END + 0.002),
            not_applied: None,
            affected_classes: vec!["everyday".into()],
            affected_requests: affected,
            affected_successes: affected_ok,
            failover_success: Some(affected_ok as f64 / affected as f64),
            time_to_failover_s: Some(1.0),
            time_to_recover_s: Some(0.0),
            failed_over_latency_ms: Some(pct(affected_ok, 456.0, 1.2)),
            normal_latency_ms: Some(pct(everyday_requests - affected, 240.0, 0.7)),
        }],
        upstreams,
        retry_amplification: Some(1.04),
        cost: Some(Cost {
            total_usd,
            per_million_requests_usd: total_usd / overall.requests as f64 * 1e6,
            blended_per_million_tokens_usd: blended,
            failover_extra_usd: 0.00012,
            monthly: [1_000_000_000u64, 10_000_000_000, 100_000_000_000]
                .iter()
                .map(|t| MonthlyCost {
                    tokens_per_month: *t,
                    usd: *t as f64 * blended / 1e6,
                })
                .collect(),
            alternatives: Vec::new(),
        }),
        sla: sla(vec![
            check(
                "p99_latency",
                "overall",
                1000.0,
                Some(overall.latency_ms.p99),
                "ms",
                overall.latency_ms.samples,
                Some("the outage's first second pushed p99 above 1 s"),
            ),
            check(
                "ttft_p99",
                "overall",
                1200.0,
                overall.ttft_ms.map(|t| t.p99),
                "ms",
                overall.ttft_ms.map_or(0, |t| t.samples),
                None,
            ),
            check(
                "availability",
                "overall",
                0.999,
                Some(overall.availability),
                "ratio",
                overall.requests,
                None,
            ),
            check(
                "failover_success",
                "overall",
                0.99,
                Some(affected_ok as f64 / affected as f64),
                "ratio",
                affected,
                None,
            ),
            check("max_failover_time", "overall", 1.0, Some(1.0), "s", 1, None),
            check(
                "p99_latency",
                "class:premium",
                800.0,
                None,
                "ms",
                12,
                Some("12 samples cannot support a p99 (need at least 100)"),
            ),
        ]),
        trust: Trust {
            trustworthy: true,
            reasons: vec![],
        },
        budget: None,
        overhead: None,
        sut: None,
        shards: Vec::new(),
    }
}
