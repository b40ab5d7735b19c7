//! The bytes of a mock's answers: completion JSON and stream chunks, written straight into
//! buffers from a per-response prefix so the hot path does no per-token serialisation.

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;

use crate::openai::{DATA_PREFIX, Usage};

use super::answer::Answer;
use super::words::word;

/// Writes `s` as a JSON string (quotes included).
pub(crate) fn put_json_str(out: &mut BytesMut, s: &str) {
    let mut w = out.writer();
    // Writing a &str into memory cannot fail.
    let _ = serde_json::to_writer(&mut w, s);
}

/// Everything about one response that every chunk repeats.
pub(crate) struct ReplyHead<'a> {
    /// The id is `chatcmpl-{upstream}-{seq:x}`.
    pub upstream: &'a str,
    pub seq: u64,
    pub created: u64,
    pub model: &'a str,
    pub fingerprint: &'a str,
}

#[cfg(test)]
impl ReplyHead<'static> {
    /// The head the dialects' tests answer with: upstream `a`, request 255 (ids end in
    /// `_ff`), created at 7.
    pub(crate) fn for_test(model: &'static str) -> Self {
        Self {
            upstream: "a",
            seq: 255,
            created: 7,
            model,
            fingerprint: "gauntlet-a",
        }
    }
}

impl ReplyHead<'_> {
    fn put_common(&self, out: &mut BytesMut) {
        // Upstream names are plain ASCII (checked at start), so the id needs no escaping.
        out.put_slice(b"{\"id\":\"chatcmpl-");
        out.put_slice(self.upstream.as_bytes());
        out.put_u8(b'-');
        put_hex(out, self.seq);
        // The caller writes the object kind; `put_tail_fields` closes its quote.
        out.put_slice(b"\",\"object\":\"");
    }

    fn put_tail_fields(&self, out: &mut BytesMut) {
        out.put_slice(b"\",\"created\":");
        put_dec(out, self.created);
        out.put_slice(b",\"model\":");
        put_json_str(out, self.model);
        out.put_slice(b",\"system_fingerprint\":");
        put_json_str(out, self.fingerprint);
    }

    /// The full non-stream answer: `reasoning` words of thought, then the answer (or, without
    /// one, content made of `tokens` words).
    pub fn completion(
        &self,
        tokens: u32,
        rng: &mut SmallRng,
        finish_reason: &str,
        usage: Usage,
        reasoning: u32,
        answer: Option<&Answer>,
    ) -> Bytes {
        let words = tokens.saturating_add(reasoning).min(1 << 16) as usize;
        let mut out = BytesMut::with_capacity(384 + words * 8);
        self.put_common(&mut out);
        out.put_slice(b"chat.completion");
        self.put_tail_fields(&mut out);
        out.put_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",");
        if reasoning > 0 {
            out.put_slice(b"\"reasoning_content\":\"");
            for _ in 0..reasoning {
                out.put_slice(word(rng).as_bytes());
            }
            out.put_slice(b"\",");
        }
        match answer {
            None => {
                out.put_slice(b"\"content\":\"");
                for _ in 0..tokens {
                    out.put_slice(word(rng).as_bytes());
                }
                out.put_u8(b'"');
            }
            Some(Answer::Json(p)) => {
                out.put_slice(b"\"content\":");
                put_json_str(&mut out, p.text());
            }
            Some(Answer::ToolCall {
                id,
                name,
                arguments,
            }) => {
                out.put_slice(b"\"content\":null,\"tool_calls\":[{\"id\":");
                put_json_str(&mut out, id);
                out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                put_json_str(&mut out, name);
                out.put_slice(b",\"arguments\":");
                put_json_str(&mut out, arguments.text());
                out.put_slice(b"}}]");
            }
        }
        out.put_slice(b"},\"finish_reason\":");
        put_json_str(&mut out, finish_reason);
        out.put_slice(b",\"logprobs\":null}],\"usage\":");
        put_usage(&mut out, usage);
        out.put_slice(b"}");
        out.freeze()
    }

    /// `data: {...,"choices":[` shared by every chunk of the stream.
    pub fn chunk_prefix(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256);
        out.put_slice(DATA_PREFIX);
        self.put_common(&mut out);
        out.put_slice(b"chat.completion.chunk");
        self.put_tail_fields(&mut out);
        out.put_slice(b",\"choices\":[");
        out.freeze()
    }
}

