//! Reading a response: the served-by tag, bounded bodies, streams through the SSE decoder
//! (TTFT, TTFOT, TPOT, inter-token gaps, tokens), and the one outcome the exchange ends in.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::api::responses::{LiteResponse, LiteResponseEvent};
use crate::api::{Api, LiteEvent as MessagesEvent, LiteMessage, MessagesUsage};
use crate::gateway::SHED_HEADER;
use crate::metrics::{ErrorKind, Sample, ServedBy, TokenSource};
use crate::openai::{
    DONE_DATA, GATEWAY_UPSTREAM_HEADER, SseDecoder, UPSTREAM_HEADER, Usage,
    upstream_from_fingerprint,
};

/// Error bodies are read only this far (to reuse the connection); nothing in them is needed.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Unknown upstream names longer than this are cut, so a hostile tag cannot grow the report.
const MAX_NAME_BYTES: usize = 64;

/// What was asked for: the API the answer comes in, and whether as a stream.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub api: Api,
    pub stream: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ResponseLimits {
    pub max_body_bytes: usize,
}

pub fn resolve(upstreams: &[String], name: &str) -> ServedBy {
    match upstreams.iter().position(|u| u == name) {
        Some(i) => u16::try_from(i).map_or_else(|_| other(name), ServedBy::Known),
        None => other(name),
    }
}

fn other(name: &str) -> ServedBy {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    ServedBy::Other(name[..end].into())
}

fn tagged(headers: &HeaderMap) -> Option<&str> {
    [UPSTREAM_HEADER, GATEWAY_UPSTREAM_HEADER]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        // The reference gateway tags its own answers `none`: no upstream was involved.
        .filter(|s| !s.is_empty() && *s != "none")
}

/// Writes a response's token counts into the sample. A prompt count of zero is treated as
/// absent, so the client's own tokenizer count fills it and says so.
fn apply_usage(u: &Usage, sample: &mut Sample) {
    sample.prompt_tokens = u64::from(u.prompt_tokens);
    if u.prompt_tokens > 0 {
        sample.prompt_tokens_from = TokenSource::Usage;
    }
    sample.completion_tokens = u64::from(u.completion_tokens);
    sample.cached_tokens = u64::from(u.cached_tokens());
    sample.reasoning_tokens = u64::from(u.reasoning_tokens());
}

#[derive(Deserialize)]
struct LiteCompletion<'a> {
    #[serde(borrow, default)]
    system_fingerprint: Option<Cow<'a, str>>,
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<Usage>,
}

/// The answer's text, for conversations.
#[derive(Deserialize)]
struct ReplyOnly<'a> {
    #[serde(borrow, default)]
    choices: Vec<ReplyChoice<'a>>,
}

#[derive(Deserialize)]
struct ReplyChoice<'a> {
    #[serde(borrow, default)]
    message: Option<LiteDelta<'a>>,
}

#[derive(Deserialize)]
struct LiteChunk<'a> {
    #[serde(borrow, default)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<LiteChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    /// Some providers report a failure mid-stream as an event with an `error` object.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct LiteChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<LiteDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LiteDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    /// DeepSeek / vLLM style thinking, streamed before the answer.
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    /// Only whether a call is there matters; `IgnoredAny` is zero-sized, so this never
    /// allocates.
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
}

/// What one delta carries, for timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeltaKind {
    /// Answer text or a tool call: what the user waits for.
    Output,
    Reasoning,
}

impl LiteDelta<'_> {
    fn kind(&self) -> Option<DeltaKind> {
        let filled = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|c| !c.is_empty());
        if filled(&self.content) || self.tool_calls.as_ref().is_some_and(|t| !t.is_empty()) {
            Some(DeltaKind::Output)
        } else if filled(&self.reasoning_content) {
            Some(DeltaKind::Reasoning)
        } else {
            None
        }
    }
}

