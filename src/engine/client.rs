//! The load client: hyper with a keep-alive pool, one pre-serialised request per class, and
//! each exchange measured from its intended send time and classified into one outcome.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::response::{self, Limits};
use crate::metrics::{ErrorKind, Sample, ServedBy};
use crate::openai::{ChatRequest, StreamOptions, estimate_prompt_tokens};
use crate::scenario::RequestClass;

/// Bodies beyond this are `malformed`: a broken server must not make the client hoard memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Speak HTTP/2 (prior knowledge, h2c) instead of HTTP/1.1.
    pub http2: bool,
    /// Per-request deadline, from the actual send to the last byte.
    pub timeout: Duration,
    pub max_body_bytes: usize,
    /// Upstream names resolved to indices for the recorder (see `Layout::upstreams`).
    pub upstreams: Vec<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            http2: false,
            timeout: Duration::from_secs(30),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstreams: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{url}` is not a usable http:// URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request class `{class}`: header `{name}` is not a valid HTTP header")]
    InvalidHeader { class: String, name: String },
    #[error("request class `{class}`: the api key cannot be sent as a header")]
    InvalidKey { class: String },
    #[error("request class `{class}`: {source}")]
    Serialize {
        class: String,
        source: serde_json::Error,
    },
    #[error("{classes} request classes but {targets} target URLs")]
    TargetCount { classes: usize, targets: usize },
}

/// A class made ready to send: everything that does not change between requests, built once.
#[derive(Debug)]
struct Prepared {
    uri: Uri,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    stream: bool,
    prompt_tokens: u64,
}

/// The URL of the chat-completions endpoint under a base URL (`http://h:p`, `.../v1`, or the
/// full endpoint).
pub fn completions_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

fn prepare(class: &RequestClass, base: &str) -> Result<Prepared, ClientError> {
    let url = completions_url(base);
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(ClientError::InvalidUrl {
            url: base.to_string(),
            reason: "expected http://HOST:PORT (TLS is not supported)".into(),
        });
    }
    let request = ChatRequest {
        model: class.model.clone(),
        messages: class.messages.clone(),
        stream: class.stream.then_some(true),
        stream_options: class.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: class.max_tokens,
        max_completion_tokens: None,
    };
    let body = serde_json::to_vec(&request).map_err(|source| ClientError::Serialize {
        class: class.name.clone(),
        source,
    })?;
    let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    if let Some(key) = &class.api_key {
        let value = HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
            ClientError::InvalidKey {
                class: class.name.clone(),
            }
        })?;
        headers.push((AUTHORIZATION, value));
    }
    for (name, value) in &class.headers {
        let invalid = || ClientError::InvalidHeader {
            class: class.name.clone(),
            name: name.clone(),
        };
        let n = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
        let v = HeaderValue::try_from(value.as_str()).map_err(|_| invalid())?;
        headers.push((n, v));
    }
    Ok(Prepared {
        uri,
        body: Bytes::from(body),
        headers,
        stream: class.stream,
        prompt_tokens: u64::from(estimate_prompt_tokens(&class.messages)),
    })
}

/// Sends requests of the prepared classes; cheap to share (`Arc`) across tasks.
#[derive(Debug)]
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    classes: Vec<Prepared>,
    upstreams: Vec<String>,
    timeout: Duration,
    limits: Limits,
}

impl Client {
    /// `targets[i]` is the base URL class `i` is sent to.
    pub fn new(
        classes: &[RequestClass],
        targets: &[String],
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        if classes.len() != targets.len() {
            return Err(ClientError::TargetCount {
                classes: classes.len(),
                targets: targets.len(),
            });
        }
        let prepared = classes
            .iter()
            .zip(targets)
            .map(|(c, t)| prepare(c, t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new())
            .http2_only(options.http2)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            http,
            classes: prepared,
            upstreams: options.upstreams,
            timeout: options.timeout,
            limits: Limits {
                max_body_bytes: options.max_body_bytes,
            },
        })
    }

    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Sends one request of `class`, intended at `t0 + intended`, and measures it.
    pub async fn send(&self, class: usize, t0: Instant, intended: Duration) -> Sample {
        let intended_at = t0 + intended;
        let sent_at = Instant::now();
        let mut sample = Sample::new(
            class,
            intended,
            sent_at.saturating_duration_since(intended_at),
        );
        let Some(prepared) = self.classes.get(class) else {
            sample.result = Err(ErrorKind::Malformed);
            return sample;
        };
        let result = tokio::time::timeout(
            self.timeout,
            self.exchange(prepared, intended_at, &mut sample),
        )
        .await
        .unwrap_or(Err(ErrorKind::Timeout));
        sample.latency = Instant::now().saturating_duration_since(intended_at);
        sample.result = result;
        if sample.prompt_tokens == 0 && sample.result.is_ok() {
            sample.prompt_tokens = prepared.prompt_tokens;
        }
        sample
    }

    async fn exchange(
        &self,
        prepared: &Prepared,
        intended_at: Instant,
        sample: &mut Sample,
    ) -> Result<(), ErrorKind> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(prepared.uri.clone());
        if let Some(h) = builder.headers_mut() {
            h.reserve(prepared.headers.len());
            for (n, v) in &prepared.headers {
                h.insert(n.clone(), v.clone());
            }
        }
        let request = builder
            .body(Full::new(prepared.body.clone()))
            .map_err(|_| ErrorKind::Malformed)?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| request_error(&e))?;
        response::read(
            response,
            prepared.stream,
            intended_at,
            &self.limits,
            &self.upstreams,
            sample,
        )
        .await
    }

    /// The `ServedBy` for an upstream name, by index when it is a known one.
    pub fn served_by(&self, name: &str) -> ServedBy {
        response::resolve(&self.upstreams, name)
    }
}

/// A failure before any response arrived: no connection, or the connection dropped.
fn request_error(e: &hyper_util::client::legacy::Error) -> ErrorKind {
    if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Reset
    }
}
