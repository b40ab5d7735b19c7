//! The conclusion of a run: the evidence the engine gathered in, one `Summary` with its SLA
//! verdict out. This owns the order of the passes, since each reads what the one before wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use super::analysis::{RunInfo, summarize};
use super::cost::{self, Price};
use super::failover::{self, FaultAttempt, FaultOutcome};
use super::overhead;
use super::recorder::Recorder;
use super::sla::{self, Tail};
use super::summary::{Summary, Tokens, Trust};
use crate::scenario::{Scope, Sla};

/// An upstream's own counters at one moment, as its control API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounters {
    pub requests_total: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the upstream's prefix cache; 0 from mocks that do not say.
    pub cached_tokens: u64,
    /// Completion tokens spent reasoning.
    pub reasoning_tokens: u64,
}

/// Everything a run leaves behind that its conclusion rests on; no servers, no clocks.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub recording: &'a Recorder,
    pub info: &'a RunInfo,
    /// Every scheduled fault window, applied or not, in schedule order.
    pub faults: &'a [FaultAttempt],
    /// Each upstream's counters when measuring started and when the run ended; an upstream
    /// whose counters could not be read is absent (its numbers are then unknown, not zero).
    pub counters_before: &'a BTreeMap<String, UpstreamCounters>,
    pub counters_after: &'a BTreeMap<String, UpstreamCounters>,
    /// The tokens the answers reported, per upstream that served them: what an upstream
    /// without counters is taken to have served (a probe's, which reads no counters). Empty
    /// for a run, whose upstreams' own counters are what it accounts.
    pub answered_tokens: &'a BTreeMap<String, Tokens>,
    pub prices: &'a BTreeMap<String, Price>,
    pub sla: &'a Sla,
    /// Monthly token volumes to project the cost at.
    pub monthly_tokens: &'a [u64],
    /// `[cost] compare_to`: prices the measured tokens are also held against.
    pub alternatives: &'a [crate::scenario::Alternative],
}

/// The run's summary and verdict, from its evidence alone.
pub fn conclude(evidence: Evidence<'_>) -> Summary {
    let mut summary = summarize(evidence.recording, evidence.info);
    let target = sla::availability_target(evidence.sla);
    summary.faults = failover::analyze(&summary, evidence.faults, target);
    failover::window_latencies(evidence.recording, &mut summary);
    summary.overhead = overhead::analyze(evidence.recording, &summary);
    let after = without_direct(evidence.recording, evidence.info, evidence.counters_after);
    account_upstreams(
        &mut summary,
        evidence.counters_before,
        &after,
        evidence.answered_tokens,
    );
    summary.cost = cost::price(
        &mut summary,
        evidence.prices,
        evidence.monthly_tokens,
        evidence.alternatives,
    );
    distrust_broken_faults(&mut summary, evidence.faults);
    summary.sla = sla::evaluate(evidence.sla, &summary);
    sla::count_tails(&mut summary.sla, evidence.sla, |scope, tail, bound| {
        over_bound(evidence.recording, evidence.info, scope, tail, bound)
    });
    summary
}

/// Successful samples of a scope above `bound`, and how many there were, from the run's
/// cumulative histograms (microseconds, three significant digits: a sample within 0.1% of
/// the bound may be counted on either side of it).
fn over_bound(
    recording: &Recorder,
    info: &RunInfo,
    scope: &Scope,
    tail: Tail,
    bound: Duration,
) -> Option<(u64, u64)> {
    let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    let mut over = 0;
    let mut of = 0;
    let mut any = false;
    for (i, rec) in recording.classes().iter().enumerate() {
        let class = info.classes.get(i);
        let included = match scope {
            Scope::Overall => true,
            Scope::Class(c) => class.is_some_and(|k| &k.name == c),
            Scope::Tier(t) => class.is_some_and(|k| k.tier.as_ref() == Some(t)),
        };
        if !included {
            continue;
        }
        any = true;
        let h = match tail {
            Tail::Latency => &rec.latency,
            Tail::Ttft => &rec.ttft,
            Tail::Ttfot => &rec.ttfot,
            Tail::Tpot => &rec.tpot,
        };
        of += h.len();
        over += h.len() - h.count_between(0, bound_us).min(h.len());
    }
    any.then_some((over, of))
}

