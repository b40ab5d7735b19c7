//! Compiling `[capacity]`: the search's settings, each checked where it is written, so a bad
//! bound is refused before any probe runs.

use super::load::MAX_RATE;
use super::model::CapacitySettings;
use super::raw::RawCapacitySearch;
use crate::config::Check;

/// The narrowest and widest bracket a search may aim for, as a share of the capacity.
pub const TOLERANCE_RANGE: (f64, f64) = (0.0, 0.5);

pub fn compile(c: &mut Check<'_>, raw: Option<&RawCapacitySearch>) -> CapacitySettings {
    let Some(raw) = raw else {
        return CapacitySettings::default();
    };
    let rate = |c: &mut Check<'_>, v: &Option<toml::Spanned<f64>>, key: &str| {
        let v = v.as_ref()?;
        let r = c.number_in(v, &format!("capacity.{key}"), 0.0..=MAX_RATE)?;
        if r <= 0.0 {
            c.error(
                v.span(),
                format!("capacity.{key}"),
                "a rate must be more than 0 requests per second",
            );
            return None;
        }
        Some(r)
    };
    let min = rate(c, &raw.min, "min");
    let max = rate(c, &raw.max, "max");
    let at_least = rate(c, &raw.at_least, "at_least");
    if let (Some(lo), Some(hi), Some(span)) = (min, max, raw.max.as_ref().map(|m| m.span()))
        && lo > hi
    {
        c.error(
            span,
            "capacity.max",
            format!("{hi} is below capacity.min ({lo}); the search needs min <= max"),
        );
    }
    let tolerance = raw.tolerance.as_ref().and_then(|v| {
        let t = c.ratio(v, "capacity.tolerance")?;
        let (lo, hi) = TOLERANCE_RANGE;
        if t <= lo || t > hi {
            c.error(
                v.span(),
                "capacity.tolerance",
                format!(
                    "{}% is out of range; a bracket of more than 0% and at most {}% of the capacity",
                    t * 100.0,
                    hi * 100.0
                ),
            );
            return None;
        }
        Some(t)
    });
    let budget = raw
        .budget
        .as_ref()
        .and_then(|v| c.positive_duration(v, "capacity.budget"));
    let probe_duration = raw
        .probe_duration
        .as_ref()
        .and_then(|v| c.positive_duration(v, "capacity.probe_duration"));
    CapacitySettings {
        min,
        max,
        tolerance,
        budget,
        probe_duration,
        at_least,
    }
}
