//! OpenAI's Responses API (`POST /v1/responses`) as gauntlet speaks it: a chat request
//! encoded as a Responses request (the load client), a Responses request read back into the
//! chat request it asks for (the mock and the gateway), its usage, and the lean shapes the
//! load client reads answers and stream events with.
//!
//! The Responses API can keep conversations on the server (`previous_response_id`,
//! `conversation`). Nothing here keeps state, so such a request is refused with a message
//! saying to send the whole conversation in `input`, rather than answered as if the earlier
//! turns did not exist.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::openai::{ApiError, ApiErrorKind, CompletionTokensDetails, PromptTokensDetails, Usage};

use super::text_of;

/// Chat-only fields with no Responses meaning; the Responses API refuses unknown fields.
const CHAT_ONLY: &[&str] = &[
    "stream_options",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "logit_bias",
    "seed",
    "stop",
];

/// Responses-only fields a chat upstream would refuse.
const RESPONSES_ONLY: &[&str] = &[
    "store",
    "include",
    "reasoning",
    "truncation",
    "background",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "max_tool_calls",
    "top_logprobs",
    "prompt",
    "text",
];

/// Why a Responses request cannot be served as a chat request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponsesError {
    #[error("input: Field required")]
    NoInput,
    #[error(
        "`{0}` asks the server to remember an earlier turn; this server keeps no state: send \
         the whole conversation in `input`"
    )]
    Stateful(&'static str),
    #[error("input: item {0} is not a message, function_call or function_call_output")]
    BadItem(usize),
}

impl From<ResponsesError> for ApiError {
    fn from(e: ResponsesError) -> Self {
        let param = match &e {
            ResponsesError::NoInput | ResponsesError::BadItem(_) => "input",
            ResponsesError::Stateful(p) => p,
        };
        ApiError::new(ApiErrorKind::InvalidRequest, e.to_string()).with_param(param)
    }
}

/// A Responses request body as the chat request it asks for (see `responses_to_chat`).
pub fn responses_body_to_chat(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let map: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| ApiError::from_json_error(&e))?;
    Ok(responses_to_chat(map)?)
}

/// A Responses request as a chat request: `instructions` becomes the first (system) message,
/// `input` (a string, or message, `function_call` and `function_call_output` items) becomes
/// the messages, `max_output_tokens` becomes `max_tokens`, flat function tools become chat
/// tools, `text.format` becomes `response_format`, and a stream asks for usage (a Responses
/// stream always ends with it). Reasoning items are dropped: a chat upstream cannot take
/// them back.
pub fn responses_to_chat(mut r: Map<String, Value>) -> Result<Map<String, Value>, ResponsesError> {
    for stateful in ["previous_response_id", "conversation"] {
        if r.get(stateful).is_some_and(|v| !v.is_null()) {
            return Err(ResponsesError::Stateful(stateful));
        }
    }
    let input = r
        .remove("input")
        .filter(|v| !v.is_null())
        .ok_or(ResponsesError::NoInput)?;
    let mut messages: Vec<Value> = Vec::new();
    if let Some(instructions) = r.remove("instructions") {
        let text = text_of(&instructions);
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    match input {
        Value::String(s) => messages.push(json!({"role": "user", "content": s})),
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                push_item(&mut messages, item, i)?;
            }
        }
        _ => return Err(ResponsesError::NoInput),
    }
    let mut out = Map::with_capacity(r.len() + 4);
    if let Some(model) = r.remove("model") {
        out.insert("model".into(), model);
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = r.remove("max_output_tokens").filter(|v| !v.is_null()) {
        out.insert("max_tokens".into(), max);
    }
    if let Some(tools) = r.remove("tools") {
        let list: Vec<Value> = tools
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .map(|t| {
                let mut function = Map::new();
                for k in ["name", "description", "parameters", "strict"] {
                    if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                        function.insert(k.into(), v.clone());
                    }
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        if !list.is_empty() {
            out.insert("tools".into(), Value::Array(list));
        }
    }
    if let Some(choice) = r.remove("tool_choice") {
        let c = match &choice {
            Value::String(_) => Some(choice.clone()),
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => o
                .get("name")
                .map(|n| json!({"type": "function", "function": {"name": n}})),
            _ => None,
        };
        if let Some(c) = c {
            out.insert("tool_choice".into(), c);
        }
    }
    if let Some(format) = r.get("text").and_then(|t| t.get("format")) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let mut schema = Map::new();
                for k in ["name", "description", "schema", "strict"] {
                    if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                        schema.insert(k.into(), v.clone());
                    }
                }
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": schema}),
                );
            }
            Some("json_object") => {
                out.insert("response_format".into(), json!({"type": "json_object"}));
            }
            _ => {}
        }
    }
    if r.remove("stream").and_then(|v| v.as_bool()) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for key in RESPONSES_ONLY {
        r.remove(*key);
    }
    // `metadata`, `temperature`, `top_p`, `user`, `parallel_tool_calls` and extras pass.
    out.extend(r);
    Ok(out)
}

