//! The LLM APIs a request class can speak, and Anthropic's Messages API as the load client
//! sends and reads it. A class's request is always built as an OpenAI chat request (the
//! workload, datasets and sessions know only that shape); another API is an encoding of it at
//! the edge, and its answers are read back into the same measures (TTFT, ITL, usage).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::openai::{PromptTokensDetails, Usage};

pub mod responses;

/// Which API a request class is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// OpenAI chat completions (`POST /v1/chat/completions`).
    #[default]
    Chat,
    /// Anthropic Messages (`POST /v1/messages`).
    Messages,
    /// OpenAI Responses (`POST /v1/responses`).
    Responses,
    /// OpenAI embeddings (`POST /v1/embeddings`): vectors, never a stream.
    Embeddings,
}

impl Api {
    pub const NAMES: &'static [&'static str] = &["chat", "messages", "responses", "embeddings"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "chat" => Some(Self::Chat),
            "messages" => Some(Self::Messages),
            "responses" => Some(Self::Responses),
            "embeddings" => Some(Self::Embeddings),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Messages => "messages",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
        }
    }

    /// The headers every request in this API carries beyond the body's type: the key where
    /// its clients put it (a bearer token, or Anthropic's `x-api-key`, marked sensitive so it
    /// is never logged) and, for Messages, `anthropic-version`. Built once per class or
    /// upstream; an error when the key cannot be a header value.
    pub fn headers(
        self,
        key: Option<&str>,
    ) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, http::header::InvalidHeaderValue> {
        let mut out = Vec::with_capacity(2);
        if let Some(key) = key {
            let (name, mut value) = match self {
                Self::Chat | Self::Responses | Self::Embeddings => (
                    http::header::AUTHORIZATION,
                    http::HeaderValue::try_from(format!("Bearer {key}"))?,
                ),
                Self::Messages => (
                    http::HeaderName::from_static(ANTHROPIC_KEY_HEADER),
                    http::HeaderValue::try_from(key)?,
                ),
            };
            value.set_sensitive(true);
            out.push((name, value));
        }
        if self == Self::Messages {
            out.push((
                http::HeaderName::from_static(ANTHROPIC_VERSION_HEADER),
                http::HeaderValue::from_static(ANTHROPIC_VERSION),
            ));
        }
        Ok(out)
    }

    /// A chat request in this API (see `chat_to_messages`, `responses::chat_to_responses`,
    /// `chat_to_embeddings`).
    pub fn encode(self, chat: Map<String, Value>) -> Result<Map<String, Value>, EncodeError> {
        match self {
            Self::Chat => Ok(chat),
            Self::Messages => chat_to_messages(chat),
            Self::Responses => responses::chat_to_responses(chat),
            Self::Embeddings => chat_to_embeddings(chat),
        }
    }

    /// The endpoint under a base URL (`http://h:p`, `.../v1`, or the endpoint itself).
    pub fn url(self, base: &str) -> String {
        let endpoint = match self {
            Self::Chat => "/chat/completions",
            Self::Messages => "/messages",
            Self::Responses => "/responses",
            Self::Embeddings => "/embeddings",
        };
        let base = base.trim_end_matches('/');
        if base.ends_with(endpoint) {
            base.to_string()
        } else if base.ends_with("/v1") {
            format!("{base}{endpoint}")
        } else {
            format!("{base}/v1{endpoint}")
        }
    }
}

/// The `anthropic-version` every Messages request carries; the API refuses requests without it.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
pub const ANTHROPIC_VERSION_HEADER: &str = "anthropic-version";
/// Anthropic's clients send the key here, not as a bearer token.
pub const ANTHROPIC_KEY_HEADER: &str = "x-api-key";

/// Chat-only fields that have no Messages meaning (or would be refused by it).
const CHAT_ONLY: &[&str] = &[
    "stream_options",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "seed",
    "parallel_tool_calls",
    "max_completion_tokens",
    // Anthropic has no JSON mode; a gateway that emulates one would have to rewrite the
    // prompt, which a measuring tool must not do behind the user's back.
    "response_format",
];

