//! The numbers a run publishes while it goes on: counters and classic histograms in atomics,
//! bumped by the recorder task (off the request path) and the fault timeline, read by a
//! scrape without stopping either. They count what the summary counts (warmup excluded), so a
//! final scrape and `summary.json` agree.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::exposition::MetricType;
use super::reading::{ClassReading, FaultReading, LiveReading};
use super::snapshot::{Family, Histogram, Snapshot, Value};
use crate::metrics::{ErrorKind, Sample, ServedBy, SlaResult};
use prometheus_client::metrics::histogram::{Histogram as NativeHisto, NativeHistogramConfig};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// Latency and TTFT bounds: LLM answers take from a few milliseconds (a cached refusal) to a
/// minute (a long reasoning stream), and SLAs sit around 200 ms .. 2 s, where the bounds are
/// densest so `histogram_quantile` interpolates over narrow buckets there.
const LATENCY_BOUNDS: &[u64] = &[
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    75 * MS,
    100 * MS,
    150 * MS,
    200 * MS,
    300 * MS,
    400 * MS,
    500 * MS,
    750 * MS,
    S,
    1_500 * MS,
    2 * S,
    3 * S,
    5 * S,
    7_500 * MS,
    10 * S,
    15 * S,
    20 * S,
    30 * S,
    60 * S,
];
/// Time per output token: a fast provider streams a token every 2-20 ms.
const TPOT_BOUNDS: &[u64] = &[
    MS,
    2 * MS,
    3 * MS,
    5 * MS,
    7_500_000,
    10 * MS,
    15 * MS,
    20 * MS,
    30 * MS,
    50 * MS,
    75 * MS,
    100 * MS,
    150 * MS,
    200 * MS,
    300 * MS,
    500 * MS,
    S,
];
/// Schedule lag: a healthy generator is well under a millisecond late; a stalled one seconds.
const LAG_BOUNDS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    MS,
    2_500_000,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    S,
    2_500 * MS,
    5 * S,
    10 * S,
];

/// What a run is, for its live numbers: fixed before it starts.
#[derive(Debug, Clone, Default)]
pub struct RunShape {
    pub scenario: String,
    pub seed: u64,
    pub classes: Vec<String>,
    /// The upstream names `ServedBy::Known` indexes.
    pub upstreams: Vec<String>,
    /// Every scheduled fault window, so each gauge reads 0 before its window and the live
    /// view can count down to the next one.
    pub faults: Vec<PlannedFault>,
    /// The plan's length; `Duration::MAX` for a probe, which runs until stopped.
    pub planned: Duration,
    /// Samples intended before this are run but not counted, as in the summary.
    pub warmup: Duration,
    /// Keep latency, TTFT and TPOT in native histograms too. Only a protobuf scrape reads
    /// them, and each costs the recorder a locked observe per sample: true only where an
    /// exporter listens.
    pub native: bool,
}

/// One scheduled fault window, as planned (times since the run's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFault {
    pub upstream: String,
    pub kind: String,
    pub start: Duration,
    pub end: Duration,
}

/// Adds to a counter that only the recorder task writes. A plain load and store rather than a
/// locked read-modify-write, which would drain the store buffer several times per sample;
/// readers still see whole values, since each store is atomic. A second writer would lose
/// counts, never corrupt them.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Starts what it holds on its own pair of cache lines (the unit x86 prefetches), so the
/// recorder's writes never invalidate a line another thread's hot data shares.
#[repr(align(128))]
struct Lines<T>(T);

impl<T> std::ops::Deref for Lines<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Buckets of the widest histogram, `+Inf` included; inline, so a class's numbers are one
/// block of memory.
const MAX_BUCKETS: usize = 24;
const _: () = assert!(
    LATENCY_BOUNDS.len() < MAX_BUCKETS
        && TPOT_BOUNDS.len() < MAX_BUCKETS
        && LAG_BOUNDS.len() < MAX_BUCKETS
);

/// A classic histogram: a count per bucket (not cumulative, so an observation is one add)
/// and the sum in microseconds; optionally the same observations in native buckets too.
struct Histo {
    bounds: &'static [u64],
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_us: AtomicU64,
    native: Option<NativeHisto>,
}

