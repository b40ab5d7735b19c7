//! SLA verdicts: each promise in the scenario checked against the summary, with the number
//! of samples it rests on. A check the samples cannot support is `inconclusive`, not passed.

use std::time::Duration;

use crate::scenario::{Objective, Scope, Sla};

use super::failover::overlapping;
use super::summary::{
    CheckStatus, FaultWindow, Misses, Percentiles, SlaCheck, SlaResult, Stats, Summary,
};

/// A percentile claim needs this many samples beyond it: p99 needs 1,000 requests, p99.9
/// 10,000. Fewer, and one slow request decides the verdict.
const TAIL_SAMPLES: f64 = 10.0;

/// Availability is used as the uptime bar when the scope states no availability target.
const DEFAULT_AVAILABILITY: f64 = 0.999;

pub fn evaluate(sla: &Sla, summary: &Summary) -> SlaResult {
    let checks: Vec<SlaCheck> = sla
        .targets
        .iter()
        .map(|t| check(sla, &t.scope, t.objective, summary))
        .collect();
    let verdict = if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        CheckStatus::Fail
    } else if checks.iter().any(|c| c.status == CheckStatus::Inconclusive) {
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

fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Overall => "overall".into(),
        Scope::Class(c) => format!("class:{c}"),
        Scope::Tier(t) => format!("tier:{t}"),
    }
}

fn stats_for<'a>(scope: &Scope, summary: &'a Summary) -> Option<&'a Stats> {
    match scope {
        Scope::Overall => Some(&summary.overall),
        Scope::Class(c) => summary
            .classes
            .iter()
            .find(|k| &k.name == c)
            .map(|k| &k.stats),
        Scope::Tier(t) => summary
            .tiers
            .iter()
            .find(|k| &k.name == t)
            .map(|k| &k.stats),
    }
}

/// The availability the whole run is held to: the overall target, else 99.9%.
pub fn availability_target(sla: &Sla) -> f64 {
    availability_bar(sla, &Scope::Overall)
}

/// The availability an interval must reach for this scope (its own target, else overall's).
fn availability_bar(sla: &Sla, scope: &Scope) -> f64 {
    let find = |s: &Scope| {
        sla.targets.iter().find_map(|t| match t.objective {
            Objective::Availability(a) if &t.scope == s => Some(a),
            _ => None,
        })
    };
    find(scope)
        .or_else(|| find(&Scope::Overall))
        .unwrap_or(DEFAULT_AVAILABILITY)
}

struct Measure {
    target: f64,
    measured: Option<f64>,
    samples: u64,
    /// Samples needed before a pass means anything.
    needed: u64,
    higher_is_better: bool,
    note: Option<String>,
    /// Why what was measured cannot decide the check: unless it already failed, the check is
    /// inconclusive for this reason.
    undecided: Option<String>,
    misses: Option<Misses>,
}

/// Misses of a ratio promise: the samples that did not count as successes.
fn ratio_misses(target: f64, good: u64, of: u64) -> Misses {
    Misses {
        count: of.saturating_sub(good),
        of,
        allowed: 1.0 - target,
    }
}

/// A promise that at least `target` of a scope's requests are `good` (successes, or good
/// requests for goodput).
fn request_share(target: f64, stats: Option<&Stats>, good: fn(&Stats) -> u64) -> Measure {
    let asked = stats.filter(|s| s.requests > 0);
    Measure {
        target,
        measured: asked.map(|s| good(s) as f64 / s.requests as f64),
        samples: stats.map_or(0, |s| s.requests),
        needed: needed_for_ratio(target),
        higher_is_better: true,
        note: None,
        undecided: None,
        misses: asked.map(|s| ratio_misses(target, good(s), s.requests)),
    }
}

/// The histogram a percentile promise reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    Latency,
    Ttft,
    Ttfot,
    Tpot,
}

/// The share of samples a p99 bound lets past it.
const P99_ALLOWED: f64 = 0.01;

