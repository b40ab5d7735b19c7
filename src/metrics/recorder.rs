//! The recorder: HDR histograms and counters per class, cumulative and per interval, in memory
//! laid out once from the plan. Two recorders of one run merge exactly.
//!
//! Latency, TTFT, TTFOT, TPOT and ITL histograms hold successful requests only: a refusal answered in a
//! fraction of a millisecond is not a fast answer. Failed requests go to their own histograms,
//! time to error per error kind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::{Counter, Histogram};

use super::direct::DirectRecording;
use super::hist::{Slot, micros, record};

use super::breakdown::{PromptLengths, Turns};
use super::sample::{ErrorKind, Sample, ServedBy, TlsSession, TokenCounts, Via};
use crate::scenario::PerRequest;

/// Cumulative histograms keep three significant digits; per-interval ones two (1%, see
/// `hist`), so a long run's series stays small.
const CUMULATIVE_SIGFIG: u8 = 3;

/// What the recorder is recording: fixed before the run, identical for recorders that merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub classes: Vec<String>,
    /// Upstream names the client resolves to `ServedBy::Known` indices.
    pub upstreams: Vec<String>,
    /// Samples intended before this are run but not recorded.
    pub warmup: Duration,
    pub interval: Duration,
    /// Intervals of the measured window (after warmup).
    pub intervals: usize,
    /// What a request must meet to count as good (goodput).
    pub per_request: PerRequest,
    /// A share of requests goes direct (`[load] baseline`): their recording is kept apart.
    pub baseline: bool,
}

impl Layout {
    /// The layout for a plan of `total` length.
    pub fn new(
        classes: Vec<String>,
        upstreams: Vec<String>,
        warmup: Duration,
        interval: Duration,
        total: Duration,
    ) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        let measured = total.saturating_sub(warmup);
        let intervals = measured.as_nanos().div_ceil(interval.as_nanos()).max(1);
        Self {
            classes,
            upstreams,
            warmup,
            interval,
            intervals: usize::try_from(intervals).unwrap_or(usize::MAX),
            per_request: PerRequest::default(),
            baseline: false,
        }
    }

    /// This layout, keeping a recording of requests sent direct apart from the gateway's.
    pub fn with_baseline(self, baseline: bool) -> Self {
        Self { baseline, ..self }
    }

    /// This layout, counting as good the requests that meet `per_request`.
    pub fn with_per_request(self, per_request: PerRequest) -> Self {
        Self {
            per_request,
            ..self
        }
    }

    /// Whether recordings of `other` add into recordings of this one, cell for cell.
    pub(super) fn merges_with(&self, other: &Layout) -> bool {
        self.classes == other.classes
            && self.intervals == other.intervals
            && self.warmup == other.warmup
            && self.interval == other.interval
            && self.baseline == other.baseline
    }

    fn interval_of(&self, intended: Duration) -> Option<usize> {
        let since = intended.checked_sub(self.warmup)?;
        let i = since.as_nanos() / self.interval.as_nanos();
        Some(
            usize::try_from(i)
                .unwrap_or(usize::MAX)
                .min(self.intervals - 1),
        )
    }

    fn upstream_name<'a>(&'a self, served: &'a ServedBy) -> &'a str {
        match served {
            ServedBy::Known(i) => self
                .upstreams
                .get(usize::from(*i))
                .map_or("unknown", String::as_str),
            ServedBy::Other(name) => name,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the recordings have different layouts (classes, intervals or warmup differ)")]
    Layout,
    #[error("histogram merge failed: {0}")]
    Histogram(String),
}

/// Request counters of one class, cumulative or in one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Requests sent or dropped.
    pub requests: u64,
    pub successes: u64,
    pub dropped: u64,
    pub errors: [u64; ErrorKind::COUNT],
    /// Upstream name -> successful responses it served.
    pub served_by: BTreeMap<Box<str>, u64>,
    pub gateway_rate_limited: u64,
    /// Responses the gateway marked shed (`x-gateway-shed`).
    pub shed: u64,
    /// Successes that met every per-request objective (goodput).
    pub good: u64,
    pub connections: ConnectionCounts,
}

/// Connections the requests had to open, and how long that held them up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    pub opened: u64,
    pub tls_full: u64,
    pub tls_resumed: u64,
    /// Time spent opening them, microseconds.
    pub handshake_us: u64,
    /// Latency of every request counted (failures too), microseconds: the handshake share's
    /// denominator.
    pub request_us: u64,
}

