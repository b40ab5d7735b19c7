//! What a request class sends, validated: where its prompts come from, in what order, and
//! the per-request extras (token budgets, tools, free-form fields, conversations).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::dataset::Dataset;
use crate::config::{Dist, DurationDist};
use crate::tokenizer::Encoding;

/// Where a class's prompts come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum PromptSource {
    /// The class's own `prompt` / `messages`, the same every request.
    #[default]
    Fixed,
    /// Drawn from a validated dataset; the class's keys fill what a request leaves out.
    Dataset(Arc<Dataset>),
    /// Generated text of this many tokens (the class's messages, if any, come first).
    Synthetic(Dist),
}

/// How draws walk a dataset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Seeded uniform draws: the same seed gives the same sequence.
    #[default]
    Random,
    /// File order, wrapping around.
    Sequential,
}

/// A class that is a conversation: each turn resends the whole history plus the answers.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    /// Turns per session (rounded, at least 1).
    pub turns: Dist,
    /// Pause between an answer's end and the next turn's send.
    pub think_time: DurationDist,
    /// Header carrying the session id, for gateways that keep a session on one upstream.
    pub id_header: Option<String>,
}

/// Everything about what a class sends beyond model, messages and stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    pub source: PromptSource,
    pub order: Order,
    /// `max_tokens` drawn per request (a fixed budget stays in `RequestClass::max_tokens`).
    pub max_tokens: Option<Dist>,
    /// Fields merged into every body where the request does not set them: `tools`,
    /// `tool_choice`, `response_format` and the `extra_body` table.
    pub extra: Map<String, Value>,
    pub session: Option<SessionSpec>,
    /// Vocabulary prompt tokens are counted with.
    pub encoding: Encoding,
}

impl Workload {
    /// Prompt tokens a request adds to the class's own messages, on average: `Some(0)` for a
    /// fixed prompt, the mean for synthetic ones, `None` for a dataset (its lines vary).
    pub fn prompt_tokens_mean(&self) -> Option<f64> {
        match &self.source {
            PromptSource::Fixed => Some(0.0),
            PromptSource::Synthetic(d) => Some(d.mean()),
            PromptSource::Dataset(_) => None,
        }
    }

    /// Whether every request of the class is the same bytes (the engine's pre-built path).
    pub fn is_fixed(&self) -> bool {
        matches!(self.source, PromptSource::Fixed)
            && self.max_tokens.is_none()
            && self.session.is_none()
    }
}
