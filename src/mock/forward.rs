//! The fault proxy: a mock whose answers come from a real provider. Requests are forwarded
//! to its URL as they came (the key swapped for the proxy's own when one is configured), and
//! the same faults as a mock's, from the same control API, are played on the way: an outage,
//! a reset, an error or a 429 instead of forwarding, latency before it, a hang; on the answer,
//! a stream cut after N events, a malformed event, a slowed stream. The stats count attempts,
//! outcomes and the tokens the provider's own `usage` reports (OpenAI's and Anthropic's).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Deserialize;

use crate::api::ANTHROPIC_KEY_HEADER;
use crate::openai::{ApiError, ApiErrorKind, SseDecoder};

use super::body::{BodyCut, MockBody};
use super::chat::{cut_off, instead, request_seed, settle};
use super::conn::ConnCtl;
use super::inject::{Action, FaultPlan};
use super::provider::Forward;
use super::request::{BodyError, read_body};
use super::respond::{client_error, injected_error};
use super::state::{InFlight, MockState};
use super::stats::RequestOutcome;

/// Request bodies a proxy passes on: real prompts (long contexts, images) are larger than a
/// mock's synthetic ones.
pub const MAX_FORWARD_BODY: usize = 32 * 1024 * 1024;
/// A non-streamed answer is read whole (to count its usage) up to this size.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Waiting for the provider's answer head; a stream then runs as long as the provider sends.
const HEAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Headers that belong to one hop, never forwarded either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// The parts of a request body the faults and the stats need; anything else passes unread.
#[derive(Deserialize, Default)]
struct Peek {
    #[serde(default)]
    model: Option<String>,
}

/// One request through the proxy.
pub(crate) async fn handle(
    shared: &Arc<MockState>,
    forward: &Forward,
    ctl: &ConnCtl,
    seq: u64,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let in_flight = InFlight::new(shared.clone());
    let (parts, body) = req.into_parts();
    let body = match read_body(body, MAX_FORWARD_BODY).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let msg = format!(
                "Request body is larger than this proxy passes on ({MAX_FORWARD_BODY} bytes)."
            );
            return client_error(shared, ApiError::new(ApiErrorKind::RequestTooLarge, msg));
        }
        Err(BodyError::Read(e)) => {
            let msg = format!("Could not read the request body: {e}");
            return client_error(shared, ApiError::new(ApiErrorKind::InvalidRequest, msg));
        }
    };
    // Only a fault scoped to a model needs the model; with none active the body goes unread.
    let model = if shared.injector.any_active() {
        serde_json::from_slice::<Peek>(&body)
            .unwrap_or_default()
            .model
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut rng = SmallRng::seed_from_u64(request_seed(shared.profile.seed, seq));
    let plan = shared.injector.plan(&model, &mut rng);
    for k in &plan.hits {
        shared.counters.fault(*k);
    }
    if let Some(next) = cut_off(shared, ctl, &plan.action) {
        return settle(shared, ctl, next).await;
    }
    let in_flight = match instead(shared, &plan, &model, in_flight) {
        ControlFlow::Break(next) => return settle(shared, ctl, next).await,
        ControlFlow::Continue(in_flight) => in_flight,
    };
    wait(plan.delay).await;
    let request = match outgoing(forward, &parts, body) {
        Ok(r) => r,
        Err(e) => return client_error(shared, e),
    };
    let answer = match tokio::time::timeout(HEAD_TIMEOUT, forward.client.request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            // The provider could not be reached: the client sees what a gateway would.
            shared.counters.outcome(RequestOutcome::Error);
            tracing::warn!(upstream = %shared.name, "forwarding failed: {e}");
            return injected_error(
                502,
                Some(&format!(
                    "The proxy could not reach the provider: {}",
                    short(&e)
                )),
            );
        }
        Err(_) => {
            shared.counters.outcome(RequestOutcome::Error);
            return injected_error(504, Some("The provider did not answer in time."));
        }
    };
    relay(shared, answer, plan, in_flight).await
}

async fn wait(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d.min(crate::config::MAX_DURATION)).await;
    }
}

