//! Charts that lay several runs of one scenario over each other (a bake-off): each target's
//! p99 latency on one clock, with the fault windows of the first run shaded (every target ran
//! the same timeline).

use super::time::{LineChart, runs, x_end};
use super::{LATENCY_KEYS, sla_targets};
use crate::metrics::{Percentiles, Summary};
use crate::report::ReportError;

/// p99 latency over time, one line per named run; None when no run answered anything.
pub fn latency_p99(
    named: &[(&str, &Summary)],
    size: super::Size,
) -> Result<Option<String>, ReportError> {
    let Some((_, first)) = named.first() else {
        return Ok(None);
    };
    let lines: Vec<(String, super::time::Runs)> = named
        .iter()
        .map(|(name, s)| {
            let series: Vec<Option<Percentiles>> =
                s.intervals.iter().map(|iv| iv.overall.latency_ms).collect();
            (format!("{name} p99"), runs(s, &series, |p| p.p99))
        })
        .collect();
    if lines.iter().all(|(_, r)| r.is_empty()) {
        return Ok(None);
    }
    let targets: Vec<_> = sla_targets(first, LATENCY_KEYS)
        .into_iter()
        .filter(|t| t.class.is_none())
        .collect();
    let peak = lines
        .iter()
        .flat_map(|(_, r)| r.iter().flatten().map(|(_, v)| *v))
        .chain(targets.iter().map(|t| t.bound_ms))
        .fold(0.0, f64::max);
    let chart = LineChart {
        lines: &lines,
        targets: &targets,
        faults: first,
        x_max: named.iter().map(|(_, s)| x_end(s)).fold(0.0, f64::max),
        peak,
        y_label: "p99 latency (ms)",
        title: "p99 latency over time, per target",
        y_decimals: 0,
    };
    chart.render(size).map(Some)
}