/// Samples a p99 claim needs: `TAIL_SAMPLES` beyond the 99th percentile.
const P99_NEEDED: u64 = (TAIL_SAMPLES / P99_ALLOWED).ceil() as u64;

/// Fills in the misses of every percentile check: `over(scope, tail, bound)` counts the
/// scope's samples above the bound, out of how many. Checks are in `sla.targets`' order.
pub fn count_tails(
    result: &mut SlaResult,
    sla: &Sla,
    over: impl Fn(&Scope, Tail, Duration) -> Option<(u64, u64)>,
) {
    for (check, t) in result.checks.iter_mut().zip(&sla.targets) {
        let (tail, bound) = match t.objective {
            Objective::P99Latency(d) => (Tail::Latency, d),
            Objective::TtftP99(d) => (Tail::Ttft, d),
            Objective::TtfotP99(d) => (Tail::Ttfot, d),
            Objective::TpotP99(d) => (Tail::Tpot, d),
            _ => continue,
        };
        check.misses = over(&t.scope, tail, bound)
            .filter(|&(_, of)| of > 0)
            .map(|(count, of)| Misses {
                count,
                of,
                allowed: P99_ALLOWED,
            });
    }
}

fn percentile_measure(p: Option<&Percentiles>, bound_ms: f64, note: &str) -> Measure {
    Measure {
        target: bound_ms,
        measured: p.filter(|p| p.samples > 0).map(|p| p.p99),
        samples: p.map_or(0, |p| p.samples),
        needed: P99_NEEDED,
        higher_is_better: false,
        note: p.is_none_or(|p| p.samples == 0).then(|| note.to_string()),
        undecided: None,
        misses: None,
    }
}

/// The p99 the gateway adds over the direct baseline. A p99 needs enough samples on both
/// sides, so the smaller side is the check's sample count.
fn overhead_measure(summary: &Summary, class: Option<&str>, bound_ms: f64) -> Measure {
    let stats = summary.overhead.as_ref().and_then(|o| match class {
        None => Some(&o.overall),
        Some(c) => o.classes.iter().find(|k| k.name == c).map(|k| &k.stats),
    });
    let count = |p: Option<&Percentiles>| p.map_or(0, |p| p.samples);
    let samples = stats.map_or(0, |s| {
        count(s.gateway_ms.as_ref()).min(count(s.direct_ms.as_ref()))
    });
    let measured = stats.and_then(|s| s.added_p99_ms);
    let note = match stats {
        None => Some("no baseline was sent (`[load] baseline = \"direct\"`)".to_string()),
        Some(_) if measured.is_none() => Some(
            "no successful request on one side (gateway or direct) outside fault windows"
                .to_string(),
        ),
        Some(_) => Some("gateway p99 - direct p99, fault windows left out".to_string()),
    };
    Measure {
        target: bound_ms,
        measured,
        samples,
        needed: P99_NEEDED,
        higher_is_better: false,
        note,
        undecided: None,
        misses: None,
    }
}

/// Least sample count at which a ratio target leaves room for at least one failure.
fn needed_for_ratio(target: f64) -> u64 {
    if target >= 1.0 {
        u64::MAX
    } else {
        // The epsilon keeps float noise (1/0.001 = 1000.0000000000009) from asking for one more.
        (1.0 / (1.0 - target) - 1e-6).ceil() as u64
    }
}

