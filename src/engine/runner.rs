//! The one loop that runs any plan: open stages send at intended times without waiting for
//! answers (dropping at the in-flight cap), closed stages keep N users busy; every sample goes
//! through a channel to one recorder task, so workers share no lock.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::client::{Client, SessionStart};
use super::mix::{DirectDraw, Mix};
use super::plan::{Arrivals, Overrides, Plan, PlanStage, PlannedSend};
use crate::cluster::ShardId;
use crate::metrics::{Layout, Recorder, RecordingDeltas, Sample, Via, new_cumulative};
use crate::observe::LiveMetrics;
use crate::scenario::StageLoad;

/// How long in-flight requests may finish after Ctrl-C before they are abandoned.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Counters the progress display reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
    /// Requests of the direct baseline that ended: the upstreams count them, the gateway
    /// never sees them.
    pub direct: AtomicU64,
    /// Latency p99 so far, microseconds.
    pub p99_us: AtomicU64,
    /// Requests in flight (closed model: users), the generator's own count: shared here so
    /// the exporter reads it without the generator doing anything more.
    pub in_flight: Arc<AtomicUsize>,
    /// The live exporter's numbers (`--metrics-listen`), fed by the recorder task.
    pub exporter: Option<Arc<LiveMetrics>>,
}

/// The RNG that draws classes for the open model; closed-model user `u` uses `user_rng(seed, u)`.
pub fn mix_rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

fn user_rng(seed: u64, user: usize) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ (user as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The direct baseline's draws: the open model's, and closed-model user `u`'s. Their own
/// generators, so a baseline leaves the mix's sequence as the seed makes it.
fn direct_rng(seed: u64, user: Option<usize>) -> SmallRng {
    let user = user.map_or(0, |u| u as u64 + 1);
    SmallRng::seed_from_u64(
        seed.rotate_left(29) ^ 0x5851_F42D_4C95_7F2D ^ user.wrapping_mul(0xA076_1D64_78BD_642F),
    )
}

/// Which of its class's draws closed-model user `user` (of `users` in stage `stage`) takes
/// for its request number `seq`. Derived from the user's global index and its own sequence,
/// never from a counter of the process, so a shard's users send what they would send in the
/// whole run and no two shards send the same content or conversation id. The users' requests
/// interleave (round `seq` of the stage is draws `seq * users ..`), so a sequential dataset is
/// walked in about the order one counter would give, and the users at one moment send
/// different lines whatever the file's length. The stage sits in the top 16 bits, above every
/// draw the open model numbers from 0: stages never share a draw, and a stage would have to
/// send 2^48 requests to reach the next one's.
fn closed_draw(stage: usize, users: usize, user: usize, seq: u64) -> u64 {
    let stage = (stage as u64 + 1) << 48;
    stage | (seq.wrapping_mul(users as u64).wrapping_add(user as u64) & ((1 << 48) - 1))
}

fn arrival_seed(seed: u64, stage: usize) -> u64 {
    seed.rotate_left(17) ^ (stage as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Receives every measured sample as it is recorded (the raw request log of `--raw`). It runs
/// on the recorder task, off the request path, so a slow disk delays recording, not sending.
#[derive(Clone)]
pub struct SampleSink(pub std::sync::Arc<std::sync::Mutex<SinkFn>>);

type SinkFn = dyn FnMut(&Sample) + Send;

impl std::fmt::Debug for SampleSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleSink")
    }
}

impl SampleSink {
    pub fn new(f: impl FnMut(&Sample) + Send + 'static) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(f)))
    }
}

/// Copies of the recording while the run goes on, about once an `every`, for a reader that
/// judges the run so far (the running SLA checks). The channel holds one copy: while the
/// reader is busy with the last, no new one is made, so a slow reader costs no clones.
/// Each copy comes with how long the run had run when it was made: a copy may wait in the
/// channel while the reader rests, and must be judged at its own time.
#[derive(Debug, Clone)]
pub struct RecordingTap {
    pub every: Duration,
    pub tx: mpsc::Sender<(Duration, Recorder)>,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub plan: Plan,
    pub mix: Mix,
    pub seed: u64,
    pub layout: Layout,
    /// Bound on finishing in-flight requests after a stop.
    pub drain: Duration,
    pub sink: Option<SampleSink>,
    /// `[load] baseline = "direct"`: a share of requests sent around the gateway.
    pub baseline: Option<Baseline>,
    pub tap: Option<RecordingTap>,
    /// Fed every message the recording gets, for a shard to stream its run in deltas.
    pub deltas: Option<RecordingDeltas>,
    /// The slice of the plan this process sends (`--shard I/N`); None sends it all.
    pub shard: Option<ShardId>,
}

/// The client that sends straight to each class's primary upstream, and the share of
/// requests it takes.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub client: Arc<Client>,
    pub share: f64,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub recorder: Recorder,
    pub started_at: SystemTime,
    /// How long the plan ran (less than planned when stopped).
    pub ran_for: Duration,
    pub interrupted: bool,
}

