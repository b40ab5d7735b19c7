//! The plan: every load description compiled to one list of timed stages, and the arrival
//! schedule (intended send times) of its open-model stages.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution;

use crate::scenario::{Arrival as Process, LoadPlan, StageLoad, Trace};

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
    pub arrival: Process,
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
                // A trace's rate is what was recorded; `--rate` leaves it alone.
                StageLoad::Concurrency(_) | StageLoad::Trace(_) => None,
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

    /// Requests the open stages call for (expected value for random arrivals).
    pub fn expected_requests(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| match &s.load {
                StageLoad::Rate { from, to } => (from + to) / 2.0 * s.duration.as_secs_f64(),
                StageLoad::Concurrency(_) => 0.0,
                StageLoad::Trace(_) => Arrivals::new(s, self.arrival, 0).count() as f64,
            })
            .sum()
    }
}

/// What one request sends apart from its class's own values: a trace line's recorded sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The recorded prompt length: the request's messages become one user message of
    /// synthetic text of this many tokens (per-message overhead included).
    pub prompt_tokens: Option<u32>,
    /// Seeds that text: the trace line's index, so every line sends its own words (a shared
    /// text would hand the provider's prefix cache hits no real traffic gets).
    pub line: u64,
    /// Replaces the class's `max_tokens` in the body.
    pub max_tokens: Option<u32>,
    /// Which of the class's requests this is, when the schedule numbers them: the content
    /// of arrival k is then the same on every machine (a shard's, or the whole run's).
    pub draw: Option<u64>,
}

/// One open-model send: when it is intended, and as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedSend {
    /// Since the run's start.
    pub at: Duration,
    /// The class a trace line names; None for the scheduler to draw one from the mix.
    pub class: Option<usize>,
    pub overrides: Overrides,
}

impl PlannedSend {
    fn drawn(at: Duration) -> Self {
        Self {
            at,
            class: None,
            overrides: Overrides::default(),
        }
    }
}

/// The arrivals of one open stage, in time order: from its rate, or from its trace.
#[derive(Debug)]
pub struct Arrivals(SendSource);

#[derive(Debug)]
enum SendSource {
    Rate(RateArrivals),
    Trace {
        trace: Arc<Trace>,
        next: usize,
        start: Duration,
        /// Stage length over the trace's own span: a stretched plan stretches the replay.
        scale: f64,
        /// Seconds into the stage; nothing is sent at or past it.
        duration: f64,
    },
}

impl Arrivals {
    /// `seed` only matters for random (Poisson, gamma) arrivals.
    pub fn new(stage: &PlanStage, process: Process, seed: u64) -> Self {
        match &stage.load {
            StageLoad::Trace(trace) => {
                let span = trace.span.as_secs_f64();
                let duration = stage.duration.as_secs_f64();
                Self(SendSource::Trace {
                    trace: trace.clone(),
                    next: 0,
                    start: stage.start,
                    scale: if span > 0.0 { duration / span } else { 1.0 },
                    duration,
                })
            }
            _ => Self(SendSource::Rate(RateArrivals::new(stage, process, seed))),
        }
    }
}

impl Iterator for Arrivals {
    type Item = PlannedSend;

    fn next(&mut self) -> Option<PlannedSend> {
        match &mut self.0 {
            SendSource::Rate(r) => r.next().map(PlannedSend::drawn),
            SendSource::Trace {
                trace,
                next,
                start,
                scale,
                duration,
            } => {
                let line = trace.lines.get(*next)?;
                let t = line.at.as_secs_f64() * *scale;
                if !t.is_finite() || t >= *duration {
                    return None;
                }
                let index = *next as u64;
                *next += 1;
                Some(PlannedSend {
                    at: *start + Duration::from_secs_f64(t.max(0.0)),
                    class: usize::try_from(line.class).ok(),
                    overrides: Overrides {
                        prompt_tokens: line.prompt_tokens,
                        max_tokens: line.max_tokens,
                        line: index,
                        draw: None,
                    },
                })
            }
        }
    }
}

