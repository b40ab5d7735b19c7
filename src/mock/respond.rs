//! The answers every mock handler shares: OpenAI error bodies, injected errors, rate-limit
//! refusals with their headers, and plain JSON bodies.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

use crate::openai::{ApiError, ApiErrorKind, BucketState, RateLimitHeaders, write_retry_after};

use super::body::MockBody;
use super::fault::RateLimitCode;
use super::state::MockState;
use super::stats::RequestOutcome;

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

pub(crate) fn error_response(e: &ApiError) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(e.to_json()));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

pub(crate) fn client_error(shared: &MockState, e: ApiError) -> Response<MockBody> {
    shared.counters.outcome(RequestOutcome::ClientError);
    error_response(&e)
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
pub(crate) fn synthetic_headers(shared: &MockState, retry_after: Duration) -> RateLimitHeaders {
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
    shared: &MockState,
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
