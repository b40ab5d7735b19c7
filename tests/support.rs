//! Starting servers on port 0 for tests, and reading what they saw: gauntlet's own (mocks,
//! the reference gateway) and the tests' own, all built by `server::Routes` or
//! `server::serve_raw`. Every helper returns a handle with the address; dropping it shuts
//! the server down.

#![allow(dead_code)] // each test module uses its own subset

mod misbehaving;
mod processes;
mod scripted;
mod server;
pub use misbehaving::*;
pub use processes::*;
pub use scripted::*;
pub use server::*;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use gauntlet::config::Source;
use gauntlet::gateway::{Config, GatewayHandle};
use gauntlet::mock::{self, MockHandle, Profile};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Tests whose verdict rests on timing (a capacity search) and tests that load the whole
/// machine (containers) take this lock, so the one never runs while the other starves it of
/// CPU. A test that failed while holding it must not stop the others: a poisoned lock is taken
/// all the same.
pub fn machine_to_myself() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A profile from TOML text; panics with the located errors if the text is wrong.
pub fn profile(toml: &str) -> Profile {
    Profile::parse(&Source::new("test-profile.toml", toml)).unwrap_or_else(|e| panic!("{e}"))
}

/// A one-model profile (`m`) answering at once, with extra TOML appended (tables only).
pub fn instant_profile(extra: &str) -> Profile {
    profile(&format!(
        "name = \"test\"\nseed = 5\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\n\
         output_price_per_m = 2\ncontext_window = 1000\n{extra}"
    ))
}

/// Starts a mock on 127.0.0.1 with a free port.
pub async fn start_mock(profile: Profile) -> MockHandle {
    start_mock_named(profile, "test", None).await
}

pub async fn start_mock_named(profile: Profile, name: &str, token: Option<&str>) -> MockHandle {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    mock::start(profile, name, addr, token.map(str::to_string))
        .await
        .unwrap()
}

/// What a raw HTTP/1.0 exchange produced: the bytes read before the server closed, or the
/// error the socket reported (a reset shows up here).
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    pub error: Option<std::io::Error>,
}

impl RawReply {
    pub fn status(&self) -> Option<u16> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        text.split(' ').nth(1)?.parse().ok()
    }

    pub fn head(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split("\r\n\r\n").next().unwrap_or("").to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head().lines().find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    }

    pub fn body(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }

    /// The `data:` payloads of an event stream body.
    pub fn events(&self) -> Vec<String> {
        let mut d = gauntlet::openai::SseDecoder::new();
        let mut out = Vec::new();
        d.feed(self.body().as_bytes(), |e| out.push(e.data))
            .unwrap();
        out
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body()))
    }
}

/// Sends one HTTP/1.0 request (so the server closes when done: no chunking, no keep-alive)
/// and reads until the connection ends, at most `limit` long.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawReply {
    raw_timed(addr, method, path, headers, body, Duration::from_secs(20)).await
}

pub async fn raw_timed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> RawReply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nhost: test\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut reply = RawReply {
        bytes: Vec::new(),
        error: None,
    };
    if let Err(e) = s.write_all(req.as_bytes()).await {
        reply.error = Some(e);
        return reply;
    }
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return None,
                Ok(n) => reply.bytes.extend_from_slice(&buf[..n]),
                Err(e) => return Some(e),
            }
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(err) => reply.error = err,
        Err(_) => panic!("no end of reply within {limit:?}"),
    }
    reply
}

/// A chat request body for model `m`.
pub fn chat_body(model: &str, max_tokens: u32, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Generate a product description"}],
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
    .to_string()
}

