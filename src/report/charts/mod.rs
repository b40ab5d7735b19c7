//! SVG charts drawn with plotters, made to sit inline in the HTML report: transparent
//! background, mid-tone series colors, and text/axes in `currentColor` so they read in light
//! and dark themes alike.

mod capacity;
mod nines;
mod overlay;
mod prompts;
mod sut;
mod time;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::RGBColor;

pub use capacity::{CapacityCharts, render as render_capacity};

use super::ReportError;
use crate::metrics::{SlaKey, Summary};

/// The charts of one report; `None` where there was nothing to draw.
#[derive(Debug, Default, serde::Serialize)]
pub struct Charts {
    pub latency: Option<String>,
    pub spectrum: Option<String>,
    pub throughput: Option<String>,
    pub served_by: Option<String>,
    pub ttft: Option<String>,
    pub itl: Option<String>,
    /// Time to first output token and time per output token, streaming classes.
    pub ttfot: Option<String>,
    pub tpot: Option<String>,
    /// How long the prompts sent were, and TTFT per prompt-length bin.
    pub prompt_lengths: Option<String>,
    pub ttft_by_prompt: Option<String>,
    /// Caption words for the dashed SLA lines each chart draws; None where it draws none.
    pub latency_sla: Option<String>,
    pub ttft_sla: Option<String>,
    pub itl_sla: Option<String>,
    pub ttfot_sla: Option<String>,
    pub tpot_sla: Option<String>,
    /// The system under test: CPU cores per part and RSS per process over time.
    pub sut_cpu: Option<String>,
    pub sut_rss: Option<String>,
}

/// The charts of a bake-off: every target's p99 latency on one clock, and who served each
/// target's traffic (one chart per target, in order).
#[derive(Debug, Default, serde::Serialize)]
pub struct BakeoffCharts {
    pub latency: Option<String>,
    pub served_by: Vec<(String, Option<String>)>,
}

pub fn render_bakeoff(named: &[(&str, &Summary)]) -> Result<BakeoffCharts, ReportError> {
    Ok(BakeoffCharts {
        latency: overlay::latency_p99(named, FULL)?,
        served_by: named
            .iter()
            .map(|(name, s)| Ok((name.to_string(), time::served_by(s, HALF)?)))
            .collect::<Result<_, ReportError>>()?,
    })
}

pub fn render_all(s: &Summary) -> Result<Charts, ReportError> {
    render_sized(s, FULL, Peaks::default())
}

/// The highest value each chart must show: two runs drawn with the same peaks share their
/// y scales, so a slower run looks slower side by side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks {
    pub latency_ms: f64,
    pub spectrum_ms: f64,
    pub rps: f64,
}

impl Peaks {
    pub fn of(s: &Summary) -> Self {
        let dt = if s.interval_s > 0.0 {
            s.interval_s
        } else {
            1.0
        };
        Peaks {
            latency_ms: s
                .intervals
                .iter()
                .filter_map(|iv| iv.overall.latency_ms.filter(|p| p.samples > 0))
                .map(|p| p.p99)
                .fold(0.0, f64::max),
            spectrum_ms: s
                .classes
                .iter()
                .flat_map(|c| c.latency_spectrum.iter())
                .filter(|(p, _)| *p < 100.0)
                .map(|(_, ms)| *ms)
                .fold(0.0, f64::max),
            rps: s
                .intervals
                .iter()
                .map(|iv| {
                    let o = &iv.overall;
                    (o.successes + o.errors.values().sum::<u64>() + o.dropped) as f64 / dt
                })
                .fold(0.0, f64::max),
        }
    }

    pub fn max(self, other: Peaks) -> Peaks {
        Peaks {
            latency_ms: self.latency_ms.max(other.latency_ms),
            spectrum_ms: self.spectrum_ms.max(other.spectrum_ms),
            rps: self.rps.max(other.rps),
        }
    }
}

