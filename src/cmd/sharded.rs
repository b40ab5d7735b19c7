//! `gauntlet run --shard I/N --coordinator HOST:PORT`: one shard of a live sharded run.
//! Shard 0 is the coordinator: it serves the protocol (`cluster::coordinator`), starts the
//! fleet (mocks, the gateway on its listen address), plays the faults, sends its own slice,
//! merges what the others push and writes the one run folder with the verdict. Every other
//! shard joins it (`cluster::link`), sends its slice to the target it was handed, pushes what
//! it recorded every interval, and keeps its own run folder and part.
//!
//! The coordinator's exit code is the run's verdict; a shard exits 0 once its part was
//! delivered, 2 when refused (another scenario or seed, a duplicated index, an address that
//! is not a coordinator), 3 when the coordinator could not be reached or went away.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use gauntlet::cluster::coordinator::{
    Coordinator, CoordinatorConfig, PartSink, SeatEnd, SeatReport,
};
use gauntlet::cluster::link::{Link, LinkError, PushError};
use gauntlet::cluster::wire::ShardIdentity;
use gauntlet::cluster::{
    Part, PartHeader, ShardEvidence, ShardId, conclude_merged, file_fingerprint, fingerprint,
    inconclusive, merge_parts, write_merged,
};
use gauntlet::engine::{self, RunOptions, StartGate};
use gauntlet::metrics::{MAX_TRUSTED_LAG, Recorder, RecordingDeltas, ShardStats, Summary};
use gauntlet::rundir::{RunDir, RunFile};
use gauntlet::scenario::{Scenario, Target};
use tokio::sync::watch;

use super::part_origin::PartOrigin;
use super::{InvalidInput, Outcome};

/// How long a shard keeps trying to reach a coordinator that does not answer yet (pods start
/// in any order) before the run counts as failed to start.
const REACH_WITHIN: Duration = Duration::from_secs(60);
/// A shard whose pushes have all failed this long stops on its own: its coordinator is gone.
const COORDINATOR_LOST: Duration = Duration::from_secs(8);
/// Intervals of silence after which the coordinator counts a shard lost.
const SILENT_INTERVALS: u32 = 3;

/// Where this process stands in a sharded run.
#[derive(Debug, Clone)]
pub struct Membership {
    pub shard: ShardId,
    /// HOST:PORT of the coordinator (shard 0 listens there).
    pub coordinator: String,
    /// How long the coordinator waits for every shard to register.
    pub wait: Duration,
}

/// What a sharded run needs from the command line beyond the options.
pub struct Invocation<'a> {
    pub scenario: &'a Scenario,
    pub scenario_path: &'a Path,
    pub out: PathBuf,
    pub force: bool,
    pub target_given: bool,
}

