//! The bake-off table: one row per target, read from each target's `Summary`, with the best
//! value of each column marked — what `bakeoff.json` holds and every bake-off page renders.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::metrics::{CheckStatus, SlaKey, Summary};

/// Bumped whenever a field of `bakeoff.json` changes meaning or disappears.
pub const BAKEOFF_SCHEMA_VERSION: u32 = 1;

/// One target's run, as the bake-off saw it.
#[derive(Debug, Clone, Copy)]
pub struct BakeoffEntry<'a> {
    pub name: &'a str,
    /// The run folder, as the user should find it (relative to the bake-off folder).
    pub run_dir: &'a str,
    pub summary: &'a Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BakeoffTable {
    pub schema_version: u32,
    pub gauntlet_version: String,
    pub scenario: String,
    pub seed: u64,
    /// The one target whose verdict decides the exit code (`--require`); None: all of them.
    #[serde(default)]
    pub required: Option<String>,
    /// Whether the deciding targets all passed.
    pub passed: bool,
    pub targets: Vec<TargetRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    pub name: String,
    /// What was tested, as the run's summary names it.
    pub target: String,
    pub run_dir: String,
    pub verdict: CheckStatus,
    pub checks: Vec<CheckCell>,
    pub requests: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub availability: f64,
    /// Affected successes / affected requests over every applied fault window.
    pub failover_success: Option<f64>,
    /// The slowest window's; None when no window got back (or there was none).
    pub time_to_failover_s: Option<f64>,
    pub time_to_recover_s: Option<f64>,
    /// p99 of the affected classes' successes during the fault windows, and outside them.
    pub outage_p99_ms: Option<f64>,
    pub outside_p99_ms: Option<f64>,
    pub retry_amplification: Option<f64>,
    pub errors: BTreeMap<String, u64>,
    pub cost_per_million_requests_usd: Option<f64>,
    /// The columns (`BakeoffColumn::key`) where this row holds the best value.
    pub best: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckCell {
    pub name: SlaKey,
    pub scope: String,
    pub status: CheckStatus,
    pub target: f64,
    pub measured: Option<f64>,
    pub unit: String,
}

/// A column whose best value is marked, and which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BakeoffColumn {
    P50,
    P99,
    TtftP99,
    Availability,
    FailoverSuccess,
    TimeToFailover,
    TimeToRecover,
    OutageP99,
    RetryAmplification,
    Errors,
    Cost,
}

impl BakeoffColumn {
    pub const ALL: [BakeoffColumn; 11] = [
        BakeoffColumn::P50,
        BakeoffColumn::P99,
        BakeoffColumn::TtftP99,
        BakeoffColumn::Availability,
        BakeoffColumn::FailoverSuccess,
        BakeoffColumn::TimeToFailover,
        BakeoffColumn::TimeToRecover,
        BakeoffColumn::OutageP99,
        BakeoffColumn::RetryAmplification,
        BakeoffColumn::Errors,
        BakeoffColumn::Cost,
    ];

    pub fn key(self) -> &'static str {
        match self {
            BakeoffColumn::P50 => "p50",
            BakeoffColumn::P99 => "p99",
            BakeoffColumn::TtftP99 => "ttft_p99",
            BakeoffColumn::Availability => "availability",
            BakeoffColumn::FailoverSuccess => "failover_success",
            BakeoffColumn::TimeToFailover => "time_to_failover",
            BakeoffColumn::TimeToRecover => "time_to_recover",
            BakeoffColumn::OutageP99 => "outage_p99",
            BakeoffColumn::RetryAmplification => "retry_amplification",
            BakeoffColumn::Errors => "errors",
            BakeoffColumn::Cost => "cost",
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(
            self,
            BakeoffColumn::Availability | BakeoffColumn::FailoverSuccess
        )
    }

    fn value(self, r: &TargetRow) -> Option<f64> {
        match self {
            BakeoffColumn::P50 => r.p50_ms,
            BakeoffColumn::P99 => r.p99_ms,
            BakeoffColumn::TtftP99 => r.ttft_p99_ms,
            BakeoffColumn::Availability => Some(r.availability),
            BakeoffColumn::FailoverSuccess => r.failover_success,
            BakeoffColumn::TimeToFailover => r.time_to_failover_s,
            BakeoffColumn::TimeToRecover => r.time_to_recover_s,
            BakeoffColumn::OutageP99 => r.outage_p99_ms,
            BakeoffColumn::RetryAmplification => r.retry_amplification,
            BakeoffColumn::Errors => Some(r.errors.values().sum::<u64>() as f64),
            BakeoffColumn::Cost => r.cost_per_million_requests_usd,
        }
    }
}

