//! One attempt against one upstream: the pooled HTTP client, forwarding the request, and
//! classifying what came back (served, passed through as-is, or a failure worth retrying).
//! A success status is only a success if the client could use it: the content type the
//! request asked for, and (not streamed) a bounded body that is a JSON completion (or, for
//! embeddings, a JSON list of them).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Instant;

use crate::api::Api;
use crate::openai::{REQUEST_ID_HEADER, UPSTREAM_HEADER, read_retry_after};

use super::admission::SlotPool;
use super::breaker::Breaker;
use super::config::{RetryConfig, UpstreamApi, UpstreamConfig};
use super::error::{ProxyError, TimeoutPhase};
use super::translate::{self, StreamTranslator};

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Bound on a non-streamed completion read into memory (the load client's default bound too):
/// a real completion is kilobytes; anything near this is a broken upstream.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Bound on an error body read to learn its `code`.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Response headers worth passing on to the client (everything else is hop-by-hop or the
/// upstream's own business, e.g. its rate-limit headers).
/// Names built once: `HeaderName::from_static` validates its input on every call.
const FORWARDED: [HeaderName; 4] = [
    http::header::CONTENT_TYPE,
    http::header::CACHE_CONTROL,
    HeaderName::from_static(REQUEST_ID_HEADER),
    HeaderName::from_static(UPSTREAM_HEADER),
];

/// The pooled client for upstreams: `http://` plain, `https://` with `tls` (ALPN may pick
/// HTTP/2). The connect timeout covers TCP only; the TLS handshake counts as waiting for the
/// answer's head.
pub fn client(connect_timeout: Duration, tls: &crate::tls::ClientTls) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(crate::net::CLIENT_POOL_IDLE)
        .build(tls.connector(http))
}

/// What a request asks an upstream for: it decides the endpoint, whether the answer streams
/// and what a usable answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// A chat completion, whole or streamed; every inbound API but embeddings becomes one.
    Chat { stream: bool },
    /// Embeddings: never streamed, and only an OpenAI-format upstream has them.
    Embeddings,
}

impl Wants {
    pub fn stream(self) -> bool {
        self == Self::Chat { stream: true }
    }
}

/// An upstream as the router uses it.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    /// The endpoint of its API that chat requests go to.
    pub chat_uri: Uri,
    /// Its embeddings endpoint, when its API has one.
    embeddings_uri: Option<Uri>,
    pub api: UpstreamApi,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub breaker: Arc<Breaker>,
    pub latency: Histogram,
    /// Its `max_concurrent`, with the top tier's reserve, when admission bounds it.
    pub slots: Option<Arc<SlotPool>>,
}

impl Upstream {
    pub fn new(
        cfg: &UpstreamConfig,
        breaker: Arc<Breaker>,
        latency: Histogram,
        slots: Option<Arc<SlotPool>>,
    ) -> Option<Self> {
        let chat_uri: Uri = cfg.api.api().url(&cfg.url).parse().ok()?;
        let embeddings_uri = match cfg.api {
            UpstreamApi::Chat => Some(embeddings_url(&cfg.url).parse().ok()?),
            UpstreamApi::Messages => None,
        };
        // The key (and, for Messages, the API version) every attempt sends, built once.
        let headers = cfg
            .api
            .api()
            .headers(cfg.api_key.as_ref().map(|k| k.expose()))
            .ok()?;
        Some(Self {
            name: cfg.name.clone(),
            chat_uri,
            embeddings_uri,
            api: cfg.api,
            headers,
            breaker,
            latency,
            slots,
        })
    }
}

impl Upstream {
    /// Where a request wanting `wants` goes; `None` when this upstream cannot serve it.
    pub fn uri(&self, wants: Wants) -> Option<&Uri> {
        match wants {
            Wants::Chat { .. } => Some(&self.chat_uri),
            Wants::Embeddings => self.embeddings_uri.as_ref(),
        }
    }
}

/// The embeddings endpoint beside the chat endpoint under `base`: a URL written as the chat
/// endpoint itself still names the server the other endpoints are on.
fn embeddings_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = base.strip_suffix("/chat/completions").unwrap_or(base);
    Api::Embeddings.url(base)
}

