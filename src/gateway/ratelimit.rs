//! A gateway key's per-minute request and token limits: the shared buckets
//! (`openai::MinuteBuckets`) behind the key's own lock.

use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::openai::{MinuteBuckets, RateLimitHeaders, Refusal};

/// The limits of one API key.
#[derive(Debug)]
pub struct KeyLimiter {
    /// Known at start, so an unlimited key never takes the lock.
    unlimited: bool,
    buckets: Mutex<MinuteBuckets>,
}

impl KeyLimiter {
    pub fn new(rpm: Option<NonZeroU32>, tpm: Option<NonZeroU32>) -> Self {
        let buckets = MinuteBuckets::new(rpm, tpm, Instant::now());
        Self {
            unlimited: buckets.is_unlimited(),
            buckets: Mutex::new(buckets),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.unlimited
    }

    /// Takes one request and `tokens` tokens, or refuses without taking anything.
    pub fn check(&self, tokens: u32, now: Instant) -> Result<RateLimitHeaders, Refusal> {
        // The buckets hold plain numbers that every step leaves consistent: a panic elsewhere
        // while the lock was held cannot have left them half-updated.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.take(tokens, now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::openai::Exhausted;

    #[test]
    fn a_key_refuses_when_empty_and_refills_over_time() {
        let l = KeyLimiter::new(NonZeroU32::new(60), None);
        assert!(!l.is_unlimited());
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(l.check(0, t0).is_ok());
        }
        let r = l.check(0, t0).unwrap_err();
        assert_eq!(r.exhausted, Exhausted::Requests);
        assert_eq!(r.retry_after, Some(Duration::from_secs(1)));
        assert!(l.check(0, t0 + Duration::from_secs(1)).is_ok());
        assert!(KeyLimiter::new(None, None).is_unlimited());
    }
}
