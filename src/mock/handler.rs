//! Answering HTTP requests: routing to the chat (and its other dialects), embeddings,
//! model-list and control handlers, and tagging every response with its upstream and request id.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::BytesMut;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::openai::{ApiError, ApiErrorKind, REQUEST_ID_HEADER, UPSTREAM_HEADER};

use super::body::MockBody;
use super::conn::ConnCtl;
use super::messages;
use super::request::{Ask, Dialect};
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
            chat::chat(shared, ctl, seq, req, Ask::Text(Dialect::Chat)).await
        }
        (&Method::POST, "/v1/completions" | "/completions") => {
            chat::chat(shared, ctl, seq, req, Ask::Text(Dialect::Completions)).await
        }
        (&Method::POST, "/v1/embeddings" | "/embeddings") => {
            chat::chat(shared, ctl, seq, req, Ask::Embeddings).await
        }
        (&Method::POST, "/v1/responses" | "/responses") => {
            chat::chat(shared, ctl, seq, req, Ask::Text(Dialect::Responses)).await
        }
        (&Method::POST, "/v1/messages") => {
            let r = chat::chat(shared, ctl, seq, req, Ask::Text(Dialect::Messages)).await;
            if r.status().is_success() {
                r
            } else {
                anthropic_error(r)
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
            | "/v1/completions"
            | "/completions"
            | "/v1/embeddings"
            | "/embeddings"
            | "/v1/messages"
            | "/v1/responses"
            | "/responses"
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
                "Unknown request URL: {} {path}. This mock serves POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, POST /v1/messages, POST /v1/responses, GET /v1/models and GET /health.",
                req.method()
            );
            client_error(shared, ApiError::new(ApiErrorKind::UnknownUrl, msg))
        }
    }
}

/// An error answer of the chat path, re-worded in Anthropic's shape (same status and headers).
fn anthropic_error(resp: Response<MockBody>) -> Response<MockBody> {
    let (parts, body) = resp.into_parts();
    let chat: &[u8] = match &body {
        MockBody::Full(Some(b)) => b,
        _ => &[],
    };
    let bytes = messages::error_body(parts.status, chat);
    let mut r = Response::from_parts(parts, MockBody::full(bytes));
    // The length of the chat body no longer holds; hyper sets the new one.
    r.headers_mut().remove(CONTENT_LENGTH);
    r
}
