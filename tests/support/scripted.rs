//! Servers the load engine is tested against (answers chosen per request, arrival times
//! recorded), and scenario builders.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use gauntlet::openai::Message;
use gauntlet::scenario::{
    Arrival, LoadPlan, RequestClass, Scenario, Sla, Stage, StageLoad, Target,
};
use tokio::io::AsyncReadExt;

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

pub fn class(name: &str, weight: u32, model: &str, stream: bool) -> RequestClass {
    RequestClass {
        name: name.into(),
        weight: NonZeroU32::new(weight).unwrap(),
        model: model.into(),
        messages: vec![Message::new("user", "Generate a product description")],
        max_tokens: Some(16),
        workload: Default::default(),
        stream,
        api_key: None,
        headers: Vec::new(),
        primary: None,
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
    }
}
