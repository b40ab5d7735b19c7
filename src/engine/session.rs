//! One scenario run end to end: compile the plan, start the fleet, drive the load, stop the
//! fleet, and hand what was gathered to `metrics::conclude` for the `Summary` and its verdict.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::client::{Client, ClientError, ClientOptions, DEFAULT_MAX_BODY_BYTES};
use super::fleet::{FleetError, StartedFleet};
use super::mix::Mix;
use super::plan::Plan;
use super::preflight::{self, PreflightError};
use super::progress::Progress;
use super::runner::{
    self, Baseline, DEFAULT_DRAIN, Live, LoadRuntime, RecordingTap, RunConfig, SampleSink,
};
use super::running;
use super::settle;
use super::timeline;
use crate::cluster::{CounterRecord, PriceRecord, ShardEvidence, convert};
use crate::metrics::{self, Evidence, Layout, Recorder, RecordingDeltas, RunInfo, Summary, Via};
use crate::observe::{
    Board, ClientCount, LiveMetrics, PlannedFault, RunShape, Scraper, SutWatcher, WatchPlan,
};
use crate::scenario::{Scenario, Target, UpstreamSource};
use crate::tls::ClientSettings;

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
    /// Monthly token volumes to project the cost at.
    pub monthly_tokens: Vec<u64>,
    /// Where each measured request goes as it is recorded (`--raw`).
    pub sink: Option<SampleSink>,
    /// Worker threads that send the load [default: one per core].
    pub load_threads: Option<NonZeroUsize>,
    /// CAs and client certificate from the command line, on top of the scenario's `[tls]`.
    pub tls: ClientSettings,
    /// Where the run publishes its live numbers (`--metrics-listen`).
    pub metrics: Option<Board>,
    /// Keep native histograms too: only a protobuf scrape (`--metrics-listen`) reads them,
    /// and each costs the recorder a locked observe per sample.
    pub native_histograms: bool,
    /// The slice of the plan this process sends (`--shard I/N`); None sends it all.
    pub shard: Option<crate::cluster::ShardId>,
    /// Filled when the run starts with the handle its recording's deltas are taken from.
    pub deltas: Option<Arc<std::sync::OnceLock<RecordingDeltas>>>,
    /// Holds the run at the line once its fleet is up, until a start several processes
    /// agree on (a sharded run's t0).
    pub gate: Option<StartGate>,
    /// The address the embedded gateway listens on [default: 127.0.0.1]: a coordinator's
    /// gateway is reached by its shards on other machines.
    pub gateway_ip: Option<std::net::IpAddr>,
    /// When the plan starts (its t0), on this machine's clock [default: as soon as ready].
    pub start_at: Option<SystemTime>,
    /// Start no mock upstream: another process (a sharded run's coordinator) runs them.
    pub load_only: bool,
    /// Local addresses the load's connections leave from, in turn (`--source-ips`).
    pub source_ips: Vec<std::net::IpAddr>,
}

/// Told where the load goes once the fleet is up (one base URL per request class), answers
/// with the wall-clock moment the plan starts at, or why it will not start.
#[derive(Clone)]
pub struct StartGate(pub Arc<GateFn>);

type GateFn = dyn Fn(Vec<String>) -> futures_util::future::BoxFuture<'static, Result<SystemTime, String>>
    + Send
    + Sync;

impl std::fmt::Debug for StartGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartGate")
    }
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
            monthly_tokens: metrics::cost::DEFAULT_MONTHLY_TOKENS.to_vec(),
            sink: None,
            load_threads: None,
            tls: ClientSettings::default(),
            metrics: None,
            native_histograms: false,
            shard: None,
            deltas: None,
            gate: None,
            gateway_ip: None,
            start_at: None,
            load_only: false,
            source_ips: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error("the scenario has no request classes")]
    EmptyMix,
    #[error("--rate must be a positive number of requests per second, got {0}")]
    BadRate(f64),
    #[error("--duration must be longer than zero")]
    BadDuration,
    #[error("cannot start the load runtime's threads: {0}")]
    LoadRuntime(#[source] std::io::Error),
    #[error(transparent)]
    Observe(#[from] crate::observe::WatchError),
    #[error("the run did not start: {0}")]
    Gate(String),
    #[error("resetting upstream `{upstream}` before the run: {source}")]
    Reset {
        upstream: String,
        #[source]
        source: crate::mock::ControlError,
    },
}

impl EngineError {
    /// True when the user, not the endpoint or the machine, is at fault (exit 2): a process
    /// `[observe]` names that is not there, or a target (`--target`) that is not a URL.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::Observe(_) | Self::Client(ClientError::InvalidUrl { .. })
        )
    }
}

