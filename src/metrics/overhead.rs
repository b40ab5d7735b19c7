//! The latency the gateway adds (`[load] baseline = "direct"`): each percentile of the
//! requests sent through the gateway minus the same percentile of those sent straight to the
//! class's primary upstream, per class and overall. Successes only, and the intervals an
//! applied fault touched are left out on both sides: there the gateway fails over to other
//! upstreams while the baseline keeps hitting the broken one, so the two are not comparable.

use hdrhistogram::Histogram;

use super::analysis::optional;
use super::direct::DirectCounts;
use super::failover::faulted_intervals;
use super::recorder::{Recorder, new_cumulative};
use super::summary::{ClassOverhead, Overhead, OverheadStats, Summary};

/// Both sides of one scope, merged over the intervals that count.
struct Sides {
    gateway: Histogram<u32>,
    direct: Histogram<u32>,
}

impl Sides {
    fn new() -> Self {
        Self {
            gateway: new_cumulative(),
            direct: new_cumulative(),
        }
    }

    fn add(&mut self, other: &Sides) {
        // Both auto-resize, so adding cannot run out of range.
        let _ = self.gateway.add(&other.gateway);
        let _ = self.direct.add(&other.direct);
    }

    /// The two sides' percentiles and their difference, with what the baseline sent.
    fn stats(&self, counts: &DirectCounts) -> OverheadStats {
        let gateway_ms = optional(&self.gateway);
        let direct_ms = optional(&self.direct);
        let (added_p50_ms, added_p99_ms) = match (&gateway_ms, &direct_ms) {
            (Some(g), Some(d)) => (Some(g.p50 - d.p50), Some(g.p99 - d.p99)),
            _ => (None, None),
        };
        OverheadStats {
            gateway_ms,
            direct_ms,
            added_p50_ms,
            added_p99_ms,
            direct_requests: counts.requests,
            direct_successes: counts.successes,
            direct_dropped: counts.dropped,
        }
    }
}

