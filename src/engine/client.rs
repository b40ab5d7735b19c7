//! The load client: hyper with a keep-alive pool, one pre-serialised request per class, and
//! each exchange measured from its intended send time and classified into one outcome.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::plan::Overrides;
use super::response::{self, ResponseLimits};
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
    /// Path and query only, for requests on a dedicated connection.
    origin: Uri,
    host: HeaderValue,
    /// Index into `Client::authorities`.
    authority: usize,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    stream: bool,
    prompt_tokens: u64,
}

impl Prepared {
    /// The request to send: origin-form with a `Host` header on a connection of our own,
    /// absolute-form for the pooled client (which picks the connection from it).
    fn request(
        &self,
        own_connection: bool,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ErrorKind> {
        let uri = if own_connection {
            &self.origin
        } else {
            &self.uri
        };
        let mut builder = Request::builder().method(Method::POST).uri(uri.clone());
        if let Some(h) = builder.headers_mut() {
            h.reserve(self.headers.len() + 1);
            if own_connection {
                h.insert(http::header::HOST, self.host.clone());
            }
            for (n, v) in &self.headers {
                h.insert(n.clone(), v.clone());
            }
        }
        builder
            .body(Full::new(body))
            .map_err(|_| ErrorKind::Malformed)
    }
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

fn prepare(
    class: &RequestClass,
    base: &str,
    authorities: &mut Vec<String>,
) -> Result<Prepared, ClientError> {
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
    let bad_url = |reason: &str| ClientError::InvalidUrl {
        url: base.to_string(),
        reason: reason.into(),
    };
    let auth = uri.authority().ok_or_else(|| bad_url("no host"))?;
    let addr = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
    let host = HeaderValue::try_from(auth.as_str()).map_err(|_| bad_url("bad host"))?;
    let origin: Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| bad_url("bad path"))?;
    let authority = match authorities.iter().position(|a| *a == addr) {
        Some(i) => i,
        None => {
            authorities.push(addr);
            authorities.len() - 1
        }
    };
    let request = ChatRequest {
        model: class.model.clone(),
        messages: class.messages.clone(),
        stream: class.stream.then_some(true),
        stream_options: class.stream.then_some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: class.max_tokens,
        max_completion_tokens: None,
        tools: None,
        tool_choice: None,
        response_format: None,
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
        origin,
        host,
        authority,
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
    /// Distinct `host:port` the classes go to.
    authorities: Vec<String>,
    upstreams: Vec<String>,
    timeout: Duration,
    limits: ResponseLimits,
    http2: bool,
    /// HTTP/1 connections between open-model requests: a request takes a set (or a new one)
    /// and puts it back when its exchange is over. Leaner than hyper-util's pool on the hot
    /// path (no keyed lookup, no extra task hop), and never larger than the peak in flight.
    idle: std::sync::Mutex<Vec<(UserConnections, Instant)>>,
}

/// An idle connection older than this is closed instead of reused: servers end idle
/// keep-alive connections after a few seconds, and a request sent as the server closes is
/// lost to a race no real client should be blamed for (LIFO reuse keeps the hot ones busy).
const IDLE_REUSE: Duration = Duration::from_secs(4);

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
        let mut authorities = Vec::new();
        let prepared = classes
            .iter()
            .zip(targets)
            .map(|(c, t)| prepare(c, t, &mut authorities))
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
            authorities,
            http2: options.http2,
            upstreams: options.upstreams,
            timeout: options.timeout,
            limits: ResponseLimits {
                max_body_bytes: options.max_body_bytes,
            },
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// Sends one request of `class`, intended at `t0 + intended`, and measures it.
    pub async fn send(&self, class: usize, t0: Instant, intended: Duration) -> Sample {
        self.send_with(class, Overrides::default(), t0, intended)
            .await
    }

    /// Like `send`, with what a trace line changes in the class's request.
    pub async fn send_with(
        &self,
        class: usize,
        overrides: Overrides,
        t0: Instant,
        intended: Duration,
    ) -> Sample {
        if self.http2 {
            return self.measure(None, class, overrides, t0, intended).await;
        }
        let taken = self.idle.lock().ok().and_then(|mut idle| {
            let now = Instant::now();
            // Oldest at the bottom: drop the stale ones from there.
            let stale = idle.partition_point(|(_, at)| now.duration_since(*at) > IDLE_REUSE);
            idle.drain(..stale);
            idle.pop()
        });
        let mut conn = taken.map_or_else(|| self.user_connections(), |(c, _)| c);
        let sample = self
            .measure(Some(&mut conn), class, overrides, t0, intended)
            .await;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((conn, Instant::now()));
        }
        sample
    }

    /// Connections of one closed-model user: its own, one per target, like a real client.
    pub fn user_connections(&self) -> UserConnections {
        UserConnections {
            slots: (0..self.authorities.len()).map(|_| None).collect(),
            pooled: self.http2,
        }
    }