fn short(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

/// The request as the provider gets it: the same method, path, query and headers (but those
/// of this hop), the body as it came, and the proxy's key in place of the client's.
fn outgoing(
    forward: &Forward,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ApiError> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("{}{path}", forward.base).parse().map_err(|_| {
        ApiError::new(
            ApiErrorKind::InvalidRequest,
            "the request path cannot be forwarded",
        )
    })?;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    for (name, value) in &parts.headers {
        if HOP_BY_HOP.contains(&name.as_str()) || name == CONTENT_LENGTH || name == HOST {
            continue;
        }
        h.append(name.clone(), value.clone());
    }
    if let Some(key) = &forward.key {
        // The provider's key goes where the client put its own.
        let (name, value) = if h.contains_key(ANTHROPIC_KEY_HEADER) {
            &key.x_api_key
        } else {
            &key.bearer
        };
        h.insert(name.clone(), value.clone());
    }
    Ok(req)
}

/// The provider's answer on its way back, with the answer-side faults played.
async fn relay(
    shared: &Arc<MockState>,
    answer: Response<Incoming>,
    plan: FaultPlan,
    in_flight: InFlight,
) -> Response<MockBody> {
    let (parts, body) = answer.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    let stream = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = parts.status;
    let malformed = matches!(plan.action, Action::Malformed);
    if !stream {
        let bytes = match http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                shared.counters.outcome(RequestOutcome::StreamCut);
                return respond(status, headers, MockBody::cut(Bytes::new()));
            }
        };
        let body = if status.is_success() {
            let usage = Counted::of_json(&bytes);
            shared.counters.tokens(usage.prompt, usage.completion);
            if malformed {
                shared.counters.outcome(RequestOutcome::Malformed);
                let cut = bytes.len().min(24);
                MockBody::full(bytes.slice(..cut))
            } else {
                shared.counters.outcome(RequestOutcome::Ok);
                MockBody::full(bytes)
            }
        } else {
            shared.counters.outcome(provider_outcome(status));
            MockBody::full(bytes)
        };
        drop(in_flight);
        return respond(status, headers, body);
    }
    if !status.is_success() {
        shared.counters.outcome(provider_outcome(status));
    }
    let shaper = Shaper {
        decoder: SseDecoder::new(),
        events: 0,
        cut_after: plan.cut_after,
        malformed,
        gap: plan
            .tokens_per_second
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r)),
        pending: std::collections::VecDeque::new(),
        usage: Counted::default(),
        shared: shared.clone(),
        done: !status.is_success(),
        _in_flight: in_flight,
    };
    let frames = futures_util::stream::unfold(
        (body, shaper, false),
        |(mut body, mut shaper, over)| async move {
            if over {
                return None;
            }
            loop {
                // Events already read go first (a slowed stream sends them one at a time).
                if let Some(passed) = shaper.next_out().await {
                    return Some(match passed {
                        Passed::Send(out) => (Ok(Frame::data(out)), (body, shaper, false)),
                        Passed::Cut(out) => (Ok(Frame::data(out)), (body, shaper, true)),
                    });
                }
                match body.frame().await {
                    None => {
                        shaper.finish();
                        return None;
                    }
                    Some(Err(_)) => {
                        shaper.cut();
                        return Some((Err(BodyCut), (body, shaper, true)));
                    }
                    Some(Ok(f)) => {
                        let Ok(data) = f.into_data() else { continue };
                        if let Some(untouched) = shaper.take(&data) {
                            if untouched.is_empty() {
                                continue;
                            }
                            return Some((Ok(Frame::data(untouched)), (body, shaper, false)));
                        }
                    }
                }
            }
        },
    )
    .boxed();
    respond(
        status,
        headers,
        MockBody::Forward(Box::new(StreamBody::new(frames))),
    )
}

fn respond(status: StatusCode, headers: HeaderMap, body: MockBody) -> Response<MockBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// How a provider's own error counts in the proxy's stats.
fn provider_outcome(status: StatusCode) -> RequestOutcome {
    match status.as_u16() {
        429 => RequestOutcome::RateLimited,
        400..=499 => RequestOutcome::ClientError,
        _ => RequestOutcome::Error,
    }
}

/// Token counts from a provider's usage, in OpenAI's (chat or Responses) or Anthropic's words.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counted {
    prompt: u32,
    completion: u32,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<RawUsage>,
    /// Anthropic's `message_start` carries it inside the message.
    #[serde(default)]
    message: Option<Box<WithUsage>>,
    /// OpenAI Responses' closing event (`response.completed`) carries it in the response.
    #[serde(default)]
    response: Option<Box<WithUsage>>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
}

impl Counted {
    fn of_json(bytes: &[u8]) -> Self {
        let mut u = Self::default();
        if let Ok(w) = serde_json::from_slice::<WithUsage>(bytes) {
            u.merge(&w);
        }
        u
    }

    /// Later counts win: Anthropic's `message_delta` repeats the output count in full.
    fn merge(&mut self, w: &WithUsage) {
        if let Some(m) = w.message.as_ref().or(w.response.as_ref()) {
            self.merge(m);
        }
        let Some(r) = &w.usage else { return };
        let input = r.input_tokens.map(|i| {
            i.saturating_add(r.cache_read_input_tokens.unwrap_or(0))
                .saturating_add(r.cache_creation_input_tokens.unwrap_or(0))
        });
        if let Some(p) = r.prompt_tokens.or(input) {
            self.prompt = p;
        }
        if let Some(c) = r.completion_tokens.or(r.output_tokens) {
            self.completion = c;
        }
    }
}

