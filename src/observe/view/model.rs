//! What the live view shows, computed from successive snapshots of the run's live numbers:
//! per-second rates from counter deltas and windowed quantiles from bucket deltas (what a
//! Prometheus dashboard on the exporter would show), plus short histories for sparklines.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::SlaResult;
use crate::observe::reading::{ClassReading, LiveReading};
use crate::observe::snapshot::Histogram;

/// Rates and quantiles are over windows this long: shorter ones jump around with a handful
/// of requests, longer ones hide a fault's first seconds.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Points a sparkline keeps: as many as a wide terminal shows.
const HISTORY: usize = 240;

/// One class over the last window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassWindow {
    pub name: String,
    /// Requests the schedule called for per second: answered, failed or dropped.
    pub rps: f64,
    pub errors_per_s: f64,
    /// Failed (or dropped) share of the window's requests.
    pub error_share: Option<f64>,
    /// The window's error kinds with counts, most frequent first.
    pub error_kinds: Vec<(&'static str, u64)>,
    pub dropped_total: u64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub ttft_p99: Option<Duration>,
    /// Share of the window's successes each upstream served, largest first.
    pub served: Vec<(String, f64)>,
}

/// A fault as the view tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultLine {
    pub upstream: String,
    pub kind: String,
    /// Until it lifts (active) or until it starts (next).
    pub in_: Duration,
}

/// A bounded series of one number per window.
#[derive(Debug, Clone, Default)]
pub struct History(VecDeque<u64>);

impl History {
    fn push(&mut self, v: u64) {
        if self.0.len() == HISTORY {
            self.0.pop_front();
        }
        self.0.push_back(v);
    }

    /// The last `n` points, oldest first.
    pub fn last(&self, n: usize) -> Vec<u64> {
        let skip = self.0.len().saturating_sub(n);
        self.0.iter().skip(skip).copied().collect()
    }
}

/// Everything the view draws.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub scenario: String,
    pub elapsed: Duration,
    pub planned: Duration,
    pub warmup: Duration,
    pub ended: bool,
    pub in_flight: usize,
    /// Empty until the first window has passed.
    pub classes: Vec<ClassWindow>,
    /// All classes together, microseconds, one point per window.
    pub p50_us: History,
    pub p99_us: History,
    pub ttft_p99_us: History,
    pub lag_p99: Option<Duration>,
    pub active_faults: Vec<FaultLine>,
    pub next_fault: Option<FaultLine>,
    pub sla: Option<Arc<SlaResult>>,
    /// The user asked to stop; the run is draining.
    pub stopping: bool,
    /// Whether a run has been published yet (the fleet starts first).
    pub started: bool,
    window_start: Option<(Instant, LiveReading)>,
}

fn merged(classes: &[ClassReading], pick: fn(&ClassReading) -> &Histogram) -> Histogram {
    let mut out = Histogram::default();
    for c in classes {
        let b = pick(c);
        if out.counts.is_empty() {
            out = Histogram {
                native: None,
                ..b.clone()
            };
        } else {
            for (a, n) in out.counts.iter_mut().zip(&b.counts) {
                *a += n;
            }
            out.sum_seconds += b.sum_seconds;
        }
    }
    out
}

fn micros(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn class_row(now: &ClassReading, then: &ClassReading, secs: f64) -> ClassWindow {
    let requests = now.requests().saturating_sub(then.requests());
    let failed = (now.failed() + now.dropped).saturating_sub(then.failed() + then.dropped);
    let mut error_kinds: Vec<(&'static str, u64)> = now
        .errors
        .iter()
        .zip(&then.errors)
        .map(|((kind, a), (_, b))| (*kind, a.saturating_sub(*b)))
        .filter(|(_, n)| *n > 0)
        .collect();
    error_kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    let latency = now.latency.since(&then.latency);
    let served_then = |name: &str| {
        then.served
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, c)| *c)
    };
    let deltas: Vec<(String, u64)> = now
        .served
        .iter()
        .map(|(name, n)| (name.clone(), n.saturating_sub(served_then(name))))
        .filter(|(_, n)| *n > 0)
        .collect();
    let total: u64 = deltas.iter().map(|(_, n)| n).sum();
    let mut served: Vec<(String, f64)> = deltas
        .into_iter()
        .map(|(name, n)| (name, n as f64 / total as f64))
        .collect();
    served.sort_by(|a, b| b.1.total_cmp(&a.1));
    ClassWindow {
        name: now.name.clone(),
        rps: requests as f64 / secs,
        errors_per_s: failed as f64 / secs,
        error_share: (requests > 0).then(|| failed as f64 / requests as f64),
        error_kinds,
        dropped_total: now.dropped,
        p50: latency.quantile(0.5),
        p99: latency.quantile(0.99),
        ttft_p99: now.ttft.since(&then.ttft).quantile(0.99),
        served,
    }
}

