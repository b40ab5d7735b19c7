//! The SLA checks while a run goes on: each copy of the recording the recorder hands out is
//! concluded exactly as the run's end will be (`metrics::conclude`, with the faults applied so
//! far and the upstreams' counters now), as if the run stopped at that moment, and the verdict
//! is published for the exporter and the live view.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::timeline;
use crate::metrics::cost::Price;
use crate::metrics::failover::FaultAttempt;
use crate::metrics::{self, Evidence, Recorder, RunInfo, UpstreamCounters};
use crate::mock::ControlClient;
use crate::observe::LiveMetrics;
use crate::scenario::{Alternative, Sla};

/// How often the recording is judged, at most.
pub const EVERY: Duration = Duration::from_secs(1);

/// After each evaluation the judge rests this many times as long as it took, so it takes at
/// most 1/21 of one core: a long run's conclusion grows with its intervals (an hour's takes
/// on the order of a second), and judging it live must not take a core from the load.
const REST_FACTOR: u32 = 20;

/// What a conclusion needs besides the recording, fixed for the run.
pub struct Inputs {
    /// The run's info; `ran_for` is set to the time each copy was made at.
    pub info: RunInfo,
    pub sla: Sla,
    pub prices: BTreeMap<String, Price>,
    pub monthly_tokens: Vec<u64>,
    pub alternatives: Vec<Alternative>,
    /// Planned length, so elapsed time never passes it.
    pub planned: Duration,
    pub controls: HashMap<String, ControlClient>,
    /// The upstreams' counters when measuring started, once warmup is over.
    pub before: Arc<OnceLock<BTreeMap<String, UpstreamCounters>>>,
}

/// Judges each copy that arrives until the channel closes or the task is aborted.
pub fn start(
    inputs: Inputs,
    mut copies: mpsc::Receiver<(Duration, Recorder)>,
    faults: watch::Receiver<Vec<FaultAttempt>>,
    out: Arc<LiveMetrics>,
) -> JoinHandle<()> {
    let inputs = Arc::new(inputs);
    tokio::spawn(async move {
        while let Some((made_at, recording)) = copies.recv().await {
            let began = std::time::Instant::now();
            // When the copy was made, not now: it may have waited out the last rest.
            let ran_for = made_at.min(inputs.planned);
            // Counters are only comparable with the ones taken when measuring started.
            let (before, after) = match inputs.before.get() {
                Some(b) => (b.clone(), timeline::snapshot(&inputs.controls).await),
                None => Default::default(),
            };
            let attempts = faults.borrow().clone();
            let inputs = inputs.clone();
            // Off the runtime's workers: a conclusion is CPU work that grows with the run.
            let judged = tokio::task::spawn_blocking(move || {
                let info = RunInfo {
                    ran_for,
                    ..inputs.info.clone()
                };
                metrics::conclude(Evidence {
                    recording: &recording,
                    info: &info,
                    faults: &attempts,
                    counters_before: &before,
                    counters_after: &after,
                    answered_tokens: &BTreeMap::new(),
                    prices: &inputs.prices,
                    sla: &inputs.sla,
                    monthly_tokens: &inputs.monthly_tokens,
                    alternatives: &inputs.alternatives,
                })
                .sla
            })
            .await;
            match judged {
                Ok(sla) => out.set_sla(sla),
                // A panic in a conclusion is a bug the run's own end will surface.
                Err(_) => return,
            }
            tokio::time::sleep(began.elapsed() * REST_FACTOR).await;
        }
    })
}
