//! The SUT watcher: a task started with the run that, every interval, reads what the system
//! under test spends (CPU, memory, descriptors, threads) and scrapes its own `/metrics`, and
//! at the end hands the series to the summary. The parts gauntlet runs itself (embedded
//! gateway, mocks, load generator) share its process, so their CPU is told apart by thread
//! name. A reading or scrape that fails leaves a gap; it never fails the run.

use std::collections::HashMap;
use std::time::Duration;

use procfs::process::Process;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::proc::{self, ThreadCpu, WatchError};
use super::scrape::{ScrapedSample, Scraper};
use crate::metrics::{CountSeries, PartKind, ScrapeReport, ScrapedSeries, SutPart, SutReport};
use crate::mock::ControlClient;
use crate::scenario::{Observe, WatchedProcess};

/// Series a summary keeps from one scrape, so a gateway with thousands of series cannot
/// swell `summary.json`; `[observe] metrics` picks which when there are more.
pub const MAX_SERIES: usize = 300;

/// Names of the threads the embedded gateway and the mocks run on (Linux keeps 15 bytes of a
/// thread's name), given by the fleet that starts them.
pub const GATEWAY_THREADS: &str = "gauntlet-gw";
pub const MOCK_THREADS: &str = "gauntlet-mock";

/// Thread-name prefixes of the parts gauntlet runs, and the part each belongs to; the load
/// runtime names its threads `gauntlet-load` and `gauntlet-lane-N` (engine::runner).
const THREAD_PARTS: [(&str, &str); 4] = [
    (GATEWAY_THREADS, "gateway"),
    (MOCK_THREADS, "mocks"),
    ("gauntlet-load", "load generator"),
    ("gauntlet-lane", "load generator"),
];

/// What one run watches.
#[derive(Clone)]
pub struct WatchPlan {
    pub interval: Duration,
    /// Readings before this are not charged to `cpu_seconds`, as the summary counts.
    pub warmup: Duration,
    /// The embedded gateway runs in this process.
    pub gateway: bool,
    /// Mocks run in this process.
    pub mocks: bool,
    pub process: Option<Watched>,
    pub scrape: Option<Scraper>,
    /// Metric names to keep; empty keeps every series but histogram buckets.
    pub keep: Vec<String>,
    /// The upstreams' control APIs, read at every reading with the scrape.
    pub upstreams: Vec<(String, ControlClient)>,
    /// Requests the load generator has seen end so far, and how many failed.
    pub client: Option<ClientCounts>,
}

impl std::fmt::Debug for WatchPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchPlan")
            .field("interval", &self.interval)
            .field("process", &self.process)
            .field("scrape", &self.scrape)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

/// Reads the load generator's running counts.
pub type ClientCounts = std::sync::Arc<dyn Fn() -> ClientCount + Send + Sync>;

/// What the load generator has seen end so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCount {
    /// Requests sent through the system under test.
    pub finished: u64,
    pub failed: u64,
    /// Requests of the direct baseline (`[load] baseline = "direct"`): the upstreams received
    /// them, the gateway did not.
    pub direct: u64,
}

/// A process outside gauntlet, found when the run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

/// Finds the process `[observe]` names; a missing, unreadable or ambiguous one is an error
/// naming the field, before anything starts.
pub fn resolve(observe: &Observe) -> Result<Option<Watched>, WatchError> {
    let Some(which) = &observe.process else {
        return Ok(None);
    };
    let (name, pid) = match which {
        WatchedProcess::Pid(pid) => (None, *pid),
        WatchedProcess::Name(name) => (Some(name.clone()), proc::find(name)?),
    };
    let p = proc::open(pid)?;
    let name = name.unwrap_or_else(|| {
        p.stat()
            .map(|s| s.comm)
            .unwrap_or_else(|_| format!("pid {pid}"))
    });
    Ok(Some(Watched { name, pid }))
}

/// The running watcher; `finish` stops it and returns what it saw.
#[derive(Debug)]
pub struct SutWatcher {
    stop: oneshot::Sender<()>,
    clock: Option<oneshot::Sender<Instant>>,
    task: JoinHandle<SutReport>,
}

