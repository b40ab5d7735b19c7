//! Charts over the run's clock: latency percentiles of the answers, throughput and errors,
//! and which upstream served the traffic — each with the fault windows shaded and labelled.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{
    Chart, FAULT, INK_COLOR, LATENCY_KEYS, SUCCESS, draw_legend, draw_mesh, draw_targets, err,
    error_color, finish, font, plot, series_color, sla_targets, with_legend_room,
};
use crate::metrics::{Percentiles, Summary};
use crate::report::ReportError;

pub(super) fn step(s: &Summary) -> f64 {
    if s.interval_s > 0.0 {
        s.interval_s
    } else {
        1.0
    }
}

/// The x range covers every interval and every fault window.
pub(super) fn x_end(s: &Summary) -> f64 {
    let dt = step(s);
    let last = s.intervals.last().map(|i| i.t_s + dt).unwrap_or(0.0);
    let faults = s.faults.iter().map(|f| f.end_s).fold(0.0, f64::max);
    last.max(faults).max(s.duration_s).max(dt)
}

pub(super) fn secs(v: &f64) -> String {
    format!("{v:.0}s")
}

/// Shades each fault window and writes what it was at its top.
pub(super) fn draw_faults(
    chart: &mut Chart<'_, '_>,
    s: &Summary,
    y_top: f64,
) -> Result<(), ReportError> {
    for f in &s.faults {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(f.start_s, 0.0), (f.end_s, y_top)],
                FAULT.mix(0.16).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{} {}", f.upstream, f.kind),
                (f.start_s + step(s) * 0.15, y_top * 0.985),
                font(16).color(&INK_COLOR.mix(0.85)),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Reads one percentile out of a set.
pub(super) type Pick = fn(&Percentiles) -> f64;

/// Pieces of one line, each a run of (time, value) points.
pub(super) type Runs = Vec<Vec<(f64, f64)>>;

/// Runs of consecutive intervals that answered something, as (mid-interval time, value): an
/// interval where nothing succeeded has no latency, so the line breaks there instead of
/// diving to zero or bridging the outage.
pub(super) fn runs(s: &Summary, series: &[Option<Percentiles>], get: Pick) -> Runs {
    let dt = step(s);
    split_runs(s.intervals.iter().zip(series).map(|(iv, p)| {
        (
            iv.t_s + dt / 2.0,
            p.filter(|p| p.samples > 0).map(|p| get(&p)),
        )
    }))
}

/// Splits (time, value) points into runs at each missing value: a gap breaks the line.
pub(super) fn split_runs(points: impl IntoIterator<Item = (f64, Option<f64>)>) -> Runs {
    let mut out: Runs = Vec::new();
    let mut open = false;
    for (t, v) in points {
        match v {
            Some(v) => {
                if !open {
                    out.push(Vec::new());
                    open = true;
                }
                if let Some(run) = out.last_mut() {
                    run.push((t, v));
                }
            }
            None => open = false,
        }
    }
    out
}

/// Draws one line in pieces; a piece of one interval is a dot, so a lone answer still shows.
pub(super) fn draw_runs(
    chart: &mut Chart<'_, '_>,
    runs: &Runs,
    name: &str,
    color: RGBColor,
) -> Result<(), ReportError> {
    for (i, run) in runs.iter().enumerate() {
        let drawn = chart
            .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
            .map_err(err)?;
        // One legend entry per line, not per piece.
        if i == 0 {
            drawn.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        }
        if run.len() == 1 {
            chart
                .draw_series(run.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// p50, p90 and p99 of the successful requests in each interval; a class with its own latency
/// objective also gets its p99 line, under its dashed target.
pub fn latency(s: &Summary, size: super::Size, floor: f64) -> Result<Option<String>, ReportError> {
    let overall: Vec<Option<Percentiles>> =
        s.intervals.iter().map(|iv| iv.overall.latency_ms).collect();
    if !overall.iter().flatten().any(|p| p.samples > 0) {
        return Ok(None);
    }
    let targets = sla_targets(s, LATENCY_KEYS);
    let lines: [(&str, Pick); 3] = [("p50", |p| p.p50), ("p90", |p| p.p90), ("p99", |p| p.p99)];
    let mut drawn: Vec<(String, Runs)> = lines
        .iter()
        .map(|(name, get)| (name.to_string(), runs(s, &overall, *get)))
        .collect();
    for class in targets.iter().filter_map(|t| t.class.as_ref()) {
        let series: Vec<Option<Percentiles>> = s
            .intervals
            .iter()
            .map(|iv| iv.classes.get(class).and_then(|c| c.latency_ms))
            .collect();
        drawn.push((format!("{class} p99"), runs(s, &series, |p| p.p99)));
    }
    let peak = drawn
        .iter()
        .flat_map(|(_, runs)| runs.iter().flatten().map(|(_, v)| *v))
        .chain(targets.iter().map(|t| t.bound_ms))
        .fold(floor, f64::max);
    let chart = LineChart {
        lines: &drawn,
        targets: &targets,
        faults: s,
        x_max: x_end(s),
        peak,
        y_label: "latency (ms)",
        title: "Latency percentiles over time",
        y_decimals: 0,
    };
    chart.render(size).map(Some)
}

/// Lines of milliseconds over the run's clock, broken where an interval had no answer, under
/// dashed SLA targets, with the fault windows of `faults` shaded: the latency chart of one
/// run, and of several laid over each other.
pub(super) struct LineChart<'a> {
    pub lines: &'a [(String, Runs)],
    pub targets: &'a [super::Target],
    pub faults: &'a Summary,
    pub x_max: f64,
    /// The highest value drawn, targets included.
    pub peak: f64,
    pub y_label: &'a str,
    pub title: &'a str,
    /// Decimals of the y axis' labels: none for milliseconds, two for CPU cores.
    pub y_decimals: usize,
}

impl LineChart<'_> {
    pub(super) fn render(&self, size: super::Size) -> Result<String, ReportError> {
        let entries = self.lines.len() + self.targets.len();
        let y_top = with_legend_room(self.peak * 1.05, entries, size.1);
        let mut buf = String::new();
        {
            let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
            let mut chart = plot(&root, 0.0..self.x_max, 0.0..y_top, 12)?;
            draw_mesh(
                &mut chart,
                "time (s)",
                self.y_label,
                &secs,
                &|v| format!("{v:.prec$}", prec = self.y_decimals),
                12,
            )?;
            draw_faults(&mut chart, self.faults, y_top)?;
            for (i, (name, runs)) in self.lines.iter().enumerate() {
                draw_runs(&mut chart, runs, name, series_color(i))?;
            }
            draw_targets(&mut chart, self.targets, (0.0, self.x_max), "p99")?;
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
            root.present().map_err(err)?;
        }
        Ok(finish(buf, self.title))
    }
}

/// One band of a stacked chart: the name and its value in each interval.
struct Layer {
    name: String,
    color: RGBColor,
    values: Vec<f64>,
}

/// Stacks layers as step-shaped polygons (each interval is a bucket, not a point).
fn draw_stacked(
    chart: &mut Chart<'_, '_>,
    starts: &[f64],
    dt: f64,
    layers: &[Layer],
) -> Result<(), ReportError> {
    let mut base = vec![0.0; starts.len()];
    for layer in layers {
        let top: Vec<f64> = base.iter().zip(&layer.values).map(|(b, v)| b + v).collect();
        let mut outline = Vec::with_capacity(starts.len() * 4);
        for (t, y) in starts.iter().zip(&top) {
            outline.push((*t, *y));
            outline.push((*t + dt, *y));
        }
        for (t, y) in starts.iter().zip(&base).rev() {
            outline.push((*t + dt, *y));
            outline.push((*t, *y));
        }
        let color = layer.color;
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.8).filled(),
            )))
            .map_err(err)?
            .label(layer.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        base = top;
    }
    Ok(())
}

