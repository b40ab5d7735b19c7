//! What a mock received and how it answered: lock-free counters on the hot path, and the
//! `MockStats` snapshot the control API and `MockHandle::stats` return.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use super::fault::FaultKindName;

/// How the mock answered one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// A well-formed completion or model list.
    Ok,
    /// The client's request was wrong (400, 401, 404, 405, 413).
    ClientError,
    /// 429 from the profile's limits or a rate_limit fault.
    RateLimited,
    /// An error status from an `error` fault.
    Error,
    /// Held without an answer, then closed.
    Hang,
    /// Connection reset.
    Reset,
    /// A stream or body stopped part-way.
    StreamCut,
    /// A 200 with a body that does not parse.
    Malformed,
    /// Nothing answered (outage).
    Outage,
}

const OUTCOMES: [RequestOutcome; 9] = [
    RequestOutcome::Ok,
    RequestOutcome::ClientError,
    RequestOutcome::RateLimited,
    RequestOutcome::Error,
    RequestOutcome::Hang,
    RequestOutcome::Reset,
    RequestOutcome::StreamCut,
    RequestOutcome::Malformed,
    RequestOutcome::Outage,
];

const FAULT_KINDS: [FaultKindName; 9] = [
    FaultKindName::Error,
    FaultKindName::RateLimit,
    FaultKindName::Latency,
    FaultKindName::Hang,
    FaultKindName::Reset,
    FaultKindName::StreamCut,
    FaultKindName::Malformed,
    FaultKindName::SlowStream,
    FaultKindName::Outage,
];

fn fault_index(k: FaultKindName) -> usize {
    FAULT_KINDS.iter().position(|x| *x == k).unwrap_or(0)
}

fn outcome_index(o: RequestOutcome) -> usize {
    OUTCOMES.iter().position(|x| *x == o).unwrap_or(0)
}

/// A point-in-time copy of a mock's counters (the control API's `GET /__gauntlet/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MockStats {
    pub upstream: String,
    /// API requests received (the control API is not counted).
    pub requests_total: u64,
    /// Requests being handled now, streams included until their last byte.
    pub in_flight: u64,
    /// Requests that named a model; names the mock does not serve count under `_unknown`.
    pub by_model: BTreeMap<String, u64>,
    pub by_outcome: BTreeMap<RequestOutcome, u64>,
    pub faults_injected: BTreeMap<FaultKindName, u64>,
    /// Tokens in the requests served (estimated) and in the completions sent.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the prefix cache (part of `prompt_tokens`).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Completion tokens spent reasoning (part of `completion_tokens`).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl MockStats {
    pub fn outcome(&self, o: RequestOutcome) -> u64 {
        self.by_outcome.get(&o).copied().unwrap_or(0)
    }

    pub fn faults(&self, k: FaultKindName) -> u64 {
        self.faults_injected.get(&k).copied().unwrap_or(0)
    }

    pub fn model(&self, name: &str) -> u64 {
        self.by_model.get(name).copied().unwrap_or(0)
    }
}

pub const UNKNOWN_MODEL: &str = "_unknown";

/// The live counters.
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub in_flight: AtomicI64,
    models: Vec<String>,
    /// One per served model, then one for unknown names.
    by_model: Vec<AtomicU64>,
    by_outcome: [AtomicU64; 9],
    faults: [AtomicU64; 9],
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    reasoning_tokens: AtomicU64,
}

impl Counters {
    pub fn new(models: Vec<String>) -> Self {
        let by_model = (0..=models.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            requests: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            models,
            by_model,
            by_outcome: Default::default(),
            faults: Default::default(),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            reasoning_tokens: AtomicU64::new(0),
        }
    }

    /// `index` is the model's position in the profile, `None` for unknown names.
    pub fn model(&self, index: Option<usize>) {
        let i = index.unwrap_or(self.models.len());
        if let Some(c) = self.by_model.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn outcome(&self, o: RequestOutcome) {
        self.by_outcome[outcome_index(o)].fetch_add(1, Relaxed);
    }

    pub fn fault(&self, k: FaultKindName) {
        self.faults[fault_index(k)].fetch_add(1, Relaxed);
    }

    pub fn tokens(&self, prompt: u32, completion: u32) {
        self.prompt_tokens.fetch_add(u64::from(prompt), Relaxed);
        self.completion_tokens
            .fetch_add(u64::from(completion), Relaxed);
    }

    /// Only called when a profile caches prefixes or reasons, so plain mocks skip the atomics.
    pub fn details(&self, cached: u32, reasoning: u32) {
        self.cached_tokens.fetch_add(u64::from(cached), Relaxed);
        self.reasoning_tokens
            .fetch_add(u64::from(reasoning), Relaxed);
    }

    /// Zeroes every counter but `in_flight`, which tracks requests still being answered and
    /// must come back to zero on its own as they end.
    pub fn reset(&self) {
        self.requests.store(0, Relaxed);
        for c in self
            .by_model
            .iter()
            .chain(&self.by_outcome)
            .chain(&self.faults)
        {
            c.store(0, Relaxed);
        }
        self.prompt_tokens.store(0, Relaxed);
        self.completion_tokens.store(0, Relaxed);
        self.cached_tokens.store(0, Relaxed);
        self.reasoning_tokens.store(0, Relaxed);
    }

    pub fn snapshot(&self, upstream: &str) -> MockStats {
        let mut by_model = BTreeMap::new();
        for (i, c) in self.by_model.iter().enumerate() {
            let name = self.models.get(i).map_or(UNKNOWN_MODEL, String::as_str);
            let n = c.load(Relaxed);
            if n > 0 || i < self.models.len() {
                by_model.insert(name.to_string(), n);
            }
        }
        MockStats {
            upstream: upstream.to_string(),
            requests_total: self.requests.load(Relaxed),
            in_flight: u64::try_from(self.in_flight.load(Relaxed)).unwrap_or(0),
            by_model,
            by_outcome: OUTCOMES
                .iter()
                .zip(&self.by_outcome)
                .map(|(o, c)| (*o, c.load(Relaxed)))
                .collect(),
            faults_injected: FAULT_KINDS
                .iter()
                .zip(&self.faults)
                .map(|(k, c)| (*k, c.load(Relaxed)))
                .collect(),
            prompt_tokens: self.prompt_tokens.load(Relaxed),
            completion_tokens: self.completion_tokens.load(Relaxed),
            cached_tokens: self.cached_tokens.load(Relaxed),
            reasoning_tokens: self.reasoning_tokens.load(Relaxed),
        }
    }
}
