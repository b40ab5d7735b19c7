//! A whole recording as bytes and back, exactly: every count, every per-interval cell and every
//! histogram (HDR's V2 encoding), so a recording made on one machine (a shard of a run) merges
//! on another as if it had never left. The envelope around it (header, version, checksum) is
//! the caller's; this owns only the body.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::{Counter, Histogram};

use super::breakdown::{PROMPT_BINS, PromptLengths, TurnRecord, Turns};
use super::direct::DirectCounts;
use super::hist::{Slot, decode_hist};
use super::recorder::{Cell, ClassRecord, ConnectionCounts, Counts, ErrorTimes, Layout, Recorder};
use super::sample::{ErrorKind, TokenCounts};
use crate::scenario::PerRequest;

/// Why bytes are not a recording.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("the recording ends early, reading {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    #[error("the recording is malformed: {what} at byte {at}")]
    Malformed { what: String, at: usize },
    #[error("{0} bytes follow the end of the recording")]
    Trailing(usize),
}

/// Appends `rec` to `out`.
pub fn encode_recording(rec: &Recorder, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    layout(&mut w, &rec.layout);
    for c in &rec.classes {
        class(&mut w, c);
    }
    for c in &rec.cells {
        cell(&mut w, c);
    }
    w.hist(&rec.lag);
    w.u64(rec.abandoned);
    match &rec.direct {
        None => w.u64(0),
        Some(d) => {
            w.u64(1);
            for c in &d.counts {
                direct_counts(&mut w, c);
            }
            for s in &d.cells {
                w.slot(s);
            }
        }
    }
}

/// The recording `bytes` hold, all of them. Its per-interval histograms stay packed, as a
/// finished run's are: memory follows the bytes, not the number of cells.
pub fn decode_recording(bytes: &[u8]) -> Result<Recorder, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    let layout = read_layout(&mut r)?;
    let mut rec = Recorder::new(layout);
    for c in &mut rec.classes {
        *c = read_class(&mut r)?;
    }
    for c in &mut rec.cells {
        *c = read_cell(&mut r)?;
    }
    rec.lag = r.hist("the lag histogram")?;
    rec.abandoned = r.u64("the abandoned count")?;
    match r.u64("the baseline flag")? {
        0 if rec.direct.is_none() => {}
        1 if rec.direct.is_some() => {
            if let Some(d) = &mut rec.direct {
                for c in &mut d.counts {
                    *c = read_direct_counts(&mut r)?;
                }
                for s in &mut d.cells {
                    *s = r.slot("a baseline cell")?;
                }
            }
        }
        other => return Err(r.malformed(format!("baseline flag {other} against the layout"))),
    }
    if r.at != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - r.at));
    }
    // Everything decoded is finished: a merge into it packs what it adds, as the run did.
    rec.packed_below = rec.layout.intervals;
    Ok(rec)
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    /// LEB128: small counts (most of them) take one byte.
    fn u64(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.usize(b.len());
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.u64(u64::from(d.subsec_nanos()));
    }

    fn opt_duration(&mut self, d: Option<Duration>) {
        match d {
            None => self.u64(0),
            Some(d) => {
                self.u64(1);
                self.duration(d);
            }
        }
    }

    fn hist<T: Counter>(&mut self, h: &Histogram<T>) {
        let mut buf = Vec::new();
        // Serializing to memory fails only for a histogram too large to describe (u32 lengths),
        // which auto-resizing microsecond histograms never reach; an empty one stands in.
        if V2Serializer::new().serialize(h, &mut buf).is_err() {
            buf.clear();
        }
        self.bytes(&buf);
    }

    fn opt_hist<T: Counter>(&mut self, h: Option<&Histogram<T>>) {
        match h {
            None => self.u64(0),
            Some(h) => {
                self.u64(1);
                self.hist(h);
            }
        }
    }

    fn slot(&mut self, s: &Slot) {
        match s.encoded() {
            None => self.u64(0),
            Some(b) => {
                self.u64(1);
                self.bytes(&b);
            }
        }
    }
}

pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn malformed(&self, what: String) -> CodecError {
        CodecError::Malformed { what, at: self.at }
    }

    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(CodecError::Truncated { what, at: self.at });
            };
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.malformed(format!("{what}: a number longer than 64 bits")))
    }

    pub(super) fn usize(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let v = self.u64(what)?;
        usize::try_from(v).map_err(|_| self.malformed(format!("{what}: {v} is too large")))
    }

    /// A length that must fit in what is left: a corrupt length never allocates.
    pub(super) fn len(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let n = self.usize(what)?;
        if n > self.bytes.len() - self.at {
            return Err(CodecError::Truncated { what, at: self.at });
        }
        Ok(n)
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let n = self.len(what)?;
        let b = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(b)
    }

    fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        let at = self.at;
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError::Malformed {
            what: format!("{what}: not UTF-8"),
            at,
        })
    }

    fn duration(&mut self, what: &'static str) -> Result<Duration, CodecError> {
        let secs = self.u64(what)?;
        let nanos = self.u64(what)?;
        match u32::try_from(nanos) {
            Ok(n) if n < 1_000_000_000 => Ok(Duration::new(secs, n)),
            _ => Err(self.malformed(format!("{what}: {nanos} ns in a second"))),
        }
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, CodecError> {
        match self.u64(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.malformed(format!("{what}: {other} is neither 0 nor 1"))),
        }
    }

    fn opt_duration(&mut self, what: &'static str) -> Result<Option<Duration>, CodecError> {
        Ok(if self.flag(what)? {
            Some(self.duration(what)?)
        } else {
            None
        })
    }

    pub(super) fn hist<T: Counter>(
        &mut self,
        what: &'static str,
    ) -> Result<Histogram<T>, CodecError> {
        let at = self.at;
        let b = self.bytes(what)?;
        let mut h = decode_hist(b).ok_or_else(|| CodecError::Malformed {
            what: format!("{what}: not an HDR V2 histogram"),
            at,
        })?;
        h.auto(true);
        Ok(h)
    }

    fn opt_hist<T: Counter>(
        &mut self,
        what: &'static str,
    ) -> Result<Option<Histogram<T>>, CodecError> {
        Ok(if self.flag(what)? {
            Some(self.hist(what)?)
        } else {
            None
        })
    }

    /// Where a slot's V2 bytes lie in `bytes`, unchecked (a merge decodes them once, adding),
    /// or None for an empty slot.
    pub(super) fn slot_range(
        &mut self,
        what: &'static str,
    ) -> Result<Option<std::ops::Range<usize>>, CodecError> {
        if !self.flag(what)? {
            return Ok(None);
        }
        let n = self.len(what)?;
        let at = self.at;
        self.at += n;
        Ok(Some(at..at + n))
    }

    fn slot(&mut self, what: &'static str) -> Result<Slot, CodecError> {
        if !self.flag(what)? {
            return Ok(Slot::default());
        }
        let at = self.at;
        let b = self.bytes(what)?;
        Slot::from_encoded(b).ok_or_else(|| CodecError::Malformed {
            what: format!("{what}: not an HDR V2 histogram"),
            at,
        })
    }
}

fn layout(w: &mut Writer<'_>, l: &Layout) {
    w.usize(l.classes.len());
    for c in &l.classes {
        w.str(c);
    }
    w.usize(l.upstreams.len());
    for u in &l.upstreams {
        w.str(u);
    }
    w.duration(l.warmup);
    w.duration(l.interval);
    w.usize(l.intervals);
    w.opt_duration(l.per_request.ttft);
    w.opt_duration(l.per_request.tpot);
    w.opt_duration(l.per_request.latency);
    w.u64(u64::from(l.baseline));
}

/// Bounds on a layout's size, far past any real run, so a corrupt header cannot ask for
/// terabytes of cells.
const MAX_CLASSES: usize = 10_000;
const MAX_CELLS: usize = 1 << 28;