/// The charts drawn at `size` pixels, each y axis reaching at least `floor`: narrower charts for
/// side-by-side layouts keep their text readable because they are scaled down less.
pub fn render_sized(s: &Summary, size: Size, floor: Peaks) -> Result<Charts, ReportError> {
    Ok(Charts {
        latency: time::latency(s, size, floor.latency_ms)?,
        spectrum: nines::spectrum(s, size, floor.spectrum_ms)?,
        throughput: time::throughput(s, size, floor.rps)?,
        served_by: time::served_by(s, size)?,
        ttft: nines::stream_metric(s, nines::StreamMetric::Ttft)?,
        itl: nines::stream_metric(s, nines::StreamMetric::Itl)?,
        ttfot: nines::stream_metric(s, nines::StreamMetric::Ttfot)?,
        tpot: nines::stream_metric(s, nines::StreamMetric::Tpot)?,
        prompt_lengths: prompts::distribution(s, size)?,
        ttft_by_prompt: prompts::ttft_by_length(s, size)?,
        latency_sla: sla_caption(&sla_targets(s, LATENCY_KEYS), "p99 latency"),
        ttft_sla: sla_caption(&sla_targets(s, TTFT_KEYS), "p99 TTFT"),
        itl_sla: sla_caption(&sla_targets(s, ITL_KEYS), "p99 inter-token gap"),
        ttfot_sla: sla_caption(
            &sla_targets(s, TTFOT_KEYS),
            "p99 time to first output token",
        ),
        tpot_sla: sla_caption(&sla_targets(s, TPOT_KEYS), "p99 time per output token"),
        sut_cpu: sut::cpu(s, size)?,
        sut_rss: sut::rss(s, size)?,
    })
}

/// Chart size in pixels (width, height).
pub type Size = (u32, u32);
/// A chart spanning the page.
pub const FULL: Size = (1100, 340);
/// One of two charts side by side.
pub const HALF: Size = (620, 360);

/// Drawn as pure black, then rewritten to `currentColor` (see `finish`).
const INK: RGBColor = RGBColor(0, 0, 0);
pub(crate) const GRID: RGBColor = RGBColor(128, 128, 128);
/// A color no series uses, rewritten to a dashed stroke (see `finish`).
pub(crate) const SLA_LINE: RGBColor = RGBColor(214, 51, 108);
const FAULT_FILL: RGBColor = RGBColor(220, 80, 60);

/// Mid-tone colors that keep contrast on white and on near-black.
const SERIES: [RGBColor; 8] = [
    RGBColor(59, 130, 246), // blue
    RGBColor(245, 158, 11), // amber
    RGBColor(16, 185, 129), // green
    RGBColor(168, 85, 247), // violet
    RGBColor(20, 184, 166), // teal
    RGBColor(236, 72, 153), // pink
    RGBColor(132, 204, 22), // lime
    RGBColor(249, 115, 22), // orange
];
const ERRORS: [RGBColor; 6] = [
    RGBColor(239, 68, 68),   // red
    RGBColor(249, 115, 22),  // orange
    RGBColor(168, 85, 247),  // violet
    RGBColor(236, 72, 153),  // pink
    RGBColor(202, 138, 4),   // dark yellow
    RGBColor(120, 113, 108), // stone
];
const OK: RGBColor = RGBColor(34, 160, 107);

pub(crate) fn series_color(i: usize) -> RGBColor {
    SERIES[i % SERIES.len()]
}

pub(crate) fn error_color(i: usize) -> RGBColor {
    ERRORS[i % ERRORS.len()]
}

pub(crate) fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&INK)
}

pub(crate) fn err(e: impl std::fmt::Display) -> ReportError {
    ReportError::render("chart", e)
}

/// `[sla]` keys whose bound is drawn on the latency, TTFT and inter-token charts.
pub(crate) const LATENCY_KEYS: &[SlaKey] = &[SlaKey::P99Latency];
pub(crate) const TTFT_KEYS: &[SlaKey] = &[SlaKey::TtftP99];
pub(crate) const TTFOT_KEYS: &[SlaKey] = &[SlaKey::TtfotP99];
pub(crate) const TPOT_KEYS: &[SlaKey] = &[SlaKey::TpotP99];
/// No `[sla]` key bounds the gap between tokens yet, so the ITL chart draws no line.
pub(crate) const ITL_KEYS: &[SlaKey] = &[];

/// One millisecond bound of the SLA, for the whole run (`class: None`) or one class.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub class: Option<String>,
    pub bound_ms: f64,
}

/// Every millisecond bound checked under one of `keys`, whole run first, then per class.
pub(crate) fn sla_targets(s: &Summary, keys: &[SlaKey]) -> Vec<Target> {
    let mut out: Vec<Target> = s
        .sla
        .checks
        .iter()
        .filter(|c| keys.contains(&c.name) && c.unit == "ms")
        .filter_map(|c| {
            let class = match c.scope.as_str() {
                "overall" => None,
                scope => Some(scope.strip_prefix("class:")?.to_string()),
            };
            Some(Target {
                class,
                bound_ms: c.target,
            })
        })
        .collect();
    out.sort_by(|a, b| a.class.cmp(&b.class));
    out
}

