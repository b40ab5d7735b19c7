//! Answering API requests: routing, validating a chat request, applying limits and faults,
//! and producing the completion (JSON or a paced stream) the profile calls for.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::openai::{
    ApiError, ApiErrorKind, ChatRequest, REQUEST_ID_HEADER, UPSTREAM_HEADER, Usage,
    estimate_prompt_tokens,
};

use super::body::{MockBody, StreamPlan, TokenStream};
use super::control;
use super::fault::RateLimitCode;
use super::inject::{Action, Plan};
use super::limits::{RateHeaders, reset_text};
use super::reply::{ReplyHead, broken_completion};
use super::server::{ConnCtl, Shared};
use super::stats::{InFlight, RequestOutcome};

const MIN_SLEEP: Duration = Duration::from_micros(500);

const JSON: HeaderValue = HeaderValue::from_static("application/json");

pub(crate) async fn handle(
    shared: Arc<Shared>,
    ctl: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let seq = shared.seq.fetch_add(1, Relaxed);
    let mut resp = if req.uri().path().starts_with(control::PREFIX) {
        // Rare and large: boxed so the hot path's future stays small.
        Box::pin(control::handle(&shared, req)).await
    } else {
        shared.counters.requests.fetch_add(1, Relaxed);
        route(&shared, &ctl, seq, req).await
    };
    let h = resp.headers_mut();
    h.insert(UPSTREAM_HEADER, shared.upstream_header.clone());
    if let Ok(v) = HeaderValue::try_from(format!("req_{seq:x}")) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    resp
}

async fn route(
    shared: &Arc<Shared>,
    ctl: &ConnCtl,
    seq: u64,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            chat(shared, ctl, seq, req).await
        }
        (&Method::GET | &Method::HEAD, "/v1/models" | "/models") => {
            shared.counters.outcome(RequestOutcome::Ok);
            let mut r = Response::new(MockBody::full(shared.models_json.clone()));
            r.headers_mut().insert(CONTENT_TYPE, JSON);
            r
        }
        (m, "/v1/chat/completions" | "/chat/completions" | "/v1/models" | "/models") => {
            let allow = if path.ends_with("models") {
                "GET"
            } else {
                "POST"
            };
            let msg = format!("{m} is not allowed on {path}; use {allow}");
            let mut r = client_error(shared, ApiError::new(ApiErrorKind::MethodNotAllowed, msg));
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            r
        }
        _ => {
            let msg = format!(
                "Unknown request URL: {} {path}. This mock serves POST /v1/chat/completions and GET /v1/models.",
                req.method()
            );
            client_error(shared, ApiError::new(ApiErrorKind::UnknownUrl, msg))
        }
    }
}

pub(crate) fn error_response(e: &ApiError) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(e.to_json()));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

