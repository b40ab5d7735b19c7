//! Rendering the HTML pages (the run report and the comparison) from their view models with
//! embedded minijinja templates; the stylesheet is inlined so each page stands alone offline.

use minijinja::{Environment, Value};
use serde::Serialize;

use super::ReportError;
use super::charts::Charts;
use super::view::ReportView;

const CSS: &str = include_str!("templates/style.css");
const INDEX: &str = include_str!("templates/index.html.j2");
const COMPARE: &str = include_str!("templates/compare.html.j2");
const SUMMARY_MD: &str = include_str!("templates/summary.md.j2");
const COMPARE_MD: &str = include_str!("templates/compare.md.j2");

/// Template names end in their output type, which is what turns HTML escaping on or off.
fn environment() -> Result<Environment<'static>, ReportError> {
    let mut env = Environment::new();
    env.add_filter("cell", |s: String| super::markdown::cell(&s));
    for (name, src) in [
        ("index.html.j2", INDEX),
        ("compare.html.j2", COMPARE),
        ("summary.md.j2", SUMMARY_MD),
        ("compare.md.j2", COMPARE_MD),
    ] {
        env.add_template(name, src)
            .map_err(|e| ReportError::render("templates", e))?;
    }
    Ok(env)
}

pub fn render<T: Serialize>(name: &'static str, ctx: &T) -> Result<String, ReportError> {
    let env = environment()?;
    let template = env
        .get_template(name)
        .map_err(|e| ReportError::render(name, e))?;
    let mut ctx = Value::from(minijinja::value::Serde(ctx));
    if name.ends_with(".html.j2") {
        ctx = minijinja::context! { css => CSS, ..ctx };
    }
    template
        .render(ctx)
        .map_err(|e| ReportError::render(name, e))
}

#[derive(Serialize)]
struct IndexContext<'a> {
    v: &'a ReportView,
    charts: &'a Charts,
}

pub fn render_report(view: &ReportView, charts: &Charts) -> Result<String, ReportError> {
    render("index.html.j2", &IndexContext { v: view, charts })
}
