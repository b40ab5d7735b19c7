//! Failover analysis: for each fault window, which classes it hit, how many of their requests
//! still succeeded, how long until they were back at target and until the primary served
//! them again. Works on the per-interval series, so its time resolution is the interval.

use std::time::Duration;

use super::analysis::optional;
use super::recorder::{Recorder, new_cumulative};
use super::summary::{FaultWindow, Interval, Summary};

/// One window of one scheduled fault, and what became of it on the run's clock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultAttempt {
    pub upstream: String,
    pub kind: String,
    /// Scheduled window.
    pub start: Duration,
    pub end: Duration,
    pub outcome: FaultOutcome,
}

/// Whether a scheduled fault was applied, and if not, why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FaultOutcome {
    /// The control API confirmed it at `at`; `lifted` is when it was lifted, None when it
    /// could not be (the upstream may have stayed broken past its window).
    Applied {
        at: Duration,
        lifted: Option<Duration>,
    },
    /// The run ended at `at`, before the fault's time came.
    RunEnded { at: Duration },
    /// The fault was due but could not be applied (the control API refused, failed or is
    /// missing): `error` says why, as a sentence the report can show.
    Failed { error: String },
}

impl FaultAttempt {
    /// A fault the control API applied at `at` and lifted at `lifted`.
    pub fn applied(
        upstream: &str,
        kind: &str,
        (start, end): (Duration, Duration),
        at: Duration,
        lifted: Option<Duration>,
    ) -> Self {
        Self {
            upstream: upstream.to_string(),
            kind: kind.to_string(),
            start,
            end,
            outcome: FaultOutcome::Applied { at, lifted },
        }
    }

    /// Why the fault was never applied, as the report says it; None when it was.
    pub fn not_applied(&self) -> Option<String> {
        match &self.outcome {
            FaultOutcome::Applied { .. } => None,
            FaultOutcome::RunEnded { at } => {
                Some(format!("the run stopped at {:.1} s", at.as_secs_f64()))
            }
            FaultOutcome::Failed { error } => Some(error.clone()),
        }
    }
}

/// One window per scheduled fault, in schedule order. `target` is the availability an
/// interval needs to count as "back at target" (the SLA's, or 99.9% when it names none). A
/// fault that was never applied keeps the classes it would have hit but no counts or times,
/// since nothing happened to judge.
pub fn analyze(summary: &Summary, faults: &[FaultAttempt], target: f64) -> Vec<FaultWindow> {
    faults.iter().map(|f| window(summary, f, target)).collect()
}

