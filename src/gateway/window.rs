//! A sliding window of two counters in fixed time slots, shared by the breaker's error rate
//! and the retry budget: memory stays constant whatever the traffic.

use std::time::{Duration, Instant};

const SLOTS: usize = 10;

#[derive(Debug)]
pub struct Window {
    origin: Instant,
    slot_len: Duration,
    /// (slot number, first counter, second counter); a stale slot number means empty.
    slots: [(u64, u64, u64); SLOTS],
}

impl Window {
    pub fn new(span: Duration, now: Instant) -> Self {
        let slot_len = (span / SLOTS as u32).max(Duration::from_millis(1));
        Self {
            origin: now,
            slot_len,
            slots: [(u64::MAX, 0, 0); SLOTS],
        }
    }

    fn slot_of(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        (nanos / self.slot_len.as_nanos().max(1)) as u64
    }

    /// Adds to the counters of the current slot.
    pub fn add(&mut self, now: Instant, a: u64, b: u64) {
        let n = self.slot_of(now);
        let slot = &mut self.slots[(n % SLOTS as u64) as usize];
        if slot.0 != n {
            *slot = (n, 0, 0);
        }
        slot.1 += a;
        slot.2 += b;
    }

    /// Both counters summed over the window ending now.
    pub fn sums(&self, now: Instant) -> (u64, u64) {
        let n = self.slot_of(now);
        self.slots
            .iter()
            .filter(|s| s.0 != u64::MAX && s.0 <= n && n - s.0 < SLOTS as u64)
            .fold((0, 0), |acc, s| (acc.0 + s.1, acc.1 + s.2))
    }

    pub fn clear(&mut self) {
        self.slots = [(u64::MAX, 0, 0); SLOTS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_slots_fall_out() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), t0);
        w.add(t0, 3, 1);
        w.add(t0 + Duration::from_secs(5), 2, 0);
        assert_eq!(w.sums(t0 + Duration::from_secs(5)), (5, 1));
        assert_eq!(w.sums(t0 + Duration::from_millis(10_500)), (2, 0));
        assert_eq!(w.sums(t0 + Duration::from_secs(30)), (0, 0));
    }
}
