//! The capacity curve: one small chart per measure against the offered rate, a point per
//! probe coloured by its verdict (with its 95% interval where the measure has one), and the
//! capacity each search found marked.

use plotters::prelude::*;

use super::{Size, draw_legend, draw_mesh, err, finish, plot};
use crate::capacity::{CapacityResult, Probe, Verdict};
use crate::metrics::SlaKey;
use crate::report::ReportError;
use crate::report::fmt;

const PASS: RGBColor = RGBColor(34, 160, 107);
const FAIL: RGBColor = RGBColor(220, 38, 38);
const UNRESOLVED: RGBColor = RGBColor(217, 119, 6);
const INVALID: RGBColor = RGBColor(120, 113, 108);
const MARK: RGBColor = super::SLA_LINE;

fn color(v: Verdict) -> RGBColor {
    match v {
        Verdict::Pass => PASS,
        Verdict::Fail => FAIL,
        Verdict::Unresolved => UNRESOLVED,
        Verdict::Invalid => INVALID,
    }
}

/// The charts of a capacity search.
#[derive(Debug, Default, serde::Serialize)]
pub struct CapacityCharts {
    pub achieved: Option<String>,
    pub tail: Option<String>,
    pub availability: Option<String>,
    pub goodput: Option<String>,
}

/// One point: offered rate, value, its interval, the probe's verdict, and whether the probe
/// ran with the scenario's faults (filled) or without (hollow).
type Point = (f64, f64, Option<(f64, f64)>, Verdict, bool);

/// A probe's value on one chart, and its interval where it has one.
type ProbeValue<'a> = &'a dyn Fn(&Probe) -> Option<(f64, Option<(f64, f64)>)>;

/// A probe's 95% interval on a ratio check of the whole run, turned from the share that
/// missed into the share that met it.
fn ratio_interval(p: &Probe, key: SlaKey) -> Option<(f64, f64)> {
    p.checks
        .iter()
        .find(|c| c.name == key && c.scope == "overall")
        .and_then(|c| c.miss_share_interval)
        .map(|[lo, hi]| (1.0 - hi, 1.0 - lo))
}

fn points(r: &CapacityResult, pick: ProbeValue<'_>) -> Vec<Point> {
    r.searches
        .iter()
        .flat_map(|s| {
            s.probes.iter().filter_map(move |p| {
                let x = p.offered_rps?;
                let (y, iv) = pick(p)?;
                Some((x, y, iv, p.verdict, s.faults))
            })
        })
        .collect()
}

pub fn render(r: &CapacityResult, size: Size) -> Result<CapacityCharts, ReportError> {
    let achieved = points(r, &|p| Some((p.achieved_rps, None)));
    let tail_is_ttft = r
        .searches
        .iter()
        .flat_map(|s| &s.probes)
        .any(|p| p.ttft_p99_ms.is_some());
    let tail = points(r, &|p| {
        let v = if tail_is_ttft {
            p.ttft_p99_ms
        } else {
            p.p99_latency_ms
        };
        v.map(|v| (v, None))
    });
    let availability = points(r, &|p| {
        Some((p.availability, ratio_interval(p, SlaKey::Availability)))
    });
    let goodput = points(r, &|p| {
        Some((p.goodput, ratio_interval(p, SlaKey::Goodput)))
    });
    // Finer than fmt::pct, which floors: on an axis spanning 99.9%..100% every tick would read
    // the same.
    let pct = |v: &f64| format!("{:.2}%", v * 100.0);
    let plain = |v: &f64| format!("{v:.0}");
    Ok(CapacityCharts {
        achieved: chart(
            r,
            &achieved,
            size,
            "achieved (successful req/s)",
            &plain,
            true,
            "Achieved against offered rate, per probe",
        )?,
        tail: chart(
            r,
            &tail,
            size,
            if tail_is_ttft {
                "TTFT p99 (ms)"
            } else {
                "latency p99 (ms)"
            },
            &plain,
            false,
            "p99 against offered rate, per probe",
        )?,
        availability: chart(
            r,
            &availability,
            size,
            "availability",
            &pct,
            false,
            "Availability against offered rate, per probe, with its 95% interval",
        )?,
        goodput: chart(
            r,
            &goodput,
            size,
            "goodput (share of requests)",
            &pct,
            false,
            "Goodput against offered rate, per probe, with its 95% interval",
        )?,
    })
}

