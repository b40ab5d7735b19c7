//! Report writers: everything a person or CI reads after a run — `index.html` with inline SVG
//! charts, `summary.md`, `junit.xml`, CSV time series, the raw request log — rendered from
//! `Summary` alone, plus the run-to-run comparison.

mod atomic;
mod charts;
mod compare;
mod compare_render;
mod error;
mod fmt;
mod hlog;
mod html;
mod junit;
mod load;
mod markdown;
mod raw;
mod template;
mod terminal;
mod timeseries;
mod view;

use std::path::{Path, PathBuf};

use crate::metrics::Summary;

pub use atomic::{AtomicFile, write_atomic};
pub use compare::{Comparison, Direction, MetricDelta, compare};
pub use compare_render::{compare_html, compare_markdown, compare_terminal};
pub use error::ReportError;
pub use hlog::{HlogEntry, read_hlog};
pub use load::load_summary;
pub use raw::{RawRequest, RawRequestWriter};
pub use terminal::render as terminal_summary;

/// The file names a run folder holds.
pub const SUMMARY_JSON: &str = "summary.json";
pub const INDEX_HTML: &str = "index.html";
pub const SUMMARY_MD: &str = "summary.md";
pub const JUNIT_XML: &str = "junit.xml";
pub const TIMESERIES_CSV: &str = "timeseries.csv";
pub const REQUESTS_CSV: &str = "requests.csv";
pub const LATENCY_HLOG: &str = "latency.hlog";
pub const COMPARE_MD: &str = "compare.md";
pub const COMPARE_HTML: &str = "compare.html";

/// Writes `summary.json`, `index.html`, `summary.md`, `junit.xml` and `timeseries.csv` into
/// `dir` (created if missing), each atomically; returns the paths written.
pub fn write_all(summary: &Summary, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let json = serde_json::to_vec_pretty(summary).map_err(|e| ReportError::Render {
        what: SUMMARY_JSON,
        message: e.to_string(),
    })?;
    let view = view::build(summary);
    let charts = charts::render_all(summary)?;
    let html = html::render_report(&view, &charts)?;
    let md = markdown::render_summary(&view)?;
    let junit = junit::render(summary)?;
    let csv = timeseries::render(summary)?;
    Ok(vec![
        write_atomic(&dir.join(SUMMARY_JSON), &json)?,
        write_atomic(&dir.join(INDEX_HTML), html.as_bytes())?,
        write_atomic(&dir.join(SUMMARY_MD), md.as_bytes())?,
        write_atomic(&dir.join(JUNIT_XML), &junit)?,
        write_atomic(&dir.join(TIMESERIES_CSV), &csv)?,
    ])
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
