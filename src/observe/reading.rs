//! A copy of a run's live numbers at one moment, for readers that compute over time (the live
//! view): the same counters and classic buckets a scrape reads, so what the view shows is what
//! Prometheus would compute from the exporter (rates from counter deltas, quantiles by
//! interpolating within buckets, as `histogram_quantile` does).

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::SlaResult;

/// Classic histogram counts: one per bucket (not cumulative), the last above the top bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Upper bounds, nanoseconds.
    pub bounds: &'static [u64],
    pub counts: Vec<u64>,
}

impl Buckets {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was observed after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        }
    }

    /// The `q` quantile as Prometheus's `histogram_quantile` estimates it: linear within the
    /// bucket it falls in (from 0 for the first), the top bound when it falls above it. None
    /// when nothing was observed.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, n) in self.counts.iter().enumerate() {
            let upto = below + n;
            if (upto as f64) >= rank && *n > 0 {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().map(|b| Duration::from_nanos(*b));
                };
                let lower = if i == 0 { 0 } else { self.bounds[i - 1] };
                let within = (rank - below as f64) / *n as f64;
                let ns = lower as f64 + (upper - lower) as f64 * within;
                return Some(Duration::from_nanos(ns as u64));
            }
            below = upto;
        }
        self.bounds.last().map(|b| Duration::from_nanos(*b))
    }
}

/// One class's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassReading {
    pub name: String,
    pub ok: u64,
    /// Failed requests by error kind (`ErrorKind::as_str`), every kind listed.
    pub errors: Vec<(&'static str, u64)>,
    pub dropped: u64,
    pub latency: Buckets,
    pub ttft: Buckets,
    /// Successes by the upstream that served them: the announced ones in order, then any
    /// other name an external gateway reported.
    pub served: Vec<(String, u64)>,
}

impl ClassReading {
    pub fn failed(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// Requests the schedule called for: answered, failed or dropped.
    pub fn requests(&self) -> u64 {
        self.ok + self.failed() + self.dropped
    }
}

/// One scheduled fault window and whether a fault of its upstream and kind is applied now.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultReading {
    pub upstream: String,
    pub kind: String,
    /// Since the run's start, as scheduled.
    pub start: Duration,
    pub end: Duration,
    pub active: bool,
}

/// The whole run at one moment.
#[derive(Debug, Clone, Default)]
pub struct LiveReading {
    pub scenario: String,
    pub elapsed: Duration,
    pub planned: Duration,
    pub warmup: Duration,
    /// The run has ended (elapsed stopped).
    pub ended: bool,
    pub in_flight: usize,
    pub classes: Vec<ClassReading>,
    pub lag: Buckets,
    pub faults: Vec<FaultReading>,
    /// The SLA checks as evaluated last (None before the first evaluation).
    pub sla: Option<Arc<SlaResult>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const BOUNDS: &[u64] = &[10 * MS, 100 * MS, 1_000 * MS];

    #[test]
    fn quantiles_interpolate_within_buckets_like_histogram_quantile() {
        let b = Buckets {
            bounds: BOUNDS,
            counts: vec![0, 100, 0, 0],
        };
        // Half-way through the 10..100 ms bucket.
        assert_eq!(b.quantile(0.5), Some(Duration::from_millis(55)));
        assert_eq!(b.quantile(1.0), Some(Duration::from_millis(100)));
        let over = Buckets {
            bounds: BOUNDS,
            counts: vec![1, 0, 0, 99],
        };
        // Above the top bound: the top bound, as Prometheus answers.
        assert_eq!(over.quantile(0.99), Some(Duration::from_secs(1)));
        assert_eq!(over.quantile(0.005), Some(Duration::from_millis(5)));
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn deltas_are_what_came_after() {
        let before = Buckets {
            bounds: BOUNDS,
            counts: vec![1, 2, 3, 4],
        };
        let after = Buckets {
            bounds: BOUNDS,
            counts: vec![1, 5, 3, 10],
        };
        assert_eq!(after.since(&before).counts, vec![0, 3, 0, 6]);
        assert_eq!(after.since(&Buckets::default()).counts, after.counts);
    }
}