impl Model {
    /// Takes in the numbers as of `now`; a window closes (rates, quantiles and sparklines
    /// move) once `WINDOW` has passed since the last one closed.
    pub fn update(&mut self, snap: LiveReading, now: Instant) {
        self.started = true;
        self.scenario.clone_from(&snap.scenario);
        self.elapsed = snap.elapsed;
        self.planned = snap.planned;
        self.warmup = snap.warmup;
        self.ended = snap.ended;
        self.in_flight = snap.in_flight;
        self.sla.clone_from(&snap.sla);
        self.faults(&snap);
        let Some((opened, then)) = &self.window_start else {
            self.window_start = Some((now, snap));
            return;
        };
        let took = now.saturating_duration_since(*opened);
        if took < WINDOW {
            return;
        }
        let secs = took.as_secs_f64();
        self.classes = snap
            .classes
            .iter()
            .zip(&then.classes)
            .map(|(a, b)| class_row(a, b, secs))
            .collect();
        let latency =
            merged(&snap.classes, |c| &c.latency).since(&merged(&then.classes, |c| &c.latency));
        let ttft = merged(&snap.classes, |c| &c.ttft).since(&merged(&then.classes, |c| &c.ttft));
        self.p50_us.push(micros(latency.quantile(0.5)));
        self.p99_us.push(micros(latency.quantile(0.99)));
        self.ttft_p99_us.push(micros(ttft.quantile(0.99)));
        self.lag_p99 = snap.lag.since(&then.lag).quantile(0.99);
        self.window_start = Some((now, snap));
    }

    fn faults(&mut self, snap: &LiveReading) {
        let at = snap.elapsed;
        self.active_faults = snap
            .faults
            .iter()
            .filter(|f| f.active && f.start <= at + WINDOW && at < f.end + WINDOW)
            .map(|f| FaultLine {
                upstream: f.upstream.clone(),
                kind: f.kind.clone(),
                in_: f.end.saturating_sub(at),
            })
            .collect();
        self.next_fault = snap
            .faults
            .iter()
            .filter(|f| f.start > at && !snap.ended)
            .min_by_key(|f| f.start)
            .map(|f| FaultLine {
                upstream: f.upstream.clone(),
                kind: f.kind.clone(),
                in_: f.start - at,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::reading::FaultReading;

    const MS: u64 = 1_000_000;
    const BOUNDS: &[u64] = &[10 * MS, 100 * MS, 1_000 * MS];

    fn class(
        ok: u64,
        status_5xx: u64,
        fast: u64,
        slow: u64,
        served: &[(&str, u64)],
    ) -> ClassReading {
        ClassReading {
            name: "everyday".into(),
            ok,
            errors: vec![("status_5xx", status_5xx), ("timeout", 0)],
            dropped: 0,
            latency: Histogram {
                bounds_ns: BOUNDS,
                counts: vec![fast, slow, 0, 0],
                ..Histogram::default()
            },
            ttft: Histogram {
                bounds_ns: BOUNDS,
                counts: vec![fast, 0, 0, 0],
                ..Histogram::default()
            },
            served: served.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        }
    }

    fn snap(at_s: u64, c: ClassReading, active: bool) -> LiveReading {
        LiveReading {
            scenario: "s".into(),
            elapsed: Duration::from_secs(at_s),
            planned: Duration::from_secs(20),
            classes: vec![c],
            faults: vec![FaultReading {
                upstream: "primary".into(),
                kind: "outage".into(),
                start: Duration::from_secs(8),
                end: Duration::from_secs(14),
                active,
            }],
            ..LiveReading::default()
        }
    }

    #[test]
    fn a_window_shows_rates_quantiles_shares_and_the_fault_countdown() {
        let t0 = Instant::now();
        let mut m = Model::default();
        m.update(
            snap(5, class(100, 0, 100, 0, &[("primary", 100)]), false),
            t0,
        );
        assert!(m.classes.is_empty(), "no window has passed yet");
        let next = m.next_fault.clone().expect("the outage is ahead");
        assert_eq!(
            (next.kind.as_str(), next.in_),
            ("outage", Duration::from_secs(3))
        );

        // Two seconds later, during the outage: 300 more answers from the fallback, all slow,
        // and 100 failures.
        let later = class(400, 100, 100, 300, &[("primary", 100), ("fallback", 300)]);
        m.update(snap(10, later, true), t0 + Duration::from_secs(2));
        let row = &m.classes[0];
        assert_eq!(row.rps, 200.0);
        assert_eq!(row.errors_per_s, 50.0);
        assert_eq!(row.error_share, Some(0.25));
        assert_eq!(row.error_kinds, vec![("status_5xx", 100)]);
        assert_eq!(row.served, vec![("fallback".to_string(), 1.0)]);
        assert_eq!(row.p50, Some(Duration::from_millis(55)));
        assert_eq!(m.p50_us.last(10), vec![55_000]);
        assert_eq!(m.active_faults.len(), 1);
        assert_eq!(m.active_faults[0].in_, Duration::from_secs(4));
        assert_eq!(m.next_fault, None);
    }
}