pub fn run(
    inv: Invocation<'_>,
    options: RunOptions,
    member: Membership,
) -> anyhow::Result<Outcome> {
    let plan = engine::plan_for(inv.scenario, &options).map_err(|e| InvalidInput(e.to_string()))?;
    let seed = options.seed.unwrap_or(inv.scenario.seed);
    // The file's text, not the compiled scenario: its Debug form holds hash maps whose order
    // differs between processes, so two shards of one file would never agree.
    let scenario_fingerprint = file_fingerprint(inv.scenario_path)
        .map_err(|e| InvalidInput(format!("{}: {e}", inv.scenario_path.display())))?;
    let identity = ShardIdentity {
        fingerprint: format!("{scenario_fingerprint}-{}", fingerprint(&plan)),
        seed,
        count: member.shard.count.get(),
        index: member.shard.index,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let options = RunOptions {
        shard: Some(member.shard),
        ..options
    };
    let origin = PartOrigin {
        scenario: inv.scenario,
        path: inv.scenario_path,
        plan: &plan,
        fingerprint: scenario_fingerprint,
        seed,
        shard: member.shard,
    };
    if member.shard.is_first() {
        coordinate(&inv, options, &member, identity, &origin)
    } else {
        follow(&inv, options, &member, identity, &origin)
    }
}

/// The parts shards pushed, each shard's deltas merged as they come.
struct Gathered {
    parts: Mutex<Vec<Option<Part>>>,
}

impl PartSink for Gathered {
    fn absorb(&self, shard: u32, bytes: &[u8], done: bool) -> Result<(), String> {
        let part = Part::decode(bytes).map_err(|e| e.to_string())?;
        if part.header.shard.index != shard {
            return Err(format!(
                "it says it is shard {}'s part",
                part.header.shard.index
            ));
        }
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = parts
            .get_mut(shard as usize)
            .ok_or_else(|| format!("shard {shard} is not of this run"))?;
        match slot {
            None => *slot = Some(part),
            Some(kept) => {
                kept.recording
                    .merge(&part.recording)
                    .map_err(|e| e.to_string())?;
                if done {
                    kept.header = part.header;
                    kept.evidence = part.evidence;
                }
            }
        }
        Ok(())
    }
}

/// Shard 0: the coordinator.
fn coordinate(
    inv: &Invocation<'_>,
    options: RunOptions,
    member: &Membership,
    identity: ShardIdentity,
    origin: &PartOrigin<'_>,
) -> anyhow::Result<Outcome> {
    let listen = listen_addr(&member.coordinator)?;
    let (host, _) = member.coordinator.rsplit_once(':').ok_or_else(|| {
        InvalidInput(format!(
            "--coordinator {}: not HOST:PORT",
            member.coordinator
        ))
    })?;
    let host = host.to_string();
    let embedded = !inv.target_given && matches!(inv.scenario.target, Target::EmbeddedGateway(_));
    let runtime = super::runtime()?;
    let count = member.shard.count.get();
    let gathered = Arc::new(Gathered {
        parts: Mutex::new((0..count).map(|_| None).collect()),
    });
    let push_every = origin.plan.interval;
    let config = CoordinatorConfig {
        identity,
        push_every,
        wait_for_shards: member.wait,
        silence: (push_every * SILENT_INTERVALS).max(Duration::from_secs(2)),
        say: Arc::new(|line| eprintln!("{line}")),
    };
    let coordinator = runtime
        .block_on(start_coordinator(listen, config, gathered.clone()))
        .with_context(|| {
            format!(
                "--coordinator {}: cannot listen on {listen}",
                member.coordinator
            )
        })?;
    let coordinator = Arc::new(coordinator);
    eprintln!(
        "coordinator: listening on {} for {} more shard{}",
        coordinator.addr(),
        count - 1,
        if count == 2 { "" } else { "s" }
    );
    let mut run_dir =
        RunDir::create(&inv.out, inv.force).map_err(|e| InvalidInput(e.to_string()))?;
    let gate = {
        let coordinator = coordinator.clone();
        StartGate(Arc::new(move |targets: Vec<String>| {
            let coordinator = coordinator.clone();
            let host = host.clone();
            Box::pin(async move {
                let target = shard_target(&targets, embedded.then_some(host.as_str()))?;
                coordinator.set_target(target);
                coordinator
                    .wait_for_shards()
                    .await
                    .map_err(|e| e.to_string())?;
                let t0 = coordinator.announce();
                eprintln!(
                    "coordinator: all {count} shards registered; the load starts in {:.0} ms",
                    t0.duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .as_secs_f64()
                        * 1e3
                );
                Ok(t0)
            })
        }))
    };
    let options = RunOptions {
        gate: Some(gate),
        gateway_ip: embedded.then_some(coordinator.addr().ip()),
        ..options
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime.spawn(async move {
        super::stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let finished = runtime.block_on(engine::run_scenario(inv.scenario, &options, stop_rx));
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            runtime.block_on(coordinator.shutdown());
            run_dir.discard_if_empty();
            return Err(e.into());
        }
    };
    // Every shard ends about when this one did; one whose final part is later than its
    // requests' timeout and a few pushes' worth counts as lost.
    let bound = origin.plan.timeout + push_every * SILENT_INTERVALS + Duration::from_secs(5);
    let seats = runtime.block_on(coordinator.finish(bound));
    runtime.block_on(coordinator.shutdown());
    let own = origin.whole(&finished);
    run_dir
        .write(RunFile::Part, &own.encode())
        .with_context(|| format!("writing the coordinator's part into {}", inv.out.display()))?;
    let mut parts = vec![("shard 0".to_string(), own)];
    let pushed = std::mem::take(
        &mut *gathered
            .parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    for (i, part) in (0u32..).zip(pushed) {
        if let Some(mut part) = part {
            if part.header.stats == ShardStats::default() {
                // Its final part never came: its row is made from what it did push, over the
                // time the run had (its rate is then what it managed before it was lost).
                part.evidence.ran_for = finished.evidence.ran_for;
                part.header.stats = stats_alone(&part, i, inv.scenario);
            }
            parts.push((format!("shard {i}"), part));
        }
    }
    let merged = merge_parts(parts).context("merging the shards' parts")?;
    let mut summary = conclude_merged(&merged, inv.scenario);
    judge_shards(&mut summary, &seats);
    write_merged(&mut run_dir, &merged, &summary)
        .with_context(|| format!("writing the run folder {}", inv.out.display()))?;
    print!("{}", gauntlet::report::terminal_summary(&summary));
    print_shards(&summary);
    println!("report: {}", run_dir.file(RunFile::IndexHtml).display());
    Ok(if summary.interrupted {
        Outcome::Interrupted
    } else if summary.sla.passed {
        Outcome::Ok
    } else {
        Outcome::SlaViolated
    })
}

/// Where the shards send their load: the coordinator's own gateway under the name they
/// reach the coordinator by, or the one target every class of the run goes to.
fn shard_target(targets: &[String], host: Option<&str>) -> Result<String, String> {
    let first = targets.first().ok_or("the run has no target")?;
    if targets.iter().any(|t| t != first) {
        return Err(
            "a sharded run sends every class to one target (a gateway); this scenario sends \
             classes straight to their upstreams"
                .into(),
        );
    }
    let Some(host) = host else {
        return Ok(first.clone());
    };
    let uri: http::Uri = first.parse().map_err(|e| format!("{first}: {e}"))?;
    let port = uri
        .port_u16()
        .ok_or_else(|| format!("{first} names no port"))?;
    Ok(format!("http://{host}:{port}"))
}

/// The address to listen on for `HOST:PORT`: the one HOST resolves to here, so the gateway
/// the shards are pointed at listens where they reach this machine. A name this machine
/// cannot resolve for itself (a Service's name before its pod is ready) listens on every
/// address instead.
fn listen_addr(coordinator: &str) -> Result<SocketAddr, InvalidInput> {
    let bad = || InvalidInput(format!("--coordinator {coordinator}: not HOST:PORT"));
    let (_, port) = coordinator.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let resolved = coordinator
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next());
    Ok(resolved.unwrap_or_else(|| {
        eprintln!("coordinator: {coordinator} does not resolve here; listening on every address");
        SocketAddr::from(([0, 0, 0, 0], port))
    }))
}

/// Listens on `addr`, or on every address at its port when `addr` is not this machine's
/// (a name that resolves to a load balancer in front of it).
async fn start_coordinator(
    addr: SocketAddr,
    config: CoordinatorConfig,
    sink: Arc<Gathered>,
) -> std::io::Result<Coordinator> {
    match Coordinator::start(addr, config.clone(), sink.clone()).await {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
            eprintln!("coordinator: {addr} is not an address of this machine; listening on {any}");
            Coordinator::start(any, config, sink).await
        }
        other => other,
    }
}

/// A shard's row from its part alone, as its own run would have reported it.
fn stats_alone(part: &Part, index: u32, scenario: &Scenario) -> ShardStats {
    match merge_parts(vec![(format!("shard {index}"), part.clone())]) {
        Ok(alone) => ShardStats::of(index, &conclude_merged(&alone, scenario)),
        Err(_) => ShardStats {
            index,
            ..ShardStats::default()
        },
    }
}

/// Fills each shard's row with its clock and fate, and makes the verdict inconclusive for
/// any shard that was lost or fell behind.
fn judge_shards(summary: &mut Summary, seats: &[SeatReport]) {
    let max_lag_ms = MAX_TRUSTED_LAG.as_secs_f64() * 1000.0;
    for seat in seats {
        let row = match summary.shards.iter_mut().find(|r| r.index == seat.index) {
            Some(row) => row,
            None => {
                summary.shards.push(ShardStats {
                    index: seat.index,
                    ..ShardStats::default()
                });
                summary.shards.sort_by_key(|r| r.index);
                match summary.shards.iter_mut().find(|r| r.index == seat.index) {
                    Some(row) => row,
                    None => continue,
                }
            }
        };
        row.clock_offset_ms = Some(seat.offset_ms());
        row.rtt_ms = Some(seat.rtt.as_secs_f64() * 1000.0);
        let mut why = match &seat.end {
            SeatEnd::Lost(why) => Some(why.clone()),
            SeatEnd::Finished => None,
        };
        if why.is_none() && (row.dropped > 0 || row.lag_p99_ms > max_lag_ms) {
            why = Some(format!(
                "fell behind its schedule (dropped {}, schedule lag p99 {:.1} ms; the bound is \
                 {max_lag_ms:.0} ms and no drops)",
                row.dropped, row.lag_p99_ms
            ));
        }
        if let Some(why) = why {
            row.note = Some(why.clone());
            inconclusive(summary, format!("shard {}: {why}", seat.index));
        }
    }
}

fn print_shards(summary: &Summary) {
    println!("shards:");
    println!(
        "  {:>5} {:>9} {:>9} {:>10} {:>8} {:>11} {:>9}  status",
        "shard", "requests", "req/s", "lag p99", "dropped", "offset", "rtt"
    );
    for s in &summary.shards {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:+.3} ms"));
        println!(
            "  {:>5} {:>9} {:>9.1} {:>7.1} ms {:>8} {:>11} {:>9}  {}",
            s.index,
            s.requests,
            s.rps,
            s.lag_p99_ms,
            s.dropped,
            ms(s.clock_offset_ms),
            s.rtt_ms.map_or("-".to_string(), |v| format!("{v:.3} ms")),
            s.note.as_deref().unwrap_or("ok")
        );
    }
}