fn check(sla: &Sla, scope: &Scope, objective: Objective, summary: &Summary) -> SlaCheck {
    let stats = stats_for(scope, summary);
    let class = match scope {
        Scope::Class(c) => Some(c.as_str()),
        // Tiers are held to latency and availability only (the scenario refuses the rest).
        Scope::Overall | Scope::Tier(_) => None,
    };
    let m = match objective {
        Objective::P99Latency(d) => percentile_measure(
            stats.map(|s| &s.latency_ms),
            d.as_secs_f64() * 1e3,
            "no request succeeded (latency is measured on successes)",
        ),
        Objective::TtftP99(d) => percentile_measure(
            stats.and_then(|s| s.ttft_ms.as_ref()),
            d.as_secs_f64() * 1e3,
            "no streamed request succeeded in this scope",
        ),
        Objective::TtfotP99(d) => percentile_measure(
            stats.and_then(|s| s.ttfot_ms.as_ref()),
            d.as_secs_f64() * 1e3,
            "no streamed request with an output token succeeded in this scope",
        ),
        Objective::TpotP99(d) => percentile_measure(
            stats.and_then(|s| s.tpot_ms.as_ref()),
            d.as_secs_f64() * 1e3,
            "no streamed request with two or more output tokens succeeded in this scope",
        ),
        Objective::Availability(a) => request_share(a, stats, |s| s.successes),
        Objective::Goodput(g) => Measure {
            note: Some("requests that succeeded and met [sla.per_request]".into()),
            ..request_share(g, stats, |s| s.good)
        },
        Objective::MinGoodputRps(r) => Measure {
            target: r,
            measured: stats.map(|s| s.goodput_rps),
            samples: stats.map_or(0, |s| s.requests),
            needed: 1,
            higher_is_better: true,
            note: None,
            undecided: None,
            misses: None,
        },
        Objective::Uptime(u) => {
            let bar = availability_bar(sla, scope);
            let avail: Vec<f64> = summary
                .intervals
                .iter()
                .filter_map(|iv| match class {
                    None => iv.overall.availability,
                    Some(c) => iv.classes.get(c).and_then(|s| s.availability),
                })
                .collect();
            let good = avail.iter().filter(|&&a| a >= bar).count();
            Measure {
                target: u,
                measured: (!avail.is_empty()).then(|| good as f64 / avail.len() as f64),
                samples: avail.len() as u64,
                needed: needed_for_ratio(u),
                higher_is_better: true,
                note: Some(format!(
                    "intervals at or above {:.3}% availability",
                    bar * 100.0
                )),
                undecided: None,
                misses: None,
            }
        }
        Objective::FailoverSuccess(f) => {
            let (req, ok) = failover_counts(summary, class);
            Measure {
                target: f,
                measured: (req > 0).then(|| ok as f64 / req as f64),
                samples: req,
                needed: needed_for_ratio(f),
                higher_is_better: true,
                note: (req == 0).then(|| "no request was sent while a fault hit this scope".into()),
                undecided: unapplied(summary, class),
                misses: (req > 0).then(|| ratio_misses(f, ok, req)),
            }
        }
        Objective::MaxFailoverTime(d) => {
            worst_time(summary, class, d.as_secs_f64(), TimedPhase::Failover)
        }
        Objective::MaxRecoveryTime(d) => {
            worst_time(summary, class, d.as_secs_f64(), TimedPhase::Recovery)
        }
        Objective::MaxRetryAmplification(x) => Measure {
            target: x,
            measured: summary.retry_amplification,
            samples: summary.overall.requests,
            needed: 1,
            higher_is_better: false,
            note: summary
                .retry_amplification
                .is_none()
                .then(|| "the upstreams' request counts are unknown (no control API)".into()),
            undecided: None,
            misses: None,
        },
        Objective::MaxOverheadP99(d) => overhead_measure(summary, class, d.as_secs_f64() * 1e3),
        Objective::MaxCostPerMillion(usd) => Measure {
            target: usd,
            measured: summary.cost.as_ref().map(|c| c.per_million_requests_usd),
            samples: summary.overall.requests,
            needed: 1,
            higher_is_better: false,
            note: summary
                .cost
                .is_none()
                .then(|| "no prices known for the upstreams".into()),
            undecided: None,
            misses: None,
        },
    };
    let status = match m.measured {
        None => CheckStatus::Inconclusive,
        Some(v) => {
            let ok = if m.higher_is_better {
                v >= m.target
            } else {
                v <= m.target
            };
            if ok && (m.undecided.is_some() || m.samples < m.needed) {
                CheckStatus::Inconclusive
            } else if ok {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            }
        }
    };
    let note = if status == CheckStatus::Inconclusive && m.undecided.is_some() {
        m.undecided
    } else if status == CheckStatus::Inconclusive && m.measured.is_some() {
        Some(format!(
            "{} samples cannot support this target (needs at least {}); run longer or at a higher rate",
            m.samples, m.needed
        ))
    } else {
        m.note
    };
    let key = objective.key();
    SlaCheck {
        name: key,
        scope: scope_name(scope),
        target: m.target,
        measured: m.measured,
        unit: key.unit().as_str().to_string(),
        samples: m.samples,
        status,
        note,
        misses: m.misses,
    }
}