impl SutWatcher {
    /// Takes the baseline reading and returns once it is in: the load must not start before
    /// it, or the counts read over HTTP would already hold requests the load generator's do
    /// not. Readings go on every `plan.interval` once `clock_starts` gives the run's clock.
    pub async fn start(plan: WatchPlan) -> Self {
        let (stop, stopped) = oneshot::channel();
        let (ready, baseline) = oneshot::channel();
        let (clock, started) = oneshot::channel();
        let task = tokio::spawn(watch(plan, started, stopped, ready));
        // A task that died before its baseline has nothing to wait for.
        let _ = baseline.await;
        Self {
            stop,
            clock: Some(clock),
            task,
        }
    }

    /// The run's clock zero: readings are due at `t0` plus whole intervals.
    pub fn clock_starts(&mut self, t0: Instant) {
        if let Some(clock) = self.clock.take() {
            let _ = clock.send(t0);
        }
    }

    /// Takes a last reading (the run's final, partial interval) and returns the series; None
    /// if the task died, which costs the section, not the run.
    pub async fn finish(self) -> Option<SutReport> {
        let _ = self.stop.send(());
        self.task.await.ok()
    }
}

/// One part's numbers as they accumulate.
struct Track {
    part: SutPart,
    /// CPU seconds at the previous reading, and at the reading that opened the measured
    /// window.
    last_cpu: Option<f64>,
    window_start_cpu: Option<f64>,
}

impl Track {
    fn new(name: &str, kind: PartKind, pid: Option<u32>) -> Self {
        Self {
            part: SutPart {
                name: name.to_string(),
                kind,
                pid,
                cpu_cores: Vec::new(),
                cpu_seconds: None,
                rss_bytes: Vec::new(),
                fds: Vec::new(),
                threads: Vec::new(),
            },
            last_cpu: None,
            window_start_cpu: None,
        }
    }

    /// Records one reading taken `dt` seconds after the previous one; a reading shorter than
    /// `min_dt` (the run's last, cut short) counts its CPU seconds but gives no rate, which
    /// /proc's 10 ms clock ticks would make noise of.
    fn push(&mut self, cpu: Option<f64>, dt: f64, min_dt: f64, measured: bool) {
        let cores = match (cpu, self.last_cpu) {
            (Some(now), Some(before)) if dt >= min_dt && dt > 0.0 => {
                Some((now - before).max(0.0) / dt)
            }
            _ => None,
        };
        self.part.cpu_cores.push(cores);
        if let Some(now) = cpu {
            self.last_cpu = Some(now);
            if measured {
                let start = *self.window_start_cpu.get_or_insert(now);
                self.part.cpu_seconds = Some(now - start);
            }
        }
    }
}

/// The CPU of this process's threads per part. Per-thread times are summed as deltas, so a
/// thread that exits between readings takes only its last interval's CPU with it.
#[derive(Default)]
struct ThreadBook {
    last: HashMap<i32, f64>,
    /// Running CPU seconds per part name.
    totals: HashMap<&'static str, f64>,
}

impl ThreadBook {
    fn add(&mut self, threads: &[ThreadCpu]) {
        let mut now = HashMap::with_capacity(threads.len());
        for t in threads {
            let before = self.last.get(&t.tid).copied().unwrap_or(0.0);
            if let Some(part) = part_of(&t.name) {
                *self.totals.entry(part).or_default() += (t.cpu_s - before).max(0.0);
            }
            now.insert(t.tid, t.cpu_s);
        }
        self.last = now;
    }
}

fn part_of(thread: &str) -> Option<&'static str> {
    THREAD_PARTS
        .iter()
        .find(|(prefix, _)| thread.starts_with(prefix))
        .map(|(_, part)| *part)
}