enum Passed {
    Send(Bytes),
    /// Send this, then cut the stream.
    Cut(Bytes),
}

/// Plays the answer-side faults on a relayed event stream and reads its usage on the way.
struct Shaper {
    decoder: SseDecoder,
    /// Data events passed on so far.
    events: u32,
    cut_after: Option<u32>,
    malformed: bool,
    /// A slowed stream's time between events.
    gap: Option<Duration>,
    /// Events read but not yet sent, when a fault reshapes the stream.
    pending: std::collections::VecDeque<crate::openai::SseEvent>,
    usage: Counted,
    shared: Arc<MockState>,
    /// The outcome is counted (a provider error, or the stream's end).
    done: bool,
    _in_flight: InFlight,
}

impl Shaper {
    /// Reads `data`'s events. Without an answer-side fault the bytes go on untouched (only
    /// read for usage) and are returned; with one, the events wait in `pending` for
    /// `next_out`.
    fn take(&mut self, data: &Bytes) -> Option<Bytes> {
        let mut events = Vec::new();
        if self.decoder.feed(data, |e| events.push(e)).is_err() {
            // Not an event stream the proxy can read: pass it on as it is.
            return Some(data.clone());
        }
        for e in &events {
            if let Ok(w) = serde_json::from_str::<WithUsage>(&e.data) {
                self.usage.merge(&w);
            }
        }
        let shaping = self.cut_after.is_some() || self.malformed || self.gap.is_some();
        if !shaping {
            self.events = self
                .events
                .saturating_add(u32::try_from(events.len()).unwrap_or(u32::MAX));
            return Some(data.clone());
        }
        self.pending.extend(events);
        None
    }

    /// The next bytes to send from the pending events: all of them at once, or one after its
    /// gap on a slowed stream; `None` when none wait.
    async fn next_out(&mut self) -> Option<Passed> {
        let mut out = BytesMut::new();
        while let Some(e) = self.pending.pop_front() {
            if self.cut_after.is_some_and(|n| self.events >= n) {
                self.pending.clear();
                self.cut();
                return Some(Passed::Cut(out.freeze()));
            }
            if let Some(gap) = self.gap {
                tokio::time::sleep(gap).await;
            }
            if let Some(name) = &e.event {
                out.extend_from_slice(b"event: ");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\n");
            }
            crate::openai::encode_event(e.data.as_bytes(), &mut out);
            self.events = self.events.saturating_add(1);
            if self.malformed && self.events == 2 {
                out.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\" trunc\n\n");
                self.shared.counters.outcome(RequestOutcome::Malformed);
                self.done = true;
            }
            if self.gap.is_some() {
                break;
            }
        }
        (!out.is_empty()).then(|| Passed::Send(out.freeze()))
    }

    fn cut(&mut self) {
        self.count_tokens();
        if !self.done {
            self.done = true;
            self.shared.counters.outcome(RequestOutcome::StreamCut);
        }
    }

    fn finish(&mut self) {
        self.count_tokens();
        if !self.done {
            self.done = true;
            self.shared.counters.outcome(RequestOutcome::Ok);
        }
    }

    fn count_tokens(&mut self) {
        let u = std::mem::take(&mut self.usage);
        self.shared.counters.tokens(u.prompt, u.completion);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_in_either_api() {
        let openai = Counted::of_json(br#"{"usage":{"prompt_tokens":12,"completion_tokens":5}}"#);
        assert_eq!(
            openai,
            Counted {
                prompt: 12,
                completion: 5
            }
        );
        let anthropic = Counted::of_json(
            br#"{"usage":{"input_tokens":3,"cache_read_input_tokens":9,"output_tokens":4}}"#,
        );
        assert_eq!(
            anthropic,
            Counted {
                prompt: 12,
                completion: 4
            }
        );
        let mut u = Counted::default();
        let start: WithUsage = serde_json::from_str(
            r#"{"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}"#,
        )
        .unwrap();
        u.merge(&start);
        let delta: WithUsage =
            serde_json::from_str(r#"{"type":"message_delta","usage":{"output_tokens":30}}"#)
                .unwrap();
        u.merge(&delta);
        assert_eq!(
            u,
            Counted {
                prompt: 7,
                completion: 30
            }
        );
        let mut u = Counted::default();
        let completed: WithUsage = serde_json::from_str(
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":11,
                "input_tokens_details":{"cached_tokens":4},"output_tokens":6}}}"#,
        )
        .unwrap();
        u.merge(&completed);
        assert_eq!(
            u,
            Counted {
                prompt: 11,
                completion: 6
            },
            "a Responses stream's closing event; its cached count is part of the input"
        );
        assert_eq!(Counted::of_json(b"not json"), Counted::default());
    }
}