pub(super) fn read_layout(r: &mut Reader<'_>) -> Result<Layout, CodecError> {
    let n = r.len("the class count")?;
    if n > MAX_CLASSES {
        return Err(r.malformed(format!("{n} classes")));
    }
    let classes = (0..n)
        .map(|_| r.string("a class name"))
        .collect::<Result<Vec<_>, _>>()?;
    let n = r.len("the upstream count")?;
    let upstreams = (0..n)
        .map(|_| r.string("an upstream name"))
        .collect::<Result<Vec<_>, _>>()?;
    let warmup = r.duration("the warmup")?;
    let interval = r.duration("the interval")?;
    let intervals = r.usize("the interval count")?;
    if interval.is_zero() || intervals == 0 || intervals.saturating_mul(classes.len()) > MAX_CELLS {
        return Err(r.malformed(format!(
            "{intervals} intervals of {interval:?} for {} classes",
            classes.len()
        )));
    }
    let per_request = PerRequest {
        ttft: r.opt_duration("the per-request TTFT")?,
        tpot: r.opt_duration("the per-request TPOT")?,
        latency: r.opt_duration("the per-request latency")?,
    };
    let baseline = r.flag("the baseline flag")?;
    Ok(Layout {
        classes,
        upstreams,
        warmup,
        interval,
        intervals,
        per_request,
        baseline,
    })
}

fn counts(w: &mut Writer<'_>, c: &Counts) {
    for v in [c.requests, c.successes, c.dropped] {
        w.u64(v);
    }
    for v in c.errors {
        w.u64(v);
    }
    w.usize(c.served_by.len());
    for (name, n) in &c.served_by {
        w.str(name);
        w.u64(*n);
    }
    let k = &c.connections;
    for v in [
        c.gateway_rate_limited,
        c.shed,
        c.good,
        k.opened,
        k.tls_full,
        k.tls_resumed,
        k.handshake_us,
        k.request_us,
    ] {
        w.u64(v);
    }
}

pub(super) fn read_counts(r: &mut Reader<'_>) -> Result<Counts, CodecError> {
    let requests = r.u64("requests")?;
    let successes = r.u64("successes")?;
    let dropped = r.u64("dropped")?;
    let mut errors = [0; ErrorKind::COUNT];
    for e in &mut errors {
        *e = r.u64("an error count")?;
    }
    let n = r.len("the served-by count")?;
    let mut served_by = BTreeMap::new();
    for _ in 0..n {
        let name = r.string("an upstream name")?;
        served_by.insert(name.into_boxed_str(), r.u64("a served-by count")?);
    }
    Ok(Counts {
        requests,
        successes,
        dropped,
        errors,
        served_by,
        gateway_rate_limited: r.u64("gateway 429s")?,
        shed: r.u64("shed")?,
        good: r.u64("good")?,
        connections: ConnectionCounts {
            opened: r.u64("connections opened")?,
            tls_full: r.u64("full TLS handshakes")?,
            tls_resumed: r.u64("resumed TLS handshakes")?,
            handshake_us: r.u64("handshake time")?,
            request_us: r.u64("request time")?,
        },
    })
}

fn tokens(w: &mut Writer<'_>, t: &TokenCounts) {
    for v in [
        t.prompt,
        t.completion,
        t.cached,
        t.reasoning,
        t.prompt_from_usage,
        t.prompt_from_tokenizer,
    ] {
        w.u64(v);
    }
}

fn read_tokens(r: &mut Reader<'_>) -> Result<TokenCounts, CodecError> {
    Ok(TokenCounts {
        prompt: r.u64("prompt tokens")?,
        completion: r.u64("completion tokens")?,
        cached: r.u64("cached tokens")?,
        reasoning: r.u64("reasoning tokens")?,
        prompt_from_usage: r.u64("prompts counted by usage")?,
        prompt_from_tokenizer: r.u64("prompts counted by the tokenizer")?,
    })
}

fn class(w: &mut Writer<'_>, c: &ClassRecord) {
    counts(w, &c.counts);
    for h in [&c.latency, &c.ttft, &c.ttfot, &c.tpot, &c.itl] {
        w.hist(h);
    }
    for h in &c.errors.0 {
        w.opt_hist(h.as_ref());
    }
    tokens(w, &c.tokens);
    w.usize(c.turns.0.len());
    for t in &c.turns.0 {
        w.u64(t.requests);
        w.u64(t.successes);
        w.hist(&t.latency);
        w.hist(&t.ttft);
    }
    for n in c.prompt_lengths.counts {
        w.u64(n);
    }
    for h in &c.prompt_lengths.ttft {
        w.opt_hist(h.as_ref());
    }
}

