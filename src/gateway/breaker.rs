//! Per-upstream circuit breaker: opens on consecutive failures or a windowed error rate,
//! rejects traffic for a cooldown, then lets a few probes through and closes on success.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;

use super::config::BreakerConfig;
use super::window::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The gauge value exported in metrics.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
    /// (successes, failures) while closed.
    window: Window,
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
    /// Exported state: 0 closed, 1 half-open, 2 open.
    gauge: Gauge,
}

/// Permission for one attempt; report its result with [`Permit::record`]. Dropped without a
/// result (the client went away), it frees its probe slot.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig, gauge: Gauge) -> Self {
        let window = Window::new(cfg.window, Instant::now());
        Self {
            cfg,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                window,
            }),
            gauge,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        let Ok(inner) = self.inner.lock() else {
            return BreakerState::Closed;
        };
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Brings the exported gauge up to date (an open breaker turns half-open by time alone).
    pub fn refresh_gauge(&self, now: Instant) {
        self.gauge.set(self.state(now).as_gauge());
    }

    /// Whether an attempt would be admitted now (without taking a probe slot).
    pub fn available(&self, now: Instant) -> bool {
        if !self.cfg.enabled {
            return true;
        }
        let Ok(inner) = self.inner.lock() else {
            return true;
        };
        match inner.state {
            State::Closed => true,
            State::Open { until } => now >= until,
            State::HalfOpen { in_flight } => in_flight < self.cfg.half_open_probes,
        }
    }

    /// Admits one attempt, or `None` while open (or while every probe slot is taken).
    pub fn try_acquire(self: &Arc<Self>, now: Instant) -> Option<Permit> {
        if !self.cfg.enabled {
            return Some(self.permit(false));
        }
        let mut inner = self.inner.lock().ok()?;
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } if now < until => return None,
            State::Open { .. } => {
                inner.state = State::HalfOpen { in_flight: 1 };
                drop(inner);
                self.gauge.set(BreakerState::HalfOpen.as_gauge());
                return Some(self.permit(true));
            }
            State::HalfOpen { ref mut in_flight } => {
                if *in_flight >= self.cfg.half_open_probes {
                    return None;
                }
                *in_flight += 1;
                true
            }
        };
        drop(inner);
        Some(self.permit(probe))
    }

    fn permit(self: &Arc<Self>, probe: bool) -> Permit {
        Permit {
            breaker: Arc::clone(self),
            probe,
            done: false,
        }
    }

    fn record(&self, probe: bool, success: bool, now: Instant) {
        if !self.cfg.enabled {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let change = match (&mut inner.state, probe) {
            (State::HalfOpen { .. }, true) if success => {
                inner.state = State::Closed;
                inner.consecutive = 0;
                inner.window.clear();
                Some(BreakerState::Closed)
            }
            (State::HalfOpen { .. }, true) => {
                inner.state = State::Open {
                    until: now + self.cfg.cooldown,
                };
                Some(BreakerState::Open)
            }
            (State::Closed, false) => {
                if success {
                    inner.consecutive = 0;
                    inner.window.add(now, 1, 0);
                    None
                } else {
                    inner.consecutive += 1;
                    inner.window.add(now, 0, 1);
                    let (ok, failed) = inner.window.sums(now);
                    let total = ok + failed;
                    let rate_trips = total >= u64::from(self.cfg.min_requests)
                        && total > 0
                        && failed as f64 / total as f64 >= self.cfg.error_rate;
                    if inner.consecutive >= self.cfg.consecutive_failures || rate_trips {
                        inner.state = State::Open {
                            until: now + self.cfg.cooldown,
                        };
                        Some(BreakerState::Open)
                    } else {
                        None
                    }
                }
            }
            // A result from before the state changed says nothing about the new state.
            _ => None,
        };
        drop(inner);
        if let Some(s) = change {
            self.gauge.set(s.as_gauge());
        }
    }

    fn release_probe(&self) {
        if let Ok(mut inner) = self.inner.lock()
            && let State::HalfOpen { in_flight } = &mut inner.state
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }
}

impl Permit {
    pub fn record(mut self, success: bool) {
        self.done = true;
        self.breaker.record(self.probe, success, Instant::now());
        if self.probe {
            self.breaker.release_probe();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(n: u32) -> Arc<Breaker> {
        Arc::new(Breaker::new(
            BreakerConfig {
                consecutive_failures: n,
                cooldown: Duration::from_millis(50),
                ..BreakerConfig::default()
            },
            Gauge::default(),
        ))
    }

    #[test]
    fn opens_cools_down_probes_and_closes() {
        let b = breaker(3);
        let now = Instant::now();
        for _ in 0..3 {
            b.try_acquire(now).unwrap().record(false);
        }
        assert_eq!(b.state(Instant::now()), BreakerState::Open);
        assert!(b.try_acquire(Instant::now()).is_none());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.try_acquire(Instant::now()).unwrap();
        // One probe at a time.
        assert!(b.try_acquire(Instant::now()).is_none());
        probe.record(true);
        assert_eq!(b.state(Instant::now()), BreakerState::Closed);
    }

    #[test]
    fn failed_probe_reopens_and_dropped_probe_frees_its_slot() {
        let b = breaker(1);
        b.try_acquire(Instant::now()).unwrap().record(false);
        std::thread::sleep(Duration::from_millis(60));
        drop(b.try_acquire(Instant::now()).unwrap());
        let p = b.try_acquire(Instant::now()).unwrap();
        p.record(false);
        assert_eq!(b.state(Instant::now()), BreakerState::Open);
    }

    #[test]
    fn error_rate_trips_without_consecutive_failures() {
        let b = Arc::new(Breaker::new(
            BreakerConfig {
                consecutive_failures: 100,
                error_rate: 0.5,
                min_requests: 10,
                ..BreakerConfig::default()
            },
            Gauge::default(),
        ));
        for i in 0..10 {
            b.try_acquire(Instant::now()).unwrap().record(i % 2 == 0);
        }
        assert_eq!(b.state(Instant::now()), BreakerState::Open);
    }
}
