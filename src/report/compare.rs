//! Run-to-run comparison: per-metric deltas between a base and a new summary, and which of
//! them regressed beyond the allowed bound — the performance gate for CI.

use serde::Serialize;

use crate::metrics::{Stats, Summary};

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Latency and cost: up is worse.
    LowerIsBetter,
    /// Availability: down is worse.
    HigherIsBetter,
    /// Throughput follows the schedule; shown, never gated.
    Informational,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricDelta {
    /// `overall` or the class name.
    pub scope: String,
    pub metric: &'static str,
    /// `ms`, `ratio`, `rps` or `usd`.
    pub unit: &'static str,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// Relative change (new - base) / base; for availability, the change of the failure rate.
    pub change: Option<f64>,
    pub direction: Direction,
    pub regressed: bool,
    pub improved: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base_label: String,
    pub new_label: String,
    /// The allowed relative worsening, e.g. 0.10.
    pub max_regression: f64,
    pub metrics: Vec<MetricDelta>,
    /// Classes only one side has, which therefore were not compared.
    pub unmatched_classes: Vec<String>,
    /// What a reader must know to read the deltas right (e.g. latencies of different meaning).
    pub notes: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &MetricDelta> {
        self.metrics.iter().filter(|m| m.regressed)
    }

    pub fn regressed(&self) -> bool {
        self.metrics.iter().any(|m| m.regressed)
    }
}

/// A failure rate rising by less than this (absolute) is noise, not a regression: a handful of
/// errors in a short run must not fail a CI gate on its own.
const FAILURE_RATE_FLOOR: f64 = 0.001;

fn delta(
    scope: &str,
    metric: &'static str,
    unit: &'static str,
    direction: Direction,
    base: Option<f64>,
    new: Option<f64>,
    bound: f64,
) -> MetricDelta {
    let (mut change, mut regressed, mut improved) = (None, false, false);
    if let (Some(b), Some(n)) = (base, new) {
        match direction {
            Direction::LowerIsBetter | Direction::Informational => {
                if b > 0.0 {
                    let c = (n - b) / b;
                    change = Some(c);
                    if direction == Direction::LowerIsBetter {
                        regressed = c > bound;
                        improved = c < -bound;
                    }
                }
            }
            Direction::HigherIsBetter => {
                // Availability lives near 100%, where a relative change of the value means
                // nothing; the failure rate (1 - availability) is what grows.
                let (fb, fnew) = (1.0 - b, 1.0 - n);
                let grew = fnew - fb;
                change = Some(n - b);
                regressed = grew > FAILURE_RATE_FLOOR && fnew > fb * (1.0 + bound);
                improved = -grew > FAILURE_RATE_FLOOR && fnew < fb * (1.0 - bound);
            }
        }
    }
    MetricDelta {
        scope: scope.to_string(),
        metric,
        unit,
        base,
        new,
        change,
        direction,
        regressed,
        improved,
    }
}

/// What `compare` reads from one scope's stats: name, unit, which way is better, and the value
/// (None when the run has nothing to say, e.g. no streams for TTFT).
type Extract = fn(&Stats) -> Option<f64>;

const STATS_METRICS: [(&str, &str, Direction, Extract); 6] = [
    ("p50 latency", "ms", Direction::LowerIsBetter, |s| {
        (s.latency_ms.samples > 0).then_some(s.latency_ms.p50)
    }),
    ("p90 latency", "ms", Direction::LowerIsBetter, |s| {
        (s.latency_ms.samples > 0).then_some(s.latency_ms.p90)
    }),
    ("p99 latency", "ms", Direction::LowerIsBetter, |s| {
        (s.latency_ms.samples > 0).then_some(s.latency_ms.p99)
    }),
    ("p99 TTFT", "ms", Direction::LowerIsBetter, |s| {
        s.ttft_ms.filter(|p| p.samples > 0).map(|p| p.p99)
    }),
    ("availability", "ratio", Direction::HigherIsBetter, |s| {
        (s.requests > 0).then_some(s.availability)
    }),
    ("throughput", "rps", Direction::Informational, |s| {
        Some(s.rps)
    }),
];