/// Why a shard's run ended early, when it did.
#[derive(Default)]
struct Trouble(Mutex<Option<LinkError>>);

impl Trouble {
    fn set(&self, e: LinkError) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if t.is_none() {
            *t = Some(e);
        }
    }

    fn take(&self) -> Option<LinkError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Every other shard: join, send, push, keep its own run folder.
fn follow(
    inv: &Invocation<'_>,
    options: RunOptions,
    member: &Membership,
    identity: ShardIdentity,
    origin: &PartOrigin<'_>,
) -> anyhow::Result<Outcome> {
    let link = Link::new(&member.coordinator, member.shard.index)?;
    let runtime = super::runtime()?;
    eprintln!(
        "shard {}: joining the coordinator at {}",
        member.shard, member.coordinator
    );
    let joined = runtime.block_on(link.join(&identity, REACH_WITHIN))?;
    eprintln!(
        "shard {}: admitted; clock offset {:+.3} ms (round trip {:.3} ms); load goes to {}",
        member.shard,
        joined.clock.offset_ns as f64 / 1e6,
        joined.clock.rtt.as_secs_f64() * 1e3,
        if inv.target_given {
            "--target"
        } else {
            &joined.target
        }
    );
    let mut run_dir =
        RunDir::create(&inv.out, inv.force).map_err(|e| InvalidInput(e.to_string()))?;
    let trouble = Arc::new(Trouble::default());
    let gate = {
        let link = link.clone();
        let trouble = trouble.clone();
        let offset = joined.clock.offset_ns;
        let within = member.wait + Duration::from_secs(60);
        StartGate(Arc::new(move |_targets| {
            let link = link.clone();
            let trouble = trouble.clone();
            Box::pin(async move {
                link.wait_start(offset, within).await.map_err(|e| {
                    let why = e.to_string();
                    trouble.set(e);
                    why
                })
            })
        }))
    };
    let slot = Arc::new(OnceLock::new());
    let options = RunOptions {
        target: options.target.clone().or(Some(joined.target.clone())),
        gate: Some(gate),
        deltas: Some(slot.clone()),
        load_only: true,
        ..options
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        runtime.spawn(async move {
            super::stop_signal().await;
            let _ = stop_tx.send(true);
        });
    }
    let (ended_tx, ended_rx) = watch::channel(false);
    let started_at = Arc::new(OnceLock::new());
    let pusher = {
        let pusher = PartPusher {
            link: link.clone(),
            queue: VecDeque::new(),
            seq: 0,
            last_ok: Instant::now(),
            trouble: trouble.clone(),
            coordinator: member.coordinator.clone(),
        };
        let part_of = delta_maker(origin, started_at.clone());
        runtime.spawn(pusher.run(
            joined.push_every,
            slot.clone(),
            part_of,
            stop_tx.clone(),
            ended_rx,
        ))
    };
    let finished = runtime.block_on(engine::run_scenario(inv.scenario, &options, stop_rx));
    let _ = ended_tx.send(true);
    let pusher = runtime.block_on(pusher).context("the pusher task failed")?;
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            run_dir.discard_if_empty();
            if let Some(t) = trouble.take() {
                return Err(t.into());
            }
            return Err(e.into());
        }
    };
    // The part first, on disk, whatever becomes of the last push; then the last push, before
    // the slower reports, so the coordinator does not wait on them.
    let own = origin.whole(&finished);
    run_dir
        .write(RunFile::Part, &own.encode())
        .with_context(|| format!("writing the part into {}", inv.out.display()))?;
    let part_path = run_dir.file(RunFile::Part);
    let delivered = match trouble.take() {
        Some(t) => Err(t),
        None => {
            // The last delta carries the shard's final numbers and evidence, and says it is
            // the end.
            let rest = slot.get().map(RecordingDeltas::take);
            let last = origin.part(
                rest.unwrap_or_else(|| Recorder::new(finished.recorder.layout().clone())),
                finished.started_at,
                own.header.stats.clone(),
                finished.evidence.clone(),
            );
            runtime.block_on(pusher.finish(last.encode()))
        }
    };
    engine::write_run(&mut run_dir, &finished)
        .with_context(|| format!("writing the run folder {}", inv.out.display()))?;
    gauntlet::report::write_reports(&finished.summary, &mut run_dir)
        .with_context(|| format!("writing the reports into {}", inv.out.display()))?;
    match delivered {
        Ok(()) => {
            eprintln!(
                "shard {}: final part delivered; own run folder {}",
                member.shard,
                inv.out.display()
            );
            Ok(Outcome::Ok)
        }
        Err(e) => anyhow::bail!(
            "{e}; this shard stopped on its own and kept its part in {}",
            part_path.display()
        ),
    }
}

