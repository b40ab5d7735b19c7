//! OpenAI's legacy text completions (`POST /v1/completions`), which LLM benchmark tools send
//! by default: the prompt is read into the chat request the rest of the mock serves (same
//! timing, limits, faults and accounting), one message per prompt, and answered in that API's
//! shapes: a `text_completion` object with one `text` choice per prompt, and stream chunks of
//! the same object kind. Errors stay OpenAI's.

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::openai::{
    ApiError, ApiErrorKind, ChatRequest, Content, MAX_PROMPTS, Message, Prompts, StreamOptions,
    Usage,
};
use crate::tokenizer::Tokenizer;

use super::reply::{ReplyHead, put_dec, put_hex, put_json_str, put_usage};
use super::words::word;

/// OpenAI's default `max_tokens` for this API; an explicit `null` means "until done".
const DEFAULT_MAX_TOKENS: u32 = 16;

/// Words written into one whole answer, over all its choices; the rest are counted only.
const MAX_WORDS: u32 = 1 << 20;

#[derive(Deserialize)]
struct CompletionsRequest<'a> {
    model: String,
    #[serde(borrow)]
    prompt: &'a RawValue,
    #[serde(default, deserialize_with = "present")]
    max_tokens: Option<Option<u32>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// Tells a `null` (`Some(None)`) from a field left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

fn invalid_prompt(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::InvalidRequest, message).with_param("prompt")
}

/// A completions request as the chat request the mock serves, with the prompt tokens of each
/// prompt: counted from its text alone (or its token ids), as this API has no message framing.
pub(crate) fn to_chat(
    body: &[u8],
    tokenizer: &Tokenizer,
) -> Result<(ChatRequest, Vec<u32>), ApiError> {
    let r: CompletionsRequest<'_> =
        serde_json::from_slice(body).map_err(|e| ApiError::from_json_error(&e))?;
    let prompts: Prompts = serde_json::from_str(r.prompt.get())
        .map_err(|e| invalid_prompt(format!("Invalid value for 'prompt': {e}")))?;
    if prompts.is_empty() {
        return Err(invalid_prompt(
            "'prompt' is an empty array; send a string, or at least one prompt in the array.",
        ));
    }
    if prompts.len() > MAX_PROMPTS {
        return Err(invalid_prompt(format!(
            "'prompt' holds {} prompts; at most {MAX_PROMPTS} are accepted per request.",
            prompts.len()
        )));
    }
    let count = |t: &str| u32::try_from(tokenizer.count_remembered(t)).unwrap_or(u32::MAX);
    let ids = |t: &[u32]| u32::try_from(t.len()).unwrap_or(u32::MAX);
    let mut each = Vec::with_capacity(prompts.len());
    // Token ids are decoded so the prefix cache, which keys on text, sees them too.
    let texts: Vec<String> = match prompts {
        Prompts::Text(t) => {
            each.push(count(&t));
            vec![t]
        }
        Prompts::Texts(v) => {
            each.extend(v.iter().map(|t| count(t)));
            v
        }
        Prompts::Tokens(t) => {
            each.push(ids(&t));
            vec![tokenizer.decode(&t)]
        }
        Prompts::TokenLists(v) => {
            each.extend(v.iter().map(|t| ids(t)));
            v.iter().map(|t| tokenizer.decode(t)).collect()
        }
    };
    let messages = texts
        .into_iter()
        .map(|t| Message {
            role: "user".into(),
            content: Some(Content::Text(t)),
        })
        .collect();
    let request = ChatRequest {
        model: r.model,
        messages,
        stream: r.stream,
        stream_options: r.stream_options,
        max_tokens: r.max_tokens.unwrap_or(Some(DEFAULT_MAX_TOKENS)),
        max_completion_tokens: None,
        tools: None,
        tool_choice: None,
        response_format: None,
    };
    Ok((request, each))
}

/// How many choices the answer to `request` (made by [`to_chat`]) has: one per prompt.
pub(crate) fn choices(request: &ChatRequest) -> u32 {
    u32::try_from(request.messages.len())
        .unwrap_or(u32::MAX)
        .max(1)
}

/// `{"id":"cmpl-…","object":"text_completion",…,"choices":[`
fn put_head(out: &mut BytesMut, head: &ReplyHead<'_>) {
    // Upstream names are plain ASCII (checked at start), so the id needs no escaping.
    out.put_slice(b"{\"id\":\"cmpl-");
    out.put_slice(head.upstream.as_bytes());
    out.put_u8(b'-');
    put_hex(out, head.seq);
    out.put_slice(b"\",\"object\":\"text_completion\",\"created\":");
    put_dec(out, head.created);
    out.put_slice(b",\"model\":");
    put_json_str(out, head.model);
    out.put_slice(b",\"system_fingerprint\":");
    put_json_str(out, head.fingerprint);
    out.put_slice(b",\"choices\":[");
}

fn put_choice_tail(out: &mut BytesMut, index: u32, finish: Option<&str>) {
    out.put_slice(b"\",\"index\":");
    put_dec(out, u64::from(index));
    out.put_slice(b",\"logprobs\":null,\"finish_reason\":");
    match finish {
        Some(f) => put_json_str(out, f),
        None => out.put_slice(b"null"),
    }
    out.put_u8(b'}');
}