/// Reads the whole response into `sample` and says how the exchange ended.
pub async fn read(
    response: Response<Incoming>,
    Expected { api, stream }: Expected,
    intended_at: Instant,
    limits: &ResponseLimits,
    upstreams: &[String],
    sample: &mut Sample,
    reply: Option<&mut String>,
) -> Result<(), ErrorKind> {
    let status = response.status();
    let tag = tagged(response.headers()).map(|t| resolve(upstreams, t));
    sample.gateway_shed = response.headers().contains_key(SHED_HEADER);
    let response_type = response.headers().get(CONTENT_TYPE).cloned();
    if status == http::StatusCode::TOO_MANY_REQUESTS {
        // Capped at an hour by the reader, so the milliseconds always fit; a wait under one
        // is rounded up to one (a zero would mean none was asked for).
        sample.retry_after_ms = crate::openai::read_retry_after(response.headers()).map(|d| {
            let ms = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
            std::num::NonZeroU32::new(ms).unwrap_or(std::num::NonZeroU32::MIN)
        });
    }
    let (_, mut body) = response.into_parts();
    if !status.is_success() {
        // Drain a bounded amount so the connection can go back to the pool; errors here
        // change nothing about the outcome.
        let mut read = 0usize;
        while read < MAX_ERROR_BODY {
            match body.frame().await {
                Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        let code = status.as_u16();
        return Err(match code {
            429 => {
                sample.gateway_rate_limited = tag.is_none();
                ErrorKind::RateLimited
            }
            400..=499 => ErrorKind::Status4xx,
            500..=599 => ErrorKind::Status5xx,
            _ => ErrorKind::Malformed,
        });
    }
    sample.served_by = tag;
    if !crate::openai::content_type_fits(response_type.as_ref(), stream) {
        // An HTML error page or a JSON answer to a stream request: not what was asked for,
        // whatever the body holds. Dropping the body unread closes the connection.
        return Err(ErrorKind::Malformed);
    }
    if stream {
        read_stream(
            &mut body,
            api,
            intended_at,
            limits,
            upstreams,
            sample,
            reply,
        )
        .await
    } else {
        read_json(&mut body, api, limits, upstreams, sample, reply).await
    }
}

async fn read_json(
    body: &mut Incoming,
    api: Api,
    limits: &ResponseLimits,
    upstreams: &[String],
    sample: &mut Sample,
    reply: Option<&mut String>,
) -> Result<(), ErrorKind> {
    // Most bodies arrive in one frame: keep it as is and copy only when a second one comes.
    let mut first: Option<bytes::Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ErrorKind::Truncated)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len();
        if len > limits.max_body_bytes {
            return Err(ErrorKind::Malformed);
        }
        match &first {
            None if rest.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    let buf: &[u8] = first.as_deref().unwrap_or(&rest);
    // Checking UTF-8 over the whole body at once and parsing the `str` is ~10% quicker than
    // `from_slice`, which checks each string on its own; JSON is UTF-8 either way.
    let text = std::str::from_utf8(buf).map_err(|_| ErrorKind::Malformed)?;
    match api {
        Api::Chat => {}
        Api::Messages => return read_message(text, sample, reply),
        Api::Responses => return read_response(text, sample, reply),
        Api::Embeddings => return read_embeddings(text, sample),
    }
    let parsed: LiteCompletion<'_> =
        serde_json::from_str(text).map_err(|_| ErrorKind::Malformed)?;
    if parsed.choices.is_empty() {
        return Err(ErrorKind::Malformed);
    }
    if let Some(reply) = reply {
        // Only conversations need the answer's text (their next turn resends it): a second,
        // typed parse there keeps the common path free of it.
        let answer: ReplyOnly<'_> = serde_json::from_str(text).map_err(|_| ErrorKind::Malformed)?;
        if let Some(content) = answer
            .choices
            .first()
            .and_then(|c| c.message.as_ref())
            .and_then(|m| m.content.as_deref())
        {
            reply.push_str(content);
        }
    }
    if sample.served_by.is_none() {
        sample.served_by = parsed
            .system_fingerprint
            .as_deref()
            .and_then(upstream_from_fingerprint)
            .map(|n| resolve(upstreams, n));
    }
    if let Some(u) = &parsed.usage {
        apply_usage(u, sample);
    }
    Ok(())
}

/// A Messages answer: a `message` with content blocks. It names no upstream in its body; the
/// served-by tag comes from the headers only.
fn read_message(
    text: &str,
    sample: &mut Sample,
    reply: Option<&mut String>,
) -> Result<(), ErrorKind> {
    let parsed: LiteMessage<'_> = serde_json::from_str(text).map_err(|_| ErrorKind::Malformed)?;
    if parsed.kind != "message" {
        return Err(ErrorKind::Malformed);
    }
    if let Some(reply) = reply {
        for t in parsed.content.iter().filter_map(|b| b.text.as_deref()) {
            reply.push_str(t);
        }
    }
    if let Some(u) = parsed.usage {
        apply_usage(&u.to_usage(), sample);
    }
    Ok(())
}

/// A Responses answer: a `response` whose message items hold the text. A `failed` response
/// is the provider failing (it comes with a 200 only in odd gateways, but it is no answer).
fn read_response(
    text: &str,
    sample: &mut Sample,
    reply: Option<&mut String>,
) -> Result<(), ErrorKind> {
    let parsed: LiteResponse<'_> = serde_json::from_str(text).map_err(|_| ErrorKind::Malformed)?;
    if parsed.object != "response" {
        return Err(ErrorKind::Malformed);
    }
    if parsed.status.as_deref() == Some("failed") {
        return Err(ErrorKind::Status5xx);
    }
    if let Some(reply) = reply {
        for t in parsed.text() {
            reply.push_str(t);
        }
    }
    if let Some(u) = parsed.usage {
        apply_usage(&u.to_usage(), sample);
    }
    Ok(())
}

/// An embeddings answer: a list with one vector per input, and the input's token count.
#[derive(Deserialize)]
struct LiteEmbeddings {
    object: String,
    data: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<Usage>,
}

fn read_embeddings(text: &str, sample: &mut Sample) -> Result<(), ErrorKind> {
    let parsed: LiteEmbeddings = serde_json::from_str(text).map_err(|_| ErrorKind::Malformed)?;
    if parsed.object != "list" || parsed.data.is_empty() {
        return Err(ErrorKind::Malformed);
    }
    if let Some(u) = &parsed.usage {
        apply_usage(u, sample);
    }
    Ok(())
}

/// What a stream has shown so far.
#[derive(Default)]
struct StreamState {
    done: bool,
    finished: bool,
    /// Content and tool-call deltas.
    output_deltas: u64,
    reasoning_deltas: u64,
    first_delta: Option<Instant>,
    first_output: Option<Instant>,
    last_output: Option<Instant>,
    usage: Option<Usage>,
    fingerprint: Option<Box<str>>,
    failure: Option<ErrorKind>,
    /// A Messages stream's counts so far (`message_start`'s, then `message_delta`'s).
    messages_usage: Option<MessagesUsage>,
    /// The API whose events these are.
    api: Api,
}

impl StreamState {
    /// One event of the stream, read as its API writes them.
    fn event(
        &mut self,
        data: &str,
        intended_at: Instant,
        sample: &mut Sample,
        reply: Option<&mut String>,
    ) {
        // After a failure the rest of the stream is drained unread.
        if self.failure.is_some() {
            return;
        }
        match self.api {
            Api::Chat => self.chat_event(data, intended_at, sample, reply),
            Api::Messages => self.messages_event(data, intended_at, sample, reply),
            Api::Responses => self.responses_event(data, intended_at, sample, reply),
            // Embeddings are never streamed: a stream where a list was asked for is no answer.
            Api::Embeddings => self.failure = Some(ErrorKind::Malformed),
        }
    }

    fn chat_event(
        &mut self,
        data: &str,
        intended_at: Instant,
        sample: &mut Sample,
        mut reply: Option<&mut String>,
    ) {
        if data == DONE_DATA {
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_str::<LiteChunk<'_>>(data) else {
            self.failure = Some(ErrorKind::Malformed);
            return;
        };
        if chunk.error.is_some() {
            self.failure = Some(ErrorKind::Status5xx);
            return;
        }
        if self.fingerprint.is_none() {
            self.fingerprint = chunk.system_fingerprint.as_deref().map(Into::into);
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in &chunk.choices {
            if choice.finish_reason.is_some() {
                self.finished = true;
            }
            let Some(kind) = choice.delta.as_ref().and_then(LiteDelta::kind) else {
                continue;
            };
            let text = choice.delta.as_ref().and_then(|d| d.content.as_deref());
            self.delta(kind, text, intended_at, sample, reply.as_deref_mut());
        }
    }

    /// One Messages stream event. `ping` and the block bounds carry nothing to measure; an
    /// `error` event is the provider failing mid-stream (`overloaded_error` and the like).
    fn messages_event(
        &mut self,
        data: &str,
        intended_at: Instant,
        sample: &mut Sample,
        reply: Option<&mut String>,
    ) {
        let Ok(event) = serde_json::from_str::<MessagesEvent<'_>>(data) else {
            self.failure = Some(ErrorKind::Malformed);
            return;
        };
        match event.kind.as_ref() {
            "message_start" => {
                if let Some(u) = event.message.and_then(|m| m.usage) {
                    self.messages_usage.get_or_insert_default().merge(&u);
                }
            }
            "content_block_delta" => {
                let Some(d) = &event.delta else {
                    return;
                };
                let filled = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|t| !t.is_empty());
                let kind = match d.kind.as_deref() {
                    Some("thinking_delta") if filled(&d.thinking) => DeltaKind::Reasoning,
                    Some("text_delta") if filled(&d.text) => DeltaKind::Output,
                    Some("input_json_delta") if filled(&d.partial_json) => DeltaKind::Output,
                    _ => return,
                };
                self.delta(kind, d.text.as_deref(), intended_at, sample, reply);
            }
            "message_delta" => {
                if event
                    .delta
                    .as_ref()
                    .is_some_and(|d| d.stop_reason.is_some())
                {
                    self.finished = true;
                }
                if let Some(u) = &event.usage {
                    self.messages_usage.get_or_insert_default().merge(u);
                }
            }
            "message_stop" => self.done = true,
            "error" => self.failure = Some(ErrorKind::Status5xx),
            _ => {}
        }
    }

    /// One Responses stream event. The output's text and a call's arguments are what the
    /// user waits for; reasoning text is reasoning; `response.completed` (or `incomplete`,
    /// when the budget ran out) ends the stream with its usage; `response.failed` and
    /// `error` are the provider failing mid-stream. The bounds of items and parts carry
    /// nothing to measure.
    fn responses_event(
        &mut self,
        data: &str,
        intended_at: Instant,
        sample: &mut Sample,
        reply: Option<&mut String>,
    ) {
        let Ok(event) = serde_json::from_str::<LiteResponseEvent<'_>>(data) else {
            self.failure = Some(ErrorKind::Malformed);
            return;
        };
        let filled = event.delta.as_deref().filter(|t| !t.is_empty());
        // Only the answer's text is kept for a conversation's next turn.
        let (kind, text) = match event.kind.as_ref() {
            "response.output_text.delta" if filled.is_some() => (DeltaKind::Output, filled),
            "response.function_call_arguments.delta" | "response.refusal.delta"
                if filled.is_some() =>
            {
                (DeltaKind::Output, None)
            }
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta"
                if filled.is_some() =>
            {
                (DeltaKind::Reasoning, None)
            }
            "response.completed" | "response.incomplete" => {
                self.finished = true;
                self.done = true;
                if let Some(u) = event.response.and_then(|r| r.usage) {
                    self.usage = Some(u.to_usage());
                }
                return;
            }
            "response.failed" | "error" => {
                self.failure = Some(ErrorKind::Status5xx);
                return;
            }
            _ => return,
        };
        self.delta(kind, text, intended_at, sample, reply);
    }

    /// A delta that carries something: first-token and inter-token timing, and the answer.
    fn delta(
        &mut self,
        kind: DeltaKind,
        text: Option<&str>,
        intended_at: Instant,
        sample: &mut Sample,
        reply: Option<&mut String>,
    ) {
        let now = Instant::now();
        if self.first_delta.is_none() {
            self.first_delta = Some(now);
            sample.ttft = Some(now.saturating_duration_since(intended_at));
        }
        match kind {
            DeltaKind::Reasoning => self.reasoning_deltas += 1,
            DeltaKind::Output => {
                if let (Some(r), Some(c)) = (reply, text) {
                    r.push_str(c);
                }
                match self.last_output {
                    None => {
                        self.first_output = Some(now);
                        sample.ttfot = Some(now.saturating_duration_since(intended_at));
                    }
                    Some(prev) => sample.itl.push(now.saturating_duration_since(prev)),
                }
                self.last_output = Some(now);
                self.output_deltas += 1;
            }
        }
    }

    /// (last output token - first output token) / (output tokens - 1). Output tokens are the
    /// usage's completion count less its reasoning, when the provider says; else the output
    /// deltas seen, one token each.
    fn tpot(&self) -> Option<Duration> {
        if self.messages_usage.is_some() && self.reasoning_deltas > 0 {
            // Anthropic's output count holds its thinking without saying how much: spreading
            // it over the answer's span would flatter the pace.
            return None;
        }
        let (first, last) = (self.first_output?, self.last_output?);
        let tokens = match self.usage {
            Some(u) if u.completion_tokens > 0 => {
                u64::from(u.completion_tokens.saturating_sub(u.reasoning_tokens()))
            }
            _ => self.output_deltas,
        };
        let gaps = u32::try_from(tokens.checked_sub(1)?).ok()?;
        (gaps > 0).then(|| last.saturating_duration_since(first) / gaps)
    }
}

