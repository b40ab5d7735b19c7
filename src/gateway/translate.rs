//! Serving OpenAI chat clients from an upstream that speaks Anthropic's Messages API: the
//! request re-encoded (`api::chat_to_messages`), and the answer, its stream and its errors
//! turned back into OpenAI's shapes, so the client cannot tell which API served it. A stream
//! stays a stream: each Anthropic event becomes (at most a few) chat chunks as it arrives.
//! The other way round, Anthropic's clients served from chat answers; the chat answer and
//! chunk shapes read here serve the Responses API's writer (`responses`) too.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::{MessagesUsage, chat_to_messages, finish_reason, stop_reason};
use crate::openai::{ApiError, ApiErrorKind, SseDecoder, Usage};

/// What a client that leaves out `max_tokens` gets: Anthropic requires a budget, and this is
/// the common gateway default (LiteLLM's too).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's "overloaded": not a status OpenAI clients (or retry settings) know.
const OVERLOADED: u16 = 529;

/// The client's chat request as a Messages request, and whether it asked for usage in its
/// stream (OpenAI sends a usage chunk only then).
pub fn request(chat: &[u8]) -> Result<(Bytes, bool), String> {
    let mut map: Map<String, Value> =
        serde_json::from_slice(chat).map_err(|e| format!("request body: {e}"))?;
    let include_usage = map
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let has_budget = ["max_tokens", "max_completion_tokens"]
        .iter()
        .any(|k| map.get(*k).is_some_and(|v| !v.is_null()));
    if !has_budget {
        map.insert("max_tokens".into(), DEFAULT_MAX_TOKENS.into());
    }
    let out = chat_to_messages(map).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    Ok((Bytes::from(body), include_usage))
}

/// The status a Messages upstream's error is seen as: 529 is a 503 to OpenAI clients, to the
/// gateway's retry settings and to its breaker.
pub fn status(status: StatusCode) -> StatusCode {
    if status.as_u16() == OVERLOADED {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    }
}

#[derive(Deserialize)]
struct AnthropicError {
    error: AnthropicErrorBody,
}

#[derive(Deserialize)]
struct AnthropicErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// An Anthropic error body as an OpenAI one: same message, OpenAI's type for the status, and
/// Anthropic's type kept as the `code` (e.g. `overloaded_error`). Returns the body and the
/// code; a body that is not Anthropic's shape gets a message saying so.
pub fn error(status: StatusCode, body: &[u8]) -> (Bytes, Option<String>) {
    let (message, code) = match serde_json::from_slice::<AnthropicError>(body) {
        Ok(e) => (
            e.error.message,
            Some(e.error.kind).filter(|k| !k.is_empty()),
        ),
        Err(_) => (
            format!("the upstream answered {status} without an Anthropic error body"),
            None,
        ),
    };
    let kind = ApiErrorKind::from_status_code(status.as_u16(), None);
    let mut body = ApiError::new(kind, message).body();
    // A 429 keeps OpenAI's code (clients branch on `rate_limit_exceeded`); otherwise
    // Anthropic's type says more than OpenAI's generic one.
    if status != StatusCode::TOO_MANY_REQUESTS && code.is_some() {
        body.error.code.clone_from(&code);
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (Bytes::from(bytes), code)
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Deserialize)]
struct AnthropicMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: MessagesUsage,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