fn stats_deltas(scope: &str, b: &Stats, n: &Stats, bound: f64, out: &mut Vec<MetricDelta>) {
    for (metric, unit, direction, value) in STATS_METRICS {
        out.push(delta(
            scope,
            metric,
            unit,
            direction,
            value(b),
            value(n),
            bound,
        ));
    }
}

/// Compares `new` against `base`; `max_regression` is the allowed relative worsening.
pub fn compare(base: &Summary, new: &Summary, max_regression: f64) -> Comparison {
    let mut metrics = Vec::new();
    stats_deltas(
        "overall",
        &base.overall,
        &new.overall,
        max_regression,
        &mut metrics,
    );
    metrics.push(delta(
        "overall",
        "cost / M requests",
        "usd",
        Direction::LowerIsBetter,
        base.cost.as_ref().map(|c| c.per_million_requests_usd),
        new.cost.as_ref().map(|c| c.per_million_requests_usd),
        max_regression,
    ));
    let mut unmatched = Vec::new();
    for bc in &base.classes {
        match new.classes.iter().find(|nc| nc.name == bc.name) {
            Some(nc) => stats_deltas(&bc.name, &bc.stats, &nc.stats, max_regression, &mut metrics),
            None => unmatched.push(format!("{} (base only)", bc.name)),
        }
    }
    for nc in &new.classes {
        if !base.classes.iter().any(|bc| bc.name == nc.name) {
            unmatched.push(format!("{} (new only)", nc.name));
        }
    }
    let mut notes = Vec::new();
    for (side, s) in [("base", base), ("new", new)] {
        // Before schema 2 a summary's latency mixed failures in with the answers.
        if s.schema_version < 2 && base.schema_version != new.schema_version {
            notes.push(format!(
                "the {side} run's summary has schema version {}: its latency includes failed \
                 requests, the other's holds successful requests only, so latency deltas compare \
                 different things",
                s.schema_version
            ));
        }
    }
    Comparison {
        base_label: format!("{} @ {}", base.scenario, base.started_at),
        new_label: format!("{} @ {}", new.scenario, new.started_at),
        max_regression,
        metrics,
        unmatched_classes: unmatched,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_up_beyond_bound_regresses() {
        let d = delta(
            "overall",
            "p99 latency",
            "ms",
            Direction::LowerIsBetter,
            Some(100.0),
            Some(115.0),
            0.10,
        );
        assert!(d.regressed);
        let d = delta(
            "overall",
            "p99 latency",
            "ms",
            Direction::LowerIsBetter,
            Some(100.0),
            Some(105.0),
            0.10,
        );
        assert!(!d.regressed);
        let d = delta(
            "overall",
            "p99 latency",
            "ms",
            Direction::LowerIsBetter,
            Some(100.0),
            Some(80.0),
            0.10,
        );
        assert!(d.improved && !d.regressed);
    }

    #[test]
    fn availability_gates_on_failure_rate() {
        let av = |b, n| {
            delta(
                "overall",
                "availability",
                "ratio",
                Direction::HigherIsBetter,
                Some(b),
                Some(n),
                0.10,
            )
        };
        assert!(av(0.999, 0.95).regressed);
        assert!(!av(0.999, 0.9989).regressed, "below the noise floor");
        assert!(!av(0.99, 0.9895).regressed, "within the bound");
        assert!(av(0.95, 0.999).improved);
    }

    #[test]
    fn missing_values_never_regress() {
        let d = delta(
            "x",
            "p99 TTFT",
            "ms",
            Direction::LowerIsBetter,
            None,
            Some(10.0),
            0.1,
        );
        assert!(!d.regressed && d.change.is_none());
    }
}
