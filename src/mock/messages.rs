//! The Anthropic Messages dialect of the mock (`POST /v1/messages`): the request is read into
//! the chat request the rest of the mock already serves (same timing, limits, faults and
//! accounting), and answered in Anthropic's shapes: a `message` object, its SSE events
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`) and its error body
//! (`{"type":"error","error":{"type":"overloaded_error",...}}`, 529 when overloaded).

use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use rand::rngs::SmallRng;

use crate::api::stop_reason;
use crate::openai::{ApiError, ChatRequest, StreamOptions, Usage};

use super::reply::{ReplyHead, put_dec, put_hex, put_json_str};
use super::words::word;

/// A Messages request as the chat request the mock serves (the conversion the gateway uses);
/// usage is always reported, as Anthropic's answers always carry it.
pub(crate) fn to_chat(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let chat = crate::api::messages_body_to_chat(body)?;
    let mut r: ChatRequest = serde_json::from_value(serde_json::Value::Object(chat))
        .map_err(|e| ApiError::from_json_error(&e))?;
    r.stream_options = Some(StreamOptions {
        include_usage: true,
    });
    Ok(r)
}

fn put_id(out: &mut BytesMut, head: &ReplyHead<'_>) {
    out.put_slice(b"\"id\":\"msg_");
    out.put_slice(head.upstream.as_bytes());
    out.put_u8(b'_');
    put_hex(out, head.seq);
    out.put_u8(b'"');
}

fn put_usage(out: &mut BytesMut, input: u32, output: u32, cached: Option<u32>) {
    out.put_slice(b"{\"input_tokens\":");
    put_dec(out, u64::from(input));
    if let Some(c) = cached {
        out.put_slice(b",\"cache_read_input_tokens\":");
        put_dec(out, u64::from(c));
    }
    out.put_slice(b",\"output_tokens\":");
    put_dec(out, u64::from(output));
    out.put_u8(b'}');
}

/// Anthropic counts cached prompt tokens apart from `input_tokens`.
fn split_usage(u: &Usage) -> (u32, Option<u32>) {
    let cached = u.prompt_tokens_details.map(|d| d.cached_tokens);
    (u.prompt_tokens.saturating_sub(cached.unwrap_or(0)), cached)
}

/// The whole non-stream answer: one text block of `tokens` words.
pub(crate) fn completion(
    head: &ReplyHead<'_>,
    tokens: u32,
    rng: &mut SmallRng,
    finish: &str,
    usage: Usage,
) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + tokens.min(1 << 16) as usize * 8);
    out.put_u8(b'{');
    put_id(&mut out, head);
    out.put_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    put_json_str(&mut out, head.model);
    out.put_slice(b",\"content\":[{\"type\":\"text\",\"text\":\"");
    for _ in 0..tokens.min(1 << 16) {
        out.put_slice(word(rng).as_bytes());
    }
    out.put_slice(b"\"}],\"stop_reason\":\"");
    out.put_slice(stop_reason(finish).as_bytes());
    out.put_slice(b"\",\"stop_sequence\":null,\"usage\":");
    let (input, cached) = split_usage(&usage);
    put_usage(&mut out, input, usage.completion_tokens, cached);
    out.put_u8(b'}');
    out.freeze()
}

fn put_event(out: &mut BytesMut, name: &[u8]) {
    out.put_slice(b"event: ");
    out.put_slice(name);
    out.put_slice(b"\ndata: ");
}

/// `message_start` and the text block's `content_block_start`: what a stream opens with.
pub(crate) fn stream_start(head: &ReplyHead<'_>, usage: Option<Usage>) -> Bytes {
    let mut out = BytesMut::with_capacity(384);
    put_event(&mut out, b"message_start");
    out.put_slice(b"{\"type\":\"message_start\",\"message\":{");
    put_id(&mut out, head);
    out.put_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    put_json_str(&mut out, head.model);
    out.put_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
    let u = usage.unwrap_or_default();
    let (input, cached) = split_usage(&u);
    put_usage(&mut out, input, 1, cached);
    out.put_slice(b"}}\n\n");
    put_event(&mut out, b"content_block_start");
    out.put_slice(
        b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    );
    out.freeze()
}

/// One token of text.
pub(crate) fn put_text_delta(out: &mut BytesMut, token: &str) {
    put_event(out, b"content_block_delta");
    out.put_slice(
        b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":",
    );
    put_json_str(out, token);
    out.put_slice(b"}}\n\n");
}

/// The block's end, the stop reason with the output count, and `message_stop`.
pub(crate) fn put_stream_end(out: &mut BytesMut, finish: &str, output_tokens: u32) {
    put_event(out, b"content_block_stop");
    out.put_slice(b"{\"type\":\"content_block_stop\",\"index\":0}\n\n");
    put_event(out, b"message_delta");
    out.put_slice(b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
    out.put_slice(stop_reason(finish).as_bytes());
    out.put_slice(b"\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
    put_dec(out, u64::from(output_tokens));
    out.put_slice(b"}}\n\n");
    put_event(out, b"message_stop");
    out.put_slice(b"{\"type\":\"message_stop\"}\n\n");
}

/// An event that is not JSON, for the `malformed` fault.
pub(crate) fn put_broken_delta(out: &mut BytesMut) {
    put_event(out, b"content_block_delta");
    out.put_slice(
        b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"text\":\" trunc\n\n",
    );
}

/// A 200 body that does not parse, for the `malformed` fault.
pub(crate) fn broken_completion(head: &ReplyHead<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(96);
    out.put_u8(b'{');
    put_id(&mut out, head);
    out.put_slice(b",\"type\":\"message\",\"content\":[{\"type\":\"te");
    out.freeze()
}

/// The error body of the chat path (`chat_body`, answered with `status`), re-worded in
/// Anthropic's shape.
pub(crate) fn error_body(status: StatusCode, chat_body: &[u8]) -> Vec<u8> {
    crate::api::anthropic_error(status.as_u16(), chat_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn head() -> ReplyHead<'static> {
        ReplyHead::for_test("claude-x")
    }

    #[test]
    fn a_messages_request_becomes_a_chat_request_with_its_system_prompt_first() {
        let body = br#"{"model":"claude-x","max_tokens":9,"system":"be brief",
            "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true}"#;
        let chat = to_chat(body).unwrap();
        assert_eq!(chat.model, "claude-x");
        assert_eq!(chat.max_completion(), Some(9));
        assert!(chat.is_stream() && chat.include_usage());
        assert_eq!(chat.messages.len(), 2);
        assert_eq!(chat.messages[0].role, "system");
        let missing = to_chat(br#"{"model":"m","messages":[]}"#).unwrap_err();
        assert_eq!(missing.status(), 400);
    }

    #[test]
    fn answers_are_anthropic_json() {
        let mut rng = SmallRng::seed_from_u64(1);
        let b = completion(&head(), 3, &mut rng, "length", Usage::new(5, 3));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "msg_a_ff");
        assert_eq!(v["type"], "message");
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["output_tokens"], 3);
        let text = v["content"][0]["text"].as_str().unwrap();
        assert_eq!(text.split_whitespace().count(), 3, "{text}");

        let mut out = BytesMut::from(&stream_start(&head(), Some(Usage::new(5, 0)))[..]);
        put_text_delta(&mut out, " a\"b");
        put_stream_end(&mut out, "stop", 1);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<(&str, serde_json::Value)> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap();
                let data: serde_json::Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name, "each event names its own type");
                (name, data)
            })
            .collect();
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 5);
        assert_eq!(events[2].1["delta"]["text"], " a\"b");
        assert_eq!(events[4].1["delta"]["stop_reason"], "end_turn");
        assert!(serde_json::from_slice::<serde_json::Value>(&broken_completion(&head())).is_err());
    }

    #[test]
    fn errors_take_anthropics_types() {
        let cases = [
            (429, "rate_limit_error"),
            (529, "overloaded_error"),
            (500, "api_error"),
        ];
        for (status, kind) in cases {
            let chat = super::super::respond::injected_error(status, Some("busy"));
            let super::super::body::MockBody::Full(Some(b)) = chat.body() else {
                panic!("a full body");
            };
            let b = error_body(chat.status(), b);
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind);
            assert_eq!(v["error"]["message"], "busy");
        }
    }
}