/// What an upstream answered, ready to relay.
pub enum Reply {
    Full {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        first: Bytes,
        rest: Incoming,
        /// Turns the rest into chat chunks, for an upstream that speaks another API.
        translate: Option<Box<StreamTranslator>>,
    },
}

impl Reply {
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Full { status, .. } | Reply::Stream { status, .. } => *status,
        }
    }
}

pub enum AttemptOutcome {
    /// A success to relay.
    Served(Reply),
    /// An upstream error that retrying cannot fix, returned to the client as the upstream sent it.
    PassThrough(Reply),
    Failed(ProxyError),
}

/// A request body ready for one upstream: in the API it speaks, naming the hop's model.
#[derive(Debug, Clone)]
pub struct UpstreamBody {
    pub body: Bytes,
    /// The client asked for usage in its stream: a translated stream adds it only then.
    pub include_usage: bool,
}

/// Sends one attempt and waits for its first byte within `first_byte` (and the deadline).
pub async fn attempt(
    client: &HttpClient,
    up: &Upstream,
    payload: UpstreamBody,
    wants: Wants,
    first_byte: Duration,
    deadline: Instant,
    retry: &RetryConfig,
) -> AttemptOutcome {
    let UpstreamBody {
        body,
        include_usage,
    } = payload;
    let Some(uri) = up.uri(wants) else {
        // The router skips such upstreams; should one get here, it is passed over like any
        // upstream that cannot take the request.
        return AttemptOutcome::Failed(ProxyError::BadResponse {
            upstream: up.name.clone(),
            detail: "its API has no endpoint for this request".into(),
        });
    };
    let stream = wants.stream();
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    let h = req.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &up.headers {
        h.insert(name.clone(), value.clone());
    }
    let started = Instant::now();
    let remaining = deadline.saturating_duration_since(started);
    let (wait, phase) = if first_byte < remaining {
        (first_byte, TimeoutPhase::FirstByte)
    } else {
        (remaining, TimeoutPhase::Total)
    };
    let head_by = started + wait;
    let timeout = |phase| {
        AttemptOutcome::Failed(ProxyError::Timeout {
            upstream: up.name.clone(),
            phase,
            after: wait,
        })
    };
    let resp = match tokio::time::timeout_at(head_by, client.request(req)).await {
        Err(_) => return timeout(phase),
        Ok(Err(e)) => return AttemptOutcome::Failed(classify_client_error(&up.name, &e)),
        Ok(Ok(r)) => r,
    };
    up.latency.observe(started.elapsed().as_secs_f64());
    let (parts, mut incoming) = resp.into_parts();
    let status = match up.api {
        UpstreamApi::Chat => parts.status,
        UpstreamApi::Messages => translate::status(parts.status),
    };
    let headers = forwarded_headers(&parts.headers);
    if status.is_success() {
        let bad = |detail: String| {
            AttemptOutcome::Failed(ProxyError::BadResponse {
                upstream: up.name.clone(),
                detail,
            })
        };
        if let Some(detail) = wrong_content_type(&parts.headers, stream) {
            // Dropping the unread body closes the connection: nothing more of it is read.
            return bad(detail);
        }
        if stream {
            // Nothing is sent to the client until the first chunk is in hand, so a stream
            // that dies before it can still fail over.
            let mut translator = (up.api == UpstreamApi::Messages)
                .then(|| Box::new(StreamTranslator::new(include_usage)));
            let reset = |detail: String| {
                AttemptOutcome::Failed(ProxyError::Reset {
                    upstream: up.name.clone(),
                    detail,
                })
            };
            // A translated stream's first chunk may be only part of an event: read until
            // there is something to send, still before anything reaches the client.
            let first = loop {
                let chunk = match first_chunk(&mut incoming, head_by).await {
                    Ok(Some(b)) => b,
                    Ok(None) => return reset("stream ended before its first chunk".into()),
                    Err(FirstChunkError::Timeout) => return timeout(phase),
                    Err(FirstChunkError::Body(e)) => return reset(e.to_string()),
                };
                let Some(t) = translator.as_mut() else {
                    break chunk;
                };
                match t.feed(&chunk) {
                    Ok(out) if out.is_empty() => {}
                    Ok(out) => break out,
                    // An `error` event before any output (an overloaded provider says so this
                    // way too): nothing reached the client, so it can still fail over.
                    Err(e) => return reset(e.to_string()),
                }
            };
            let mut headers = headers;
            if translator.is_some() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            }
            return AttemptOutcome::Served(Reply::Stream {
                status,
                headers,
                first,
                rest: incoming,
                translate: translator,
            });
        }
        let read = read_all(incoming, MAX_RESPONSE_BYTES, deadline).await;
        let read = match (up.api, read) {
            (UpstreamApi::Messages, Ok(body)) => match translate::completion(&body) {
                Ok(chat) => Ok(chat),
                Err(detail) => return bad(detail),
            },
            (_, read) => read,
        };
        return match read {
            Ok(body) => match invalid_answer(&body, wants) {
                None => AttemptOutcome::Served(Reply::Full {
                    status,
                    headers,
                    body,
                }),
                Some(detail) => bad(detail),
            },
            Err(ReadError::Timeout) => AttemptOutcome::Failed(ProxyError::Timeout {
                upstream: up.name.clone(),
                phase: TimeoutPhase::Total,
                after: deadline.saturating_duration_since(started),
            }),
            Err(ReadError::TooLarge) => bad(format!(
                "body larger than the gateway's limit of {MAX_RESPONSE_BYTES} bytes"
            )),
            Err(ReadError::Body(detail)) => AttemptOutcome::Failed(ProxyError::Reset {
                upstream: up.name.clone(),
                detail,
            }),
        };
    }
    let retry_after = read_retry_after(&parts.headers);
    let body = match read_all(incoming, MAX_ERROR_BYTES, deadline).await {
        Ok(b) => b,
        Err(ReadError::Timeout) => return timeout(TimeoutPhase::Total),
        // Only the code is wanted from an error body; one this large has none worth reading.
        Err(ReadError::TooLarge) => Bytes::new(),
        Err(ReadError::Body(detail)) => {
            return AttemptOutcome::Failed(ProxyError::Reset {
                upstream: up.name.clone(),
                detail,
            });
        }
    };
    let (body, code) = match up.api {
        UpstreamApi::Chat => {
            let code = error_code(&body);
            (body, code)
        }
        UpstreamApi::Messages => translate::error(status, &body),
    };
    let mut headers = headers;
    if up.api == UpstreamApi::Messages {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let retryable =
        retry.retries_status(status.as_u16()) || code.as_deref() == Some("insufficient_quota");
    if !retryable {
        return AttemptOutcome::PassThrough(Reply::Full {
            status,
            headers,
            body,
        });
    }
    AttemptOutcome::Failed(ProxyError::UpstreamStatus {
        upstream: up.name.clone(),
        status: status.as_u16(),
        code,
        retry_after,
        retryable,
    })
}