/// A fault the control API would not apply, or would not lift, means the run did not do
/// what the scenario says: its numbers describe some other run.
fn distrust_broken_faults(summary: &mut Summary, faults: &[FaultAttempt]) {
    let reasons = summary
        .faults
        .iter()
        .zip(faults)
        .filter_map(|(w, f)| match &f.outcome {
            FaultOutcome::Failed { error } => {
                Some(format!("{} could not be applied: {error}", w.describe()))
            }
            FaultOutcome::Applied { lifted: None, .. } => Some(format!(
                "{} could not be lifted; the upstream may have stayed broken past its window",
                w.describe()
            )),
            FaultOutcome::Applied { .. } | FaultOutcome::RunEnded { .. } => None,
        });
    let Trust {
        trustworthy,
        reasons: all,
    } = &mut summary.trust;
    all.extend(reasons);
    *trustworthy = all.is_empty();
}

/// The upstreams' closing counters less what the direct baseline brought each class's
/// primary: the gateway's received counts, tokens, cost and retry amplification are its own.
/// Only what the upstream itself saw and counted is taken out: requests that reached it, and
/// the tokens of answers whose usage it reported.
fn without_direct(
    recording: &Recorder,
    info: &RunInfo,
    after: &BTreeMap<String, UpstreamCounters>,
) -> BTreeMap<String, UpstreamCounters> {
    let mut after = after.clone();
    let Some(direct) = recording.direct() else {
        return after;
    };
    let upstreams = &recording.layout().upstreams;
    for (i, class) in info.classes.iter().enumerate() {
        // The baseline went where the engine sent it (`fleet::direct_targets`, which refuses
        // a run where a class has neither): the primary, or the only upstream.
        let primary = class.primary.as_ref().or(match upstreams.as_slice() {
            [only] => Some(only),
            _ => None,
        });
        // An upstream whose counters could not be read has nothing to take from.
        let Some(c) = primary.and_then(|p| after.get_mut(p)) else {
            continue;
        };
        let d = direct.counts(i);
        c.requests_total = c.requests_total.saturating_sub(d.reached());
        c.prompt_tokens = c.prompt_tokens.saturating_sub(d.tokens.prompt);
        c.completion_tokens = c.completion_tokens.saturating_sub(d.tokens.completion);
        c.cached_tokens = c.cached_tokens.saturating_sub(d.tokens.cached);
        c.reasoning_tokens = c.reasoning_tokens.saturating_sub(d.tokens.reasoning);
    }
    after
}

