//! The SLA over a sliding window: the answers of the last `window`, judged into a `Summary`
//! by the same recorder, conclusion and SLA checks a run uses, as if the window were a run of
//! its own.

use std::borrow::Borrow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::metrics::cost::Price;
use crate::metrics::{
    self, Evidence, Layout, Recorder, RunInfo, Sample, ServedBy, Summary, Tokens,
};
use crate::scenario::Scenario;

/// Intervals of a window's time series, at least a second each.
const INTERVALS: u32 = 120;

/// What a window's summary says about the probe, beside its answers.
#[derive(Debug, Clone)]
pub struct Judge {
    scenario: Scenario,
    target: String,
    upstreams: Vec<String>,
    prices: BTreeMap<String, Price>,
    /// Wall-clock time at the probe's t = 0.
    started_at: SystemTime,
}

impl Judge {
    pub fn new(
        scenario: &Scenario,
        target: String,
        upstreams: Vec<String>,
        prices: BTreeMap<String, Price>,
        started_at: SystemTime,
    ) -> Self {
        Self {
            scenario: scenario.clone(),
            target,
            upstreams,
            prices,
            started_at,
        }
    }

    /// The summary of the answers intended in `[from, to)` on the probe's clock.
    pub fn summarize(
        &self,
        samples: impl IntoIterator<Item = impl Borrow<Sample>>,
        from: Duration,
        to: Duration,
        interrupted: bool,
    ) -> Summary {
        let length = to.saturating_sub(from).max(Duration::from_millis(1));
        let interval = (length / INTERVALS).max(Duration::from_secs(1));
        let layout = Layout::new(
            self.scenario
                .requests
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            self.upstreams.clone(),
            Duration::ZERO,
            interval,
            length,
        )
        .with_per_request(self.scenario.sla.per_request);
        let mut recorder = Recorder::new(layout);
        // What each upstream served, from the answers: a probe reads no upstream's counters.
        let mut answered: BTreeMap<String, Tokens> = BTreeMap::new();
        for s in samples {
            let s = s.borrow();
            let Some(at) = s.intended.checked_sub(from).filter(|d| *d < length) else {
                continue;
            };
            // The window is a run of its own: its clock starts at `from`.
            let mut shifted = s.clone();
            shifted.intended = at;
            recorder.record(&shifted);
            if let (Ok(()), Some(by)) = (s.result, &s.served_by) {
                let name = match by {
                    ServedBy::Known(i) => self.upstreams.get(usize::from(*i)).cloned(),
                    ServedBy::Other(name) => Some(name.to_string()),
                };
                let t = answered.entry(name.unwrap_or_default()).or_default();
                let got = s.tokens();
                t.prompt += got.prompt;
                t.completion += got.completion;
                t.cached += got.cached;
                t.reasoning += got.reasoning;
            }
        }
        let info = RunInfo {
            started_at: self.started_at + from,
            ran_for: length,
            interrupted,
            ..RunInfo::starting(&self.scenario, self.scenario.seed, self.target.clone())
        };
        let none = BTreeMap::new();
        metrics::conclude(Evidence {
            recording: &recorder,
            info: &info,
            // A probe never injects faults.
            faults: &[],
            // Nor reads counters of upstreams it does not own: what it measured is its own,
            // and the upstreams served the tokens their answers reported.
            counters_before: &none,
            counters_after: &none,
            answered_tokens: &answered,
            prices: &self.prices,
            sla: &self.scenario.sla,
            monthly_tokens: &metrics::cost::DEFAULT_MONTHLY_TOKENS,
            alternatives: &self.scenario.compare_to,
        })
    }
}

/// The answers of the last `length`, by intended send time; shared, so a report of them
/// copies no answer.
#[derive(Debug)]
pub struct SlidingWindow {
    length: Duration,
    samples: VecDeque<Arc<Sample>>,
}

impl SlidingWindow {
    pub fn new(length: Duration) -> Self {
        Self {
            length,
            samples: VecDeque::new(),
        }
    }

    /// Keeps an answer; ones intended before the window that ends at `now` are let go.
    pub fn record(&mut self, s: Sample, now: Duration) {
        self.samples.push_back(Arc::new(s));
        self.trim(now);
    }

    fn trim(&mut self, now: Duration) {
        let from = now.saturating_sub(self.length);
        // Answers arrive out of intended order by at most a timeout: a late one at the back
        // stays until it reaches the front, which only costs it a little longer in memory.
        while self.samples.front().is_some_and(|s| s.intended < from) {
            self.samples.pop_front();
        }
    }

