//! The OpenAI Responses dialect of the mock (`POST /v1/responses`): the request is read into
//! the chat request the rest of the mock already serves (same timing, limits, faults and
//! accounting), and answered as a `response` object with one message item, or as its SSE
//! events (`response.created` ... `response.output_text.delta` ... `response.completed`).
//! Errors keep OpenAI's shape, as the Responses API's do.
//!
//! Unlike chat, the closing events repeat the whole text, so a stream keeps what it sent.

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;

use crate::api::responses::{ResponsesUsage, responses_body_to_chat, status_of};
use crate::openai::{ApiError, ChatRequest, StreamOptions, Usage};

use super::reply::{ReplyHead, put_dec, put_hex, put_json_str};
use super::words::word;

/// A Responses request as the chat request the mock serves; usage is always reported, as a
/// Responses stream always ends with it.
pub(crate) fn to_chat(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let chat = responses_body_to_chat(body)?;
    let mut r: ChatRequest = serde_json::from_value(serde_json::Value::Object(chat))
        .map_err(|e| ApiError::from_json_error(&e))?;
    r.stream_options = Some(StreamOptions {
        include_usage: true,
    });
    Ok(r)
}

/// One answer being written: its fixed fields, its message item's id, the text so far and
/// the next event's sequence number.
pub(crate) struct ResponseDraft {
    /// `"id":"resp_…","object":"response","created_at":…,"model":…`
    fields: Bytes,
    /// `"msg_…"`, quoted.
    item: Bytes,
    text: String,
    sequence: u64,
}

impl ResponseDraft {
    pub fn new(head: &ReplyHead<'_>) -> Self {
        let mut fields = BytesMut::with_capacity(96);
        fields.put_slice(b"\"id\":\"resp_");
        put_id_tail(&mut fields, head);
        fields.put_slice(b"\",\"object\":\"response\",\"created_at\":");
        put_dec(&mut fields, head.created);
        fields.put_slice(b",\"model\":");
        put_json_str(&mut fields, head.model);
        let mut item = BytesMut::with_capacity(32);
        item.put_slice(b"\"msg_");
        put_id_tail(&mut item, head);
        item.put_u8(b'"');
        Self {
            fields: fields.freeze(),
            item: item.freeze(),
            text: String::new(),
            sequence: 0,
        }
    }

    /// `event: NAME` and the data's opening, up to its sequence number; the caller writes the
    /// rest of the object and `\n\n`.
    fn put_event(&mut self, out: &mut BytesMut, name: &str) {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\ndata: {\"type\":\"");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\",\"sequence_number\":");
        put_dec(out, self.sequence);
        self.sequence += 1;
    }

    /// What a stream opens with: the response in progress, its message item and text part.
    pub fn start(&mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(768);
        for name in ["response.created", "response.in_progress"] {
            self.put_event(&mut out, name);
            out.put_slice(b",\"response\":");
            self.put_response(&mut out, None, None);
            out.put_slice(b"}\n\n");
        }
        self.put_event(&mut out, "response.output_item.added");
        out.put_slice(b",\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":");
        out.put_slice(&self.item);
        out.put_slice(b",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n");
        self.put_event(&mut out, "response.content_part.added");
        self.put_part_place(&mut out);
        out.put_slice(
            b",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
        );
        out.freeze()
    }

    fn put_part_place(&self, out: &mut BytesMut) {
        out.put_slice(b",\"item_id\":");
        out.put_slice(&self.item);
        out.put_slice(b",\"output_index\":0,\"content_index\":0");
    }

    /// One token of text.
    pub fn put_delta(&mut self, out: &mut BytesMut, token: &str) {
        self.put_event(out, "response.output_text.delta");
        self.put_part_place(out);
        out.put_slice(b",\"delta\":");
        put_json_str(out, token);
        out.put_slice(b",\"logprobs\":[]}\n\n");
        self.text.push_str(token);
    }

    /// An event that is not JSON, for the `malformed` fault.
    pub fn put_broken(&mut self, out: &mut BytesMut) {
        self.put_event(out, "response.output_text.delta");
        out.put_slice(b",\"delta\":\" trunc\n\n");
    }

    /// The text's, part's and item's `done` events, then `response.completed` (or
    /// `response.incomplete` when the budget ran out) with the whole response and its usage.
    pub fn put_end(&mut self, out: &mut BytesMut, finish: &str, usage: Option<&Usage>) {
        self.put_event(out, "response.output_text.done");
        self.put_part_place(out);
        out.put_slice(b",\"text\":");
        put_json_str(out, &self.text);
        out.put_slice(b",\"logprobs\":[]}\n\n");
        self.put_event(out, "response.content_part.done");
        self.put_part_place(out);
        out.put_slice(b",\"part\":");
        self.put_part(out);
        out.put_slice(b"}\n\n");
        self.put_event(out, "response.output_item.done");
        out.put_slice(b",\"output_index\":0,\"item\":");
        self.put_item(out);
        out.put_slice(b"}\n\n");
        let name = match status_of(finish).0 {
            "incomplete" => "response.incomplete",
            _ => "response.completed",
        };
        self.put_event(out, name);
        out.put_slice(b",\"response\":");
        self.put_response(out, Some(finish), usage);
        out.put_slice(b"}\n\n");
    }

    fn put_part(&self, out: &mut BytesMut) {
        out.put_slice(b"{\"type\":\"output_text\",\"text\":");
        put_json_str(out, &self.text);
        out.put_slice(b",\"annotations\":[]}");
    }

    fn put_item(&self, out: &mut BytesMut) {
        out.put_slice(b"{\"type\":\"message\",\"id\":");
        out.put_slice(&self.item);
        out.put_slice(b",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[");
        self.put_part(out);
        out.put_slice(b"]}");
    }

    /// The response object: in progress with no output (`finish` None), or finished with
    /// the message item and usage.
    fn put_response(&self, out: &mut BytesMut, finish: Option<&str>, usage: Option<&Usage>) {
        out.put_u8(b'{');
        out.put_slice(&self.fields);
        let (status, reason) = finish.map_or(("in_progress", None), status_of);
        out.put_slice(b",\"status\":\"");
        out.put_slice(status.as_bytes());
        out.put_slice(b"\",\"error\":null,\"incomplete_details\":");
        match reason {
            Some(r) => {
                out.put_slice(b"{\"reason\":\"");
                out.put_slice(r.as_bytes());
                out.put_slice(b"\"}");
            }
            None => out.put_slice(b"null"),
        }
        out.put_slice(b",\"output\":[");
        if finish.is_some() {
            self.put_item(out);
        }
        out.put_slice(b"],\"usage\":");
        match usage {
            Some(u) => {
                let v = ResponsesUsage::from_usage(u);
                out.put_slice(v.to_string().as_bytes());
            }
            None => out.put_slice(b"null"),
        }
        out.put_u8(b'}');
    }
}

