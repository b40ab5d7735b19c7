//! Readable units in config files ("500ms", "99.9%", distributions): their raw shapes and
//! the parsers that turn them into typed values.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A number written either bare (`0.25`) or as text (`"250ms"`, `"99.9%"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawNum {
    Number(f64),
    Text(String),
}

impl std::fmt::Display for RawNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawNum::Number(n) => write!(f, "{n}"),
            RawNum::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// A distribution as written: a single value, or a table naming the shape.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawDist {
    Fixed(RawNum),
    Shaped(RawDistTable),
}

/// `{ dist = "lognormal", median = "120ms", p99 = "600ms" }` and its siblings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDistTable {
    /// `fixed`, `uniform`, `normal` or `lognormal`.
    pub dist: String,
    pub value: Option<RawNum>,
    pub min: Option<RawNum>,
    pub max: Option<RawNum>,
    pub mean: Option<RawNum>,
    pub stddev: Option<RawNum>,
    pub median: Option<RawNum>,
    pub p99: Option<RawNum>,
}

/// A non-negative random quantity. Samples never go below zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "dist", rename_all = "lowercase")]
pub enum Dist {
    Fixed {
        value: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    Normal {
        mean: f64,
        stddev: f64,
    },
    /// Given as median and p99 because that is how people describe latency.
    LogNormal {
        median: f64,
        p99: f64,
    },
}

/// z-score of the 99th percentile of a standard normal.
const Z_P99: f64 = 2.326_347_874_040_841;

impl Dist {
    pub fn fixed(value: f64) -> Self {
        Dist::Fixed { value }
    }

    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        use rand_distr::Distribution;
        let v = match *self {
            Dist::Fixed { value } => value,
            Dist::Uniform { min, max } => {
                if max > min {
                    rand_distr::Uniform::new(min, max).map_or(min, |u| u.sample(rng))
                } else {
                    min
                }
            }
            Dist::Normal { mean, stddev } => {
                rand_distr::Normal::new(mean, stddev).map_or(mean, |n| n.sample(rng))
            }
            Dist::LogNormal { median, p99 } => {
                let mu = median.ln();
                let sigma = (p99 / median).ln() / Z_P99;
                rand_distr::LogNormal::new(mu, sigma).map_or(median, |d| d.sample(rng))
            }
        };
        v.max(0.0)
    }

    /// The expected value, for totals (a cost estimate): what many draws average to.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Fixed { value } => value,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::Normal { mean, .. } => mean.max(0.0),
            Dist::LogNormal { median, p99 } => {
                let sigma = (p99 / median).ln() / Z_P99;
                median * (sigma * sigma / 2.0).exp()
            }
        }
    }

    /// The typical value, used where one number has to stand for the distribution.
    pub fn median(&self) -> f64 {
        match *self {
            Dist::Fixed { value } => value,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            Dist::Normal { mean, .. } => mean.max(0.0),
            Dist::LogNormal { median, .. } => median,
        }
    }
}

/// A distribution of durations (stored in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DurationDist(pub Dist);

impl DurationDist {
    pub fn fixed(d: Duration) -> Self {
        Self(Dist::fixed(d.as_secs_f64()))
    }

    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        Duration::from_secs_f64(self.0.sample(rng).min(MAX_DURATION.as_secs_f64()))
    }

    pub fn median(&self) -> Duration {
        Duration::from_secs_f64(self.0.median().min(MAX_DURATION.as_secs_f64()))
    }
}