/// The whole non-stream answer: `choices` choices of `tokens` words each.
pub(crate) fn completion(
    head: &ReplyHead<'_>,
    tokens: u32,
    choices: u32,
    rng: &mut SmallRng,
    finish: &str,
    usage: Usage,
) -> Bytes {
    let per_choice = tokens.min(1 << 16).min(MAX_WORDS / choices.max(1));
    let mut out = BytesMut::with_capacity(256 + choices as usize * (80 + per_choice as usize * 8));
    put_head(&mut out, head);
    for i in 0..choices {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(b"{\"text\":\"");
        for _ in 0..per_choice {
            out.put_slice(word(rng).as_bytes());
        }
        put_choice_tail(&mut out, i, Some(finish));
    }
    out.put_slice(b"],\"usage\":");
    put_usage(&mut out, usage);
    out.put_u8(b'}');
    out.freeze()
}

/// `data: {"id":…,"object":"text_completion",…,"choices":[` shared by every chunk; the usage
/// chunk (`reply::put_usage_chunk`) closes it as chat's does.
pub(crate) fn chunk_prefix(head: &ReplyHead<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(crate::openai::DATA_PREFIX);
    put_head(&mut out, head);
    out.freeze()
}

/// One token of choice `index`; its last carries the finish reason.
pub(crate) fn put_text_chunk(
    out: &mut BytesMut,
    prefix: &[u8],
    index: u32,
    token: &str,
    finish: Option<&str>,
) {
    out.put_slice(prefix);
    out.put_slice(b"{\"text\":\"");
    out.put_slice(token.as_bytes());
    put_choice_tail(out, index, finish);
    out.put_slice(b"]}\n\n");
}

/// A 200 body that does not parse, for the `malformed` fault.
pub(crate) fn broken_completion(head: &ReplyHead<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(192);
    put_head(&mut out, head);
    out.put_slice(b"{\"text\":\" trunc");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;
    use rand::SeedableRng;

    fn head() -> ReplyHead<'static> {
        ReplyHead::for_test("m\"x")
    }

    fn tokenizer() -> Tokenizer {
        Tokenizer::new(Encoding::O200k).unwrap()
    }

    #[test]
    fn a_prompt_becomes_a_chat_request_counted_from_its_text_alone() {
        let t = tokenizer();
        let (chat, each) =
            to_chat(br#"{"model":"m","prompt":"hello world","stream":true}"#, &t).unwrap();
        assert_eq!(chat.model, "m");
        assert_eq!(each, [2], "no per-message overhead");
        assert_eq!(chat.max_completion(), Some(16), "OpenAI's default");
        assert!(chat.is_stream() && !chat.include_usage());
        assert_eq!(choices(&chat), 1);

        let body = br#"{"model":"m","prompt":["hello world","hello"],"max_tokens":null,
            "stream_options":{"include_usage":true}}"#;
        let (chat, each) = to_chat(body, &t).unwrap();
        assert_eq!(each, [2, 1]);
        assert_eq!(chat.max_completion(), None, "null: until the model stops");
        assert!(chat.include_usage());
        assert_eq!(choices(&chat), 2);

        let ids = t.encode("hello world");
        let body = format!(r#"{{"model":"m","prompt":[{ids:?}, [1,2,3]],"max_tokens":5}}"#);
        let (chat, each) = to_chat(body.as_bytes(), &t).unwrap();
        assert_eq!(each, [2, 3], "token ids count as themselves");
        assert_eq!(chat.max_completion(), Some(5));
        assert_eq!(
            chat.messages[0].content,
            Some(Content::Text("hello world".into()))
        );
    }

    #[test]
    fn a_bad_prompt_is_a_400_naming_prompt() {
        let t = tokenizer();
        for body in [
            r#"{"model":"m","prompt":7}"#,
            r#"{"model":"m","prompt":{"text":"x"}}"#,
            r#"{"model":"m","prompt":[]}"#,
            r#"{"model":"m","prompt":["a",[1]]}"#,
            r#"{"model":"m"}"#,
        ] {
            let e = to_chat(body.as_bytes(), &t).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param.as_deref(), Some("prompt"), "{body}: {e}");
        }
    }

    #[test]
    fn answers_are_text_completion_json() {
        let mut rng = SmallRng::seed_from_u64(1);
        let b = completion(&head(), 3, 2, &mut rng, "length", Usage::new(5, 6));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["id"], "cmpl-a-ff");
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["model"], "m\"x");
        assert_eq!(v["created"], 7);
        let choices = v["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 2);
        for (i, c) in choices.iter().enumerate() {
            assert_eq!(c["index"], i);
            assert_eq!(c["finish_reason"], "length");
            assert!(c["logprobs"].is_null());
            let text = c["text"].as_str().unwrap();
            assert_eq!(text.split_whitespace().count(), 3, "{text}");
        }
        assert_eq!(v["usage"]["total_tokens"], 11);
        assert!(serde_json::from_slice::<serde_json::Value>(&broken_completion(&head())).is_err());

        let prefix = chunk_prefix(&head());
        let mut out = BytesMut::new();
        put_text_chunk(&mut out, &prefix, 0, " a", None);
        put_text_chunk(&mut out, &prefix, 1, " b", Some("stop"));
        super::super::reply::put_usage_chunk(&mut out, &prefix, Usage::new(1, 2));
        let text = String::from_utf8(out.to_vec()).unwrap();
        let chunks: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter(|s| !s.is_empty())
            .map(|s| serde_json::from_str(s.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
        assert_eq!(chunks[0]["choices"][0]["text"], " a");
        assert!(chunks[0]["choices"][0]["finish_reason"].is_null());
        assert_eq!(chunks[1]["choices"][0]["index"], 1);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[2]["choices"].as_array().map(Vec::len), Some(0));
        assert_eq!(chunks[2]["usage"]["completion_tokens"], 2);
    }
}
