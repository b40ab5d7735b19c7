//! The HTTP front: accepts connections, dispatches paths, authenticates, limits, reads and
//! validates the body, and turns routing results into OpenAI-shaped responses (or the shapes
//! of the API the client speaks: Anthropic's Messages, OpenAI's Responses).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::openai::{
    GATEWAY_ATTEMPTS_HEADER, GATEWAY_UPSTREAM_HEADER, ModelInfo, ModelList, RateLimitHeaders,
    RoutedRequest, estimate_prompt_tokens, unix_now, write_retry_after,
};

use super::admission::{Admission, SHED_HEADER};
use super::auth::Keys;
use super::body::GatewayBody;
use super::error::ProxyError;
use super::metrics::{Metrics, StreamCuts};
use super::responses;
use super::router::{Priority, Router, Served, Unserved};
use super::translate;
use super::upstream::{Reply, Wants};
use crate::api::Api;

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct GatewayState {
    pub router: Router,
    pub keys: Keys,
    pub admission: Admission,
    pub metrics: Arc<Metrics>,
    pub max_request_bytes: usize,
    /// `/v1/models`, rendered once.
    pub models: Bytes,
}

impl GatewayState {
    pub fn models_json(router: &Router) -> Bytes {
        let list = ModelList::new(
            router
                .order
                .iter()
                .map(|m| ModelInfo::new(m.clone(), unix_now(), "gauntlet-gateway"))
                .collect(),
        );
        serde_json::to_vec(&list).map_or_else(|_| Bytes::new(), Bytes::from)
    }
}

pub async fn handle(
    shared: Arc<GatewayState>,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let path = req.uri().path();
    let method = req.method();
    let resp = match (method, path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            chat(&shared, req, Api::Chat).await
        }
        (&Method::POST, "/v1/messages") => messages(&shared, req).await,
        (&Method::POST, "/v1/responses") => responses(&shared, req).await,
        (&Method::POST, "/v1/embeddings") => chat(&shared, req, Api::Embeddings).await,
        (&Method::GET, "/v1/models" | "/models") => json(StatusCode::OK, shared.models.clone()),
        (&Method::GET, "/health") => {
            json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
        }
        (&Method::GET, "/metrics") => metrics(&shared),
        (
            _,
            "/v1/chat/completions"
            | "/chat/completions"
            | "/v1/messages"
            | "/v1/responses"
            | "/v1/embeddings"
            | "/v1/models"
            | "/models"
            | "/health"
            | "/metrics",
        ) => error(
            &ProxyError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
            },
            None,
        ),
        _ => error(
            &ProxyError::UnknownUrl {
                method: method.to_string(),
                path: path.to_string(),
            },
            None,
        ),
    };
    let mut resp = resp;
    if !resp.headers().contains_key(GATEWAY_ATTEMPTS_HEADER) {
        tag(resp.headers_mut(), "none", 0);
    }
    Ok(resp)
}

