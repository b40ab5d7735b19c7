//! Per-key request and token limits as token buckets refilled continuously, and the
//! `x-ratelimit-*` numbers a client needs to pace itself.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the client is told about its limits (each half present only if that limit is set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateInfo {
    pub requests: Option<BucketInfo>,
    pub tokens: Option<BucketInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn per_minute(limit: NonZeroU32, now: Instant) -> Self {
        let capacity = f64::from(limit.get());
        Self {
            capacity,
            per_sec: capacity / 60.0,
            level: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// How long until `cost` fits; `None` if it never can.
    fn wait_for(&self, cost: f64) -> Option<Duration> {
        if cost > self.capacity {
            return None;
        }
        let missing = (cost - self.level).max(0.0);
        Some(Duration::from_secs_f64(missing / self.per_sec))
    }

    fn info(&self) -> BucketInfo {
        BucketInfo {
            limit: self.capacity as u32,
            remaining: self.level.max(0.0) as u32,
            reset: Duration::from_secs_f64((self.capacity - self.level).max(0.0) / self.per_sec),
        }
    }
}

/// The limits of one API key.
#[derive(Debug)]
pub struct KeyLimiter {
    inner: Mutex<(Option<Bucket>, Option<Bucket>)>,
}

/// Why a request was refused and when it may be retried (`None`: never fits).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub retry_after: Option<Duration>,
    pub info: RateInfo,
}

impl KeyLimiter {
    pub fn new(rpm: Option<NonZeroU32>, tpm: Option<NonZeroU32>) -> Self {
        let now = Instant::now();
        Self {
            inner: Mutex::new((
                rpm.map(|r| Bucket::per_minute(r, now)),
                tpm.map(|t| Bucket::per_minute(t, now)),
            )),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.inner
            .lock()
            .map(|g| g.0.is_none() && g.1.is_none())
            .unwrap_or(true)
    }

    /// Takes one request and `tokens` tokens, or refuses without taking anything.
    pub fn check(&self, tokens: u32, now: Instant) -> Result<RateInfo, Refusal> {
        let Ok(mut guard) = self.inner.lock() else {
            return Ok(RateInfo::default());
        };
        let (req, tok) = &mut *guard;
        let cost = f64::from(tokens);
        let mut wait = Duration::ZERO;
        let mut never = None;
        let mut message = None;
        if let Some(b) = req.as_mut() {
            b.refill(now);
            match b.wait_for(1.0) {
                Some(w) if !w.is_zero() => {
                    wait = wait.max(w);
                    message = Some(format!(
                        "Rate limit reached for requests: limit {} per minute. Please try again in {}ms.",
                        b.capacity,
                        w.as_millis().max(1)
                    ));
                }
                _ => {}
            }
        }
        if let Some(b) = tok.as_mut() {
            b.refill(now);
            match b.wait_for(cost) {
                None => {
                    never = Some(format!(
                        "Request too large: it needs about {tokens} tokens, more than this key's limit of {} tokens per minute.",
                        b.capacity
                    ));
                }
                Some(w) if !w.is_zero() => {
                    wait = wait.max(w);
                    message.get_or_insert_with(|| {
                        format!(
                            "Rate limit reached for tokens: limit {} per minute, requested {tokens}. Please try again in {}ms.",
                            b.capacity,
                            w.as_millis().max(1)
                        )
                    });
                }
                _ => {}
            }
        }
        if never.is_none() && message.is_none() {
            if let Some(b) = req.as_mut() {
                b.level -= 1.0;
            }
            if let Some(b) = tok.as_mut() {
                b.level -= cost;
            }
        }
        let info = RateInfo {
            requests: req.as_ref().map(Bucket::info),
            tokens: tok.as_ref().map(Bucket::info),
        };
        match (never, message) {
            (Some(m), _) => Err(Refusal {
                message: m,
                retry_after: None,
                info,
            }),
            (None, Some(m)) => Err(Refusal {
                message: m,
                retry_after: Some(wait),
                info,
            }),
            (None, None) => Ok(info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_when_empty_and_refills_over_time() {
        let l = KeyLimiter::new(NonZeroU32::new(60), None);
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(l.check(0, t0).is_ok());
        }
        let r = l.check(0, t0).unwrap_err();
        let wait = r.retry_after.unwrap();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(l.check(0, t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn token_limit_counts_cost_and_oversized_never_fits() {
        let l = KeyLimiter::new(None, NonZeroU32::new(100));
        let t0 = Instant::now();
        assert!(l.check(80, t0).is_ok());
        assert!(l.check(30, t0).unwrap_err().retry_after.is_some());
        assert!(l.check(500, t0).unwrap_err().retry_after.is_none());
        let info = l.check(20, t0).unwrap();
        assert_eq!(info.tokens.unwrap().remaining, 0);
    }
}