pub async fn post_chat(addr: SocketAddr, body: &str) -> RawReply {
    raw(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Scripted upstreams and the reference gateway.

/// How a scripted upstream answers a chat request.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A completion (or a 3-chunk stream ending in `[DONE]` when asked to stream).
    Ok,
    /// An OpenAI error with this status and code; `retry_after_ms` adds the headers.
    Error {
        status: u16,
        code: &'static str,
        retry_after_ms: Option<u64>,
    },
    /// Never answers.
    Hang,
    /// A 200 stream that sends `n` chunks and then breaks the connection.
    StreamCut(usize),
}

impl Mode {
    pub fn status(status: u16) -> Self {
        Mode::Error {
            status,
            code: "server_error",
            retry_after_ms: None,
        }
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// The `model` field of each chat request.
    models: Vec<String>,
    authorization: Vec<Option<String>>,
    /// Each chat request's body as it arrived.
    bodies: Vec<Bytes>,
}

#[derive(Debug)]
struct UpState {
    name: String,
    mode: Mutex<Mode>,
    script: Mutex<VecDeque<Mode>>,
    seen: Mutex<Seen>,
}

/// A small real OpenAI-compatible upstream whose answers a test scripts and whose
/// received requests it can count.
pub struct TestUpstream {
    pub server: TestServer,
    state: Arc<UpState>,
}

impl TestUpstream {
    pub fn url(&self) -> String {
        self.server.url()
    }
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }
    /// Answers the next requests with these modes, then falls back to the set mode.
    pub fn script(&self, modes: Vec<Mode>) {
        self.state.script.lock().unwrap().extend(modes);
    }
    /// Chat requests received.
    pub fn hits(&self) -> u64 {
        self.server.hits(CHAT) as u64
    }
    /// Requests received at `path` (any path is answered: 404 but for chat completions).
    pub fn path_hits(&self, path: &str) -> u64 {
        self.server.hits(path) as u64
    }
    pub fn models(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().models.clone()
    }
    /// The chat request bodies received, byte for byte.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.state.seen.lock().unwrap().bodies.clone()
    }
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.seen.lock().unwrap().authorization.clone()
    }
}

fn completion(name: &str, model: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": model,
        "system_fingerprint": format!("gauntlet-{name}"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                     "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    })
    .to_string()
}

fn chunk(name: &str, content: &str, finish: Option<&str>) -> Bytes {
    let c = serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "system_fingerprint": format!("gauntlet-{name}"),
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    });
    Bytes::from(format!("data: {c}\n\n"))
}

async fn upstream_answer(state: Arc<UpState>, req: Received) -> Response<Body> {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let parsed: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let model = parsed["model"].as_str().unwrap_or("").to_string();
    let stream = parsed["stream"].as_bool().unwrap_or(false);
    {
        let mut seen = state.seen.lock().unwrap();
        seen.models.push(model.clone());
        seen.authorization.push(auth);
        seen.bodies.push(req.body.clone());
    }
    let mode = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| state.mode.lock().unwrap().clone());
    let name = state.name.clone();
    let mut resp = match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(full(""))
        }
        Mode::Error {
            status,
            code,
            retry_after_ms,
        } => {
            let body = serde_json::json!({"error": {"message": format!("{name} says {status}"),
                "type": "server_error", "param": null, "code": code}});
            let mut r = Response::new(full(body.to_string()));
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(ms) = retry_after_ms {
                r.headers_mut().insert("retry-after-ms", ms.into());
                r.headers_mut()
                    .insert("retry-after", ms.div_ceil(1000).into());
            }
            r
        }
        Mode::Ok if !stream => Response::new(full(completion(&name, &model))),
        Mode::Ok => {
            let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                Ok(Frame::data(chunk(&name, "a", None))),
                Ok(Frame::data(chunk(&name, "b", None))),
                Ok(Frame::data(chunk(&name, "", Some("stop")))),
                Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))),
            ];
            Response::new(StreamBody::new(stream::iter(frames)).boxed_unsync())
        }
        Mode::StreamCut(n) => {
            let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..n)
                .map(|i| Ok(Frame::data(chunk(&name, &i.to_string(), None))))
                .collect();
            frames.push(Err(std::io::Error::other("scripted cut")));
            let s = stream::iter(frames);
            // Give the first chunks time to leave before the cut aborts the connection.
            let s = futures_util::StreamExt::then(s, |f| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                f
            });
            Response::new(StreamBody::new(s).boxed_unsync())
        }
    };
    let ct = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert("content-type", ct.parse().unwrap());
    resp.headers_mut()
        .insert("x-gauntlet-upstream", name.parse().unwrap());
    resp
}

