//! A class's numbers broken down two ways the class totals hide: by conversation turn, and by
//! prompt length (log-spaced bins of fixed count, so two recordings merge bin by bin, exactly).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::sample::Sample;

/// Turns beyond this are counted with it: a session that long is already an outlier, and the
/// cap bounds what a runaway turn counter can cost in memory.
pub const MAX_TURNS: usize = 100;

/// Prompt-length bins: bin 0 holds prompts under `FIRST_BIN_END` tokens; bin i (i >= 1) holds
/// [FIRST_BIN_END * 2^(i-1), FIRST_BIN_END * 2^i); the last bin is open-ended (from 4M tokens).
pub const PROMPT_BINS: usize = 20;
const FIRST_BIN_END: u64 = 16;

/// Longest value a histogram tracks, in microseconds (one hour); longer values are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // Auto-resizing from a small start: memory follows the values actually seen.
    let mut h = Histogram::new_with_max(1_000, 3).expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let v = u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .min(MAX_MICROS);
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) -> Result<(), String> {
    into.add(from).map_err(|e| e.to_string())
}

/// The bin a prompt of `tokens` falls in.
pub fn prompt_bin(tokens: u64) -> usize {
    if tokens < FIRST_BIN_END {
        return 0;
    }
    let doublings = (tokens / FIRST_BIN_END).ilog2() as usize;
    (doublings + 1).min(PROMPT_BINS - 1)
}

/// Token range [min, max) of a bin; `None` as max for the open last bin.
pub fn prompt_bin_range(bin: usize) -> (u64, Option<u64>) {
    let bound = |i: usize| FIRST_BIN_END << (i - 1);
    match bin {
        0 => (0, Some(FIRST_BIN_END)),
        b if b >= PROMPT_BINS - 1 => (bound(PROMPT_BINS - 1), None),
        b => (bound(b), Some(bound(b + 1))),
    }
}

/// One turn index of a class's conversations.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub requests: u64,
    pub successes: u64,
    /// Microseconds, successful requests only.
    pub latency: Histogram<u64>,
    pub ttft: Histogram<u64>,
}

impl TurnRecord {
    fn new() -> Self {
        Self {
            requests: 0,
            successes: 0,
            latency: histogram(),
            ttft: histogram(),
        }
    }
}

/// Per-turn records, index `turn - 1`; empty for a class without conversations.
#[derive(Debug, Clone, Default)]
pub struct Turns(pub(super) Vec<TurnRecord>);

impl Turns {
    pub fn record(&mut self, s: &Sample) {
        let Some(turn) = s.turn else { return };
        let at = usize::from(turn).clamp(1, MAX_TURNS) - 1;
        // Grows once per new turn index; every later sample of that turn allocates nothing.
        while self.0.len() <= at {
            self.0.push(TurnRecord::new());
        }
        let t = &mut self.0[at];
        t.requests += 1;
        if s.result.is_ok() {
            t.successes += 1;
            record(&mut t.latency, s.latency);
            if let Some(ttft) = s.ttft {
                record(&mut t.ttft, ttft);
            }
        }
    }

    pub fn merge(&mut self, other: &Turns) -> Result<(), String> {
        while self.0.len() < other.0.len() {
            self.0.push(TurnRecord::new());
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.requests += b.requests;
            a.successes += b.successes;
            add(&mut a.latency, &b.latency)?;
            add(&mut a.ttft, &b.ttft)?;
        }
        Ok(())
    }

    /// (1-based turn, its record), for turns that saw requests.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &TurnRecord)> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, t)| t.requests > 0)
            .map(|(i, t)| (u16::try_from(i + 1).unwrap_or(u16::MAX), t))
    }
}

/// How long the prompts sent were, and how TTFT went with their length.
#[derive(Debug, Clone, Default)]
pub struct PromptLengths {
    /// Requests whose prompt length is known, per bin.
    pub(super) counts: [u64; PROMPT_BINS],
    /// TTFT of successful streams per bin, made at the bin's first one.
    pub(super) ttft: [Option<Histogram<u64>>; PROMPT_BINS],
}

impl PromptLengths {
    /// A sample with no prompt count (a failure the client could not count) is left out,
    /// rather than filed as an empty prompt.
    pub fn record(&mut self, s: &Sample) {
        if s.prompt_tokens == 0 {
            return;
        }
        let bin = prompt_bin(s.prompt_tokens);
        self.counts[bin] += 1;
        if s.result.is_ok()
            && let Some(t) = s.ttft
        {
            record(self.ttft[bin].get_or_insert_with(histogram), t);
        }
    }

    pub fn merge(&mut self, other: &PromptLengths) -> Result<(), String> {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (a, b) in self.ttft.iter_mut().zip(&other.ttft) {
            if let Some(b) = b {
                add(a.get_or_insert_with(histogram), b)?;
            }
        }
        Ok(())
    }

    /// (bin, requests, TTFT histogram if any) for bins that saw requests.
    pub fn bins(&self) -> impl Iterator<Item = (usize, u64, Option<&Histogram<u64>>)> {
        self.counts
            .iter()
            .zip(&self.ttft)
            .enumerate()
            .filter(|(_, (n, _))| **n > 0)
            .map(|(i, (n, h))| (i, *n, h.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_log_spaced_and_cover_every_length() {
        assert_eq!(prompt_bin(0), 0);
        assert_eq!(prompt_bin(15), 0);
        assert_eq!(prompt_bin(16), 1);
        assert_eq!(prompt_bin(31), 1);
        assert_eq!(prompt_bin(32), 2);
        assert_eq!(prompt_bin(8_000), 9);
        assert_eq!(prompt_bin(u64::MAX), PROMPT_BINS - 1);
        for tokens in [1u64, 16, 17, 100, 1_000, 8_191, 8_192, 1 << 22, 1 << 30] {
            let (lo, hi) = prompt_bin_range(prompt_bin(tokens));
            assert!(lo <= tokens && hi.is_none_or(|h| tokens < h), "{tokens}");
        }
        // Adjacent bins meet.
        for b in 0..PROMPT_BINS - 1 {
            assert_eq!(prompt_bin_range(b).1, Some(prompt_bin_range(b + 1).0));
        }
    }
}
