//! Answering HTTP requests: routing to the chat, model-list and control handlers, tagging
//! every response with its upstream and request id, and the OpenAI error answers they share.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::openai::{
    ApiError, ApiErrorKind, BucketState, REQUEST_ID_HEADER, RateLimitHeaders, UPSTREAM_HEADER,
    write_retry_after,
};

use super::body::MockBody;
use super::control;
use super::fault::RateLimitCode;
use super::server::{ConnCtl, Shared};
use super::stats::RequestOutcome;

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

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
    let mut id = BytesMut::with_capacity(20);
    id.extend_from_slice(b"req_");
    super::reply::put_hex(&mut id, seq);
    if let Ok(v) = HeaderValue::from_maybe_shared(id.freeze()) {
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
            super::chat::chat(shared, ctl, seq, req).await
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

pub(crate) fn client_error(shared: &Shared, e: ApiError) -> Response<MockBody> {
    shared.counters.outcome(RequestOutcome::ClientError);
    error_response(&e)
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

pub(crate) fn injected_error(status: u16, message: Option<&str>) -> Response<MockBody> {
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
pub(crate) fn synthetic_headers(shared: &Shared, retry_after: Duration) -> RateLimitHeaders {
    let l = &shared.profile.limits;
    let empty = |limit: u32| {
        Some(BucketState {
            limit,
            remaining: 0,
            reset: retry_after,
        })
    };
    RateLimitHeaders {
        requests: empty(l.requests_per_minute.map_or(10_000, |n| n.get())),
        tokens: empty(l.tokens_per_minute.map_or(10_000_000, |n| n.get())),
    }
}

pub(crate) fn rate_limited(
    shared: &Shared,
    message: &str,
    code: RateLimitCode,
    retry_after: Duration,
    headers: &RateLimitHeaders,
) -> Response<MockBody> {
    shared.counters.outcome(RequestOutcome::RateLimited);
    let kind = match code {
        RateLimitCode::RateLimitExceeded => ApiErrorKind::RateLimitExceeded,
        RateLimitCode::InsufficientQuota => ApiErrorKind::InsufficientQuota,
    };
    let mut r = error_response(&ApiError::new(kind, message));
    let h = r.headers_mut();
    write_retry_after(h, retry_after);
    headers.write(h);
    r
}

/// A buffer of bytes as a full body; used by the control API.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}