/// Native histograms: 8 buckets per doubling (each about 9% wide, schema 3), at most 160 of
/// them; past that prometheus-client halves the resolution rather than grow.
fn native_histogram() -> NativeHisto {
    NativeHisto::new_native(NativeHistogramConfig::with_schema(3).max_buckets(160))
}

impl Histo {
    fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            native: None,
        }
    }

    /// Classic and native: for the timings a client may want as native histograms.
    fn with_native(bounds: &'static [u64]) -> Self {
        Self {
            native: Some(native_histogram()),
            ..Self::new(bounds)
        }
    }

    fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: the first bound at or above the value.
        let i = self.bounds.partition_point(|b| *b < ns);
        if let Some(b) = self.buckets.get(i) {
            bump(b, 1);
        }
        bump(
            &self.sum_us,
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        );
        // After the classic buckets: a reader of both sees no more classic than native.
        if let Some(n) = &self.native {
            n.observe(d.as_secs_f64());
        }
    }

    fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .take(self.bounds.len() + 1)
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    fn read(&self) -> Histogram {
        Histogram {
            bounds_ns: self.bounds,
            counts: self.counts(),
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            native: self.native.clone(),
        }
    }
}

/// Outcome label values: `ok`, then the error kinds in `ErrorKind::ALL` order.
fn outcome_name(i: usize) -> &'static str {
    match i.checked_sub(1) {
        None => "ok",
        Some(k) => ErrorKind::ALL.get(k).map_or("unknown", |k| k.as_str()),
    }
}

struct ClassMetrics {
    name: String,
    /// Index 0 is `ok`, then one per error kind.
    outcomes: [AtomicU64; 1 + ErrorKind::COUNT],
    dropped: AtomicU64,
    /// Successes per announced upstream, by `ServedBy::Known` index.
    served: Box<[Lines<AtomicU64>]>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    latency: Histo,
    ttft: Histo,
    tpot: Histo,
}

struct FaultGauge {
    upstream: String,
    kind: String,
    /// Windows of this upstream and kind open now (flapping windows never overlap, but two
    /// faults of one kind may).
    open: AtomicU32,
}

/// The live numbers of one run; see the module doc.
pub struct LiveMetrics {
    scenario: String,
    seed: String,
    upstreams: Vec<String>,
    planned: Duration,
    warmup: Duration,
    classes: Box<[Lines<ClassMetrics>]>,
    lag: Lines<Histo>,
    faults: Box<[FaultGauge]>,
    windows: Vec<PlannedFault>,
    in_flight: Arc<AtomicUsize>,
    started: Instant,
    /// `started` on the wall clock, where cumulative series start for a collector.
    started_wall: SystemTime,
    /// How long the run ran, in nanoseconds, once it ended; `u64::MAX` until then.
    ran_for: AtomicU64,
    /// Successes served by an upstream nobody announced (an external gateway's own names):
    /// rare, so a lock is cheaper than a table sized for names unknown in advance.
    unannounced: Mutex<BTreeMap<(usize, Box<str>), u64>>,
    /// The SLA checks as last evaluated on the recording so far; replaced whole, a few times
    /// a minute at most, so a lock is no cost.
    sla: RwLock<Option<Arc<SlaResult>>>,
}

impl std::fmt::Debug for LiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveMetrics")
            .field("scenario", &self.scenario)
            .field("classes", &self.classes.len())
            .finish_non_exhaustive()
    }
}

