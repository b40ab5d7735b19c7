//! Multiwindow burn-rate alerts (the SRE workbook's): how fast each SLO's error budget burns
//! over each alert's long and short window, and the alerts that start or stop firing.
//!
//! The burn rate of a window is its bad share over the share the SLO allows: 1 spends the
//! budget exactly over the SLO period, 14.4 spends 2% of a 30-day budget in an hour. An alert
//! fires while both windows burn faster than its factor (the long one says the burn has
//! lasted, the short one that it is still going on, so it clears soon after it stops).

use std::collections::VecDeque;
use std::time::Duration;

use crate::metrics::Sample;
use crate::scenario::{BurnAlert, Objective, Scope, Sla};

/// The error budgets a probe alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slo {
    /// Requests that failed, out of all requests.
    Availability,
    /// Successful requests slower than the latency target, out of the successful ones.
    Latency,
}

impl Slo {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Availability => "availability",
            Self::Latency => "latency",
        }
    }
}

/// One SLO's budget: the share of its requests allowed to be bad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorBudget {
    pub slo: Slo,
    pub allowed: f64,
    /// The latency target, for `Slo::Latency`.
    pub bound: Option<Duration>,
}

/// A p99 bound lets 1% of requests past it.
const P99_ALLOWED: f64 = 0.01;

/// The budgets the overall `[sla]` defines: `availability` and `p99_latency`.
pub fn budgets(sla: &Sla) -> Vec<ErrorBudget> {
    let mut out = Vec::new();
    for t in sla.targets.iter().filter(|t| t.scope == Scope::Overall) {
        match t.objective {
            Objective::Availability(a) => out.push(ErrorBudget {
                slo: Slo::Availability,
                allowed: (1.0 - a).max(0.0),
                bound: None,
            }),
            Objective::P99Latency(d) => out.push(ErrorBudget {
                slo: Slo::Latency,
                allowed: P99_ALLOWED,
                bound: Some(d),
            }),
            _ => {}
        }
    }
    // Availability first, whatever order `[sla]` lists them in.
    out.sort_by_key(|b| b.slo);
    out
}

/// The burn rate of `bad` out of `total` against a budget allowing `allowed` of them; no
/// requests burn nothing, and any bad request burns a zero budget infinitely fast.
pub fn burn_rate(bad: u64, total: u64, allowed: f64) -> f64 {
    if total == 0 || bad == 0 {
        return 0.0;
    }
    let share = bad as f64 / total as f64;
    if allowed <= 0.0 {
        return f64::INFINITY;
    }
    share / allowed
}

/// One answer as the windows count it, at the time it was known.
#[derive(Debug, Clone, Copy)]
struct Answered {
    at: Duration,
    failed: bool,
    latency: Duration,
}

/// A burn rate over one window, with what it rests on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burn {
    pub bad: u64,
    pub total: u64,
    pub rate: f64,
}

/// An alert that started (`firing`) or stopped firing for one SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub alert: String,
    pub slo: Slo,
    pub firing: bool,
    pub factor: f64,
    pub long_window: Duration,
    pub short_window: Duration,
    pub long: Burn,
    pub short: Burn,
}

/// What one judgement found: the alerts that started or stopped firing, and every window's
/// burn it computed on the way (for the gauges).
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub transitions: Vec<Transition>,
    /// Each alert's long and short window, for each budget: the SLO, the window and its burn.
    pub burns: Vec<(Slo, Duration, Burn)>,
}

/// The answers of the longest window, and which alerts fire.
#[derive(Debug)]
pub struct BurnWatch {
    alerts: Vec<BurnAlert>,
    budgets: Vec<ErrorBudget>,
    events: VecDeque<Answered>,
    horizon: Duration,
    /// `alerts x budgets`, row-major by alert.
    firing: Vec<bool>,
}

impl BurnWatch {
    pub fn new(alerts: Vec<BurnAlert>, budgets: Vec<ErrorBudget>) -> Self {
        let horizon = alerts.iter().map(|a| a.long).max().unwrap_or_default();
        let firing = vec![false; alerts.len() * budgets.len()];
        Self {
            alerts,
            budgets,
            events: VecDeque::new(),
            horizon,
            firing,
        }
    }