/// A whole Messages answer as a chat completion.
pub fn completion(body: &[u8]) -> Result<Bytes, String> {
    let m: AnthropicMessage =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON Messages answer: {e}"))?;
    if m.kind != "message" {
        return Err(format!("a Messages answer of type `{}`", m.kind));
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in &m.content {
        match b.kind.as_str() {
            "text" => text.push_str(b.text.as_deref().unwrap_or("")),
            "thinking" => reasoning.push_str(b.thinking.as_deref().unwrap_or("")),
            "tool_use" => calls.push(serde_json::json!({
                "id": b.id, "type": "function",
                "function": {
                    "name": b.name,
                    "arguments": b.input.as_ref().map_or_else(|| "{}".to_string(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut message = serde_json::json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
    });
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::String(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let out = serde_json::json!({
        "id": format!("chatcmpl-{}", m.id),
        "object": "chat.completion",
        "created": now(),
        "model": m.model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(m.stop_reason.as_deref().unwrap_or("end_turn")),
        }],
        "usage": m.usage.to_usage(),
    });
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Why a translated stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the upstream reported an error mid-stream: {0}")]
    Reported(String),
    #[error("the upstream sent an event that is not Messages JSON: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<AnthropicMessage>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<Block>,
    #[serde(default)]
    delta: Option<EventDelta>,
    #[serde(default)]
    usage: Option<MessagesUsage>,
    #[serde(default)]
    error: Option<AnthropicErrorBody>,
}

#[derive(Deserialize)]
struct EventDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Turns a Messages event stream into chat chunks, event by event.
#[derive(Debug)]
pub struct StreamTranslator {
    decoder: SseDecoder,
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    usage: MessagesUsage,
    /// Content-block index → tool-call index, for blocks that are tool calls.
    tools: Vec<(usize, usize)>,
}

impl StreamTranslator {
    pub fn new(include_usage: bool) -> Self {
        Self {
            decoder: SseDecoder::new(),
            include_usage,
            id: String::new(),
            model: String::new(),
            created: now(),
            usage: MessagesUsage::default(),
            tools: Vec::new(),
        }
    }

    /// The chat stream bytes for `data` (empty while an event is still incomplete).
    pub fn feed(&mut self, data: &[u8]) -> Result<Bytes, StreamError> {
        let mut out = BytesMut::new();
        for data in decode(&mut self.decoder, data)? {
            self.event(&data, &mut out)?;
        }
        Ok(out.freeze())
    }

    /// The upstream ended: a last event without its blank line is still translated.
    pub fn finish(&mut self) -> Result<Bytes, StreamError> {
        let mut out = BytesMut::new();
        if let Some(ev) = self
            .decoder
            .finish()
            .map_err(|e| StreamError::Malformed(e.to_string()))?
        {
            self.event(&ev.data, &mut out)?;
        }
        Ok(out.freeze())
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        let chunk = serde_json::json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        put_data(out, &chunk);
    }

    fn event(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        let ev: Event = serde_json::from_str(data)
            .map_err(|e| StreamError::Malformed(format!("{e}: {}", cut(data))))?;
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.id = format!("chatcmpl-{}", m.id);
                    self.model = m.model;
                    self.usage.merge(&m.usage);
                }
                self.chunk(
                    out,
                    serde_json::json!({"role": "assistant", "content": ""}),
                    None,
                );
            }
            "content_block_start" => {
                let Some(b) = ev.content_block.filter(|b| b.kind == "tool_use") else {
                    return Ok(());
                };
                let call = self.tools.len();
                self.tools.push((ev.index.unwrap_or(0), call));
                let delta = serde_json::json!({"tool_calls": [{
                    "index": call, "id": b.id, "type": "function",
                    "function": {"name": b.name, "arguments": ""},
                }]});
                self.chunk(out, delta, None);
            }
            "content_block_delta" => {
                let Some(d) = ev.delta else {
                    return Ok(());
                };
                let delta = match d.kind.as_deref() {
                    Some("text_delta") => serde_json::json!({"content": d.text}),
                    Some("thinking_delta") => serde_json::json!({"reasoning_content": d.thinking}),
                    Some("input_json_delta") => {
                        let block = ev.index.unwrap_or(0);
                        let Some(&(_, call)) = self.tools.iter().find(|(b, _)| *b == block) else {
                            return Ok(());
                        };
                        serde_json::json!({"tool_calls": [{
                            "index": call, "function": {"arguments": d.partial_json},
                        }]})
                    }
                    _ => return Ok(()),
                };
                self.chunk(out, delta, None);
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    self.usage.merge(u);
                }
                if let Some(stop) = ev.delta.and_then(|d| d.stop_reason) {
                    self.chunk(out, serde_json::json!({}), Some(finish_reason(&stop)));
                }
            }
            "message_stop" => {
                if self.include_usage {
                    let chunk = serde_json::json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": self.usage.to_usage(),
                    });
                    put_data(out, &chunk);
                }
                out.put_slice(b"data: [DONE]\n\n");
            }
            "error" => {
                let message = ev
                    .error
                    .map(|e| format!("{}: {}", e.kind, e.message))
                    .unwrap_or_default();
                return Err(StreamError::Reported(message));
            }
            // `ping`, `content_block_stop` and event types added later carry nothing to relay.
            _ => {}
        }
        Ok(())
    }
}

/// The data of the events `data` completes.
pub(super) fn decode(decoder: &mut SseDecoder, data: &[u8]) -> Result<Vec<String>, StreamError> {
    let mut events = Vec::new();
    decoder
        .feed(data, |ev| events.push(ev.data))
        .map_err(|e| StreamError::Malformed(e.to_string()))?;
    Ok(events)
}

/// A named SSE event (`event: NAME`), as Anthropic's and the Responses API's streams send.
pub(super) fn put_event(out: &mut BytesMut, name: &str, v: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_u8(b'\n');
    put_data(out, v);
}

