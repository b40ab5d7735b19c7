//! The plan: every load description compiled to one list of timed stages, and the arrival
//! schedule (intended send times) of its open-model stages.

use std::num::NonZeroUsize;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::scenario::{Arrival, LoadPlan, StageLoad};

/// One stage placed on the run's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStage {
    pub start: Duration,
    pub duration: Duration,
    pub load: StageLoad,
}

impl PlanStage {
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub stages: Vec<PlanStage>,
    pub warmup: Duration,
    pub max_in_flight: NonZeroUsize,
    pub timeout: Duration,
    pub interval: Duration,
    pub arrival: Arrival,
}

impl Plan {
    pub fn compile(load: &LoadPlan) -> Self {
        let mut start = Duration::ZERO;
        let stages = load
            .stages
            .iter()
            .map(|s| {
                let stage = PlanStage {
                    start,
                    duration: s.duration,
                    load: s.load.clone(),
                };
                start += s.duration;
                stage
            })
            .collect();
        Self {
            stages,
            warmup: load.warmup,
            max_in_flight: load.max_in_flight,
            timeout: load.timeout,
            interval: load.interval,
            arrival: load.arrival,
        }
    }

    pub fn total(&self) -> Duration {
        self.stages.last().map_or(Duration::ZERO, PlanStage::end)
    }

    /// Stretches (or shrinks) the whole timeline, warmup included, to last `total`.
    pub fn stretch_to(&mut self, total: Duration) {
        let old = self.total().as_secs_f64();
        if old <= 0.0 {
            return;
        }
        let factor = total.as_secs_f64() / old;
        self.warmup = self.warmup.mul_f64(factor);
        let mut start = Duration::ZERO;
        for s in &mut self.stages {
            s.duration = s.duration.mul_f64(factor);
            s.start = start;
            start += s.duration;
        }
    }

    /// The highest arrival rate of any open stage, if there is one.
    pub fn peak_rate(&self) -> Option<f64> {
        self.stages
            .iter()
            .filter_map(|s| match s.load {
                StageLoad::Rate { from, to } => Some(from.max(to)),
                StageLoad::Concurrency(_) => None,
            })
            .reduce(f64::max)
    }

    /// Scales every open-model rate so the peak becomes `peak`, keeping the ramps' shape.
    pub fn scale_rate_to(&mut self, peak: f64) {
        let Some(old) = self.peak_rate().filter(|r| *r > 0.0) else {
            return;
        };
        let factor = peak / old;
        for s in &mut self.stages {
            if let StageLoad::Rate { from, to } = &mut s.load {
                *from *= factor;
                *to *= factor;
            }
        }
    }

    /// Requests the open stages call for (expected value for Poisson arrivals).
    pub fn expected_requests(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| match s.load {
                StageLoad::Rate { from, to } => (from + to) / 2.0 * s.duration.as_secs_f64(),
                StageLoad::Concurrency(_) => 0.0,
            })
            .sum()
    }
}

/// Intended send times of one open stage, in order. The rate may ramp linearly; arrivals are
/// placed where the integrated rate crosses 1, 2, 3, ... (constant) or the running sum of
/// unit-mean exponential gaps (Poisson), so both honour ramps exactly.
#[derive(Debug)]
pub struct Arrivals {
    start: Duration,
    duration: f64,
    from: f64,
    /// Rate slope, arrivals per second per second.
    slope: f64,
    /// Arrivals the whole stage holds (its integrated rate).
    total: f64,
    /// Position in "arrival units" (integrated rate).
    next_unit: f64,
    poisson: Option<SmallRng>,
}

impl Arrivals {
    /// `seed` only matters for Poisson arrivals.
    pub fn new(stage: &PlanStage, arrival: Arrival, seed: u64) -> Self {
        let (from, to) = match stage.load {
            StageLoad::Rate { from, to } => (from.max(0.0), to.max(0.0)),
            StageLoad::Concurrency(_) => (0.0, 0.0),
        };
        let duration = stage.duration.as_secs_f64();
        let slope = if duration > 0.0 {
            (to - from) / duration
        } else {
            0.0
        };
        let mut poisson = match arrival {
            Arrival::Constant => None,
            Arrival::Poisson => Some(SmallRng::seed_from_u64(seed)),
        };
        let next_unit = match &mut poisson {
            // The first arrival comes at t = 0 for constant spacing; a Poisson process starts
            // with a gap like any other.
            None => 0.0,
            Some(rng) => exp1(rng),
        };
        Self {
            start: stage.start,
            duration,
            from,
            slope,
            total: (from + to) / 2.0 * duration,
            next_unit,
            poisson,
        }
    }

    /// Seconds into the stage at which the integrated rate reaches `u`.
    fn time_of(&self, u: f64) -> f64 {
        if u <= 0.0 {
            return 0.0;
        }
        if self.slope.abs() < 1e-12 {
            return u / self.from;
        }
        // Root of slope/2 t^2 + from t - u = 0, in the form that stays exact when slope ~ 0.
        let disc = (self.from * self.from + 2.0 * self.slope * u).max(0.0);
        2.0 * u / (self.from + disc.sqrt())
    }
}

fn exp1(rng: &mut SmallRng) -> f64 {
    // 1 - U is in (0, 1], so the logarithm is finite.
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.next_unit >= self.total || self.total <= 0.0 {
            return None;
        }
        let t = self.time_of(self.next_unit);
        if !t.is_finite() || t >= self.duration {
            return None;
        }
        self.next_unit += match &mut self.poisson {
            None => 1.0,
            Some(rng) => exp1(rng),
        };
        Some(self.start + Duration::from_secs_f64(t.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(from: f64, to: f64, secs: u64) -> PlanStage {
        PlanStage {
            start: Duration::from_secs(1),
            duration: Duration::from_secs(secs),
            load: StageLoad::Rate { from, to },
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let times: Vec<_> = Arrivals::new(&stage(10.0, 10.0, 2), Arrival::Constant, 1).collect();
        assert_eq!(times.len(), 20);
        assert_eq!(times[0], Duration::from_secs(1));
        assert!((times[1] - times[0]).as_secs_f64() - 0.1 < 1e-9);
    }

    #[test]
    fn ramp_integrates_the_rate() {
        // 0 -> 100/s over 10 s holds 500 arrivals, three quarters of them in the second half.
        let times: Vec<_> = Arrivals::new(&stage(0.0, 100.0, 10), Arrival::Constant, 1).collect();
        assert!((499..=500).contains(&times.len()), "{}", times.len());
        let late = times
            .iter()
            .filter(|t| **t >= Duration::from_secs(6))
            .count();
        assert!((370..=380).contains(&late), "{late}");
    }

    #[test]
    fn poisson_count_is_near_the_rate_and_seeded() {
        let a: Vec<_> = Arrivals::new(&stage(200.0, 200.0, 10), Arrival::Poisson, 9).collect();
        let b: Vec<_> = Arrivals::new(&stage(200.0, 200.0, 10), Arrival::Poisson, 9).collect();
        assert_eq!(a, b);
        assert!((1850..=2150).contains(&a.len()), "{}", a.len());
    }
}
