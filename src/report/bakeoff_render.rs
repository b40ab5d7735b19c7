//! Renders the bake-off table: the terminal table, `bakeoff.html` (the table, then the
//! overlaid charts), and the two files written into the bake-off folder.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ReportError;
use super::bakeoff::{BakeoffColumn, BakeoffTable, TargetRow};
use super::charts;
use super::fmt;
use super::template::render;
use crate::metrics::Summary;
use crate::rundir::AtomicFile;

/// The bake-off's JSON, next to the targets' run folders.
pub const BAKEOFF_JSON: &str = "bakeoff.json";
pub const BAKEOFF_HTML: &str = "bakeoff.html";

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

fn amplification(v: f64) -> String {
    format!("{v:.2}x")
}

fn seconds(v: f64) -> String {
    fmt::seconds(v)
}

/// A row's cells in column order, each with whether it is the column's best.
fn cells(r: &TargetRow) -> Vec<(String, bool)> {
    let errors: u64 = r.errors.values().sum();
    let value = |c: BakeoffColumn| -> String {
        match c {
            BakeoffColumn::P50 => opt(r.p50_ms, fmt::ms),
            BakeoffColumn::P99 => opt(r.p99_ms, fmt::ms),
            BakeoffColumn::TtftP99 => opt(r.ttft_p99_ms, fmt::ms),
            BakeoffColumn::Availability => fmt::pct(r.availability),
            BakeoffColumn::FailoverSuccess => opt(r.failover_success, fmt::pct),
            BakeoffColumn::TimeToFailover => opt(r.time_to_failover_s, seconds),
            BakeoffColumn::TimeToRecover => opt(r.time_to_recover_s, seconds),
            BakeoffColumn::OutageP99 => format!(
                "{} / {}",
                opt(r.outage_p99_ms, fmt::ms),
                opt(r.outside_p99_ms, fmt::ms)
            ),
            BakeoffColumn::RetryAmplification => opt(r.retry_amplification, amplification),
            BakeoffColumn::Errors => fmt::count(errors),
            BakeoffColumn::Cost => opt(r.cost_per_million_requests_usd, fmt::usd),
        }
    };
    BakeoffColumn::ALL
        .iter()
        .map(|c| (value(*c), r.best.contains(c.key())))
        .collect()
}

const HEADERS: [&str; 11] = [
    "p50",
    "p99",
    "ttft p99",
    "avail",
    "failover",
    "to fail over",
    "to recover",
    "p99 outage / outside",
    "retry amp",
    "errors",
    "$ / 1M req",
];

/// The table as the terminal shows it: one line per target, `*` marking each column's best,
/// then each target's SLA checks and errors by kind.
pub fn bakeoff_terminal(t: &BakeoffTable) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        ["target", "verdict"]
            .into_iter()
            .chain(HEADERS)
            .map(str::to_string)
            .collect(),
    ];
    for r in &t.targets {
        let mut line = vec![r.name.clone(), fmt::status(r.verdict).to_uppercase()];
        line.extend(
            cells(r)
                .into_iter()
                .map(|(v, best)| if best { format!("{v} *") } else { v }),
        );
        rows.push(line);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("bake-off: {} (seed {})\n", t.scenario, t.seed);
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str("* best in its column; p99 outage / outside: the affected classes during the fault windows and outside them\n");
    for r in &t.targets {
        let checks: Vec<String> = r
            .checks
            .iter()
            .map(|c| {
                let scope = if c.scope == "overall" {
                    String::new()
                } else {
                    format!(" ({})", c.scope)
                };
                format!(
                    "{}{scope} {} {}",
                    c.name,
                    fmt::status(c.status),
                    c.measured
                        .map_or_else(|| "–".to_string(), |m| fmt::in_unit(m, &c.unit))
                )
            })
            .collect();
        out.push_str(&format!("{}: {}\n", r.name, checks.join(", ")));
        if !r.errors.is_empty() {
            let errors: Vec<String> = r
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {}", fmt::count(*n)))
                .collect();
            out.push_str(&format!("  errors: {}\n", errors.join(", ")));
        }
        out.push_str(&format!("  run folder: {}\n", r.run_dir));
    }
    let decides = match &t.required {
        Some(name) => format!("`{name}` decides"),
        None => "every target decides".to_string(),
    };
    out.push_str(&format!(
        "bake-off verdict: {} ({decides})\n",
        if t.passed { "PASS" } else { "FAIL" }
    ));
    out
}

#[derive(Serialize)]
struct BakeoffHtmlRow<'a> {
    name: &'a str,
    target: &'a str,
    run_dir: &'a str,
    verdict: &'static str,
    cells: Vec<(String, bool)>,
    checks: Vec<(String, String, &'static str, String)>,
    errors: String,
}

#[derive(Serialize)]
struct BakeoffHtmlContext<'a> {
    table: &'a BakeoffTable,
    headers: [&'static str; 11],
    rows: Vec<BakeoffHtmlRow<'a>>,
    charts: charts::BakeoffCharts,
}

/// `bakeoff.html`: the table with each column's best marked, each target's checks, then the
/// overlaid latency chart and who served each target's traffic.
pub fn bakeoff_html(t: &BakeoffTable, summaries: &[&Summary]) -> Result<String, ReportError> {
    let named: Vec<(&str, &Summary)> = t
        .targets
        .iter()
        .zip(summaries)
        .map(|(r, s)| (r.name.as_str(), *s))
        .collect();
    let rows = t
        .targets
        .iter()
        .map(|r| BakeoffHtmlRow {
            name: &r.name,
            target: &r.target,
            run_dir: &r.run_dir,
            verdict: fmt::status(r.verdict),
            cells: cells(r),
            checks: r
                .checks
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.scope.clone(),
                        fmt::status(c.status),
                        c.measured
                            .map_or_else(|| "–".to_string(), |m| fmt::in_unit(m, &c.unit)),
                    )
                })
                .collect(),
            errors: r
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {}", fmt::count(*n)))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    render(
        "bakeoff.html.j2",
        &BakeoffHtmlContext {
            table: t,
            headers: HEADERS,
            rows,
            charts: charts::render_bakeoff(&named)?,
        },
    )
}

/// Writes `bakeoff.json` and `bakeoff.html` into `dir`, each atomically; returns their paths.
pub fn write_bakeoff(
    t: &BakeoffTable,
    summaries: &[&Summary],
    dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    let json = serde_json::to_vec_pretty(t).map_err(|e| ReportError::render("bakeoff.json", e))?;
    let html = bakeoff_html(t, summaries)?;
    let mut written = Vec::new();
    for (name, bytes) in [(BAKEOFF_JSON, json), (BAKEOFF_HTML, html.into_bytes())] {
        let path = dir.join(name);
        let mut file = AtomicFile::create(&path)?;
        std::io::Write::write_all(&mut file, &bytes).map_err(|e| ReportError::io(&path, e))?;
        written.push(file.commit()?);
    }
    Ok(written)
}