/// Anthropic's Messages API in front: the request becomes the chat request the gateway
/// routes, the answer (whole, streamed or an error) goes back in Anthropic's shapes.
async fn messages(shared: &GatewayState, req: Request<Incoming>) -> Response<GatewayBody> {
    let resp = chat(shared, req, Api::Messages).await;
    let (mut head, body) = resp.into_parts();
    match body.into_messages(head.status) {
        Ok(body) => {
            if !head.status.is_success() {
                head.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            Response::from_parts(head, body)
        }
        // A 200 from upstream that is no chat completion: the client gets Anthropic's 502.
        Err(detail) => {
            let message = format!("the answer could not be translated: {detail}");
            let body = crate::api::anthropic_error(502, message.as_bytes());
            json(StatusCode::BAD_GATEWAY, Bytes::from(body))
        }
    }
}

/// OpenAI's Responses API in front: the request becomes the chat request the gateway routes,
/// the answer (whole or streamed) goes back as a `response` and its events.
async fn responses(shared: &GatewayState, req: Request<Incoming>) -> Response<GatewayBody> {
    let resp = chat(shared, req, Api::Responses).await;
    let (head, body) = resp.into_parts();
    match body.into_responses(head.status) {
        Ok(body) => Response::from_parts(head, body),
        // A 200 from upstream that is no chat completion: the client gets a 502 saying so,
        // still naming who answered.
        Err(detail) => {
            let e = ProxyError::BadResponse {
                upstream: head
                    .headers
                    .get(GATEWAY_UPSTREAM_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
                detail: format!("the answer could not be translated: {detail}"),
            };
            let mut resp = error(&e, None);
            for name in [GATEWAY_UPSTREAM_HEADER, GATEWAY_ATTEMPTS_HEADER] {
                if let Some(v) = head.headers.get(name) {
                    resp.headers_mut().insert(name, v.clone());
                }
            }
            resp
        }
    }
}

/// What routing needs from a request body.
enum Routable {
    /// A chat request (or the one another API's request asks for).
    Chat(RoutedRequest),
    /// An embeddings request: its model, and the length of its `input` as sent.
    Embeddings { model: String, input_len: usize },
}

/// The fields of an embeddings request the gateway reads; the rest is the upstream's.
#[derive(serde::Deserialize)]
struct EmbeddingsFields<'a> {
    model: String,
    #[serde(borrow, default)]
    input: Option<&'a serde_json::value::RawValue>,
}

impl Routable {
    fn read(bytes: &[u8], inbound: Api) -> Result<Self, ProxyError> {
        let bad = |e: serde_json::Error| {
            let api = crate::openai::ApiError::from_json_error(&e);
            ProxyError::BadRequest {
                message: api.message,
                param: api.param,
            }
        };
        if inbound == Api::Embeddings {
            let r: EmbeddingsFields<'_> = serde_json::from_slice(bytes).map_err(bad)?;
            let Some(input) = r.input.filter(|i| i.get() != "null") else {
                return Err(ProxyError::BadRequest {
                    message: "'input' is required: the text, texts or token ids to embed".into(),
                    param: Some("input".into()),
                });
            };
            return Ok(Self::Embeddings {
                model: r.model,
                input_len: input.get().len(),
            });
        }
        let r: RoutedRequest = serde_json::from_slice(bytes).map_err(bad)?;
        if r.messages.is_empty() {
            // Named as the client wrote it: a Responses request's messages are its `input`.
            let field = match inbound {
                Api::Responses => "input",
                _ => "messages",
            };
            return Err(ProxyError::BadRequest {
                message: format!("'{field}' must contain at least one message"),
                param: Some(field.into()),
            });
        }
        Ok(Self::Chat(r))
    }

    fn model(&self) -> &str {
        match self {
            Self::Chat(r) => &r.model,
            Self::Embeddings { model, .. } => model,
        }
    }

    fn wants(&self) -> Wants {
        match self {
            Self::Chat(r) => Wants::Chat {
                stream: r.is_stream(),
            },
            Self::Embeddings { .. } => Wants::Embeddings,
        }
    }

    /// The tokens it may cost, as a key's per-minute token limit counts them (embeddings:
    /// their input only, about four bytes a token, as for chat text).
    fn tokens(&self) -> u32 {
        match self {
            Self::Chat(r) => {
                estimate_prompt_tokens(&r.messages).saturating_add(r.max_completion().unwrap_or(0))
            }
            Self::Embeddings { input_len, .. } => {
                u32::try_from(input_len.div_ceil(4)).unwrap_or(u32::MAX)
            }
        }
    }
}

/// A chat request (or a request of another API in front, `inbound`, read into the chat
/// request it asks for, or an embeddings request): authenticated, bounded, validated,
/// limited and routed. One async body, so the chat path's future is not nested.
async fn chat(
    shared: &GatewayState,
    req: Request<Incoming>,
    inbound: Api,
) -> Response<GatewayBody> {
    let arrived = Instant::now();
    let (parts, body) = req.into_parts();
    let key = match shared.keys.authenticate(&parts.headers) {
        Ok(k) => k,
        Err(e) => return counted(shared, "", error(&e, None)),
    };
    let limit = shared.max_request_bytes;
    let too_large = ProxyError::TooLarge { limit };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return counted(shared, "", error(&too_large, None));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return counted(shared, "", error(&too_large, None));
        }
        Err(e) => {
            let e = ProxyError::BadRequest {
                message: format!("could not read the request body: {e}"),
                param: None,
            };
            return counted(shared, "", error(&e, None));
        }
    };
    let translated = match inbound {
        Api::Chat | Api::Embeddings => Ok(bytes),
        Api::Messages => translate::inbound_request(&bytes),
        Api::Responses => responses::inbound_request(&bytes),
    };
    let bytes = match translated {
        Ok(b) => b,
        Err(api) => {
            let e = ProxyError::BadRequest {
                message: api.message,
                param: api.param,
            };
            return counted(shared, "", error(&e, None));
        }
    };
    let request = match Routable::read(&bytes, inbound) {
        Ok(r) => r,
        Err(e) => return counted(shared, "", error(&e, None)),
    };
    let Some(route) = shared.router.route(request.model()) else {
        let e = ProxyError::UnknownModel(request.model().to_string());
        return counted(shared, "", error(&e, None));
    };
    let wants = request.wants();
    if !route.serves(wants) {
        let e = ProxyError::BadRequest {
            message: format!(
                "the model `{}` cannot create embeddings: every upstream it is routed to speaks \
                 Anthropic's Messages API, which has none",
                route.model
            ),
            param: Some("model".into()),
        };
        return counted(shared, &route.model, error(&e, None));
    }
    let mut rate = None;
    if let Some(k) = key
        && !k.limiter.is_unlimited()
    {
        match k.limiter.check(request.tokens(), arrived.into_std()) {
            Ok(info) => rate = Some(info),
            Err(refusal) => {
                if let Some(t) = shared.admission.tiers.get(k.tier_index) {
                    t.metrics.rate_limited.inc();
                }
                let e = ProxyError::RateLimited {
                    message: refusal.message(request.model()),
                    retry_after: refusal.retry_after,
                    info: refusal.headers,
                };
                return counted(shared, &route.model, error(&e, Some(&refusal.headers)));
            }
        }
    }
    let admission = &shared.admission;
    let tier = key.map_or(admission.anonymous, |k| k.tier_index);
    let mut held = match admission
        .admit(tier, key.and_then(|k| k.concurrency.as_ref()))
        .await
    {
        Ok(held) => held,
        Err(shed) => {
            let e = ProxyError::Shed {
                reason: shed.reason,
                message: shed.message,
                retry_after: shed.reason.retry_after(),
            };
            return counted(shared, &route.model, error(&e, rate.as_ref()));
        }
    };
    let top = admission.tiers.get(tier).is_some_and(|t| t.top);
    let priority = Priority {
        top,
        yield_on_429: admission.throttled_by_priority && !top,
    };
    let result = shared
        .router
        .serve(route, bytes, wants, arrived, priority)
        .await;
    let resp = match result {
        Ok(Served {
            reply,
            upstream,
            attempts,
            slot,
        }) => {
            let name = shared
                .router
                .upstreams
                .get(upstream)
                .map_or("", |u| u.name.as_str());
            let deadline = arrived + route.total_timeout();
            if let Some(slot) = slot {
                held.hold(slot);
            }
            let mut resp = relay(reply, deadline, &route.metrics.cuts, held);
            tag(resp.headers_mut(), name, attempts);
            if let Some(rate) = &rate {
                rate.write(resp.headers_mut());
            }
            resp
        }
        Err(Unserved { error: e, attempts }) => {
            if let ProxyError::Shed { reason, .. } = &e
                && let Some(t) = admission.tiers.get(tier)
            {
                // Counted here: the router sheds without knowing the tier's handles.
                t.count_shed(*reason);
            } else {
                tracing::warn!(route = %route.model, error = %e, "request not served");
            }
            let mut resp = error(&e, rate.as_ref());
            tag(resp.headers_mut(), "none", attempts);
            resp
        }
    };
    route
        .metrics
        .seconds
        .observe(arrived.elapsed().as_secs_f64());
    if resp.status() == StatusCode::OK {
        route.metrics.ok.inc();
        resp
    } else {
        counted(shared, &route.model, resp)
    }
}