async fn watch(
    plan: WatchPlan,
    mut clock: oneshot::Receiver<Instant>,
    mut stopped: oneshot::Receiver<()>,
    ready: oneshot::Sender<()>,
) -> SutReport {
    let mut ready = Some(ready);
    let me = Process::myself().ok();
    let other = plan
        .process
        .as_ref()
        .and_then(|w| i32::try_from(w.pid).ok().and_then(|p| Process::new(p).ok()));
    let mut tracks: Vec<Track> = Vec::new();
    let thread_parts: Vec<&str> = [
        plan.gateway.then_some("gateway"),
        plan.mocks.then_some("mocks"),
        Some("load generator"),
    ]
    .into_iter()
    .flatten()
    .collect();
    for name in &thread_parts {
        tracks.push(Track::new(name, PartKind::Threads, None));
    }
    tracks.push(Track::new(
        "gauntlet process",
        PartKind::Process,
        Some(std::process::id()),
    ));
    if let Some(w) = &plan.process {
        tracks.push(Track::new(&w.name, PartKind::Process, Some(w.pid)));
    }
    let mut book = ThreadBook::default();
    let mut scraped = Scraped::new(plan.scrape.as_ref(), plan.keep.clone());
    let mut report = SutReport {
        upstream_requests: plan
            .upstreams
            .iter()
            .map(|(name, _)| CountSeries {
                name: name.clone(),
                values: Vec::new(),
            })
            .collect(),
        ..SutReport::default()
    };
    let mut notes = Vec::new();

    // Reading 0, just before the run starts, is the baseline: every count is held against
    // it, and the first interval's CPU rate is measured from it (it has none of its own).
    let mut last_at = Instant::now();
    // Replaced by the run's clock once the baseline is in.
    let mut t0 = last_at;
    let mut tick = 0u32;
    loop {
        let last = tick > 0
            && tokio::select! {
                () = tokio::time::sleep_until(t0 + plan.interval * tick) => false,
                _ = &mut stopped => true,
            };
        let at = Instant::now();
        let t_s = if tick == 0 {
            Duration::ZERO
        } else {
            at.saturating_duration_since(t0)
        };
        let dt = at.saturating_duration_since(last_at).as_secs_f64();
        last_at = at;
        let scrape = scraped.scrape();
        let upstreams = received(&plan.upstreams);
        if let Some(client) = &plan.client {
            let count = client();
            report.client_finished.push(Some(count.finished));
            report.client_failed.push(Some(count.failed));
            report.client_direct.push(Some(count.direct));
        }
        read_all(
            &mut tracks,
            &mut book,
            me.as_ref(),
            other.as_ref(),
            Reading {
                dt,
                min_dt: plan.interval.as_secs_f64() / 4.0,
                measured: t_s >= plan.warmup,
            },
        );
        let (scrape, upstreams) = tokio::join!(scrape, upstreams);
        scraped.record(scrape);
        for (i, count) in upstreams.into_iter().enumerate() {
            if let Some(series) = report.upstream_requests.get_mut(i) {
                series.values.push(count);
            }
        }
        report.t_s.push(t_s.as_secs_f64());
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
            let started = tokio::select! {
                t = &mut clock => t.ok(),
                _ = &mut stopped => None,
            };
            match started {
                Some(t) => t0 = t,
                // Stopped before the run began: the baseline is all there is.
                None => break,
            }
        }
        if last {
            break;
        }
        // A watcher held up (a slow scrape) skips the readings it missed rather than
        // bunching them.
        tick = tick.max(
            u32::try_from(
                at.saturating_duration_since(t0).as_nanos() / plan.interval.as_nanos().max(1),
            )
            .unwrap_or(u32::MAX),
        ) + 1;
    }
    if tracks.iter().any(|t| t.part.kind == PartKind::Threads) {
        notes.push(
            "the gateway, mocks and load generator run in the gauntlet process: their CPU and \
             threads are their own threads', their memory and descriptors the whole process's \
             (the `gauntlet process` part)"
                .to_string(),
        );
    }
    for t in &tracks {
        let gaps = t.part.threads.iter().filter(|v| v.is_none()).count();
        if gaps > 0 && t.part.kind == PartKind::Process {
            notes.push(format!(
                "{} (pid {}): {gaps} of {} readings failed (the process may have exited); \
                 they are gaps",
                t.part.name,
                t.part.pid.unwrap_or_default(),
                report.t_s.len()
            ));
        }
    }
    report.scrape = scraped.finish(report.t_s.len(), &mut notes);
    report.parts = tracks.into_iter().map(|t| t.part).collect();
    report.notes = notes;
    report
}

