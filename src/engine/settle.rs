//! Letting upstreams that outlive a run go quiet, and resetting them, before the next run
//! against them: one run's faults, budgets and retries still in flight must not leak into the
//! next (a bake-off's targets, a capacity search's probes).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::mock::{ControlClient, ControlError};

/// Longest wait for the upstreams to go quiet (a gateway still retrying, streams still
/// draining); past it the next run starts anyway, with a warning.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// The upstreams count as settled when nothing is in flight and no request arrived for this
/// long: longer than a gateway's usual retry backoff, so a late retry is not mistaken for calm.
const QUIET: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(50);

/// Waits until no upstream has a request in flight and none arrived for `QUIET`.
pub(super) async fn settle(controls: &HashMap<String, ControlClient>) {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last: Option<(u64, Instant)> = None;
    while Instant::now() < deadline {
        let mut total = 0u64;
        let mut busy = false;
        // An upstream that does not answer has nothing to settle; the reset says more.
        for control in controls.values() {
            if let Ok(s) = control.stats().await {
                total += s.requests_total;
                busy |= s.in_flight > 0;
            }
        }
        let now = Instant::now();
        if busy {
            last = None;
        } else {
            match last {
                Some((seen, since)) if seen == total => {
                    if now.duration_since(since) >= QUIET {
                        return;
                    }
                }
                _ => last = Some((total, now)),
            }
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(
        "the upstreams were still busy after {SETTLE_LIMIT:?}; the next run starts anyway"
    );
}

/// Lifts every fault and refills every budget; the error names the upstream that refused.
pub(super) async fn reset(
    controls: &HashMap<String, ControlClient>,
) -> Result<(), (String, ControlError)> {
    for (name, control) in controls {
        control.reset().await.map_err(|e| (name.clone(), e))?;
    }
    Ok(())
}
