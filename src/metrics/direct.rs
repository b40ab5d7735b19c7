//! The direct baseline's recording (`[load] baseline = "direct"`): per class, what was sent
//! straight to its primary upstream, and the latency of the successes per interval, so the
//! comparison with the gateway can leave fault windows out. Kept apart from the gateway's
//! recording, which it never enters; two of one run merge exactly.

use std::borrow::Cow;

use hdrhistogram::{AdditionError, Histogram};

use super::hist::{Slot, record};
use super::sample::{ErrorKind, Sample, TokenCounts, TokenSource};

/// Requests of one class sent direct, and the tokens their answers counted: the upstreams
/// count these too, and the conclusion takes them back out of what the gateway is charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectCounts {
    /// Sent or dropped.
    pub requests: u64,
    pub successes: u64,
    /// Due while the generator was at its in-flight cap: never sent.
    pub dropped: u64,
    /// Sent, but no connection could be made: the upstream never saw them.
    pub unconnected: u64,
    /// Tokens of the answers whose usage the upstream reported: its own counts. An answer
    /// without usage (its prompt counted by gauntlet's tokenizer, its completion by deltas) is
    /// left out, since the upstream's counters may not hold what gauntlet estimated.
    pub tokens: TokenCounts,
}

impl DirectCounts {
    /// Sums another shard's counts into these.
    pub fn merge(&mut self, o: &DirectCounts) {
        self.requests += o.requests;
        self.successes += o.successes;
        self.dropped += o.dropped;
        self.unconnected += o.unconnected;
        self.tokens.merge(&o.tokens);
    }

    /// Requests that reached the upstream: neither dropped nor refused a connection.
    pub fn reached(&self) -> u64 {
        self.requests
            .saturating_sub(self.dropped)
            .saturating_sub(self.unconnected)
    }
}

#[derive(Debug, Clone)]
pub struct DirectRecording {
    classes: usize,
    pub(super) counts: Vec<DirectCounts>,
    /// Latency of successes, `intervals x classes`, row-major by interval.
    pub(super) cells: Vec<Slot>,
}

impl DirectRecording {
    pub(super) fn new(classes: usize, intervals: usize) -> Self {
        Self {
            classes,
            counts: vec![DirectCounts::default(); classes],
            cells: vec![Slot::default(); classes * intervals],
        }
    }

    /// Only a success has a latency worth comparing: a refusal is fast for other reasons.
    pub(super) fn record(&mut self, s: &Sample, interval: usize) {
        let Some(c) = self.counts.get_mut(s.class) else {
            return;
        };
        c.requests += 1;
        if s.prompt_tokens_from == TokenSource::Usage {
            c.tokens.record(s);
        }
        if s.result == Err(ErrorKind::Connect) {
            c.unconnected += 1;
        }
        if s.result.is_err() {
            return;
        }
        c.successes += 1;
        if let Some(slot) = self.cells.get_mut(interval * self.classes + s.class) {
            record(slot.live(), s.latency);
        }
    }

    pub(super) fn record_dropped(&mut self, class: usize) {
        if let Some(c) = self.counts.get_mut(class) {
            c.requests += 1;
            c.dropped += 1;
        }
    }

    /// Packs the intervals in `range`.
    pub(super) fn pack(&mut self, intervals: std::ops::Range<usize>) {
        let end = (intervals.end * self.classes).min(self.cells.len());
        let start = (intervals.start * self.classes).min(end);
        for slot in &mut self.cells[start..end] {
            slot.pack();
        }
    }

    /// Adds other shards' baselines; `Recorder::merge_many` has checked the layouts match.
    /// Intervals below `packed_below` are packed again as soon as they are added to.
    pub(super) fn merge_many(
        &mut self,
        others: &[&DirectRecording],
        packed_below: usize,
    ) -> Result<(), AdditionError> {
        for other in others {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                a.merge(b);
            }
        }
        for (i, a) in self.cells.iter_mut().enumerate() {
            for other in others {
                if let Some(h) = other.cells.get(i).and_then(Slot::get) {
                    a.live().add(h.as_ref())?;
                }
            }
            if i / self.classes.max(1) < packed_below {
                a.pack();
            }
        }
        Ok(())
    }

    pub fn counts(&self, class: usize) -> DirectCounts {
        self.counts.get(class).copied().unwrap_or_default()
    }

    /// Latency of a class's direct successes in one interval (microseconds), if any.
    pub fn latency(&self, interval: usize, class: usize) -> Option<Cow<'_, Histogram<u32>>> {
        self.cells.get(interval * self.classes + class)?.get()
    }
}