/// Intended send times of one rate stage, in order. The rate may ramp linearly; arrivals are
/// placed where the integrated rate crosses 1, 2, 3, ... (constant) or the running sum of
/// unit-mean random gaps (Poisson, gamma), so every process honours ramps exactly: a gap of
/// one "arrival unit" is 1/rate seconds at the rate of the moment.
#[derive(Debug)]
pub struct RateArrivals {
    start: Duration,
    duration: f64,
    from: f64,
    /// Rate slope, arrivals per second per second.
    slope: f64,
    /// Arrivals the whole stage holds (its integrated rate).
    total: f64,
    /// Position in "arrival units" (integrated rate).
    next_unit: f64,
    gaps: Gaps,
}

/// Gaps between arrivals in arrival units, mean 1.
#[derive(Debug)]
enum Gaps {
    Constant,
    Poisson(SmallRng),
    /// Shape k = 1/cv^2 and scale 1/k: mean 1, coefficient of variation cv.
    Gamma(SmallRng, rand_distr::Gamma<f64>),
}

impl Gaps {
    fn new(process: Process, seed: u64) -> Self {
        let rng = SmallRng::seed_from_u64(seed);
        match process {
            Process::Constant => Self::Constant,
            Process::Poisson => Self::Poisson(rng),
            Process::Gamma { cv } => {
                let shape = 1.0 / (cv * cv);
                // Validation keeps cv in (0, 10]; a cv so small the shape overflows is
                // constant spacing in all but name.
                match rand_distr::Gamma::new(shape, 1.0 / shape) {
                    Ok(g) if shape.is_finite() => Self::Gamma(rng, g),
                    _ => Self::Constant,
                }
            }
        }
    }

    fn next(&mut self) -> f64 {
        match self {
            Self::Constant => 1.0,
            Self::Poisson(rng) => exp1(rng),
            Self::Gamma(rng, g) => g.sample(rng),
        }
    }
}