fn classify_client_error(upstream: &str, e: &hyper_util::client::legacy::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut detail = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ProxyError::Timeout {
                    upstream: upstream.to_string(),
                    phase: TimeoutPhase::Connect,
                    after: Duration::ZERO,
                };
            }
            detail = io.to_string();
        }
        source = s.source();
    }
    if e.is_connect() {
        ProxyError::Connect {
            upstream: upstream.to_string(),
            detail,
        }
    } else {
        ProxyError::Reset {
            upstream: upstream.to_string(),
            detail,
        }
    }
}

enum FirstChunkError {
    Timeout,
    Body(hyper::Error),
}

async fn first_chunk(body: &mut Incoming, by: Instant) -> Result<Option<Bytes>, FirstChunkError> {
    loop {
        match tokio::time::timeout_at(by, body.frame()).await {
            Err(_) => return Err(FirstChunkError::Timeout),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(FirstChunkError::Body(e)),
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data()
                    && !d.is_empty()
                {
                    return Ok(Some(d));
                }
            }
        }
    }
}

enum ReadError {
    Timeout,
    /// The body went past the limit; reading stopped there.
    TooLarge,
    Body(String),
}

async fn read_all<B>(body: B, limit: usize, deadline: Instant) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ReadError::Timeout),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ReadError::TooLarge),
        Ok(Err(e)) => Err(ReadError::Body(e.to_string())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Why a success's content type is not what the request asked for. A missing one is let
/// through (the body is still checked); only a contradicting one is refused.
fn wrong_content_type(h: &HeaderMap, stream: bool) -> Option<String> {
    let value = h.get(CONTENT_TYPE);
    if crate::openai::content_type_fits(value, stream) {
        return None;
    }
    let shown: String = value
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(64)
                .collect()
        })
        .unwrap_or_default();
    let wanted = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    Some(format!(
        "content type `{shown}` where {wanted} was expected"
    ))
}