fn counted(
    shared: &GatewayState,
    route: &str,
    resp: Response<GatewayBody>,
) -> Response<GatewayBody> {
    shared.metrics.request(route, resp.status().as_u16());
    resp
}

fn relay(
    reply: Reply,
    deadline: Instant,
    cuts: &StreamCuts,
    held: super::admission::Admitted,
) -> Response<GatewayBody> {
    let (status, headers, body) = match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => (status, headers, GatewayBody::full(body)),
        Reply::Stream {
            status,
            headers,
            first,
            rest,
            translate,
        } => (
            status,
            headers,
            GatewayBody::relay(first, rest, deadline, cuts.clone(), translate),
        ),
    };
    let mut resp = Response::new(body.holding(held));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn tag(h: &mut HeaderMap, upstream: &str, attempts: u32) {
    if let Ok(v) = HeaderValue::from_str(upstream) {
        h.insert(GATEWAY_UPSTREAM_HEADER, v);
    }
    h.insert(GATEWAY_ATTEMPTS_HEADER, HeaderValue::from(attempts));
}

fn json(status: StatusCode, body: Bytes) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn metrics(shared: &GatewayState) -> Response<GatewayBody> {
    let now = std::time::Instant::now();
    // Breakers leave "open" lazily; refresh the gauges so a scrape shows the current state.
    for u in &shared.router.upstreams {
        u.breaker.refresh_gauge(now);
    }
    let mut resp = Response::new(GatewayBody::full(shared.metrics.encode()));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// The gateway's own OpenAI-shaped error (never echoing credentials).
pub fn error(e: &ProxyError, rate: Option<&RateLimitHeaders>) -> Response<GatewayBody> {
    let api = e.to_api_error();
    let status = StatusCode::from_u16(api.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json(status, Bytes::from(api.to_json()));
    let h = resp.headers_mut();
    if let Some(wait) = e.retry_after() {
        write_retry_after(h, wait);
    }
    if let Some(rate) = rate {
        rate.write(h);
    }
    if let ProxyError::Shed { reason, .. } = e {
        h.insert(SHED_HEADER, HeaderValue::from_static(reason.as_str()));
    }
    tag(h, "none", 0);
    resp
}
