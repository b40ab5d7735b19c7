//! `summary.md`: the verdict and key tables in GitHub-flavoured Markdown, for CI job pages.

use serde::Serialize;

use super::ReportError;
use super::template::render;
use super::view::ReportView;

#[derive(Serialize)]
struct SummaryContext<'a> {
    v: &'a ReportView,
}

pub fn render_summary(view: &ReportView) -> Result<String, ReportError> {
    render("summary.md.j2", &SummaryContext { v: view })
}