/// Closed-model users send their samples in batches: one recorder wake-up (a futex call, the
/// recorder runs on another thread) per batch.
const USER_BATCH: usize = 256;
/// ... or at least this often, so the progress display stays live.
const USER_FLUSH: Duration = Duration::from_millis(100);

enum Msg {
    Sample(Sample),
    Batch(Vec<Sample>),
    Dropped {
        class: usize,
        intended: Duration,
        route: Via,
    },
}

/// Shared by the scheduler and every request task of a run.
struct Ctx {
    client: Arc<Client>,
    tx: mpsc::UnboundedSender<Msg>,
    in_flight: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    live: Arc<Live>,
    t0: Instant,
    /// Where closed-model users run (the load runtime's lanes).
    lanes: Vec<tokio::runtime::Handle>,
}

/// Worker threads the load runtime gets by default: one per core, as tokio would. Measured on
/// 2 cores against a mock on the same machine, one load thread gave ~20% less closed-loop
/// throughput than two, the OS sharing cores between generator and server better than a
/// fixed split; `--load-threads` sets it when the gateway needs cores kept for itself.
pub fn default_load_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// The runtime the load runs on, apart from the caller's (where an embedded gateway and mocks
/// serve): in one runtime a request due now would wait in the same run queue behind the
/// gateway's work, and that wait would be charged to the generator as schedule lag. Built
/// before anything starts, so a machine that refuses the threads fails the run up front.
///
/// Two kinds of threads, one per load thread each. A work-stealing runtime runs the plan, the
/// recorder and the open model's requests, whose arrivals come in bursts an idle worker should
/// take over. Closed-model users run on lanes: single-threaded runtimes, each on a thread of its
/// own, so a user and its connection always wake each other on one thread and nothing moves
/// them between workers. Measured on 2 cores against the zero-latency mock, users on lanes gave
/// ~5% more closed-loop throughput; open-model requests on lanes did far worse
/// (drops at rates the work-stealing runtime sustains), so they stay where they are.
pub struct LoadRuntime {
    main: Option<tokio::runtime::Runtime>,
    lanes: Vec<Lane>,
}

/// A single-threaded runtime, running until its `_stop` sender is dropped.
struct Lane {
    handle: tokio::runtime::Handle,
    _stop: oneshot::Sender<()>,
}

impl LoadRuntime {
    pub fn new(threads: NonZeroUsize) -> std::io::Result<Self> {
        let main = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.get())
            .thread_name("gauntlet-load")
            .enable_all()
            .build()?;
        let lanes = (0..threads.get())
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                // Detached: the thread ends by itself once the sender is gone.
                std::thread::Builder::new()
                    .name(format!("gauntlet-lane-{i}"))
                    .spawn(move || {
                        let _ = runtime.block_on(stopped);
                        runtime.shutdown_background();
                    })?;
                Ok(Lane {
                    handle,
                    _stop: stop,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            main: Some(main),
            lanes,
        })
    }
}

impl Drop for LoadRuntime {
    fn drop(&mut self) {
        // Dropped from async code, where a blocking shutdown would panic. Its tasks are done
        // by then (requests past the drain were abandoned, and counted). The lanes stop when
        // their senders drop, right after this.
        if let Some(runtime) = self.main.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for LoadRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoadRuntime")
    }
}