/// Why a non-streamed success body is not an answer a client wanting `wants` could parse.
fn invalid_answer(body: &[u8], wants: Wants) -> Option<String> {
    // Only the shape is checked; the fields are the client's business and pass unchanged.
    #[derive(serde::Deserialize)]
    struct Completion {
        #[allow(dead_code)]
        choices: serde::de::IgnoredAny,
    }
    #[derive(serde::Deserialize)]
    struct Embeddings {
        #[allow(dead_code)]
        data: serde::de::IgnoredAny,
    }
    let (parsed, what) = match wants {
        Wants::Chat { .. } => (
            serde_json::from_slice::<Completion>(body).map(drop),
            "chat completion",
        ),
        Wants::Embeddings => (
            serde_json::from_slice::<Embeddings>(body).map(drop),
            "embeddings list",
        ),
    };
    parsed.err().map(|e| format!("not a JSON {what}: {e}"))
}

fn forwarded_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(FORWARDED.len() + 4);
    for name in &FORWARDED {
        if let Some(v) = from.get(name) {
            out.insert(name.clone(), v.clone());
        }
    }
    out
}

/// The `error.code` of an OpenAI error body, if it is one.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: Option<String>,
    }
    serde_json::from_slice::<Body>(body).ok()?.error.code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_codes() {
        assert_eq!(
            error_code(br#"{"error":{"message":"x","type":"t","code":"insufficient_quota"}}"#)
                .as_deref(),
            Some("insufficient_quota")
        );
        assert_eq!(error_code(b"not json"), None);
    }

    #[test]
    fn content_types_must_fit_the_request() {
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            h
        };
        assert!(wrong_content_type(&with("application/json; charset=utf-8"), false).is_none());
        assert!(wrong_content_type(&with("Text/Event-Stream"), true).is_none());
        assert!(wrong_content_type(&HeaderMap::new(), true).is_none());
        assert!(wrong_content_type(&with("text/html"), false).is_some());
        assert!(wrong_content_type(&with("application/json"), true).is_some());
    }

    #[test]
    fn completions_must_parse() {
        let chat = Wants::Chat { stream: false };
        assert!(invalid_answer(br#"{"id":"x","choices":[]}"#, chat).is_none());
        assert!(invalid_answer(b"<html>", chat).is_some());
        assert!(invalid_answer(br#"{"choices": [oops"#, chat).is_some());
        assert!(invalid_answer(br#"{"id":"x"}"#, chat).is_some());
        let embeddings = Wants::Embeddings;
        assert!(invalid_answer(br#"{"object":"list","data":[]}"#, embeddings).is_none());
        assert!(
            invalid_answer(br#"{"id":"x","choices":[]}"#, embeddings)
                .is_some_and(|d| d.contains("embeddings list"))
        );
    }

    #[test]
    fn embeddings_go_beside_the_chat_endpoint() {
        for base in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/v1",
            "http://h:1/v1/chat/completions",
        ] {
            assert_eq!(embeddings_url(base), "http://h:1/v1/embeddings", "{base}");
        }
        assert_eq!(
            embeddings_url("https://h/v1/embeddings"),
            "https://h/v1/embeddings"
        );
    }
}