/// One `input` item as chat messages: a function call joins the assistant message before it
/// (a chat assistant turn holds all its calls), an output becomes a `tool` message.
fn push_item(messages: &mut Vec<Value>, item: Value, i: usize) -> Result<(), ResponsesError> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
            let content = item.get("content").map(text_of).unwrap_or_default();
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let call = json!({
                "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": item.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": item.get("arguments").cloned()
                        .unwrap_or_else(|| Value::String("{}".into())),
                },
            });
            let joins = messages.last().is_some_and(|m| {
                m.get("role").and_then(Value::as_str) == Some("assistant")
                    && m.get("tool_calls").is_some()
            });
            match messages.last_mut() {
                Some(Value::Object(last)) if joins => {
                    if let Some(Value::Array(calls)) = last.get_mut("tool_calls") {
                        calls.push(call);
                    }
                }
                _ => messages.push(json!({
                    "role": "assistant", "content": Value::Null, "tool_calls": [call],
                })),
            }
        }
        "function_call_output" => messages.push(json!({
            "role": "tool",
            "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
            "content": item.get("output").map(text_of).unwrap_or_default(),
        })),
        // The model's own reasoning, handed back: nothing a chat upstream reads.
        "reasoning" => {}
        _ => return Err(ResponsesError::BadItem(i)),
    }
    Ok(())
}

/// A chat request encoded as a Responses request: the messages become `input` items (tool
/// calls and their results as `function_call` and `function_call_output` items), the token
/// budget becomes `max_output_tokens`, tools and `response_format` take their Responses
/// shapes, and chat-only fields without a Responses meaning (`stop`, `seed`, `n`...) are
/// dropped; any other field passes through.
pub fn chat_to_responses(
    mut chat: Map<String, Value>,
) -> Result<Map<String, Value>, super::EncodeError> {
    let Some(Value::Array(messages)) = chat.remove("messages") else {
        return Err(super::EncodeError::NoMessages);
    };
    let mut input = Vec::with_capacity(messages.len());
    for m in &messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        match role {
            "tool" => input.push(json!({
                "type": "function_call_output",
                "call_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                "output": m.get("content").map(text_of).unwrap_or_default(),
            })),
            _ => {
                let text = m.get("content").map(text_of).unwrap_or_default();
                let calls = m.get("tool_calls").and_then(Value::as_array);
                if !text.is_empty() || calls.is_none() {
                    input.push(json!({"role": role, "content": text}));
                }
                for c in calls.into_iter().flatten() {
                    let f = c.get("function");
                    input.push(json!({
                        "type": "function_call",
                        "call_id": c.get("id").cloned().unwrap_or(Value::Null),
                        "name": f.and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null),
                        "arguments": f.and_then(|f| f.get("arguments")).cloned()
                            .unwrap_or_else(|| Value::String("{}".into())),
                    }));
                }
            }
        }
    }
    let mut out = Map::with_capacity(chat.len() + 4);
    if let Some(model) = chat.remove("model") {
        out.insert("model".into(), model);
    }
    out.insert("input".into(), Value::Array(input));
    let newer = chat
        .remove("max_completion_tokens")
        .filter(|v| !v.is_null());
    let older = chat.remove("max_tokens").filter(|v| !v.is_null());
    if let Some(max) = newer.or(older) {
        out.insert("max_output_tokens".into(), max);
    }
    if let Some(Value::Array(tools)) = chat.remove("tools") {
        let list: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut tool = Map::new();
                tool.insert("type".into(), Value::String("function".into()));
                for k in ["name", "description", "parameters", "strict"] {
                    if let Some(v) = f.get(k).filter(|v| !v.is_null()) {
                        tool.insert(k.into(), v.clone());
                    }
                }
                Value::Object(tool)
            })
            .collect();
        out.insert("tools".into(), Value::Array(list));
    }
    if let Some(choice) = chat.remove("tool_choice") {
        let c = match &choice {
            Value::String(_) => Some(choice.clone()),
            Value::Object(o) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"type": "function", "name": n})),
            _ => None,
        };
        if let Some(c) = c {
            out.insert("tool_choice".into(), c);
        }
    }
    if let Some(format) = chat.remove("response_format") {
        let f = match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let mut f = format
                    .get("json_schema")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                f.insert("type".into(), Value::String("json_schema".into()));
                Some(Value::Object(f))
            }
            Some("json_object") => Some(json!({"type": "json_object"})),
            _ => None,
        };
        if let Some(f) = f {
            out.insert("text".into(), json!({"format": f}));
        }
    }
    for key in CHAT_ONLY {
        chat.remove(*key);
    }
    out.extend(chat);
    Ok(out)
}

