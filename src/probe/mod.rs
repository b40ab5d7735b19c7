//! Probe mode (`gauntlet probe`): the scenario's mix sent at a trickle to a live endpoint for
//! as long as it is left running, judged by the run's own client, outcome classification and
//! SLA checks over a sliding window, with multiwindow burn-rate alerts, a rolling report, and
//! safety caps (daily cost and tokens, backoff on 429) so a probe never becomes load.
//!
//! It sits beside `engine` and `report`, using both: the engine's fleet and client send, the
//! metrics judge, the report renders, `observe` exposes.

mod burn;
mod output;
mod run;
mod schedule;
mod spend;
mod window;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use burn::budgets;
pub use output::{ALERTS_FILE, ProbeDir};
pub use run::{ProbeEnd, ProbeOptions, run};
pub use spend::CapReached;

/// Requests a probe keeps in flight at most: a hanging endpoint's requests time out and count
/// against it; more of them at once would only pile onto it.
const MAX_IN_FLIGHT: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    RunDir(#[from] crate::rundir::RunDirError),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "[probe] max_cost_per_day needs prices, and no upstream of this scenario has one: \
         give the upstreams profiles (or `input_price_per_m`/`output_price_per_m` for a \
         proxied provider), or cap with max_tokens_per_day"
    )]
    NoPrices,
    #[error(
        "request class `{0}` is a conversation ([requests.session]); a probe sends single \
         requests: give it its own scenario without `session`"
    )]
    Session(String),
    #[error("the probe's report writer stopped without a report (a bug: please report it)")]
    WriterGone,
}

impl ProbeError {
    /// True when the scenario, not the endpoint or the machine, is at fault (exit 2).
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Self::NoPrices | Self::Session(_) => true,
            Self::RunDir(e) => e.is_invalid_input(),
            Self::Engine(e) => e.is_invalid_input(),
            Self::Report(_) | Self::Write { .. } | Self::WriterGone => false,
        }
    }
}

/// How long the probe waits for answers in flight when it stops.
const DRAIN: Duration = crate::engine::DEFAULT_DRAIN;
