//! A copy of a run's live numbers at one moment, for readers that compute over time (the live
//! view): the same counters and classic buckets a scrape reads, so what the view shows is what
//! Prometheus would compute from the exporter (rates from counter deltas, quantiles by
//! interpolating within buckets, as `histogram_quantile` does).

use std::sync::Arc;
use std::time::Duration;

use super::snapshot::Histogram;
use crate::metrics::SlaResult;

/// One class's counters.
#[derive(Debug, Clone, Default)]
pub struct ClassReading {
    pub name: String,
    pub ok: u64,
    /// Failed requests by error kind (`ErrorKind::as_str`), every kind listed.
    pub errors: Vec<(&'static str, u64)>,
    pub dropped: u64,
    pub latency: Histogram,
    pub ttft: Histogram,
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
    pub lag: Histogram,
    pub faults: Vec<FaultReading>,
    /// The SLA checks as evaluated last (None before the first evaluation).
    pub sla: Option<Arc<SlaResult>>,
}
