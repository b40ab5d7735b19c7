//! The search itself, without clocks or servers: which rate to probe next given what every
//! probe so far said, and when the bracket is narrow enough to stop.

/// Each bracketing step multiplies the rate by this until a probe does not pass.
const GROWTH: f64 = 2.0;
/// The bracket is never asked to be narrower than this many requests per second.
const FINEST: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: f64,
    pub max: f64,
    /// Stop when the bracket is at most this share of the highest passing rate.
    pub tolerance: f64,
}

/// Why a search needs no further probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Highest pass and lowest non-pass are within the tolerance.
    Converged,
    /// Every rate up to the maximum passed: the capacity is at least the maximum.
    AtMax,
    /// The minimum did not pass: the capacity is below it.
    BelowMin,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Probe(f64),
    Done(Settled),
}

/// What the probes so far said: which rates passed, which did not.
#[derive(Debug, Clone, Default)]
pub struct Search {
    passed: Vec<f64>,
    not_passed: Vec<f64>,
}

impl Search {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.passed.push(rate);
        } else {
            self.not_passed.push(rate);
        }
    }

    /// Forgets a pass that a rerun refuted.
    pub fn withdraw_pass(&mut self, rate: f64) {
        self.passed.retain(|&r| r != rate);
        self.not_passed.push(rate);
    }

    /// The lowest rate that did not pass.
    pub fn lowest_not_passed(&self) -> Option<f64> {
        self.not_passed.iter().copied().reduce(f64::min)
    }

    /// The highest rate that passed below every rate that did not: a pass above a failure
    /// (noise, or a system that is not monotone) does not raise the capacity.
    pub fn highest_pass(&self) -> Option<f64> {
        let ceiling = self.lowest_not_passed().unwrap_or(f64::INFINITY);
        self.passed
            .iter()
            .copied()
            .filter(|&r| r < ceiling)
            .reduce(f64::max)
    }

    /// Passes above the lowest non-pass: results that are not monotone in the rate.
    pub fn passes_above_a_failure(&self) -> Vec<f64> {
        let Some(low) = self.lowest_not_passed() else {
            return Vec::new();
        };
        self.passed.iter().copied().filter(|&r| r > low).collect()
    }

    /// The bracket is narrow enough at `pass`.
    fn narrow(bounds: &Bounds, pass: f64, fail: f64) -> bool {
        fail - pass <= FINEST.max(bounds.tolerance * pass)
    }

    pub fn next(&self, bounds: &Bounds) -> Step {
        let (pass, fail) = (self.highest_pass(), self.lowest_not_passed());
        match (pass, fail) {
            (None, None) => Step::Probe(bounds.min),
            (None, Some(_)) => Step::Done(Settled::BelowMin),
            (Some(p), None) if p >= bounds.max => Step::Done(Settled::AtMax),
            (Some(p), None) => Step::Probe((p * GROWTH).min(bounds.max)),
            (Some(p), Some(f)) if Self::narrow(bounds, p, f) => Step::Done(Settled::Converged),
            (Some(p), Some(f)) => Step::Probe(round((p + f) / 2.0)),
        }
    }
}

/// Rates are probed at 0.1 req/s steps: finer means nothing at these sample sizes.
fn round(r: f64) -> f64 {
    (r * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        min: 10.0,
        max: 1000.0,
        tolerance: 0.05,
    };

    /// Runs the search against a system that passes below `truth`.
    fn search(truth: f64, bounds: &Bounds) -> (Vec<f64>, Settled, Search) {
        let mut s = Search::new();
        let mut probed = Vec::new();
        loop {
            match s.next(bounds) {
                Step::Probe(r) => {
                    assert!(!probed.contains(&r), "probed {r} twice: {probed:?}");
                    assert!(r >= bounds.min && r <= bounds.max, "{r} outside the bounds");
                    probed.push(r);
                    s.record(r, r <= truth);
                    assert!(probed.len() < 40, "does not converge: {probed:?}");
                }
                Step::Done(why) => return (probed, why, s),
            }
        }
    }

    #[test]
    fn it_brackets_geometrically_then_bisects_to_the_tolerance() {
        let (probed, why, s) = search(333.0, &B);
        assert_eq!(why, Settled::Converged);
        assert_eq!(&probed[..6], &[10.0, 20.0, 40.0, 80.0, 160.0, 320.0]);
        assert_eq!(probed[6], 640.0);
        let (p, f) = (s.highest_pass().unwrap(), s.lowest_not_passed().unwrap());
        assert!(p <= 333.0 && f > 333.0, "bracket {p}..{f} misses the truth");
        assert!(
            f - p <= 0.05 * p,
            "bracket {p}..{f} wider than the tolerance"
        );
        // ... and it stops there: no probe is spent narrowing a bracket already within it.
        assert_eq!((p, f), (330.0, 340.0));
        assert_eq!(probed.len(), 12, "{probed:?}");
    }

    #[test]
    fn the_ends_say_so() {
        assert_eq!(search(5.0, &B).1, Settled::BelowMin);
        assert_eq!(search(5000.0, &B).1, Settled::AtMax);
        // The maximum is probed itself, not skipped past.
        assert_eq!(*search(5000.0, &B).0.last().unwrap(), 1000.0);
    }

    #[test]
    fn the_bracket_is_never_asked_below_one_request_a_second() {
        let (_, why, s) = search(12.3, &B);
        assert_eq!(why, Settled::Converged);
        let (p, f) = (s.highest_pass().unwrap(), s.lowest_not_passed().unwrap());
        assert!(f - p <= 1.0, "{p}..{f}");
    }

    #[test]
    fn a_refuted_pass_lowers_the_bracket_and_a_pass_above_a_failure_is_reported() {
        let mut s = Search::new();
        for (r, ok) in [(10.0, true), (20.0, true), (40.0, false), (30.0, true)] {
            s.record(r, ok);
        }
        assert_eq!(s.highest_pass(), Some(30.0));
        s.withdraw_pass(30.0);
        assert_eq!(s.highest_pass(), Some(20.0));
        assert_eq!(s.lowest_not_passed(), Some(30.0));
        s.record(35.0, true);
        assert_eq!(s.passes_above_a_failure(), vec![35.0]);
        assert_eq!(s.highest_pass(), Some(20.0));
    }
}
