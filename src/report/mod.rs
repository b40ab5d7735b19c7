//! Report writers: everything a person or CI reads after a run — `index.html` with inline SVG
//! charts, `summary.md`, `junit.xml`, the CSV time series — rendered from `Summary` alone and
//! written through the run folder's owner (`crate::rundir`), plus the run-to-run comparison
//! and the bake-off table of several targets.

mod bakeoff;
mod bakeoff_render;
mod capacity;
mod charts;
mod compare;
mod compare_render;
mod error;
pub(crate) mod fmt;
mod html;
mod junit;
mod markdown;
mod overhead;
mod sut;
mod template;
mod terminal;
mod timeseries;
mod view;

use std::path::{Path, PathBuf};

use crate::metrics::Summary;
use crate::rundir::{RunDir, RunFile};

pub use bakeoff::{
    BAKEOFF_SCHEMA_VERSION, BakeoffColumn, BakeoffEntry, BakeoffTable, CheckCell, TargetRow,
    table as bakeoff_table,
};
pub use bakeoff_render::{
    BAKEOFF_HTML, BAKEOFF_JSON, bakeoff_html, bakeoff_terminal, write_bakeoff,
};
pub use capacity::{
    CapacityDelta, capacity_compare_terminal, capacity_html, capacity_probe_line,
    capacity_terminal, compare_capacity, read_capacity, write_capacity,
};
pub use compare::{Comparison, Direction, MetricDelta, compare};
pub use compare_render::{compare_html, compare_markdown, compare_terminal};
pub use error::ReportError;
pub use terminal::render as terminal_summary;

/// Renders `index.html`, `summary.md`, `junit.xml` and `timeseries.csv` from the summary into
/// the run folder; returns the paths written. `summary.json` is not among them: the run wrote
/// it, and re-rendering leaves the evidence as it was.
pub fn write_reports(summary: &Summary, dir: &mut RunDir) -> Result<Vec<PathBuf>, ReportError> {
    let view = view::build(summary);
    let charts = charts::render_all(summary)?;
    let html = html::render_report(&view, &charts)?;
    let md = markdown::render_summary(&view)?;
    let junit = junit::render(summary)?;
    let csv = timeseries::render(summary)?;
    Ok(vec![
        dir.write(RunFile::IndexHtml, html.as_bytes())?,
        dir.write(RunFile::SummaryMd, md.as_bytes())?,
        dir.write(RunFile::JunitXml, &junit)?,
        dir.write(RunFile::Timeseries, &csv)?,
    ])
}

/// A run folder from a summary alone, in `dir` (created if missing): `summary.json` and every
/// report. For putting a run's reports somewhere else; returns the paths written.
pub fn write_all(summary: &Summary, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut run = RunDir::open(dir)?;
    let mut written = vec![run.write_summary(summary)?];
    written.extend(write_reports(summary, &mut run)?);
    Ok(written)
}

/// The Markdown summary of a run, as written to `summary.md`.
pub fn summary_markdown(summary: &Summary) -> Result<String, ReportError> {
    markdown::render_summary(&view::build(summary))
}

/// Appends the Markdown summary to the file `$GITHUB_STEP_SUMMARY` names, when it is set, so
/// the verdict shows on the CI job page. Returns the file appended to.
///
/// Kept apart from `write_all` so that re-rendering or tests never post to a CI page by accident.
pub fn append_github_step_summary(summary: &Summary) -> Result<Option<PathBuf>, ReportError> {
    let Some(target) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(target);
    let md = summary_markdown(summary)?;
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| ReportError::io(&path, e))?;
    file.write_all(format!("{md}\n").as_bytes())
        .map_err(|e| ReportError::io(&path, e))?;
    Ok(Some(path))
}