/// What a chart's caption says about its dashed lines; None when it draws none, so no caption
/// promises a line that is not there.
pub(crate) fn sla_caption(targets: &[Target], what: &str) -> Option<String> {
    if targets.is_empty() {
        return None;
    }
    let scopes: Vec<String> = targets
        .iter()
        .map(|t| match &t.class {
            None => "the whole run".to_string(),
            Some(c) => format!("class {c}"),
        })
        .collect();
    Some(format!(
        "dashed: the SLA's {what} bound ({})",
        scopes.join(", ")
    ))
}

/// Draws each target as a dashed line across the chart, named in the legend.
pub(crate) fn draw_targets(
    chart: &mut Chart<'_, '_>,
    targets: &[Target],
    x: (f64, f64),
    what: &str,
) -> Result<(), ReportError> {
    for t in targets {
        let name = match &t.class {
            None => format!("SLA {what} ≤ {}", super::fmt::ms(t.bound_ms)),
            Some(c) => format!("SLA {c} {what} ≤ {}", super::fmt::ms(t.bound_ms)),
        };
        chart
            .draw_series(LineSeries::new(
                [(x.0, t.bound_ms), (x.1, t.bound_ms)],
                SLA_LINE.stroke_width(2),
            ))
            .map_err(err)?
            .label(name)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], SLA_LINE.stroke_width(2)));
    }
    Ok(())
}

/// The top of a y axis that leaves room above `peak` for a legend of `entries` rows.
pub(crate) fn with_legend_room(peak: f64, entries: usize, height: u32) -> f64 {
    let plot_px = f64::from(height) - 70.0;
    let legend_px = 21.0 * entries as f64 + 34.0;
    let share = (legend_px / plot_px).min(0.6);
    (peak / (1.0 - share)).max(1.0)
}

/// Gridlines faint, axes and labels in ink.
pub(crate) type Chart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The plot area every chart uses: the same margins and label room, so the charts of a report
/// line up; `margin_right` leaves room for a last x label that overhangs.
pub(crate) fn plot<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    margin_right: u32,
) -> Result<Chart<'a, 'b>, ReportError> {
    ChartBuilder::on(root)
        .margin(12)
        .margin_right(margin_right)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

pub(crate) fn draw_mesh(
    chart: &mut Chart<'_, '_>,
    x_desc: &str,
    y_desc: &str,
    x_fmt: &dyn Fn(&f64) -> String,
    y_fmt: &dyn Fn(&f64) -> String,
    x_labels: usize,
) -> Result<(), ReportError> {
    chart
        .configure_mesh()
        .max_light_lines(2)
        .light_line_style(GRID.mix(0.08))
        .bold_line_style(GRID.mix(0.28))
        .axis_style(INK.mix(0.55))
        .label_style(font(17))
        .axis_desc_style(font(17))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .x_labels(x_labels)
        .y_labels(6)
        .draw()
        .map_err(err)
}

pub(crate) fn draw_legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), ReportError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(GRID.mix(0.12))
        .border_style(GRID.mix(0.45))
        .label_font(font(17))
        .margin(12)
        .draw()
        .map_err(err)
}

/// Turns plotters' SVG into one that sits inline: ink becomes `currentColor`, the SLA line
/// dashed, the size responsive, and the chart gets an accessible name.
pub(crate) fn finish(svg: String, label: &str) -> String {
    let ink = "#000000";
    let sla = format!("#{:02X}{:02X}{:02X}", SLA_LINE.0, SLA_LINE.1, SLA_LINE.2);
    let mut out = svg
        .replace(&format!("\"{ink}\""), "\"currentColor\"")
        .replace(
            &format!("stroke=\"{sla}\""),
            &format!("stroke=\"{sla}\" stroke-dasharray=\"9 5\""),
        );
    let label = label
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    if let Some(at) = out.find("<svg") {
        out.replace_range(
            at..at + 4,
            &format!("<svg class=\"chart\" role=\"img\" aria-label=\"{label}\""),
        );
    }
    if let Some(end) = out.find('>') {
        out.insert_str(end + 1, &format!("<title>{label}</title>"));
    }
    out
}

pub(crate) const FAULT: RGBColor = FAULT_FILL;
pub(crate) const SUCCESS: RGBColor = OK;
pub(crate) const INK_COLOR: RGBColor = INK;
