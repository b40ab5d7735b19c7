//! `index.html`: the run report page, from its view model and the rendered charts.

use serde::Serialize;

use super::ReportError;
use super::charts::Charts;
use super::template::render;
use super::view::ReportView;

#[derive(Serialize)]
struct IndexContext<'a> {
    v: &'a ReportView,
    charts: &'a Charts,
}

pub fn render_report(view: &ReportView, charts: &Charts) -> Result<String, ReportError> {
    render("index.html.j2", &IndexContext { v: view, charts })
}
