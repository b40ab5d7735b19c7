//! The statistics behind a probe's verdict: a Wilson score interval on the share of samples
//! that missed a promise, and which side of the allowed share it lies on.

/// Two-sided 95%: each verdict is wrong at most 2.5% of the time from sampling alone.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of a proportion of `k` in `n` (0..=1 both ends). Unlike the
/// normal approximation it stays inside 0..1 and is honest at 0 misses, which is the common
/// case for a promise like 99.9%.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = k.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Where an interval of the miss share lies against the share a promise allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Entirely at or below the allowed share: the promise holds.
    Within,
    /// Entirely above it: the promise is broken.
    Beyond,
    /// It straddles the allowed share: more samples are needed to tell.
    Straddles,
}

pub fn side(interval: (f64, f64), allowed: f64) -> Position {
    let (lo, hi) = interval;
    if hi <= allowed {
        Position::Within
    } else if lo > allowed {
        Position::Beyond
    } else {
        Position::Straddles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_hand_computed_intervals() {
        // 0 of 100: upper bound z²/(n + z²) = 3.8415 / 103.8415.
        let (lo, hi) = wilson(0, 100, Z_95);
        assert!(lo.abs() < 1e-12, "{lo}");
        assert!((hi - 0.036_994).abs() < 1e-5, "{hi}");
        // 10 of 100 (a textbook case): 0.0552 .. 0.1744.
        let (lo, hi) = wilson(10, 100, Z_95);
        assert!((lo - 0.055_2).abs() < 1e-4, "{lo}");
        assert!((hi - 0.174_4).abs() < 1e-4, "{hi}");
        // All missed: the interval reaches 1, and its lower bound is z²-symmetric to 0 of n.
        let (lo, hi) = wilson(100, 100, Z_95);
        assert_eq!(hi, 1.0);
        assert!((lo - (1.0 - 0.036_994)).abs() < 1e-5, "{lo}");
        assert_eq!(wilson(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn a_promise_is_decided_only_when_the_interval_is_on_one_side() {
        // p99 <= bound allows 1% over it. 0 of 1,000 over: within. 0 of 200: cannot tell.
        assert_eq!(side(wilson(0, 1000, Z_95), 0.01), Position::Within);
        assert_eq!(side(wilson(0, 200, Z_95), 0.01), Position::Straddles);
        // 50 of 1,000 over (5%): beyond. 12 of 1,000 (1.2%): straddles.
        assert_eq!(side(wilson(50, 1000, Z_95), 0.01), Position::Beyond);
        assert_eq!(side(wilson(12, 1000, Z_95), 0.01), Position::Straddles);
        // Exactly on the allowed share is within (the promise says "at most"), at either end.
        assert_eq!(side((0.0, 0.01), 0.01), Position::Within);
        assert_eq!(side((0.01, 0.05), 0.01), Position::Straddles);
        assert_eq!(side((0.010_001, 0.05), 0.01), Position::Beyond);
    }
}
