//! The retry budget: extra attempts are capped as a share of requests over a sliding window,
//! so an outage cannot turn into a retry storm against the upstreams.

use std::sync::Mutex;
use std::time::Instant;

use super::config::RetryConfig;
use super::window::Window;

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min: u64,
    /// (requests, extra attempts) per slot.
    window: Mutex<Window>,
}

impl RetryBudget {
    pub fn new(cfg: &RetryConfig) -> Self {
        Self {
            ratio: cfg.budget,
            min: u64::from(cfg.budget_min),
            window: Mutex::new(Window::new(cfg.budget_window, Instant::now())),
        }
    }

    pub fn record_request(&self, now: Instant) {
        if let Ok(mut w) = self.window.lock() {
            w.add(now, 1, 0);
        }
    }

    /// Takes one extra attempt from the budget if any is left.
    pub fn try_spend(&self, now: Instant) -> bool {
        let Ok(mut w) = self.window.lock() else {
            return false;
        };
        let (requests, extra) = w.sums(now);
        let allowed = ((requests as f64 * self.ratio) as u64).max(self.min);
        if extra < allowed {
            w.add(now, 0, 1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_extra_attempts_at_the_share_of_requests() {
        let cfg = RetryConfig {
            budget: 0.2,
            budget_min: 2,
            ..RetryConfig::default()
        };
        let b = RetryBudget::new(&cfg);
        let now = Instant::now();
        for _ in 0..100 {
            b.record_request(now);
        }
        let granted = (0..100).filter(|_| b.try_spend(now)).count();
        assert_eq!(granted, 20);
    }
}