/// Classes hit by a fault on `upstream`: those it served before the fault started, and
/// those naming it as their primary.
pub fn affected_classes(summary: &Summary, upstream: &str, start: Duration) -> Vec<String> {
    let start_s = start.as_secs_f64();
    summary
        .classes
        .iter()
        .filter(|c| {
            c.primary.as_deref() == Some(upstream)
                || summary.intervals.iter().any(|iv| {
                    iv.t_s + summary.interval_s <= start_s + 1e-9
                        && iv
                            .classes
                            .get(&c.name)
                            .is_some_and(|s| s.served_by.get(upstream).copied().unwrap_or(0) > 0)
                })
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Requests and successes of `classes` in one interval.
fn counts(iv: &Interval, classes: &[String]) -> (u64, u64) {
    classes
        .iter()
        .filter_map(|c| iv.classes.get(c))
        .fold((0, 0), |(r, s), st| (r + st.requests, s + st.successes))
}

/// Share of the classes' successful responses that `upstream` served in one interval.
fn share(iv: &Interval, classes: &[String], upstream: &str) -> Option<f64> {
    let (mut by_it, mut all) = (0u64, 0u64);
    for st in classes.iter().filter_map(|c| iv.classes.get(c)) {
        by_it += st.served_by.get(upstream).copied().unwrap_or(0);
        all += st.served_by.values().sum::<u64>();
    }
    (all > 0).then(|| by_it as f64 / all as f64)
}

/// Intervals overlapping [start, end).
pub fn overlapping<'a>(
    summary: &'a Summary,
    start: Duration,
    end: Duration,
) -> impl Iterator<Item = &'a Interval> + 'a {
    let span = (start.as_secs_f64(), end.as_secs_f64());
    summary
        .intervals
        .iter()
        .filter(move |iv| overlaps(iv, span, summary.interval_s))
}

/// Whether an interval `width` seconds long overlaps the span [s, e) (seconds).
fn overlaps(iv: &Interval, (s, e): (f64, f64), width: f64) -> bool {
    iv.t_s < e - 1e-9 && iv.t_s + width > s + 1e-9
}

/// Per interval, whether an applied fault's window overlaps it. A fault never applied
/// changed nothing, so its window is ordinary traffic.
pub(super) fn faulted_intervals(summary: &Summary) -> Vec<bool> {
    let spans: Vec<(f64, f64)> = summary
        .faults
        .iter()
        .filter(|w| w.not_applied.is_none())
        .map(|w| (w.start_s, w.end_s))
        .collect();
    summary
        .intervals
        .iter()
        .map(|iv| {
            spans
                .iter()
                .any(|&span| overlaps(iv, span, summary.interval_s))
        })
        .collect()
}

fn window(summary: &Summary, f: &FaultAttempt, target: f64) -> FaultWindow {
    let classes = affected_classes(summary, &f.upstream, f.start);
    let (applied_at_s, lifted_at_s) = match f.outcome {
        FaultOutcome::Applied { at, lifted } => {
            (Some(at.as_secs_f64()), lifted.map(|d| d.as_secs_f64()))
        }
        _ => (None, None),
    };
    if let Some(why) = f.not_applied() {
        return FaultWindow {
            upstream: f.upstream.clone(),
            kind: f.kind.clone(),
            start_s: f.start.as_secs_f64(),
            end_s: f.end.as_secs_f64(),
            applied_at_s,
            lifted_at_s,
            not_applied: Some(why),
            affected_classes: classes,
            affected_requests: 0,
            affected_successes: 0,
            failover_success: None,
            time_to_failover_s: None,
            time_to_recover_s: None,
            failed_over_latency_ms: None,
            normal_latency_ms: None,
        };
    }
    let (start_s, end_s) = (f.start.as_secs_f64(), f.end.as_secs_f64());
    let (requests, successes) = overlapping(summary, f.start, f.end)
        .map(|iv| counts(iv, &classes))
        .fold((0, 0), |(r, s), (a, b)| (r + a, s + b));

    // The first interval at or after the fault's start whose requests are back at target.
    let time_to_failover_s = summary
        .intervals
        .iter()
        .filter(|iv| iv.t_s + summary.interval_s > start_s + 1e-9 && iv.t_s < end_s - 1e-9)
        .find(|iv| {
            let (r, s) = counts(iv, &classes);
            r > 0 && s as f64 / r as f64 >= target
        })
        .map(|iv| (iv.t_s - start_s).max(0.0));

    // Recovery: the primary carries at least half the share it carried before the fault.
    let before: Vec<f64> = summary
        .intervals
        .iter()
        .filter(|iv| iv.t_s + summary.interval_s <= start_s + 1e-9)
        .filter_map(|iv| share(iv, &classes, &f.upstream))
        .collect();
    let usual = if before.is_empty() {
        1.0
    } else {
        before.iter().sum::<f64>() / before.len() as f64
    };
    let time_to_recover_s = summary
        .intervals
        .iter()
        .filter(|iv| iv.t_s >= end_s - 1e-9)
        .find(|iv| share(iv, &classes, &f.upstream).is_some_and(|s| s >= usual / 2.0 && s > 0.0))
        .map(|iv| iv.t_s - end_s);

    FaultWindow {
        upstream: f.upstream.clone(),
        kind: f.kind.clone(),
        start_s,
        end_s,
        applied_at_s,
        lifted_at_s,
        not_applied: None,
        affected_classes: classes,
        affected_requests: requests,
        affected_successes: successes,
        failover_success: (requests > 0).then(|| successes as f64 / requests as f64),
        time_to_failover_s,
        time_to_recover_s,
        failed_over_latency_ms: None,
        normal_latency_ms: None,
    }
}

/// Fills each window's latency: the affected classes' requests during it, against the same
/// classes' requests outside every fault window, merged from the per-interval histograms.
pub fn window_latencies(rec: &Recorder, summary: &mut Summary) {
    let width = summary.interval_s;
    let faulted = faulted_intervals(summary);
    let names = &rec.layout().classes;
    for w in summary
        .faults
        .iter_mut()
        .filter(|w| w.not_applied.is_none())
    {
        let span = (w.start_s, w.end_s);
        let classes: Vec<usize> = w
            .affected_classes
            .iter()
            .filter_map(|c| names.iter().position(|n| n == c))
            .collect();
        let (mut during, mut normal) = (new_cumulative(), new_cumulative());
        for (i, iv) in summary.intervals.iter().enumerate() {
            let here = overlaps(iv, span, width);
            let cells = rec.interval(i);
            for h in classes.iter().filter_map(|&c| cells.get(c)?.latency()) {
                // Both histograms auto-resize, so adding cannot run out of range.
                let _ = if here {
                    during.add(h)
                } else if !faulted[i] {
                    normal.add(h)
                } else {
                    Ok(())
                };
            }
        }
        w.failed_over_latency_ms = optional(&during);
        w.normal_latency_ms = optional(&normal);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::summary::{ClassStats, IntervalStats, Stats};
    use std::collections::BTreeMap;

    /// A 20-interval run of one class whose primary `a` is down from 8 s to 14 s: the
    /// first second of the outage fails, then `b` carries it, and `a` is back at 15 s.
    pub(crate) fn outage_summary() -> Summary {
        let mut intervals = Vec::new();
        for t in 0..20u32 {
            let mut st = IntervalStats {
                requests: 100,
                successes: 100,
                ..IntervalStats::default()
            };
            let served = match t {
                8 => {
                    st.successes = 40;
                    vec![("b", 40)]
                }
                9..=14 => vec![("b", 100)],
                _ => vec![("a", 100)],
            };
            st.served_by = served
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            st.availability = Some(st.successes as f64 / st.requests as f64);
            intervals.push(Interval {
                t_s: f64::from(t),
                overall: st.clone(),
                classes: BTreeMap::from([("everyday".to_string(), st)]),
            });
        }
        Summary {
            schema_version: crate::metrics::SCHEMA_VERSION,
            gauntlet_version: "test".into(),
            scenario: "t".into(),
            per_request: Default::default(),
            description: None,
            seed: 1,
            target: "embedded gateway".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_s: 20.0,
            warmup_s: 0.0,
            interval_s: 1.0,
            interrupted: false,
            overall: Stats::default(),
            tiers: Vec::new(),
            classes: vec![ClassStats {
                name: "everyday".into(),
                weight: 80,
                model: "m".into(),
                stream: true,
                api: "chat".into(),
                primary: None,
                stats: Stats {
                    requests: 2000,
                    successes: 1940,
                    ..Stats::default()
                },
                latency_spectrum: Vec::new(),
                turns: Vec::new(),
                prompt_lengths: Vec::new(),
            }],
            intervals,
            generator: Default::default(),
            faults: Vec::new(),
            upstreams: Vec::new(),
            retry_amplification: None,
            cost: None,
            sla: Default::default(),
            trust: Default::default(),
            budget: None,
            overhead: None,
            sut: None,
            shards: Vec::new(),
        }
    }

    /// An outage of `upstream` scheduled from 8 s to 14 s, applied 3 ms late and lifted 2 ms
    /// late.
    fn outage_of(upstream: &str) -> FaultAttempt {
        FaultAttempt::applied(
            upstream,
            "outage",
            (Duration::from_secs(8), Duration::from_secs(14)),
            Duration::from_millis(8003),
            Some(Duration::from_millis(14002)),
        )
    }

    #[test]
    fn outage_window_is_measured() {
        let s = outage_summary();
        let f = outage_of("a");
        let w = &analyze(&s, &[f], 0.99)[0];
        assert_eq!(w.affected_classes, vec!["everyday".to_string()]);
        assert_eq!((w.affected_requests, w.affected_successes), (600, 540));
        assert_eq!(w.time_to_failover_s, Some(1.0));
        assert_eq!(w.time_to_recover_s, Some(1.0));
        assert!((w.failover_success.unwrap() - 0.9).abs() < 1e-9);
    }

    /// A fault hits the classes its upstream served before it started (up to the interval that
    /// ends as it starts) and those naming it as their primary; a class the upstream first
    /// served once the fault had begun (its first milliseconds, before it took hold) is not
    /// one of them.
    #[test]
    fn a_fault_hits_the_classes_its_upstream_served_before_it_and_names_primary() {
        let mut s = outage_summary();
        let mut add = |name: &str, primary: Option<&str>, by_a: Option<usize>| {
            for (t, iv) in s.intervals.iter_mut().enumerate() {
                let up = if by_a == Some(t) { "a" } else { "b" };
                let st = IntervalStats {
                    requests: 10,
                    successes: 10,
                    served_by: BTreeMap::from([(up.to_string(), 10)]),
                    ..IntervalStats::default()
                };
                iv.classes.insert(name.to_string(), st);
            }
            let mut class = s.classes[0].clone();
            class.name = name.into();
            class.primary = primary.map(String::from);
            s.classes.push(class);
        };
        // Served by `a` only in [7 s, 8 s), the second before the fault.
        add("edge", None, Some(7));
        // Served by `a` only in [8 s, 9 s), as the fault started.
        add("late", None, Some(8));
        // Never served by `a`, but names it as its primary.
        add("named", Some("a"), None);
        let f = outage_of("a");
        let w = &analyze(&s, &[f], 0.99)[0];
        assert_eq!(w.affected_classes, ["everyday", "edge", "named"]);
    }

    /// Recovery compares the primary's share of the answers, not their count: after the
    /// fault there is half the traffic, all of it on the primary, so it is back; a second with
    /// no answers before the fault has no share and does not count.
    #[test]
    fn recovery_is_judged_on_the_primarys_share_whatever_the_traffic() {
        let mut s = outage_summary();
        for iv in &mut s.intervals {
            let st = iv.classes.get_mut("everyday").unwrap();
            if iv.t_s == 0.0 {
                *st = IntervalStats::default();
            } else if iv.t_s >= 15.0 {
                st.requests = 50;
                st.successes = 50;
                st.served_by = BTreeMap::from([("a".to_string(), 50)]);
            }
        }
        let f = outage_of("a");
        let w = &analyze(&s, &[f], 0.99)[0];
        assert_eq!(w.time_to_recover_s, Some(1.0));
    }

    /// "Back" is half the share the primary usually carried, and usually is the seconds that
    /// ended by the fault's start: 80% in [0 s, 7 s), 40% in [7 s, 8 s), so 75%, and back
    /// from 37.5%. A first second after the fault at 36% is not back (the next, at 80%, is);
    /// one at 38% is.
    #[test]
    fn recovery_is_half_the_share_the_primary_carried_before_the_fault() {
        let recovered_after = |first: u64| {
            let mut s = outage_summary();
            for iv in &mut s.intervals {
                let by_a = match iv.t_s as u32 {
                    0..=6 | 16.. => 80,
                    7 => 40,
                    15 => first,
                    _ => continue,
                };
                let st = iv.classes.get_mut("everyday").unwrap();
                st.served_by =
                    BTreeMap::from([("a".to_string(), by_a), ("b".to_string(), 100 - by_a)]);
            }
            let f = outage_of("a");
            analyze(&s, &[f], 0.99)[0].time_to_recover_s
        };
        assert_eq!(recovered_after(36), Some(2.0));
        assert_eq!(recovered_after(38), Some(1.0));
    }

    /// A class that names the faulted upstream as its primary but was never served by it has
    /// no share to come back to: no recovery is reported, rather than one at once.
    #[test]
    fn a_primary_that_never_served_never_recovers() {
        let mut s = outage_summary();
        s.classes[0].primary = Some("c".into());
        let f = outage_of("c");
        let w = &analyze(&s, &[f], 0.99)[0];
        assert_eq!(w.affected_classes, ["everyday"]);
        assert_eq!(w.time_to_recover_s, None);
    }

    #[test]
    fn a_fault_on_an_unused_upstream_affects_nobody() {
        let s = outage_summary();
        let f = FaultAttempt::applied(
            "zzz",
            "error",
            (Duration::from_secs(3), Duration::from_secs(5)),
            Duration::from_secs(3),
            Some(Duration::from_secs(5)),
        );
        let w = &analyze(&s, &[f], 0.99)[0];
        assert!(w.affected_classes.is_empty());
        assert_eq!(w.affected_requests, 0);
        assert_eq!(w.failover_success, None);
    }

    #[test]
    fn a_fault_never_applied_names_its_classes_but_counts_nothing() {
        let s = outage_summary();
        let f = FaultAttempt {
            upstream: "a".into(),
            kind: "outage".into(),
            start: Duration::from_secs(8),
            end: Duration::from_secs(14),
            outcome: FaultOutcome::Failed {
                error: "HTTP 401".into(),
            },
        };
        let w = &analyze(&s, &[f], 0.99)[0];
        assert_eq!(w.affected_classes, vec!["everyday".to_string()]);
        assert_eq!((w.affected_requests, w.affected_successes), (0, 0));
        assert_eq!((w.time_to_failover_s, w.time_to_recover_s), (None, None));
        assert_eq!(w.applied_at_s, None);
        assert_eq!(w.not_applied.as_deref(), Some("HTTP 401"));
    }
}
