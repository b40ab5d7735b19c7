//! Serving clients of OpenAI's Responses API (`POST /v1/responses`) from chat answers: the
//! request is routed as the chat request it asks for (`api::responses::responses_to_chat`),
//! whatever API the upstream speaks, and the answer goes back as a `response` object. A
//! stream stays a stream: each chat chunk becomes Responses events as it arrives, numbered,
//! the closing ones repeating what was sent, as OpenAI's do. Errors need no rewriting: the
//! Responses API's are OpenAI's shape.

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use crate::api::responses::{ResponsesUsage, responses_body_to_chat, status_of};
use crate::openai::{ApiError, ApiErrorKind, DONE_DATA, SseDecoder, Usage};

use super::translate::{ChatAnswer, ChatToolCall, StreamError, cut, decode, now, put_event};

/// A client's Responses request as the chat request the gateway routes (a stream asks for
/// usage, which a Responses stream always ends with).
pub fn inbound_request(body: &[u8]) -> Result<Bytes, ApiError> {
    let chat = responses_body_to_chat(body)?;
    serde_json::to_vec(&chat)
        .map(Bytes::from)
        .map_err(|e| ApiError::new(ApiErrorKind::InvalidRequest, e.to_string()))
}

/// The fields every form of one response shares.
#[derive(Debug, Default)]
struct Head {
    /// The chat id without its `chatcmpl-`: the response's and its items' ids are made of it,
    /// so one answer is findable in both APIs' logs.
    tail: String,
    created_at: u64,
    model: String,
}

impl Head {
    fn of(c: &ChatAnswer) -> Self {
        Self {
            tail: c.id.strip_prefix("chatcmpl-").unwrap_or(&c.id).to_string(),
            created_at: if c.created == 0 { now() } else { c.created },
            model: c.model.clone(),
        }
    }