/// The `status` of a finished response and its `incomplete_details.reason`, for a chat
/// `finish_reason`.
pub fn status_of(finish: &str) -> (&'static str, Option<&'static str>) {
    match finish {
        "length" => ("incomplete", Some("max_output_tokens")),
        "content_filter" => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The Responses API's usage: the same counts as chat under other names.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ResponsesUsage {
    #[serde(default)]
    pub input_tokens: u32,
    #[serde(default)]
    pub output_tokens: u32,
    #[serde(default)]
    pub input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct InputDetails {
    #[serde(default)]
    pub cached_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct OutputDetails {
    #[serde(default)]
    pub reasoning_tokens: u32,
}

impl ResponsesUsage {
    pub fn to_usage(self) -> Usage {
        let mut u = Usage::new(self.input_tokens, self.output_tokens);
        u.prompt_tokens_details = self.input_tokens_details.map(|d| PromptTokensDetails {
            cached_tokens: d.cached_tokens,
        });
        u.completion_tokens_details = self.output_tokens_details.map(|d| CompletionTokensDetails {
            reasoning_tokens: d.reasoning_tokens,
        });
        u
    }

    /// Chat usage in the Responses shape (the details are always there, as OpenAI sends them).
    pub fn from_usage(u: &Usage) -> Value {
        json!({
            "input_tokens": u.prompt_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_tokens()},
            "output_tokens": u.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens()},
            "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens),
        })
    }
}

/// A non-stream Responses answer, as far as measuring needs it.
#[derive(Debug, Deserialize)]
pub struct LiteResponse<'a> {
    #[serde(borrow)]
    pub object: Cow<'a, str>,
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub output: Vec<LiteItem<'a>>,
    #[serde(default)]
    pub usage: Option<ResponsesUsage>,
}

/// One output item: a message with text parts (reasoning and calls carry no `content` text).
#[derive(Debug, Deserialize)]
pub struct LiteItem<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub content: Vec<LitePart<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct LitePart<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

impl LiteResponse<'_> {
    /// The answer's text: the text parts of its message items.
    pub fn text(&self) -> impl Iterator<Item = &str> {
        self.output
            .iter()
            .filter(|i| i.kind == "message")
            .flat_map(|i| i.content.iter())
            .filter_map(|p| p.text.as_deref())
    }
}

/// One Responses stream event: `type` says which fields are there.
#[derive(Debug, Deserialize)]
pub struct LiteResponseEvent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Cow<'a, str>,
    /// The text of `response.output_text.delta`, the arguments of
    /// `response.function_call_arguments.delta`, the summary of a reasoning delta.
    #[serde(borrow, default)]
    pub delta: Option<Cow<'a, str>>,
    /// The response of `response.completed` / `response.incomplete` / `response.failed`.
    #[serde(default)]
    pub response: Option<EventResponse>,
}

