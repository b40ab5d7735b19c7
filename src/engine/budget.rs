//! `[budget]` during a run: every tick the upstreams' counted tokens are priced, and the run is
//! stopped (cleanly, as Ctrl-C stops it) once the next tick's spend, at the last tick's pace,
//! would pass the budget. Warmup counts: it was billed too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::timeline;
use crate::metrics::cost::Price;
use crate::metrics::{BudgetReport, Tokens, UpstreamCounters};
use crate::mock::ControlClient;
use crate::scenario::{Budget, Scenario};

/// How often the spend is read: short against any run, long against a stats request.
const TICK: Duration = Duration::from_millis(250);

/// A budget being watched; `finish` stops watching and says what was spent.
pub(super) struct Guard {
    task: JoinHandle<BudgetReport>,
    end: oneshot::Sender<()>,
    /// Passes the caller's stop (Ctrl-C) on to the run's.
    forward: JoinHandle<()>,
}

/// Prompt plus completion tokens, and their cost, counted since `start`.
fn spent(
    start: &BTreeMap<String, UpstreamCounters>,
    now: &BTreeMap<String, UpstreamCounters>,
    prices: &BTreeMap<String, Price>,
) -> (u64, f64) {
    let mut tokens = 0;
    let mut cost = 0.0;
    for (name, n) in now {
        let s = start.get(name).copied().unwrap_or_default();
        let t = Tokens {
            prompt: n.prompt_tokens.saturating_sub(s.prompt_tokens),
            completion: n.completion_tokens.saturating_sub(s.completion_tokens),
            cached: n.cached_tokens.saturating_sub(s.cached_tokens),
            reasoning: 0,
        };
        tokens += t.prompt + t.completion;
        if let Some(p) = prices.get(name) {
            cost += p.of(&t);
        }
    }
    (tokens, cost)
}

/// Watches `budget`; the receiver it returns is the run's stop: the caller's `stop`, or the
/// budget's.
pub(super) fn watch(
    budget: Budget,
    controls: HashMap<String, ControlClient>,
    prices: BTreeMap<String, Price>,
    mut outer: watch::Receiver<bool>,
) -> (Guard, watch::Receiver<bool>) {
    let (stop, run_stop) = watch::channel(false);
    let stop = Arc::new(stop);
    let forward = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if outer.wait_for(|s| *s).await.is_ok() {
                stop.send_replace(true);
            }
        })
    };
    let (end, mut ended) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let start = timeline::snapshot(&controls).await;
        let mut report = BudgetReport {
            max_cost_usd: budget.max_cost,
            max_tokens: budget.max_tokens,
            ..BudgetReport::default()
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = (0u64, 0.0f64);
        loop {
            let over = tokio::select! {
                _ = &mut ended => true,
                _ = tick.tick() => false,
            };
            let (tokens, cost) = spent(&start, &timeline::snapshot(&controls).await, &prices);
            report.spent_tokens = tokens;
            report.spent_usd = cost;
            if over {
                return report;
            }
            // At the last tick's pace, the next one would pass a cap: stop now.
            let next_tokens = tokens + tokens.saturating_sub(last.0);
            let next_cost = cost + (cost - last.1).max(0.0);
            last = (tokens, cost);
            let passes = budget.max_cost.is_some_and(|m| next_cost >= m)
                || budget.max_tokens.is_some_and(|m| next_tokens >= m);
            if passes && !report.stopped {
                report.stopped = true;
                tracing::warn!(
                    "stopping: the budget would be passed (spent ${cost:.4}, {tokens} tokens)"
                );
                stop.send_replace(true);
            }
        }
    });
    (Guard { task, end, forward }, run_stop)
}

impl Guard {
    /// The spend up to now, read once more (requests in flight at a stop have finished).
    pub(super) async fn finish(self) -> Option<BudgetReport> {
        self.forward.abort();
        let _ = self.end.send(());
        self.task.await.ok()
    }
}

/// What a plan should cost, worked out before it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub requests: f64,
    /// Prompt plus the `max_tokens` asked for (the most a provider bills), per the mix.
    pub tokens: f64,
    pub cost_usd: f64,
}

/// The plan's cost at most: its expected requests, each class's prompt (counted with the
/// tokenizer; synthetic prompts at their mean) plus its `max_tokens`, priced at its primary
/// upstream (or the dearest priced one). `None` for a closed-model plan (its request count
/// is the system's to decide) or a class without `max_tokens` (no ceiling on its answers).
pub fn estimate(scenario: &Scenario, plan: &super::plan::Plan) -> Option<Estimate> {
    if plan
        .stages
        .iter()
        .any(|s| matches!(s.load, crate::scenario::StageLoad::Concurrency(_)))
    {
        return None;
    }
    let requests = plan.expected_requests();
    let price_of = |u: &crate::scenario::Upstream| {
        super::fleet::price_of(&u.source).map(|p| (p.input_per_m, p.output_per_m))
    };
    let dearest = scenario
        .upstreams
        .iter()
        .filter_map(price_of)
        .fold((0.0f64, 0.0f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    let total_weight: f64 = scenario
        .requests
        .iter()
        .map(|c| f64::from(c.weight.get()))
        .sum();
    let (mut tokens, mut cost) = (0.0, 0.0);
    for c in &scenario.requests {
        let share = f64::from(c.weight.get()) / total_weight.max(1.0);
        let output = match (&c.workload.max_tokens, c.max_tokens) {
            (Some(d), _) => d.mean(),
            (None, Some(n)) => f64::from(n),
            (None, None) => return None,
        };
        let prompt =
            // Counted in the class's own vocabulary, as its requests are.
            crate::tokenizer::Tokenizer::new(c.workload.encoding)
                .ok()?
                .count_messages(&c.messages) as f64
                + c.workload.prompt_tokens_mean()?;
        let (input_price, output_price) = c
            .primary
            .as_deref()
            .and_then(|p| scenario.upstreams.iter().find(|u| u.name == p))
            .and_then(price_of)
            .unwrap_or(dearest);
        let n = requests * share;
        tokens += n * (prompt + output);
        cost += n * (prompt * input_price + output * output_price) / 1e6;
    }
    Some(Estimate {
        requests,
        tokens,
        cost_usd: cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_is_priced_per_upstream_from_the_start() {
        let counters = |p, c| UpstreamCounters {
            requests_total: 0,
            prompt_tokens: p,
            completion_tokens: c,
            cached_tokens: 0,
            reasoning_tokens: 0,
        };
        let start = BTreeMap::from([("a".to_string(), counters(100, 100))]);
        let now = BTreeMap::from([
            ("a".to_string(), counters(1_100_100, 100_100)),
            ("free".to_string(), counters(500, 500)),
        ]);
        let prices = BTreeMap::from([(
            "a".to_string(),
            Price {
                input_per_m: 1.0,
                output_per_m: 10.0,
                cached_input_per_m: None,
            },
        )]);
        let (tokens, cost) = spent(&start, &now, &prices);
        assert_eq!(tokens, 1_200_000 + 1_000);
        assert!((cost - 2.1).abs() < 1e-9, "{cost}");
    }
}
