//! Answering HTTP requests: routing to the chat, model-list and control handlers, and tagging
//! every response with its upstream and request id.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::openai::{ApiError, ApiErrorKind, REQUEST_ID_HEADER, UPSTREAM_HEADER};

use super::body::MockBody;
use super::conn::ConnCtl;
use super::messages::{self, Dialect};
use super::respond::{JSON, client_error, error_response};
use super::state::MockState;
use super::stats::RequestOutcome;
use super::{chat, control, forward, reply};

pub(crate) async fn handle(
    shared: Arc<MockState>,
    ctl: Arc<ConnCtl>,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let seq = shared.seq.fetch_add(1, Relaxed);
    let mut resp = if req.uri().path().starts_with(control::PREFIX) {
        // Rare and large: boxed so the hot path's future stays small.
        Box::pin(control::handle(&shared, req)).await
    } else {
        // A health probe is not traffic: the stats count what a client asked the API.
        if req.uri().path() != "/health" {
            shared.counters.requests.fetch_add(1, Relaxed);
        }
        route(&shared, &ctl, seq, req).await
    };
    let h = resp.headers_mut();
    h.insert(UPSTREAM_HEADER, shared.upstream_header.clone());
    let mut id = BytesMut::with_capacity(20);
    id.extend_from_slice(b"req_");
    reply::put_hex(&mut id, seq);
    if let Ok(v) = HeaderValue::from_maybe_shared(id.freeze()) {
        h.insert(REQUEST_ID_HEADER, v);
    }
    resp
}

async fn route(
    shared: &Arc<MockState>,
    ctl: &ConnCtl,
    seq: u64,
    req: Request<Incoming>,
) -> Response<MockBody> {
    if let Some(forward) = &shared.forward {
        return Box::pin(forward::handle(shared, forward, ctl, seq, req)).await;
    }
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            chat::chat(shared, ctl, seq, req, Dialect::Chat).await
        }
        (&Method::POST, "/v1/messages") => {
            let r = chat::chat(shared, ctl, seq, req, Dialect::Messages).await;
            if r.status().is_success() {
                r
            } else {
                messages::anthropic_error(r)
            }
        }
        // Benchmark tools probe this before they start, as vLLM-style servers answer it.
        (&Method::GET | &Method::HEAD, "/health") => {
            let mut r = Response::new(MockBody::full(&b"{\"status\":\"ok\"}"[..]));
            r.headers_mut().insert(CONTENT_TYPE, JSON);
            r
        }
        (&Method::GET | &Method::HEAD, "/v1/models" | "/models") => {
            shared.counters.outcome(RequestOutcome::Ok);
            let mut r = Response::new(MockBody::full(shared.models_json.clone()));
            r.headers_mut().insert(CONTENT_TYPE, JSON);
            r
        }
        (m, "/health") => {
            let msg = format!("{m} is not allowed on /health; use GET");
            let mut r = error_response(&ApiError::new(ApiErrorKind::MethodNotAllowed, msg));
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            r
        }
        (
            m,
            "/v1/chat/completions"
            | "/chat/completions"
            | "/v1/messages"
            | "/v1/models"
            | "/models",
        ) => {
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
                "Unknown request URL: {} {path}. This mock serves POST /v1/chat/completions, POST /v1/messages, GET /v1/models and GET /health.",
                req.method()
            );
            client_error(shared, ApiError::new(ApiErrorKind::UnknownUrl, msg))
        }
    }
}