/// Requests and successes sent while a fault hit the scope: for the whole run the fault
/// windows' own counts, for a class its own counts in the windows that affected it.
fn failover_counts(summary: &Summary, class: Option<&str>) -> (u64, u64) {
    summary
        .faults
        .iter()
        .filter(|w| w.not_applied.is_none())
        .map(|w| match class {
            None => (w.affected_requests, w.affected_successes),
            Some(c) if w.affected_classes.iter().any(|a| a == c) => {
                let start = std::time::Duration::from_secs_f64(w.start_s.max(0.0));
                let end = std::time::Duration::from_secs_f64(w.end_s.max(0.0));
                overlapping(summary, start, end)
                    .filter_map(|iv| iv.classes.get(c))
                    .fold((0, 0), |(r, s), st| (r + st.requests, s + st.successes))
            }
            Some(_) => (0, 0),
        })
        .fold((0, 0), |(r, s), (a, b)| (r + a, s + b))
}

/// Whether a fault window could hit this scope: for the whole run every window does; for a
/// class, the windows that name it, or that name no class at all (a fault that never ran may
/// have had no traffic to tell which classes it would hit).
fn hits(w: &FaultWindow, class: Option<&str>) -> bool {
    class.is_none_or(|c| {
        w.affected_classes.iter().any(|a| a == c)
            || (w.not_applied.is_some() && w.affected_classes.is_empty())
    })
}

/// Why the failover checks of this scope cannot pass: a fault meant to hit it was never
/// applied, so the promise was not put to the test the scenario asked for.
fn unapplied(summary: &Summary, class: Option<&str>) -> Option<String> {
    let mut missed = summary
        .faults
        .iter()
        .filter(|w| hits(w, class))
        .filter_map(|w| Some((w, w.not_applied.as_deref()?)));
    let (first, why) = missed.next()?;
    let more = missed.count();
    let tail = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    Some(format!(
        "{} was never applied: {why}{tail}",
        first.describe()
    ))
}

/// Which of a fault's two times a check bounds.
#[derive(Clone, Copy)]
enum TimedPhase {
    /// Fault start -> back at target, seen until the fault's end or the run's.
    Failover,
    /// Fault end -> the primary serving again, seen until the run's end.
    Recovery,
}

impl TimedPhase {
    fn time(self, w: &FaultWindow) -> Option<f64> {
        match self {
            Self::Failover => w.time_to_failover_s,
            Self::Recovery => w.time_to_recover_s,
        }
    }

    /// How long the run watched for this time: a run that stopped sooner cannot say "never".
    fn watched(self, w: &FaultWindow, run_end_s: f64) -> f64 {
        match self {
            Self::Failover => w.end_s.min(run_end_s) - w.start_s,
            Self::Recovery => run_end_s - w.end_s,
        }
        .max(0.0)
    }