    /// Like `send`, on the user's own connection (reconnecting when it broke).
    pub async fn send_on(
        &self,
        conn: &mut UserConnections,
        class: usize,
        t0: Instant,
        intended: Duration,
    ) -> Sample {
        let own = (!conn.pooled).then_some(conn);
        self.measure(own, class, Overrides::default(), t0, intended)
            .await
    }

    /// One measured exchange, on the pool or on a user's own connection.
    async fn measure(
        &self,
        mut own: Option<&mut UserConnections>,
        class: usize,
        overrides: Overrides,
        t0: Instant,
        intended: Duration,
    ) -> Sample {
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
        let exchange = async {
            let body = body_with(&prepared.body, overrides)?;
            let response = match own.as_deref_mut() {
                Some(conn) => self.request_on(conn, prepared, body).await?,
                None => self.request_pooled(prepared, body).await?,
            };
            response::read(
                response,
                prepared.stream,
                intended_at,
                &self.limits,
                &self.upstreams,
                &mut sample,
            )
            .await
        };
        let result = tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
        sample.latency = Instant::now().saturating_duration_since(intended_at);
        if let (Some(conn), Err(kind)) = (own, result)
            && !matches!(
                kind,
                ErrorKind::Status4xx | ErrorKind::RateLimited | ErrorKind::Status5xx
            )
        {
            // The connection is in an unknown state (a response half read or never read).
            if let Some(slot) = conn.slots.get_mut(prepared.authority) {
                *slot = None;
            }
        }
        sample.result = result;
        if sample.prompt_tokens == 0 && sample.result.is_ok() {
            sample.prompt_tokens = prepared.prompt_tokens;
        }
        sample
    }

    /// Sends on the user's own connection; the response head, or how sending failed.
    async fn request_on(
        &self,
        conn: &mut UserConnections,
        prepared: &Prepared,
        body: Bytes,
    ) -> Result<Response<Incoming>, ErrorKind> {
        let slot = conn
            .slots
            .get_mut(prepared.authority)
            .ok_or(ErrorKind::Connect)?;
        let reused = matches!(slot, Some(s) if !s.is_closed());
        let sender = match slot.take() {
            Some(s) if !s.is_closed() => slot.insert(s),
            _ => slot.insert(connect(&self.authorities[prepared.authority]).await?),
        };
        let request = prepared.request(true, body)?;
        let first = match sender.ready().await {
            Ok(()) => sender
                .try_send_request(request)
                .await
                .map_err(|mut e| e.take_message()),
            // Closed while idle: nothing was sent.
            Err(_) => Err(Some(request)),
        };
        match first {
            Ok(r) => Ok(r),
            // The request never left a kept-alive connection the server had closed (its
            // keep-alive ended): sending it on a fresh one is what any client does.
            Err(Some(request)) if reused => {
                let fresh = slot.insert(connect(&self.authorities[prepared.authority]).await?);
                fresh.ready().await.map_err(|_| ErrorKind::Reset)?;
                fresh
                    .send_request(request)
                    .await
                    .map_err(|_| ErrorKind::Reset)
            }
            Err(_) => Err(ErrorKind::Reset),
        }
    }

    /// Sends on hyper-util's pool (HTTP/2 multiplexes there).
    async fn request_pooled(
        &self,
        prepared: &Prepared,
        body: Bytes,
    ) -> Result<Response<Incoming>, ErrorKind> {
        self.http
            .request(prepared.request(false, body)?)
            .await
            .map_err(|e| request_error(&e))
    }

    /// The `ServedBy` for an upstream name, by index when it is a known one.
    pub fn served_by(&self, name: &str) -> ServedBy {
        response::resolve(&self.upstreams, name)
    }
}

/// One user's connections, one slot per target; with HTTP/2 the shared pool multiplexes instead.
#[derive(Debug)]
pub struct UserConnections {
    slots: Vec<Option<http1::SendRequest<Full<Bytes>>>>,
    pooled: bool,
}

async fn connect(addr: &str) -> Result<http1::SendRequest<Full<Bytes>>, ErrorKind> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|_| ErrorKind::Connect)?;
    tokio::spawn(async move {
        // Ends when the user drops its sender or the peer closes; either way nothing to report.
        let _ = connection.await;
    });
    Ok(sender)
}

/// The body to send: the class's own, shared, unless a trace line changes it; then a copy
/// built for this request (only traced requests pay for it). `overrides.prompt_tokens` is not
/// applied here: it is the hook the synthetic prompt generator is wired to.
fn body_with(body: &Bytes, overrides: Overrides) -> Result<Bytes, ErrorKind> {
    let Some(max_tokens) = overrides.max_tokens else {
        return Ok(body.clone());
    };
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| ErrorKind::Malformed)?;
    json.insert("max_tokens".into(), max_tokens.into());
    serde_json::to_vec(&json)
        .map(Bytes::from)
        .map_err(|_| ErrorKind::Malformed)
}

/// A failure before any response arrived: no connection, or the connection dropped.
fn request_error(e: &hyper_util::client::legacy::Error) -> ErrorKind {
    if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Reset
    }
}
