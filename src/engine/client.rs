//! The load client: hyper with a keep-alive pool, one pre-serialised request per class, and
//! each exchange measured from its intended send time and classified into one outcome.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::plan::Overrides;
use super::response::{self, ResponseLimits};
use super::source::Sources;
use crate::api::Api;
use crate::metrics::{ErrorKind, Opened, Sample, ServedBy, TlsSession, TokenSource, Via};
use crate::openai::Message;
use crate::openai::{ChatRequest, StreamOptions};
use crate::scenario::RequestClass;
use crate::tls::{ALPN_H2, ClientSettings, ClientTls, TlsError};
use crate::tokenizer::{Encoding, MESSAGE_OVERHEAD, Tokenizer};
use crate::workload::Feed;
use crate::workload::synthetic_text;

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
    /// Seeds dataset draws, synthetic prompts and sessions: same seed, same requests.
    pub seed: u64,
    /// What `https://` targets are trusted by, and the client certificate, if any.
    pub tls: ClientSettings,
    /// Local addresses new connections leave from, in turn (`--source-ips`); empty: the
    /// kernel's choice. The HTTP/2 pool (`--http2` over plain http) uses the first only.
    pub source_ips: Vec<std::net::IpAddr>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            http2: false,
            timeout: Duration::from_secs(30),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstreams: Vec::new(),
            seed: 1,
            tls: ClientSettings::default(),
            source_ips: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{url}` is not a usable http:// or https:// URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request class `{class}`: header `{name}` is not a valid HTTP header")]
    InvalidHeader { class: String, name: String },
    #[error("request class `{class}`: the api key cannot be sent as a header")]
    InvalidKey { class: String },
    #[error("request class `{class}`: {source}")]
    Encode {
        class: String,
        source: crate::api::EncodeError,
    },
    #[error("request class `{class}`: {source}")]
    Serialize {
        class: String,
        source: serde_json::Error,
    },
    #[error("{classes} request classes but {targets} target URLs")]
    TargetCount { classes: usize, targets: usize },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A class made ready to send: everything that does not change between requests, built once.
#[derive(Debug)]
struct Prepared {
    uri: Uri,
    /// Path and query only, for requests on a dedicated connection.
    origin: Uri,
    host: HeaderValue,
    /// Index into `Client::endpoints`.
    authority: usize,
    /// The request in the class's API, sent as is by a fixed class.
    body: Bytes,
    /// The same request as chat, which a trace line's lengths are written into before it is
    /// encoded (the same bytes as `body` for a chat class).
    chat_body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    stream: bool,
    /// The API the body is in; bodies drawn per request are built as chat and encoded for it.
    api: Api,
    /// A fixed class's prompt tokens, counted the first time an answer lacks usage.
    prompt_tokens: std::sync::OnceLock<u64>,
    messages: Vec<Message>,
    encoding: Encoding,
    /// Classes whose requests vary build each body from here; fixed ones send `body`.
    feed: Option<Feed>,
    /// Carries a conversation's id.
    session_header: Option<HeaderName>,
}

/// The body of one request and what it is about.
struct Outgoing {
    body: Bytes,
    session: Option<HeaderValue>,
    /// Prompt tokens known as the body was built (a trace line's synthetic prompt); else they
    /// are counted from the body when the answer's usage does not say.
    prompt_tokens: Option<u64>,
}

impl Prepared {
    fn fixed_prompt_tokens(&self) -> u64 {
        *self.prompt_tokens.get_or_init(|| {
            Tokenizer::new(self.encoding).map_or(0, |t| t.count_messages(&self.messages))
        })
    }

    /// The request to send: origin-form with a `Host` header on an HTTP/1 connection of our
    /// own, absolute-form for HTTP/2 (its pseudo-headers come from it) and for the pooled
    /// client (which picks the connection from it).
    fn request(
        &self,
        origin_form: bool,
        out: &Outgoing,
    ) -> Result<Request<Full<Bytes>>, ErrorKind> {
        let uri = if origin_form { &self.origin } else { &self.uri };
        let mut builder = Request::builder().method(Method::POST).uri(uri.clone());
        if let Some(h) = builder.headers_mut() {
            h.reserve(self.headers.len() + 1);
            if origin_form {
                h.insert(http::header::HOST, self.host.clone());
            }
            for (n, v) in &self.headers {
                h.insert(n.clone(), v.clone());
            }
            if let (Some(n), Some(v)) = (&self.session_header, &out.session) {
                h.insert(n.clone(), v.clone());
            }
        }
        builder
            .body(Full::new(out.body.clone()))
            .map_err(|_| ErrorKind::Malformed)
    }
}

/// Which conversation to start: of which class, and which of the class's draws (the schedule
/// numbers them so every machine starts arrival k's conversation alike; None takes the next).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStart {
    pub class: usize,
    pub draw: Option<u64>,
}

fn prepare(
    class: &RequestClass,
    base: &str,
    endpoints: &mut Vec<Endpoint>,
    seed: u64,
) -> Result<Prepared, ClientError> {
    let url = class.api.url(base);
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
    let bad_url = |reason: &str| ClientError::InvalidUrl {
        url: base.to_string(),
        reason: reason.into(),
    };
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(bad_url(
                "expected http://HOST[:PORT] or https://HOST[:PORT]",
            ));
        }
    };
    let auth = uri.authority().ok_or_else(|| bad_url("no host"))?;
    if auth.as_str().contains('@') {
        return Err(bad_url(
            "credentials in a URL are refused (they would end up in logs and reports): \
             put the key in the request class's `api_key`",
        ));
    }
    let default_port = if https { 443 } else { 80 };
    let addr = format!(
        "{}:{}",
        auth.host(),
        auth.port_u16().unwrap_or(default_port)
    );
    let host = HeaderValue::try_from(auth.as_str()).map_err(|_| bad_url("bad host"))?;
    let tls = if https {
        let bare = auth.host().trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| bad_url("the host is not a name TLS can check"))?;
        Some(name)
    } else {
        None
    };
    let origin: Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| bad_url("bad path"))?;
    let endpoint = Endpoint { addr, tls };
    let authority = match endpoints.iter().position(|e| *e == endpoint) {
        Some(i) => i,
        None => {
            endpoints.push(endpoint);
            endpoints.len() - 1
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
    let serialize = |source| ClientError::Serialize {
        class: class.name.clone(),
        source,
    };
    let mut chat_body = serde_json::to_vec(&request).map_err(serialize)?;
    let extra = &class.workload.extra;
    if !extra.is_empty() {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&chat_body).map_err(serialize)?;
        for (k, v) in extra {
            map.entry(k.as_str()).or_insert_with(|| v.clone());
        }
        chat_body = serde_json::to_vec(&map).map_err(serialize)?;
    }
    let chat_body = Bytes::from(chat_body);
    let body = if class.api == Api::Chat {
        chat_body.clone()
    } else {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&chat_body).map_err(serialize)?;
        let encoded = class
            .api
            .encode(map)
            .map_err(|source| ClientError::Encode {
                class: class.name.clone(),
                source,
            })?;
        Bytes::from(serde_json::to_vec(&encoded).map_err(serialize)?)
    };
    let feed = (!class.workload.is_fixed()).then(|| {
        Feed::new(
            &class.name,
            &class.model,
            &class.messages,
            class.stream,
            class.max_tokens,
            &class.workload,
            seed,
        )
    });
    let session_header = class
        .workload
        .session
        .as_ref()
        .and_then(|s| s.id_header.as_deref())
        .map(|h| {
            HeaderName::try_from(h).map_err(|_| ClientError::InvalidHeader {
                class: class.name.clone(),
                name: h.to_string(),
            })
        })
        .transpose()?;
    let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    let auth = class
        .api
        .headers(class.api_key.as_ref().map(|k| k.expose()))
        .map_err(|_| ClientError::InvalidKey {
            class: class.name.clone(),
        })?;
    headers.extend(auth);
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
        body,
        chat_body,
        headers,
        stream: class.stream,
        api: class.api,
        prompt_tokens: std::sync::OnceLock::new(),
        messages: class.messages.clone(),
        encoding: class.workload.encoding,
        feed,
        session_header,
    })
}

/// Sends requests of the prepared classes; cheap to share (`Arc`) across tasks.
#[derive(Debug)]
pub struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    classes: Vec<Prepared>,
    /// Distinct servers the classes go to.
    endpoints: Vec<Endpoint>,
    /// TLS for the connections the client opens itself (one config: sessions resume).
    tls: std::sync::Arc<rustls::ClientConfig>,
    upstreams: Vec<String>,
    timeout: Duration,
    limits: ResponseLimits,
    http2: bool,
    /// HTTP/1 connections between open-model requests: a request takes a set (or a new one)
    /// and puts it back when its exchange is over. Leaner than hyper-util's pool on the hot
    /// path (no keyed lookup, no extra task hop), and never larger than the peak in flight.
    /// Oldest at the front, so the stale ones leave from there.
    idle: std::sync::Mutex<std::collections::VecDeque<UserConnections>>,
    /// Stamped on every sample, so the recorder keeps a direct baseline's apart.
    route: Via,
    /// Where the connections the client opens itself come from.
    sources: std::sync::Arc<Sources>,
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
        let mut endpoints = Vec::new();
        let prepared = classes
            .iter()
            .zip(targets)
            .map(|(c, t)| prepare(c, t, &mut endpoints, options.seed))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = ClientTls::new(&options.tls)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        connector.set_local_address(options.source_ips.first().copied());
        let http = HyperClient::builder(TokioExecutor::new())
            .http2_only(options.http2)
            .pool_idle_timeout(crate::net::CLIENT_POOL_IDLE)
            .build(tls.connector(connector));
        Ok(Self {
            http,
            classes: prepared,
            endpoints,
            tls: tls.negotiating(),
            http2: options.http2,
            upstreams: options.upstreams,
            timeout: options.timeout,
            limits: ResponseLimits {
                max_body_bytes: options.max_body_bytes,
            },
            idle: std::sync::Mutex::new(std::collections::VecDeque::new()),
            route: Via::Gateway,
            sources: std::sync::Arc::new(Sources::new(options.source_ips)),
        })
    }

    /// This client, marking its samples as sent by `route` (a direct baseline's client sends
    /// to the classes' primary upstreams and its samples count only as the baseline).
    pub fn routed(self, route: Via) -> Self {
        Self { route, ..self }
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
            return self
                .measure(None, class, t0, intended, Payload::of(overrides), None)
                .await;
        }
        let mut conn = self.take_idle();
        let sample = self
            .measure(
                Some(&mut conn),
                class,
                t0,
                intended,
                Payload::of(overrides),
                None,
            )
            .await;
        self.put_back(conn);
        sample
    }

    fn take_idle(&self) -> UserConnections {
        let taken = self.idle.lock().ok().and_then(|mut idle| {
            let now = Instant::now();
            while idle.front().is_some_and(|c| c.is_stale(now)) {
                idle.pop_front();
            }
            idle.pop_back()
        });
        taken.unwrap_or_else(|| self.user_connections())
    }

    fn put_back(&self, conn: UserConnections) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push_back(conn);
        }
    }

    /// Whether `class` is a conversation (sent with `converse`, not `send`).
    pub fn is_session(&self, class: usize) -> bool {
        self.classes
            .get(class)
            .and_then(|p| p.feed.as_ref())
            .is_some_and(Feed::is_session)
    }

    /// Runs one conversation of `class` whose first turn is intended at `t0 + intended`, on
    /// the user's connections (or the shared idle ones): each turn resends the history plus
    /// the answers, and is intended at the previous answer's end plus a think time. Turns
    /// that would start at or after `until` are not sent; a failed turn ends the conversation
    /// (there is no answer to continue from). Each turn's sample goes to `emit`.
    pub async fn converse(
        &self,
        conn: Option<&mut UserConnections>,
        start: SessionStart,
        t0: Instant,
        intended: Duration,
        until: Duration,
        emit: &mut (impl FnMut(Sample) + Send),
    ) {
        let mut shared = None;
        let conn = match conn {
            Some(c) => c,
            None if self.http2 => shared.insert(self.user_connections()),
            None => shared.insert(self.take_idle()),
        };
        self.converse_on(conn, start, t0, intended, until, emit)
            .await;
        if let Some(c) = shared
            && !self.http2
        {
            self.put_back(c);
        }
    }

    async fn converse_on(
        &self,
        conn: &mut UserConnections,
        start: SessionStart,
        t0: Instant,
        mut intended: Duration,
        until: Duration,
        emit: &mut (impl FnMut(Sample) + Send),
    ) {
        let SessionStart { class, draw } = start;
        let pooled = conn.pooled;
        let feed = self.classes.get(class).and_then(|p| p.feed.as_ref());
        let Some(feed) = feed else {
            emit(self.send_on(conn, class, t0, intended).await);
            return;
        };
        let mut conv = match feed.start_at(draw) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{e}");
                let mut s = Sample::new(class, intended, Duration::ZERO);
                s.route = self.route;
                s.result = Err(ErrorKind::Malformed);
                emit(s);
                return;
            }
        };
        let session = HeaderValue::try_from(conv.id.as_str()).ok();
        for turn in 1..=conv.turns {
            let draft = feed.turn(&conv);
            let out = Outgoing {
                body: draft.body,
                session: session.clone(),
                prompt_tokens: None,
            };
            let mut answer = String::new();
            let own = (!pooled).then_some(&mut *conn);
            let mut sample = self
                .measure(
                    own,
                    class,
                    t0,
                    intended,
                    Payload {
                        out: Some(out),
                        overrides: Overrides::default(),
                    },
                    Some(&mut answer),
                )
                .await;
            sample.turn = Some(turn);
            let ok = sample.result.is_ok();
            let ended = sample.intended + sample.latency;
            emit(sample);
            if !ok || turn == conv.turns {
                break;
            }
            if let Err(e) = feed.follow_up(&mut conv, answer) {
                tracing::warn!("{e}");
                break;
            }
            intended = ended + feed.think(&mut conv);
            if intended >= until {
                break;
            }
            tokio::time::sleep_until((t0 + intended).into()).await;
        }
    }

    /// Connections of one closed-model user: its own, one per target, like a real client.
    pub fn user_connections(&self) -> UserConnections {
        UserConnections {
            slots: (0..self.endpoints.len()).map(|_| None).collect(),
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
        self.send_on_with(conn, class, Overrides::default(), t0, intended)
            .await
    }

    /// Like `send_on`, with which of the class's draws to send (a closed-model user numbers
    /// its own, so every machine sends the same content for it).
    pub async fn send_on_with(
        &self,
        conn: &mut UserConnections,
        class: usize,
        overrides: Overrides,
        t0: Instant,
        intended: Duration,
    ) -> Sample {
        let own = (!conn.pooled).then_some(conn);
        self.measure(own, class, t0, intended, Payload::of(overrides), None)
            .await
    }

    /// One measured exchange, on the pool or on a user's own connection.
    async fn measure(
        &self,
        mut own: Option<&mut UserConnections>,
        class: usize,
        t0: Instant,
        intended: Duration,
        payload: Payload,
        reply: Option<&mut String>,
    ) -> Sample {
        let intended_at = t0 + intended;
        let prepared = self.classes.get(class);
        // The body is ready before the send is timed: building it is the generator's own
        // delay, so it shows as schedule lag, not as time the server took.
        let out = prepared.map(|p| outgoing(p, payload));
        let sent_at = Instant::now();
        let mut sample = Sample::new(
            class,
            intended,
            sent_at.saturating_duration_since(intended_at),
        );
        sample.route = self.route;
        let (prepared, out) = match (prepared, out) {
            (Some(p), Some(Ok(out))) => (p, out),
            _ => {
                sample.result = Err(ErrorKind::Malformed);
                return sample;
            }
        };
        let mut opened = None;
        let exchange = async {
            let response = match own.as_deref_mut() {
                Some(conn) => {
                    self.request_on(conn, prepared, &out, sent_at, &mut opened)
                        .await?
                }
                None => self.request_pooled(prepared, &out).await?,
            };
            response::read(
                response,
                response::Expected {
                    api: prepared.api,
                    stream: prepared.stream,
                },
                intended_at,
                &self.limits,
                &self.upstreams,
                &mut sample,
                reply,
            )
            .await
        };
        let result = tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
        let ended = Instant::now();
        sample.latency = ended.saturating_duration_since(intended_at);
        sample.opened = opened;
        if let Some(conn) = own {
            conn.finished(prepared.authority, result, ended);
        }
        sample.result = result;
        if sample.prompt_tokens > 0 {
            sample.prompt_tokens_from = TokenSource::Usage;
        } else if sample.result.is_ok() {
            // Only when the answer's usage did not say: the tokenizer's count of what was sent.
            sample.prompt_tokens = match (out.prompt_tokens, &prepared.feed) {
                (Some(known), _) => known,
                (None, Some(feed)) => feed.count_body(&out.body),
                (None, None) => prepared.fixed_prompt_tokens(),
            };
        }
        sample
    }

    /// Sends on the user's own connection; the response head, or how sending failed.
    /// `sent_at` is when the send was timed (the clock is read once a request). `opened` is
    /// set to the connection it had to open, if it could not reuse one.
    async fn request_on(
        &self,
        conn: &mut UserConnections,
        prepared: &Prepared,
        out: &Outgoing,
        sent_at: Instant,
        opened: &mut Option<Opened>,
    ) -> Result<Response<Incoming>, ErrorKind> {
        let slot = conn
            .slots
            .get_mut(prepared.authority)
            .ok_or(ErrorKind::Connect)?;
        // Idle too long, the server may be closing it as the request goes out (see
        // `IDLE_REUSE`): dropped, like a closed one.
        let reused = slot
            .as_ref()
            .is_some_and(|own| !own.sender.is_closed() && own.is_fresh(sent_at));
        let endpoint = self
            .endpoints
            .get(prepared.authority)
            .ok_or(ErrorKind::Connect)?;
        let sender = match slot.take() {
            Some(own) if reused => &mut slot.insert(own).sender,
            _ => {
                let (sender, o) = connect(endpoint, &self.tls, &self.sources).await?;
                *opened = Some(o);
                &mut slot.insert(OwnConnection::new(sender)).sender
            }
        };
        let request = prepared.request(sender.origin_form(), out)?;
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
            Err(Some(_)) if reused => {
                let (sender, o) = connect(endpoint, &self.tls, &self.sources).await?;
                *opened = Some(o);
                let fresh = &mut slot.insert(OwnConnection::new(sender)).sender;
                let request = prepared.request(fresh.origin_form(), out)?;
                fresh.ready().await.map_err(|_| ErrorKind::Reset)?;
                fresh
                    .try_send_request(request)
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
        out: &Outgoing,
    ) -> Result<Response<Incoming>, ErrorKind> {
        self.http
            .request(prepared.request(false, out)?)
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
    slots: Vec<Option<OwnConnection>>,
    pooled: bool,
}

impl UserConnections {
    /// How an exchange on the connection to `authority` ended at `ended`: a connection left
    /// in an unknown state (a response half read or never read) is let go; a sound one is
    /// idle from then.
    fn finished(&mut self, authority: usize, result: Result<(), ErrorKind>, ended: Instant) {
        let sound = matches!(
            result,
            Ok(()) | Err(ErrorKind::Status4xx | ErrorKind::RateLimited | ErrorKind::Status5xx)
        );
        if let Some(slot) = self.slots.get_mut(authority) {
            match slot {
                Some(own) if sound => own.idle_since = ended,
                _ => *slot = None,
            }
        }
    }

    /// Whether none of these connections is fresh enough to reuse at `now` (a set with no
    /// connection left counts as stale: keeping it saves nothing).
    fn is_stale(&self, now: Instant) -> bool {
        !self.slots.iter().flatten().any(|own| own.is_fresh(now))
    }
}

/// A user's connection to one target, and since when it has had nothing to do.
#[derive(Debug)]
struct OwnConnection {
    sender: Sender,
    idle_since: Instant,
}

impl OwnConnection {
    /// Whether it has been idle short enough at `now` to reuse (see `IDLE_REUSE`).
    fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.idle_since) <= IDLE_REUSE
    }

    fn new(sender: Sender) -> Self {
        OwnConnection {
            sender,
            idle_since: Instant::now(),
        }
    }
}

/// Where one target lives: its `host:port`, and the name its certificate must carry when it
/// speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    addr: String,
    tls: Option<ServerName<'static>>,
}

/// One connection of a user: HTTP/1.1, or HTTP/2 when a TLS server picked it by ALPN.
#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

type Sent = Result<Response<Incoming>, TrySendError<Request<Full<Bytes>>>>;

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    fn origin_form(&self) -> bool {
        matches!(self, Sender::H1(_))
    }

    async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn try_send_request(&mut self, request: Request<Full<Bytes>>) -> Sent {
        match self {
            Sender::H1(s) => s.try_send_request(request).await,
            Sender::H2(s) => s.try_send_request(request).await,
        }
    }
}

/// A new connection to `endpoint`: TCP, then TLS when it is an `https://` target, and what
/// opening it cost the request waiting for it. Every failure on the way (refused, certificate
/// rejected) is a `connect` error.
async fn connect(
    endpoint: &Endpoint,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    sources: &Sources,
) -> Result<(Sender, Opened), ErrorKind> {
    let started = Instant::now();
    let tcp = sources
        .connect(&endpoint.addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let _ = tcp.set_nodelay(true);
    let Some(name) = &endpoint.tls else {
        let sender = handshake_h1(TokioIo::new(tcp), true).await?;
        let opened = Opened {
            took: started.elapsed(),
            tls: None,
        };
        return Ok((sender, opened));
    };
    let stream = TlsConnector::from(tls.clone())
        .connect(name.clone(), tcp)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let session = match stream.get_ref().1.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => TlsSession::Resumed,
        _ => TlsSession::Full,
    };
    let sender = if stream.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Sender::H2(sender)
    } else {
        handshake_h1(TokioIo::new(stream), false).await?
    };
    let opened = Opened {
        took: started.elapsed(),
        tls: Some(session),
    };
    Ok((sender, opened))
}

