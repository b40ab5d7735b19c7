//! Charts that lay several runs of one scenario over each other (a bake-off): each target's
//! p99 latency on one clock, with the fault windows of the first run shaded (every target ran
//! the same timeline).

use plotters::prelude::*;

use super::time::{draw_faults, draw_runs, runs, secs, x_end};
use super::{
    LATENCY_KEYS, draw_legend, draw_mesh, draw_targets, err, finish, series_color, sla_targets,
    with_legend_room,
};
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
    let y_top = with_legend_room(peak * 1.05, lines.len() + targets.len(), size.1);
    let x_max = named.iter().map(|(_, s)| x_end(s)).fold(0.0, f64::max);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)
            .map_err(err)?;
        draw_mesh(
            &mut chart,
            "time (s)",
            "p99 latency (ms)",
            &secs,
            &|v| format!("{v:.0}"),
            12,
        )?;
        draw_faults(&mut chart, first, y_top)?;
        for (i, (name, r)) in lines.iter().enumerate() {
            draw_runs(&mut chart, r, name, series_color(i))?;
        }
        draw_targets(&mut chart, &targets, (0.0, x_max), "p99")?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(Some(finish(buf, "p99 latency over time, per target")))
}