/// Starts a scripted upstream on 127.0.0.1:0, answering `Mode::Ok` until told otherwise.
pub async fn upstream(name: &str) -> TestUpstream {
    let state = Arc::new(UpState {
        name: name.to_string(),
        mode: Mutex::new(Mode::Ok),
        script: Mutex::new(VecDeque::new()),
        seen: Mutex::new(Seen::default()),
    });
    let st = Arc::clone(&state);
    let server = Routes::new()
        .route(CHAT, move |req| {
            Box::pin(upstream_answer(Arc::clone(&st), req))
        })
        .serve()
        .await;
    TestUpstream { server, state }
}

/// Two scripted upstreams, `primary` and `fallback`, behind the reference gateway: model `m`
/// goes to `primary` and fails over to `fallback`. The gateway file ends with the tables in
/// `extra`.
pub async fn failover(extra: &str) -> (TestUpstream, TestUpstream, GatewayHandle) {
    let (primary, fallback) = (upstream("primary").await, upstream("fallback").await);
    let gw = gateway(&failover_toml(&primary.url(), &fallback.url(), extra)).await;
    (primary, fallback, gw)
}

/// A gateway file routing model `m` to the upstream `primary` at one URL, falling back to
/// `fallback` at the other, followed by the tables in `extra`.
pub fn failover_toml(primary: &str, fallback: &str, extra: &str) -> String {
    format!(
        r#"routes = [{{ model = "m", targets = ["primary"], fallbacks = ["fallback"] }}]
{extra}
[[upstreams]]
name = "primary"
url = "{primary}"
[[upstreams]]
name = "fallback"
url = "{fallback}"
"#
    )
}

/// Starts the reference gateway on 127.0.0.1:0 from a gateway config written in TOML.
pub async fn gateway(toml: &str) -> GatewayHandle {
    let config = Config::from_source(&Source::new("test-gateway.toml", toml))
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{toml}"));
    gauntlet::gateway::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A response as the client saw it; `cut` is set when the body ended in an error.
#[derive(Debug)]
pub struct ClientReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub cut: bool,
}