/// The overhead of a run that sent a baseline; None for one that did not.
pub fn analyze(rec: &Recorder, summary: &Summary) -> Option<Overhead> {
    let direct = rec.direct()?;
    let faulted = faulted_intervals(summary);
    let names = &rec.layout().classes;
    let mut classes: Vec<Sides> = names.iter().map(|_| Sides::new()).collect();
    for (i, _) in faulted.iter().enumerate().filter(|&(_, &f)| !f) {
        let cells = rec.interval(i);
        for (c, sides) in classes.iter_mut().enumerate() {
            if let Some(h) = cells.get(c).and_then(|cell| cell.latency()) {
                let _ = sides.gateway.add(h.as_ref());
            }
            if let Some(h) = direct.latency(i, c) {
                let _ = sides.direct.add(h.as_ref());
            }
        }
    }
    let excluded = faulted.iter().filter(|&&f| f).count();
    let mut overall = Sides::new();
    let mut totals = DirectCounts::default();
    let classes = names
        .iter()
        .zip(&classes)
        .enumerate()
        .map(|(c, (name, sides))| {
            overall.add(sides);
            let counts = direct.counts(c);
            totals.merge(&counts);
            ClassOverhead {
                name: name.clone(),
                stats: sides.stats(&counts),
            }
        })
        .collect();
    Some(Overhead {
        excluded_s: (excluded as f64 * summary.interval_s).min(summary.duration_s),
        overall: overall.stats(&totals),
        classes,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::metrics::analysis::{RunInfo, summarize};
    use crate::metrics::recorder::Layout;
    use crate::metrics::sample::{ErrorKind, Sample, Via};
    use crate::metrics::summary::FaultWindow;

    const SECONDS: u64 = 20;

    fn layout() -> Layout {
        Layout::new(
            vec!["a".into(), "b".into()],
            Vec::new(),
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(SECONDS),
        )
        .with_baseline(true)
    }

    fn info() -> RunInfo {
        RunInfo {
            scenario: "overhead".into(),
            description: None,
            seed: 1,
            target: "test".into(),
            started_at: SystemTime::UNIX_EPOCH,
            ran_for: Duration::from_secs(SECONDS),
            interrupted: false,
            classes: Vec::new(),
        }
    }

    fn sample(class: usize, at_ms: u64, route: Via, latency_us: u64) -> Sample {
        let mut s = Sample::new(class, Duration::from_millis(at_ms), Duration::ZERO);
        s.route = route;
        s.latency = Duration::from_micros(latency_us);
        s
    }

    /// Each second, per class: 100 gateway answers at `base + 20 ms + k * 100 us` and 100
    /// direct ones at `base + k * 100 us` (k = 0..99), class `b` 50 ms slower than `a`; in
    /// seconds 8..14 the gateway's take a second and the direct ones fail.
    fn recording(seconds: std::ops::Range<u64>) -> Recorder {
        let mut rec = Recorder::new(layout());
        for t in seconds {
            let faulted = (8..14).contains(&t);
            for class in 0..2usize {
                let base = 10_000 + class as u64 * 50_000;
                for k in 0..100u64 {
                    let at = t * 1000 + k * 10;
                    let via = if faulted {
                        1_000_000
                    } else {
                        base + 20_000 + k * 100
                    };
                    rec.record(&sample(class, at, Via::Gateway, via));
                    let mut direct = sample(class, at + 5, Via::Direct, base + k * 100);
                    if faulted {
                        direct.result = Err(ErrorKind::Connect);
                    }
                    rec.record(&direct);
                }
            }
        }
        rec
    }

    fn outage() -> FaultWindow {
        FaultWindow {
            upstream: "up".into(),
            kind: "outage".into(),
            start_s: 8.0,
            end_s: 14.0,
            applied_at_s: Some(8.0),
            lifted_at_s: Some(14.0),
            not_applied: None,
            affected_classes: vec!["a".into(), "b".into()],
            affected_requests: 0,
            affected_successes: 0,
            failover_success: None,
            time_to_failover_s: None,
            time_to_recover_s: None,
            failed_over_latency_ms: None,
            normal_latency_ms: None,
        }
    }

    fn close(got: Option<f64>, want: f64, what: &str) {
        let got = got.unwrap_or_else(|| panic!("{what}: none"));
        // Per-interval histograms keep two significant digits: within 1% of each side.
        assert!(
            (got - want).abs() <= 0.01 * 80.0,
            "{what}: {got} ms, want {want}"
        );
    }

    #[test]
    fn the_added_latency_is_the_difference_of_the_two_sides_percentiles() {
        let rec = recording(0..SECONDS);
        let mut summary = summarize(&rec, &info());
        summary.faults = vec![outage()];
        let o = analyze(&rec, &summary).expect("a baseline was recorded");
        assert_eq!(o.excluded_s, 6.0, "the outage's six seconds are left out");
        for (i, c) in o.classes.iter().enumerate() {
            let st = &c.stats;
            close(st.added_p50_ms, 20.0, &format!("{} p50", c.name));
            close(st.added_p99_ms, 20.0, &format!("{} p99", c.name));
            let (g, d) = (st.gateway_ms.unwrap(), st.direct_ms.unwrap());
            // 14 clean seconds of 100 a side; the faulted seconds are on neither side.
            assert_eq!((g.samples, d.samples), (1400, 1400), "{st:?}");
            assert_eq!(st.added_p99_ms, Some(g.p99 - d.p99));
            assert_eq!(st.added_p50_ms, Some(g.p50 - d.p50));
            // Every direct request is counted, failures and fault windows too.
            assert_eq!((st.direct_requests, st.direct_successes), (2000, 1400));
            let base = 10.0 + 50.0 * i as f64;
            close(Some(d.p50), base + 5.0, "direct p50");
        }
        // Overall merges both classes on each side: still 20 ms apart at p50.
        close(o.overall.added_p50_ms, 20.0, "overall p50");
        assert_eq!(o.overall.direct_requests, 4000);
        assert_eq!(o.overall.gateway_ms.unwrap().samples, 2800);
    }

    #[test]
    fn without_the_fault_window_the_comparison_would_be_meaningless() {
        let rec = recording(0..SECONDS);
        let summary = summarize(&rec, &info());
        let o = analyze(&rec, &summary).expect("a baseline was recorded");
        assert_eq!(o.excluded_s, 0.0);
        let g = o.overall.gateway_ms.unwrap();
        assert_eq!(g.samples, 4000, "the slow answers of the outage count");
        assert!(o.overall.added_p99_ms.unwrap() > 500.0, "{o:?}");
    }

    #[test]
    fn direct_samples_are_in_no_gateway_number() {
        let rec = recording(0..SECONDS);
        let summary = summarize(&rec, &info());
        assert_eq!(
            summary.overall.requests, 4000,
            "the gateway's requests only"
        );
        assert_eq!(summary.overall.successes, 4000);
        assert_eq!(summary.overall.latency_ms.samples, 4000);
        assert!(
            summary.overall.errors.is_empty(),
            "direct failures are not the gateway's"
        );
        assert_eq!(
            summary.intervals[9].overall.requests, 200,
            "nor in the intervals"
        );
        assert_eq!(rec.lag().len(), 4000, "nor in the schedule lag");
    }

    #[test]
    fn a_run_without_a_baseline_reports_no_overhead() {
        let layout = layout().with_baseline(false);
        let mut rec = Recorder::new(layout);
        rec.record(&sample(0, 10, Via::Gateway, 1000));
        // A stray direct sample has nowhere to go and counts nowhere.
        rec.record(&sample(0, 20, Via::Direct, 1000));
        let summary = summarize(&rec, &info());
        assert_eq!(summary.overall.requests, 1);
        assert!(analyze(&rec, &summary).is_none());
    }

    #[test]
    fn shards_merge_into_the_one_machine_overhead() {
        let whole = recording(0..SECONDS);
        let mut first = recording(0..9);
        first.merge(&recording(9..SECONDS)).expect("same layout");
        let mut summary = summarize(&whole, &info());
        summary.faults = vec![outage()];
        let merged_summary = {
            let mut s = summarize(&first, &info());
            s.faults = vec![outage()];
            s
        };
        assert_eq!(analyze(&whole, &summary), analyze(&first, &merged_summary));
        // A recording with a baseline does not merge with one without.
        let mut plain = Recorder::new(layout().with_baseline(false));
        assert!(plain.merge(&whole).is_err());
    }

    #[test]
    fn dropped_direct_requests_are_counted_as_the_baselines() {
        let mut rec = recording(0..2);
        rec.record_dropped_direct(1, Duration::from_millis(500));
        let summary = summarize(&rec, &info());
        assert_eq!(summary.overall.dropped, 0);
        let o = analyze(&rec, &summary).expect("baseline");
        assert_eq!(o.classes[1].stats.direct_dropped, 1);
        assert_eq!(o.classes[1].stats.direct_requests, 201);
        assert_eq!(o.overall.direct_dropped, 1);
    }
}