/// Nothing gauntlet schedules needs more than a day; longer is a typo (or a 100-year "duration").
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses "500ms", "2s", "1m 30s", "1.5s".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write it like \"500ms\", \"2s\" or \"1m\"".into());
    }
    let d = if let Some(num) = t.strip_suffix('s').filter(|n| n.contains('.')) {
        // humantime has no fractions; "1.5s" is common enough to accept.
        let secs: f64 = num.trim().parse().map_err(|_| {
            format!("`{text}` is not a duration; write it like \"500ms\" or \"1.5s\"")
        })?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("`{text}` is not a valid duration"));
        }
        Duration::from_secs_f64(secs.min(MAX_DURATION.as_secs_f64() * 2.0))
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!("`{text}` is not a duration ({e}); write it like \"500ms\", \"2s\" or \"1m\"")
        })?
    };
    if d > MAX_DURATION {
        return Err(format!(
            "`{text}` is longer than the {} limit",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// Parses "99.9%" (or a bare fraction 0.999) into a fraction in [0, 1].
pub fn parse_ratio(raw: &RawNum) -> Result<f64, String> {
    let v = match raw {
        RawNum::Number(n) => *n,
        RawNum::Text(t) => {
            let Some(p) = t.trim().strip_suffix('%') else {
                return Err(format!(
                    "`{t}` is not a percentage; write it like \"99.9%\" or as a fraction like 0.999"
                ));
            };
            let pct: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{t}` is not a percentage; write it like \"99.9%\""))?;
            pct / 100.0
        }
    };
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(format!("{raw} is outside 0%..100%"));
    }
    Ok(v)
}

#[derive(Clone, Copy)]
pub(super) enum DistUnit {
    Duration,
    Number,
}

fn value_of(raw: &RawNum, unit: DistUnit, field: &str) -> Result<f64, String> {
    let v = match (raw, unit) {
        (RawNum::Number(n), DistUnit::Number) => *n,
        (RawNum::Text(t), DistUnit::Duration) => parse_duration(t)?.as_secs_f64(),
        (RawNum::Number(n), DistUnit::Duration) => {
            return Err(format!(
                "`{field}` = {n} has no unit; write a duration like \"{n}ms\" or \"{n}s\""
            ));
        }
        (RawNum::Text(t), DistUnit::Number) => {
            return Err(format!("`{field}` = {t:?} must be a plain number"));
        }
    };
    if !v.is_finite() || v < 0.0 {
        return Err(format!("`{field}` = {raw} must be a finite number >= 0"));
    }
    Ok(v)
}

pub(super) fn compile_dist(raw: &RawDist, unit: DistUnit) -> Result<Dist, String> {
    let t = match raw {
        RawDist::Fixed(n) => return Ok(Dist::fixed(value_of(n, unit, "value")?)),
        RawDist::Shaped(t) => t,
    };
    let need = |v: &Option<RawNum>, field: &str| -> Result<f64, String> {
        match v {
            Some(n) => value_of(n, unit, field),
            None => Err(format!("a `{}` distribution needs `{field}`", t.dist)),
        }
    };
    let d = match t.dist.as_str() {
        "fixed" => Dist::fixed(need(&t.value, "value")?),
        "uniform" => {
            let (min, max) = (need(&t.min, "min")?, need(&t.max, "max")?);
            if min > max {
                return Err(format!("uniform needs min <= max (min {min}, max {max})"));
            }
            Dist::Uniform { min, max }
        }
        "normal" => Dist::Normal {
            mean: need(&t.mean, "mean")?,
            stddev: need(&t.stddev, "stddev")?,
        },
        "lognormal" => {
            let (median, p99) = (need(&t.median, "median")?, need(&t.p99, "p99")?);
            if median <= 0.0 || p99 < median {
                return Err("lognormal needs 0 < median <= p99".into());
            }
            Dist::LogNormal { median, p99 }
        }
        other => {
            let all = ["fixed", "uniform", "normal", "lognormal"];
            let hint = super::error::did_you_mean(other, all)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown distribution `{other}`{hint}; use one of fixed, uniform, normal, lognormal"
            ));
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("100years").is_err());
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn ratios() {
        assert!((parse_ratio(&RawNum::Text("99.9%".into())).unwrap() - 0.999).abs() < 1e-12);
        assert_eq!(parse_ratio(&RawNum::Number(0.5)), Ok(0.5));
        assert!(parse_ratio(&RawNum::Text("101%".into())).is_err());
        assert!(parse_ratio(&RawNum::Number(f64::NAN)).is_err());
    }

    #[test]
    fn lognormal_hits_its_median_and_p99() {
        let d = Dist::LogNormal {
            median: 0.1,
            p99: 0.5,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut v: Vec<f64> = (0..20_000).map(|_| d.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        let (med, p99) = (v[10_000], v[19_800]);
        assert!((med - 0.1).abs() < 0.01, "median {med}");
        assert!((p99 - 0.5).abs() < 0.08, "p99 {p99}");
    }

    #[test]
    fn dist_errors_name_the_problem() {
        let raw = RawDist::Shaped(RawDistTable {
            dist: "lognormel".into(),
            value: None,
            min: None,
            max: None,
            mean: None,
            stddev: None,
            median: None,
            p99: None,
        });
        let e = compile_dist(&raw, DistUnit::Duration).unwrap_err();
        assert!(e.contains("did you mean `lognormal`"), "{e}");
        let e =
            compile_dist(&RawDist::Fixed(RawNum::Number(100.0)), DistUnit::Duration).unwrap_err();
        assert!(e.contains("has no unit"), "{e}");
    }
}