type DeltaMaker = Box<dyn Fn(Recorder) -> Vec<u8> + Send>;

/// Encodes a mid-run delta as a part (its header carries no final numbers yet).
fn delta_maker(origin: &PartOrigin<'_>, started_at: Arc<OnceLock<SystemTime>>) -> DeltaMaker {
    let header = origin.header(SystemTime::now(), ShardStats::default());
    Box::new(move |recording| {
        let started = *started_at.get_or_init(SystemTime::now);
        Part {
            header: PartHeader {
                started_at: started,
                ..header.clone()
            },
            evidence: ShardEvidence::default(),
            recording,
        }
        .encode()
    })
}

/// Pushes a shard's deltas in order, each until taken.
struct PartPusher {
    link: Link,
    queue: VecDeque<(u64, Vec<u8>)>,
    seq: u64,
    last_ok: Instant,
    trouble: Arc<Trouble>,
    coordinator: String,
}

impl PartPusher {
    async fn run(
        mut self,
        every: Duration,
        slot: Arc<OnceLock<RecordingDeltas>>,
        part_of: DeltaMaker,
        stop: Arc<watch::Sender<bool>>,
        mut ended: watch::Receiver<bool>,
    ) -> Self {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ended.wait_for(|e| *e) => return self,
            }
            let Some(deltas) = slot.get() else {
                // Not started yet: nothing to push, nothing to miss.
                self.last_ok = Instant::now();
                continue;
            };
            self.seq += 1;
            self.queue.push_back((self.seq, part_of(deltas.take())));
            if let Err(e) = self.flush(false).await {
                self.trouble.set(e);
                let _ = stop.send(true);
                return self;
            }
        }
    }

    /// Sends what is queued, oldest first; stops at the first failure, which is only an
    /// error once nothing went through for `COORDINATOR_LOST` (or the part was refused).
    async fn flush(&mut self, done_last: bool) -> Result<(), LinkError> {
        while let Some((seq, bytes)) = self.queue.front() {
            let done = done_last && self.queue.len() == 1;
            match self.link.push(*seq, done, bytes.clone().into()).await {
                Ok(()) => {
                    self.queue.pop_front();
                    self.last_ok = Instant::now();
                }
                Err(PushError::Refused(why)) => {
                    return Err(LinkError::Gone {
                        addr: self.coordinator.clone(),
                        reason: format!("it refused a part: {why}"),
                    });
                }
                Err(PushError::Unreachable(why)) => {
                    if self.last_ok.elapsed() > COORDINATOR_LOST {
                        return Err(LinkError::Gone {
                            addr: self.coordinator.clone(),
                            reason: format!(
                                "no push went through for {:.0} s ({why})",
                                self.last_ok.elapsed().as_secs_f64()
                            ),
                        });
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Queues the final part and sends everything, retrying for up to `COORDINATOR_LOST`.
    async fn finish(mut self, last: Vec<u8>) -> Result<(), LinkError> {
        self.seq += 1;
        self.queue.push_back((self.seq, last));
        self.last_ok = Instant::now();
        loop {
            self.flush(true).await?;
            if self.queue.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