impl LiveMetrics {
    /// Numbers for a run of this shape, starting now; `in_flight` is the generator's own
    /// count, read at each scrape.
    pub fn new(shape: RunShape, in_flight: Arc<AtomicUsize>) -> Self {
        let upstreams = shape.upstreams.len();
        let histo = |bounds| {
            if shape.native {
                Histo::with_native(bounds)
            } else {
                Histo::new(bounds)
            }
        };
        let classes = shape
            .classes
            .into_iter()
            .map(|name| {
                Lines(ClassMetrics {
                    name,
                    outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
                    dropped: AtomicU64::new(0),
                    served: (0..upstreams).map(|_| Lines(AtomicU64::new(0))).collect(),
                    prompt_tokens: AtomicU64::new(0),
                    completion_tokens: AtomicU64::new(0),
                    latency: histo(LATENCY_BOUNDS),
                    ttft: histo(LATENCY_BOUNDS),
                    tpot: histo(TPOT_BOUNDS),
                })
            })
            .collect();
        let mut pairs: Vec<(String, String)> = shape
            .faults
            .iter()
            .map(|f| (f.upstream.clone(), f.kind.clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        let faults = pairs
            .into_iter()
            .map(|(upstream, kind)| FaultGauge {
                upstream,
                kind,
                open: AtomicU32::new(0),
            })
            .collect();
        Self {
            scenario: shape.scenario,
            seed: shape.seed.to_string(),
            upstreams: shape.upstreams,
            planned: shape.planned,
            warmup: shape.warmup,
            classes,
            lag: Lines(Histo::new(LAG_BOUNDS)),
            faults,
            windows: shape.faults,
            in_flight,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            ran_for: AtomicU64::new(u64::MAX),
            unannounced: Mutex::new(BTreeMap::new()),
            sla: RwLock::new(None),
        }
    }

    /// Counts one measured request, as the recorder does. Only the recorder task calls this
    /// and `record_dropped`: their counters have that one writer (see `bump`).
    pub fn record(&self, s: &Sample) {
        if s.intended < self.warmup {
            return;
        }
        let Some(c) = self.classes.get(s.class) else {
            return;
        };
        self.lag.observe(s.lag);
        let outcome = match s.result {
            Ok(()) => 0,
            Err(kind) => 1 + kind.index(),
        };
        if let Some(n) = c.outcomes.get(outcome) {
            bump(n, 1);
        }
        bump(&c.prompt_tokens, s.prompt_tokens);
        bump(&c.completion_tokens, s.completion_tokens);
        // Like the summary's: timings and served-by are of answers only.
        if s.result.is_err() {
            return;
        }
        c.latency.observe(s.latency);
        if let Some(t) = s.ttft {
            c.ttft.observe(t);
        }
        if let Some(t) = s.tpot {
            c.tpot.observe(t);
        }
        match &s.served_by {
            None => {}
            Some(ServedBy::Known(i)) => match c.served.get(usize::from(*i)) {
                Some(n) => bump(n, 1),
                // The recorder names an index past the announced upstreams the same way.
                None => self.unannounced(s.class, "unknown"),
            },
            Some(ServedBy::Other(name)) => self.unannounced(s.class, name),
        }
    }

    fn unannounced(&self, class: usize, name: &str) {
        // A scrape that panicked poisons the lock; counting goes on regardless.
        let mut map = self
            .unannounced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry((class, name.into())).or_default() += 1;
    }

    /// Counts a request the schedule called for but the generator could not send.
    pub fn record_dropped(&self, class: usize, intended: Duration) {
        if intended < self.warmup {
            return;
        }
        if let Some(c) = self.classes.get(class) {
            bump(&c.dropped, 1);
        }
    }

    /// A fault window of `kind` on `upstream` was applied (`true`) or lifted (`false`).
    pub fn fault(&self, upstream: &str, kind: &str, active: bool) {
        let Some(g) = self
            .faults
            .iter()
            .find(|g| g.upstream == upstream && g.kind == kind)
        else {
            return;
        };
        if active {
            g.open.fetch_add(1, Ordering::Relaxed);
        } else {
            // Never below zero, whatever order a failed lift and a retry come in.
            let _ = g
                .open
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// The run ended after `ran_for`: elapsed time stops there.
    pub fn finish(&self, ran_for: Duration) {
        let ns = u64::try_from(ran_for.as_nanos()).unwrap_or(u64::MAX - 1);
        self.ran_for.store(ns, Ordering::Relaxed);
    }

    /// The SLA checks evaluated on what was measured so far (or, at the end, the final
    /// verdict): scrapes and the live view read this one.
    pub fn set_sla(&self, result: SlaResult) {
        *self.sla.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(result));
    }

    /// The SLA checks as last evaluated, if they have been yet.
    fn sla(&self) -> Option<Arc<SlaResult>> {
        self.sla
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every number at this moment, for readers that compute rates and quantiles themselves.
    pub fn reading(&self) -> LiveReading {
        // The counts as they stand, without a handle on the live native buckets.
        let copy = |h: &Histo| Histogram {
            native: None,
            ..h.read()
        };
        let classes = self
            .classes
            .iter()
            .zip(self.served())
            .map(|(c, served)| {
                let count = |k: usize| c.outcomes.get(k).map_or(0, |n| n.load(Ordering::Relaxed));
                ClassReading {
                    name: c.name.clone(),
                    ok: count(0),
                    errors: (1..=ErrorKind::COUNT)
                        .map(|k| (outcome_name(k), count(k)))
                        .collect(),
                    dropped: c.dropped.load(Ordering::Relaxed),
                    latency: copy(&c.latency),
                    ttft: copy(&c.ttft),
                    served,
                }
            })
            .collect();
        let faults = self
            .windows
            .iter()
            .map(|w| FaultReading {
                upstream: w.upstream.clone(),
                kind: w.kind.clone(),
                start: w.start,
                end: w.end,
                active: self.faults.iter().any(|g| {
                    g.upstream == w.upstream
                        && g.kind == w.kind
                        && g.open.load(Ordering::Relaxed) > 0
                }),
            })
            .collect();
        LiveReading {
            scenario: self.scenario.clone(),
            elapsed: self.elapsed(),
            planned: self.planned,
            warmup: self.warmup,
            ended: self.ran_for.load(Ordering::Relaxed) != u64::MAX,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            classes,
            lag: copy(&self.lag),
            faults,
            sla: self.sla(),
        }
    }

    fn elapsed(&self) -> Duration {
        match self.ran_for.load(Ordering::Relaxed) {
            u64::MAX => self.started.elapsed().min(self.planned),
            ns => Duration::from_nanos(ns),
        }
    }

    /// The whole exposition, Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        self.snapshot().to_text()
    }

    /// The whole exposition as length-delimited `io.prometheus.client.MetricFamily`
    /// messages, native histograms included.
    pub fn render_protobuf(&self) -> Vec<u8> {
        super::protobuf::encode_delimited(&self.snapshot())
    }

    /// Every family as it stands now: what a scrape serves and a push sends.
    pub fn snapshot(&self) -> Snapshot {
        let mut families = Vec::with_capacity(16);
        self.run_families(&mut families);
        self.request_families(&mut families);
        self.histogram_families(&mut families);
        families.push(self.served_family());
        families.push(self.fault_family());
        super::verdicts::families(&mut families, self.sla().as_deref());
        Snapshot {
            scenario: self.scenario.clone(),
            started: self.started_wall,
            taken: SystemTime::now(),
            families,
        }
    }

    fn run_families(&self, out: &mut Vec<Family>) {
        let mut info = Family::new(
            "gauntlet_run_info",
            MetricType::Gauge,
            "The run: its scenario and seed (always 1).",
        );
        let labels = [("scenario", self.scenario.as_str()), ("seed", &self.seed)];
        info.push(&labels, Value::Gauge(1.0));
        out.push(info);
        let gauge = |name, help, v: f64| {
            let mut f = Family::new(name, MetricType::Gauge, help);
            f.push(&[], Value::Gauge(v));
            f
        };
        // A probe has no planned end: +Inf, as Prometheus spells it.
        let planned = if self.planned == Duration::MAX {
            f64::INFINITY
        } else {
            self.planned.as_secs_f64()
        };
        out.push(gauge(
            "gauntlet_run_planned_seconds",
            "How long the plan runs, warmup included.",
            planned,
        ));
        out.push(gauge(
            "gauntlet_run_elapsed_seconds",
            "How long the plan has run; stops where the run ended.",
            self.elapsed().as_secs_f64(),
        ));
        out.push(gauge(
            "gauntlet_in_flight",
            "Requests sent and not yet answered (closed model: users waiting on one).",
            self.in_flight.load(Ordering::Relaxed) as f64,
        ));
    }

    fn request_families(&self, out: &mut Vec<Family>) {
        let mut requests = Family::new(
            "gauntlet_requests_total",
            MetricType::Counter,
            "Requests answered after warmup, by class and outcome (ok or the error kind).",
        );
        for c in &self.classes {
            for (i, n) in c.outcomes.iter().enumerate() {
                let labels = [("class", c.name.as_str()), ("outcome", outcome_name(i))];
                requests.push(&labels, Value::Counter(n.load(Ordering::Relaxed)));
            }
        }
        out.push(requests);
        out.push(self.per_class_counter(
            "gauntlet_dropped_total",
            "Requests the schedule called for but the generator could not send \
             (in-flight cap), after warmup; they count against availability.",
            |c| &c.dropped,
        ));
        out.push(self.per_class_counter(
            "gauntlet_prompt_tokens_total",
            "Prompt tokens of the requests answered after warmup.",
            |c| &c.prompt_tokens,
        ));
        out.push(self.per_class_counter(
            "gauntlet_completion_tokens_total",
            "Completion tokens of the requests answered after warmup.",
            |c| &c.completion_tokens,
        ));
    }

    fn per_class_counter(
        &self,
        name: &'static str,
        help: &'static str,
        counter: impl Fn(&ClassMetrics) -> &AtomicU64,
    ) -> Family {
        let mut f = Family::new(name, MetricType::Counter, help);
        for c in &self.classes {
            let n = counter(c).load(Ordering::Relaxed);
            f.push(&[("class", c.name.as_str())], Value::Counter(n));
        }
        f
    }

    fn histogram_families(&self, out: &mut Vec<Family>) {
        let mut lag = Family::new(
            "gauntlet_schedule_lag_seconds",
            MetricType::Histogram,
            "How late each request was sent after its intended time.",
        );
        lag.push(&[], Value::Histogram(self.lag.read()));
        out.push(lag);
        out.push(self.per_class_histogram(
            "gauntlet_latency_seconds",
            "Intended send time to the last byte, successful requests only.",
            |c| &c.latency,
        ));
        out.push(self.per_class_histogram(
            "gauntlet_ttft_seconds",
            "Intended send time to the first delta of a successful stream.",
            |c| &c.ttft,
        ));
        out.push(self.per_class_histogram(
            "gauntlet_tpot_seconds",
            "Time per output token after the first, successful streams only.",
            |c| &c.tpot,
        ));
    }

    fn per_class_histogram(
        &self,
        name: &'static str,
        help: &'static str,
        histo: impl Fn(&ClassMetrics) -> &Histo,
    ) -> Family {
        let mut f = Family::new(name, MetricType::Histogram, help);
        for c in &self.classes {
            let h = histo(c).read();
            f.push(&[("class", c.name.as_str())], Value::Histogram(h));
        }
        f
    }

    fn served_family(&self) -> Family {
        let mut f = Family::new(
            "gauntlet_served_total",
            MetricType::Counter,
            "Successful responses by class and the upstream that served them.",
        );
        for (c, served) in self.classes.iter().zip(self.served()) {
            for (upstream, n) in &served {
                let labels = [("class", c.name.as_str()), ("upstream", upstream.as_str())];
                f.push(&labels, Value::Counter(*n));
            }
        }
        f
    }

    /// Each class's successes by the upstream that served them: the announced upstreams in
    /// order, then the other names an external gateway reported. A reported name equal to an
    /// announced one counts with it, as the summary's (keyed by name) does, so no upstream is
    /// listed twice.
    fn served(&self) -> Vec<Vec<(String, u64)>> {
        let mut out: Vec<Vec<(String, u64)>> = self
            .classes
            .iter()
            .map(|c| {
                self.upstreams
                    .iter()
                    .zip(c.served.iter())
                    .map(|(u, n)| (u.clone(), n.load(Ordering::Relaxed)))
                    .collect()
            })
            .collect();
        let unannounced = self
            .unannounced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for ((class, name), n) in unannounced {
            let Some(served) = out.get_mut(class) else {
                continue;
            };
            match served.iter_mut().find(|(u, _)| **u == *name) {
                Some((_, total)) => *total += n,
                None => served.push((name.into(), n)),
            }
        }
        out
    }

    fn fault_family(&self) -> Family {
        let mut f = Family::new(
            "gauntlet_fault_active",
            MetricType::Gauge,
            "1 while a scheduled fault of this kind is applied on this upstream, else 0.",
        );
        for g in &self.faults {
            let labels = [("upstream", g.upstream.as_str()), ("kind", g.kind.as_str())];
            let open = g.open.load(Ordering::Relaxed);
            f.push(&labels, Value::Gauge(f64::from(u8::from(open > 0))));
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage(start_s: u64, end_s: u64) -> PlannedFault {
        PlannedFault {
            upstream: "up".into(),
            kind: "outage".into(),
            start: Duration::from_secs(start_s),
            end: Duration::from_secs(end_s),
        }
    }

    fn shape() -> RunShape {
        RunShape {
            scenario: "s".into(),
            seed: 7,
            classes: vec!["a".into(), "b".into()],
            upstreams: vec!["up".into()],
            faults: vec![outage(2, 3), outage(5, 6)],
            planned: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            native: false,
        }
    }

    fn ok(class: usize, at_ms: u64, latency_ms: u64) -> Sample {
        let mut s = Sample::new(class, Duration::from_millis(at_ms), Duration::ZERO);
        s.latency = Duration::from_millis(latency_ms);
        s.served_by = Some(ServedBy::Known(0));
        s
    }

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start} in\n{text}"))
    }

    #[test]
    fn counts_what_the_summary_counts() {
        let m = LiveMetrics::new(shape(), Arc::new(AtomicUsize::new(3)));
        m.record(&ok(0, 500, 20)); // warmup: not counted
        m.record(&ok(0, 1_500, 20));
        m.record(&ok(0, 1_600, 5));
        let mut failed = ok(1, 2_000, 1);
        failed.result = Err(ErrorKind::Status5xx);
        m.record(&failed);
        let mut elsewhere = ok(1, 2_000, 1);
        elsewhere.served_by = Some(ServedBy::Other("other \"gw\"".into()));
        m.record(&elsewhere);
        m.record_dropped(1, Duration::from_secs(3));
        m.record_dropped(1, Duration::ZERO);
        m.fault("up", "outage", true);
        let text = m.render();
        let expect = [
            "gauntlet_requests_total{class=\"a\",outcome=\"ok\"} 2",
            "gauntlet_requests_total{class=\"b\",outcome=\"status_5xx\"} 1",
            "gauntlet_requests_total{class=\"b\",outcome=\"ok\"} 1",
            "gauntlet_dropped_total{class=\"b\"} 1",
            "gauntlet_latency_seconds_bucket{class=\"a\",le=\"0.005\"} 1",
            "gauntlet_latency_seconds_bucket{class=\"a\",le=\"0.025\"} 2",
            "gauntlet_latency_seconds_count{class=\"a\"} 2",
            "gauntlet_latency_seconds_sum{class=\"a\"} 0.025",
            "gauntlet_latency_seconds_count{class=\"b\"} 1",
            "gauntlet_served_total{class=\"a\",upstream=\"up\"} 2",
            "gauntlet_served_total{class=\"b\",upstream=\"up\"} 0",
            "gauntlet_served_total{class=\"b\",upstream=\"other \\\"gw\\\"\"} 1",
            "gauntlet_schedule_lag_seconds_count 4",
            "gauntlet_in_flight 3",
            "gauntlet_run_info{scenario=\"s\",seed=\"7\"} 1",
            "gauntlet_fault_active{upstream=\"up\",kind=\"outage\"} 1",
        ];
        for e in expect {
            assert!(text.lines().any(|l| l == e), "missing `{e}` in\n{text}");
        }
        // One gauge per (upstream, kind), however many windows.
        assert_eq!(text.matches("gauntlet_fault_active{").count(), 1);
        m.fault("up", "outage", false);
        m.fault("up", "outage", false);
        assert_eq!(
            line(&m.render(), "gauntlet_fault_active{"),
            "gauntlet_fault_active{upstream=\"up\",kind=\"outage\"} 0"
        );
        m.finish(Duration::from_millis(2_500));
        assert_eq!(
            line(&m.render(), "gauntlet_run_elapsed_seconds "),
            "gauntlet_run_elapsed_seconds 2.5"
        );
    }

    #[test]
    fn a_reading_holds_what_a_scrape_reads() {
        let m = LiveMetrics::new(shape(), Arc::new(AtomicUsize::new(2)));
        m.record(&ok(0, 1_500, 20));
        let mut failed = ok(0, 1_600, 1);
        failed.result = Err(ErrorKind::Timeout);
        m.record(&failed);
        let mut elsewhere = ok(1, 2_000, 1);
        elsewhere.served_by = Some(ServedBy::Other("gw-own".into()));
        m.record(&elsewhere);
        m.fault("up", "outage", true);
        let s = m.reading();
        let a = &s.classes[0];
        assert_eq!((a.ok, a.failed(), a.requests()), (1, 1, 2));
        assert!(a.errors.contains(&("timeout", 1)));
        assert_eq!(a.latency.count(), 1);
        assert_eq!(a.served, vec![("up".to_string(), 1)]);
        assert_eq!(
            s.classes[1].served,
            vec![("up".to_string(), 0), ("gw-own".to_string(), 1)]
        );
        assert_eq!(s.lag.count(), 3);
        assert_eq!(s.in_flight, 2);
        // Both windows of the one gauge read active; the view tells them apart by time.
        assert_eq!(s.faults.len(), 2);
        assert!(s.faults.iter().all(|f| f.active));
        assert_eq!(s.faults[1].start, Duration::from_secs(5));
        assert!(s.sla.is_none() && !s.ended);
        m.set_sla(SlaResult::default());
        m.finish(Duration::from_secs(3));
        let s = m.reading();
        assert!(s.sla.is_some() && s.ended);
    }

    #[test]
    fn a_reported_name_equal_to_an_announced_one_is_listed_once() {
        let m = LiveMetrics::new(shape(), Arc::new(AtomicUsize::new(0)));
        m.record(&ok(0, 1_500, 20));
        let mut named = ok(0, 1_600, 20);
        named.served_by = Some(ServedBy::Other("up".into()));
        m.record(&named);
        assert_eq!(m.reading().classes[0].served, vec![("up".to_string(), 2)]);
        let text = m.render();
        assert_eq!(
            text.matches("gauntlet_served_total{class=\"a\",upstream=\"up\"}")
                .count(),
            1
        );
        assert_eq!(
            line(&text, "gauntlet_served_total{class=\"a\""),
            "gauntlet_served_total{class=\"a\",upstream=\"up\"} 2"
        );
    }

    #[test]
    fn native_histograms_are_kept_only_when_asked_for() {
        let natives = |native: bool| {
            let m = LiveMetrics::new(RunShape { native, ..shape() }, Arc::default());
            m.snapshot()
                .families
                .iter()
                .flat_map(|f| &f.series)
                .filter(|s| matches!(&s.value, Value::Histogram(h) if h.native.is_some()))
                .count()
        };
        assert_eq!(natives(false), 0);
        // Latency, TTFT and TPOT of each of the two classes; never the lag.
        assert_eq!(natives(true), 6);
    }

    #[test]
    fn every_family_is_declared_once_before_its_samples() {
        let m = LiveMetrics::new(shape(), Arc::new(AtomicUsize::new(0)));
        let text = m.render();
        let mut declared: Vec<&str> = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(!declared.contains(&name), "{name} declared twice");
                declared.push(name);
                continue;
            }
            if l.starts_with('#') {
                continue;
            }
            let sample = l.split(['{', ' ']).next().unwrap_or_default();
            let family = declared.last().copied().unwrap_or_default();
            let fits = sample == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| sample.strip_suffix(s) == Some(family));
            assert!(fits, "{sample} is not in the family above it, {family}");
        }
        for name in declared
            .iter()
            .filter(|n| text.contains(&format!("TYPE {n} counter")))
        {
            assert!(name.ends_with("_total"), "counter {name}");
        }
    }
}
