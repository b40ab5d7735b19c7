//! Charts on a "nines" axis: x = 1/(1-p) on a log scale, labelled 90%, 99%, 99.9%..., so the
//! tail gets as much room as the median — the latency spectrum per class, and TTFT, TTFOT,
//! TPOT and inter-token gaps for streams.

use plotters::prelude::*;

use super::{
    ITL_KEYS, LATENCY_KEYS, TPOT_KEYS, TTFOT_KEYS, TTFT_KEYS, Target, draw_legend, draw_mesh,
    draw_targets, err, finish, plot, series_color, sla_targets, with_legend_room,
};
use crate::metrics::{Percentiles, Summary};
use crate::report::ReportError;
use crate::report::fmt;

/// Position on the nines axis: 0 at p=0, 1 at 90%, 2 at 99%, 3 at 99.9%.
fn nines(p: f64) -> Option<f64> {
    (0.0..100.0)
        .contains(&p)
        .then(|| (1.0 / (1.0 - p / 100.0)).log10())
}

fn axis_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    fmt::percentile_label((p * 10_000.0).round() / 10_000.0)
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

fn draw(
    size: (u32, u32),
    floor: f64,
    series: &[Series],
    sla: (&str, &[Target]),
    y_desc: &str,
    label: &str,
) -> Result<Option<String>, ReportError> {
    let series: Vec<&Series> = series.iter().filter(|s| !s.points.is_empty()).collect();
    if series.is_empty() {
        return Ok(None);
    }
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, _)| *x))
        .fold(3.0f64, f64::max)
        .ceil();
    // Always from p0, so every chart's nines line up at the same places.
    let x_min = 0.0;
    let peak = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, y)| *y))
        .fold(floor, f64::max)
        .max(sla.1.iter().map(|t| t.bound_ms).fold(0.0, f64::max));
    let y_top = with_legend_room(peak * 1.05, series.len() + sla.1.len(), size.1);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let mut chart = plot(&root, x_min..x_max, 0.0..y_top, 40)?;
        // One label per nine: 0%, 90%, 99%, 99.9%...
        let labels = x_max as usize + 1;
        draw_mesh(
            &mut chart,
            "percentile",
            y_desc,
            &axis_label,
            &|v| format!("{v:.0}"),
            labels,
        )?;
        for (i, s) in series.iter().enumerate() {
            let color = series_color(i);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(err)?;
        }
        draw_targets(&mut chart, sla.1, (x_min, x_max), sla.0)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(err)?;
    }
    Ok(Some(finish(buf, label)))
}

/// Latency at many percentiles per class, from each class's `latency_spectrum`.
pub fn spectrum(s: &Summary, size: super::Size, floor: f64) -> Result<Option<String>, ReportError> {
    let series: Vec<Series> = s
        .classes
        .iter()
        .map(|c| Series {
            name: c.name.clone(),
            points: c
                .latency_spectrum
                .iter()
                .filter_map(|(p, ms)| nines(*p).map(|x| (x, *ms)))
                .collect(),
        })
        .collect();
    draw(
        size,
        floor,
        &series,
        ("p99", &sla_targets(s, LATENCY_KEYS)),
        "latency (ms)",
        "Latency by percentile, per class",
    )
}

#[derive(Debug, Clone, Copy)]
pub enum StreamMetric {
    Ttft,
    Itl,
    Ttfot,
    Tpot,
}

/// TTFT or inter-token gaps per streaming class, from the percentiles the summary keeps.
pub fn stream_metric(s: &Summary, which: StreamMetric) -> Result<Option<String>, ReportError> {
    let pick = |st: &crate::metrics::Stats| match which {
        StreamMetric::Ttft => st.ttft_ms,
        StreamMetric::Itl => st.itl_ms,
        StreamMetric::Ttfot => st.ttfot_ms,
        StreamMetric::Tpot => st.tpot_ms,
    };
    let points = |p: &Percentiles| -> Vec<(f64, f64)> {
        [(50.0, p.p50), (90.0, p.p90), (99.0, p.p99), (99.9, p.p999)]
            .iter()
            .filter_map(|(q, v)| nines(*q).map(|x| (x, *v)))
            .collect()
    };
    let series: Vec<Series> = s
        .classes
        .iter()
        .filter(|c| c.stream)
        .filter_map(|c| {
            pick(&c.stats).filter(|p| p.samples > 0).map(|p| Series {
                name: c.name.clone(),
                points: points(&p),
            })
        })
        .collect();
    let sla = match which {
        StreamMetric::Ttft => ("TTFT p99", sla_targets(s, TTFT_KEYS)),
        StreamMetric::Itl => ("ITL p99", sla_targets(s, ITL_KEYS)),
        StreamMetric::Ttfot => ("TTFOT p99", sla_targets(s, TTFOT_KEYS)),
        StreamMetric::Tpot => ("TPOT p99", sla_targets(s, TPOT_KEYS)),
    };
    let (desc, label) = match which {
        StreamMetric::Ttft => (
            "time to first token (ms)",
            "Time to first token by percentile, streaming classes",
        ),
        StreamMetric::Itl => (
            "gap between tokens (ms)",
            "Inter-token gap by percentile, streaming classes",
        ),
        StreamMetric::Ttfot => (
            "time to first output token (ms)",
            "Time to first output token by percentile, streaming classes",
        ),
        StreamMetric::Tpot => (
            "time per output token (ms)",
            "Time per output token by percentile, streaming classes",
        ),
    };
    // Drawn narrower: these two sit side by side, and their text must stay readable.
    draw(super::HALF, 0.0, &series, (sla.0, &sla.1), desc, label)
}