impl RateArrivals {
    pub fn new(stage: &PlanStage, process: Process, seed: u64) -> Self {
        let (from, to) = match stage.load {
            StageLoad::Rate { from, to } => (from.max(0.0), to.max(0.0)),
            StageLoad::Concurrency(_) | StageLoad::Trace(_) => (0.0, 0.0),
        };
        let duration = stage.duration.as_secs_f64();
        let slope = if duration > 0.0 {
            (to - from) / duration
        } else {
            0.0
        };
        let mut gaps = Gaps::new(process, seed);
        let next_unit = match gaps {
            // The first arrival comes at t = 0 for constant spacing; a random process starts
            // with a gap like any other.
            Gaps::Constant => 0.0,
            _ => gaps.next(),
        };
        Self {
            start: stage.start,
            duration,
            from,
            slope,
            total: (from + to) / 2.0 * duration,
            next_unit,
            gaps,
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

impl Iterator for RateArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.next_unit >= self.total || self.total <= 0.0 {
            return None;
        }
        let t = self.time_of(self.next_unit);
        if !t.is_finite() || t >= self.duration {
            return None;
        }
        self.next_unit += self.gaps.next();
        Some(self.start + Duration::from_secs_f64(t.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule that never ends fails its count instead of filling the machine's memory:
    /// twice the largest stage below is plenty.
    const MOST: usize = 200_000;

    fn schedule(stage: &PlanStage, process: Process, seed: u64) -> Vec<Duration> {
        RateArrivals::new(stage, process, seed).take(MOST).collect()
    }

    fn stage(from: f64, to: f64, secs: u64) -> PlanStage {
        PlanStage {
            start: Duration::from_secs(1),
            duration: Duration::from_secs(secs),
            load: StageLoad::Rate { from, to },
        }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let times = schedule(&stage(10.0, 10.0, 2), Process::Constant, 1);
        assert_eq!(times.len(), 20);
        assert_eq!(times[0], Duration::from_secs(1));
        for w in times.windows(2) {
            assert!(((w[1] - w[0]).as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        }
    }

    #[test]
    fn ramp_integrates_the_rate() {
        // 0 -> 100/s over 10 s holds 500 arrivals, three quarters of them in the second half.
        let times = schedule(&stage(0.0, 100.0, 10), Process::Constant, 1);
        assert!((499..=500).contains(&times.len()), "{}", times.len());
        let late = times
            .iter()
            .filter(|t| **t >= Duration::from_secs(6))
            .count();
        assert!((370..=380).contains(&late), "{late}");
    }

    #[test]
    fn a_ramp_from_a_nonzero_rate_places_each_arrival_where_the_integral_says() {
        // 10 -> 30/s over 2 s: the integrated rate is 10t + 5t^2, so it reaches 15 at t = 1 s
        // (t^2 + 2t - 3 = 0), and the stage holds 40 arrivals (units 0..39; unit 40 is t = 2 s).
        let up = schedule(&stage(10.0, 30.0, 2), Process::Constant, 1);
        assert_eq!(up.len(), 40);
        assert_eq!(up[0], Duration::from_secs(1));
        assert!((up[15].as_secs_f64() - 2.0).abs() < 1e-9, "{:?}", up[15]);
        // Unit 5: t^2 + 2t - 1 = 0, t = sqrt(2) - 1.
        let want = 1.0 + 2f64.sqrt() - 1.0;
        assert!((up[5].as_secs_f64() - want).abs() < 1e-9, "{:?}", up[5]);
        // 30 -> 10/s: 30t - 5t^2 reaches 25 at t = 1 s (t^2 - 6t + 5 = 0): the fast start
        // packs 25 of the 40 arrivals into the first second.
        let down = schedule(&stage(30.0, 10.0, 2), Process::Constant, 1);
        assert_eq!(down.len(), 40);
        assert!(
            (down[25].as_secs_f64() - 2.0).abs() < 1e-9,
            "{:?}",
            down[25]
        );
        for w in up.windows(2).chain(down.windows(2)) {
            assert!(w[1] > w[0], "{w:?}");
        }
    }

    #[test]
    fn a_stage_sends_its_integrated_rate_and_not_one_more_at_its_last_instant() {
        // For these ramps the time of the unit just past the stage's total rounds to a hair
        // under the stage's end (6.999999999999999 s of 7 s): the count of units, not the
        // clock, has to stop the schedule, or the stage sends one request too many.
        for (from, to, secs, want) in [(0.0, 58.0, 7, 203), (8.0, 1.0, 10, 45)] {
            let times = schedule(&stage(from, to, secs), Process::Constant, 1);
            assert_eq!(times.len(), want, "{from} -> {to}/s over {secs} s");
        }
    }

    #[test]
    fn poisson_count_is_near_the_rate_and_seeded() {
        let a: Vec<_> = schedule(&stage(200.0, 200.0, 10), Process::Poisson, 9);
        let b: Vec<_> = schedule(&stage(200.0, 200.0, 10), Process::Poisson, 9);
        assert_eq!(a, b);
        assert!((1850..=2150).contains(&a.len()), "{}", a.len());
    }

    /// Mean and coefficient of variation of the gaps between `times`.
    fn gap_stats(times: &[Duration]) -> (f64, f64) {
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn gamma_with_cv_1_spaces_like_poisson() {
        // 1000/s for 100 s: 100k gaps, so the estimates sit within a few percent.
        let times = schedule(&stage(1000.0, 1000.0, 100), Process::Gamma { cv: 1.0 }, 3);
        assert!((95_000..=105_000).contains(&times.len()), "{}", times.len());
        let (mean, cv) = gap_stats(&times);
        assert!((0.00095..=0.00105).contains(&mean), "mean gap {mean}");
        assert!((0.95..=1.05).contains(&cv), "cv {cv}");
        let (_, poisson_cv) =
            gap_stats(&schedule(&stage(1000.0, 1000.0, 100), Process::Poisson, 3));
        assert!((cv - poisson_cv).abs() < 0.05, "{cv} vs {poisson_cv}");
    }

    #[test]
    fn gamma_with_cv_3_is_bursty_at_the_same_mean_rate() {
        let times = schedule(&stage(1000.0, 1000.0, 100), Process::Gamma { cv: 3.0 }, 5);
        // The variance of a count grows with cv^2: a wider band than for Poisson.
        assert!((90_000..=110_000).contains(&times.len()), "{}", times.len());
        let (_, cv) = gap_stats(&times);
        assert!((2.6..=3.4).contains(&cv), "cv {cv}");
        // Bursts: counts per 100 ms vary about cv^2 = 9 times as much as their mean (the
        // index of dispersion of a renewal process), where Poisson's vary as much as the mean.
        let poisson: Vec<_> = schedule(&stage(1000.0, 1000.0, 100), Process::Poisson, 5);
        let bursty = dispersion(&times);
        let even = dispersion(&poisson);
        assert!((6.0..=12.0).contains(&bursty), "gamma dispersion {bursty}");
        assert!((0.7..=1.3).contains(&even), "poisson dispersion {even}");
    }

    /// Variance over mean of the counts in 100 ms bins of a 100 s stage starting at 1 s.
    fn dispersion(times: &[Duration]) -> f64 {
        let mut bins = vec![0u32; 1000];
        for t in times {
            let i = ((t.as_secs_f64() - 1.0) * 10.0) as usize;
            bins[i.min(999)] += 1;
        }
        let mean = bins.iter().map(|&c| f64::from(c)).sum::<f64>() / 1000.0;
        let var = bins
            .iter()
            .map(|&c| (f64::from(c) - mean).powi(2))
            .sum::<f64>()
            / 999.0;
        var / mean
    }

    #[test]
    fn gamma_is_seeded_and_follows_a_ramp() {
        let ramp = stage(0.0, 400.0, 20);
        let a: Vec<_> = schedule(&ramp, Process::Gamma { cv: 2.0 }, 11);
        let b: Vec<_> = schedule(&ramp, Process::Gamma { cv: 2.0 }, 11);
        let c: Vec<_> = schedule(&ramp, Process::Gamma { cv: 2.0 }, 12);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // 0 -> 400/s over 20 s holds 4000 sends, three quarters in the second half.
        assert!((3400..=4600).contains(&a.len()), "{}", a.len());
        let late = a.iter().filter(|t| **t >= Duration::from_secs(11)).count();
        let share = late as f64 / a.len() as f64;
        assert!((0.65..=0.85).contains(&share), "{share}");
    }

    #[test]
    fn a_trace_stage_replays_its_lines_stretched_with_the_stage() {
        let line = |ms: u64, class: u32, max: Option<u32>| crate::scenario::TraceLine {
            at: Duration::from_millis(ms),
            class,
            prompt_tokens: Some(7),
            max_tokens: max,
        };
        let trace = Trace {
            path: "t.jsonl".into(),
            speed: 1.0,
            span: Duration::from_secs(2),
            lines: vec![
                line(0, 1, Some(5)),
                line(500, 0, None),
                line(1500, 1, Some(9)),
                // At the stage's end: past what the stage sends, stretched or not.
                line(2000, 0, None),
            ],
        };
        let mut st = PlanStage {
            start: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            load: StageLoad::Trace(Arc::new(trace)),
        };
        let got: Vec<_> = Arrivals::new(&st, Process::Poisson, 1).take(10).collect();
        assert_eq!(
            got.iter().map(|a| a.at).collect::<Vec<_>>(),
            [1000, 1500, 2500].map(Duration::from_millis)
        );
        assert_eq!(got[0].class, Some(1));
        assert_eq!(got[1].overrides.max_tokens, None);
        assert_eq!(got[2].overrides.max_tokens, Some(9));
        assert_eq!(got[2].overrides.prompt_tokens, Some(7));
        // `--duration 4s` stretches the replay with the stage.
        st.duration = Duration::from_secs(4);
        let stretched: Vec<_> = Arrivals::new(&st, Process::Poisson, 1)
            .take(10)
            .map(|a| a.at)
            .collect();
        assert_eq!(stretched, [1000, 2000, 4000].map(Duration::from_millis));
    }

    fn load(stages: Vec<(u64, StageLoad)>) -> LoadPlan {
        LoadPlan {
            stages: stages
                .into_iter()
                .map(|(secs, load)| crate::scenario::Stage {
                    duration: Duration::from_secs(secs),
                    load,
                })
                .collect(),
            warmup: Duration::from_secs(1),
            max_in_flight: NonZeroUsize::new(7).unwrap(),
            timeout: Duration::from_secs(9),
            interval: Duration::from_millis(250),
            arrival: Process::Poisson,
            baseline: None,
        }
    }

    fn rate(from: f64, to: f64) -> StageLoad {
        StageLoad::Rate { from, to }
    }

    fn users(n: usize) -> StageLoad {
        StageLoad::Concurrency(NonZeroUsize::new(n).unwrap())
    }

    fn spans(plan: &Plan) -> Vec<(u64, u64)> {
        plan.stages
            .iter()
            .map(|s| (s.start.as_millis() as u64, s.end().as_millis() as u64))
            .collect()
    }

    #[test]
    fn stages_follow_each_other_and_stretch_with_the_run() {
        let mut plan = Plan::compile(&load(vec![
            (2, rate(10.0, 10.0)),
            (3, users(3)),
            (5, rate(0.0, 40.0)),
        ]));
        assert_eq!(spans(&plan), [(0, 2_000), (2_000, 5_000), (5_000, 10_000)]);
        assert_eq!(plan.total(), Duration::from_secs(10));
        assert_eq!(
            (plan.warmup, plan.max_in_flight.get(), plan.timeout),
            (Duration::from_secs(1), 7, Duration::from_secs(9))
        );
        assert_eq!(
            (plan.interval, plan.arrival),
            (Duration::from_millis(250), Process::Poisson)
        );
        // `--duration 20s`: every stage and the warmup twice as long, still end to end.
        plan.stretch_to(Duration::from_secs(20));
        assert_eq!(
            spans(&plan),
            [(0, 4_000), (4_000, 10_000), (10_000, 20_000)]
        );
        assert_eq!(plan.total(), Duration::from_secs(20));
        assert_eq!(plan.warmup, Duration::from_secs(2));
        // Shrinking works the same way.
        plan.stretch_to(Duration::from_secs(5));
        assert_eq!(spans(&plan), [(0, 1_000), (1_000, 2_500), (2_500, 5_000)]);
        assert_eq!(plan.warmup, Duration::from_millis(500));

        let mut empty = Plan::compile(&load(Vec::new()));
        assert_eq!(empty.total(), Duration::ZERO);
        empty.stretch_to(Duration::from_secs(5));
        assert_eq!(
            (empty.total(), empty.warmup),
            (Duration::ZERO, Duration::from_secs(1))
        );
    }

    #[test]
    fn rates_scale_to_the_peak_asked_for_keeping_the_ramps_shape() {
        let mut plan = Plan::compile(&load(vec![
            (2, rate(10.0, 30.0)),
            (3, users(3)),
            (4, rate(50.0, 20.0)),
        ]));
        assert_eq!(plan.peak_rate(), Some(50.0));
        // `--rate 100/s`: the peak doubles, so does every other rate; the users stay.
        plan.scale_rate_to(100.0);
        let loads: Vec<_> = plan.stages.iter().map(|s| s.load.clone()).collect();
        assert_eq!(loads, [rate(20.0, 60.0), users(3), rate(100.0, 40.0)]);
        assert_eq!(plan.peak_rate(), Some(100.0));

        // A plan of users only has no rate to scale.
        let mut closed = Plan::compile(&load(vec![(2, users(4))]));
        assert_eq!(closed.peak_rate(), None);
        closed.scale_rate_to(100.0);
        assert_eq!(closed.stages[0].load, users(4));
        // A rate of 0 stays 0: there is no peak to scale from.
        let mut idle = Plan::compile(&load(vec![(2, rate(0.0, 0.0))]));
        idle.scale_rate_to(100.0);
        assert_eq!(idle.stages[0].load, rate(0.0, 0.0));
    }

    #[test]
    fn expected_requests_add_up_the_open_stages() {
        let trace = Trace {
            path: "t.jsonl".into(),
            speed: 1.0,
            span: Duration::from_secs(1),
            lines: [0, 300, 600]
                .map(|ms| crate::scenario::TraceLine {
                    at: Duration::from_millis(ms),
                    class: 0,
                    prompt_tokens: None,
                    max_tokens: None,
                })
                .to_vec(),
        };
        let plan = Plan::compile(&load(vec![
            (2, rate(10.0, 30.0)),
            (3, users(3)),
            (4, rate(50.0, 20.0)),
            (1, StageLoad::Trace(Arc::new(trace))),
        ]));
        // (10 + 30) / 2 * 2 + 0 + (50 + 20) / 2 * 4 + 3 lines.
        let want = 40.0 + 140.0 + 3.0;
        assert!(
            (plan.expected_requests() - want).abs() < 1e-9,
            "{}",
            plan.expected_requests()
        );
    }
}
