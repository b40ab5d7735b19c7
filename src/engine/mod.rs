//! Load generation: the plan and its arrival schedule, the weighted mix, the HTTP client,
//! the run loop, the fleet of servers a run starts and the preflight that checks what it
//! points at, the bake-off of several targets on one fleet, and progress display.

mod bakeoff;
mod budget;
mod client;
mod fleet;
mod mix;
mod output;
mod plan;
mod preflight;
mod progress;
mod response;
mod runner;
mod running;
mod session;
mod settle;
mod source;
mod timeline;

pub use bakeoff::{Bakeoff, BakeoffError, Contender, ContenderTarget, check_lineup};
pub use budget::{Estimate, estimate};
pub use client::{
    Client, ClientError, ClientOptions, DEFAULT_MAX_BODY_BYTES, SessionStart, UserConnections,
};
pub use fleet::{FleetError, StartedFleet};
pub use mix::Mix;
pub use output::write_run;
pub use plan::{Arrivals, Plan, PlanStage};
pub use preflight::{PreflightError, Unready};
pub use progress::Progress;
pub use runner::{
    DEFAULT_DRAIN, Live, RecordingTap, RunConfig, RunOutput, SampleSink, mix_rng, run,
};
pub use session::{
    EngineError, Finished, RunOptions, StartGate, plan_for, run_scenario, run_settled,
};
pub use source::{SourceIpsError, check_local as check_source_ips, parse_source_ips};