/// A finished run: its summary and the recording it was computed from.
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    pub recorder: Recorder,
    pub started_at: SystemTime,
    /// The plan as it ran (after `--rate`, `--duration`).
    pub plan: Plan,
    /// What the conclusion rested on beside the recording, for a shard's part.
    pub evidence: ShardEvidence,
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
    run(scenario, options, stop, false).await
}

/// Runs `scenario` as one of a series (a capacity search's probes): like `run_scenario`,
/// but upstreams that outlive the run (running mocks named by `url`) are first left to go
/// quiet and reset, and a gateway running elsewhere to empty its queues and close its
/// breakers (as its `/metrics` tells), so the run before cannot leak faults, spent budgets or
/// retries still in flight into this one. What gauntlet starts itself is new for every run.
pub async fn run_settled(
    scenario: &Scenario,
    options: &RunOptions,
    stop: watch::Receiver<bool>,
) -> Result<Finished, EngineError> {
    run(scenario, options, stop, true).await
}

async fn run(
    scenario: &Scenario,
    options: &RunOptions,
    stop: watch::Receiver<bool>,
    settle_first: bool,
) -> Result<Finished, EngineError> {
    let load = load_runtime(scenario, options)?;
    // A process `[observe]` names that is not there fails the run before anything starts
    // (it is looked up again when the load starts, in case it was replaced meanwhile).
    crate::observe::resolve(&scenario.observe)?;
    let tls = scenario.tls.clone().merged(&options.tls);
    let fleet = StartedFleet::start_on(
        scenario,
        options.target.as_deref(),
        &tls,
        options.gateway_ip,
        options.load_only,
    )
    .await?;
    if settle_first && let Err(e) = settle_what_outlives(scenario, options, &fleet).await {
        fleet.shutdown().await;
        return Err(e);
    }
    let fleet = preflight::checked(scenario, fleet).await?;
    let mut options = options.clone();
    if let Some(gate) = options.gate.take() {
        match (gate.0)(fleet.targets.clone()).await {
            Ok(at) => options.start_at = Some(at),
            Err(why) => {
                fleet.shutdown().await;
                return Err(EngineError::Gate(why));
            }
        }
    }
    let finished = drive(scenario, &options, load, &fleet, stop).await;
    fleet.shutdown().await;
    finished
}

/// Lets the running mocks and an external gateway go quiet, and resets the mocks.
async fn settle_what_outlives(
    scenario: &Scenario,
    options: &RunOptions,
    fleet: &StartedFleet,
) -> Result<(), EngineError> {
    let running: std::collections::HashMap<_, _> = scenario
        .upstreams
        .iter()
        .filter(|u| matches!(u.source, UpstreamSource::Url { .. }))
        .filter_map(|u| Some((u.name.clone(), fleet.controls.get(&u.name)?.clone())))
        .collect();
    settle::settle(&running).await;
    settle::reset(&running)
        .await
        .map_err(|(upstream, source)| EngineError::Reset { upstream, source })?;
    let external = options.target.clone().or_else(|| match &scenario.target {
        Target::Url(u) => Some(u.clone()),
        Target::Direct | Target::EmbeddedGateway(_) => None,
    });
    if let Some(url) = external {
        // Its /metrics may be https behind the scenario's private CA, as the runs' clients see it.
        let tls =
            crate::tls::ClientTls::new(&fleet.tls).map_err(|e| FleetError::Tls(e.to_string()))?;
        settle::settle_gateway(&url, &tls).await;
    }
    Ok(())
}