impl ConnectionCounts {
    fn record(&mut self, s: &Sample) {
        self.request_us = self.request_us.saturating_add(micros(s.latency));
        let Some(o) = s.opened else {
            return;
        };
        self.opened += 1;
        self.handshake_us = self.handshake_us.saturating_add(micros(o.took));
        match o.tls {
            Some(TlsSession::Full) => self.tls_full += 1,
            Some(TlsSession::Resumed) => self.tls_resumed += 1,
            None => {}
        }
    }

    fn merge(&mut self, o: &ConnectionCounts) {
        self.opened += o.opened;
        self.tls_full += o.tls_full;
        self.tls_resumed += o.tls_resumed;
        self.handshake_us = self.handshake_us.saturating_add(o.handshake_us);
        self.request_us = self.request_us.saturating_add(o.request_us);
    }

    /// Share of the requests' time spent opening connections, when any request was timed.
    pub fn handshake_share(&self) -> Option<f64> {
        (self.request_us > 0).then(|| self.handshake_us as f64 / self.request_us as f64)
    }
}

impl Counts {
    /// `good`: the sample met `[sla.per_request]`, judged once by the caller for both the
    /// class's counts and its interval's.
    fn record(&mut self, s: &Sample, good: bool, layout: &Layout) {
        self.requests += 1;
        match s.result {
            Ok(()) => {
                self.successes += 1;
                self.good += u64::from(good);
                if let Some(served) = &s.served_by {
                    let name = layout.upstream_name(served);
                    match self.served_by.get_mut(name) {
                        Some(n) => *n += 1,
                        None => {
                            self.served_by.insert(name.into(), 1);
                        }
                    }
                }
            }
            Err(kind) => self.errors[kind.index()] += 1,
        }
        if s.gateway_rate_limited {
            self.gateway_rate_limited += 1;
        }
        if s.gateway_shed {
            self.shed += 1;
        }
        self.connections.record(s);
    }

    pub fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.successes += o.successes;
        self.dropped += o.dropped;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        for (name, n) in &o.served_by {
            // Looked up before inserting: the name is cloned once per merge, not once per cell.
            match self.served_by.get_mut(name) {
                Some(m) => *m += n,
                None => {
                    self.served_by.insert(name.clone(), *n);
                }
            }
        }
        self.gateway_rate_limited += o.gateway_rate_limited;
        self.shed += o.shed;
        self.good += o.good;
        self.connections.merge(&o.connections);
    }

    /// Error kind name -> count, only kinds that occurred.
    pub fn error_map(&self) -> BTreeMap<String, u64> {
        ErrorKind::ALL
            .iter()
            .filter(|k| self.errors[k.index()] > 0)
            .map(|k| (k.as_str().to_string(), self.errors[k.index()]))
            .collect()
    }
}

/// Time to error of failed requests, one cumulative histogram (microseconds) per error kind,
/// each made at the first failure of its kind: a run without errors pays nothing for them.
#[derive(Debug, Clone, Default)]
pub struct ErrorTimes(pub(super) [Option<Histogram<u64>>; ErrorKind::COUNT]);

impl ErrorTimes {
    fn record(&mut self, kind: ErrorKind, d: Duration) {
        record(self.0[kind.index()].get_or_insert_with(new_cumulative), d);
    }

    pub fn get(&self, kind: ErrorKind) -> Option<&Histogram<u64>> {
        self.0[kind.index()].as_ref()
    }

    /// The kinds that occurred, with their histograms, in `ErrorKind::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorKind, &Histogram<u64>)> {
        ErrorKind::ALL
            .iter()
            .filter_map(|k| self.get(*k).map(|h| (*k, h)))
    }

    pub fn merge(&mut self, other: &ErrorTimes) -> Result<(), MergeError> {
        for (kind, h) in other.iter() {
            self.0[kind.index()]
                .get_or_insert_with(new_cumulative)
                .add(h)
                .map_err(|e| MergeError::Histogram(e.to_string()))?;
        }
        Ok(())
    }
}