fn stacked_chart(
    s: &Summary,
    size: super::Size,
    layers: &[Layer],
    y_top: f64,
    y_desc: &str,
    y_fmt: &dyn Fn(&f64) -> String,
    label: &str,
) -> Result<String, ReportError> {
    let dt = step(s);
    let starts: Vec<f64> = s.intervals.iter().map(|i| i.t_s).collect();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let mut chart = plot(&root, 0.0..x_end(s), 0.0..y_top, 12)?;
        draw_mesh(&mut chart, "time (s)", y_desc, &secs, y_fmt, 12)?;
        draw_stacked(&mut chart, &starts, dt, layers)?;
        // Fault windows over the bands, as outlines plus labels, so the stack stays readable.
        for f in &s.faults {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(f.start_s, 0.0), (f.end_s, y_top)],
                    FAULT.mix(0.9).stroke_width(2),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{} {}", f.upstream, f.kind),
                    (f.start_s + dt * 0.15, y_top * 0.985),
                    font(16),
                )))
                .map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf, label))
}

pub fn throughput(
    s: &Summary,
    size: super::Size,
    floor: f64,
) -> Result<Option<String>, ReportError> {
    if s.intervals.iter().all(|i| i.overall.requests == 0) {
        return Ok(None);
    }
    let dt = step(s);
    let kinds: Vec<String> = s
        .intervals
        .iter()
        .flat_map(|i| {
            i.overall
                .errors
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, _)| k.clone())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut layers = vec![Layer {
        name: "success".into(),
        color: SUCCESS,
        values: s
            .intervals
            .iter()
            .map(|i| i.overall.successes as f64 / dt)
            .collect(),
    }];
    for (n, kind) in kinds.iter().enumerate() {
        layers.push(Layer {
            name: kind.clone(),
            color: error_color(n),
            values: s
                .intervals
                .iter()
                .map(|i| i.overall.errors.get(kind).copied().unwrap_or(0) as f64 / dt)
                .collect(),
        });
    }
    // Dropped requests are neither a success nor an error kind the client saw, but they count.
    if s.intervals.iter().any(|i| i.overall.dropped > 0) {
        layers.push(Layer {
            name: "dropped".into(),
            color: RGBColor(120, 113, 108),
            values: s
                .intervals
                .iter()
                .map(|i| i.overall.dropped as f64 / dt)
                .collect(),
        });
    }
    let peak = (0..s.intervals.len())
        .map(|i| layers.iter().map(|l| l.values[i]).sum::<f64>())
        .fold(floor, f64::max);
    let svg = stacked_chart(
        s,
        size,
        &layers,
        with_legend_room(peak, layers.len(), size.1),
        "requests / s",
        &|v| format!("{v:.0}"),
        "Throughput and errors over time",
    )?;
    Ok(Some(svg))
}

