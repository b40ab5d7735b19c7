//! Charts over prompt length (log scale): how long the prompts sent were, and TTFT p50/p99 per
//! length bin, so a reader sees whether long prompts drive the tail.

use plotters::prelude::*;

use super::{
    TTFT_KEYS, draw_legend, draw_mesh, draw_targets, err, finish, plot, series_color, sla_targets,
    with_legend_room,
};
use crate::metrics::{PromptBin, Summary};
use crate::report::ReportError;
use crate::report::fmt;

/// A bin's edges on the log10 axis; the open last bin is drawn one doubling wide, and the
/// first starts at one token (log 0).
fn edges(b: &PromptBin) -> (f64, f64) {
    let lo = b.min_tokens.max(1) as f64;
    let hi = b.max_tokens.map_or(lo * 2.0, |h| h as f64);
    (lo.log10(), hi.log10())
}

fn centre(b: &PromptBin) -> f64 {
    let (lo, hi) = edges(b);
    (lo + hi) / 2.0
}

fn token_label(x: &f64) -> String {
    fmt::tokens(10f64.powf(*x).round() as u64)
}

/// The x range every bin of every class fits in, whole decades.
fn x_range(s: &Summary) -> (f64, f64) {
    let (lo, hi) = s
        .classes
        .iter()
        .flat_map(|c| c.prompt_lengths.iter().map(edges))
        .fold((f64::MAX, 0.0f64), |(lo, hi), (a, b)| {
            (lo.min(a), hi.max(b))
        });
    let lo = lo.floor().max(0.0);
    (lo, hi.ceil().max(lo + 1.0))
}

/// Requests per prompt-length bin, one bar outline per class.
pub fn distribution(s: &Summary, size: super::Size) -> Result<Option<String>, ReportError> {
    // Colored by the class's place in the summary, as in the TTFT-by-length chart.
    let classes: Vec<(usize, &crate::metrics::ClassStats)> = s
        .classes
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.prompt_lengths.is_empty())
        .collect();
    if classes.is_empty() {
        return Ok(None);
    }
    let (x_min, x_max) = x_range(s);
    let peak = classes
        .iter()
        .flat_map(|(_, c)| c.prompt_lengths.iter().map(|b| b.requests))
        .max()
        .unwrap_or(1) as f64;
    let y_top = with_legend_room(peak * 1.05, classes.len(), size.1);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let mut chart = plot(&root, x_min..x_max, 0.0..y_top, 40)?;
        draw_mesh(
            &mut chart,
            "prompt tokens (log scale)",
            "requests",
            &token_label,
            &|v| format!("{v:.0}"),
            (x_max - x_min) as usize + 1,
        )?;
        for (i, c) in &classes {
            let color = series_color(*i);
            chart
                .draw_series(c.prompt_lengths.iter().map(|b| {
                    let (lo, hi) = edges(b);
                    Rectangle::new(
                        [(lo, 0.0), (hi, b.requests as f64)],
                        color.mix(0.3).filled(),
                    )
                }))
                .map_err(err)?;
            chart
                .draw_series(c.prompt_lengths.iter().map(|b| {
                    let (lo, hi) = edges(b);
                    Rectangle::new([(lo, 0.0), (hi, b.requests as f64)], color.stroke_width(2))
                }))
                .map_err(err)?
                .label(c.name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 18, y + 6)], color.mix(0.5).filled())
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(Some(finish(buf, "Prompt length distribution, per class")))
}

/// TTFT p50 (thin) and p99 (thick) per prompt-length bin, per streaming class.
pub fn ttft_by_length(s: &Summary, size: super::Size) -> Result<Option<String>, ReportError> {
    type Line = (String, usize, bool, Vec<(f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    for (i, c) in s.classes.iter().enumerate() {
        let points = |pick: fn(&crate::metrics::Percentiles) -> f64| -> Vec<(f64, f64)> {
            c.prompt_lengths
                .iter()
                .filter_map(|b| {
                    b.ttft_ms
                        .filter(|p| p.samples > 0)
                        .map(|p| (centre(b), pick(&p)))
                })
                .collect()
        };
        let p50 = points(|p| p.p50);
        if p50.is_empty() {
            continue;
        }
        lines.push((format!("{} p50", c.name), i, false, p50));
        lines.push((format!("{} p99", c.name), i, true, points(|p| p.p99)));
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let targets = sla_targets(s, TTFT_KEYS);
    let (x_min, x_max) = x_range(s);
    let peak = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|(_, y)| *y))
        .chain(targets.iter().map(|t| t.bound_ms))
        .fold(0.0, f64::max);
    let y_top = with_legend_room(peak * 1.05, lines.len() + targets.len(), size.1);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let mut chart = plot(&root, x_min..x_max, 0.0..y_top, 40)?;
        draw_mesh(
            &mut chart,
            "prompt tokens (log scale)",
            "time to first token (ms)",
            &token_label,
            &|v| format!("{v:.0}"),
            (x_max - x_min) as usize + 1,
        )?;
        for (name, class, tail, points) in &lines {
            let color = series_color(*class);
            let width = if *tail { 3 } else { 1 };
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(width),
                ))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                });
            chart
                .draw_series(points.iter().map(|p| {
                    if *tail {
                        Circle::new(*p, 4, color.filled())
                    } else {
                        Circle::new(*p, 3, color.stroke_width(1))
                    }
                }))
                .map_err(err)?;
        }
        draw_targets(&mut chart, &targets, (x_min, x_max), "TTFT p99")?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(err)?;
    }
    Ok(Some(finish(
        buf,
        "Time to first token against prompt length, per class",
    )))
}