    /// The response object: in progress with no output (`finish` None), or finished.
    fn response(&self, items: &[Item], finish: Option<&str>, usage: Option<&Usage>) -> Value {
        let (status, reason) = finish.map_or(("in_progress", None), status_of);
        let output: Vec<Value> = match finish {
            Some(_) => items.iter().map(Item::done).collect(),
            None => Vec::new(),
        };
        json!({
            "id": format!("resp_{}", self.tail),
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "incomplete_details": reason.map(|r| json!({"reason": r})),
            "error": null,
            "model": self.model,
            "output": output,
            "usage": usage.map(ResponsesUsage::from_usage),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Message,
    Reasoning,
    /// A function call, known by its index among the chat answer's calls.
    Call {
        index: usize,
        call_id: String,
        name: String,
    },
}

/// One output item.
#[derive(Debug)]
struct Item {
    id: String,
    kind: Kind,
    /// The message's text, the reasoning's text or the call's arguments.
    text: String,
    /// `in_progress` until its `done` events (or the whole answer) are written.
    status: &'static str,
}

impl Item {
    fn new(head: &Head, output_index: usize, kind: Kind) -> Self {
        let prefix = match kind {
            Kind::Message => "msg",
            Kind::Reasoning => "rs",
            Kind::Call { .. } => "fc",
        };
        Self {
            id: format!("{prefix}_{}_{output_index}", head.tail),
            kind,
            text: String::new(),
            status: "in_progress",
        }
    }

    /// As `response.output_item.added` shows it: nothing written yet.
    fn added(&self) -> Value {
        let mut v = self.done();
        match self.kind {
            Kind::Message => v["content"] = json!([]),
            Kind::Reasoning => v["content"] = json!([]),
            Kind::Call { .. } => v["arguments"] = json!(""),
        }
        v
    }

    /// As the finished response lists it, whole.
    fn done(&self) -> Value {
        match &self.kind {
            Kind::Message => json!({
                "type": "message", "id": self.id, "status": self.status, "role": "assistant",
                "content": [{"type": "output_text", "text": self.text, "annotations": []}],
            }),
            Kind::Reasoning => json!({
                "type": "reasoning", "id": self.id, "status": self.status, "summary": [],
                "content": [{"type": "reasoning_text", "text": self.text}],
            }),
            Kind::Call { call_id, name, .. } => json!({
                "type": "function_call", "id": self.id, "call_id": call_id, "name": name,
                "arguments": self.text, "status": self.status,
            }),
        }
    }
}

/// The status of a finished item: the last one is what a budget cut short.
fn item_status(finish: &str, last: bool) -> &'static str {
    if last && status_of(finish).0 == "incomplete" {
        "incomplete"
    } else {
        "completed"
    }
}

/// A whole chat completion as a `response` object: its reasoning, its text as one message
/// and each tool call as a `function_call` item, with the usage in the Responses API's names.
pub fn outbound_response(body: &[u8]) -> Result<Bytes, String> {
    let c: ChatAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
    let choice = c
        .choices
        .first()
        .ok_or("a chat completion without choices")?;
    let head = Head::of(&c);
    let msg = choice.message.as_ref();
    let mut items = Vec::new();
    let mut push = |kind: Kind, text: &str| {
        let mut item = Item::new(&head, items.len(), kind);
        item.text.push_str(text);
        items.push(item);
    };
    if let Some(t) = msg
        .and_then(|m| m.reasoning_content.as_deref())
        .filter(|t| !t.is_empty())
    {
        push(Kind::Reasoning, t);
    }
    let text = msg.and_then(|m| m.content.as_deref()).unwrap_or("");
    let calls = msg.and_then(|m| m.tool_calls.as_deref()).unwrap_or(&[]);
    // A turn that only calls tools has no message; any other has one, if only empty.
    if !text.is_empty() || calls.is_empty() {
        push(Kind::Message, text);
    }
    for (index, call) in calls.iter().enumerate() {
        let f = call.function.as_ref();
        let kind = Kind::Call {
            index,
            call_id: call.id.clone().unwrap_or_default(),
            name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
        };
        push(kind, f.and_then(|f| f.arguments.as_deref()).unwrap_or("{}"));
    }
    let finish = choice.finish_reason.as_deref().unwrap_or("stop");
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter_mut().enumerate() {
        item.status = item_status(finish, i == last);
    }
    let v = head.response(&items, Some(finish), c.usage.as_ref());
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Turns a chat stream into Responses events as it arrives: `response.created` and
/// `response.in_progress` at the first chunk, an output item per kind of delta (reasoning,
/// text, each tool call) opened at its first delta and closed when another begins, and at
/// `[DONE]` the last item's `done` events and `response.completed` (`response.incomplete`
/// when the budget ran out) with the whole response and its usage. No `[DONE]` follows:
/// the Responses API has none.
#[derive(Debug)]
pub struct ResponsesWriter {
    decoder: SseDecoder,
    sequence: u64,
    /// Set at the first chunk.
    head: Option<Head>,
    items: Vec<Item>,
    /// The item being written, by output index.
    open: Option<usize>,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl Default for ResponsesWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponsesWriter {
    pub fn new() -> Self {
        Self {
            decoder: SseDecoder::new(),
            sequence: 0,
            head: None,
            items: Vec::new(),
            open: None,
            finish: None,
            usage: None,
        }
    }

    /// Responses event bytes for `data` of the chat stream (empty while incomplete).
    pub fn feed(&mut self, data: &[u8]) -> Result<Bytes, StreamError> {
        let mut out = BytesMut::new();
        for data in decode(&mut self.decoder, data)? {
            self.chunk(&data, &mut out)?;
        }
        Ok(out.freeze())
    }

    /// Writes event `name` with `fields` (an object), numbered.
    fn emit(&mut self, out: &mut BytesMut, name: &str, mut fields: Value) {
        if let Value::Object(m) = &mut fields {
            m.insert("type".into(), name.into());
            m.insert("sequence_number".into(), self.sequence.into());
        }
        self.sequence += 1;
        put_event(out, name, &fields);
    }

    fn start(&mut self, out: &mut BytesMut, head: Head) {
        let response = head.response(&[], None, None);
        self.head = Some(head);
        for name in ["response.created", "response.in_progress"] {
            self.emit(out, name, json!({"response": response}));
        }
    }

    fn chunk(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        if data.trim() == DONE_DATA {
            if self.head.is_none() {
                self.start(out, Head::default());
            }
            self.end(out);
            return Ok(());
        }
        let c: ChatAnswer = serde_json::from_str(data)
            .map_err(|e| StreamError::Malformed(format!("{e}: {}", cut(data))))?;
        if self.head.is_none() {
            self.start(out, Head::of(&c));
        }
        if let Some(u) = c.usage {
            self.usage = Some(u);
        }
        for choice in &c.choices {
            if let Some(d) = &choice.delta {
                if let Some(t) = d.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
                    self.text(out, Kind::Reasoning, t);
                }
                if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                    self.text(out, Kind::Message, t);
                }
                for call in d.tool_calls.iter().flatten() {
                    self.call(out, call);
                }
            }
            if let Some(f) = &choice.finish_reason {
                self.finish = Some(f.clone());
            }
        }
        Ok(())
    }

    /// Opens an item of `kind` (closing the one open), with its `added` events.
    fn open(&mut self, out: &mut BytesMut, kind: Kind) -> usize {
        self.close(out, "completed");
        let at = self.items.len();
        let item = match &self.head {
            Some(head) => Item::new(head, at, kind),
            None => Item::new(&Head::default(), at, kind),
        };
        let (added, id, is_message) = (item.added(), item.id.clone(), item.kind == Kind::Message);
        self.items.push(item);
        self.open = Some(at);
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": at, "item": added}),
        );
        if is_message {
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": at, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
        }
        at
    }

    /// A piece of text or reasoning.
    fn text(&mut self, out: &mut BytesMut, kind: Kind, delta: &str) {
        let at = match self.open {
            Some(at) if self.items[at].kind == kind => at,
            _ => self.open(out, kind.clone()),
        };
        let item = &mut self.items[at];
        item.text.push_str(delta);
        let id = item.id.clone();
        let name = match kind {
            Kind::Reasoning => "response.reasoning_text.delta",
            _ => "response.output_text.delta",
        };
        let mut fields =
            json!({"item_id": id, "output_index": at, "content_index": 0, "delta": delta});
        if kind == Kind::Message {
            fields["logprobs"] = json!([]);
        }
        self.emit(out, name, fields);
    }

    /// A piece of a tool call: its first opens a `function_call` item.
    fn call(&mut self, out: &mut BytesMut, call: &ChatToolCall) {
        let index = call.index.unwrap_or(0);
        let known = self
            .items
            .iter()
            .position(|i| matches!(i.kind, Kind::Call { index: j, .. } if j == index));
        let at = match known {
            // A call the stream comes back to after another began (chat allows it) keeps
            // its item; only its arguments grow.
            Some(at) => at,
            None => {
                let f = call.function.as_ref();
                let kind = Kind::Call {
                    index,
                    call_id: call.id.clone().unwrap_or_default(),
                    name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                };
                self.open(out, kind)
            }
        };
        let Some(args) = call
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let item = &mut self.items[at];
        item.text.push_str(args);
        let id = item.id.clone();
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": at, "delta": args}),
        );
    }