/// Everything recorded for one class over the whole measured window.
#[derive(Debug, Clone)]
pub struct ClassRecord {
    pub counts: Counts,
    /// Microseconds, successful requests only.
    pub latency: Histogram<u64>,
    pub ttft: Histogram<u64>,
    pub ttfot: Histogram<u64>,
    pub tpot: Histogram<u64>,
    pub itl: Histogram<u64>,
    /// Intended send time -> failure, per error kind.
    pub errors: ErrorTimes,
    pub tokens: TokenCounts,
    /// Empty unless the class sends conversations.
    pub turns: Turns,
    pub prompt_lengths: PromptLengths,
}

impl ClassRecord {
    /// Nothing recorded yet; the histograms grow with the values they see.
    pub fn empty() -> Self {
        Self {
            counts: Counts::default(),
            latency: new_cumulative(),
            ttft: new_cumulative(),
            ttfot: new_cumulative(),
            tpot: new_cumulative(),
            itl: new_cumulative(),
            errors: ErrorTimes::default(),
            tokens: TokenCounts::default(),
            turns: Turns::default(),
            prompt_lengths: PromptLengths::default(),
        }
    }

    /// Adds another shard's record of this same class: everything, turns and prompt lengths
    /// too.
    pub fn merge(&mut self, b: &ClassRecord) -> Result<(), MergeError> {
        let hist = |e: hdrhistogram::AdditionError| MergeError::Histogram(e.to_string());
        self.counts.merge(&b.counts);
        self.latency.add(&b.latency).map_err(hist)?;
        self.ttft.add(&b.ttft).map_err(hist)?;
        self.ttfot.add(&b.ttfot).map_err(hist)?;
        self.tpot.add(&b.tpot).map_err(hist)?;
        self.itl.add(&b.itl).map_err(hist)?;
        self.errors.merge(&b.errors)?;
        self.tokens.merge(&b.tokens);
        self.turns.merge(&b.turns).map_err(MergeError::Histogram)?;
        self.prompt_lengths
            .merge(&b.prompt_lengths)
            .map_err(MergeError::Histogram)
    }

    /// Adds `other`'s counts, timings, errors and tokens, for a scope made of several classes
    /// (a tier, the whole run); turns and prompt lengths stay per class.
    pub fn merge_measures(&mut self, other: &ClassRecord) {
        self.counts.merge(&other.counts);
        // Only a count overflow can fail; every histogram here shares one layout.
        let _ = self.latency.add(&other.latency);
        let _ = self.ttft.add(&other.ttft);
        let _ = self.ttfot.add(&other.ttfot);
        let _ = self.tpot.add(&other.tpot);
        let _ = self.itl.add(&other.itl);
        let _ = self.errors.merge(&other.errors);
        self.tokens.merge(&other.tokens);
    }
}

/// One class in one interval.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    pub counts: Counts,
    pub(super) latency: Slot,
    pub(super) ttft: Slot,
    pub(super) ttfot: Slot,
    pub(super) tpot: Slot,
    /// Time to error, one slot per kind that occurred here (most cells hold none, and an
    /// empty list costs no allocation).
    pub(super) errors: Vec<(ErrorKind, Slot)>,
}

impl Cell {
    /// Latency of this class's successful requests in this interval (microseconds), if any
    /// succeeded.
    pub fn latency(&self) -> Option<Cow<'_, Histogram<u32>>> {
        self.latency.get()
    }

    pub fn ttft(&self) -> Option<Cow<'_, Histogram<u32>>> {
        self.ttft.get()
    }

    pub fn ttfot(&self) -> Option<Cow<'_, Histogram<u32>>> {
        self.ttfot.get()
    }

    pub fn tpot(&self) -> Option<Cow<'_, Histogram<u32>>> {
        self.tpot.get()
    }

    /// Time to error of this class's failed requests in this interval, per kind that occurred.
    pub fn time_to_error(&self) -> impl Iterator<Item = (ErrorKind, Cow<'_, Histogram<u32>>)> {
        self.errors
            .iter()
            .filter_map(|(k, slot)| slot.get().map(|h| (*k, h)))
    }

    /// Adds another recording's cell of this same class and interval.
    fn add(&mut self, b: &Cell) -> Result<(), hdrhistogram::AdditionError> {
        self.counts.merge(&b.counts);
        for (ha, hb) in [
            (&mut self.latency, &b.latency),
            (&mut self.ttft, &b.ttft),
            (&mut self.ttfot, &b.ttfot),
            (&mut self.tpot, &b.tpot),
        ] {
            if let Some(hb) = hb.get() {
                ha.live().add(hb.as_ref())?;
            }
        }
        for (kind, hb) in b.time_to_error() {
            self.error_slot(kind).live().add(hb.as_ref())?;
        }
        Ok(())
    }

    pub(super) fn error_slot(&mut self, kind: ErrorKind) -> &mut Slot {
        let at = match self.errors.iter().position(|(k, _)| *k == kind) {
            Some(at) => at,
            None => {
                self.errors.push((kind, Slot::default()));
                self.errors.len() - 1
            }
        };
        &mut self.errors[at].1
    }

    pub(super) fn pack(&mut self) {
        self.latency.pack();
        self.ttft.pack();
        self.ttfot.pack();
        self.tpot.pack();
        for (_, slot) in &mut self.errors {
            slot.pack();
        }
    }
}