/// The key an Anthropic client sent (`x-api-key`), if any.
pub fn anthropic_key(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(ANTHROPIC_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Anthropic's `stop_reason` for a chat `finish_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The chat `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's error `type` for a status.
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

#[derive(Deserialize)]
struct OpenAiErrorShape {
    error: OpenAiErrorFields,
}

#[derive(Deserialize)]
struct OpenAiErrorFields {
    #[serde(default)]
    message: String,
}

/// An OpenAI-shaped error body answered with `status`, in Anthropic's shape (same message;
/// a body that is not OpenAI's passes as the message, cut short).
pub fn anthropic_error(status: u16, openai_body: &[u8]) -> Vec<u8> {
    let message = serde_json::from_slice::<OpenAiErrorShape>(openai_body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| {
            String::from_utf8_lossy(openai_body)
                .chars()
                .take(500)
                .collect()
        });
    let v = serde_json::json!({
        "type": "error",
        "error": {"type": anthropic_error_type(status), "message": message},
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("Anthropic's Messages API needs `max_tokens`; the request has none")]
    NoMaxTokens,
    #[error("the request has no `messages` array")]
    NoMessages,
}

impl From<EncodeError> for crate::openai::ApiError {
    /// As Anthropic words a missing field: `max_tokens: Field required`.
    fn from(e: EncodeError) -> Self {
        let param = match e {
            EncodeError::NoMaxTokens => "max_tokens",
            EncodeError::NoMessages => "messages",
        };
        Self::new(
            crate::openai::ApiErrorKind::InvalidRequest,
            format!("{param}: Field required"),
        )
        .with_param(param)
    }
}

/// A Messages request body as the chat request it asks for (see `messages_to_chat`).
pub fn messages_body_to_chat(body: &[u8]) -> Result<Map<String, Value>, crate::openai::ApiError> {
    let map: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| crate::openai::ApiError::from_json_error(&e))?;
    Ok(messages_to_chat(map)?)
}

/// The text of a chat message's content: a string, or the text of its `text` parts.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Fields of a chat request that mean the same to the embeddings API.
const EMBEDDINGS_FIELDS: &[&str] = &["model", "dimensions", "encoding_format", "user"];

/// A chat request as an embeddings request: one input per message, its text, in order (a
/// batch, as retrieval pipelines send them); `dimensions`, `encoding_format` and `user` are
/// kept, generation fields dropped.
pub fn chat_to_embeddings(mut chat: Map<String, Value>) -> Result<Map<String, Value>, EncodeError> {
    let Some(Value::Array(messages)) = chat.remove("messages") else {
        return Err(EncodeError::NoMessages);
    };
    let input: Vec<Value> = messages
        .iter()
        .map(|m| Value::String(m.get("content").map(text_of).unwrap_or_default()))
        .collect();
    let mut out = Map::with_capacity(EMBEDDINGS_FIELDS.len() + 1);
    for k in EMBEDDINGS_FIELDS {
        if let Some(v) = chat.remove(*k) {
            out.insert((*k).into(), v);
        }
    }
    out.insert("input".into(), Value::Array(input));
    Ok(out)
}

/// A chat request re-encoded as a Messages request: system and developer messages become the
/// top-level `system`, `max_tokens` (or `max_completion_tokens`) is kept, `stop` becomes
/// `stop_sequences`, `user` becomes `metadata.user_id`, chat-only fields are dropped, and any
/// other field (`temperature`, `top_k`, extras) passes through.
pub fn chat_to_messages(mut chat: Map<String, Value>) -> Result<Map<String, Value>, EncodeError> {
    let Some(Value::Array(messages)) = chat.remove("messages") else {
        return Err(EncodeError::NoMessages);
    };
    let max_tokens = chat
        .remove("max_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| chat.remove("max_completion_tokens"))
        .filter(|v| !v.is_null())
        .ok_or(EncodeError::NoMaxTokens)?;
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::with_capacity(messages.len());
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        match role {
            "system" | "developer" => {
                if let Some(c) = m.get("content") {
                    system.push(text_of(c));
                }
            }
            "tool" => {
                let result = serde_json::json!({
                    "type": "tool_result",
                    "tool_use_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                    "content": m.get("content").map(text_of).unwrap_or_default(),
                });
                // Results of one assistant turn's calls go back together, in one user turn.
                match turns.last_mut() {
                    Some(last) if is_tool_results(last) => {
                        if let Some(Value::Array(blocks)) = last.get_mut("content") {
                            blocks.push(result);
                        }
                    }
                    _ => turns.push(serde_json::json!({"role": "user", "content": [result]})),
                }
            }
            "assistant" if m.get("tool_calls").is_some_and(|t| !t.is_null()) => {
                turns.push(assistant_with_calls(&m));
            }
            _ => turns.push(m),
        }
    }
    if let Some(tools) = chat.remove("tools") {
        out_tools(&mut chat, &tools);
    }
    if let Some(c) = chat.remove("tool_choice").as_ref().and_then(tool_choice) {
        chat.insert("tool_choice".into(), c);
    }
    for key in CHAT_ONLY {
        chat.remove(*key);
    }
    let mut out = Map::with_capacity(chat.len() + 4);
    if let Some(model) = chat.remove("model") {
        out.insert("model".into(), model);
    }
    out.insert("max_tokens".into(), max_tokens);
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(turns));
    if let Some(stop) = chat.remove("stop") {
        let list = match stop {
            Value::String(s) => vec![Value::String(s)],
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        if !list.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(list));
        }
    }
    if let Some(user) = chat.remove("user") {
        out.insert("metadata".into(), serde_json::json!({ "user_id": user }));
    }
    if chat.get("stream").and_then(Value::as_bool) != Some(true) {
        chat.remove("stream");
    }
    out.extend(chat);
    Ok(out)
}