pub(super) fn read_class(r: &mut Reader<'_>) -> Result<ClassRecord, CodecError> {
    let counts = read_counts(r)?;
    let latency = r.hist("a class's latency")?;
    let ttft = r.hist("a class's TTFT")?;
    let ttfot = r.hist("a class's TTFOT")?;
    let tpot = r.hist("a class's TPOT")?;
    let itl = r.hist("a class's ITL")?;
    let mut errors = ErrorTimes::default();
    for h in &mut errors.0 {
        *h = r.opt_hist("a time to error")?;
    }
    let tokens = read_tokens(r)?;
    let n = r.len("the turn count")?;
    let mut turns = Vec::with_capacity(n);
    for _ in 0..n {
        turns.push(TurnRecord {
            requests: r.u64("a turn's requests")?,
            successes: r.u64("a turn's successes")?,
            latency: r.hist("a turn's latency")?,
            ttft: r.hist("a turn's TTFT")?,
        });
    }
    let mut prompt_lengths = PromptLengths::default();
    for n in &mut prompt_lengths.counts {
        *n = r.u64("a prompt-length count")?;
    }
    for h in prompt_lengths.ttft.iter_mut().take(PROMPT_BINS) {
        *h = r.opt_hist("a prompt-length TTFT")?;
    }
    Ok(ClassRecord {
        counts,
        latency,
        ttft,
        ttfot,
        tpot,
        itl,
        errors,
        tokens,
        turns: Turns(turns),
        prompt_lengths,
    })
}

fn cell(w: &mut Writer<'_>, c: &Cell) {
    counts(w, &c.counts);
    for s in [&c.latency, &c.ttft, &c.ttfot, &c.tpot] {
        w.slot(s);
    }
    w.usize(c.errors.len());
    for (kind, s) in &c.errors {
        w.usize(kind.index());
        w.slot(s);
    }
}

fn read_cell(r: &mut Reader<'_>) -> Result<Cell, CodecError> {
    let (counts, [latency, ttft, ttfot, tpot], errors) = read_cell_fields(r, Reader::slot)?;
    Ok(Cell {
        counts,
        latency,
        ttft,
        ttfot,
        tpot,
        errors,
    })
}

/// A cell as read: its counts, its four histograms, and each error kind's time to error.
pub(super) type CellFields<S> = (Counts, [S; 4], Vec<(ErrorKind, S)>);

/// A cell's fields in their written order: counts; latency, TTFT, TTFOT and TPOT; then each
/// error kind with its time to error. `slot` reads each histogram, decoded or (for a merge
/// that adds straight from the bytes) left where it lies: one order, read by both.
pub(super) fn read_cell_fields<'a, S>(
    r: &mut Reader<'a>,
    mut slot: impl FnMut(&mut Reader<'a>, &'static str) -> Result<S, CodecError>,
) -> Result<CellFields<S>, CodecError> {
    let counts = read_counts(r)?;
    let hists = [
        slot(r, "a cell's latency")?,
        slot(r, "a cell's TTFT")?,
        slot(r, "a cell's TTFOT")?,
        slot(r, "a cell's TPOT")?,
    ];
    let n = r.len("a cell's error kinds")?;
    let mut errors = Vec::with_capacity(n.min(ErrorKind::COUNT));
    for _ in 0..n {
        let i = r.usize("an error kind")?;
        let kind = ErrorKind::ALL
            .get(i)
            .copied()
            .ok_or_else(|| r.malformed(format!("error kind {i}")))?;
        errors.push((kind, slot(r, "a cell's time to error")?));
    }
    Ok((counts, hists, errors))
}

fn direct_counts(w: &mut Writer<'_>, c: &DirectCounts) {
    for v in [c.requests, c.successes, c.dropped, c.unconnected] {
        w.u64(v);
    }
    tokens(w, &c.tokens);
}

pub(super) fn read_direct_counts(r: &mut Reader<'_>) -> Result<DirectCounts, CodecError> {
    Ok(DirectCounts {
        requests: r.u64("baseline requests")?,
        successes: r.u64("baseline successes")?,
        dropped: r.u64("baseline drops")?,
        unconnected: r.u64("baseline unconnected")?,
        tokens: read_tokens(r)?,
    })
}
