//! `summary.md`: the verdict and key tables in GitHub-flavoured Markdown, for CI job pages.

use serde::Serialize;

use super::ReportError;
use super::template::render;
use super::view::ReportView;

#[derive(Serialize)]
struct Ctx<'a> {
    v: &'a ReportView,
}

pub fn render_summary(view: &ReportView) -> Result<String, ReportError> {
    render("summary.md.j2", &Ctx { v: view })
}