/// `vectored`: let hyper hand the head and body to the socket as separate slices. Over TLS,
/// hyper's own flattened buffer is cheaper: rustls gathers slices through a per-write list
/// before sealing them, and flattening took the HTTPS generator from 16.8 to 15.1 µs of CPU
/// per request (benches/tls.sh).
async fn handshake_h1<T>(io: T, vectored: bool) -> Result<Sender, ErrorKind>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .writev(vectored)
        .handshake(io)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    tokio::spawn(async move {
        // Ends when the user drops its sender or the peer closes; either way nothing to report.
        let _ = connection.await;
    });
    Ok(Sender::H1(sender))
}

/// The body and session of one exchange: a conversation's own turn, else a draw from the
/// class's feed, else its prepared body; then what a trace line recorded replaces the class's
/// own: its output length, and its prompt length as synthetic text.
fn outgoing(prepared: &Prepared, payload: Payload) -> Result<Outgoing, ErrorKind> {
    let drawn = match (payload.out, &prepared.feed) {
        (Some(out), _) => Some(out),
        (None, None) => None,
        (None, Some(feed)) => match feed.draft_at(payload.overrides.draw) {
            Ok(d) => Some(Outgoing {
                body: d.body,
                session: None,
                prompt_tokens: None,
            }),
            Err(e) => {
                // Only a dataset changed or unreadable since validation gets here.
                tracing::warn!("{e}");
                return Err(ErrorKind::Malformed);
            }
        },
    };
    let o = payload.overrides;
    if o.max_tokens.is_none() && o.prompt_tokens.is_none() {
        return match drawn {
            // The prepared body is already in the class's API.
            None => Ok(Outgoing {
                body: prepared.body.clone(),
                session: None,
                prompt_tokens: None,
            }),
            Some(out) => encode(prepared.api, out),
        };
    }
    // A trace line's lengths are written in chat terms, then the whole is encoded.
    let out = drawn.unwrap_or_else(|| Outgoing {
        body: prepared.chat_body.clone(),
        session: None,
        prompt_tokens: None,
    });
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.body).map_err(|_| ErrorKind::Malformed)?;
    if let Some(max_tokens) = o.max_tokens {
        // The newer field would win at the server over the recorded length.
        json.remove("max_completion_tokens");
        json.insert("max_tokens".into(), max_tokens.into());
    }
    let mut prompt_tokens = out.prompt_tokens;
    if let Some(n) = o.prompt_tokens {
        // One message carries the whole recorded length: its text plus the message's overhead.
        let words = u64::from(n).saturating_sub(MESSAGE_OVERHEAD);
        let text = synthetic_text(usize::try_from(words).unwrap_or(0), o.line);
        json.insert(
            "messages".into(),
            serde_json::json!([{ "role": "user", "content": text }]),
        );
        prompt_tokens = Some(words + MESSAGE_OVERHEAD);
    }
    let body = serde_json::to_vec(&json).map_err(|_| ErrorKind::Malformed)?;
    encode(
        prepared.api,
        Outgoing {
            body: Bytes::from(body),
            session: out.session,
            prompt_tokens,
        },
    )
}

/// A body built as chat in the class's API. Only a body the feed built (or a trace line
/// rewrote) gets here, from what the class compiled with, so a failure is a broken draft
/// (`Malformed`).
fn encode(api: Api, out: Outgoing) -> Result<Outgoing, ErrorKind> {
    if api == Api::Chat {
        return Ok(out);
    }
    let chat: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.body).map_err(|_| ErrorKind::Malformed)?;
    let body = api.encode(chat).map_err(|_| ErrorKind::Malformed)?;
    let body = serde_json::to_vec(&body).map_err(|_| ErrorKind::Malformed)?;
    Ok(Outgoing {
        body: Bytes::from(body),
        ..out
    })
}

/// What one exchange sends beyond the class's prepared request: a body already drawn (a
/// conversation's turn), and what a trace line changes.
#[derive(Default)]
struct Payload {
    out: Option<Outgoing>,
    overrides: Overrides,
}

impl Payload {
    fn of(overrides: Overrides) -> Self {
        Self {
            out: None,
            overrides,
        }
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