pub(super) fn put_data(out: &mut BytesMut, v: &Value) {
    // A JSON value always serialises.
    crate::openai::encode_event(&serde_json::to_vec(v).unwrap_or_default(), out);
}

pub(super) fn cut(s: &str) -> &str {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---- The other way: Anthropic clients served from chat upstreams. ----

/// A client's Messages request as the chat request the gateway routes.
pub fn inbound_request(body: &[u8]) -> Result<Bytes, ApiError> {
    let chat = crate::api::messages_body_to_chat(body)?;
    serde_json::to_vec(&chat)
        .map(Bytes::from)
        .map_err(|e| ApiError::new(ApiErrorKind::InvalidRequest, e.to_string()))
}

/// Anthropic's usage for chat usage: cache reads are counted apart from `input_tokens`.
fn anthropic_usage(u: &Usage) -> Value {
    let cached = u.cached_tokens();
    let mut out = serde_json::json!({
        "input_tokens": u.prompt_tokens.saturating_sub(cached),
        "output_tokens": u.completion_tokens,
    });
    if cached > 0 {
        out["cache_read_input_tokens"] = cached.into();
    }
    out
}

/// A chat completion or stream chunk, as far as another API's answer is built from it.
#[derive(Deserialize)]
pub(super) struct ChatAnswer {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(super) struct ChatChoice {
    #[serde(default)]
    pub message: Option<ChatMessage>,
    #[serde(default)]
    pub delta: Option<ChatMessage>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct ChatMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ChatToolCall>>,
}

#[derive(Deserialize)]
pub(super) struct ChatToolCall {
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<ChatFunction>,
}

#[derive(Deserialize)]
pub(super) struct ChatFunction {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

fn message_id(chat_id: &str) -> String {
    format!(
        "msg_{}",
        chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id)
    )
}

/// A chat completion as a whole Messages answer.
pub fn outbound_message(body: &[u8]) -> Result<Bytes, String> {
    let c: ChatAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
    let choice = c
        .choices
        .first()
        .ok_or("a chat completion without choices")?;
    let msg = choice.message.as_ref();
    let mut content = Vec::new();
    if let Some(t) = msg
        .and_then(|m| m.reasoning_content.as_deref())
        .filter(|t| !t.is_empty())
    {
        content.push(serde_json::json!({"type": "thinking", "thinking": t, "signature": ""}));
    }
    if let Some(t) = msg
        .and_then(|m| m.content.as_deref())
        .filter(|t| !t.is_empty())
    {
        content.push(serde_json::json!({"type": "text", "text": t}));
    }
    for call in msg
        .and_then(|m| m.tool_calls.as_ref())
        .into_iter()
        .flatten()
    {
        let f = call.function.as_ref();
        let input = f
            .and_then(|f| f.arguments.as_deref())
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        content.push(serde_json::json!({
            "type": "tool_use", "id": call.id, "name": f.and_then(|f| f.name.clone()), "input": input,
        }));
    }
    let v = serde_json::json!({
        "id": message_id(&c.id),
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason.as_deref().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": anthropic_usage(&c.usage.unwrap_or_default()),
    });
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Which content block is open in an outbound Messages stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its chat index.
    Tool(usize),
}

/// Turns a chat stream into Anthropic's events as it arrives: `message_start` at the first
/// chunk, one content block per kind of delta (thinking, text, each tool call), and at
/// `[DONE]` the stop reason with the usage, then `message_stop`.
#[derive(Debug)]
pub struct EventWriter {
    decoder: SseDecoder,
    started: bool,
    open: Option<Open>,
    blocks: usize,
    stop: &'static str,
    usage: Option<(u32, u32, u32)>,
}

impl Default for EventWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl EventWriter {
    pub fn new() -> Self {
        Self {
            decoder: SseDecoder::new(),
            started: false,
            open: None,
            blocks: 0,
            stop: "end_turn",
            usage: None,
        }
    }

    /// Anthropic event bytes for `data` of the chat stream (empty while incomplete).
    pub fn feed(&mut self, data: &[u8]) -> Result<Bytes, StreamError> {
        let mut out = BytesMut::new();
        for data in decode(&mut self.decoder, data)? {
            self.chunk(&data, &mut out)?;
        }
        Ok(out.freeze())
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            let index = self.blocks - 1;
            put_event(
                out,
                "content_block_stop",
                &serde_json::json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn open_block(&mut self, out: &mut BytesMut, kind: Open, block: Value) {
        if self.open == Some(kind) {
            return;
        }
        self.close_block(out);
        put_event(
            out,
            "content_block_start",
            &serde_json::json!({"type": "content_block_start", "index": self.blocks,
                "content_block": block}),
        );
        self.blocks += 1;
        self.open = Some(kind);
    }

    fn delta(&self, out: &mut BytesMut, delta: Value) {
        put_event(
            out,
            "content_block_delta",
            &serde_json::json!({"type": "content_block_delta", "index": self.blocks - 1,
                "delta": delta}),
        );
    }

    fn chunk(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        if data.trim() == crate::openai::DONE_DATA {
            self.close_block(out);
            let (input, output, cached) = self.usage.unwrap_or_default();
            let mut usage = serde_json::json!({"output_tokens": output, "input_tokens": input});
            if cached > 0 {
                usage["cache_read_input_tokens"] = cached.into();
            }
            put_event(
                out,
                "message_delta",
                &serde_json::json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop, "stop_sequence": null}, "usage": usage}),
            );
            put_event(
                out,
                "message_stop",
                &serde_json::json!({"type": "message_stop"}),
            );
            return Ok(());
        }
        let c: ChatAnswer = serde_json::from_str(data)
            .map_err(|e| StreamError::Malformed(format!("{e}: {}", cut(data))))?;
        if !self.started {
            self.started = true;
            put_event(
                out,
                "message_start",
                &serde_json::json!({"type": "message_start", "message": {
                    "id": message_id(&c.id), "type": "message", "role": "assistant",
                    "model": c.model, "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            );
        }
        if let Some(u) = &c.usage {
            let cached = u.cached_tokens();
            self.usage = Some((
                u.prompt_tokens.saturating_sub(cached),
                u.completion_tokens,
                cached,
            ));
        }
        for choice in &c.choices {
            if let Some(d) = &choice.delta {
                if let Some(t) = d.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
                    let block =
                        serde_json::json!({"type": "thinking", "thinking": "", "signature": ""});
                    self.open_block(out, Open::Thinking, block);
                    self.delta(
                        out,
                        serde_json::json!({"type": "thinking_delta", "thinking": t}),
                    );
                }
                if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                    let block = serde_json::json!({"type": "text", "text": ""});
                    self.open_block(out, Open::Text, block);
                    self.delta(out, serde_json::json!({"type": "text_delta", "text": t}));
                }
                for call in d.tool_calls.iter().flatten() {
                    let index = call.index.unwrap_or(0);
                    let f = call.function.as_ref();
                    let block = serde_json::json!({"type": "tool_use", "id": call.id,
                        "name": f.and_then(|f| f.name.clone()), "input": {}});
                    self.open_block(out, Open::Tool(index), block);
                    if let Some(a) = f
                        .and_then(|f| f.arguments.as_deref())
                        .filter(|a| !a.is_empty())
                    {
                        self.delta(
                            out,
                            serde_json::json!({"type": "input_json_delta", "partial_json": a}),
                        );
                    }
                }
            }
            if let Some(f) = &choice.finish_reason {
                self.stop = stop_reason(f);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.strip_prefix("data: ").unwrap();
                if data == "[DONE]" {
                    Value::String("[DONE]".into())
                } else {
                    serde_json::from_str(data).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn a_request_gets_a_budget_and_remembers_usage() {
        let (body, usage) = request(
            br#"{"model":"c","stream":true,"stream_options":{"include_usage":true},
                "messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert!(usage);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(v["system"], "s");
        assert!(v.get("stream_options").is_none());
        assert!(request(b"[1]").is_err());
    }

    #[test]
    fn errors_keep_their_meaning() {
        assert_eq!(
            status(StatusCode::from_u16(529).unwrap()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(StatusCode::TOO_MANY_REQUESTS),
            StatusCode::TOO_MANY_REQUESTS
        );
        let (body, code) = error(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(code.as_deref(), Some("overloaded_error"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "Overloaded");
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "overloaded_error");
        let (body, code) = error(StatusCode::BAD_REQUEST, b"<html>");
        assert_eq!(code, None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn a_whole_answer_becomes_a_chat_completion() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude",
            "content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"Hi there"},
                {"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],
            "stop_reason":"tool_use","usage":{"input_tokens":7,"cache_read_input_tokens":3,
            "output_tokens":5}}"#;
        let v: Value = serde_json::from_slice(&completion(body).unwrap()).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["id"], "chatcmpl-msg_1");
        let c = &v["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls");
        assert_eq!(c["message"]["content"], "Hi there");
        assert_eq!(c["message"]["reasoning_content"], "hm");
        assert_eq!(
            c["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"a":1}"#
        );
        assert_eq!(v["usage"]["prompt_tokens"], 10);
        assert_eq!(v["usage"]["completion_tokens"], 5);
        assert_eq!(v["usage"]["total_tokens"], 15);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
        assert!(completion(br#"{"type":"error"}"#).is_err());
        assert!(completion(b"{").is_err());
    }

    fn event(name: &str, data: &str) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    #[test]
    fn a_stream_becomes_chat_chunks_however_it_is_split() {
        let stream = [
            event("message_start", r#"{"type":"message_start","message":{"id":"msg_9","type":"message","model":"claude","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}"#),
            event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            event("ping", r#"{"type":"ping"}"#),
            event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#),
            event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"#),
            event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            event("content_block_start", r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#),
            event("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#),
            event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":4}}"#),
            event("message_stop", r#"{"type":"message_stop"}"#),
        ]
        .concat();
        for split in [1, 7, stream.len()] {
            let mut t = StreamTranslator::new(true);
            let mut out = Vec::new();
            for piece in stream.as_bytes().chunks(split) {
                out.extend_from_slice(&t.feed(piece).unwrap());
            }
            out.extend_from_slice(&t.finish().unwrap());
            let c = chunks(&out);
            assert_eq!(c.len(), 8, "split {split}: {c:?}");
            assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
            assert_eq!(c[0]["id"], "chatcmpl-msg_9");
            assert_eq!(c[1]["choices"][0]["delta"]["content"], "Hel");
            assert_eq!(c[2]["choices"][0]["delta"]["content"], "lo");
            assert_eq!(
                c[3]["choices"][0]["delta"]["tool_calls"][0]["id"],
                "toolu_1"
            );
            assert_eq!(
                c[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
                "{\"a\":"
            );
            assert_eq!(c[5]["choices"][0]["finish_reason"], "length");
            assert_eq!(c[6]["usage"]["prompt_tokens"], 12);
            assert_eq!(c[6]["usage"]["completion_tokens"], 4);
            assert_eq!(c[7], "[DONE]");
        }
    }

    #[test]
    fn an_error_event_or_garbage_stops_the_stream() {
        let mut t = StreamTranslator::new(false);
        let e = t
            .feed(event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#).as_bytes())
            .unwrap_err();
        assert_eq!(
            e,
            StreamError::Reported("overloaded_error: Overloaded".into())
        );
        let mut t = StreamTranslator::new(false);
        assert!(matches!(
            t.feed(b"data: {not json\n\n"),
            Err(StreamError::Malformed(_))
        ));
        let mut t = StreamTranslator::new(false);
        let out = t
            .feed(event("message_stop", r#"{"type":"message_stop"}"#).as_bytes())
            .unwrap();
        assert_eq!(
            chunks(&out),
            [Value::String("[DONE]".into())],
            "no usage chunk unless asked"
        );
    }

    #[test]
    fn a_chat_stream_becomes_anthropic_events() {
        let chat = [
            r#"data: {"id":"chatcmpl-7","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"hm"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":5}}}"#,
            "data: [DONE]",
        ]
        .map(|l| format!("{l}\n\n"))
        .concat();
        let mut w = EventWriter::new();
        let mut out = Vec::new();
        for piece in chat.as_bytes().chunks(5) {
            out.extend_from_slice(&w.feed(piece).unwrap());
        }
        let text = String::from_utf8(out).unwrap();
        let events: Vec<(String, Value)> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_string();
                assert_eq!(v["type"], name.as_str());
                (name, v)
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["id"], "msg_7");
        assert_eq!(events[1].1["content_block"]["type"], "thinking");
        assert_eq!(events[5].1["delta"]["text"], "Hi");
        assert_eq!(events[5].1["index"], 1);
        assert_eq!(events[8].1["content_block"]["name"], "f");
        assert_eq!(events[9].1["delta"]["partial_json"], "{}");
        let end = &events[11].1;
        assert_eq!(end["delta"]["stop_reason"], "tool_use");
        assert_eq!(end["usage"]["output_tokens"], 4);
        assert_eq!(end["usage"]["input_tokens"], 4);
        assert_eq!(end["usage"]["cache_read_input_tokens"], 5);
    }

    #[test]
    fn a_chat_answer_and_error_become_anthropics() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[
            {"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"length"}],
            "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let v: Value = serde_json::from_slice(&outbound_message(body).unwrap()).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "Hello");
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["input_tokens"], 3);
        let e = crate::api::anthropic_error(
            503,
            br#"{"error":{"message":"all upstreams unavailable","type":"server_error"}}"#,
        );
        let v: Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(v["error"]["message"], "all upstreams unavailable");
        let bad = inbound_request(br#"{"model":"m","messages":[]}"#).unwrap_err();
        assert_eq!(bad.param.as_deref(), Some("max_tokens"));
    }
}
