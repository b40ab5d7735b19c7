//! The per-minute request and token limits of one API key, kept as token buckets refilled
//! continuously (as OpenAI's limits behave, rather than windows that reset on the minute).
//! The mocks and the gateway both keep their limits here, so both refuse alike.
//!
//! `governor` (GCRA) was tried first and does not fit: it keeps one quota per limiter, so
//! the request and the token limit are two limiters, and with no way to look without taking
//! or to give back, a request the token limit refuses has already spent its request (a 429
//! must spend nothing); and a refusal reports no remaining count (0 by its documentation),
//! while a 429's `x-ratelimit-remaining-tokens` must say what is left.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use super::ratelimit::{BucketState, RateLimitHeaders, duration_text};

#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    level: f64,
}

impl Bucket {
    fn per_minute(limit: NonZeroU32) -> Self {
        let capacity = f64::from(limit.get());
        Self {
            capacity,
            level: capacity,
        }
    }

    fn level_after(&self, secs: f64) -> f64 {
        (self.level + secs * self.capacity / 60.0).min(self.capacity)
    }

    /// How long until `cost` fits (zero when it does now).
    fn wait_for(&self, cost: f64) -> Duration {
        self.time_to_gain(cost - self.level)
    }

    /// How long the refill takes to add `amount` (the whole capacity per minute); multiplied
    /// before dividing so whole-second answers come out exact.
    fn time_to_gain(&self, amount: f64) -> Duration {
        let secs = amount * 60.0 / self.capacity;
        if secs > 0.0 {
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        } else {
            Duration::ZERO
        }
    }

    fn state(&self) -> BucketState {
        BucketState {
            limit: whole(self.capacity),
            remaining: whole(self.level.floor()),
            reset: self.time_to_gain(self.capacity - self.level),
        }
    }
}

fn whole(v: f64) -> u32 {
    v.clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    Requests,
    Tokens,
    /// The request needs more tokens than the limit ever holds: no wait helps.
    TooLarge,
}

/// A refused request: what refused it, when to retry (`None`: never), and the headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub exhausted: Exhausted,
    pub retry_after: Option<Duration>,
    pub requested_tokens: u32,
    pub headers: RateLimitHeaders,
}

impl Refusal {
    /// The error message, worded as OpenAI words its own 429s.
    pub fn message(&self, model: &str) -> String {
        let limit = |b: Option<BucketState>| b.map_or(0, |b| b.limit);
        let used = |b: Option<BucketState>| b.map_or(0, |b| b.limit.saturating_sub(b.remaining));
        let wait = duration_text(self.retry_after.unwrap_or_default());
        let (req, tok) = (self.headers.requests, self.headers.tokens);
        match self.exhausted {
            Exhausted::Requests => format!(
                "Rate limit reached for {model} on requests per min (RPM): Limit {}, Used {}, Requested 1. Please try again in {wait}.",
                limit(req),
                used(req),
            ),
            Exhausted::Tokens => format!(
                "Rate limit reached for {model} on tokens per min (TPM): Limit {}, Used {}, Requested {}. Please try again in {wait}.",
                limit(tok),
                used(tok),
                self.requested_tokens,
            ),
            Exhausted::TooLarge => format!(
                "Request too large for {model} on tokens per min (TPM): Limit {}, Requested {}. The input or output tokens must be reduced in order to run successfully.",
                limit(tok),
                self.requested_tokens,
            ),
        }
    }
}

/// One key's request and token buckets. Not locked: the caller owns the lock (one per key
/// in the gateway, one map of keys in a mock).
#[derive(Debug, Clone)]
pub struct MinuteBuckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    last: Instant,
}