/// The table of a bake-off; `required` names the target whose verdict decides, if one does.
pub fn table(
    scenario: &str,
    seed: u64,
    entries: &[BakeoffEntry<'_>],
    required: Option<&str>,
) -> BakeoffTable {
    let mut targets: Vec<TargetRow> = entries.iter().map(row).collect();
    mark_best(&mut targets);
    let passed = entries
        .iter()
        .filter(|e| required.is_none_or(|r| r == e.name))
        .all(|e| e.summary.sla.passed);
    BakeoffTable {
        schema_version: BAKEOFF_SCHEMA_VERSION,
        gauntlet_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: scenario.to_string(),
        seed,
        required: required.map(str::to_string),
        passed,
        targets,
    }
}

fn row(e: &BakeoffEntry<'_>) -> TargetRow {
    let s = e.summary;
    let applied: Vec<_> = s
        .faults
        .iter()
        .filter(|w| w.not_applied.is_none())
        .collect();
    let (affected, ok) = applied.iter().fold((0u64, 0u64), |(a, o), w| {
        (a + w.affected_requests, o + w.affected_successes)
    });
    let slowest = |get: fn(&crate::metrics::FaultWindow) -> Option<f64>| {
        let values: Vec<Option<f64>> = applied.iter().map(|w| get(w)).collect();
        if values.is_empty() || values.iter().any(Option::is_none) {
            None
        } else {
            Some(values.into_iter().flatten().fold(0.0, f64::max))
        }
    };
    let worst_p99 = |get: fn(&crate::metrics::FaultWindow) -> Option<f64>| {
        applied.iter().filter_map(|w| get(w)).reduce(f64::max)
    };
    let latency = &s.overall.latency_ms;
    TargetRow {
        name: e.name.to_string(),
        target: s.target.clone(),
        run_dir: e.run_dir.to_string(),
        verdict: s.sla.verdict,
        checks: s
            .sla
            .checks
            .iter()
            .map(|c| CheckCell {
                name: c.name,
                scope: c.scope.clone(),
                status: c.status,
                target: c.target,
                measured: c.measured,
                unit: c.unit.clone(),
            })
            .collect(),
        requests: s.overall.requests,
        p50_ms: (latency.samples > 0).then_some(latency.p50),
        p99_ms: (latency.samples > 0).then_some(latency.p99),
        ttft_p99_ms: s.overall.ttft_ms.filter(|p| p.samples > 0).map(|p| p.p99),
        availability: s.overall.availability,
        failover_success: (affected > 0).then(|| ok as f64 / affected as f64),
        time_to_failover_s: slowest(|w| w.time_to_failover_s),
        time_to_recover_s: slowest(|w| w.time_to_recover_s),
        outage_p99_ms: worst_p99(|w| {
            w.failed_over_latency_ms
                .filter(|p| p.samples > 0)
                .map(|p| p.p99)
        }),
        outside_p99_ms: worst_p99(|w| w.normal_latency_ms.filter(|p| p.samples > 0).map(|p| p.p99)),
        retry_amplification: s.retry_amplification,
        errors: s.overall.errors.clone(),
        cost_per_million_requests_usd: s.cost.as_ref().map(|c| c.per_million_requests_usd),
        best: BTreeSet::new(),
    }
}

/// Marks, per column, every row holding the best value; a column only one row (or none) has
/// a value in marks nothing, since there is nothing to compare.
fn mark_best(rows: &mut [TargetRow]) {
    for col in BakeoffColumn::ALL {
        let values: Vec<Option<f64>> = rows.iter().map(|r| col.value(r)).collect();
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        if present.len() < 2 {
            continue;
        }
        let best = if col.higher_is_better() {
            present.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        } else {
            present.iter().copied().fold(f64::INFINITY, f64::min)
        };
        for (r, v) in rows.iter_mut().zip(values) {
            if v.is_some_and(|v| (v - best).abs() <= best.abs() * 1e-9) {
                r.best.insert(col.key().to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_with(name: &str, p99: Option<f64>, availability: f64) -> TargetRow {
        TargetRow {
            name: name.into(),
            target: name.into(),
            run_dir: name.into(),
            verdict: CheckStatus::Pass,
            checks: Vec::new(),
            requests: 10,
            p50_ms: None,
            p99_ms: p99,
            ttft_p99_ms: None,
            availability,
            failover_success: None,
            time_to_failover_s: None,
            time_to_recover_s: None,
            outage_p99_ms: None,
            outside_p99_ms: None,
            retry_amplification: None,
            errors: BTreeMap::new(),
            cost_per_million_requests_usd: None,
            best: BTreeSet::new(),
        }
    }

    #[test]
    fn best_is_lowest_latency_and_highest_availability_ties_both() {
        let mut rows = vec![
            row_with("a", Some(120.0), 0.99),
            row_with("b", Some(80.0), 1.0),
            row_with("c", None, 1.0),
        ];
        mark_best(&mut rows);
        assert!(rows[1].best.contains("p99"));
        assert!(!rows[0].best.contains("p99"));
        assert!(!rows[2].best.contains("p99"), "no value, never best");
        assert!(rows[1].best.contains("availability") && rows[2].best.contains("availability"));
        assert!(!rows[0].best.contains("availability"));
        // Nothing to compare: no row has a cost.
        assert!(rows.iter().all(|r| !r.best.contains("cost")));
    }
}