    /// The window's answers, shared with whoever judges them off the loop.
    pub fn shared(&self) -> Vec<Arc<Sample>> {
        self.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CheckStatus, ErrorKind};

    fn scenario() -> Scenario {
        scenario_with_sla("availability = \"50%\"\n")
    }

    fn scenario_with_sla(sla: &str) -> Scenario {
        crate::scenario::load_str(
            "s.toml",
            format!(
                "[load]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"a\"\n\
                 model = \"m\"\nprompt = \"hi\"\n[target]\nurl = \"http://127.0.0.1:9\"\n\
                 [sla]\n{sla}"
            ),
        )
        .unwrap()
    }

    fn up_prices() -> BTreeMap<String, Price> {
        let price = Price {
            input_per_m: 1.0,
            output_per_m: 2.0,
            cached_input_per_m: None,
        };
        BTreeMap::from([("up".to_string(), price)])
    }

    fn at(ms: u64, ok: bool) -> Sample {
        let mut s = Sample::new(0, Duration::from_millis(ms), Duration::ZERO);
        s.latency = Duration::from_millis(5);
        if !ok {
            s.result = Err(ErrorKind::Status5xx);
        }
        s
    }

    #[test]
    fn a_window_is_judged_on_its_own_answers_only() {
        let judge = Judge::new(
            &scenario(),
            "http://127.0.0.1:9".into(),
            Vec::new(),
            BTreeMap::new(),
            SystemTime::UNIX_EPOCH,
        );
        let mut w = SlidingWindow::new(Duration::from_secs(10));
        // Three failures early, then four successes in the last 10 s.
        for ms in [1_000, 2_000, 3_000] {
            w.record(at(ms, false), Duration::from_millis(ms));
        }
        for ms in [14_000, 15_000, 16_000, 17_000] {
            w.record(at(ms, true), Duration::from_millis(ms));
        }
        assert_eq!(w.shared().len(), 4, "the failures left the window");
        let end = Duration::from_secs(20);
        let s = judge.summarize(w.shared(), end - Duration::from_secs(10), end, false);
        assert_eq!(s.overall.requests, 4);
        assert_eq!(s.sla.checks[0].status, CheckStatus::Pass);
        assert_eq!(s.duration_s, 10.0);
        // The same answers with the failures in: 3 of 7 failed, under 50% is still a pass;
        // all failures alone fail it.
        let all = [at(1_000, false), at(2_000, false)];
        let s = judge.summarize(all.iter(), Duration::ZERO, Duration::from_secs(10), false);
        assert_eq!(s.sla.checks[0].status, CheckStatus::Fail);
    }

    #[test]
    fn a_window_is_priced_from_its_answers_tokens() {
        let judge = Judge::new(
            &scenario(),
            "direct".into(),
            vec!["up".into()],
            up_prices(),
            SystemTime::UNIX_EPOCH,
        );
        let mut a = at(1_000, true);
        a.served_by = Some(ServedBy::Known(0));
        a.prompt_tokens = 1_000_000;
        a.completion_tokens = 500_000;
        let s = judge.summarize([&a], Duration::ZERO, Duration::from_secs(10), false);
        let up = &s.upstreams[0];
        assert_eq!((up.served, up.tokens.prompt), (1, 1_000_000));
        // $1 for the prompt, $1 for the completion.
        assert_eq!(s.cost.as_ref().map(|c| c.total_usd), Some(2.0));
    }

    #[test]
    fn a_cost_check_is_judged_on_the_answers_tokens() {
        // $2 a request is $2M per million requests: far past a $1 bound.
        let judge = Judge::new(
            &scenario_with_sla("max_cost_per_million = 1.0\n"),
            "direct".into(),
            vec!["up".into()],
            up_prices(),
            SystemTime::UNIX_EPOCH,
        );
        let mut a = at(1_000, true);
        a.served_by = Some(ServedBy::Known(0));
        a.prompt_tokens = 1_000_000;
        a.completion_tokens = 500_000;
        let s = judge.summarize([&a], Duration::ZERO, Duration::from_secs(10), false);
        assert_eq!(s.cost.as_ref().map(|c| c.total_usd), Some(2.0));
        assert_eq!(
            s.sla.checks[0].status,
            CheckStatus::Fail,
            "{:?}",
            s.sla.checks
        );
        assert_eq!(s.sla.verdict, CheckStatus::Fail);
    }
}