fn client_error(shared: &Shared, e: ApiError) -> Response<MockBody> {
    shared.counters.outcome(RequestOutcome::ClientError);
    error_response(&e)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Spreads request numbers over the seed space so neighbouring requests are unrelated.
fn request_seed(seed: u64, seq: u64) -> u64 {
    let mut z = seed ^ seq.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn chat(
    shared: &Arc<Shared>,
    ctl: &ConnCtl,
    seq: u64,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let in_flight = InFlight::new(shared.clone());
    let profile = &shared.profile;
    let limits = &profile.limits;
    let has_key = bearer(req.headers()).is_some();
    // Only the rate limiter needs the key itself.
    let key = match &shared.limiter {
        Some(_) => bearer(req.headers()).map(str::to_string),
        None => None,
    };
    if limits.require_api_key && !has_key {
        return client_error(
            shared,
            ApiError::new(
                ApiErrorKind::InvalidApiKey,
                "You didn't provide an API key. Send it as `Authorization: Bearer YOUR_KEY`.",
            ),
        );
    }
    let too_large = || {
        ApiError::new(
            ApiErrorKind::RequestTooLarge,
            format!(
                "Request body is larger than this server accepts ({} bytes).",
                limits.max_body_bytes
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return client_error(shared, too_large());
    }
    let body = match read_body(req.into_body(), limits.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return client_error(shared, too_large()),
        Err(BodyError::Read(e)) => {
            let msg = format!("Could not read the request body: {e}");
            return client_error(shared, ApiError::new(ApiErrorKind::InvalidRequest, msg));
        }
    };
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return client_error(shared, ApiError::from_json_error(&e)),
    };
    let model_index = profile.models.iter().position(|m| m.name == request.model);
    shared.counters.model(model_index);
    let Some(model) = model_index.and_then(|i| profile.models.get(i)) else {
        let msg = format!(
            "The model `{}` does not exist or you do not have access to it.",
            request.model
        );
        return client_error(
            shared,
            ApiError::new(ApiErrorKind::ModelNotFound, msg).with_param("model"),
        );
    };
    let prompt_tokens = estimate_prompt_tokens(&request.messages);
    let max_tokens = request.max_completion();
    if max_tokens == Some(0) {
        let e = ApiError::new(
            ApiErrorKind::InvalidRequest,
            "max_tokens must be at least 1",
        )
        .with_param("max_tokens");
        return client_error(shared, e);
    }
    if let Some(window) = model.context_window {
        let wanted = u64::from(prompt_tokens) + u64::from(max_tokens.unwrap_or(0));
        if wanted > u64::from(window) {
            let msg = format!(
                "This model's maximum context length is {window} tokens. However, you requested {wanted} tokens ({prompt_tokens} in the messages, {} in the completion). Please reduce the length of the messages or completion.",
                max_tokens.unwrap_or(0)
            );
            let e = ApiError::new(ApiErrorKind::ContextLengthExceeded, msg).with_param("messages");
            return client_error(shared, e);
        }
    }

    let mut rng = SmallRng::seed_from_u64(request_seed(profile.seed, seq));
    let plan = shared.injector.plan(&model.name, &mut rng);
    for k in &plan.hits {
        shared.counters.fault(*k);
    }
    match plan.action {
        Action::Outage => {
            shared.counters.outcome(RequestOutcome::Outage);
            ctl.close();
            return std::future::pending().await;
        }
        Action::Reset => {
            shared.counters.outcome(RequestOutcome::Reset);
            ctl.reset();
            return std::future::pending().await;
        }
        _ => {}
    }

    if let Some(limit) = limits.concurrency
        && in_flight.count() > i64::from(limit.get())
    {
        let msg = format!(
            "Too many concurrent requests: this provider handles {limit} at a time. Please retry shortly."
        );
        let headers = synthetic_headers(shared, Duration::from_secs(1));
        return rate_limited(
            shared,
            &msg,
            RateLimitCode::RateLimitExceeded,
            Duration::from_secs(1),
            &headers,
        );
    }
    if let Some(limiter) = &shared.limiter {
        let budget =
            max_tokens.unwrap_or_else(|| profile.completion_tokens.median().round() as u32);
        let cost = prompt_tokens.saturating_add(budget);
        if let Err(refusal) = limiter.admit(key.as_deref().unwrap_or(""), cost, Instant::now()) {
            let msg = format!(
                "Rate limit reached for {} on this key. Please try again in {}.",
                model.name,
                reset_text(refusal.retry_after)
            );
            return rate_limited(
                shared,
                &msg,
                RateLimitCode::RateLimitExceeded,
                refusal.retry_after,
                &refusal.headers,
            );
        }
    }

    if !plan.delay.is_zero() {
        Box::pin(tokio::time::sleep(plan.delay)).await;
    }
    match &plan.action {
        Action::Error { status, message } => {
            shared.counters.outcome(RequestOutcome::Error);
            return injected_error(*status, message.as_deref());
        }
        Action::RateLimit { code, retry_after } => {
            let msg = match code {
                RateLimitCode::RateLimitExceeded => format!(
                    "Rate limit reached for {}. Please try again in {}.",
                    model.name,
                    reset_text(*retry_after)
                ),
                RateLimitCode::InsufficientQuota => {
                    "You exceeded your current quota, please check your plan and billing details."
                        .to_string()
                }
            };
            let headers = synthetic_headers(shared, *retry_after);
            return rate_limited(shared, &msg, *code, *retry_after, &headers);
        }
        Action::Hang(hold) => {
            shared.counters.outcome(RequestOutcome::Hang);
            let hold = *hold;
            let mut stop = shared.shutdown.clone();
            Box::pin(async move {
                tokio::select! {
                    _ = tokio::time::sleep(hold) => {}
                    _ = super::server::stopping(&mut stop) => {}
                }
            })
            .await;
            ctl.close();
            return std::future::pending().await;
        }
        _ => {}
    }
    serve(
        shared,
        seq,
        &request,
        &model.name,
        prompt_tokens,
        max_tokens,
        plan,
        rng,
        in_flight,
    )
    .await
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the list
async fn serve(
    shared: &Arc<Shared>,
    seq: u64,
    request: &ChatRequest,
    model: &str,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
    plan: Plan,
    mut rng: SmallRng,
    in_flight: InFlight,
) -> Response<MockBody> {
    let profile = &shared.profile;
    let (completion_tokens, finish_reason) = match max_tokens {
        Some(m) => (m, "length"),
        None => {
            let n = profile.completion_tokens.sample(&mut rng).round().max(1.0);
            (n.min(f64::from(u32::MAX)) as u32, "stop")
        }
    };
    let ttft = profile.ttft.sample(&mut rng);
    let tokens_per_second = plan
        .tokens_per_second
        .unwrap_or_else(|| profile.tokens_per_second.sample(&mut rng))
        .max(1e-3);
    let malformed = matches!(plan.action, Action::Malformed);
    let outcome = if malformed {
        RequestOutcome::Malformed
    } else if plan.cut_after.is_some_and(|c| c < completion_tokens) {
        RequestOutcome::StreamCut
    } else {
        RequestOutcome::Ok
    };
    shared.counters.outcome(outcome);
    shared.counters.tokens(prompt_tokens, completion_tokens);
    let usage = Usage::new(prompt_tokens, completion_tokens);
    let head = ReplyHead {
        upstream: &shared.name,
        seq,
        created: crate::openai::unix_now(),
        model,
        fingerprint: &shared.fingerprint,
    };

    if request.is_stream() {
        let stream = TokenStream::new(
            StreamPlan {
                ttft,
                tokens_per_second,
                completion_tokens,
                finish_reason,
                usage: request.include_usage().then_some(usage),
                cut_after: plan.cut_after,
                malformed,
            },
            head.chunk_prefix(),
            rng,
            in_flight,
        );
        let mut r = Response::new(MockBody::Stream(Box::new(stream)));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return r;
    }

    let wait = ttft + Duration::from_secs_f64(f64::from(completion_tokens) / tokens_per_second);
    // The timer ticks in milliseconds: a shorter sleep would round up to a whole tick.
    if wait >= MIN_SLEEP {
        Box::pin(tokio::time::sleep(wait.min(crate::config::MAX_DURATION))).await;
    }
    drop(in_flight);
    let body = if malformed {
        MockBody::full(broken_completion(&head))
    } else {
        let full = head.completion(completion_tokens, &mut rng, finish_reason, usage);
        if outcome == RequestOutcome::StreamCut {
            MockBody::cut(full.slice(..full.len() / 2))
        } else {
            MockBody::full(full)
        }
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

pub(crate) enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads a body of at most `limit` bytes; a body in one frame (the usual case) is not copied.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut b = BytesMut::with_capacity(len.max(f.len() * 2));
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                rest = Some(b);
            }
            (Some(_), Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

fn injected_error(status: u16, message: Option<&str>) -> Response<MockBody> {
    let kind = ApiErrorKind::from_status_code(status, None);
    let message = message.map_or_else(
        || match status {
            500..=599 => "The server had an error while processing your request. Sorry about that!"
                .to_string(),
            _ => format!("Injected error with status {status}."),
        },
        str::to_string,
    );
    let mut r = error_response(&ApiError::new(kind, message));
    if let Ok(s) = StatusCode::from_u16(status) {
        *r.status_mut() = s;
    }
    r
}

/// Limits a rate-limit fault announces: the profile's own when it has them.
fn synthetic_headers(shared: &Shared, retry_after: Duration) -> RateHeaders {
    let l = &shared.profile.limits;
    RateHeaders {
        limit_requests: l.requests_per_minute.map_or(10_000, |n| n.get()),
        remaining_requests: 0,
        reset_requests: retry_after,
        limit_tokens: l.tokens_per_minute.map_or(10_000_000, |n| n.get()),
        remaining_tokens: 0,
        reset_tokens: retry_after,
    }
}

fn rate_limited(
    shared: &Shared,
    message: &str,
    code: RateLimitCode,
    retry_after: Duration,
    headers: &RateHeaders,
) -> Response<MockBody> {
    shared.counters.outcome(RequestOutcome::RateLimited);
    let kind = match code {
        RateLimitCode::RateLimitExceeded => ApiErrorKind::RateLimitExceeded,
        RateLimitCode::InsufficientQuota => ApiErrorKind::InsufficientQuota,
    };
    let mut r = error_response(&ApiError::new(kind, message));
    let h = r.headers_mut();
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    h.insert(RETRY_AFTER, HeaderValue::from(secs));
    h.insert(
        "retry-after-ms",
        HeaderValue::from(retry_after.as_millis() as u64),
    );
    h.insert(
        "x-ratelimit-limit-requests",
        HeaderValue::from(headers.limit_requests),
    );
    h.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(headers.remaining_requests),
    );
    h.insert(
        "x-ratelimit-limit-tokens",
        HeaderValue::from(headers.limit_tokens),
    );
    h.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from(headers.remaining_tokens),
    );
    for (name, d) in [
        ("x-ratelimit-reset-requests", headers.reset_requests),
        ("x-ratelimit-reset-tokens", headers.reset_tokens),
    ] {
        if let Ok(v) = HeaderValue::try_from(reset_text(d)) {
            h.insert(name, v);
        }
    }
    r
}

/// A buffer of bytes as a full body; used by the control API.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}