#[allow(clippy::too_many_arguments)]
fn chart(
    r: &CapacityResult,
    pts: &[Point],
    size: Size,
    y_desc: &str,
    y_fmt: &dyn Fn(&f64) -> String,
    diagonal: bool,
    label: &str,
) -> Result<Option<String>, ReportError> {
    if pts.is_empty() {
        return Ok(None);
    }
    let x_max = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 1.08;
    let y_hi = pts
        .iter()
        .map(|p| p.2.map_or(p.1, |iv| iv.1.max(p.1)))
        .fold(0.0, f64::max);
    let y_lo = pts
        .iter()
        .map(|p| p.2.map_or(p.1, |iv| iv.0.min(p.1)))
        .fold(f64::MAX, f64::min);
    // Ratios zoom in on where they moved; rates and times start at zero.
    let (y0, y1) = if y_hi <= 1.0 && y_lo >= 0.0 && !diagonal && y_desc != "TTFT p99 (ms)" {
        let lo = (y_lo - (y_hi - y_lo).max(0.002) * 0.2).max(0.0);
        (lo, (y_hi + (y_hi - lo) * 0.15).min(1.0).max(lo + 0.001))
    } else {
        (
            0.0,
            (if diagonal { y_hi.max(x_max) } else { y_hi }) * 1.12 + 1e-9,
        )
    };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let mut c = plot(&root, 0.0..x_max, y0..y1, 30)?;
        draw_mesh(
            &mut c,
            "offered rate (req/s)",
            y_desc,
            &|v| format!("{v:.0}"),
            y_fmt,
            6,
        )?;
        if diagonal {
            c.draw_series(LineSeries::new(
                [(0.0, 0.0), (x_max, x_max)],
                super::GRID.mix(0.5).stroke_width(1),
            ))
            .map_err(err)?;
        }
        for s in &r.searches {
            if let Some(cap) = s.capacity_rps {
                let name = format!(
                    "capacity {} ({})",
                    fmt::rate(cap),
                    if s.faults { "with faults" } else { "no faults" }
                );
                c.draw_series(LineSeries::new(
                    [(cap, y0), (cap, y1)],
                    MARK.stroke_width(if s.faults { 2 } else { 1 }),
                ))
                .map_err(err)?
                .label(name)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], MARK.stroke_width(2)));
            }
        }
        for (x, y, iv, v, faults) in pts {
            let col = color(*v);
            if let Some((lo, hi)) = iv {
                c.draw_series(std::iter::once(PathElement::new(
                    vec![(*x, *lo), (*x, *hi)],
                    col.stroke_width(2),
                )))
                .map_err(err)?;
            }
            let style = if *faults {
                col.filled()
            } else {
                col.stroke_width(2)
            };
            c.draw_series(std::iter::once(Circle::new((*x, *y), 5, style)))
                .map_err(err)?;
        }
        for v in [Verdict::Pass, Verdict::Fail, Verdict::Unresolved] {
            if pts.iter().any(|p| p.3 == v) {
                let col = color(v);
                c.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                    .map_err(err)?
                    .label(v.as_str())
                    .legend(move |(x, y)| Circle::new((x + 9, y), 5, col.filled()));
            }
        }
        // Rates and tails rise to the right, ratios hang down from 100%: the legend goes where
        // the points are not.
        let corner = if diagonal || y0 == 0.0 {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::LowerLeft
        };
        draw_legend(&mut c, corner)?;
        root.present().map_err(err)?;
    }
    Ok(Some(finish(buf, label)))
}
