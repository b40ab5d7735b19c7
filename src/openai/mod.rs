//! The OpenAI wire layer shared by the mock upstreams, the gateway and the load client:
//! request/response/chunk types, error bodies, SSE encoding and decoding, the tags that
//! say which upstream served a response, and rate limits (buckets and their headers).

mod bucket;
mod error;
mod prompts;
mod ratelimit;
mod sse;
mod types;
mod wire;

pub use bucket::{Exhausted, MinuteBuckets, Refusal};
pub use error::{ApiError, ApiErrorKind, ErrorBody, ErrorDetail};
pub use prompts::{MAX_PROMPTS, Prompt, Prompts};
pub use ratelimit::{
    BucketState, RETRY_AFTER_MS_HEADER, RateLimitHeaders, duration_text, read_retry_after,
    write_retry_after,
};
pub use sse::{
    DATA_PREFIX, DEFAULT_MAX_EVENT_BYTES, DONE, DONE_DATA, SseDecoder, SseError, SseEvent,
    encode_event, encode_json,
};
pub use types::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice,
    CompletionTokensDetails, Content, ContentPart, Delta, FunctionCall, FunctionDef,
    JsonSchemaFormat, Message, ModelInfo, ModelList, PromptTokensDetails, ResponseFormat,
    RoutedRequest, StreamOptions, Tool, ToolCall, ToolCallDelta, Usage, estimate_prompt_tokens,
};

pub use wire::{
    GATEWAY_ATTEMPTS_HEADER, GATEWAY_UPSTREAM_HEADER, REQUEST_ID_HEADER, UPSTREAM_HEADER, bearer,
    bearer_token,
};

/// `system_fingerprint` value naming the upstream; the body survives gateways that drop headers.
pub fn fingerprint_for(upstream: &str) -> String {
    format!("gauntlet-{upstream}")
}

/// The upstream named by a `system_fingerprint`, if a gauntlet mock wrote it.
pub fn upstream_from_fingerprint(fingerprint: &str) -> Option<&str> {
    fingerprint
        .strip_prefix("gauntlet-")
        .filter(|s| !s.is_empty())
}

/// Seconds since the Unix epoch, as OpenAI's `created` fields count.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a success's content type fits the request: an event stream for a stream, JSON
/// otherwise. A missing one fits (the body is judged instead); an unreadable one does not.
/// The engine and the gateway hold upstreams to the same rule.
pub fn content_type_fits(value: Option<&http::HeaderValue>, stream: bool) -> bool {
    let Some(value) = value else {
        return true;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    if stream {
        essence.eq_ignore_ascii_case("text/event-stream")
    } else {
        let lower = essence.to_ascii_lowercase();
        lower == "application/json" || lower.ends_with("+json")
    }
}