    /// The open item's `done` events, its whole text repeated.
    fn close(&mut self, out: &mut BytesMut, status: &'static str) {
        let Some(at) = self.open.take() else {
            return;
        };
        let item = &mut self.items[at];
        item.status = status;
        let (id, text, done) = (item.id.clone(), item.text.clone(), item.done());
        match item.kind {
            Kind::Message => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0,
                        "text": text, "logprobs": []}),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0,
                        "part": {"type": "output_text", "text": text, "annotations": []}}),
                );
            }
            Kind::Reasoning => self.emit(
                out,
                "response.reasoning_text.done",
                json!({"item_id": id, "output_index": at, "content_index": 0, "text": text}),
            ),
            Kind::Call { .. } => self.emit(
                out,
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": at, "arguments": text}),
            ),
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": at, "item": done}),
        );
    }

    /// The chat stream's `[DONE]`: the last item closed, then the whole response.
    fn end(&mut self, out: &mut BytesMut) {
        let finish = self.finish.clone().unwrap_or_else(|| "stop".into());
        // The open item is always the last one begun.
        self.close(out, item_status(&finish, true));
        let name = match status_of(&finish).0 {
            "incomplete" => "response.incomplete",
            _ => "response.completed",
        };
        let response = self.head.as_ref().map_or(Value::Null, |h| {
            h.response(&self.items, Some(&finish), self.usage.as_ref())
        });
        self.emit(out, name, json!({"response": response}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, data)` of each event, checking each names its own type.
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(bytes).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_string();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(v["type"], name.as_str());
                (name, v)
            })
            .collect()
    }

    #[test]
    fn a_request_is_routed_as_chat_and_a_bad_one_names_its_field() {
        let chat = inbound_request(br#"{"model":"m","input":"hi","stream":true}"#).unwrap();
        let v: Value = serde_json::from_slice(&chat).unwrap();
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(v["stream_options"]["include_usage"], true);
        let e = inbound_request(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!((e.status(), e.param.as_deref()), (400, Some("input")));
        let e = inbound_request(br#"{"model":"m","input":"x","previous_response_id":"r"}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("previous_response_id"));
        assert_eq!(inbound_request(b"{").unwrap_err().status(), 400);
    }

    #[test]
    fn a_whole_answer_becomes_a_response_object() {
        let body = br#"{"id":"chatcmpl-7","object":"chat.completion","created":9,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello",
                "reasoning_content":"hm","tool_calls":[{"id":"call_1","type":"function",
                "function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13,
                "prompt_tokens_details":{"cached_tokens":5},
                "completion_tokens_details":{"reasoning_tokens":1}}}"#;
        let v: Value = serde_json::from_slice(&outbound_response(body).unwrap()).unwrap();
        assert_eq!(v["id"], "resp_7");
        assert_eq!(v["object"], "response");
        assert_eq!(v["created_at"], 9);
        assert_eq!(v["status"], "completed");
        assert_eq!(v["incomplete_details"], Value::Null);
        assert_eq!(v["error"], Value::Null);
        let out = v["output"].as_array().unwrap();
        let kinds: Vec<&str> = out.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        assert_eq!(out[1]["content"][0]["text"], "Hello");
        assert_eq!(out[1]["content"][0]["type"], "output_text");
        assert_eq!(out[1]["status"], "completed");
        assert_eq!(out[2]["call_id"], "call_1");
        assert_eq!(out[2]["name"], "f");
        assert_eq!(out[2]["arguments"], "{\"a\":1}");
        assert!(out[2]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 9, "input_tokens_details": {"cached_tokens": 5},
                "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 1},
                "total_tokens": 13})
        );

        let cut = br#"{"id":"chatcmpl-8","model":"m","choices":[{"index":0,
            "message":{"role":"assistant","content":"Hel"},"finish_reason":"length"}]}"#;
        let v: Value = serde_json::from_slice(&outbound_response(cut).unwrap()).unwrap();
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(v["output"][0]["status"], "incomplete");
        assert!(
            v["created_at"].as_u64().unwrap() > 0,
            "now, when chat gave none"
        );
        assert!(outbound_response(br#"{"choices":[]}"#).is_err());
        assert!(outbound_response(b"<html>").is_err());
    }

    #[test]
    fn a_chat_stream_becomes_numbered_responses_events_however_it_is_split() {
        let chat = [
            r#"data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":3,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"hm"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"data: {"id":"chatcmpl-7","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#,
            "data: [DONE]",
        ]
        .map(|l| format!("{l}\n\n"))
        .concat();
        for split in [1, 5, chat.len()] {
            let mut w = ResponsesWriter::new();
            let mut out = Vec::new();
            for piece in chat.as_bytes().chunks(split) {
                out.extend_from_slice(&w.feed(piece).unwrap());
            }
            let events = events(&out);
            let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "response.created",
                    "response.in_progress",
                    "response.output_item.added",
                    "response.reasoning_text.delta",
                    "response.reasoning_text.done",
                    "response.output_item.done",
                    "response.output_item.added",
                    "response.content_part.added",
                    "response.output_text.delta",
                    "response.output_text.delta",
                    "response.output_text.done",
                    "response.content_part.done",
                    "response.output_item.done",
                    "response.output_item.added",
                    "response.function_call_arguments.delta",
                    "response.function_call_arguments.done",
                    "response.output_item.done",
                    "response.completed",
                ],
                "split {split}"
            );
            for (i, (_, e)) in events.iter().enumerate() {
                assert_eq!(e["sequence_number"], i, "split {split}");
            }
            assert_eq!(events[0].1["response"]["status"], "in_progress");
            assert_eq!(events[0].1["response"]["output"], json!([]));
            assert_eq!(events[0].1["response"]["id"], "resp_7");
            assert_eq!(events[8].1["delta"], "Hi");
            assert_eq!(events[8].1["output_index"], 1);
            assert_eq!(events[8].1["item_id"], events[6].1["item"]["id"]);
            assert_eq!(events[10].1["text"], "Hi there");
            assert_eq!(events[13].1["item"]["call_id"], "call_1");
            assert_eq!(events[13].1["item"]["arguments"], "");
            assert_eq!(events[15].1["arguments"], "{}");
            let done = &events[17].1["response"];
            assert_eq!(done["status"], "completed");
            assert_eq!(done["output"].as_array().unwrap().len(), 3);
            assert_eq!(done["output"][1]["content"][0]["text"], "Hi there");
            assert_eq!(done["usage"]["input_tokens"], 9);
            assert_eq!(done["usage"]["output_tokens"], 4);
            assert_eq!(done["usage"]["total_tokens"], 13);
            assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));
        }
    }

    #[test]
    fn a_stream_cut_by_its_budget_ends_incomplete_and_garbage_stops_it() {
        let chat = [
            r#"data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"data: {"id":"chatcmpl-1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
            "data: [DONE]",
        ]
        .map(|l| format!("{l}\n\n"))
        .concat();
        let mut w = ResponsesWriter::new();
        let events = events(&w.feed(chat.as_bytes()).unwrap());
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(last["response"]["usage"], Value::Null, "none was sent");
        let mut w = ResponsesWriter::new();
        assert!(matches!(
            w.feed(b"data: {oops\n\n"),
            Err(StreamError::Malformed(_))
        ));
    }
}