/// Runs `config.plan` against `client` on `load` until it ends or `stop` turns true.
pub async fn run(
    load: &LoadRuntime,
    config: RunConfig,
    client: Arc<Client>,
    live: Arc<Live>,
    stop: watch::Receiver<bool>,
) -> RunOutput {
    let lanes = load.lanes.iter().map(|l| l.handle.clone()).collect();
    let plan = run_plan(config, client, live, stop, lanes);
    let output = match &load.main {
        Some(runtime) => runtime.spawn(plan).await,
        None => tokio::spawn(plan).await,
    };
    match output {
        Ok(o) => o,
        // The plan only ends by returning; a panic there is a bug worth surfacing.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn run_plan(
    config: RunConfig,
    client: Arc<Client>,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
    lanes: Vec<tokio::runtime::Handle>,
) -> RunOutput {
    let (tx, rx) = mpsc::unbounded_channel();
    let (finish_tx, finish_rx) = oneshot::channel();
    // The run's clock, which the recorder's copies are timed on too.
    let t0 = Instant::now();
    let recorder = tokio::spawn(record(
        t0,
        Recorder::new(config.layout.clone()),
        rx,
        finish_rx,
        live.clone(),
        Outlets {
            sink: config.sink.clone(),
            tap: config.tap.clone(),
            deltas: config.deltas.clone(),
        },
    ));
    let started_at = SystemTime::now();
    let ctx = Ctx {
        client,
        tx,
        in_flight: live.in_flight.clone(),
        stopping: Arc::new(AtomicBool::new(false)),
        live,
        t0,
        lanes,
    };
    let mut draws = Draws {
        class: mix_rng(config.seed),
        direct: config
            .baseline
            .as_ref()
            .map(|b| DirectDraw::new(b.share, direct_rng(config.seed, None))),
        arrivals: 0,
        per_class: Vec::new(),
    };
    // The scheduler thread cannot await `stop`; it polls this flag instead.
    let halt = Arc::new(AtomicBool::new(false));
    let watcher = {
        let halt = halt.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                halt.store(true, Ordering::Relaxed);
            }
        })
    };
    let mut interrupted = false;
    for (i, stage) in config.plan.stages.iter().enumerate() {
        let completed = match stage.load {
            StageLoad::Rate { .. } | StageLoad::Trace(_) => {
                let arrivals =
                    Arrivals::new(stage, config.plan.arrival, arrival_seed(config.seed, i));
                let mix = config.mix.for_stage(i);
                run_open(&ctx, stage, arrivals, &config, mix, &mut draws, &halt).await
            }
            StageLoad::Concurrency(n) => {
                run_closed(&ctx, stage, n.get(), &config, i, &mut stop).await
            }
        };
        if !completed {
            interrupted = true;
            break;
        }
    }
    watcher.abort();
    let ran_for = ctx.t0.elapsed().min(config.plan.total());
    ctx.stopping.store(true, Ordering::Relaxed);
    // After a normal end every request is bounded by its timeout; after a stop, by the drain.
    let drain = if interrupted {
        config.drain
    } else {
        config.plan.timeout + Duration::from_secs(1)
    };
    let deadline = Instant::now() + drain;
    while ctx.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let abandoned = ctx.in_flight.load(Ordering::Acquire) as u64;
    drop(ctx);
    let _ = finish_tx.send(());
    let mut recorder = match recorder.await {
        Ok(r) => r,
        // The recorder task only ends by returning; a panic there is a bug worth surfacing.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    recorder.add_abandoned(abandoned);
    if let Some(d) = &config.deltas {
        d.with(|rec| rec.add_abandoned(abandoned));
    }
    RunOutput {
        recorder,
        started_at,
        ran_for,
        interrupted,
    }
}