fn put_id_tail(out: &mut BytesMut, head: &ReplyHead<'_>) {
    // Upstream names are plain ASCII (checked at start), so the id needs no escaping.
    out.put_slice(head.upstream.as_bytes());
    out.put_u8(b'_');
    put_hex(out, head.seq);
}

/// The whole non-stream answer: one message of `tokens` words.
pub(crate) fn completion(
    head: &ReplyHead<'_>,
    tokens: u32,
    rng: &mut SmallRng,
    finish: &str,
    usage: Usage,
) -> Bytes {
    let mut draft = ResponseDraft::new(head);
    draft.text.reserve(tokens.min(1 << 16) as usize * 8);
    for _ in 0..tokens.min(1 << 16) {
        draft.text.push_str(word(rng));
    }
    let mut out = BytesMut::with_capacity(384 + draft.text.len());
    draft.put_response(&mut out, Some(finish), Some(&usage));
    out.freeze()
}

/// A 200 body that does not parse, for the `malformed` fault.
pub(crate) fn broken_completion(head: &ReplyHead<'_>) -> Bytes {
    let draft = ResponseDraft::new(head);
    let mut out = BytesMut::with_capacity(128);
    out.put_u8(b'{');
    out.put_slice(&draft.fields);
    out.put_slice(b",\"output\":[{\"type\":\"mes");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::Value;

    fn head() -> ReplyHead<'static> {
        ReplyHead::for_test("gpt-x")
    }

    #[test]
    fn a_responses_request_becomes_a_chat_request() {
        let body = br#"{"model":"gpt-x","instructions":"be brief","input":"hi",
            "max_output_tokens":9,"stream":true}"#;
        let chat = to_chat(body).unwrap();
        assert_eq!(chat.model, "gpt-x");
        assert_eq!(chat.max_completion(), Some(9));
        assert!(chat.is_stream() && chat.include_usage());
        assert_eq!(chat.messages.len(), 2);
        assert_eq!(to_chat(br#"{"model":"m"}"#).unwrap_err().status(), 400);
    }

    #[test]
    fn the_answer_is_a_response_object() {
        let mut rng = SmallRng::seed_from_u64(1);
        let b = completion(&head(), 3, &mut rng, "length", Usage::new(5, 3));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "resp_a_ff");
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(v["output"][0]["id"], "msg_a_ff");
        let text = v["output"][0]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text.split_whitespace().count(), 3, "{text}");
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["output_tokens"], 3);
        assert_eq!(v["usage"]["total_tokens"], 8);
        assert!(serde_json::from_slice::<Value>(&broken_completion(&head())).is_err());
    }

    #[test]
    fn a_stream_is_numbered_events_ending_with_the_whole_response() {
        let mut d = ResponseDraft::new(&head());
        let mut out = BytesMut::from(&d.start()[..]);
        d.put_delta(&mut out, " a\"b");
        d.put_delta(&mut out, " c");
        d.put_end(&mut out, "stop", Some(&Usage::new(5, 2)));
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<(&str, Value)> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name, "each event names its own type");
                (name, data)
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (_, e)) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
        }
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[4].1["delta"], " a\"b");
        assert_eq!(events[6].1["text"], " a\"b c");
        let done = &events[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], " a\"b c");
        assert_eq!(done["usage"]["output_tokens"], 2);

        let mut d = ResponseDraft::new(&head());
        let mut out = BytesMut::new();
        d.put_end(&mut out, "length", None);
        assert!(String::from_utf8_lossy(&out).contains("event: response.incomplete"));
    }
}
