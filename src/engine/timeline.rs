//! The fault timeline: applies and lifts scheduled faults on the upstreams through their
//! control API at their times, records when that actually happened (or why it did not), and
//! lifts whatever is still active when the run ends for any reason, so no provider is left
//! broken.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::UpstreamCounters;
use crate::metrics::failover::{FaultAttempt, FaultOutcome};
use crate::mock::{ControlClient, FaultId};
use crate::observe::LiveMetrics;
use crate::scenario::ScheduledFault;

/// One window of one scheduled fault.
struct ScheduledWindow<'a> {
    fault: &'a ScheduledFault,
    start: Duration,
    end: Duration,
}

/// Runs the timeline from `t0` until every window is over or `stop` resolves, then lifts
/// what is left. `controls` maps upstream names to their control API. Every window comes
/// back, in time order: applied, refused (with the error), or not reached before the stop.
/// `live` hears of each window applied and lifted, for the exporter's fault gauges; `so_far`
/// gets the windows whose start has come, after each change, for the running SLA checks.
pub async fn run(
    faults: &[ScheduledFault],
    controls: &HashMap<String, ControlClient>,
    t0: Instant,
    stop: impl std::future::Future<Output = ()>,
    live: Option<&LiveMetrics>,
    so_far: Option<&tokio::sync::watch::Sender<Vec<FaultAttempt>>>,
) -> Vec<FaultAttempt> {
    let mark = |w: &ScheduledWindow<'_>, active: bool| {
        if let Some(live) = live {
            live.fault(&w.fault.upstream, w.fault.spec.kind.name().as_str(), active);
        }
    };
    let mut windows: Vec<ScheduledWindow<'_>> = faults
        .iter()
        .flat_map(|f| {
            f.windows().map(move |(start, end)| ScheduledWindow {
                fault: f,
                start,
                end,
            })
        })
        .collect();
    windows.sort_by_key(|w| w.start);

    // None until the window's start comes.
    let mut outcomes: Vec<Option<FaultOutcome>> = vec![None; windows.len()];

    // Events in time order: (when, window index, apply?). Lifts sort before applies at the
    // same instant so a flapping fault is lifted before its next window applies.
    let mut events: Vec<(Duration, usize, bool)> = windows
        .iter()
        .enumerate()
        .flat_map(|(i, w)| [(w.start, i, true), (w.end, i, false)])
        .collect();
    events.sort_by_key(|&(t, i, apply)| (t, apply, i));

    let mut active: HashMap<usize, FaultId> = HashMap::new();
    tokio::pin!(stop);
    for (at, i, apply) in events {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep_until(t0 + at) => {}
        }
        let w = &windows[i];
        let Some(control) = controls.get(&w.fault.upstream) else {
            tracing::warn!(upstream = %w.fault.upstream, "no control API for this upstream; fault skipped");
            if apply {
                outcomes[i] = Some(FaultOutcome::Failed {
                    error: format!("no control API reaches upstream `{}`", w.fault.upstream),
                });
            }
            continue;
        };
        if apply {
            match control.add_fault(&w.fault.spec).await {
                Ok(id) => {
                    active.insert(i, id);
                    mark(w, true);
                    outcomes[i] = Some(FaultOutcome::Applied {
                        at: t0.elapsed(),
                        lifted: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(upstream = %w.fault.upstream, error = %e, "could not apply fault");
                    outcomes[i] = Some(FaultOutcome::Failed {
                        error: format!("its control API failed: {e}"),
                    });
                }
            }
        } else if let Some(id) = active.remove(&i) {
            match control.remove_fault(id).await {
                Ok(_) => {
                    lifted(&mut outcomes[i], t0.elapsed());
                    mark(w, false);
                }
                Err(e) => {
                    tracing::warn!(upstream = %w.fault.upstream, error = %e, "could not lift fault");
                    active.insert(i, id);
                }
            }
        }
        if let Some(tx) = so_far {
            tx.send_replace(started(&windows, &outcomes));
        }
    }
    let stopped = t0.elapsed();
    lift_all(&windows, controls, &mut active, &mut outcomes, t0, &mark).await;
    windows
        .iter()
        .zip(outcomes)
        .map(|(w, outcome)| FaultAttempt {
            upstream: w.fault.upstream.clone(),
            kind: w.fault.spec.kind.name().as_str().to_string(),
            start: w.start,
            end: w.end,
            outcome: outcome.unwrap_or(FaultOutcome::RunEnded { at: stopped }),
        })
        .collect()
}