fn is_tool_results(turn: &Value) -> bool {
    turn.get("role").and_then(Value::as_str) == Some("user")
        && turn
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|b| {
                b.iter()
                    .all(|x| x.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
}

/// An assistant turn that called tools: its text, then one `tool_use` block per call (the
/// arguments, a JSON string in OpenAI's shape, become the object Anthropic wants).
fn assistant_with_calls(m: &Value) -> Value {
    let mut blocks = Vec::new();
    let text = m.get("content").map(text_of).unwrap_or_default();
    if !text.is_empty() {
        blocks.push(serde_json::json!({"type": "text", "text": text}));
    }
    for call in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = call.get("function");
        let input = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        blocks.push(serde_json::json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or(Value::Null),
            "name": f.and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null),
            "input": input,
        }));
    }
    serde_json::json!({"role": "assistant", "content": blocks})
}

/// OpenAI function tools as Anthropic tools: `parameters` is the `input_schema`.
fn out_tools(chat: &mut Map<String, Value>, tools: &Value) {
    let list: Vec<Value> = tools
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("function"))
        .map(|f| {
            let mut tool = Map::new();
            tool.insert("name".into(), f.get("name").cloned().unwrap_or(Value::Null));
            if let Some(d) = f.get("description") {
                tool.insert("description".into(), d.clone());
            }
            let schema = f
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
            tool.insert("input_schema".into(), schema);
            Value::Object(tool)
        })
        .collect();
    if !list.is_empty() {
        chat.insert("tools".into(), Value::Array(list));
    }
}

/// `auto`, `required` (Anthropic's `any`), `none`, or one named function (`tool`).
fn tool_choice(choice: &Value) -> Option<Value> {
    let kind = match choice {
        Value::String(s) if s == "auto" => serde_json::json!({"type": "auto"}),
        Value::String(s) if s == "required" => serde_json::json!({"type": "any"}),
        Value::String(s) if s == "none" => serde_json::json!({"type": "none"}),
        Value::Object(o) => {
            let name = o.get("function").and_then(|f| f.get("name"))?;
            serde_json::json!({"type": "tool", "name": name})
        }
        _ => return None,
    };
    Some(kind)
}

