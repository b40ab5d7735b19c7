//! The minijinja environment every page is rendered with: the embedded templates, the
//! stylesheet inlined into HTML pages so each stands alone offline, and the filters.

use minijinja::{Environment, Value};
use serde::Serialize;

use super::ReportError;

const CSS: &str = include_str!("templates/style.css");
const INDEX: &str = include_str!("templates/index.html.j2");
const COMPARE: &str = include_str!("templates/compare.html.j2");
const SUMMARY_MD: &str = include_str!("templates/summary.md.j2");
const COMPARE_MD: &str = include_str!("templates/compare.md.j2");
const BAKEOFF: &str = include_str!("templates/bakeoff.html.j2");
const CAPACITY: &str = include_str!("templates/capacity.html.j2");

/// Template names end in their output type, which is what turns HTML escaping on or off.
fn environment() -> Result<Environment<'static>, ReportError> {
    let mut env = Environment::new();
    env.add_filter("cell", |s: String| cell(&s));
    for (name, src) in [
        ("index.html.j2", INDEX),
        ("compare.html.j2", COMPARE),
        ("summary.md.j2", SUMMARY_MD),
        ("compare.md.j2", COMPARE_MD),
        ("bakeoff.html.j2", BAKEOFF),
        ("capacity.html.j2", CAPACITY),
    ] {
        env.add_template(name, src)
            .map_err(|e| ReportError::render("templates", e))?;
    }
    Ok(env)
}

/// Markdown table cells must not break the table.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