pub fn served_by(s: &Summary, size: super::Size) -> Result<Option<String>, ReportError> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for iv in &s.intervals {
        for (name, n) in &iv.overall.served_by {
            *totals.entry(name.as_str()).or_default() += n;
        }
    }
    if totals.values().all(|n| *n == 0) {
        return Ok(None);
    }
    // Biggest first, so the primary sits at the bottom of the stack.
    let mut names: Vec<(&str, u64)> = totals.into_iter().filter(|(_, n)| *n > 0).collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let layers: Vec<Layer> = names
        .iter()
        .enumerate()
        .map(|(n, (name, _))| Layer {
            name: (*name).to_string(),
            color: series_color(n),
            values: s
                .intervals
                .iter()
                .map(|iv| {
                    let all: u64 = iv.overall.served_by.values().sum();
                    let mine = iv.overall.served_by.get(*name).copied().unwrap_or(0);
                    if all == 0 {
                        0.0
                    } else {
                        mine as f64 * 100.0 / all as f64
                    }
                })
                .collect(),
        })
        .collect();
    let svg = stacked_chart(
        s,
        size,
        &layers,
        with_legend_room(100.0, layers.len(), size.1),
        "share of responses (%)",
        // The room above 100% holds the legend, not data.
        &|v| {
            if *v <= 100.0 {
                format!("{v:.0}%")
            } else {
                String::new()
            }
        },
        "Which upstream served the traffic over time",
    )?;
    Ok(Some(svg))
}
