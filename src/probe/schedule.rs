//! When the probe sends next: one request every `every`, never a burst to catch up after a
//! stall, and held off after a 429 for the Retry-After the endpoint asked for, or else for an
//! exponentially growing wait, so a probe never becomes load on an endpoint that pushes back.

use std::time::Duration;

/// The longest a probe holds off after 429s: long enough to leave a struggling endpoint
/// alone, short enough to notice it is back within the quarter hour.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Pacer {
    every: Duration,
    next: Duration,
    /// 429s in a row without an answer of another kind between them.
    refused: u32,
    /// When the last backoff ends, on the probe's clock (zero before any).
    hold_until: Duration,
}

impl Pacer {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            next: Duration::ZERO,
            refused: 0,
            hold_until: Duration::ZERO,
        }
    }

    /// When the next request is due, on the probe's clock.
    pub fn due(&self) -> Duration {
        self.next
    }

    /// A request was sent at `now`: the next one is `every` after the one due, or after now
    /// when the probe fell behind (a missed slot is skipped, not made up).
    pub fn sent(&mut self, now: Duration) {
        let next = self.next + self.every;
        self.next = if next < now { now + self.every } else { next };
    }

    /// An answer arrived at `now`; a 429 (`rate_limited`) pushes the next send back by the
    /// wait it asked for, else by `every` doubled for each 429 in a row. Returns the wait
    /// when it backs off.
    pub fn answered(
        &mut self,
        now: Duration,
        rate_limited: bool,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if !rate_limited {
            self.refused = 0;
            return None;
        }
        self.refused = self.refused.saturating_add(1);
        let doubling = 2u32.saturating_pow(self.refused.min(20));
        let wait = retry_after
            .unwrap_or_else(|| self.every.saturating_mul(doubling))
            .max(self.every)
            .min(MAX_BACKOFF);
        self.next = self.next.max(now + wait);
        self.hold_until = self.hold_until.max(now + wait);
        Some(wait)
    }

    /// What is left at `now` of the backoff being honoured, zero when sending on schedule.
    pub fn backoff(&self, now: Duration) -> Duration {
        self.hold_until.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn sends_on_the_beat_and_skips_missed_slots() {
        let mut p = Pacer::new(s(1));
        assert_eq!(p.due(), s(0));
        p.sent(s(0));
        assert_eq!(p.due(), s(1));
        p.sent(s(1));
        assert_eq!(p.due(), s(2));
        // Stalled until t=10: one request now, the next a beat later; no burst of eight.
        p.sent(s(10));
        assert_eq!(p.due(), s(11));
    }

    #[test]
    fn honours_retry_after_then_backs_off_exponentially() {
        let mut p = Pacer::new(s(1));
        p.sent(s(0));
        assert_eq!(p.answered(s(0), true, Some(s(30))), Some(s(30)));
        assert_eq!(p.due(), s(30));
        assert_eq!(p.backoff(s(5)), s(25));
        // Without Retry-After: every x 2^n for the n-th 429 in a row.
        let mut p = Pacer::new(s(1));
        assert_eq!(p.answered(s(0), true, None), Some(s(2)));
        assert_eq!(p.answered(s(2), true, None), Some(s(4)));
        assert_eq!(p.answered(s(6), true, None), Some(s(8)));
        assert_eq!(p.due(), s(14));
        // Another answer resets the doubling.
        assert_eq!(p.answered(s(14), false, None), None);
        assert_eq!(p.backoff(s(14)), Duration::ZERO);
        assert_eq!(p.answered(s(15), true, None), Some(s(2)));
    }

    #[test]
    fn backoff_is_bounded_both_ways() {
        let mut p = Pacer::new(s(10));
        // A Retry-After shorter than the probe's own beat does not speed it up.
        assert_eq!(
            p.answered(s(0), true, Some(Duration::from_millis(1))),
            Some(s(10))
        );
        for _ in 0..40 {
            p.answered(s(0), true, None);
        }
        assert_eq!(p.answered(s(0), true, None), Some(MAX_BACKOFF));
    }

    #[test]
    fn a_backoff_runs_out() {
        let mut p = Pacer::new(s(1));
        p.sent(s(0));
        assert_eq!(p.answered(s(0), true, Some(s(30))), Some(s(30)));
        assert_eq!(p.backoff(s(10)), s(20));
        // Sent again when due; the gauge falls to zero whether or not an answer comes.
        assert_eq!(p.due(), s(30));
        assert_eq!(p.backoff(s(30)), Duration::ZERO);
        p.sent(s(30));
        // Its answer, after `due` and before the next send, finds the backoff over.
        let answered = Duration::from_millis(30_500);
        assert_eq!(p.answered(answered, false, None), None);
        assert_eq!(p.backoff(answered), Duration::ZERO);
        // A later 429 holds off for its own wait, not the old one.
        assert_eq!(p.answered(s(40), true, Some(s(5))), Some(s(5)));
        assert_eq!(p.backoff(s(40)), s(5));
    }
}
