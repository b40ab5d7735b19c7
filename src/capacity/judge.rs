//! One probe's verdict from its run's `Summary`: every SLA check as a statistical test where
//! it is a share of samples, the run's own verdict elsewhere, and the generator's trust.

use serde::{Deserialize, Serialize};

use super::interval::{Position, Z_95, side, wilson};
use crate::metrics::{CheckStatus, SlaCheck, Summary};
use crate::scenario::SlaKey;

/// What one probe says about its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check holds with confidence.
    Pass,
    /// A check is broken with confidence.
    Fail,
    /// Some check cannot be told apart from its target yet: never counted as a pass.
    Unresolved,
    /// The generator did not keep the schedule, and nothing failed on what it did send: the
    /// probe measured gauntlet, not the system.
    Invalid,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unresolved => "unresolved",
            Self::Invalid => "invalid",
        }
    }
}

/// One SLA check of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckJudgement {
    pub name: SlaKey,
    /// `overall`, `class:<name>` or `tier:<name>`.
    pub scope: String,
    pub unit: String,
    pub target: f64,
    pub measured: Option<f64>,
    /// Samples that missed the promise, out of how many, for a check on a share of samples.
    pub misses: Option<u64>,
    pub samples: u64,
    /// The share of samples that may miss while the promise holds.
    pub allowed_miss_share: Option<f64>,
    /// 95% Wilson interval of the share that missed.
    pub miss_share_interval: Option<[f64; 2]>,
    pub verdict: Verdict,
    pub why: String,
}

impl CheckJudgement {
    /// "ttft_p99 of class premium".
    pub fn describe(&self) -> String {
        match self.scope.split_once(':') {
            Some((kind, name)) => format!("{} of {kind} {name}", self.name),
            None => format!("{} overall", self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeJudgement {
    pub verdict: Verdict,
    pub checks: Vec<CheckJudgement>,
    pub why: String,
}

impl ProbeJudgement {
    /// The first check that failed, if one did.
    pub fn binding(&self) -> Option<&CheckJudgement> {
        self.checks.iter().find(|c| c.verdict == Verdict::Fail)
    }
}

/// Judges a probe's run.
pub fn judge(summary: &Summary) -> ProbeJudgement {
    let checks: Vec<CheckJudgement> = summary.sla.checks.iter().map(check).collect();
    let first = |v: Verdict| checks.iter().find(|c| c.verdict == v);
    let (mut verdict, mut why) = if let Some(c) = first(Verdict::Fail) {
        (Verdict::Fail, format!("{} failed: {}", c.describe(), c.why))
    } else if let Some(c) = first(Verdict::Unresolved) {
        (
            Verdict::Unresolved,
            format!("{} is unresolved: {}", c.describe(), c.why),
        )
    } else {
        (Verdict::Pass, "every check holds".to_string())
    };
    // Dropped requests and late sends only hide load: a check that failed on what was sent
    // would have failed at least as badly with it, but a pass proves nothing.
    if !summary.trust.trustworthy && verdict != Verdict::Fail {
        verdict = Verdict::Invalid;
        why = format!(
            "the load generator did not keep the schedule ({})",
            summary.trust.reasons.join("; ")
        );
    }
    if summary.sla.checks.is_empty() {
        verdict = Verdict::Invalid;
        why = "the scenario has no [sla] check to search on".into();
    }
    ProbeJudgement {
        verdict,
        checks,
        why,
    }
}

fn check(c: &SlaCheck) -> CheckJudgement {
    let interval = c.misses.map(|m| wilson(m.count, m.of, Z_95));
    let (verdict, why) = match (c.misses, interval) {
        (Some(m), Some(iv)) => {
            let share = |x: f64| format!("{:.3}%", x * 100.0);
            let range = format!(
                "{} of {} missed, 95% interval {}..{} against {} allowed",
                m.count,
                m.of,
                share(iv.0),
                share(iv.1),
                share(m.allowed)
            );
            match (side(iv, m.allowed), c.status) {
                // The run's own verdict needs its samples too (p99 needs 1,000): a probe
                // never passes what `gauntlet run` would call inconclusive.
                (Position::Within, CheckStatus::Inconclusive) => (
                    Verdict::Unresolved,
                    format!(
                        "{range}; {}",
                        c.note
                            .as_deref()
                            .unwrap_or("the run's own check is inconclusive")
                    ),
                ),
                (Position::Within, _) => (Verdict::Pass, range),
                (Position::Beyond, _) => (Verdict::Fail, range),
                (Position::Straddles, _) => (Verdict::Unresolved, range),
            }
        }
        _ => {
            let note = c.note.clone().unwrap_or_default();
            let measured = c
                .measured
                .map_or("nothing".to_string(), |v| format!("{v:.3} {}", c.unit));
            let why = format!("measured {measured} against {} {}", c.target, c.unit);
            let why = if note.is_empty() {
                why
            } else {
                format!("{why} ({note})")
            };
            let verdict = match c.status {
                CheckStatus::Pass => Verdict::Pass,
                CheckStatus::Fail => Verdict::Fail,
                CheckStatus::Inconclusive => Verdict::Unresolved,
            };
            (verdict, why)
        }
    };
    CheckJudgement {
        name: c.name,
        scope: c.scope.clone(),
        unit: c.unit.clone(),
        target: c.target,
        measured: c.measured,
        misses: c.misses.map(|m| m.count),
        samples: c.misses.map_or(c.samples, |m| m.of),
        allowed_miss_share: c.misses.map(|m| m.allowed),
        miss_share_interval: interval.map(|(lo, hi)| [lo, hi]),
        verdict,
        why,
    }
}