/// The load runtime, built before anything starts so a machine that refuses the threads fails
/// the run up front; also refuses a scenario without request classes.
pub(super) fn load_runtime(
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<LoadRuntime, EngineError> {
    if scenario.requests.is_empty() {
        return Err(EngineError::EmptyMix);
    }
    LoadRuntime::new(
        options
            .load_threads
            .unwrap_or_else(runner::default_load_threads),
    )
    .map_err(EngineError::LoadRuntime)
}

/// Runs the plan against a fleet that is started and preflighted, and concludes; the fleet is
/// left running (a bake-off keeps its mocks between targets), and the caller stops it.
pub(super) async fn drive(
    scenario: &Scenario,
    options: &RunOptions,
    load: LoadRuntime,
    fleet: &StartedFleet,
    stop: watch::Receiver<bool>,
) -> Result<Finished, EngineError> {
    let plan = plan_for(scenario, options)?;
    let mut watch_plan = watch_plan(scenario, fleet, &plan)?;
    let seed = options.seed.unwrap_or(scenario.seed);
    let client_options = ClientOptions {
        http2: options.http2,
        timeout: plan.timeout,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        upstreams: fleet.upstreams.clone(),
        seed,
        tls: fleet.tls.clone(),
        source_ips: options.source_ips.clone(),
    };
    let baseline = match scenario.load.baseline {
        Some(b) => {
            let targets = fleet.direct_targets(scenario)?;
            let direct = Client::new(&scenario.requests, &targets, client_options.clone())?;
            Some(Baseline {
                client: Arc::new(direct.routed(Via::Direct)),
                share: b.share,
            })
        }
        None => None,
    };
    let client = Client::new(&scenario.requests, &fleet.targets, client_options);
    let client = Arc::new(client?);
    let layout = Layout::new(
        scenario.requests.iter().map(|c| c.name.clone()).collect(),
        fleet.upstreams.clone(),
        plan.warmup,
        plan.interval,
        plan.total(),
    )
    .with_per_request(scenario.sla.per_request)
    .with_baseline(baseline.is_some());
    let planned = scenario.load.total_duration().as_secs_f64();
    let scale = if planned > 0.0 {
        plan.total().as_secs_f64() / planned
    } else {
        1.0
    };
    // Only one party may break the upstreams: the first shard (or the whole run).
    let first = options.shard.is_none_or(|s| s.is_first());
    let faults = if first {
        timeline::scaled(&scenario.faults, scale)
    } else {
        Vec::new()
    };
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let exporter = options.metrics.as_ref().map(|board| {
        let shape = RunShape {
            scenario: scenario.name.clone(),
            seed,
            classes: layout.classes.clone(),
            upstreams: layout.upstreams.clone(),
            faults: faults
                .iter()
                .flat_map(|f| {
                    f.windows().map(|(start, end)| PlannedFault {
                        upstream: f.upstream.clone(),
                        kind: f.spec.kind.name().as_str().to_string(),
                        start,
                        end,
                    })
                })
                .collect(),
            planned: plan.total(),
            warmup: plan.warmup,
            native: options.native_histograms,
        };
        let metrics = Arc::new(LiveMetrics::new(shape, in_flight.clone()));
        board.publish(metrics.clone());
        metrics
    });
    let live = Arc::new(Live {
        in_flight,
        exporter: exporter.clone(),
        ..Live::default()
    });
    watch_plan.client = Some({
        let live = live.clone();
        Arc::new(move || {
            use std::sync::atomic::Ordering::Relaxed;
            ClientCount {
                finished: live.completed.load(Relaxed),
                failed: live.errors.load(Relaxed),
                direct: live.direct.load(Relaxed),
            }
        })
    });
    let progress = Progress::start(live.clone(), plan.total(), options.quiet);
    // The running SLA checks, judged on copies of the recording, when someone is watching.
    let (tap, copies) = match (&exporter, scenario.sla.targets.is_empty()) {
        (Some(_), false) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let tap = RecordingTap {
                every: running::EVERY,
                tx,
            };
            (Some(tap), Some(rx))
        }
        _ => (None, None),
    };
    let deltas = options.deltas.as_ref().map(|slot| {
        let deltas = RecordingDeltas::new(layout.clone());
        let _ = slot.set(deltas.clone());
        deltas
    });
    let config = RunConfig {
        deltas,
        shard: options.shard,
        mix: staged_mix(scenario),
        seed,
        layout,
        drain: options.drain,
        sink: options.sink.clone(),
        baseline,
        tap,
        plan,
    };
    let warmup = config.plan.warmup;
    let controls = fleet.controls.clone();
    // With a budget, the run also stops when the budget would be passed.
    let (stop, guard) = match scenario.budget {
        Some(b) => {
            let (guard, stop) =
                super::budget::watch(b, fleet.controls.clone(), fleet.prices.clone(), stop);
            (stop, Some(guard))
        }
        None => (stop, None),
    };
    let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
    let mut watcher = SutWatcher::start(watch_plan).await;
    // A common start: every shard's schedule begins at the same moment, each on its own
    // clock corrected by its offset, so intended send times agree across machines.
    if let Some(at) = options.start_at
        && let Ok(wait) = at.duration_since(SystemTime::now())
    {
        tokio::time::sleep(wait).await;
    }
    let t0 = tokio::time::Instant::now();
    watcher.clock_starts(t0);
    let mut stop_faults = stop.clone();
    let fault_gauges = exporter.clone();
    let (attempts_tx, attempts) = watch::channel(Vec::new());
    let faults_task = tokio::spawn(async move {
        let ended = async move {
            tokio::select! {
                _ = end_rx => {}
                _ = stop_faults.wait_for(|s| *s) => {}
            }
        };
        let so_far = Some(&attempts_tx);
        timeline::run(
            &faults,
            &controls,
            t0,
            ended,
            fault_gauges.as_deref(),
            so_far,
        )
        .await
    });
    // The upstreams' counters when measuring starts, so warmup traffic is not charged.
    let measuring_from = Arc::new(std::sync::OnceLock::new());
    let before_task = {
        let controls = fleet.controls.clone();
        let shared = measuring_from.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(t0 + warmup).await;
            let before = timeline::snapshot(&controls).await;
            let _ = shared.set(before.clone());
            before
        })
    };
    let info = RunInfo::starting(scenario, seed, fleet.description.clone());
    let judge = match (copies, &exporter) {
        (Some(copies), Some(x)) => {
            let inputs = running::Inputs {
                info: info.clone(),
                sla: scenario.sla.clone(),
                prices: fleet.prices.clone(),
                monthly_tokens: options.monthly_tokens.clone(),
                alternatives: scenario.compare_to.clone(),
                planned: config.plan.total(),
                controls: fleet.controls.clone(),
                before: measuring_from,
            };
            Some(running::start(inputs, copies, attempts, x.clone()))
        }
        _ => None,
    };
    let output = runner::run(&load, config, client, live, stop).await;
    let sut = watcher.finish().await;
    if let Some(x) = &exporter {
        x.finish(output.ran_for);
    }
    // The final verdict replaces the running one below; a late running one must not.
    if let Some(judge) = judge {
        judge.abort();
        let _ = judge.await;
    }
    drop(load);
    progress.finish();
    let budget = match guard {
        Some(g) => g.finish().await,
        None => None,
    };
    let _ = end_tx.send(());
    let faults = faults_task.await.unwrap_or_default();
    let before = if before_task.is_finished() {
        before_task.await.unwrap_or_default()
    } else {
        // Stopped during warmup: nothing was measured, so nothing is charged.
        before_task.abort();
        Default::default()
    };
    let after = timeline::snapshot(&fleet.controls).await;
    let prices = fleet.prices.clone();
    let info = RunInfo {
        started_at: output.started_at,
        ran_for: output.ran_for,
        interrupted: output.interrupted,
        ..info
    };
    // The upstreams count every shard's requests: a shard's own summary cannot account
    // them; its part carries them (the first shard's) to the merge, which can.
    let sharded = options.shard.is_some_and(|s| !s.is_whole());
    let nothing = std::collections::BTreeMap::new();
    let (own_before, own_after) = if sharded {
        (&nothing, &nothing)
    } else {
        (&before, &after)
    };
    let mut summary = metrics::conclude(Evidence {
        recording: &output.recorder,
        info: &info,
        faults: &faults,
        counters_before: own_before,
        counters_after: own_after,
        answered_tokens: &std::collections::BTreeMap::new(),
        prices: &prices,
        sla: &scenario.sla,
        monthly_tokens: &options.monthly_tokens,
        alternatives: &scenario.compare_to,
    });
    summary.budget = budget;
    summary.sut = sut;
    if let Some(x) = &exporter {
        // The last scrape reads the verdict summary.json holds.
        x.set_sla(summary.sla.clone());
    }
    let evidence = ShardEvidence {
        target: info.target.clone(),
        ran_for: output.ran_for,
        interrupted: output.interrupted,
        faults: faults.clone(),
        counters_before: if first {
            convert::<_, CounterRecord>(&before)
        } else {
            Default::default()
        },
        counters_after: if first {
            convert::<_, CounterRecord>(&after)
        } else {
            Default::default()
        },
        prices: convert::<_, PriceRecord>(&prices),
        monthly_tokens: options.monthly_tokens.clone(),
    };
    Ok(Finished {
        summary,
        recorder: output.recorder,
        started_at: output.started_at,
        plan: plan_for(scenario, options)?,
        evidence,
    })
}

