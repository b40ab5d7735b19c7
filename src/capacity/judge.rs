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
        binding(&self.checks)
    }
}

/// The first check that failed among `checks`, if one did.
pub fn binding(checks: &[CheckJudgement]) -> Option<&CheckJudgement> {
    checks.iter().find(|c| c.verdict == Verdict::Fail)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::failover::tests::outage_summary;
    use crate::metrics::{Misses, SlaResult, Trust};

    /// An availability check of `scope` on `count` misses of `of`, allowing 1%, with the run's
    /// own verdict `status`.
    fn share_check(scope: &str, count: u64, of: u64, status: CheckStatus) -> SlaCheck {
        SlaCheck {
            name: SlaKey::Availability,
            scope: scope.into(),
            target: 0.99,
            measured: Some(1.0 - count as f64 / of as f64),
            unit: "ratio".into(),
            samples: of,
            status,
            note: None,
            misses: Some(Misses {
                count,
                of,
                allowed: 0.01,
            }),
        }
    }

    fn point_check(name: SlaKey, status: CheckStatus) -> SlaCheck {
        SlaCheck {
            name,
            scope: "class:premium".into(),
            target: 1.0,
            measured: Some(2.0),
            unit: "s".into(),
            samples: 1,
            status,
            note: Some("the note".into()),
            misses: None,
        }
    }

    fn summary(checks: Vec<SlaCheck>, trustworthy: bool) -> Summary {
        let mut s = outage_summary();
        s.sla = SlaResult {
            checks,
            ..SlaResult::default()
        };
        s.trust = Trust {
            trustworthy,
            reasons: if trustworthy {
                Vec::new()
            } else {
                vec!["3 requests were dropped".into()]
            },
        };
        s
    }

    #[test]
    fn a_share_is_judged_by_which_side_of_the_allowed_share_its_interval_lies() {
        let pass = CheckStatus::Pass;
        // 0 of 1,000: the interval's top (0.38%) is under 1%.
        let j = judge(&summary(vec![share_check("overall", 0, 1000, pass)], true));
        assert_eq!(j.verdict, Verdict::Pass);
        assert_eq!(j.why, "every check holds");
        assert!(j.binding().is_none());
        let c = &j.checks[0];
        assert_eq!(
            (c.misses, c.samples, c.allowed_miss_share),
            (Some(0), 1000, Some(0.01))
        );
        let [lo, hi] = c.miss_share_interval.unwrap();
        assert!(
            lo.abs() < 1e-12 && (hi - 0.003_83).abs() < 1e-4,
            "{lo} {hi}"
        );
        // 12 of 1,000 straddles 1%: unresolved, whatever the point estimate says.
        let j = judge(&summary(
            vec![share_check("overall", 12, 1000, CheckStatus::Fail)],
            true,
        ));
        assert_eq!(j.verdict, Verdict::Unresolved);
        assert!(
            j.why
                .starts_with("availability overall is unresolved: 12 of 1000"),
            "{}",
            j.why
        );
        // 50 of 1,000 is beyond: a failure, and the binding check.
        let j = judge(&summary(
            vec![
                share_check("overall", 0, 1000, pass),
                share_check("class:premium", 50, 1000, CheckStatus::Fail),
            ],
            true,
        ));
        assert_eq!(j.verdict, Verdict::Fail);
        assert_eq!(
            j.binding().unwrap().describe(),
            "availability of class premium"
        );
        assert!(
            j.why.starts_with("availability of class premium failed"),
            "{}",
            j.why
        );
        // A share within its target that the run itself calls inconclusive is not a pass.
        let j = judge(&summary(
            vec![share_check("overall", 0, 1000, CheckStatus::Inconclusive)],
            true,
        ));
        assert_eq!(j.verdict, Verdict::Unresolved);
    }

    #[test]
    fn checks_that_are_not_shares_keep_the_runs_verdict_and_a_failure_wins() {
        let j = judge(&summary(
            vec![
                point_check(SlaKey::MaxFailoverTime, CheckStatus::Inconclusive),
                point_check(SlaKey::MaxRecoveryTime, CheckStatus::Fail),
            ],
            true,
        ));
        assert_eq!(j.verdict, Verdict::Fail);
        assert_eq!(j.binding().unwrap().name, SlaKey::MaxRecoveryTime);
        assert_eq!(j.checks[0].verdict, Verdict::Unresolved);
        assert!(
            j.checks[1].why.contains("(the note)"),
            "{}",
            j.checks[1].why
        );
        let j = judge(&summary(
            vec![point_check(SlaKey::MaxFailoverTime, CheckStatus::Pass)],
            true,
        ));
        assert_eq!(j.verdict, Verdict::Pass);
    }

    #[test]
    fn an_untrusted_generator_invalidates_what_did_not_fail() {
        let ok = share_check("overall", 0, 1000, CheckStatus::Pass);
        let j = judge(&summary(vec![ok.clone()], false));
        assert_eq!(j.verdict, Verdict::Invalid);
        assert!(j.why.contains("3 requests were dropped"), "{}", j.why);
        let unsure = share_check("overall", 12, 1000, CheckStatus::Fail);
        assert_eq!(
            judge(&summary(vec![unsure], false)).verdict,
            Verdict::Invalid
        );
        // A failure on what was sent stands.
        let bad = share_check("overall", 50, 1000, CheckStatus::Fail);
        assert_eq!(judge(&summary(vec![bad], false)).verdict, Verdict::Fail);
        // Nothing to judge is not a pass either.
        assert_eq!(judge(&summary(Vec::new(), true)).verdict, Verdict::Invalid);
        assert_eq!(Verdict::Unresolved.as_str(), "unresolved");
        assert_eq!(Verdict::Invalid.as_str(), "invalid");
    }
}
