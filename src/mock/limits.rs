//! Per-API-key request and token budgets (token buckets refilled continuously, as OpenAI's
//! per-minute limits behave) and the 429 headers that announce them.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; beyond this, idle keys are forgotten (their buckets were full).
const MAX_KEYS: usize = 10_000;

struct Bucket {
    requests: f64,
    tokens: f64,
    last: Instant,
}

/// What a refused request is told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub retry_after: Duration,
    pub headers: RateHeaders,
}

/// The `x-ratelimit-*` values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateHeaders {
    pub limit_requests: u32,
    pub remaining_requests: u32,
    pub reset_requests: Duration,
    pub limit_tokens: u32,
    pub remaining_tokens: u32,
    pub reset_tokens: Duration,
}

pub(crate) struct RateLimiter {
    rpm: Option<NonZeroU32>,
    tpm: Option<NonZeroU32>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(rpm: Option<NonZeroU32>, tpm: Option<NonZeroU32>) -> Option<Self> {
        (rpm.is_some() || tpm.is_some()).then(|| Self {
            rpm,
            tpm,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    fn caps(&self) -> (f64, f64) {
        (
            self.rpm.map_or(f64::INFINITY, |n| f64::from(n.get())),
            self.tpm.map_or(f64::INFINITY, |n| f64::from(n.get())),
        )
    }

    /// Takes one request and `tokens` tokens from the key's budget, or says how long to wait.
    pub fn admit(&self, key: &str, tokens: u32, now: Instant) -> Result<(), Refusal> {
        let (req_cap, tok_cap) = self.caps();
        let mut map = match self.buckets.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, b| now.duration_since(b.last) < Duration::from_secs(60));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let b = map.entry(key.to_string()).or_insert(Bucket {
            requests: req_cap,
            tokens: tok_cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.requests = (b.requests + elapsed * req_cap / 60.0).min(req_cap);
        b.tokens = (b.tokens + elapsed * tok_cap / 60.0).min(tok_cap);
        b.last = now;
        let need = f64::from(tokens);
        if b.requests >= 1.0 && b.tokens >= need.min(tok_cap) {
            b.requests -= 1.0;
            b.tokens -= need.min(tok_cap);
            return Ok(());
        }
        let wait_req = secs_until(b.requests, 1.0, req_cap);
        let wait_tok = secs_until(b.tokens, need.min(tok_cap), tok_cap);
        Err(Refusal {
            retry_after: Duration::from_secs_f64(wait_req.max(wait_tok)),
            headers: RateHeaders {
                limit_requests: clamp(req_cap),
                remaining_requests: clamp(b.requests.floor()),
                reset_requests: Duration::from_secs_f64(secs_until(b.requests, req_cap, req_cap)),
                limit_tokens: clamp(tok_cap),
                remaining_tokens: clamp(b.tokens.floor()),
                reset_tokens: Duration::from_secs_f64(secs_until(b.tokens, tok_cap, tok_cap)),
            },
        })
    }
}

/// Seconds until a bucket refilling at `cap` per minute holds `want`.
fn secs_until(have: f64, want: f64, cap: f64) -> f64 {
    if !cap.is_finite() || have >= want {
        0.0
    } else {
        (want - have) * 60.0 / cap
    }
}

fn clamp(v: f64) -> u32 {
    if v.is_finite() {
        v.clamp(0.0, f64::from(u32::MAX)) as u32
    } else {
        u32::MAX
    }
}

/// Durations as OpenAI writes them in `x-ratelimit-reset-*`: "20ms", "1.5s".
pub(crate) fn reset_text(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_minute_refill() {
        let rl = RateLimiter::new(NonZeroU32::new(2), None).unwrap();
        let t0 = Instant::now();
        assert!(rl.admit("k", 10, t0).is_ok());
        assert!(rl.admit("k", 10, t0).is_ok());
        let r = rl.admit("k", 10, t0).unwrap_err();
        assert_eq!(r.headers.limit_requests, 2);
        assert_eq!(r.headers.remaining_requests, 0);
        assert_eq!(r.retry_after, Duration::from_secs(30));
        assert!(rl.admit("other", 10, t0).is_ok(), "keys are separate");
        assert!(rl.admit("k", 10, t0 + Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn tokens_per_minute_count() {
        let rl = RateLimiter::new(None, NonZeroU32::new(100)).unwrap();
        let t0 = Instant::now();
        assert!(rl.admit("k", 80, t0).is_ok());
        let r = rl.admit("k", 40, t0).unwrap_err();
        assert_eq!(r.headers.remaining_tokens, 20);
        assert_eq!(r.retry_after, Duration::from_secs(12));
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
    }
}