pub(crate) fn put_usage(out: &mut BytesMut, u: Usage) {
    out.put_slice(b"{\"prompt_tokens\":");
    put_dec(out, u64::from(u.prompt_tokens));
    out.put_slice(b",\"completion_tokens\":");
    put_dec(out, u64::from(u.completion_tokens));
    out.put_slice(b",\"total_tokens\":");
    put_dec(out, u64::from(u.total_tokens));
    if let Some(d) = u.prompt_tokens_details {
        out.put_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
        put_dec(out, u64::from(d.cached_tokens));
        out.put_u8(b'}');
    }
    if let Some(d) = u.completion_tokens_details {
        out.put_slice(b",\"completion_tokens_details\":{\"reasoning_tokens\":");
        put_dec(out, u64::from(d.reasoning_tokens));
        out.put_u8(b'}');
    }
    out.put_u8(b'}');
}

/// Decimal digits without going through `fmt` (this runs several times per response).
pub(crate) fn put_dec(out: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// Lower-case hex digits.
pub(crate) fn put_hex(out: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// The first chunk: the assistant role and empty content.
pub(crate) fn put_role_chunk(out: &mut BytesMut, prefix: &[u8]) {
    out.put_slice(prefix);
    out.put_slice(
        b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null,\"logprobs\":null}]}\n\n",
    );
}

/// The first chunk of a tool-call answer: the assistant role and no content, as OpenAI sends it.
pub(crate) fn put_role_chunk_no_content(out: &mut BytesMut, prefix: &[u8]) {
    out.put_slice(prefix);
    out.put_slice(
        b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null,\"logprobs\":null}]}\n\n",
    );
}

fn put_open_delta(out: &mut BytesMut, prefix: &[u8]) {
    out.put_slice(prefix);
    out.put_slice(b"{\"index\":0,\"delta\":{");
}

fn put_close_delta(out: &mut BytesMut, finish_reason: Option<&str>) {
    out.put_slice(b"},\"finish_reason\":");
    match finish_reason {
        Some(r) => put_json_str(out, r),
        None => out.put_slice(b"null"),
    }
    out.put_slice(b",\"logprobs\":null}]}\n\n");
}

/// One token of thought, before any content (DeepSeek's `reasoning_content`).
pub(crate) fn put_reasoning_chunk(out: &mut BytesMut, prefix: &[u8], token: &str) {
    put_open_delta(out, prefix);
    out.put_slice(b"\"reasoning_content\":");
    put_json_str(out, token);
    put_close_delta(out, None);
}

/// A piece of content text that may need escaping (JSON answers).
pub(crate) fn put_content_piece(
    out: &mut BytesMut,
    prefix: &[u8],
    piece: &str,
    finish_reason: Option<&str>,
) {
    put_open_delta(out, prefix);
    out.put_slice(b"\"content\":");
    put_json_str(out, piece);
    put_close_delta(out, finish_reason);
}

/// A tool call's first delta: its id, type and name, and no arguments yet.
pub(crate) fn put_tool_call_head(out: &mut BytesMut, prefix: &[u8], id: &str, name: &str) {
    put_open_delta(out, prefix);
    out.put_slice(b"\"tool_calls\":[{\"index\":0,\"id\":");
    put_json_str(out, id);
    out.put_slice(b",\"type\":\"function\",\"function\":{\"name\":");
    put_json_str(out, name);
    out.put_slice(b",\"arguments\":\"\"}}]");
    put_close_delta(out, None);
}

/// A piece of a tool call's arguments.
pub(crate) fn put_tool_call_arguments(out: &mut BytesMut, prefix: &[u8], piece: &str) {
    put_open_delta(out, prefix);
    out.put_slice(b"\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
    put_json_str(out, piece);
    out.put_slice(b"}}]");
    put_close_delta(out, None);
}

/// An empty delta carrying only the finish reason, as OpenAI ends a tool call.
pub(crate) fn put_finish_chunk(out: &mut BytesMut, prefix: &[u8], finish_reason: &str) {
    put_open_delta(out, prefix);
    put_close_delta(out, Some(finish_reason));
}

/// One content chunk holding one token; the last carries the finish reason.
pub(crate) fn put_token_chunk(
    out: &mut BytesMut,
    prefix: &[u8],
    token: &str,
    finish_reason: Option<&str>,
) {
    out.put_slice(prefix);
    out.put_slice(b"{\"index\":0,\"delta\":{\"content\":\"");
    out.put_slice(token.as_bytes());
    out.put_slice(b"\"},\"finish_reason\":");
    match finish_reason {
        Some(r) => put_json_str(out, r),
        None => out.put_slice(b"null"),
    }
    out.put_slice(b",\"logprobs\":null}]}\n\n");
}

/// The usage chunk sent when the client asked for `stream_options.include_usage`.
pub(crate) fn put_usage_chunk(out: &mut BytesMut, prefix: &[u8], usage: Usage) {
    out.put_slice(prefix);
    out.put_slice(b"],\"usage\":");
    put_usage(out, usage);
    out.put_slice(b"}\n\n");
}

/// A chunk that is not JSON, for the `malformed` fault.
pub(crate) fn put_broken_chunk(out: &mut BytesMut, prefix: &[u8]) {
    out.put_slice(prefix);
    out.put_slice(b"{\"index\":0,\"delta\":{\"content\":\" trunc\n\n");
}

/// A 200 body that does not parse, for the `malformed` fault.
pub(crate) fn broken_completion(head: &ReplyHead) -> Bytes {
    let mut out = BytesMut::with_capacity(160);
    head.put_common(&mut out);
    out.put_slice(b"chat.completion");
    head.put_tail_fields(&mut out);
    out.put_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assist");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{ChatChunk, ChatCompletion};

    fn head() -> ReplyHead<'static> {
        ReplyHead {
            upstream: "a",
            seq: 10,
            created: 7,
            model: "m\"odel",
            fingerprint: "gauntlet-a",
        }
    }

    #[test]
    fn completion_is_openai_json() {
        use rand::SeedableRng;
        let mut rng = SmallRng::seed_from_u64(1);
        let b = head().completion(2, &mut rng, "stop", Usage::new(3, 2), 0, None);
        let c: ChatCompletion = serde_json::from_slice(&b).unwrap();
        assert_eq!(c.id, "chatcmpl-a-a");
        assert_eq!(c.model, "m\"odel");
        let content = c.choices[0].message.content.clone().unwrap();
        assert_eq!(content.split(' ').count(), 3, "{content}");
        assert_eq!(c.usage.unwrap().total_tokens, 5);
        assert!(serde_json::from_slice::<serde_json::Value>(&broken_completion(&head())).is_err());
    }

    #[test]
    fn numbers_are_written_like_fmt() {
        for n in [0u64, 7, 10, 255, 123_456_789, u64::MAX] {
            let mut out = BytesMut::new();
            put_dec(&mut out, n);
            out.put_u8(b' ');
            put_hex(&mut out, n);
            assert_eq!(&out[..], format!("{n} {n:x}").as_bytes());
        }
    }

    #[test]
    fn chunks_are_openai_json() {
        let h = head();
        let p = h.chunk_prefix();
        let mut out = BytesMut::new();
        put_role_chunk(&mut out, &p);
        put_token_chunk(&mut out, &p, " a", Some("length"));
        put_usage_chunk(&mut out, &p, Usage::new(1, 1));
        let text = String::from_utf8(out.to_vec()).unwrap();
        let chunks: Vec<ChatChunk> = text
            .split("\n\n")
            .filter(|s| !s.is_empty())
            .map(|s| serde_json::from_str(s.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert_eq!(
            chunks[1].choices[0].finish_reason.as_deref(),
            Some("length")
        );
        assert!(chunks[2].choices.is_empty());
        assert_eq!(chunks[2].usage.unwrap().total_tokens, 2);
    }
}