/// What each upstream received and generated during the measured window, from its own
/// counters (or, without them, the tokens its answers reported); retry amplification is what
/// they received over what the client sent.
fn account_upstreams(
    summary: &mut Summary,
    before: &BTreeMap<String, UpstreamCounters>,
    after: &BTreeMap<String, UpstreamCounters>,
    answered: &BTreeMap<String, Tokens>,
) {
    let mut served = BTreeMap::new();
    let mut received = BTreeMap::new();
    for (name, end) in after {
        let start = before.get(name).copied().unwrap_or_default();
        let tokens = Tokens {
            prompt: end.prompt_tokens.saturating_sub(start.prompt_tokens),
            completion: end
                .completion_tokens
                .saturating_sub(start.completion_tokens),
            cached: end.cached_tokens.saturating_sub(start.cached_tokens),
            reasoning: end.reasoning_tokens.saturating_sub(start.reasoning_tokens),
        };
        let count = summary.overall.served_by.get(name).copied().unwrap_or(0);
        served.insert(name.clone(), (count, tokens));
        received.insert(
            name.clone(),
            end.requests_total.saturating_sub(start.requests_total),
        );
    }
    for (name, &count) in &summary.overall.served_by {
        let tokens = answered.get(name).copied().unwrap_or_default();
        served.entry(name.clone()).or_insert((count, tokens));
    }
    summary.upstreams = cost::upstream_rows(&served, &received);
    let sent = summary
        .overall
        .requests
        .saturating_sub(summary.overall.dropped);
    let all_known = !after.is_empty() && summary.upstreams.iter().all(|u| u.received.is_some());
    summary.retry_amplification =
        (all_known && sent > 0).then(|| received.values().sum::<u64>() as f64 / sent as f64);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::metrics::summary::CheckStatus;
    use crate::metrics::{
        ClassInfo, ErrorKind, Layout, Sample, ServedBy, SlaKey, TokenSource, Via,
    };
    use crate::scenario::{Objective, Scope, SlaTarget};

    const A: u16 = 0;
    const B: u16 = 1;

    /// One class whose primary is `a`, `rate` requests a second for `ran_for`; `during` says
    /// what becomes of the requests sent inside the outage window 8 s..14 s (the rest are
    /// served by `a`).
    fn recording(rate: u64, ran_for: Duration, during: Option<u16>) -> (Recorder, RunInfo) {
        let layout = Layout::new(
            vec!["everyday".into()],
            vec!["a".into(), "b".into()],
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(20),
        );
        let mut rec = Recorder::new(layout);
        let gap = 1000 / rate;
        for ms in (0..ran_for.as_millis() as u64).step_by(gap as usize) {
            let mut s = Sample::new(0, Duration::from_millis(ms), Duration::ZERO);
            s.latency = Duration::from_millis(40);
            let by = if (8_000..14_000).contains(&ms) {
                during
            } else {
                Some(A)
            };
            match by {
                Some(up) => {
                    s.served_by = Some(ServedBy::Known(up));
                    s.prompt_tokens = 10;
                    s.completion_tokens = 30;
                }
                None => s.result = Err(ErrorKind::Status5xx),
            }
            rec.record(&s);
        }
        let info = RunInfo {
            scenario: "outage".into(),
            description: None,
            seed: 1,
            target: "embedded gateway".into(),
            started_at: SystemTime::UNIX_EPOCH,
            ran_for,
            interrupted: ran_for < Duration::from_secs(20),
            classes: vec![ClassInfo {
                name: "everyday".into(),
                weight: 1,
                model: "m".into(),
                stream: false,
                api: "chat",
                primary: Some("a".into()),
                tier: None,
            }],
        };
        (rec, info)
    }

    fn outage(outcome: FaultOutcome) -> FaultAttempt {
        FaultAttempt {
            upstream: "a".into(),
            kind: "outage".into(),
            start: Duration::from_secs(8),
            end: Duration::from_secs(14),
            outcome,
        }
    }

    fn applied() -> FaultOutcome {
        FaultOutcome::Applied {
            at: Duration::from_millis(8_002),
            lifted: Some(Duration::from_millis(14_001)),
        }
    }

    fn failover_sla() -> Sla {
        let overall = |objective| SlaTarget {
            scope: Scope::Overall,
            objective,
        };
        Sla {
            targets: vec![
                overall(Objective::Availability(0.5)),
                overall(Objective::FailoverSuccess(0.99)),
                overall(Objective::MaxFailoverTime(Duration::from_secs(1))),
                overall(Objective::MaxRecoveryTime(Duration::from_secs(2))),
            ],
            ..Default::default()
        }
    }

    fn counters(requests: u64, prompt: u64) -> UpstreamCounters {
        UpstreamCounters {
            requests_total: requests,
            prompt_tokens: prompt,
            completion_tokens: prompt * 3,
            ..UpstreamCounters::default()
        }
    }

    #[test]
    fn the_baseline_is_taken_out_only_as_far_as_the_upstream_saw_it() {
        let layout = Layout::new(
            vec!["everyday".into()],
            vec!["a".into(), "b".into()],
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(20),
        )
        .with_baseline(true);
        let mut rec = Recorder::new(layout);
        let direct = |ms| {
            let mut s = Sample::new(0, Duration::from_millis(ms), Duration::ZERO);
            s.route = Via::Direct;
            s
        };
        // Reached `a`, which reported its usage.
        let mut counted = direct(100);
        (counted.prompt_tokens, counted.completion_tokens) = (10, 30);
        counted.prompt_tokens_from = TokenSource::Usage;
        rec.record(&counted);
        // No connection could be made: `a` never saw it.
        let mut refused = direct(200);
        refused.result = Err(ErrorKind::Connect);
        rec.record(&refused);
        // Reached `a`, answered without usage: its prompt is gauntlet's tokenizer estimate.
        let mut estimated = direct(300);
        (estimated.prompt_tokens, estimated.completion_tokens) = (7, 5);
        rec.record(&estimated);
        // Never sent.
        rec.record_dropped_direct(0, Duration::from_millis(400));
        let (_, info) = recording(5, Duration::from_secs(1), Some(A));
        let after = BTreeMap::from([
            ("a".into(), counters(100, 1_000)),
            ("b".into(), counters(10, 100)),
        ]);
        let left = without_direct(&rec, &info, &after);
        let a = UpstreamCounters {
            requests_total: 98,
            prompt_tokens: 990,
            completion_tokens: 2_970,
            ..UpstreamCounters::default()
        };
        assert_eq!(left["a"], a, "two requests reached it, one with its usage");
        assert_eq!(left["b"], after["b"], "the baseline never went to b");
    }

    /// A class that names no primary, in a run with one upstream: its baseline went to that
    /// upstream (`fleet::direct_targets`), so that is where it is taken from.
    #[test]
    fn with_one_upstream_and_no_primary_the_baseline_is_taken_from_it() {
        let layout = Layout::new(
            vec!["everyday".into()],
            vec!["a".into()],
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(20),
        )
        .with_baseline(true);
        let mut rec = Recorder::new(layout);
        let mut s = Sample::new(0, Duration::from_millis(100), Duration::ZERO);
        s.route = Via::Direct;
        (s.prompt_tokens, s.completion_tokens) = (10, 30);
        s.prompt_tokens_from = TokenSource::Usage;
        rec.record(&s);
        let (_, mut info) = recording(5, Duration::from_secs(1), None);
        info.classes[0].primary = None;
        let after = BTreeMap::from([("a".into(), counters(100, 1_000))]);
        let left = &without_direct(&rec, &info, &after)["a"];
        assert_eq!(
            (
                left.requests_total,
                left.prompt_tokens,
                left.completion_tokens
            ),
            (99, 990, 2_970)
        );
    }

    /// Retry amplification is what the upstreams received over what was sent, and only when
    /// every upstream's counters were read and something was sent: otherwise it is unknown,
    /// never a number made of the counters that happened to answer.
    #[test]
    fn retry_amplification_needs_every_upstreams_counters_and_a_request_sent() {
        let amplification = |ran_for, after: &[(&str, u64)], named: bool| {
            let (rec, info) = recording(100, ran_for, Some(B));
            let mut s = summarize(&rec, &info);
            if !named {
                // A gateway that does not say which upstream answered.
                s.overall.served_by.clear();
            }
            let after = after
                .iter()
                .map(|(name, received)| (name.to_string(), counters(*received, 0)))
                .collect();
            account_upstreams(&mut s, &BTreeMap::new(), &after, &BTreeMap::new());
            s.retry_amplification
        };
        let run = Duration::from_secs(20);
        // 2,000 sent; a received 1,500 and b 600.
        let both = [("a", 1_500), ("b", 600)];
        assert_eq!(amplification(run, &both, true), Some(1.05));
        assert_eq!(
            amplification(run, &[("a", 1_500)], true),
            None,
            "b served answers but its counters were not read"
        );
        assert_eq!(amplification(run, &[], false), None, "no counters at all");
        assert_eq!(
            amplification(Duration::ZERO, &[("a", 0), ("b", 0)], true),
            None,
            "nothing was sent"
        );
    }

    fn run(rec: &Recorder, info: &RunInfo, faults: &[FaultAttempt], sla: &Sla) -> Summary {
        let before = BTreeMap::from([
            ("a".into(), counters(50, 500)),
            ("b".into(), counters(0, 0)),
        ]);
        let after = BTreeMap::from([
            ("a".into(), counters(50 + 1400, 500 + 14_000)),
            ("b".into(), counters(600, 6_000)),
        ]);
        let price = |p| Price {
            input_per_m: p,
            output_per_m: p,
            cached_input_per_m: None,
        };
        let prices = BTreeMap::from([("a".into(), price(1.0)), ("b".into(), price(10.0))]);
        conclude(Evidence {
            recording: rec,
            info,
            faults,
            counters_before: &before,
            counters_after: &after,
            answered_tokens: &BTreeMap::new(),
            prices: &prices,
            sla,
            monthly_tokens: &[1_000_000],
            alternatives: &[],
        })
    }

    fn status(s: &Summary, key: SlaKey) -> (CheckStatus, Option<String>) {
        let c = s.sla.checks.iter().find(|c| c.name == key);
        c.map_or((CheckStatus::Pass, Some("no such check".into())), |c| {
            (c.status, c.note.clone())
        })
    }

    #[test]
    fn an_outage_that_failed_over_passes_and_is_accounted() {
        let (rec, info) = recording(100, Duration::from_secs(20), Some(B));
        let s = run(&rec, &info, &[outage(applied())], &failover_sla());
        assert_eq!(s.sla.verdict, CheckStatus::Pass, "{:#?}", s.sla.checks);
        let w = &s.faults[0];
        assert_eq!((w.affected_requests, w.affected_successes), (600, 600));
        assert_eq!(w.time_to_failover_s, Some(0.0));
        assert_eq!(w.time_to_recover_s, Some(0.0));
        assert_eq!(w.applied_at_s, Some(8.002));
        assert!(w.failed_over_latency_ms.is_some() && w.normal_latency_ms.is_some());
        // The upstreams' own counters: 2,000 sent, 2,000 received; a's tokens net of warmup.
        assert_eq!(s.retry_amplification, Some(1.0));
        let a = &s.upstreams[0];
        assert_eq!(
            (a.name.as_str(), a.received, a.served),
            ("a", Some(1400), 1400)
        );
        assert_eq!(a.tokens.prompt, 14_000);
        let cost = s.cost.as_ref().map_or(0.0, |c| c.total_usd);
        assert!((cost - (56_000.0 * 1.0 + 24_000.0 * 10.0) / 1e6).abs() < 1e-12);
        assert!(s.trust.trustworthy, "{:?}", s.trust.reasons);
    }

    #[test]
    fn an_outage_that_did_not_fail_over_fails() {
        let (rec, info) = recording(100, Duration::from_secs(20), None);
        let s = run(&rec, &info, &[outage(applied())], &failover_sla());
        assert_eq!(s.sla.verdict, CheckStatus::Fail);
        assert_eq!(status(&s, SlaKey::FailoverSuccess).0, CheckStatus::Fail);
        let (st, note) = status(&s, SlaKey::MaxFailoverTime);
        assert_eq!(st, CheckStatus::Fail);
        assert_eq!(
            note.as_deref(),
            Some("never back at target during the fault")
        );
        // The primary served again at once after the fault.
        assert_eq!(status(&s, SlaKey::MaxRecoveryTime).0, CheckStatus::Pass);
    }

    #[test]
    fn too_few_affected_requests_cannot_support_the_failover_target() {
        // 5 a second: 30 requests during the outage, but 99% needs at least 100.
        let (rec, info) = recording(5, Duration::from_secs(20), Some(B));
        let s = run(&rec, &info, &[outage(applied())], &failover_sla());
        let (st, note) = status(&s, SlaKey::FailoverSuccess);
        assert_eq!(st, CheckStatus::Inconclusive);
        assert!(note.is_some_and(|n| n.starts_with("30 samples cannot support")));
        assert_eq!(status(&s, SlaKey::MaxFailoverTime).0, CheckStatus::Pass);
        assert_eq!(s.sla.verdict, CheckStatus::Inconclusive);
        assert!(!s.sla.passed);
    }

    #[test]
    fn a_fault_the_run_stopped_before_is_not_judged() {
        // Ctrl-C at 6 s, before the 8 s outage: nothing failed over because nothing broke.
        let at = Duration::from_secs(6);
        let (rec, info) = recording(100, at, None);
        let s = run(
            &rec,
            &info,
            &[outage(FaultOutcome::RunEnded { at })],
            &failover_sla(),
        );
        let why = "the outage on a at 8.0 s was never applied: the run stopped at 6.0 s";
        for key in [
            SlaKey::FailoverSuccess,
            SlaKey::MaxFailoverTime,
            SlaKey::MaxRecoveryTime,
        ] {
            assert_eq!(
                status(&s, key),
                (CheckStatus::Inconclusive, Some(why.into())),
                "{key}"
            );
        }
        assert_eq!(status(&s, SlaKey::Availability).0, CheckStatus::Pass);
        assert_eq!(s.sla.verdict, CheckStatus::Inconclusive);
        assert_eq!(s.faults[0].applied_at_s, None);
        assert_eq!(s.faults[0].affected_requests, 0);
        // Stopping is the user's choice, not a broken run.
        assert!(s.trust.trustworthy, "{:?}", s.trust.reasons);
    }

    #[test]
    fn a_fault_the_control_api_refused_makes_the_run_untrustworthy() {
        // The outage never happened, so every request succeeded on `a`.
        let (rec, info) = recording(100, Duration::from_secs(20), Some(A));
        let error = "the control API answered 401 Unauthorized".to_string();
        let faults = [outage(FaultOutcome::Failed {
            error: error.clone(),
        })];
        let s = run(&rec, &info, &faults, &failover_sla());
        assert!(!s.trust.trustworthy);
        assert_eq!(
            s.trust.reasons,
            [format!(
                "the outage on a at 8.0 s could not be applied: {error}"
            )]
        );
        for key in [
            SlaKey::FailoverSuccess,
            SlaKey::MaxFailoverTime,
            SlaKey::MaxRecoveryTime,
        ] {
            let (st, note) = status(&s, key);
            assert_eq!(st, CheckStatus::Inconclusive, "{key}");
            assert!(note.is_some_and(|n| n.ends_with(&error)), "{key}");
        }
        assert_eq!(s.sla.verdict, CheckStatus::Inconclusive);
    }

    #[test]
    fn a_run_stopped_early_in_the_fault_cannot_say_never() {
        // Stopped 0.5 s into the outage, before anything came back: too soon to judge a 1 s
        // bound, and recovery was never watched.
        let (rec, info) = recording(100, Duration::from_millis(8_500), None);
        let lifted = FaultOutcome::Applied {
            at: Duration::from_millis(8_002),
            lifted: Some(Duration::from_millis(8_510)),
        };
        let s = run(&rec, &info, &[outage(lifted)], &failover_sla());
        let (st, note) = status(&s, SlaKey::MaxFailoverTime);
        assert_eq!(st, CheckStatus::Inconclusive);
        assert_eq!(
            note.as_deref(),
            Some("the run ended 0.5 s into the fault, too soon to tell")
        );
        assert_eq!(
            status(&s, SlaKey::MaxRecoveryTime).0,
            CheckStatus::Inconclusive
        );
        // What did happen is still judged: every affected request failed.
        assert_eq!(status(&s, SlaKey::FailoverSuccess).0, CheckStatus::Fail);
    }
}