/// What the SUT watcher reads: the parts gauntlet runs, the process `[observe]` names (found
/// now: a missing one fails the run before any load), and the `/metrics` to scrape (the
/// embedded gateway's unless `metrics_url` says otherwise).
fn watch_plan(
    scenario: &Scenario,
    fleet: &StartedFleet,
    plan: &Plan,
) -> Result<WatchPlan, EngineError> {
    let observe = &scenario.observe;
    let process = crate::observe::resolve(observe)?;
    let embedded = fleet.embedded();
    let url = observe.metrics_url.clone().or(embedded.gateway.clone());
    // A scrape may take up to an interval (at least 250 ms, at most 5 s) before it is a gap.
    let timeout = plan
        .interval
        .clamp(Duration::from_millis(250), Duration::from_secs(5));
    let scrape = match url {
        Some(url) => {
            let tls = crate::tls::ClientTls::new(&fleet.tls)
                .map_err(|e| FleetError::Tls(e.to_string()))?;
            match Scraper::new(&url, &tls, timeout) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("not scraping {url}: {e}");
                    None
                }
            }
        }
        None => None,
    };
    Ok(WatchPlan {
        interval: plan.interval,
        warmup: plan.warmup,
        gateway: embedded.gateway.is_some(),
        mocks: embedded.mocks,
        process,
        scrape,
        keep: observe.metrics.clone(),
        upstreams: fleet
            .upstreams
            .iter()
            .filter_map(|name| Some((name.clone(), fleet.controls.get(name)?.clone())))
            .collect(),
        client: None,
    })
}

/// The class mix, with each stage's own weights when classes set `stage_weights`.
fn staged_mix(scenario: &Scenario) -> Mix {
    let weights = scenario.requests.iter().map(|c| c.weight);
    if scenario.requests.iter().all(|c| c.stage_weights.is_none()) {
        return Mix::new(weights);
    }
    let per_stage: Vec<Vec<u32>> = (0..scenario.load.stages.len())
        .map(|s| {
            scenario
                .requests
                .iter()
                .map(|c| match &c.stage_weights {
                    Some(w) => w.get(s).copied().unwrap_or(0),
                    None => c.weight.get(),
                })
                .collect()
        })
        .collect();
    Mix::staged(weights, &per_stage)
}