/// A Messages request as a chat request, for a gateway whose upstreams speak chat: `system`
/// becomes the first message, `tool_use` blocks become `tool_calls`, `tool_result` blocks
/// become `tool` messages, Anthropic tools become functions, `stop_sequences` becomes `stop`,
/// and a stream always asks for usage (Anthropic's streams always carry it).
pub fn messages_to_chat(mut m: Map<String, Value>) -> Result<Map<String, Value>, EncodeError> {
    let Some(Value::Array(turns)) = m.remove("messages") else {
        return Err(EncodeError::NoMessages);
    };
    let max_tokens = m
        .remove("max_tokens")
        .filter(|v| !v.is_null())
        .ok_or(EncodeError::NoMaxTokens)?;
    let mut messages = Vec::with_capacity(turns.len() + 1);
    if let Some(system) = m.remove("system") {
        let text = text_of(&system);
        if !text.is_empty() {
            messages.push(serde_json::json!({"role": "system", "content": text}));
        }
    }
    for turn in turns {
        let role = turn.get("role").and_then(Value::as_str).unwrap_or("user");
        let Some(Value::Array(blocks)) = turn.get("content") else {
            messages.push(turn);
            continue;
        };
        let kind = |b: &Value| b.get("type").and_then(Value::as_str).map(str::to_string);
        let text: String = blocks
            .iter()
            .filter(|b| kind(b).as_deref() == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        let calls: Vec<Value> = blocks
            .iter()
            .filter(|b| kind(b).as_deref() == Some("tool_use"))
            .map(|b| {
                serde_json::json!({
                    "id": b.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": b.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                    },
                })
            })
            .collect();
        for r in blocks
            .iter()
            .filter(|b| kind(b).as_deref() == Some("tool_result"))
        {
            messages.push(serde_json::json!({
                "role": "tool",
                "tool_call_id": r.get("tool_use_id").cloned().unwrap_or(Value::Null),
                "content": r.get("content").map(text_of).unwrap_or_default(),
            }));
        }
        if role == "assistant" && !calls.is_empty() {
            let content = if text.is_empty() {
                Value::Null
            } else {
                Value::String(text)
            };
            messages.push(serde_json::json!({
                "role": "assistant", "content": content, "tool_calls": calls,
            }));
        } else if !text.is_empty() || messages.is_empty() {
            messages.push(serde_json::json!({"role": role, "content": text}));
        }
    }
    let mut out = Map::with_capacity(m.len() + 4);
    if let Some(model) = m.remove("model") {
        out.insert("model".into(), model);
    }
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), max_tokens);
    if let Some(stop) = m.remove("stop_sequences") {
        out.insert("stop".into(), stop);
    }
    if let Some(user) = m
        .remove("metadata")
        .and_then(|md| md.get("user_id").cloned())
    {
        out.insert("user".into(), user);
    }
    if let Some(tools) = m.remove("tools") {
        let list: Vec<Value> = tools
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                serde_json::json!({"type": "function", "function": {
                    "name": t.get("name").cloned().unwrap_or(Value::Null),
                    "description": t.get("description").cloned().unwrap_or(Value::Null),
                    "parameters": t.get("input_schema").cloned()
                        .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                }})
            })
            .collect();
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(choice) = m.remove("tool_choice") {
        let c = match choice.get("type").and_then(Value::as_str) {
            Some("any") => Some(Value::String("required".into())),
            Some("none") => Some(Value::String("none".into())),
            Some("tool") => choice
                .get("name")
                .map(|n| serde_json::json!({"type": "function", "function": {"name": n}})),
            Some("auto") => Some(Value::String("auto".into())),
            _ => None,
        };
        if let Some(c) = c {
            out.insert("tool_choice".into(), c);
        }
    }
    if m.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }
    m.remove("stream");
    // Anthropic-only fields a chat upstream would refuse.
    for key in [
        "top_k",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
    ] {
        m.remove(key);
    }
    out.extend(m);
    Ok(out)
}

/// Anthropic's usage: cached and cache-written prompt tokens are counted apart from
/// `input_tokens`; together they are what OpenAI calls `prompt_tokens`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct MessagesUsage {
    #[serde(default)]
    pub input_tokens: Option<u32>,
    #[serde(default)]
    pub output_tokens: Option<u32>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u32>,
}

impl MessagesUsage {
    /// Later counts (a `message_delta`'s) win over earlier ones (`message_start`'s); a count
    /// the later one leaves out stays.
    pub fn merge(&mut self, later: &MessagesUsage) {
        let keep = |a: &mut Option<u32>, b: Option<u32>| {
            if b.is_some() {
                *a = b;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        keep(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
    }

    pub fn to_usage(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cached)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
        let mut u = Usage::new(prompt, self.output_tokens.unwrap_or(0));
        if self.cache_read_input_tokens.is_some() {
            u.prompt_tokens_details = Some(PromptTokensDetails {
                cached_tokens: cached,
            });
        }
        u
    }
}

/// A non-stream Messages answer, as far as measuring needs it.
#[derive(Debug, Deserialize)]
pub struct LiteMessage<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub content: Vec<LiteBlock<'a>>,
    #[serde(default)]
    pub usage: Option<MessagesUsage>,
}

#[derive(Debug, Deserialize)]
pub struct LiteBlock<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

/// One Messages stream event: `type` says which fields are there.
#[derive(Debug, Deserialize)]
pub struct LiteEvent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    /// `message_start`'s message (its usage holds the input count).
    #[serde(default)]
    pub message: Option<StartMessage>,
    /// `content_block_delta`'s and `message_delta`'s change.
    #[serde(borrow, default)]
    pub delta: Option<MessagesDelta<'a>>,
    /// `message_delta`'s usage (cumulative output count).
    #[serde(default)]
    pub usage: Option<MessagesUsage>,
}