/// Intervals this far behind the newest sample are packed. Samples land by intended send
/// time, so one can arrive late by as long as a request may take; later ones unpack the cell,
/// are recorded exactly, and it is packed again.
const SETTLE: Duration = Duration::from_secs(90);

/// The recording of a run (or of one shard of it).
#[derive(Debug, Clone)]
pub struct Recorder {
    pub(super) layout: Layout,
    pub(super) classes: Vec<ClassRecord>,
    /// `intervals x classes`, row-major by interval.
    pub(super) cells: Vec<Cell>,
    /// Schedule lag of every measured request, microseconds.
    pub(super) lag: Histogram<u64>,
    pub(super) abandoned: u64,
    /// Intervals below this are packed.
    pub(super) packed_below: usize,
    /// `SETTLE` in intervals, at least one.
    settle_intervals: usize,
    /// Requests sent around the gateway, when the layout has a baseline.
    pub(super) direct: Option<DirectRecording>,
}

/// An empty cumulative histogram (microseconds, auto-resizing), counting in `T`: `u64` for a
/// run's totals, `u32` to merge per-interval histograms into.
pub fn new_cumulative<T: Counter>() -> Histogram<T> {
    // Auto-resizing from a small start: memory follows the values actually seen.
    let mut h = Histogram::new_with_max(1_000, CUMULATIVE_SIGFIG)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

impl Recorder {
    pub fn new(layout: Layout) -> Self {
        let layout_interval = layout.interval;
        let classes = layout
            .classes
            .iter()
            .map(|_| ClassRecord::empty())
            .collect();
        let cells = vec![Cell::default(); layout.intervals * layout.classes.len()];
        let direct = layout
            .baseline
            .then(|| DirectRecording::new(layout.classes.len(), layout.intervals));
        Self {
            direct,
            layout,
            classes,
            cells,
            lag: new_cumulative(),
            abandoned: 0,
            packed_below: 0,
            settle_intervals: usize::try_from(
                SETTLE.as_nanos() / layout_interval.as_nanos().max(1),
            )
            .unwrap_or(usize::MAX)
            .max(1),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn cell(&mut self, interval: usize, class: usize) -> Option<&mut Cell> {
        let n = self.layout.classes.len();
        self.cells.get_mut(interval * n + class)
    }

    /// Records one sent request; ignored when intended during warmup or for an unknown class.
    pub fn record(&mut self, s: &Sample) {
        let Some(interval) = self.layout.interval_of(s.intended) else {
            return;
        };
        if s.class >= self.classes.len() {
            return;
        }
        if s.route == Via::Direct {
            // The baseline counts nowhere else: not in the gateway's numbers, not in the lag.
            if let Some(d) = &mut self.direct {
                d.record(s, interval);
                if interval < self.packed_below {
                    d.pack(interval..interval + 1);
                }
            }
            self.pack_settled(interval);
            return;
        }
        record(&mut self.lag, s.lag);
        let c = &mut self.classes[s.class];
        let good = s.result.is_ok() && self.layout.per_request.met(s.latency, s.ttft, s.tpot);
        c.counts.record(s, good, &self.layout);
        // A failed request's TTFT and token gaps (a stream cut half-way) are not those of an
        // answer either: only its time to error is kept.
        match s.result {
            Ok(()) => {
                record(&mut c.latency, s.latency);
                for (h, v) in [
                    (&mut c.ttft, s.ttft),
                    (&mut c.ttfot, s.ttfot),
                    (&mut c.tpot, s.tpot),
                ] {
                    if let Some(v) = v {
                        record(h, v);
                    }
                }
                for gap in &s.itl {
                    record(&mut c.itl, *gap);
                }
            }
            Err(kind) => c.errors.record(kind, s.latency),
        }
        c.tokens.record(s);
        c.turns.record(s);
        c.prompt_lengths.record(s);
        let idx = interval * self.layout.classes.len() + s.class;
        if let Some(cell) = self.cells.get_mut(idx) {
            cell.counts.record(s, good, &self.layout);
            match s.result {
                Ok(()) => {
                    record(cell.latency.live(), s.latency);
                    for (slot, v) in [
                        (&mut cell.ttft, s.ttft),
                        (&mut cell.ttfot, s.ttfot),
                        (&mut cell.tpot, s.tpot),
                    ] {
                        if let Some(v) = v {
                            record(slot.live(), v);
                        }
                    }
                }
                Err(kind) => record(cell.error_slot(kind).live(), s.latency),
            }
            if interval < self.packed_below {
                cell.pack();
            }
        }
        self.pack_settled(interval);
    }

    /// Packs the intervals that lie `SETTLE` behind `newest`.
    fn pack_settled(&mut self, newest: usize) {
        let below = newest.saturating_sub(self.settle_intervals);
        if below <= self.packed_below {
            return;
        }
        let n = self.layout.classes.len();
        let end = (below * n).min(self.cells.len());
        let start = (self.packed_below * n).min(end);
        for cell in &mut self.cells[start..end] {
            cell.pack();
        }
        if let Some(d) = &mut self.direct {
            d.pack(self.packed_below..below);
        }
        self.packed_below = below;
    }

    /// Records a request the schedule called for but the generator could not send.
    pub fn record_dropped(&mut self, class: usize, intended: Duration) {
        let Some(interval) = self.layout.interval_of(intended) else {
            return;
        };
        let Some(c) = self.classes.get_mut(class) else {
            return;
        };
        c.counts.requests += 1;
        c.counts.dropped += 1;
        if let Some(cell) = self.cell(interval, class) {
            cell.counts.requests += 1;
            cell.counts.dropped += 1;
        }
    }

    /// Records a request the baseline called for but the generator could not send.
    pub fn record_dropped_direct(&mut self, class: usize, intended: Duration) {
        if self.layout.interval_of(intended).is_none() {
            return;
        }
        if let Some(d) = &mut self.direct {
            d.record_dropped(class);
        }
    }

    /// Requests still in flight when the drain deadline passed.
    pub fn add_abandoned(&mut self, n: u64) {
        self.abandoned += n;
    }

    /// Adds another recording of the same run (another shard, another worker) into this one.
    pub fn merge(&mut self, other: &Recorder) -> Result<(), MergeError> {
        self.merge_many(&[other])
    }

    /// Adds several recordings of the same run at once: each settled interval of this one is
    /// unpacked and packed again once for all of them, not once per recording.
    pub fn merge_many(&mut self, others: &[&Recorder]) -> Result<(), MergeError> {
        for other in others {
            if !self.layout.merges_with(&other.layout) {
                return Err(MergeError::Layout);
            }
        }
        let hist = |e: hdrhistogram::AdditionError| MergeError::Histogram(e.to_string());
        for other in others {
            for (a, b) in self.classes.iter_mut().zip(&other.classes) {
                a.merge(b)?;
            }
            self.lag.add(&other.lag).map_err(hist)?;
            self.abandoned += other.abandoned;
        }
        let n = self.layout.classes.len().max(1);
        let packed_below = self.packed_below;
        for (i, a) in self.cells.iter_mut().enumerate() {
            for other in others {
                let Some(b) = other.cells.get(i) else {
                    continue;
                };
                a.add(b).map_err(hist)?;
            }
            // A settled interval stays packed: merging many finished recordings costs the
            // memory of one.
            if i / n < packed_below {
                a.pack();
            }
        }
        if let Some(a) = &mut self.direct {
            let direct: Vec<&DirectRecording> =
                others.iter().filter_map(|o| o.direct.as_ref()).collect();
            a.merge_many(&direct, packed_below).map_err(hist)?;
        }
        Ok(())
    }

    pub fn classes(&self) -> &[ClassRecord] {
        &self.classes
    }

    /// The cells of one interval, one per class.
    pub fn interval(&self, i: usize) -> &[Cell] {
        let n = self.layout.classes.len();
        self.cells.get(i * n..(i + 1) * n).unwrap_or(&[])
    }

    /// What was sent around the gateway, when the run had a baseline.
    pub fn direct(&self) -> Option<&DirectRecording> {
        self.direct.as_ref()
    }

    pub fn lag(&self) -> &Histogram<u64> {
        &self.lag
    }

    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(class: usize, at_s: u64, latency_ms: u64) -> Sample {
        let mut s = Sample::new(class, Duration::from_secs(at_s), Duration::ZERO);
        s.latency = Duration::from_millis(latency_ms);
        s.ttft = Some(Duration::from_millis(latency_ms / 2));
        s
    }

    /// The share of request time spent opening connections: none before a request was timed
    /// (not a division by zero), then the handshakes over every request's latency.
    #[test]
    fn the_handshake_share_is_of_the_timed_requests_and_absent_before_one() {
        let mut c = ConnectionCounts::default();
        assert_eq!(c.handshake_share(), None);
        let mut opening = sample(0, 1, 40);
        opening.opened = Some(crate::metrics::Opened {
            took: Duration::from_millis(10),
            tls: None,
        });
        c.record(&opening);
        c.record(&sample(0, 1, 60));
        assert_eq!(
            (c.opened, c.handshake_us, c.request_us),
            (1, 10_000, 100_000)
        );
        assert_eq!(c.handshake_share(), Some(0.1));
    }

    /// A request intended at or after the run's end (a trace line's time, a turn's clock)
    /// still belongs to the run: it counts in the last interval, as it does in the totals.
    #[test]
    fn a_sample_intended_past_the_end_counts_in_the_last_interval() {
        let layout = Layout::new(
            vec!["a".into()],
            Vec::new(),
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(10),
        );
        let mut rec = Recorder::new(layout);
        for at_s in [9, 10, 400] {
            rec.record(&sample(0, at_s, 20));
        }
        assert_eq!(rec.layout.intervals, 10);
        let last = rec.interval(9)[0].latency().expect("recorded");
        assert_eq!(last.len(), 3, "every late sample in the last interval");
        assert_eq!(rec.classes[0].latency.len(), 3);
    }

    #[test]
    fn settled_intervals_are_packed_and_read_back_exactly() {
        let layout = Layout::new(
            vec!["a".into(), "b".into()],
            Vec::new(),
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
        let mut rec = Recorder::new(layout);
        for t in 0..300 {
            for k in 0..20 {
                rec.record(&sample(0, t, 10 + k * 7 + t));
            }
            rec.record(&sample(1, t, 500));
            let mut refused = sample(1, t, 0);
            refused.latency = Duration::from_micros(300 + t);
            refused.result = Err(ErrorKind::Status5xx);
            rec.record(&refused);
        }
        // A straggler for an interval packed long ago.
        rec.record(&sample(0, 3, 9_000));
        let packed = rec.cells.iter().filter(|c| c.latency.is_packed()).count();
        assert!(packed >= 2 * 200, "only {packed} cells packed");
        assert!(
            rec.cells[3 * 2].latency.is_packed(),
            "repacked after the late sample"
        );
        for t in [0usize, 3, 150, 299] {
            let cells = rec.interval(t);
            let a = cells[0].latency().expect("recorded");
            let expected = 20 + u64::from(t == 3);
            assert_eq!(a.len(), expected, "interval {t}");
            let t = t as u64;
            assert!(a.equivalent(a.min(), (10 + t) * 1000));
            let top = if t == 3 {
                9_000_000
            } else {
                (10 + 19 * 7 + t) * 1000
            };
            assert!(a.equivalent(a.max(), top), "interval {t}: max {}", a.max());
            assert_eq!(cells[1].ttft().expect("recorded").len(), 1);
            assert_eq!(
                cells[1].latency().expect("recorded").len(),
                1,
                "success only"
            );
            let errors: Vec<_> = cells[1].time_to_error().collect();
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].0, ErrorKind::Status5xx);
            assert!(errors[0].1.equivalent(errors[0].1.max(), 300 + t));
        }
        assert!(rec.cells[2 * 10 + 1].errors[0].1.is_packed());
        // Merging a packed recording into another reads the packed cells too.
        let mut other = Recorder::new(rec.layout.clone());
        other.merge(&rec).expect("same layout");
        assert_eq!(other.interval(10)[0].latency().expect("merged").len(), 20);
    }
}