async fn read_stream(
    body: &mut Incoming,
    api: Api,
    intended_at: Instant,
    limits: &ResponseLimits,
    upstreams: &[String],
    sample: &mut Sample,
    mut reply: Option<&mut String>,
) -> Result<(), ErrorKind> {
    let mut decoder = SseDecoder::new();
    let mut state = StreamState {
        api,
        ..StreamState::default()
    };
    let mut total = 0usize;
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            cut = true;
            break;
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        total += data.len();
        if total > limits.max_body_bytes {
            return Err(ErrorKind::Malformed);
        }
        decoder
            .feed(data, |ev| {
                state.event(&ev.data, intended_at, sample, reply.as_deref_mut());
            })
            .map_err(|_| ErrorKind::Malformed)?;
        if let Some(kind) = state.failure {
            return Err(kind);
        }
    }
    if !cut {
        if let Some(ev) = decoder.finish().map_err(|_| ErrorKind::Malformed)? {
            state.event(&ev.data, intended_at, sample, reply);
        }
        if let Some(kind) = state.failure {
            return Err(kind);
        }
    }
    if sample.served_by.is_none() {
        sample.served_by = state
            .fingerprint
            .as_deref()
            .and_then(upstream_from_fingerprint)
            .map(|n| resolve(upstreams, n));
    }
    if let Some(u) = state.messages_usage {
        state.usage = Some(u.to_usage());
    }
    sample.tpot = state.tpot();
    match state.usage {
        Some(u) => apply_usage(&u, sample),
        // Without usage each delta is taken as one token, as most providers stream them.
        None => {
            sample.completion_tokens = state.output_deltas + state.reasoning_deltas;
            sample.reasoning_tokens = state.reasoning_deltas;
        }
    }
    if state.done || state.finished {
        Ok(())
    } else {
        Err(ErrorKind::Truncated)
    }
}