#[derive(Debug, Deserialize)]
pub struct StartMessage {
    #[serde(default)]
    pub usage: Option<MessagesUsage>,
}

#[derive(Debug, Deserialize)]
pub struct MessagesDelta<'a> {
    #[serde(borrow, rename = "type", default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    #[test]
    fn urls_follow_the_base_like_chat_does() {
        assert_eq!(Api::Messages.url("http://h:1"), "http://h:1/v1/messages");
        assert_eq!(
            Api::Messages.url("http://h:1/v1/"),
            "http://h:1/v1/messages"
        );
        assert_eq!(
            Api::Messages.url("https://h/v1/messages"),
            "https://h/v1/messages"
        );
        assert_eq!(
            Api::Chat.url("http://h:1"),
            "http://h:1/v1/chat/completions"
        );
        for name in Api::NAMES {
            assert_eq!(Api::from_name(name).map(Api::name), Some(*name));
        }
        assert_eq!(Api::from_name("completions"), None);
        assert_eq!(
            Api::Responses.url("http://h:1/v1"),
            "http://h:1/v1/responses"
        );
        assert_eq!(
            Api::Embeddings.url("http://h:1"),
            "http://h:1/v1/embeddings"
        );
    }

    #[test]
    fn each_api_sends_its_key_where_its_clients_do() {
        let chat = Api::Chat.headers(Some("sk-1")).unwrap();
        assert_eq!(chat.len(), 1);
        assert_eq!(chat[0].0, http::header::AUTHORIZATION);
        assert_eq!(chat[0].1, "Bearer sk-1");
        assert!(chat[0].1.is_sensitive());
        let messages = Api::Messages.headers(Some("sk-ant")).unwrap();
        assert_eq!(messages[0].0, ANTHROPIC_KEY_HEADER);
        assert_eq!(messages[0].1, "sk-ant");
        assert!(messages[0].1.is_sensitive());
        assert_eq!(messages[1].0, ANTHROPIC_VERSION_HEADER);
        assert_eq!(
            Api::Messages.headers(None).unwrap().len(),
            1,
            "the version alone"
        );
        assert!(Api::Chat.headers(None).unwrap().is_empty());
        assert!(Api::Chat.headers(Some("bad\nkey")).is_err());
    }

    #[test]
    fn a_chat_request_becomes_a_messages_request() {
        let chat = map(serde_json::json!({
            "model": "claude", "max_tokens": 64, "stream": true,
            "stream_options": {"include_usage": true}, "seed": 3, "temperature": 0.2,
            "stop": "END", "user": "u-1", "top_k": 5,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No lists."}]},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "again"}
            ]
        }));
        let m = chat_to_messages(chat).unwrap();
        assert_eq!(m["model"], "claude");
        assert_eq!(m["max_tokens"], 64);
        assert_eq!(m["system"], "Be brief.\n\nNo lists.");
        let roles: Vec<&str> = m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(m["stop_sequences"], serde_json::json!(["END"]));
        assert_eq!(m["metadata"]["user_id"], "u-1");
        assert_eq!(m["stream"], true);
        assert_eq!(m["temperature"], 0.2);
        assert_eq!(m["top_k"], 5);
        for gone in ["stream_options", "seed", "stop", "user"] {
            assert!(!m.contains_key(gone), "{gone} is dropped");
        }
    }

    #[test]
    fn tools_calls_and_results_take_anthropics_shapes() {
        let chat = map(serde_json::json!({
            "model": "c", "max_tokens": 50,
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Weather now", "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "get_weather", "arguments": "not json"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"}
            ]
        }));
        let m = chat_to_messages(chat).unwrap();
        assert_eq!(m["tools"][0]["name"], "get_weather");
        assert_eq!(
            m["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(
            m["tool_choice"],
            serde_json::json!({"type": "tool", "name": "get_weather"})
        );
        let turns = m["messages"].as_array().unwrap();
        assert_eq!(turns.len(), 3, "{m:?}");
        let calls = turns[1]["content"].as_array().unwrap();
        assert_eq!(calls[0]["type"], "tool_use");
        assert_eq!(calls[0]["input"]["city"], "Paris");
        assert_eq!(
            calls[1]["input"],
            serde_json::json!({}),
            "unparsable arguments"
        );
        let results = turns[2]["content"].as_array().unwrap();
        assert_eq!(turns[2]["role"], "user");
        assert_eq!(results.len(), 2, "both results in one user turn");
        assert_eq!(results[1]["tool_use_id"], "call_2");
        assert_eq!(results[1]["content"], "rain");
        for (openai, anthropic) in [("auto", "auto"), ("required", "any"), ("none", "none")] {
            let chat = map(
                serde_json::json!({"model": "c", "max_tokens": 1, "messages": [],
                "tool_choice": openai}),
            );
            assert_eq!(
                chat_to_messages(chat).unwrap()["tool_choice"]["type"],
                anthropic
            );
        }
    }

    #[test]
    fn a_messages_request_becomes_a_chat_request_and_back() {
        let messages = map(serde_json::json!({
            "model": "claude", "max_tokens": 20, "system": [{"type": "text", "text": "Be brief."}],
            "stream": true, "stop_sequences": ["END"], "metadata": {"user_id": "u"},
            "top_k": 3, "temperature": 0.5,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}
            ]
        }));
        let chat = messages_to_chat(messages.clone()).unwrap();
        let roles: Vec<&str> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(
            chat["messages"][2]["tool_calls"][0]["function"]["arguments"],
            r#"{"x":1}"#
        );
        assert_eq!(chat["messages"][3]["content"], "42");
        assert_eq!(chat["stream_options"]["include_usage"], true);
        assert_eq!(chat["stop"], serde_json::json!(["END"]));
        assert_eq!(chat["user"], "u");
        assert_eq!(chat["tool_choice"], "required");
        assert_eq!(chat["tools"][0]["function"]["name"], "f");
        assert!(!chat.contains_key("top_k"));
        assert_eq!(chat["temperature"], 0.5);
        // And back: what an Anthropic upstream would receive.
        let back = chat_to_messages(chat).unwrap();
        assert_eq!(back["system"], "Be brief.");
        assert_eq!(back["messages"], messages["messages"]);
        assert_eq!(back["tool_choice"]["type"], "any");
        assert_eq!(back["stop_sequences"], serde_json::json!(["END"]));
        let missing = map(serde_json::json!({"model": "c", "messages": []}));
        assert_eq!(messages_to_chat(missing), Err(EncodeError::NoMaxTokens));
    }

    #[test]
    fn max_tokens_is_required_and_the_newer_name_is_read() {
        let no_budget = map(serde_json::json!({"model": "c", "messages": []}));
        assert_eq!(chat_to_messages(no_budget), Err(EncodeError::NoMaxTokens));
        let newer = map(serde_json::json!({
            "model": "c", "max_completion_tokens": 9, "stream": false, "messages": []
        }));
        let m = chat_to_messages(newer).unwrap();
        assert_eq!(m["max_tokens"], 9);
        assert!(
            !m.contains_key("stream"),
            "a false stream is left to the default"
        );
        assert!(!m.contains_key("system"));
        let none = map(serde_json::json!({"model": "c", "max_tokens": 1}));
        assert_eq!(chat_to_messages(none), Err(EncodeError::NoMessages));
    }

    #[test]
    fn usage_adds_cached_prompt_tokens_and_later_counts_win() {
        let mut u: MessagesUsage = serde_json::from_str(
            r#"{"input_tokens":10,"cache_read_input_tokens":90,"output_tokens":1}"#,
        )
        .unwrap();
        u.merge(&serde_json::from_str(r#"{"output_tokens":42}"#).unwrap());
        let usage = u.to_usage();
        assert_eq!(usage.prompt_tokens, 100);
        assert_eq!(usage.cached_tokens(), 90);
        assert_eq!(usage.completion_tokens, 42);
        let plain = MessagesUsage {
            input_tokens: Some(5),
            ..MessagesUsage::default()
        };
        assert_eq!(plain.to_usage().prompt_tokens_details, None);
    }
}