impl MinuteBuckets {
    /// Full buckets for `rpm` requests and `tpm` tokens per minute (`None`: no such limit).
    pub fn new(rpm: Option<NonZeroU32>, tpm: Option<NonZeroU32>, now: Instant) -> Self {
        Self {
            requests: rpm.map(Bucket::per_minute),
            tokens: tpm.map(Bucket::per_minute),
            last: now,
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// The token limit, if there is one.
    pub fn token_limit(&self) -> Option<u32> {
        self.tokens.as_ref().map(|b| whole(b.capacity))
    }

    /// Whether both buckets would be full at `now`: such a key is indistinguishable from a
    /// fresh one and may be forgotten.
    pub fn is_full(&self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        [&self.requests, &self.tokens]
            .into_iter()
            .flatten()
            .all(|b| b.level_after(dt) >= b.capacity)
    }

    /// Takes one request and `tokens` tokens, or refuses without taking anything. The headers
    /// describe the buckets after the decision.
    pub fn take(&mut self, tokens: u32, now: Instant) -> Result<RateLimitHeaders, Refusal> {
        // Concurrent callers may pass arrival times slightly out of order; time never runs
        // back for a bucket.
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        for b in [&mut self.requests, &mut self.tokens].into_iter().flatten() {
            b.level = b.level_after(dt);
        }
        let cost = f64::from(tokens);
        let refuse = |s: &Self, exhausted, retry_after| {
            Err(Refusal {
                exhausted,
                retry_after,
                requested_tokens: tokens,
                headers: s.headers(),
            })
        };
        if self.tokens.as_ref().is_some_and(|b| cost > b.capacity) {
            return refuse(self, Exhausted::TooLarge, None);
        }
        let wait_req = self
            .requests
            .as_ref()
            .map_or(Duration::ZERO, |b| b.wait_for(1.0));
        let wait_tok = self
            .tokens
            .as_ref()
            .map_or(Duration::ZERO, |b| b.wait_for(cost));
        if !wait_req.is_zero() || !wait_tok.is_zero() {
            let exhausted = if wait_req.is_zero() {
                Exhausted::Tokens
            } else {
                Exhausted::Requests
            };
            return refuse(self, exhausted, Some(wait_req.max(wait_tok)));
        }
        if let Some(b) = &mut self.requests {
            b.level -= 1.0;
        }
        if let Some(b) = &mut self.tokens {
            b.level -= cost;
        }
        Ok(self.headers())
    }

    fn headers(&self) -> RateLimitHeaders {
        RateLimitHeaders {
            requests: self.requests.as_ref().map(Bucket::state),
            tokens: self.tokens.as_ref().map(Bucket::state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(rpm: u32, tpm: u32, now: Instant) -> MinuteBuckets {
        MinuteBuckets::new(NonZeroU32::new(rpm), NonZeroU32::new(tpm), now)
    }

    #[test]
    fn requests_refill_continuously() {
        let t0 = Instant::now();
        let mut b = buckets(60, 0, t0);
        for _ in 0..60 {
            assert!(b.take(0, t0).is_ok());
        }
        let r = b.take(0, t0).unwrap_err();
        assert_eq!(r.exhausted, Exhausted::Requests);
        assert_eq!(r.retry_after, Some(Duration::from_secs(1)));
        let state = r.headers.requests.unwrap();
        assert_eq!((state.limit, state.remaining), (60, 0));
        assert_eq!(state.reset, Duration::from_secs(60));
        assert!(r.headers.tokens.is_none());
        assert!(b.take(0, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn tokens_count_their_cost_and_a_refusal_spends_nothing() {
        let t0 = Instant::now();
        let mut b = buckets(10, 100, t0);
        let ok = b.take(80, t0).unwrap();
        assert_eq!(ok.tokens.unwrap().remaining, 20);
        assert_eq!(ok.requests.unwrap().remaining, 9);
        let r = b.take(40, t0).unwrap_err();
        assert_eq!(r.exhausted, Exhausted::Tokens);
        assert_eq!(r.retry_after, Some(Duration::from_secs(12)));
        assert_eq!(
            r.headers.tokens.unwrap().remaining,
            20,
            "what is left, not 0"
        );
        assert_eq!(
            r.headers.requests.unwrap().remaining,
            9,
            "the refusal took no request"
        );
        assert!(
            r.message("m").contains("Used 80, Requested 40"),
            "{}",
            r.message("m")
        );
        assert!(b.take(20, t0).is_ok());
    }

    #[test]
    fn oversized_requests_never_fit() {
        let t0 = Instant::now();
        let mut b = buckets(0, 100, t0);
        let r = b.take(101, t0).unwrap_err();
        assert_eq!((r.exhausted, r.retry_after), (Exhausted::TooLarge, None));
        assert!(r.message("m").starts_with("Request too large for m"));
        assert_eq!(b.token_limit(), Some(100));
        assert!(b.take(100, t0).is_ok());
    }

    #[test]
    fn the_longer_wait_is_announced_when_both_are_short() {
        let t0 = Instant::now();
        let mut b = buckets(1, 60, t0);
        assert!(b.take(30, t0).is_ok());
        let r = b.take(60, t0).unwrap_err();
        assert_eq!(r.exhausted, Exhausted::Requests);
        assert_eq!(r.retry_after, Some(Duration::from_secs(60)));
        assert!(r.message("m").contains("Please try again in 1m0s."));
    }

    #[test]
    fn a_key_is_full_again_after_its_reset() {
        let t0 = Instant::now();
        let mut b = buckets(2, 0, t0);
        assert!(b.is_full(t0));
        let state = b.take(0, t0).unwrap().requests.unwrap();
        assert!(!b.is_full(t0));
        assert!(!b.is_full(t0 + state.reset - Duration::from_millis(1)));
        assert!(b.is_full(t0 + state.reset));
        assert!(MinuteBuckets::new(None, None, t0).is_unlimited());
    }

    #[test]
    fn time_does_not_run_back() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut b = buckets(2, 0, t0);
        assert!(b.take(0, later).is_ok());
        assert!(
            b.take(0, t0).is_ok(),
            "an earlier arrival is served at the later time"
        );
        assert!(b.take(0, t0).is_err());
    }
}