/// Requests each upstream has received, read from its control API; None for one that did
/// not answer (a gap).
async fn received(upstreams: &[(String, ControlClient)]) -> Vec<Option<u64>> {
    let reads = upstreams
        .iter()
        .map(|(_, control)| async move { control.stats().await.ok().map(|s| s.requests_total) });
    futures_util::future::join_all(reads).await
}

/// One reading: seconds since the previous one, the shortest that gives a CPU rate, and
/// whether it falls in the measured window.
#[derive(Debug, Clone, Copy)]
struct Reading {
    dt: f64,
    min_dt: f64,
    measured: bool,
}

/// Reads every part once and records what it read.
fn read_all(
    tracks: &mut [Track],
    book: &mut ThreadBook,
    me: Option<&Process>,
    other: Option<&Process>,
    r: Reading,
) {
    let threads = me.and_then(|p| proc::threads(p).ok());
    if let Some(threads) = &threads {
        book.add(threads);
    }
    let mine = me.and_then(|p| proc::read(p).ok());
    let theirs = other.and_then(|p| proc::read(p).ok());
    for t in tracks.iter_mut() {
        let (cpu, whole) = match (t.part.kind, t.part.name.as_str()) {
            (PartKind::Threads, name) => {
                // A part whose threads used nothing yet has no total.
                let cpu = threads
                    .as_ref()
                    .map(|_| book.totals.get(name).copied().unwrap_or(0.0));
                (cpu, None)
            }
            (PartKind::Process, _) if t.part.pid == Some(std::process::id()) => {
                (mine.map(|r| r.cpu_s), Some(mine))
            }
            (PartKind::Process, _) => (theirs.map(|r| r.cpu_s), Some(theirs)),
        };
        t.push(cpu, r.dt, r.min_dt, r.measured);
        match whole {
            Some(r) => {
                t.part.rss_bytes.push(r.map(|r| r.rss_bytes));
                t.part.fds.push(r.and_then(|r| r.fds));
                t.part.threads.push(r.map(|r| r.threads));
            }
            None => {
                let name = t.part.name.as_str();
                t.part.threads.push(threads.as_ref().map(|all| {
                    all.iter()
                        .filter(|th| part_of(&th.name) == Some(name))
                        .count() as u64
                }));
            }
        }
    }
}

/// The scraped series as they accumulate, one value per reading.
struct Scraped {
    scraper: Option<Scraper>,
    keep: Vec<String>,
    report: ScrapeReport,
    index: HashMap<(String, Vec<(String, String)>), usize>,
    readings: usize,
}

impl Scraped {
    fn new(scraper: Option<&Scraper>, keep: Vec<String>) -> Self {
        Self {
            report: ScrapeReport {
                url: scraper.map(Scraper::url).unwrap_or_default(),
                ..ScrapeReport::default()
            },
            scraper: scraper.cloned(),
            keep,
            index: HashMap::new(),
            readings: 0,
        }
    }

    /// The scrape of this reading, started now and awaited after the /proc reads.
    fn scrape(
        &self,
    ) -> impl std::future::Future<Output = Option<Result<Vec<ScrapedSample>, String>>> {
        let scraper = self.scraper.clone();
        async move {
            match scraper {
                Some(s) => Some(s.scrape().await),
                None => None,
            }
        }
    }

    fn kept(&self, sample: &ScrapedSample) -> bool {
        if self.keep.is_empty() {
            // Buckets and quantiles would multiply the series for little: the _sum and
            // _count of each histogram stay.
            return !sample.name.ends_with("_bucket")
                && !sample.name.ends_with("_created")
                && !sample.labels.contains_key("quantile");
        }
        self.keep.iter().any(|k| {
            sample.name == *k
                || sample
                    .name
                    .strip_prefix(k.as_str())
                    .is_some_and(|suffix| ["_total", "_sum", "_count"].contains(&suffix))
        })
    }

