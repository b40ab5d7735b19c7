//! Per-API-key request and token budgets of a mock provider: one `openai::MinuteBuckets`
//! per key seen, kept in a bounded map.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::openai::{MinuteBuckets, Refusal};

/// Keys remembered at most; beyond this, keys whose buckets are full again are forgotten.
const MAX_KEYS: usize = 10_000;

pub(crate) struct RateLimiter {
    rpm: Option<NonZeroU32>,
    tpm: Option<NonZeroU32>,
    buckets: Mutex<HashMap<String, MinuteBuckets>>,
}

impl RateLimiter {
    pub fn new(rpm: Option<NonZeroU32>, tpm: Option<NonZeroU32>) -> Option<Self> {
        (rpm.is_some() || tpm.is_some()).then(|| Self {
            rpm,
            tpm,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Refills every key's budget, as if no request had been made.
    pub fn clear(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Takes one request and `tokens` tokens from the key's budget, or says how long to wait.
    /// A request larger than the whole token budget costs the whole budget: a mock plays a
    /// provider that is slow to refill, not one that refuses a size outright.
    pub fn admit(&self, key: &str, tokens: u32, now: Instant) -> Result<(), Refusal> {
        // The map holds plain buckets that every step leaves consistent.
        let mut map = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, b| !b.is_full(now));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let b = map
            .entry(key.to_string())
            .or_insert_with(|| MinuteBuckets::new(self.rpm, self.tpm, now));
        let cost = b.token_limit().map_or(tokens, |cap| tokens.min(cap));
        b.take(cost, now).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn requests_per_minute_refill() {
        let rl = RateLimiter::new(NonZeroU32::new(2), None).unwrap();
        let t0 = Instant::now();
        assert!(rl.admit("k", 10, t0).is_ok());
        assert!(rl.admit("k", 10, t0).is_ok());
        let r = rl.admit("k", 10, t0).unwrap_err();
        let requests = r.headers.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (2, 0));
        assert_eq!(r.retry_after, Some(Duration::from_secs(30)));
        assert!(rl.admit("other", 10, t0).is_ok(), "keys are separate");
        assert!(rl.admit("k", 10, t0 + Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn tokens_per_minute_count_and_oversized_costs_the_whole_budget() {
        let rl = RateLimiter::new(None, NonZeroU32::new(100)).unwrap();
        let t0 = Instant::now();
        assert!(rl.admit("k", 80, t0).is_ok());
        let r = rl.admit("k", 40, t0).unwrap_err();
        assert_eq!(r.headers.tokens.unwrap().remaining, 20);
        assert_eq!(r.retry_after, Some(Duration::from_secs(12)));
        assert!(rl.admit("big", 500, t0).is_ok(), "a full budget admits it");
        let r = rl.admit("big", 1, t0).unwrap_err();
        assert_eq!(r.headers.tokens.unwrap().remaining, 0);
    }

    #[test]
    fn a_full_map_forgets_keys_that_refilled() {
        let rl = RateLimiter::new(NonZeroU32::new(60), None).unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            assert!(rl.admit(&i.to_string(), 0, t0).is_ok());
        }
        let later = t0 + Duration::from_secs(2);
        assert!(rl.admit("new", 0, later).is_ok());
        let map = rl.buckets.lock().unwrap();
        assert_eq!(map.len(), 1, "every old key was full again");
    }
}
