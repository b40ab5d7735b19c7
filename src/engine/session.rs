//! One scenario run end to end: compile the plan, start the fleet, drive the load, stop the
//! fleet, and turn the recording into a `Summary` with its SLA verdict.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::client::{Client, ClientError, ClientOptions, DEFAULT_MAX_BODY_BYTES};
use super::fleet::{Fleet, FleetError};
use super::mix::Mix;
use super::plan::Plan;
use super::progress::Progress;
use super::runner::{self, DEFAULT_DRAIN, Live, RunConfig};
use crate::metrics::{self, ClassInfo, Layout, Recorder, RunInfo, Summary};
use crate::scenario::Scenario;

/// Command-line adjustments to a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Send to this gateway instead of what the scenario says.
    pub target: Option<String>,
    /// Stretch the whole plan to this length.
    pub duration: Option<Duration>,
    /// Scale open-model rates so the peak is this many requests per second.
    pub rate: Option<f64>,
    pub seed: Option<u64>,
    pub http2: bool,
    /// No progress display.
    pub quiet: bool,
    pub drain: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            target: None,
            duration: None,
            rate: None,
            seed: None,
            http2: false,
            quiet: false,
            drain: DEFAULT_DRAIN,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the scenario has no request classes")]
    EmptyMix,
    #[error("--rate must be a positive number of requests per second, got {0}")]
    BadRate(f64),
    #[error("--duration must be longer than zero")]
    BadDuration,
}

/// A finished run: its summary and the recording it was computed from.
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    pub recorder: Recorder,
    pub started_at: SystemTime,
}

/// The plan a scenario runs with these options.
pub fn plan_for(scenario: &Scenario, options: &RunOptions) -> Result<Plan, EngineError> {
    let mut plan = Plan::compile(&scenario.load);
    if let Some(d) = options.duration {
        if d.is_zero() {
            return Err(EngineError::BadDuration);
        }
        plan.stretch_to(d);
    }
    if let Some(r) = options.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(EngineError::BadRate(r));
        }
        plan.scale_rate_to(r);
    }
    Ok(plan)
}

/// Runs `scenario` until its plan ends or `stop` turns true.
pub async fn run_scenario(
    scenario: &Scenario,
    options: &RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<Finished, EngineError> {
    if scenario.requests.is_empty() {
        return Err(EngineError::EmptyMix);
    }
    let plan = plan_for(scenario, options)?;
    let seed = options.seed.unwrap_or(scenario.seed);
    let mut fleet = Fleet::start(scenario, options.target.as_deref()).await?;
    let client = Client::new(
        &scenario.requests,
        &fleet.targets,
        ClientOptions {
            http2: options.http2,
            timeout: plan.timeout,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstreams: fleet.upstreams.clone(),
        },
    );
    let client = match client {
        Ok(c) => Arc::new(c),
        Err(e) => {
            fleet.shutdown().await;
            return Err(e.into());
        }
    };
    let layout = Layout::new(
        scenario.requests.iter().map(|c| c.name.clone()).collect(),
        fleet.upstreams.clone(),
        plan.warmup,
        plan.interval,
        plan.total(),
    );
    let live = Arc::new(Live::default());
    let progress = Progress::start(live.clone(), plan.total(), options.quiet);
    let config = RunConfig {
        mix: Mix::new(scenario.requests.iter().map(|c| c.weight)),
        seed,
        layout,
        drain: options.drain,
        plan,
    };
    let output = runner::run(config, client, live, stop).await;
    progress.finish();
    let target = fleet.description.clone();
    fleet.shutdown().await;

    let info = RunInfo {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        seed,
        target,
        started_at: output.started_at,
        ran_for: output.ran_for,
        interrupted: output.interrupted,
        classes: scenario
            .requests
            .iter()
            .map(|c| ClassInfo {
                name: c.name.clone(),
                weight: c.weight.get(),
                model: c.model.clone(),
                stream: c.stream,
                primary: c.primary.clone(),
            })
            .collect(),
    };
    let mut summary = metrics::summarize(&output.recorder, &info);
    summary.sla = metrics::sla::evaluate(&scenario.sla, &summary);
    Ok(Finished {
        summary,
        recorder: output.recorder,
        started_at: output.started_at,
    })
}