    fn never(self) -> &'static str {
        match self {
            Self::Failover => "never back at target during the fault",
            Self::Recovery => "the primary never served again after the fault",
        }
    }

    fn too_soon(self, watched: f64) -> String {
        match self {
            Self::Failover => {
                format!("the run ended {watched:.1} s into the fault, too soon to tell")
            }
            Self::Recovery => format!(
                "the run ended {watched:.1} s after the fault's end, too soon to see the \
                 primary serve again"
            ),
        }
    }
}

fn worst_time(summary: &Summary, class: Option<&str>, bound_s: f64, phase: TimedPhase) -> Measure {
    let run_end_s = summary.warmup_s + summary.duration_s;
    let windows: Vec<&FaultWindow> = summary
        .faults
        .iter()
        .filter(|w| w.not_applied.is_none() && !w.affected_classes.is_empty())
        .filter(|w| hits(w, class))
        .collect();
    // Each window's time; a window never back within what the run watched counts as that
    // long when the run watched past the bound (it then fails), and decides nothing when not.
    let mut measured: Option<f64> = None;
    let mut never = false;
    let mut too_soon = None;
    for w in &windows {
        let t = match phase.time(w) {
            Some(t) => t,
            None => {
                let watched = phase.watched(w, run_end_s);
                if watched <= bound_s {
                    too_soon.get_or_insert_with(|| phase.too_soon(watched));
                    continue;
                }
                never = true;
                watched
            }
        };
        measured = Some(measured.map_or(t, |m: f64| m.max(t)));
    }
    let note = if windows.is_empty() {
        "no fault affected this scope".to_string()
    } else if never {
        phase.never().to_string()
    } else {
        format!("resolution {} s (the interval)", summary.interval_s)
    };
    Measure {
        target: bound_s,
        measured,
        samples: windows.len() as u64,
        needed: 1,
        higher_is_better: false,
        note: Some(
            too_soon
                .clone()
                .filter(|_| measured.is_none())
                .unwrap_or(note),
        ),
        undecided: unapplied(summary, class).or(too_soon),
        misses: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::failover::{FaultAttempt, analyze, tests::outage_summary};
    use crate::scenario::SlaTarget;
    use std::time::Duration;

    fn sla(targets: &[(Scope, Objective)]) -> Sla {
        Sla {
            targets: targets
                .iter()
                .map(|(s, o)| SlaTarget {
                    scope: s.clone(),
                    objective: *o,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// An overhead of `added` ms at p99 with `gateway` and `direct` samples, overall and for
    /// class `everyday`.
    fn with_overhead(gateway: u64, direct: u64, added: f64) -> Summary {
        use crate::metrics::summary::{ClassOverhead, Overhead, OverheadStats};
        let side = |samples, p99| Percentiles {
            samples,
            p99,
            ..Percentiles::default()
        };
        let stats = OverheadStats {
            gateway_ms: Some(side(gateway, 40.0 + added)),
            direct_ms: Some(side(direct, 40.0)),
            added_p50_ms: Some(added),
            added_p99_ms: Some(added),
            ..OverheadStats::default()
        };
        let mut s = outage_summary();
        s.overhead = Some(Overhead {
            excluded_s: 0.0,
            overall: stats.clone(),
            classes: vec![ClassOverhead {
                name: "everyday".into(),
                stats,
            }],
        });
        s
    }

    #[test]
    fn overhead_claims_need_a_p99_on_both_sides_and_fail_when_over() {
        let bound = Objective::MaxOverheadP99(Duration::from_millis(5));
        let judge =
            |s: &Summary, scope: Scope| evaluate(&sla(&[(scope, bound)]), s).checks[0].clone();
        let over = judge(&with_overhead(5000, 5000, 20.0), Scope::Overall);
        assert_eq!(over.status, CheckStatus::Fail, "{over:?}");
        assert_eq!(
            (over.measured, over.target, over.unit.as_str()),
            (Some(20.0), 5.0, "ms")
        );
        assert_eq!(
            over.note.as_deref(),
            Some("gateway p99 - direct p99, fault windows left out")
        );
        // A baseline was sent but one side has no answer: nothing to subtract, and the note
        // says why.
        let mut one_sided = with_overhead(5000, 0, 0.0);
        if let Some(o) = &mut one_sided.overhead {
            o.overall.added_p99_ms = None;
        }
        let empty = judge(&one_sided, Scope::Overall);
        assert_eq!(empty.status, CheckStatus::Inconclusive, "{empty:?}");
        assert!(
            empty
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("no successful request on one side")),
            "{empty:?}"
        );
        let under = judge(
            &with_overhead(5000, 5000, 1.0),
            Scope::Class("everyday".into()),
        );
        assert_eq!(under.status, CheckStatus::Pass, "{under:?}");
        // Plenty through the gateway, too few direct: the smaller side decides.
        let thin = judge(&with_overhead(5000, 999, 1.0), Scope::Overall);
        assert_eq!(thin.status, CheckStatus::Inconclusive, "{thin:?}");
        assert_eq!(thin.samples, 999);
        // No baseline at all: nothing measured, so nothing passed.
        let none = judge(&outage_summary(), Scope::Overall);
        assert_eq!(none.status, CheckStatus::Inconclusive);
        assert!(none.note.unwrap_or_default().contains("no baseline"));
    }

    #[test]
    fn tail_claims_need_enough_samples() {
        let mut s = outage_summary();
        s.overall.latency_ms = Percentiles {
            samples: 500,
            p99: 120.0,
            ..Percentiles::default()
        };
        let r = evaluate(
            &sla(&[(
                Scope::Overall,
                Objective::P99Latency(Duration::from_millis(500)),
            )]),
            &s,
        );
        assert_eq!(r.checks[0].status, CheckStatus::Inconclusive);
        assert!(!r.passed);
        s.overall.latency_ms.samples = 5_000;
        let r = evaluate(
            &sla(&[(
                Scope::Overall,
                Objective::P99Latency(Duration::from_millis(500)),
            )]),
            &s,
        );
        assert_eq!(r.checks[0].status, CheckStatus::Pass);
        s.overall.latency_ms.p99 = 900.0;
        let r = evaluate(
            &sla(&[(
                Scope::Overall,
                Objective::P99Latency(Duration::from_millis(500)),
            )]),
            &s,
        );
        assert_eq!(
            (r.checks[0].status, r.verdict),
            (CheckStatus::Fail, CheckStatus::Fail)
        );
    }

    #[test]
    fn failover_checks_read_the_windows() {
        let mut s = outage_summary();
        let f = FaultAttempt::applied(
            "a",
            "outage",
            (Duration::from_secs(8), Duration::from_secs(14)),
            Duration::from_secs(8),
            Some(Duration::from_secs(14)),
        );
        s.faults = analyze(&s, &[f], 0.99);
        let r = evaluate(
            &sla(&[
                (Scope::Overall, Objective::FailoverSuccess(0.85)),
                (
                    Scope::Class("everyday".into()),
                    Objective::FailoverSuccess(0.95),
                ),
                (
                    Scope::Overall,
                    Objective::MaxFailoverTime(Duration::from_secs(2)),
                ),
                (
                    Scope::Overall,
                    Objective::MaxRecoveryTime(Duration::from_millis(500)),
                ),
            ]),
            &s,
        );
        let st: Vec<_> = r.checks.iter().map(|c| c.status).collect();
        assert_eq!(
            st,
            [
                CheckStatus::Pass,
                CheckStatus::Fail,
                CheckStatus::Pass,
                CheckStatus::Fail
            ]
        );
        assert_eq!(r.checks[1].measured, Some(0.9));
        // Behind the share: everyday's 600 requests during the outage, 540 of them answered.
        let counted = |i: usize| r.checks[i].misses.map(|m| (m.count, m.of));
        assert_eq!((counted(0), counted(1)), (Some((60, 600)), Some((60, 600))));
        // A class the fault never hit sent nothing during it: no share, and no misses.
        let premium = sla(&[(
            Scope::Class("premium".into()),
            Objective::FailoverSuccess(0.95),
        )]);
        let spared = &evaluate(&premium, &s).checks[0];
        assert_eq!((spared.measured, spared.misses), (None, None), "{spared:?}");
    }

    /// `everyday`'s failover is judged on the faults that hit it: not on a slow fault of
    /// another class, but on every fault that never ran (it may have been meant for it), each
    /// named; and a run that stopped early is "too soon to tell", with how long it watched.
    #[test]
    fn a_class_is_judged_on_the_faults_that_hit_it() {
        let secs = Duration::from_secs;
        let mut s = outage_summary();
        let applied = FaultAttempt::applied("a", "outage", (secs(8), secs(14)), secs(8), None);
        s.faults = analyze(&s, &[applied], 0.99);
        // Another class's fault, back only after 9 s.
        let mut elsewhere = s.faults[0].clone();
        elsewhere.affected_classes = vec!["premium".into()];
        elsewhere.time_to_failover_s = Some(9.0);
        s.faults.push(elsewhere);
        let class = Scope::Class("everyday".into());
        let bound = |phase: Objective| sla(&[(class.clone(), phase)]);
        let fast = bound(Objective::MaxFailoverTime(secs(2)));
        let r = evaluate(&fast, &s);
        assert_eq!(r.checks[0].status, CheckStatus::Pass, "{:?}", r.checks[0]);
        assert!(r.checks[0].measured.is_some_and(|t| t < 2.0));

        // Two faults scheduled after the run ended: no traffic says whom they would hit.
        let late = |upstream: &str| FaultAttempt {
            upstream: upstream.into(),
            kind: "outage".into(),
            start: secs(30),
            end: secs(40),
            outcome: crate::metrics::failover::FaultOutcome::RunEnded { at: secs(20) },
        };
        let mut unrun = s.clone();
        unrun.faults = analyze(&s, &[late("b"), late("c")], 0.99);
        let r = evaluate(&fast, &unrun);
        assert_eq!(r.checks[0].status, CheckStatus::Inconclusive);
        let note = r.checks[0].note.as_deref().unwrap_or_default();
        assert!(
            note.contains("never applied") && note.contains("(and 1 more)"),
            "{note}"
        );

        // The run stopped 2 s into a fault that was not back by then: too soon for a 5 s bound.
        let mut short = s.clone();
        short.faults.truncate(1);
        short.faults[0].time_to_failover_s = None;
        short.duration_s = 10.0;
        let r = evaluate(&bound(Objective::MaxFailoverTime(secs(5))), &short);
        assert_eq!(r.checks[0].status, CheckStatus::Inconclusive);
        let note = r.checks[0].note.as_deref().unwrap_or_default();
        assert!(note.contains("2.0 s into the fault"), "{note}");
        // Likewise 2 s after the fault's end with the primary not serving again yet.
        short.faults[0].time_to_failover_s = Some(1.0);
        short.faults[0].time_to_recover_s = None;
        short.duration_s = 16.0;
        let r = evaluate(&bound(Objective::MaxRecoveryTime(secs(5))), &short);
        assert_eq!(r.checks[0].status, CheckStatus::Inconclusive);
        let note = r.checks[0].note.as_deref().unwrap_or_default();
        assert!(note.contains("2.0 s after the fault's end"), "{note}");
    }

    #[test]
    fn uptime_counts_intervals_at_target() {
        let s = outage_summary();
        let r = evaluate(
            &sla(&[
                (Scope::Overall, Objective::Uptime(0.9)),
                (Scope::Overall, Objective::Availability(0.99)),
            ]),
            &s,
        );
        // 19 of 20 intervals are at 100%; one at 40%.
        assert_eq!(r.checks[0].measured, Some(0.95));
        assert_eq!(r.checks[0].status, CheckStatus::Pass);
    }
}
