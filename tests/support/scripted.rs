//! Servers the load engine is tested against (answers chosen per request, arrival times
//! recorded), and scenario builders.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use futures_util::StreamExt;
use gauntlet::openai::Message;
use gauntlet::scenario::{
    Arrival, LoadPlan, RequestClass, Scenario, Sla, Stage, StageLoad, Target,
};
use tokio::io::AsyncReadExt;

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::server::{Received, Reply, Routes, TestServer, after, reply, serve_raw};

/// The path the load engine posts to.
pub const CHAT: &str = "/v1/chat/completions";

/// A server answering chat requests with `behaviour`; every other path answers 404.
pub async fn chat_server(
    behaviour: impl Fn(Received) -> Reply + Send + Sync + 'static,
) -> TestServer {
    Routes::new().route(CHAT, behaviour).serve().await
}

/// A server that reads a request and answers with a TCP reset.
pub async fn serve_reset() -> TestServer {
    serve_raw(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.set_zero_linger();
    })
    .await
}

/// A well-formed chat completion served by `upstream`.
pub fn completion_json(upstream: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","system_fingerprint":"gauntlet-{upstream}","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi there"}},"finish_reason":"stop","logprobs":null}}],"usage":{{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}}}"#
    )
}

/// An SSE stream of `deltas` content chunks, optionally closed by a finish reason and `[DONE]`.
pub fn stream_body(upstream: &str, deltas: usize, finish: bool, done: bool) -> String {
    let mut s = String::new();
    for i in 0..deltas {
        s.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"system_fingerprint\":\"gauntlet-{upstream}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    if finish {
        s.push_str("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    }
    if done {
        s.push_str("data: [DONE]\n\n");
    }
    s
}

fn chunk_event(upstream: &str, delta: &serde_json::Value, finish: Option<&str>) -> String {
    let chunk = serde_json::json!({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "system_fingerprint": format!("gauntlet-{upstream}"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

/// The closing events of a stream: a finish reason, the usage chunk when given (prompt,
/// completion, cached, reasoning tokens), and `[DONE]`.
fn stream_end(upstream: &str, finish: &str, usage: Option<[u64; 4]>) -> Vec<String> {
    let mut out = vec![chunk_event(upstream, &serde_json::json!({}), Some(finish))];
    if let Some([prompt, completion, cached, reasoning]) = usage {
        let chunk = serde_json::json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [],
            "usage": {
                "prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": reasoning},
            },
        });
        out.push(format!("data: {chunk}\n\n"));
    }
    out.push("data: [DONE]\n\n".into());
    out
}

/// A reasoning model's stream, one SSE event per element: `reasoning` `reasoning_content`
/// deltas, then `content` content deltas, then the end (with `usage` when given).
pub fn reasoning_stream(
    upstream: &str,
    reasoning: usize,
    content: usize,
    usage: Option<[u64; 4]>,
) -> Vec<String> {
    let mut out: Vec<String> = (0..reasoning)
        .map(|i| {
            chunk_event(
                upstream,
                &serde_json::json!({"reasoning_content": format!("think{i} ")}),
                None,
            )
        })
        .collect();
    out.extend((0..content).map(|i| {
        chunk_event(
            upstream,
            &serde_json::json!({"content": format!("t{i} ")}),
            None,
        )
    }));
    out.extend(stream_end(upstream, "stop", usage));
    out
}

/// A tool call streamed as OpenAI does: the first delta names the call (id, type, function
/// name), the next `pieces` carry its JSON arguments in pieces; `finish_reason` tool_calls.
pub fn tool_call_stream(upstream: &str, pieces: usize) -> Vec<String> {
    let mut out = vec![chunk_event(
        upstream,
        &serde_json::json!({"role": "assistant", "content": null, "tool_calls": [{
            "index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]}),
        None,
    )];
    out.extend((0..pieces).map(|i| {
        let arg = match i {
            0 => "{\"city\": \"".to_string(),
            i if i + 1 == pieces => "\"}".to_string(),
            _ => format!("p{i}"),
        };
        chunk_event(
            upstream,
            &serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": arg}}]}),
            None,
        )
    }));
    out.extend(stream_end(upstream, "tool_calls", None));
    out
}

/// A 200 event stream sending each of `events` after waiting `gap`, as a provider paces tokens.
pub fn paced(events: Vec<String>, gap: Duration) -> Reply {
    let frames = futures_util::stream::iter(events).then(move |e| async move {
        tokio::time::sleep(gap).await;
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(e)))
    });
    let r = Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(StreamBody::new(frames).boxed_unsync())
        .unwrap();
    Box::pin(async move { r })
}

pub fn class(name: &str, weight: u32, model: &str, stream: bool) -> RequestClass {
    RequestClass {
        name: name.into(),
        weight: NonZeroU32::new(weight).unwrap(),
        model: model.into(),
        messages: vec![Message::new("user", "Generate a product description")],
        max_tokens: Some(16),
        workload: Default::default(),
        stream,
        api: Default::default(),
        api_key: None,
        headers: Vec::new(),
        primary: None,
        tier: None,
        stage_weights: None,
    }
}

/// A load plan at a constant `rate` for `secs`, no warmup.
pub fn open_load(rate: f64, duration: Duration) -> LoadPlan {
    LoadPlan {
        stages: vec![Stage {
            duration,
            load: StageLoad::Rate {
                from: rate,
                to: rate,
            },
        }],
        warmup: Duration::ZERO,
        max_in_flight: NonZeroUsize::new(10_000).unwrap(),
        timeout: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        arrival: Arrival::Constant,
        baseline: None,
    }
}

/// A closed-model plan: `users` busy for `duration`, the first `warmup` of it not counted.
pub fn closed_load(users: usize, duration: Duration, warmup: Duration) -> LoadPlan {
    let mut load = open_load(1.0, duration);
    load.stages[0].load = StageLoad::Concurrency(NonZeroUsize::new(users).unwrap());
    load.warmup = warmup;
    load
}

/// A server answering every chat request with a completion after `delay`.
pub async fn answering_after(delay: Duration) -> TestServer {
    chat_server(move |_| after(delay, reply(200, &[], completion_json("alpha")))).await
}

/// A scenario sending `requests` at `url` with `load`.
pub fn scenario(url: &str, load: LoadPlan, requests: Vec<RequestClass>) -> Scenario {
    Scenario {
        name: "test".into(),
        description: None,
        seed: 7,
        target: Target::Url(url.into()),
        upstreams: Vec::new(),
        load,
        requests,
        faults: Vec::new(),
        sla: Sla::default(),
        compare_to: Vec::new(),
        capacity: Default::default(),
        tls: Default::default(),
        budget: None,
        probe: Default::default(),
        observe: Default::default(),
    }
}

/// One request of `class` to `url` by the engine's own client, measured as a run measures it
/// (`upstreams` names the served-by tags it may meet).
pub async fn send_one(
    class: RequestClass,
    url: &str,
    upstreams: &[&str],
) -> gauntlet::metrics::Sample {
    let client = gauntlet::engine::Client::new(
        &[class],
        &[url.to_string()],
        gauntlet::engine::ClientOptions {
            timeout: Duration::from_secs(10),
            upstreams: upstreams.iter().map(|u| u.to_string()).collect(),
            ..gauntlet::engine::ClientOptions::default()
        },
    )
    .unwrap();
    client
        .send(0, std::time::Instant::now(), Duration::ZERO)
        .await
}
