//! The `[[requests]]` keys about what a class sends beyond one prompt: datasets, synthetic
//! lengths, token budgets, tools and extra fields, sessions; compiled into a `Workload`.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use toml::Spanned;

use super::raw::RawRequest;
use crate::config::{Check, Dist, RawDist, RawNum};
use crate::workload::{
    Dataset, DatasetFormat, Order, PromptSource, SessionSpec, Workload, check_tools,
};

/// Token counts beyond this are typos, not prompts.
const MAX_TOKENS: f64 = 1_000_000.0;
/// A session longer than this is a runaway, not a conversation.
const MAX_TURNS: f64 = 1000.0;

/// The compiled keys: the workload and a fixed `max_tokens`, if it is one.
pub(super) struct Compiled {
    pub workload: Workload,
    pub max_tokens: Option<u32>,
}

/// `dataset` is the `dataset` key's path, resolved against the scenario's folder.
pub(super) fn compile(
    c: &mut Check<'_>,
    i: usize,
    r: &RawRequest,
    dataset_path: Option<&Path>,
) -> Option<Compiled> {
    let key = |k: &str| format!("requests[{i}].{k}");
    let mut ok = true;
    let mut workload = Workload::default();

    if let Some(t) = &r.tokenizer {
        match c.encoding(t, &key("tokenizer")) {
            Some(e) => workload.encoding = e,
            None => ok = false,
        }
    }

    match (&r.dataset, &r.prompt_tokens) {
        (Some(d), Some(_)) => {
            c.error(
                d.span(),
                key("dataset"),
                "set either `dataset` or `prompt_tokens` (synthetic prompts), not both",
            );
            ok = false;
        }
        (Some(d), None) => {
            if let Some(m) = r
                .prompt
                .as_ref()
                .map(Spanned::span)
                .or(r.messages.as_ref().map(Spanned::span))
            {
                c.error(
                    m,
                    key("prompt"),
                    "a dataset class takes its messages from the dataset; remove `prompt`/`messages`",
                );
                ok = false;
            }
            match dataset_path.and_then(|p| dataset(c, i, r, d, p)) {
                Some(ds) => workload.source = PromptSource::Dataset(Arc::new(ds)),
                None => ok = false,
            }
        }
        (None, Some(p)) => {
            if let Some(prompt) = &r.prompt {
                c.error(
                    prompt.span(),
                    key("prompt"),
                    "`prompt_tokens` generates the user message; use `messages` for a prefix (a system prompt)",
                );
                ok = false;
            }
            match tokens(c, p, &key("prompt_tokens")) {
                Some(d) => workload.source = PromptSource::Synthetic(d),
                None => ok = false,
            }
        }
        (None, None) => {}
    }
    if let Some(o) = &r.order {
        match o.get_ref().as_str() {
            "random" => workload.order = Order::Random,
            "sequential" => workload.order = Order::Sequential,
            other => {
                c.error(
                    o.span(),
                    key("order"),
                    format!("unknown order {other:?}; use \"random\" or \"sequential\""),
                );
                ok = false;
            }
        }
        if r.dataset.is_none() {
            c.error(o.span(), key("order"), "only applies to a `dataset` class");
            ok = false;
        }
    }
    if let (Some(f), None) = (&r.dataset_format, &r.dataset) {
        c.error(
            f.span(),
            key("dataset_format"),
            "only applies to a `dataset` class",
        );
        ok = false;
    }

    let mut max_tokens = None;
    if let Some(m) = &r.max_tokens {
        match m.get_ref() {
            RawDist::Fixed(RawNum::Number(n)) => {
                if n.fract() == 0.0 && (1.0..=MAX_TOKENS).contains(n) {
                    max_tokens = Some(*n as u32);
                } else {
                    c.error(
                        m.span(),
                        key("max_tokens"),
                        format!("{n} is not allowed; use a whole number from 1 to {MAX_TOKENS}"),
                    );
                    ok = false;
                }
            }
            _ => match tokens(c, m, &key("max_tokens")) {
                Some(d) => workload.max_tokens = Some(d),
                None => ok = false,
            },
        }
    }

    if let Some(tools) = &r.tools {
        let v = json(tools.get_ref());
        if let Err(m) = check_tools(&v) {
            c.error(tools.span(), key("tools"), format!("tools{m}"));
            ok = false;
        }
        workload.extra.insert("tools".into(), v);
    }
    if let Some(t) = &r.tool_choice {
        if r.tools.is_none() {
            c.error(t.span(), key("tool_choice"), "needs `tools`");
            ok = false;
        }
        workload
            .extra
            .insert("tool_choice".into(), json(t.get_ref()));
    }
    if let Some(f) = &r.response_format {
        let v = json(f.get_ref());
        let kind = v.get("type").and_then(Value::as_str);
        if !matches!(kind, Some("text" | "json_object" | "json_schema")) {
            c.error(
                f.span(),
                key("response_format"),
                "needs `type` = \"text\", \"json_object\" or \"json_schema\"",
            );
            ok = false;
        }
        workload.extra.insert("response_format".into(), v);
    }
    if let Some(extra) = &r.extra_body {
        for (k, v) in extra.get_ref() {
            if matches!(
                k.as_str(),
                "model" | "messages" | "stream" | "stream_options"
            ) {
                c.error(
                    extra.span(),
                    format!("requests[{i}].extra_body.{k}"),
                    "is set by gauntlet itself; use the class's own key",
                );
                ok = false;
            }
            workload.extra.entry(k.clone()).or_insert_with(|| json(v));
        }
    }
    if let Some(s) = &r.session {
        let s = s.get_ref();
        let turns = c.number_dist(&s.turns, &key("session.turns"), MAX_TURNS);
        if turns.is_some_and(|d| !at_least_one(&d)) {
            c.error(
                s.turns.span(),
                key("session.turns"),
                "can produce sessions of no turn; every draw must be at least 1",
            );
            ok = false;
        }
        let think = match &s.think_time {
            Some(t) => c.duration_dist(t, &key("session.think_time")),
            None => Some(crate::config::DurationDist::fixed(
                std::time::Duration::ZERO,
            )),
        };
        let id_header = match &s.id_header {
            Some(h) if http::HeaderName::try_from(h.get_ref().as_str()).is_err() => {
                c.error(
                    h.span(),
                    key("session.id_header"),
                    "is not a valid HTTP header name",
                );
                ok = false;
                None
            }
            Some(h) => Some(h.get_ref().to_ascii_lowercase()),
            None => None,
        };
        match (turns, think) {
            (Some(turns), Some(think_time)) => {
                workload.session = Some(SessionSpec {
                    turns,
                    think_time,
                    id_header,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(Compiled {
        workload,
        max_tokens,
    })
}

/// A token-count distribution: every draw must be a positive count.
fn tokens(c: &mut Check<'_>, v: &Spanned<RawDist>, key: &str) -> Option<Dist> {
    let d = c.number_dist(v, key, MAX_TOKENS)?;
    if at_least_one(&d) {
        Some(d)
    } else {
        c.error(
            v.span(),
            key,
            "can produce negative or zero token counts; every draw must be at least 1 (a normal needs mean - 3 stddev >= 1)",
        );
        None
    }
}

/// Whether (practically) every draw is at least 1: a normal within three standard deviations.
fn at_least_one(d: &Dist) -> bool {
    match *d {
        Dist::Fixed { value } => value >= 1.0,
        Dist::Uniform { min, .. } => min >= 1.0,
        Dist::Normal { mean, stddev } => mean - 3.0 * stddev >= 1.0,
        Dist::LogNormal { median, .. } => median >= 1.0,
    }
}

fn json(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn dataset(
    c: &mut Check<'_>,
    i: usize,
    r: &RawRequest,
    d: &Spanned<String>,
    path: &Path,
) -> Option<Dataset> {
    let key = format!("requests[{i}].dataset");
    let format = match &r.dataset_format {
        Some(f) => match DatasetFormat::from_name(f.get_ref()) {
            Some(f) => f,
            None => {
                c.error(
                    f.span(),
                    format!("requests[{i}].dataset_format"),
                    format!(
                        "unknown format {:?}; use jsonl, sharegpt or text",
                        f.get_ref()
                    ),
                );
                return None;
            }
        },
        None => DatasetFormat::from_path(path),
    };
    match Dataset::open(path, format) {
        Ok(ds) => Some(ds),
        Err(e) => {
            let hint = if e.line.is_none() && !path.exists() {
                "; paths are relative to the scenario's folder"
            } else {
                ""
            };
            c.error(d.span(), key, format!("{e}{hint}"));
            None
        }
    }
}
