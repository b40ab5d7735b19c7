//! What a capacity search found, as written to `capacity.json` (schema-versioned) and read
//! back by `gauntlet compare` and the report.

use serde::{Deserialize, Serialize};

use super::judge::{CheckJudgement, Verdict};

/// Bumped whenever a field changes meaning or goes away.
pub const CAPACITY_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    pub schema_version: u32,
    pub scenario: String,
    pub seed: u64,
    /// Answers per second (of any kind) of the closed-model probe: the whole path's ceiling.
    pub ceiling_rps: Option<f64>,
    /// The search with the scenario's faults, then (with `--no-faults`) the one without.
    pub searches: Vec<SearchResult>,
    /// `[capacity] at_least`: the capacity (with faults) CI demands.
    pub at_least: Option<f64>,
    /// Wall-clock seconds the whole search took.
    pub took_s: f64,
}

impl CapacityResult {
    /// The search run with the scenario's faults (the one `at_least` judges).
    pub fn with_faults(&self) -> Option<&SearchResult> {
        self.searches.iter().find(|s| s.faults)
    }

    pub fn healthy(&self) -> Option<&SearchResult> {
        self.searches.iter().find(|s| !s.faults)
    }

    /// The search found a capacity honestly and it meets `at_least`; a search the time
    /// budget cut short passes only when the capacity it had already proven meets `at_least`.
    pub fn passed(&self) -> bool {
        let proven = self.at_least.is_some() && self.at_least_met();
        let found = self.searches.iter().all(|s| match s.stop {
            StopReason::Converged | StopReason::ReachedMax => s.capacity_rps.is_some(),
            StopReason::Budget => proven,
            StopReason::BelowMin | StopReason::Invalid | StopReason::Interrupted => false,
        });
        found && self.at_least_met()
    }

    /// Whether the capacity CI demands is proven: unset, or at or below the highest pass.
    pub fn at_least_met(&self) -> bool {
        match (self.at_least, self.with_faults()) {
            (None, _) => true,
            (Some(want), Some(s)) => s.capacity_rps.is_some_and(|c| c >= want),
            (Some(_), None) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Whether the scenario's fault timeline ran during the probes.
    pub faults: bool,
    /// What the faults were, in words ("deepseek outage 8s–14s").
    pub fault_summary: Vec<String>,
    /// The highest offered rate whose probe passed, below every rate that did not.
    pub capacity_rps: Option<f64>,
    /// Highest pass and lowest rate that did not pass.
    pub bracket: [Option<f64>; 2],
    /// The check that failed at the lowest rate that did not pass.
    pub binding: Option<String>,
    pub stop: StopReason,
    pub probes: Vec<Probe>,
    /// Results that are not monotone in the rate, and what rerunning them showed.
    pub warnings: Vec<String>,
}

impl SearchResult {
    /// The search with faults, stopped before its first probe.
    pub fn interrupted_before_start() -> Self {
        Self {
            faults: true,
            fault_summary: Vec::new(),
            capacity_rps: None,
            bracket: [None, None],
            binding: None,
            stop: StopReason::Interrupted,
            probes: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Why the search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The bracket is within the tolerance.
    Converged,
    /// Every rate up to `--max` passed: the capacity is at least that.
    ReachedMax,
    /// `--min` did not pass: the capacity is below it.
    BelowMin,
    /// The time budget ran out; the bracket is as it stood.
    Budget,
    /// A probe's generator could not keep the schedule: the search cannot go on honestly.
    Invalid,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converged => "converged",
            Self::ReachedMax => "reached --max",
            Self::BelowMin => "below --min",
            Self::Budget => "time budget spent",
            Self::Invalid => "invalid probe",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Why a probe ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The closed-model probe that measures the ceiling.
    Ceiling,
    /// Raising the rate geometrically until a probe does not pass.
    Bracket,
    /// Halving the bracket.
    Bisect,
    /// The same rate again, longer, because a check could not be decided.
    Lengthen,
    /// The highest pass again, to confirm it before reporting it.
    Confirm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub index: usize,
    pub purpose: Purpose,
    /// Offered (scheduled) peak rate; None for the closed-model ceiling probe.
    pub offered_rps: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    /// Successful requests per second over the measured window.
    pub achieved_rps: f64,
    pub availability: f64,
    pub goodput: f64,
    pub p99_latency_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub verdict: Verdict,
    pub why: String,
    pub checks: Vec<CheckJudgement>,
    /// The probe's own run folder, relative to the search's folder.
    pub folder: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(stop: StopReason, capacity: Option<f64>, at_least: Option<f64>) -> CapacityResult {
        CapacityResult {
            schema_version: CAPACITY_SCHEMA_VERSION,
            scenario: "s".into(),
            seed: 1,
            ceiling_rps: None,
            searches: vec![SearchResult {
                faults: true,
                fault_summary: Vec::new(),
                capacity_rps: capacity,
                bracket: [capacity, None],
                binding: None,
                stop,
                probes: Vec::new(),
                warnings: Vec::new(),
            }],
            at_least,
            took_s: 0.0,
        }
    }

    #[test]
    fn the_verdict_needs_a_found_capacity_at_or_above_the_target() {
        use StopReason::*;
        let passed = |r: CapacityResult| r.passed();
        assert!(passed(result(Converged, Some(100.0), None)));
        assert!(passed(result(Converged, Some(100.0), Some(100.0))));
        assert!(!passed(result(Converged, Some(99.9), Some(100.0))));
        assert!(passed(result(ReachedMax, Some(100.0), None)));
        // Cut short by the budget: a pass only when the target is already proven.
        assert!(!passed(result(Budget, Some(100.0), None)));
        assert!(passed(result(Budget, Some(100.0), Some(80.0))));
        assert!(!passed(result(Budget, Some(70.0), Some(80.0))));
        for stop in [BelowMin, Invalid, Interrupted] {
            assert!(!passed(result(stop, Some(100.0), None)), "{stop:?}");
        }
    }
}