    fn record(&mut self, scrape: Option<Result<Vec<ScrapedSample>, String>>) {
        let i = self.readings;
        self.readings += 1;
        let samples = match scrape {
            None => return,
            Some(Ok(samples)) => {
                self.report.succeeded += 1;
                samples
            }
            Some(Err(e)) => {
                self.report.failed += 1;
                self.report.first_error.get_or_insert(e);
                return;
            }
        };
        let kept: Vec<&ScrapedSample> = samples.iter().filter(|s| self.kept(s)).collect();
        for s in kept {
            let key = (
                s.name.clone(),
                s.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
            let at = match self.index.get(&key) {
                Some(at) => *at,
                None if self.report.series.len() >= MAX_SERIES => {
                    self.report.truncated = true;
                    continue;
                }
                None => {
                    self.report.series.push(ScrapedSeries {
                        name: s.name.clone(),
                        labels: s.labels.clone(),
                        values: Vec::new(),
                    });
                    let at = self.report.series.len() - 1;
                    self.index.insert(key, at);
                    at
                }
            };
            if let Some(series) = self.report.series.get_mut(at) {
                // Readings before this series appeared, or whose scrape failed, are gaps.
                series.values.resize(i, None);
                series.values.push(s.value.is_finite().then_some(s.value));
            }
        }
    }

    fn finish(mut self, readings: usize, notes: &mut Vec<String>) -> Option<ScrapeReport> {
        self.scraper.as_ref()?;
        for s in &mut self.report.series {
            s.values.resize(readings, None);
        }
        if self.report.failed > 0 {
            notes.push(format!(
                "{} of {} scrapes of {} failed (first: {}); those readings are gaps, not zeros",
                self.report.failed,
                self.report.failed + self.report.succeeded,
                self.report.url,
                self.report.first_error.as_deref().unwrap_or("unknown")
            ));
        }
        if self.report.truncated {
            notes.push(format!(
                "{} offered more than {MAX_SERIES} series; the first {MAX_SERIES} are kept \
                 (name the ones you want in `[observe] metrics`)",
                self.report.url
            ));
        }
        Some(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> ScrapedSample {
        ScrapedSample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn a_failed_scrape_is_a_gap_in_every_series() {
        let mut s = Scraped {
            scraper: None,
            keep: vec!["gateway_attempts".into()],
            report: ScrapeReport::default(),
            index: HashMap::new(),
            readings: 0,
        };
        let a = || sample("gateway_attempts_total", &[("outcome", "ok")], 3.0);
        s.record(Some(Ok(vec![a(), sample("other_total", &[], 1.0)])));
        s.record(Some(Err("refused".into())));
        s.record(Some(Ok(vec![
            a(),
            sample("gateway_attempts_total", &[("outcome", "timeout")], 1.0),
        ])));
        s.scraper = Scraper::new(
            "http://127.0.0.1:9/metrics",
            &crate::tls::ClientTls::system().unwrap(),
            Duration::from_secs(1),
        )
        .ok();
        let mut notes = Vec::new();
        let r = s.finish(3, &mut notes).unwrap();
        assert_eq!(r.series.len(), 2, "{r:?}");
        assert_eq!(r.series[0].values, vec![Some(3.0), None, Some(3.0)]);
        assert_eq!(r.series[1].values, vec![None, None, Some(1.0)]);
        assert_eq!((r.succeeded, r.failed), (2, 1));
        assert!(notes[0].contains("1 of 3 scrapes"), "{notes:?}");
    }

    #[test]
    fn thread_cpu_is_summed_per_part_across_readings() {
        let t = |tid, name: &str, cpu_s| ThreadCpu {
            tid,
            name: name.into(),
            cpu_s,
        };
        let mut book = ThreadBook::default();
        book.add(&[t(1, "gauntlet-gw", 1.0), t(2, "gauntlet-lane-0", 2.0)]);
        // Thread 1 exits; thread 3 starts.
        book.add(&[t(2, "gauntlet-lane-0", 2.5), t(3, "gauntlet-gw", 0.25)]);
        assert_eq!(book.totals["gateway"], 1.25);
        assert_eq!(book.totals["load generator"], 2.5);
        assert_eq!(part_of("tokio-runtime-w"), None);
        assert_eq!(part_of("gauntlet-mock"), Some("mocks"));
    }
}