#[derive(Debug, Deserialize)]
pub struct EventResponse {
    #[serde(default)]
    pub usage: Option<ResponsesUsage>,
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
    fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
        let chat = responses_to_chat(map(json!({
            "model": "gpt", "instructions": "Be brief.", "input": "hi",
            "max_output_tokens": 9, "stream": true, "store": false, "temperature": 0.5,
            "reasoning": {"effort": "low"}
        })))
        .unwrap();
        assert_eq!(
            Value::Object(chat),
            json!({
                "model": "gpt",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi"}
                ],
                "max_tokens": 9, "stream": true, "stream_options": {"include_usage": true},
                "temperature": 0.5
            })
        );
    }

    #[test]
    fn items_become_messages_calls_and_tool_results() {
        let chat = responses_to_chat(map(json!({
            "model": "gpt",
            "input": [
                {"role": "developer", "content": [{"type": "input_text", "text": "No lists."}]},
                {"type": "message", "role": "user", "content": "weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"c\":1}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}},
                      {"type": "web_search"}],
            "tool_choice": {"type": "function", "name": "w"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}
        })))
        .unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0], json!({"role": "developer", "content": "No lists."}));
        assert_eq!(
            m[2]["tool_calls"].as_array().unwrap().len(),
            2,
            "calls join"
        );
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"c\":1}");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
        );
        assert_eq!(chat["tools"].as_array().unwrap().len(), 1, "only functions");
        assert_eq!(chat["tools"][0]["function"]["name"], "w");
        assert_eq!(chat["tool_choice"]["function"]["name"], "w");
        assert_eq!(chat["response_format"]["json_schema"]["name"], "x");
        assert!(chat.get("text").is_none());
    }

    #[test]
    fn what_cannot_be_served_is_refused_with_its_field() {
        let e = responses_to_chat(map(json!({"model": "m"}))).unwrap_err();
        assert_eq!(e, ResponsesError::NoInput);
        let e = responses_to_chat(map(json!({"model": "m", "input": "hi",
            "previous_response_id": "resp_1"})))
        .unwrap_err();
        assert_eq!(ApiError::from(e).status(), 400);
        let e = responses_to_chat(map(json!({"model": "m", "input": [{"type": "image_gen"}]})))
            .unwrap_err();
        assert_eq!(e, ResponsesError::BadItem(0));
        assert!(responses_body_to_chat(b"{").is_err());
    }

    #[test]
    fn a_chat_request_becomes_a_responses_request_and_back() {
        let chat = map(json!({
            "model": "gpt", "max_tokens": 64, "stream": true, "seed": 3, "stop": "END",
            "stream_options": {"include_usage": true}, "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
            ],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "w"}},
            "response_format": {"type": "json_object"}
        }));
        let r = chat_to_responses(chat).unwrap();
        assert_eq!(r["max_output_tokens"], 64);
        for gone in ["seed", "stop", "stream_options", "max_tokens", "messages"] {
            assert!(r.get(gone).is_none(), "{gone}");
        }
        assert_eq!(r["input"][2]["type"], "function_call");
        assert_eq!(r["input"][3]["type"], "function_call_output");
        assert_eq!(
            r["tools"][0],
            json!({"type": "function", "name": "w", "parameters": {}})
        );
        assert_eq!(r["tool_choice"], json!({"type": "function", "name": "w"}));
        assert_eq!(r["text"]["format"]["type"], "json_object");
        let back = responses_to_chat(r).unwrap();
        assert_eq!(back["messages"].as_array().unwrap().len(), 4);
        assert_eq!(back["max_tokens"], 64);
        assert_eq!(back["temperature"], 0.2);
        assert_eq!(back["response_format"]["type"], "json_object");
    }

    #[test]
    fn usage_and_status_carry_the_same_counts() {
        let u: ResponsesUsage = serde_json::from_value(json!({
            "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 17
        }))
        .unwrap();
        let chat = u.to_usage();
        assert_eq!((chat.prompt_tokens, chat.completion_tokens), (10, 7));
        assert_eq!((chat.cached_tokens(), chat.reasoning_tokens()), (4, 2));
        assert_eq!(ResponsesUsage::from_usage(&chat)["total_tokens"], 17);
        assert_eq!(
            status_of("length"),
            ("incomplete", Some("max_output_tokens"))
        );
        assert_eq!(status_of("stop"), ("completed", None));
        assert_eq!(status_of("tool_calls"), ("completed", None));
    }
}