impl ClientReply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A pooled HTTP client for tests.
#[derive(Clone)]
pub struct TestClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    pub fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> ClientReply {
        let resp = tokio::time::timeout(Duration::from_secs(30), self.inner.request(req))
            .await
            .expect("response within 30s")
            .expect("response");
        let (parts, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        let mut cut = false;
        while let Some(f) = body.frame().await {
            match f {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                    }
                }
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
        ClientReply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Bytes::from(buf),
            cut,
        }
    }

    /// POSTs a chat request for `model` (non-streamed unless `stream`) with a Bearer key.
    pub async fn chat(
        &self,
        base: &str,
        key: Option<&str>,
        model: &str,
        stream: bool,
    ) -> ClientReply {
        let body = serde_json::json!({
            "model": model, "stream": stream, "max_tokens": 16,
            "messages": [{"role": "user", "content": "Say hello"}], "temperature": 0.3
        });
        self.post(base, "/v1/chat/completions", key, body.to_string())
            .await
    }

    pub async fn post(
        &self,
        base: &str,
        path: &str,
        key: Option<&str>,
        body: String,
    ) -> ClientReply {
        let mut b =
            Request::post(format!("{base}{path}")).header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        self.send(b.body(Full::new(Bytes::from(body))).unwrap())
            .await
    }

    pub async fn get(&self, base: &str, path: &str) -> ClientReply {
        self.send(
            Request::get(format!("{base}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
    }
}

/// Runs `tests/py/SCRIPT` with python3 against `base_url` (an OpenAI base URL ending in `/v1`)
/// and reads the JSON report it prints. The test fails, never skips, when python3 or the
/// `openai` package is missing (`.ci/run` installs both).
pub async fn python_sdk(script: &str, base_url: &str) -> serde_json::Value {
    python_script(script, &[base_url]).await
}

/// Runs `tests/py/SCRIPT ARGS...` with python3 and reads the JSON line it prints; fails, never
/// skips, when python3 or the SDK the script imports is missing.
pub async fn python_script(script: &str, args: &[&str]) -> serde_json::Value {
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK script finishes within 120 s")
        .unwrap_or_else(|e| panic!("python3 is needed for this test and could not start: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}); `pip install openai anthropic` if a package is missing:\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stderr}"))
}

/// What `tests/py/sdk_anthropic.py` read from a healthy Messages endpoint: a 7-token answer
/// and a 5-token stream, both cut at max_tokens, parsed by Anthropic's own SDK. `context`
/// names the setup in failure messages.
pub fn assert_anthropic_sdk_answers(report: &serde_json::Value, context: &str) {
    let plain = &report["plain"];
    assert!(
        plain["id"].as_str().unwrap().starts_with("msg_"),
        "{context}: {report}"
    );
    assert_eq!(plain["role"], "assistant", "{context}: {report}");
    assert_eq!(plain["stop_reason"], "max_tokens", "{context}: {report}");
    assert_eq!(plain["output_tokens"], 7, "{context}: {report}");
    assert_eq!(
        plain["text"].as_str().unwrap().split_whitespace().count(),
        7,
        "{context}: {report}"
    );
    assert!(
        plain["input_tokens"].as_u64().unwrap() > 0,
        "{context}: {report}"
    );

    let stream = &report["stream"];
    let events: Vec<&str> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(
        events.first(),
        Some(&"message_start"),
        "{context}: {report}"
    );
    assert_eq!(events.last(), Some(&"message_stop"), "{context}: {report}");
    let deltas = events
        .iter()
        .filter(|e| **e == "content_block_delta")
        .count();
    assert_eq!(deltas, 5, "one delta per token; {context}: {report}");
    assert_eq!(stream["text"], stream["final_text"], "{context}: {report}");
    assert_eq!(stream["output_tokens"], 5, "{context}: {report}");
    assert_eq!(stream["stop_reason"], "max_tokens", "{context}: {report}");
}

/// What `tests/py/sdk_openai_responses.py` read from a healthy Responses endpoint, parsed by
/// the openai SDK: a 7-token answer cut at its budget, a 5-token stream whose events are
/// numbered in order and whose closing response repeats the deltas' text, the SDK's stream
/// helper agreeing with the final response, and a stateful request refused with its field.
/// `context` names the setup in failure messages.
pub fn assert_responses_sdk_answers(report: &serde_json::Value, context: &str) {
    let words = |v: &serde_json::Value| v.as_str().unwrap_or("").split_whitespace().count();
    let plain = &report["plain"];
    assert!(
        plain["id"].as_str().unwrap().starts_with("resp_"),
        "{context}: {report}"
    );
    assert_eq!(plain["object"], "response", "{context}: {report}");
    assert_eq!(plain["status"], "incomplete", "{context}: {report}");
    assert_eq!(
        plain["incomplete_reason"], "max_output_tokens",
        "{context}: {report}"
    );
    assert_eq!(words(&plain["text"]), 7, "{context}: {report}");
    assert_eq!(plain["usage"]["output_tokens"], 7, "{context}: {report}");
    let input = plain["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input > 0, "{context}: {report}");
    assert_eq!(
        plain["usage"]["total_tokens"].as_u64().unwrap(),
        input + 7,
        "{context}: {report}"
    );

    let stream = &report["stream"];
    let events = stream["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds.first(),
        Some(&"response.created"),
        "{context}: {report}"
    );
    assert_eq!(
        kinds.last(),
        Some(&"response.incomplete"),
        "the budget ran out; {context}: {report}"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["sequence_number"], i,
            "numbered in order; {context}: {report}"
        );
    }
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert_eq!(deltas, 5, "one delta per token; {context}: {report}");
    assert_eq!(stream["text"], stream["final_text"], "{context}: {report}");
    assert_eq!(stream["usage"]["output_tokens"], 5, "{context}: {report}");

    let helper = &report["helper"];
    assert!(words(&helper["text"]) > 0, "{context}: {report}");
    assert_eq!(helper["text"], helper["final_text"], "{context}: {report}");

    assert_eq!(report["refused"]["status"], 400, "{context}: {report}");
    assert_eq!(
        report["refused"]["param"], "previous_response_id",
        "{context}: {report}"
    );
}

/// `gauntlet run SCENARIO -q --out OUT` plus `args`, to its end: the exit code and stderr.
pub async fn gauntlet_run(
    scenario: &std::path::Path,
    out: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, String) {
    let done = tokio::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(scenario)
        .arg("-q")
        .args(args)
        .arg("--out")
        .arg(out)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .await
        .unwrap();
    (
        done.status.code(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
    )
}

/// A pass-through gateway that waits `delay` before forwarding each chat request to the
/// upstream serving its `model` (`routes`: model -> base URL) and relays the answer whole:
/// a gateway whose overhead is known. Unknown models get a 404.
pub async fn delaying_proxy(delay: Duration, routes: &[(&str, String)]) -> TestServer {
    let routes: Arc<Vec<(String, String)>> = Arc::new(
        routes
            .iter()
            .map(|(m, u)| (m.to_string(), u.clone()))
            .collect(),
    );
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    Routes::new()
        .route(CHAT, move |req| {
            let (routes, client) = (routes.clone(), client.clone());
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let parsed: serde_json::Value =
                    serde_json::from_slice(&req.body).unwrap_or_default();
                let model = parsed["model"].as_str().unwrap_or_default();
                let Some((_, base)) = routes.iter().find(|(m, _)| m == model) else {
                    return Response::builder()
                        .status(404)
                        .body(full(format!("no upstream for model {model:?}")))
                        .unwrap();
                };
                let mut forward = Request::post(format!("{base}{CHAT}"));
                for name in ["content-type", "authorization"] {
                    if let Some(v) = req.headers.get(name) {
                        forward = forward.header(name, v);
                    }
                }
                let answer = client
                    .request(forward.body(Full::new(req.body.clone())).unwrap())
                    .await
                    .unwrap();
                let (parts, body) = answer.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let mut reply = Response::new(full(body));
                *reply.status_mut() = parts.status;
                for name in ["content-type", "x-gauntlet-upstream"] {
                    if let Some(v) = parts.headers.get(name) {
                        reply.headers_mut().insert(name, v.clone());
                    }
                }
                reply
            })
        })
        .serve()
        .await
}

/// One push an OTLP receiver got: its head, its body as sent, and the body decoded (or why
/// it would not decode).
#[derive(Clone)]
pub struct OtlpPush {
    pub method: http::Method,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub request: Result<
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        String,
    >,
}

/// A loopback OTLP/HTTP metrics receiver, as a collector's `otlp` receiver answers: POST
/// `/v1/metrics` with a protobuf `ExportMetricsServiceRequest` gets 200 and an empty
/// `ExportMetricsServiceResponse`; a body that does not decode gets 400.
pub struct OtlpReceiver {
    pub server: TestServer,
    pushes: Arc<Mutex<Vec<OtlpPush>>>,
}

impl OtlpReceiver {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every push so far, in the order they came.
    pub fn pushes(&self) -> Vec<OtlpPush> {
        self.pushes.lock().unwrap().clone()
    }
}

pub async fn otlp_receiver() -> OtlpReceiver {
    otlp_receiver_refusing(0).await
}

/// An OTLP receiver that answers its first `first` pushes 503 "starting up", as a collector
/// starting up or shedding load does, and keeps only the pushes after them.
pub async fn otlp_receiver_refusing(first: usize) -> OtlpReceiver {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use prost::Message;
    let pushes: Arc<Mutex<Vec<OtlpPush>>> = Arc::default();
    let log = pushes.clone();
    let server = Routes::new()
        .route("/v1/metrics", move |r: Received| {
            if r.index < first {
                return reply(503, &[], "starting up");
            }
            let request =
                ExportMetricsServiceRequest::decode(r.body.clone()).map_err(|e| e.to_string());
            let decoded = request.is_ok();
            log.lock().unwrap().push(OtlpPush {
                method: r.method,
                content_type: r
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: r.body,
                request,
            });
            if decoded {
                let answer = ExportMetricsServiceResponse::default().encode_to_vec();
                reply(200, &[("content-type", "application/x-protobuf")], answer)
            } else {
                reply(400, &[], "not an ExportMetricsServiceRequest")
            }
        })
        .serve()
        .await;
    OtlpReceiver { server, pushes }
}

/// The families every run exports, with their Prometheus types (OTLP pushes a counter as a sum).
pub const RUN_FAMILIES: [(&str, &str); 14] = [
    ("gauntlet_run_info", "gauge"),
    ("gauntlet_run_planned_seconds", "gauge"),
    ("gauntlet_run_elapsed_seconds", "gauge"),
    ("gauntlet_in_flight", "gauge"),
    ("gauntlet_requests", "counter"),
    ("gauntlet_dropped", "counter"),
    ("gauntlet_prompt_tokens", "counter"),
    ("gauntlet_completion_tokens", "counter"),
    ("gauntlet_served", "counter"),
    ("gauntlet_schedule_lag_seconds", "histogram"),
    ("gauntlet_latency_seconds", "histogram"),
    ("gauntlet_ttft_seconds", "histogram"),
    ("gauntlet_tpot_seconds", "histogram"),
    ("gauntlet_fault_active", "gauge"),
];

/// The live metrics of a one-second run of one class against one upstream with one outage,
/// no SLA set: every family a run serves, to list them.
pub fn every_family_metrics() -> gauntlet::observe::LiveMetrics {
    use gauntlet::observe::{LiveMetrics, PlannedFault, RunShape};
    LiveMetrics::new(
        RunShape {
            scenario: "s".into(),
            seed: 1,
            classes: vec!["c".into()],
            upstreams: vec!["u".into()],
            faults: vec![PlannedFault {
                upstream: "u".into(),
                kind: "outage".into(),
                start: Duration::ZERO,
                end: Duration::from_secs(1),
            }],
            planned: Duration::from_secs(1),
            warmup: Duration::ZERO,
            native: false,
        },
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    )
}

/// Two instant mocks named "primary" and "fallback", `profile_extra` added to each profile.
pub async fn primary_and_fallback(profile_extra: &str) -> (MockHandle, MockHandle) {
    (
        start_mock_named(instant_profile(profile_extra), "primary", None).await,
        start_mock_named(instant_profile(profile_extra), "fallback", None).await,
    )
}

/// The exit code a run ends with for its summary's verdict: 0 when the SLA passed, else 1.
pub fn verdict_code(summary: &serde_json::Value) -> Option<i32> {
    Some(if summary["sla"]["passed"] == true {
        0
    } else {
        1
    })
}

/// A run folder's `summary.json`, saying the run's stderr when there is none.
pub fn summary_of(out: &std::path::Path, stderr: &str) -> gauntlet::metrics::Summary {
    serde_json::from_slice(&summary_bytes(out, stderr)).unwrap()
}

/// A run folder's `summary.json` as JSON, saying the run's stderr when there is none.
pub fn summary_json(out: &std::path::Path, stderr: &str) -> serde_json::Value {
    serde_json::from_slice(&summary_bytes(out, stderr)).unwrap()
}

fn summary_bytes(out: &std::path::Path, stderr: &str) -> Vec<u8> {
    std::fs::read(out.join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary.json ({e}); stderr:\n{stderr}"))
}

/// A scenario named `name` with `seed`: upstreams "primary" and "fallback" at their URLs and
/// a gateway routing model "m" to primary with fallback behind it; `rest` adds the test's own
/// `[load]`, `[[requests]]`, `[[faults]]` and `[sla]`.
pub fn failover_scenario(
    name: &str,
    seed: u64,
    primary: &str,
    fallback: &str,
    rest: &str,
) -> String {
    format!(
        r#"name = "{name}"
seed = {seed}
[[upstreams]]
name = "primary"
url = "{primary}"
[[upstreams]]
name = "fallback"
url = "{fallback}"
[gateway]
routes = [{{ model = "m", targets = ["primary"], fallbacks = ["fallback"] }}]
{rest}"#
    )
}