/// Waits on the scheduler thread until `at` with an OS sleep (tens of microseconds late at
/// most, where tokio's timer ticks in whole milliseconds); never spins, so the scheduler does
/// not take a core from the requests it schedules. False when the run was halted.
fn precise_wait(at: Instant, halt: &AtomicBool) -> bool {
    loop {
        if halt.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(HALT_CHECK));
    }
}

/// Longest sleep between checks of the halt flag.
const HALT_CHECK: Duration = Duration::from_millis(20);

/// The scheduler hands the runtime at most one batch per tick. Spawning each request from the
/// scheduler thread would wake a runtime worker (a futex call) per request; a batch wakes one,
/// and its requests are spawned on that worker's local queue. Requests keep their own intended
/// times, so batching shows up as schedule lag (bounded by the tick), never as hidden delay.
const DISPATCH_TICK: Duration = Duration::from_micros(200);

/// The open stages' random draws, carried from one stage to the next: the class of each
/// arrival, and whether it goes direct.
#[derive(Debug, Clone)]
struct Draws {
    class: SmallRng,
    direct: Option<DirectDraw>,
    /// Arrivals of the whole plan so far: a shard sends arrival k when it owns k.
    arrivals: u64,
    /// Requests drawn per class so far, through the gateway then direct (`Via as usize`):
    /// each arrival's content is its class's next draw on every machine.
    per_class: Vec<u64>,
}

impl Draws {
    /// Draws an arrival's class (a trace names its own) and route and numbers it; Some when
    /// `shard` sends it. Every shard draws for every arrival, so all stay on the one
    /// schedule: arrival k is the same request on every machine.
    fn assign(
        &mut self,
        arrival: PlannedSend,
        mix: &Mix,
        shard: Option<ShardId>,
    ) -> Option<(usize, PlannedSend, Via)> {
        let class = arrival.class.unwrap_or_else(|| mix.pick(&mut self.class));
        let route = if self.direct.as_mut().is_some_and(DirectDraw::next_is_direct) {
            Via::Direct
        } else {
            Via::Gateway
        };
        let (k, n) = self.number(class, route);
        if shard.is_some_and(|s| !s.owns(k)) {
            return None;
        }
        let arrival = PlannedSend {
            overrides: Overrides {
                draw: Some(n),
                ..arrival.overrides
            },
            ..arrival
        };
        Some((class, arrival, route))
    }

    /// Numbers the next arrival: its index in the plan and its draw within its class.
    fn number(&mut self, class: usize, route: Via) -> (u64, u64) {
        let k = self.arrivals;
        self.arrivals += 1;
        let at = class * 2 + usize::from(route == Via::Direct);
        if self.per_class.len() <= at {
            self.per_class.resize(at + 1, 0);
        }
        let n = self.per_class[at];
        self.per_class[at] += 1;
        (k, n)
    }
}

