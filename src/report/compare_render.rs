//! Rendering a `Comparison`: an aligned terminal table, `compare.md`, and `compare.html` with
//! the two runs' charts side by side.

use serde::Serialize;

use super::charts;
use super::compare::{Comparison, Direction, MetricDelta};
use super::template::render;
use super::{ReportError, fmt};
use crate::metrics::Summary;

#[derive(Debug, Serialize)]
struct Row {
    scope: String,
    metric: &'static str,
    base: String,
    new: String,
    change: String,
    /// `regressed`, `improved`, `ok`, `info` or `n/a`: also the CSS class.
    status: &'static str,
}

fn value(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "–".into(),
        Some(v) => match unit {
            "ms" => fmt::ms(v),
            "ratio" => fmt::pct(v),
            "rps" => fmt::rate(v),
            "usd" => fmt::usd(v),
            _ => format!("{v}"),
        },
    }
}

fn row(m: &MetricDelta) -> Row {
    let change = match (m.change, m.unit) {
        (None, _) => "–".into(),
        (Some(c), "ratio") => format!("{:+.2} pp", c * 100.0),
        (Some(c), _) => format!("{:+.1}%", c * 100.0),
    };
    let status = if m.change.is_none() {
        "n/a"
    } else if m.regressed {
        "regressed"
    } else if m.improved {
        "improved"
    } else if m.direction == Direction::Informational {
        "info"
    } else {
        "ok"
    };
    Row {
        scope: m.scope.clone(),
        metric: m.metric,
        base: value(m.base, m.unit),
        new: value(m.new, m.unit),
        change,
        status,
    }
}

fn verdict(c: &Comparison) -> String {
    let n = c.regressions().count();
    let bound = fmt::percentile_label(c.max_regression * 100.0);
    if n == 0 {
        format!("no metric regressed beyond {bound}")
    } else {
        format!("{n} metric(s) regressed beyond {bound}")
    }
}

/// The comparison as an aligned plain-text table, for the terminal.
pub fn compare_terminal(c: &Comparison) -> String {
    let rows: Vec<Row> = c.metrics.iter().map(row).collect();
    let head = ["scope", "metric", "base", "new", "change", "status"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.scope.clone(),
                r.metric.to_string(),
                r.base.clone(),
                r.new.clone(),
                r.change.clone(),
                r.status.to_string(),
            ]
        })
        .collect();
    let mut width = head.map(|h| h.chars().count());
    for r in &cells {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 6]| -> String {
        let mut s = String::new();
        for (i, (col, w)) in cols.iter().zip(width).enumerate() {
            let pad = w.saturating_sub(col.chars().count());
            // Numbers right-aligned, words left-aligned.
            if (2..=4).contains(&i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(col);
            } else {
                s.push_str(col);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = format!("base: {}\nnew:  {}\n\n", c.base_label, c.new_label);
    out.push_str(&line(head));
    out.push_str(&line(
        width.map(|w| "-".repeat(w)).each_ref().map(String::as_str),
    ));
    for r in &cells {
        out.push_str(&line(r.each_ref().map(String::as_str)));
    }
    if !c.unmatched_classes.is_empty() {
        out.push_str(&format!(
            "\nnot compared: {}\n",
            c.unmatched_classes.join(", ")
        ));
    }
    for note in &c.notes {
        out.push_str(&format!("\nnote: {note}\n"));
    }
    out.push_str(&format!("\n{}\n", verdict(c)));
    out
}

#[derive(Serialize)]
struct CompareContext<'a> {
    base_label: &'a str,
    new_label: &'a str,
    bound: String,
    regressed: bool,
    verdict: String,
    rows: Vec<Row>,
    unmatched: &'a [String],
    notes: &'a [String],
    charts: Vec<ChartPair>,
}

#[derive(Serialize)]
struct ChartPair {
    title: &'static str,
    base: Option<String>,
    new: Option<String>,
}

fn context<'a>(c: &'a Comparison, charts: Vec<ChartPair>) -> CompareContext<'a> {
    CompareContext {
        base_label: &c.base_label,
        new_label: &c.new_label,
        bound: fmt::percentile_label(c.max_regression * 100.0),
        regressed: c.regressed(),
        verdict: verdict(c),
        rows: c.metrics.iter().map(row).collect(),
        unmatched: &c.unmatched_classes,
        notes: &c.notes,
        charts,
    }
}

pub fn compare_markdown(c: &Comparison) -> Result<String, ReportError> {
    render("compare.md.j2", &context(c, Vec::new()))
}

/// `compare.html`: the delta table, then each run's key charts side by side.
pub fn compare_html(c: &Comparison, base: &Summary, new: &Summary) -> Result<String, ReportError> {
    let peaks = charts::Peaks::of(base).max(charts::Peaks::of(new));
    let (b, n) = (
        charts::render_sized(base, charts::HALF, peaks)?,
        charts::render_sized(new, charts::HALF, peaks)?,
    );
    let pairs = vec![
        ChartPair {
            title: "Latency over time",
            base: b.latency,
            new: n.latency,
        },
        ChartPair {
            title: "Latency by percentile",
            base: b.spectrum,
            new: n.spectrum,
        },
        ChartPair {
            title: "Throughput and errors",
            base: b.throughput,
            new: n.throughput,
        },
        ChartPair {
            title: "Which upstream served the traffic",
            base: b.served_by,
            new: n.served_by,
        },
    ];
    render("compare.html.j2", &context(c, pairs))
}