    /// Counts an answer known at `at` (on the probe's clock).
    pub fn record(&mut self, at: Duration, s: &Sample) {
        self.events.push_back(Answered {
            at,
            failed: s.result.is_err(),
            latency: s.latency,
        });
    }

    /// The burn of `budget` over the `window` that ends at `now`.
    pub fn burn(&self, budget: &ErrorBudget, window: Duration, now: Duration) -> Burn {
        let from = now.saturating_sub(window);
        let (mut bad, mut total) = (0u64, 0u64);
        // Newest last: walk back until the window's start.
        for e in self.events.iter().rev().take_while(|e| e.at > from) {
            match budget.slo {
                Slo::Availability => {
                    total += 1;
                    bad += u64::from(e.failed);
                }
                Slo::Latency if !e.failed => {
                    total += 1;
                    bad += u64::from(budget.bound.is_some_and(|b| e.latency > b));
                }
                Slo::Latency => {}
            }
        }
        Burn {
            bad,
            total,
            rate: burn_rate(bad, total, budget.allowed),
        }
    }

    /// Judges every alert at `now` (on the probe's clock, so also how long it has run). An
    /// alert is judged once the probe has run for its short window: before that, the first
    /// answer alone would decide it.
    pub fn evaluate(&mut self, now: Duration) -> Judgement {
        let from = now.saturating_sub(self.horizon);
        while self.events.front().is_some_and(|e| e.at <= from) {
            self.events.pop_front();
        }
        let mut out = Judgement {
            transitions: Vec::new(),
            burns: Vec::new(),
        };
        for (ai, alert) in self.alerts.iter().enumerate() {
            for (bi, budget) in self.budgets.iter().enumerate() {
                let long = self.burn(budget, alert.long, now);
                let short = self.burn(budget, alert.short, now);
                out.burns.push((budget.slo, alert.long, long));
                out.burns.push((budget.slo, alert.short, short));
                let fires =
                    now >= alert.short && long.rate > alert.factor && short.rate > alert.factor;
                let Some(slot) = self.firing.get_mut(ai * self.budgets.len() + bi) else {
                    continue;
                };
                if *slot != fires {
                    *slot = fires;
                    out.transitions.push(Transition {
                        alert: alert.name.clone(),
                        slo: budget.slo,
                        firing: fires,
                        factor: alert.factor,
                        long_window: alert.long,
                        short_window: alert.short,
                        long,
                        short,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorKind;

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn sample(failed: bool, latency_ms: u64) -> Sample {
        let mut s = Sample::new(0, Duration::ZERO, Duration::ZERO);
        s.latency = Duration::from_millis(latency_ms);
        if failed {
            s.result = Err(ErrorKind::Status5xx);
        }
        s
    }

    fn availability(target: f64) -> ErrorBudget {
        ErrorBudget {
            slo: Slo::Availability,
            allowed: 1.0 - target,
            bound: None,
        }
    }

    #[test]
    fn burn_rates_match_the_workbook_by_hand() {
        // 99.9%: 0.1% may fail. 1.44% failing burns 14.4x (2% of 30 days' budget an hour).
        let r = burn_rate(144, 10_000, 0.001);
        assert!((r - 14.4).abs() < 1e-9, "{r}");
        // 6 of 1,000 at 99.9%: 6x, the ticket threshold.
        assert!((burn_rate(6, 1_000, 0.001) - 6.0).abs() < 1e-9);
        // 1 of 4 at 99%: 25x.
        assert!((burn_rate(1, 4, 0.01) - 25.0).abs() < 1e-9);
        assert_eq!(burn_rate(0, 100, 0.01), 0.0);
        assert_eq!(burn_rate(0, 0, 0.01), 0.0, "no requests burn nothing");
        assert_eq!(
            burn_rate(1, 10, 0.0),
            f64::INFINITY,
            "a 100% target has no budget"
        );
    }

    #[test]
    fn windows_count_only_their_own_answers() {
        let alert = BurnAlert {
            name: "page".into(),
            long: at(10),
            short: at(2),
            factor: 14.4,
        };
        let mut w = BurnWatch::new(vec![alert], vec![availability(0.99)]);
        // t=1..=10: one answer a second; t=9 and t=10 fail.
        for t in 1..=10 {
            w.record(at(t), &sample(t >= 9, 10));
        }
        let b = availability(0.99);
        // Long window (0, 10]: 2 of 10 failed = 20% / 1% = 20x.
        let long = w.burn(&b, at(10), at(10));
        assert_eq!((long.bad, long.total), (2, 10));
        assert!((long.rate - 20.0).abs() < 1e-9, "{}", long.rate);
        // Short window (8, 10]: 2 of 2 = 100x.
        let short = w.burn(&b, at(2), at(10));
        assert_eq!((short.bad, short.total), (2, 2));
        assert!((short.rate - 100.0).abs() < 1e-9);
        let t = w.evaluate(at(10)).transitions;
        assert_eq!(t.len(), 1);
        assert!(t[0].firing);
        assert_eq!(t[0].long, long);
        assert!(w.firing[0]);
        // No change, no transition.
        assert!(w.evaluate(at(10)).transitions.is_empty());
        // Two good answers: the short window (10, 12] is clean, so the page clears though the
        // long one (2, 12] still burns 2/10 = 20x.
        w.record(at(11), &sample(false, 10));
        w.record(at(12), &sample(false, 10));
        let t = w.evaluate(at(12)).transitions;
        assert_eq!(t.len(), 1);
        assert!(!t[0].firing);
        assert_eq!((t[0].long.bad, t[0].long.total), (2, 10));
        assert_eq!(t[0].short.rate, 0.0);
    }

    #[test]
    fn both_windows_must_burn_past_the_factor() {
        let alert = BurnAlert {
            name: "ticket".into(),
            long: at(100),
            short: at(10),
            factor: 6.0,
        };
        let mut w = BurnWatch::new(vec![alert], vec![availability(0.99)]);
        // 100 answers over (0, 100]; the 5 failures fall in the short window (90, 100]:
        // long 5/100 = 5x (under 6), short 5/10 = 50x. Not firing.
        for t in 1..=100 {
            w.record(at(t), &sample(t > 95, 10));
        }
        assert!(w.evaluate(at(100)).transitions.is_empty());
        // Two more failures: long 7/102 / 1% = 6.86x, short 7/10 = 70x: fires.
        w.record(at(100), &sample(true, 10));
        w.record(at(100), &sample(true, 10));
        let t = w.evaluate(at(100)).transitions;
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(t[0].firing);
        assert!((t[0].long.rate - 700.0 / 102.0).abs() < 1e-9);
    }

    #[test]
    fn latency_budget_counts_slow_successes_only() {
        let latency = ErrorBudget {
            slo: Slo::Latency,
            allowed: 0.01,
            bound: Some(Duration::from_millis(500)),
        };
        let mut w = BurnWatch::new(Vec::new(), vec![latency]);
        w.record(at(1), &sample(false, 400));
        w.record(at(2), &sample(false, 600));
        w.record(at(3), &sample(true, 900)); // failed: the availability budget's, not this one's
        w.record(at(4), &sample(false, 500)); // at the bound is within it
        let b = w.burn(&latency, at(10), at(4));
        assert_eq!((b.bad, b.total), (1, 3));
        assert!((b.rate - 100.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn an_alert_waits_for_its_short_window() {
        let alert = BurnAlert {
            name: "page".into(),
            long: at(60),
            short: at(5),
            factor: 14.4,
        };
        let mut w = BurnWatch::new(vec![alert], vec![availability(0.999)]);
        w.record(at(1), &sample(true, 10));
        assert!(
            w.evaluate(at(1)).transitions.is_empty(),
            "one answer in is no evidence"
        );
        assert_eq!(w.evaluate(at(5)).transitions.len(), 1);
    }

    #[test]
    fn budgets_come_from_the_overall_sla() {
        let sla = crate::scenario::load_str(
            "s.toml",
            "[load]\nduration = \"1s\"\nrate = 1\n[[requests]]\nname = \"a\"\nmodel = \"m\"\n\
             prompt = \"hi\"\n[target]\nurl = \"http://127.0.0.1:9\"\n[sla]\n\
             availability = \"99.5%\"\np99_latency = \"2s\"\n",
        )
        .unwrap()
        .sla;
        let b = budgets(&sla);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].slo, Slo::Availability);
        assert!((b[0].allowed - 0.005).abs() < 1e-12);
        assert_eq!(b[1].bound, Some(Duration::from_secs(2)));
        assert_eq!(b[1].allowed, 0.01);
    }
}