/// Open stages run their schedule on a thread of their own, so the timing of sends does not
/// depend on how busy the runtime's workers are; each request is a task on the runtime.
async fn run_open(
    ctx: &Ctx,
    stage: &PlanStage,
    arrivals: Arrivals,
    config: &RunConfig,
    mix: Mix,
    draws: &mut Draws,
    halt: &Arc<AtomicBool>,
) -> bool {
    let cap = config.plan.max_in_flight.get();
    let runtime = tokio::runtime::Handle::current();
    let client = ctx.client.clone();
    let direct_client = config.baseline.as_ref().map(|b| b.client.clone());
    let tx = ctx.tx.clone();
    let in_flight = ctx.in_flight.clone();
    let live = ctx.live.clone();
    let halt = halt.clone();
    // Moved to the scheduler thread and back, so the next stage draws on.
    let mut draw = draws.clone();
    let t0 = ctx.t0;
    let end = t0 + stage.end();
    // A conversation an arrival starts may outlive its stage, never the plan.
    let until = config.plan.total();
    let shard = config.shard;
    let scheduler = tokio::task::spawn_blocking(move || {
        let mut arrivals = arrivals.peekable();
        let mut woke = Instant::now();
        while let Some(next) = arrivals.peek() {
            // Sleep until the next arrival, but not more often than once a tick.
            if !precise_wait((t0 + next.at).max(woke + DISPATCH_TICK), &halt) {
                return (false, draw);
            }
            woke = Instant::now();
            let mut due: Vec<(usize, PlannedSend, Via)> = Vec::new();
            while let Some(arrival) = arrivals.next_if(|a| t0 + a.at <= woke) {
                let Some((class, arrival, route)) = draw.assign(arrival, &mix, shard) else {
                    continue;
                };
                if in_flight.load(Ordering::Acquire) >= cap {
                    if route == Via::Gateway {
                        live.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    let intended = arrival.at;
                    let _ = tx.send(Msg::Dropped {
                        class,
                        intended,
                        route,
                    });
                    continue;
                }
                in_flight.fetch_add(1, Ordering::AcqRel);
                due.push((class, arrival, route));
            }
            if due.is_empty() {
                continue;
            }
            let client = client.clone();
            let direct_client = direct_client.clone();
            let tx = tx.clone();
            let in_flight = in_flight.clone();
            runtime.spawn(async move {
                for (class, arrival, route) in due {
                    let client = match (route, &direct_client) {
                        (Via::Direct, Some(direct)) => direct.clone(),
                        _ => client.clone(),
                    };
                    let tx = tx.clone();
                    let in_flight = in_flight.clone();
                    tokio::spawn(async move {
                        if client.is_session(class) {
                            let mut emit = |s| {
                                let _ = tx.send(Msg::Sample(s));
                            };
                            // Boxed: a conversation's state would otherwise enlarge every
                            // request's task, sessions or not.
                            let start = SessionStart {
                                class,
                                draw: arrival.overrides.draw,
                            };
                            Box::pin(
                                client.converse(None, start, t0, arrival.at, until, &mut emit),
                            )
                            .await;
                        } else {
                            let sample = client
                                .send_with(class, arrival.overrides, t0, arrival.at)
                                .await;
                            let _ = tx.send(Msg::Sample(sample));
                        }
                        in_flight.fetch_sub(1, Ordering::AcqRel);
                    });
                }
            });
        }
        (precise_wait(end, &halt), draw)
    });
    match scheduler.await {
        Ok((completed, draw)) => {
            *draws = draw;
            completed
        }
        Err(_) => false,
    }
}

async fn run_closed(
    ctx: &Ctx,
    stage: &PlanStage,
    users: usize,
    config: &RunConfig,
    stage_index: usize,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    // Since the run's start, like every intended time.
    let end = stage.end();
    let mut workers = JoinSet::new();
    // Users are dealt out by index: a shard runs the users it owns, each as the whole run
    // would (its own seeded draws).
    let owned = (0..users).filter(|u| config.shard.is_none_or(|s| s.owns(*u as u64)));
    for u in owned {
        let client = ctx.client.clone();
        let tx = ctx.tx.clone();
        let in_flight = ctx.in_flight.clone();
        let stopping = ctx.stopping.clone();
        let mix = config.mix.for_stage(stage_index);
        let user = stage_index * 1_000_003 + u;
        let mut rng = user_rng(config.seed, user);
        let direct = config.baseline.as_ref().map(|b| {
            let draw = DirectDraw::new(b.share, direct_rng(config.seed, Some(user)));
            (b.client.clone(), draw)
        });
        let t0 = ctx.t0;
        let mut seq = 0u64;
        let lane = match ctx.lanes.len() {
            0 => tokio::runtime::Handle::current(),
            n => ctx.lanes[u % n].clone(),
        };
        workers.spawn_on(
            async move {
                let mut conn = client.user_connections();
                // The baseline's own connections: it talks to other servers.
                let mut direct = direct.map(|(c, draw)| {
                    let conn = c.user_connections();
                    (c, draw, conn)
                });
                let mut batch = Vec::new();
                let mut flushed = Duration::ZERO;
                // One count per user, not per request: a closed user has at most one in flight.
                in_flight.fetch_add(1, Ordering::AcqRel);
                while !stopping.load(Ordering::Relaxed) {
                    // A closed-model user sends the moment its last answer arrived: intended = now.
                    // One clock read serves the stage's end, the intended time and the flush.
                    let intended = t0.elapsed();
                    if intended >= end {
                        break;
                    }
                    let class = mix.pick(&mut rng);
                    let go_direct = direct
                        .as_mut()
                        .is_some_and(|(_, draw, _)| draw.next_is_direct());
                    let (client, conn) = match &mut direct {
                        Some((c, _, direct_conn)) if go_direct => (&*c, direct_conn),
                        _ => (&client, &mut conn),
                    };
                    let draw = Some(closed_draw(stage_index, users, u, seq));
                    seq += 1;
                    if client.is_session(class) {
                        let mut emit = |s| batch.push(s);
                        let start = SessionStart { class, draw };
                        Box::pin(client.converse(Some(conn), start, t0, intended, end, &mut emit))
                            .await;
                    } else {
                        let overrides = Overrides {
                            draw,
                            ..Overrides::default()
                        };
                        let sample = client.send_on_with(conn, class, overrides, t0, intended);
                        batch.push(sample.await);
                    }
                    if batch.len() >= USER_BATCH || intended.saturating_sub(flushed) >= USER_FLUSH {
                        flushed = intended;
                        // The next batch is sized like this one: a slow user flushing a
                        // few samples every 100 ms does not allocate room for 256.
                        let next = Vec::with_capacity(batch.len());
                        let full = std::mem::replace(&mut batch, next);
                        if tx.send(Msg::Batch(full)).is_err() {
                            break;
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(Msg::Batch(batch));
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            },
            &lane,
        );
    }
    let stopped = {
        let joined = async { while workers.join_next().await.is_some() {} };
        tokio::select! {
            _ = joined => false,
            _ = stop.wait_for(|s| *s) => true,
        }
    };
    if stopped {
        ctx.stopping.store(true, Ordering::Relaxed);
        // Users finish their current request (the caller's drain bounds how long); dropping
        // the set would abort them and lose what they measured.
        workers.detach_all();
    }
    !stopped
}

/// Where the recorder task passes on what it records, beside the recording itself.
#[derive(Debug, Default)]
struct Outlets {
    sink: Option<SampleSink>,
    tap: Option<RecordingTap>,
    deltas: Option<RecordingDeltas>,
}

/// What a message does to a recording, and nothing else (no live counters): how a delta is fed.
fn apply(m: &Msg, rec: &mut Recorder) {
    match m {
        Msg::Sample(s) => rec.record(s),
        Msg::Batch(samples) => samples.iter().for_each(|s| rec.record(s)),
        Msg::Dropped {
            class,
            intended,
            route: Via::Direct,
        } => rec.record_dropped_direct(*class, *intended),
        Msg::Dropped {
            class,
            intended,
            route: Via::Gateway,
        } => rec.record_dropped(*class, *intended),
    }
}

/// The recorder task: owns the recording, so recording needs no lock.
async fn record(
    t0: Instant,
    mut rec: Recorder,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut finish: oneshot::Receiver<()>,
    live: Arc<Live>,
    outlets: Outlets,
) -> Recorder {
    let Outlets { sink, tap, deltas } = outlets;
    // Without a tap the ticker never fires its branch; it still needs a period.
    let mut copies =
        tokio::time::interval(tap.as_ref().map_or(Duration::from_secs(3600), |t| t.every));
    copies.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = new_cumulative::<u64>();
    let mut batch = Vec::with_capacity(256);
    let mut since_publish = 0u32;
    let exporter = live.exporter.clone();
    let mut one = |s: &Sample, rec: &mut Recorder| {
        rec.record(s);
        // The baseline is recorded apart and shown nowhere live: the live numbers are the
        // gateway's.
        if s.route == Via::Direct {
            live.direct.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(x) = &exporter {
            x.record(s);
        }
        if let Some(sink) = &sink {
            // A sink that panicked poisons the lock; the measurement itself goes on.
            if let Ok(mut f) = sink.0.lock() {
                f(s);
            }
        }
        live.completed.fetch_add(1, Ordering::Relaxed);
        if s.result.is_err() {
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
        // Like the summary, the live p99 is of answers: fast refusals would flatter it.
        if s.result.is_ok() {
            let us = u64::try_from(s.latency.as_micros()).unwrap_or(u64::MAX);
            let _ = progress.record(us.min(3_600_000_000));
        }
        since_publish += 1;
        if since_publish >= 512 {
            since_publish = 0;
            live.p99_us
                .store(progress.value_at_quantile(0.99), Ordering::Relaxed);
        }
    };
    let mut handle = |m: Msg, rec: &mut Recorder| match m {
        Msg::Sample(s) => one(&s, rec),
        Msg::Batch(samples) => {
            for s in &samples {
                one(s, rec);
            }
        }
        Msg::Dropped {
            class,
            intended,
            route: Via::Direct,
        } => rec.record_dropped_direct(class, intended),
        Msg::Dropped {
            class,
            intended,
            route: Via::Gateway,
        } => {
            rec.record_dropped(class, intended);
            if let Some(x) = &live.exporter {
                x.record_dropped(class, intended);
            }
        }
    };
    loop {
        tokio::select! {
            biased;
            // First: under load the samples are always ready and would starve it.
            _ = copies.tick(), if tap.is_some() => {
                if let Some(permit) = tap.as_ref().and_then(|t| t.tx.try_reserve().ok()) {
                    permit.send((t0.elapsed(), rec.clone()));
                }
            }
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                if let Some(d) = &deltas {
                    d.with(|delta| batch.iter().for_each(|m| apply(m, delta)));
                }
                for m in batch.drain(..) {
                    handle(m, &mut rec);
                }
            }
            _ = &mut finish => {
                while let Ok(m) = rx.try_recv() {
                    if let Some(d) = &deltas {
                        d.with(|delta| apply(&m, delta));
                    }
                    handle(m, &mut rec);
                }
                break;
            }
        }
    }
    live.p99_us
        .store(progress.value_at_quantile(0.99), Ordering::Relaxed);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open arrival of `stages` as `shard` would send it: (intended, class, route, draw).
    fn schedule(
        stages: &[PlanStage],
        process: crate::scenario::Arrival,
        shard: Option<ShardId>,
    ) -> Vec<(Duration, usize, Via, Option<u64>)> {
        let seed = 41;
        let w = |n| std::num::NonZeroU32::new(n).expect("> 0");
        let mix = Mix::new([w(80), w(15), w(5)]);
        let mut draws = Draws {
            class: mix_rng(seed),
            direct: Some(DirectDraw::new(0.1, direct_rng(seed, None))),
            arrivals: 0,
            per_class: Vec::new(),
        };
        let mut out = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            let mix = mix.for_stage(i);
            for a in Arrivals::new(stage, process, arrival_seed(seed, i)) {
                if let Some((class, a, route)) = draws.assign(a, &mix, shard) {
                    out.push((a.at, class, route, a.overrides.draw));
                }
            }
        }
        out
    }

    #[test]
    fn the_shards_schedules_together_are_the_single_schedule() {
        let rate = |from: f64, to: f64, start: u64, secs: u64| PlanStage {
            start: Duration::from_secs(start),
            duration: Duration::from_secs(secs),
            load: StageLoad::Rate { from, to },
        };
        // A ramp, then a hold: arrivals carry across the stage boundary.
        let stages = [rate(0.0, 400.0, 0, 10), rate(400.0, 400.0, 10, 10)];
        for process in [
            crate::scenario::Arrival::Constant,
            crate::scenario::Arrival::Poisson,
        ] {
            let whole = schedule(&stages, process, None);
            assert!(whole.len() > 5_000, "{}", whole.len());
            for n in [1u32, 2, 3, 7] {
                let mut union = Vec::new();
                let mut sizes = Vec::new();
                for i in 0..n {
                    let shard = ShardId::new(i, n, "test").expect("in range");
                    let part = schedule(&stages, process, Some(shard));
                    sizes.push(part.len());
                    union.extend(part);
                }
                union.sort_by_key(|a| a.0);
                let differ = union.iter().zip(&whole).filter(|(a, b)| a != b).count();
                assert!(
                    union.len() == whole.len() && differ == 0,
                    "{process:?}, {n} shards: {} arrivals against {}, {differ} differ",
                    union.len(),
                    whole.len()
                );
                // Dealt out evenly: no shard sends more than one arrival more than another.
                let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{sizes:?}");
            }
        }
    }

    /// The draws the closed users `shard` owns take in their first `rounds` requests of each
    /// of two stages.
    fn closed_draws(users: usize, rounds: u64, shard: Option<ShardId>) -> Vec<u64> {
        let mut out = Vec::new();
        for stage in [1, 2] {
            let owned = (0..users).filter(|u| shard.is_none_or(|s| s.owns(*u as u64)));
            for u in owned {
                out.extend((0..rounds).map(|seq| closed_draw(stage, users, u, seq)));
            }
        }
        out
    }

    #[test]
    fn closed_users_draw_alike_in_every_shard_and_no_two_shards_share_a_draw() {
        let (users, rounds) = (37, 50);
        let whole = closed_draws(users, rounds, None);
        let distinct: std::collections::BTreeSet<_> = whole.iter().copied().collect();
        assert_eq!(distinct.len(), whole.len(), "a draw taken twice in one run");
        // Above every draw the open model numbers (from 0 per class).
        assert!(whole.iter().all(|d| *d >= 1 << 48));
        for n in [1u32, 2, 3, 7] {
            let mut union = std::collections::BTreeSet::new();
            for i in 0..n {
                let shard = ShardId::new(i, n, "test").expect("in range");
                for d in closed_draws(users, rounds, Some(shard)) {
                    assert!(union.insert(d), "{n} shards: draw {d} sent by two shards");
                }
            }
            assert_eq!(union, distinct, "{n} shards together draw as the whole run");
        }
        // A round's users take consecutive draws: a sequential dataset's lines in order.
        let first: Vec<_> = (0..users).map(|u| closed_draw(0, users, u, 0)).collect();
        assert!(first.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(closed_draw(0, users, 0, 1), first[users - 1] + 1);
    }

    #[tokio::test]
    async fn a_copy_carries_the_time_it_was_made_not_the_time_it_was_read() {
        let layout = Layout::new(
            vec!["c".into()],
            vec!["u".into()],
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(10),
        );
        let (_samples, rx) = mpsc::unbounded_channel();
        let (finish, finish_rx) = oneshot::channel();
        let (tx, mut copies) = mpsc::channel(1);
        let tap = RecordingTap {
            every: Duration::from_millis(10),
            tx,
        };
        let t0 = Instant::now();
        let recorder = tokio::spawn(record(
            t0,
            Recorder::new(layout),
            rx,
            finish_rx,
            Arc::new(Live::default()),
            Outlets {
                tap: Some(tap),
                ..Outlets::default()
            },
        ));
        let _ = copies.recv().await.expect("a first copy");
        // The reader rests; the next copy waits in the channel meanwhile.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (made_at, _) = copies.recv().await.expect("a second copy");
        let read_at = t0.elapsed();
        assert!(
            made_at + Duration::from_millis(200) < read_at,
            "made at {made_at:?}, read at {read_at:?}"
        );
        let _ = finish.send(());
        let _ = recorder.await;
    }

    #[cfg(target_os = "linux")]
    fn lane_threads() -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("gauntlet-lane"))
            .count()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_dropped_load_runtime_leaves_no_lane_thread_behind() {
        let load = LoadRuntime::new(NonZeroUsize::new(3).expect("3 > 0")).expect("threads");
        // Lanes run what is given to them.
        let (tx, rx) = std::sync::mpsc::channel();
        for lane in &load.lanes {
            let tx = tx.clone();
            lane.handle.spawn(async move {
                tokio::task::yield_now().await;
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            });
        }
        let mut names: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).ok().flatten())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["gauntlet-lane-0", "gauntlet-lane-1", "gauntlet-lane-2"].map(|n| Some(n.to_owned()))
        );
        assert!(lane_threads() >= 3);
        drop(load);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lane_threads() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(lane_threads(), 0, "lane threads outlived their runtime");
    }
}