/// The windows whose start has come, with what became of them so far: a window still ahead
/// has not failed anything over yet, so it is left out rather than called unapplied.
fn started(
    windows: &[ScheduledWindow<'_>],
    outcomes: &[Option<FaultOutcome>],
) -> Vec<FaultAttempt> {
    windows
        .iter()
        .zip(outcomes)
        .filter_map(|(w, outcome)| {
            Some(FaultAttempt {
                upstream: w.fault.upstream.clone(),
                kind: w.fault.spec.kind.name().as_str().to_string(),
                start: w.start,
                end: w.end,
                outcome: outcome.clone()?,
            })
        })
        .collect()
}

/// Marks an applied window lifted at `at`.
fn lifted(outcome: &mut Option<FaultOutcome>, at: Duration) {
    if let Some(FaultOutcome::Applied { lifted, .. }) = outcome {
        *lifted = Some(at);
    }
}

/// Lifts every fault still active; when removing one by id fails, clears the mock's
/// runtime faults altogether rather than leave it broken.
async fn lift_all(
    windows: &[ScheduledWindow<'_>],
    controls: &HashMap<String, ControlClient>,
    active: &mut HashMap<usize, FaultId>,
    outcomes: &mut [Option<FaultOutcome>],
    t0: Instant,
    mark: &impl Fn(&ScheduledWindow<'_>, bool),
) {
    for (i, id) in active.drain() {
        let upstream = &windows[i].fault.upstream;
        let Some(control) = controls.get(upstream) else {
            continue;
        };
        let done = match control.remove_fault(id).await {
            Ok(_) => true,
            Err(_) => control.clear_faults().await.is_ok(),
        };
        if done {
            lifted(&mut outcomes[i], t0.elapsed());
            mark(&windows[i], false);
        } else {
            tracing::error!(upstream = %upstream, "fault could not be lifted; the mock may still be broken");
        }
    }
}

/// Each upstream's own counters now; an upstream whose control API does not answer is left
/// out (its numbers are then unknown, never guessed).
pub async fn snapshot(
    controls: &HashMap<String, ControlClient>,
) -> BTreeMap<String, UpstreamCounters> {
    let mut out = BTreeMap::new();
    for (name, control) in controls {
        match control.stats().await {
            Ok(s) => {
                let counters = UpstreamCounters {
                    requests_total: s.requests_total,
                    prompt_tokens: s.prompt_tokens,
                    completion_tokens: s.completion_tokens,
                    cached_tokens: s.cached_tokens,
                    reasoning_tokens: s.reasoning_tokens,
                };
                out.insert(name.clone(), counters);
            }
            Err(e) => tracing::warn!(upstream = %name, error = %e, "could not read upstream stats"),
        }
    }
    out
}

/// The scenario's faults on a plan stretched or shrunk by `scale` (`--duration`).
pub fn scaled(faults: &[ScheduledFault], scale: f64) -> Vec<ScheduledFault> {
    if (scale - 1.0).abs() < 1e-9 {
        return faults.to_vec();
    }
    let s = |d: Duration| d.mul_f64(scale);
    faults
        .iter()
        .map(|f| ScheduledFault {
            at: s(f.at),
            duration: s(f.duration),
            every: f.every.map(s),
            ..f.clone()
        })
        .collect()
}
