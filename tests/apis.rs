//! The other LLM APIs: a mock speaks Anthropic's Messages API, OpenAI's legacy text
//! completions and embeddings well enough that the official SDKs are the judges, a request
//! class with `api = "messages"` is sent as Anthropic's clients send it and measured from
//! Anthropic's own stream events, and the mock answers the `/health` probe benchmark tools
//! send before they start.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet::api::Api;
use gauntlet::metrics::{ErrorKind, ServedBy, TokenSource};
use gauntlet::mock::{FaultKind, FaultSpec, RateLimitCode, RequestOutcome};
use gauntlet::openai::Message;
use gauntlet::scenario::RequestClass;
use gauntlet::tokenizer::{Encoding, Tokenizer};

use crate::support::{Received, Routes, class, paced, profile, raw, send_one, start_mock_named};

const MESSAGES: &str = "/v1/messages";

fn claude_profile() -> gauntlet::mock::Profile {
    profile(
        "name = \"anthropic\"\nseed = 3\n[latency]\ntokens_per_second = 2000\n\
         [[models]]\nname = \"claude-test\"\ninput_price_per_m = 3\noutput_price_per_m = 15\n\
         context_window = 200000\n",
    )
}

/// Needs `python3` with the `anthropic` package (`.ci/run` installs it); never skips.
#[tokio::test]
async fn the_anthropic_python_sdk_reads_the_mocks_messages_streams_and_529s() {
    let healthy = start_mock_named(claude_profile(), "claude", None).await;
    let overloaded = start_mock_named(claude_profile(), "claude-down", None).await;
    overloaded.add_fault(FaultSpec {
        kind: FaultKind::Error {
            status: 529,
            message: Some("Overloaded".into()),
        },
        rate: 1.0,
        model: None,
    });
    let report =
        crate::support::python_script("sdk_anthropic.py", &[&healthy.url(), &overloaded.url()])
            .await;

    crate::support::assert_anthropic_sdk_answers(&report, "straight to the mock");

    let error = &report["error"];
    assert_eq!(error["status"], 529, "{report}");
    assert_eq!(error["type"], "overloaded_error", "{report}");

    let stats = healthy.stats();
    assert_eq!(stats.requests_total, 2);
    assert_eq!(
        stats.completion_tokens, 12,
        "7 + 5 tokens, counted like chat"
    );
    assert_eq!(stats.by_model.get("claude-test"), Some(&2));
}

#[tokio::test]
async fn a_messages_request_without_max_tokens_gets_anthropics_error_shape() {
    let m = start_mock_named(claude_profile(), "claude", None).await;
    let r = raw(
        m.addr(),
        "POST",
        "/v1/messages",
        &[("content-type", "application/json"), ("x-api-key", "k")],
        r#"{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status(), Some(400), "{}", r.body());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{v}"
    );

    let r = raw(m.addr(), "POST", "/v1/messages", &[], "{not json").await;
    assert_eq!(r.status(), Some(400), "{}", r.body());
    assert_eq!(r.json()["type"], "error");

    // The mock keeps serving after both.
    let r = raw(
        m.addr(),
        "POST",
        "/v1/messages",
        &[("content-type", "application/json")],
        r#"{"model":"claude-test","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    assert_eq!(r.json()["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn the_mock_answers_the_health_probe_benchmark_tools_send_first() {
    let m = start_mock_named(claude_profile(), "claude", None).await;
    for method in ["GET", "HEAD"] {
        let r = raw(m.addr(), method, "/health", &[], "").await;
        assert_eq!(r.status(), Some(200), "{method}: {}", r.head());
    }
    let r = raw(m.addr(), "GET", "/health", &[], "").await;
    assert_eq!(r.json()["status"], "ok");
    let r = raw(m.addr(), "POST", "/health", &[], "").await;
    assert_eq!(r.status(), Some(405), "{}", r.head());
    assert_eq!(m.stats().requests_total, 0, "a probe is not an API request");
}

fn messages_class(stream: bool) -> RequestClass {
    let mut c = class("claude", 1, "claude-test", stream);
    c.api = Api::Messages;
    c.max_tokens = Some(10);
    c.messages = vec![
        Message::new("system", "Answer in one line."),
        Message::new("user", "Generate a product description"),
    ];
    c.api_key = Some(gauntlet::config::Secret::new("sk-ant-test"));
    c
}

fn event(name: &str, data: serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An Anthropic stream: 3 thinking deltas, a ping, 6 text deltas, then the stop with usage
/// (40 input tokens of which 30 read from the cache, 9 output).
fn anthropic_stream(stop: bool) -> Vec<String> {
    let mut out = vec![event(
        "message_start",
        serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "content": [], "model": "claude-test",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "output_tokens": 1}}}),
    )];
    out.extend((0..3).map(|i| {
        event(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": format!("hmm{i} ")}}),
        )
    }));
    out.push(event("ping", serde_json::json!({"type": "ping"})));
    out.extend((0..6).map(|i| {
        event(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "text_delta", "text": format!("w{i} ")}}),
        )
    }));
    if stop {
        out.push(event(
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 9}}),
        ));
        out.push(event(
            "message_stop",
            serde_json::json!({"type": "message_stop"}),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_class_is_sent_as_anthropic_clients_send_it_and_timed_from_its_events() {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let gap = Duration::from_millis(15);
    let server = Routes::new()
        .route(MESSAGES, move |r| {
            log.lock().unwrap().push(r);
            paced(anthropic_stream(true), gap)
        })
        .serve()
        .await;
    let s = send_one(messages_class(true), &server.url(), &[]).await;
    assert_eq!(s.result, Ok(()), "{s:?}");

    let received = seen.lock().unwrap().pop().expect("one request");
    assert_eq!(received.path, MESSAGES);
    let h = &received.headers;
    assert_eq!(h.get("x-api-key").unwrap(), "sk-ant-test");
    assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
    assert!(
        h.get("authorization").is_none(),
        "the key goes in x-api-key only"
    );
    let body: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(body["system"], "Answer in one line.");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["max_tokens"], 10);
    assert_eq!(body["stream"], true);
    assert!(body.get("stream_options").is_none(), "{body}");

    // TTFT at the first thinking delta, TTFOT at the first text delta, three gaps apart.
    let (ttft, ttfot) = (s.ttft.unwrap(), s.ttfot.unwrap());
    assert!(
        ttfot >= ttft + gap * 3 / 2,
        "ttft {ttft:?}, ttfot {ttfot:?}"
    );
    assert_eq!(s.itl.len(), 5, "gaps between the six text deltas");
    assert_eq!(
        s.tpot, None,
        "9 output tokens hold an unknown number of thinking ones: no pace is better than a \
         flattering one"
    );
    assert_eq!(
        s.completion_tokens, 9,
        "message_delta's count wins over message_start's"
    );
    assert_eq!(
        s.reasoning_tokens, 0,
        "Anthropic's usage does not split thinking out"
    );
    assert_eq!(s.prompt_tokens, 40, "input plus cache reads");
    assert_eq!(s.cached_tokens, 30);
    assert_eq!(s.prompt_tokens_from, TokenSource::Usage);
}

#[tokio::test]
async fn a_messages_stream_that_errors_or_stops_short_is_not_a_success() {
    let server = Routes::new()
        .route(MESSAGES, |_| {
            let mut events = anthropic_stream(false);
            events.truncate(3);
            events.push(event(
                "error",
                serde_json::json!({"type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ));
            paced(events, Duration::ZERO)
        })
        .route("/v1/cut/v1/messages", |_| {
            paced(anthropic_stream(false), Duration::ZERO)
        })
        .serve()
        .await;
    let s = send_one(messages_class(true), &server.url(), &[]).await;
    assert_eq!(
        s.result,
        Err(ErrorKind::Status5xx),
        "an error event mid-stream"
    );
    let cut = format!("{}/v1/cut", server.url());
    let s = send_one(messages_class(true), &cut, &[]).await;
    assert_eq!(
        s.result,
        Err(ErrorKind::Truncated),
        "no message_stop, no stop_reason"
    );
}

#[tokio::test]
async fn a_messages_class_against_the_mock_counts_tokens_and_its_faults() {
    let m = start_mock_named(claude_profile(), "claude", None).await;
    let stream = send_one(messages_class(true), &m.url(), &["claude"]).await;
    assert_eq!(stream.result, Ok(()), "{stream:?}");
    assert_eq!(stream.served_by, Some(ServedBy::Known(0)));
    assert_eq!(stream.completion_tokens, 10);
    assert_eq!(stream.itl.len(), 9);
    assert!(stream.tpot.is_some(), "no thinking: the pace is known");
    assert!(stream.prompt_tokens > 5, "{stream:?}");
    assert_eq!(stream.prompt_tokens_from, TokenSource::Usage);

    let plain = send_one(messages_class(false), &m.url(), &["claude"]).await;
    assert_eq!(plain.result, Ok(()), "{plain:?}");
    assert_eq!(plain.completion_tokens, 10);
    assert_eq!(plain.prompt_tokens, stream.prompt_tokens, "the same prompt");
    let stats = m.stats();
    assert_eq!(stats.by_model.get("claude-test"), Some(&2));
    assert_eq!(stats.completion_tokens, 20);

    let id = m.add_fault(FaultSpec {
        kind: FaultKind::Error {
            status: 529,
            message: None,
        },
        rate: 1.0,
        model: None,
    });
    let s = send_one(messages_class(true), &m.url(), &["claude"]).await;
    assert_eq!(s.result, Err(ErrorKind::Status5xx));
    m.remove_fault(id);
    m.add_fault(FaultSpec {
        kind: FaultKind::RateLimit {
            retry_after: Duration::from_secs(1),
            code: RateLimitCode::RateLimitExceeded,
        },
        rate: 1.0,
        model: None,
    });
    let s = send_one(messages_class(false), &m.url(), &["claude"]).await;
    assert_eq!(s.result, Err(ErrorKind::RateLimited));
}

/// The user's story: a scenario whose class speaks Messages straight to an Anthropic-format
/// provider (here a mock standing in for it), with a 529 storm in the middle; the run measures
/// the stream, counts the storm as 5xx errors and fails its SLA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauntlet_run_sends_a_messages_class_and_counts_the_529_storm_against_the_sla() {
    let m = start_mock_named(claude_profile(), "claude", None).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("anthropic.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "anthropic-direct"
seed = 3
[target]
url = "{url}"
[[upstreams]]
name = "claude"
url = "{url}"
[load]
stages = [{{ duration = "3s", rate = 20 }}]
[[requests]]
name = "assistant"
model = "claude-test"
api = "messages"
prompt = "Hello"
max_tokens = 12
stream = true
api_key = "sk-ant-x"
primary = "claude"
[[faults]]
upstream = "claude"
at = "1s"
duration = "1s"
kind = "error"
status = 529
[sla]
availability = "99%"
"#,
            url = m.url()
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, stderr) = crate::support::gauntlet_run(&scenario, &out, &[]).await;
    assert_eq!(code, Some(1), "the SLA fails: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let overall = &summary["overall"];
    let ok = overall["successes"].as_u64().unwrap();
    let failed = overall["errors"]["status_5xx"].as_u64().unwrap_or(0);
    assert!(ok >= 20 && failed >= 5, "{overall}");
    assert_eq!(overall["tokens"]["completion"], ok * 12, "{overall}");
    assert_eq!(overall["served_by"]["claude"], ok, "{overall}");
    assert!(overall["ttft_ms"]["samples"] == ok, "{overall}");
    assert_eq!(overall["itl_ms"]["samples"], ok * 11, "{overall}");
    assert_eq!(m.stats().by_model.get("claude-test"), Some(&(ok + failed)));
}

/// A text model and an embedding model (vectors of the default size).
fn openai_profile(extra: &str) -> gauntlet::mock::Profile {
    profile(&format!(
        "name = \"openai\"\nseed = 4\n[latency]\ntokens_per_second = 2000\n{extra}\n\
         [[models]]\nname = \"text-test\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n\
         context_window = 4096\n\
         [[models]]\nname = \"embed-test\"\ninput_price_per_m = 0.02\noutput_price_per_m = 0\n\
         context_window = 8192\n"
    ))
}

fn tokens(text: &str) -> u64 {
    Tokenizer::new(Encoding::O200k).unwrap().count(text)
}

fn words(v: &serde_json::Value) -> usize {
    v.as_str().unwrap().split_whitespace().count()
}

/// Needs `python3` with the `openai` package (`.ci/run` installs it); never skips.
#[tokio::test]
async fn the_openai_python_sdk_reads_the_mocks_text_completions_and_embeddings() {
    let m = start_mock_named(openai_profile(""), "oai", None).await;
    let report = crate::support::python_script("sdk_openai_apis.py", &[&m.url()]).await;

    let plain = &report["plain"];
    assert!(
        plain["id"].as_str().unwrap().starts_with("cmpl-"),
        "{report}"
    );
    assert_eq!(plain["object"], "text_completion");
    assert_eq!(words(&plain["text"]), 7, "{report}");
    assert_eq!(plain["finish_reason"], "length", "{report}");
    assert_eq!(plain["completion_tokens"], 7);
    assert_eq!(
        plain["prompt_tokens"],
        tokens("Say hello"),
        "the prompt's text alone, no message overhead"
    );

    let default = &report["default"];
    assert_eq!(
        words(&default["text"]),
        16,
        "OpenAI's default max_tokens: {report}"
    );
    assert_eq!(default["completion_tokens"], 16);
    assert_eq!(default["finish_reason"], "length");

    let batch = &report["batch"];
    assert_eq!(
        batch["indices"],
        serde_json::json!([0, 1]),
        "one choice per prompt"
    );
    for t in batch["texts"].as_array().unwrap() {
        assert_eq!(words(t), 3, "{report}");
    }
    assert_eq!(batch["completion_tokens"], 6);

    let stream = &report["stream"];
    let chunks = stream["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 5, "one chunk per token: {report}");
    assert!(chunks.iter().all(|c| c["index"] == 0));
    let (last, rest) = chunks.split_last().unwrap();
    assert_eq!(last["finish_reason"], "length", "{report}");
    assert!(
        rest.iter().all(|c| c["finish_reason"].is_null()),
        "{report}"
    );
    let text: String = chunks.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(text.split_whitespace().count(), 5, "{text}");
    assert_eq!(stream["usage"]["completion_tokens"], 5, "{report}");
    assert_eq!(stream["usage"]["prompt_tokens"], tokens("Say hello"));

    let e = &report["embeddings"];
    assert_eq!(e["object"], "list");
    assert_eq!(e["model"], "embed-test");
    assert_eq!(e["indices"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        e["lengths"],
        serde_json::json!([1536, 1536, 1536]),
        "the default size, decoded from base64 by the SDK: {report}"
    );
    for n in e["norms"].as_array().unwrap() {
        assert!(
            (n.as_f64().unwrap() - 1.0).abs() < 1e-4,
            "unit vectors: {report}"
        );
    }
    assert_eq!(e["same_input_same_vector"], true, "{report}");
    assert_eq!(e["other_input_differs"], true, "{report}");
    let fox = tokens("the quick brown fox");
    let batch_tokens = 2 * fox + tokens("jumps over");
    assert_eq!(e["prompt_tokens"], batch_tokens);
    assert_eq!(
        e["total_tokens"], batch_tokens,
        "an embedding generates nothing"
    );
    assert_eq!(e["short_length"], 256, "{report}");
    assert!((e["short_norm"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    assert!(
        e["short_is_cut_full"].as_f64().unwrap() < 1e-5,
        "`dimensions` cuts the full vector and renormalises it: {report}"
    );
    assert_eq!(e["float_length"], 1536);
    assert!(
        e["float_vs_base64"].as_f64().unwrap() < 1e-6,
        "floats and base64 carry one vector: {report}"
    );

    let stats = m.stats();
    assert_eq!(stats.requests_total, 7, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::Ok), 7, "{stats:?}");
    assert_eq!(stats.model("text-test"), 4);
    assert_eq!(stats.model("embed-test"), 3);
    assert_eq!(stats.completion_tokens, 7 + 16 + 6 + 5, "{stats:?}");
    let completion_prompts = 4 * tokens("Say hello") + tokens("Say goodbye");
    assert_eq!(
        stats.prompt_tokens,
        completion_prompts + batch_tokens + 2 * fox,
        "{stats:?}"
    );
}

async fn post(m: &gauntlet::mock::MockHandle, path: &str, body: &str) -> crate::support::RawReply {
    raw(
        m.addr(),
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
}

#[tokio::test]
async fn bad_completions_and_embeddings_requests_get_openai_400s_and_the_mock_keeps_serving() {
    let m = start_mock_named(openai_profile(""), "oai", None).await;
    let cases = [
        ("/v1/embeddings", r#"{"model":"embed-test"}"#, "input"),
        (
            "/v1/embeddings",
            r#"{"model":"embed-test","input":"hi","dimensions":4096}"#,
            "dimensions",
        ),
        (
            "/v1/completions",
            r#"{"model":"text-test","prompt":42}"#,
            "prompt",
        ),
        (
            "/v1/completions",
            r#"{"model":"text-test","prompt":{"text":"hi"}}"#,
            "prompt",
        ),
    ];
    for (path, body, param) in cases {
        let r = post(&m, path, body).await;
        assert_eq!(r.status(), Some(400), "{path} {body}: {}", r.body());
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(param),
            "the message names the field: {v}"
        );
    }
    let r = post(&m, "/v1/embeddings", r#"{"model":"nope","input":"hi"}"#).await;
    assert_eq!(r.status(), Some(404), "{}", r.body());
    assert_eq!(r.json()["error"]["code"], "model_not_found");

    // The mock keeps serving, on both paths of each API.
    let r = post(
        &m,
        "/embeddings",
        r#"{"model":"embed-test","input":"hi","dimensions":4}"#,
    )
    .await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    assert_eq!(
        r.json()["data"][0]["embedding"].as_array().map(Vec::len),
        Some(4)
    );
    let r = post(
        &m,
        "/completions",
        r#"{"model":"text-test","prompt":"hi","max_tokens":2}"#,
    )
    .await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    assert_eq!(words(&r.json()["choices"][0]["text"]), 2);

    let r = raw(m.addr(), "GET", "/v1/embeddings", &[], "").await;
    assert_eq!(r.status(), Some(405), "{}", r.head());
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
    let r = raw(m.addr(), "POST", "/v1/nothing", &[], "").await;
    assert_eq!(r.status(), Some(404));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("POST /v1/completions") && msg.contains("POST /v1/embeddings"),
        "{msg}"
    );

    let stats = m.stats();
    assert_eq!(stats.outcome(RequestOutcome::ClientError), 7, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::Ok), 2, "{stats:?}");
}

fn fault(kind: FaultKind, model: &str) -> FaultSpec {
    FaultSpec {
        kind,
        rate: 1.0,
        model: Some(model.into()),
    }
}

#[tokio::test]
async fn completions_and_embeddings_meet_the_same_timing_faults_and_limits_as_chat() {
    let m = start_mock_named(
        openai_profile("ttft = \"80ms\"\n[limits]\nrequests_per_minute = 6"),
        "oai",
        None,
    )
    .await;
    let key = [
        ("content-type", "application/json"),
        ("authorization", "Bearer k1"),
    ];
    let embed = r#"{"model":"embed-test","input":["a","b"],"encoding_format":"float"}"#;
    let stream = r#"{"model":"text-test","prompt":"hi","max_tokens":8,"stream":true}"#;

    // Time to first token holds the embedding back as it holds a first token.
    let t0 = Instant::now();
    let r = raw(m.addr(), "POST", "/v1/embeddings", &key, embed).await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    assert!(
        t0.elapsed() >= Duration::from_millis(80),
        "{:?}",
        t0.elapsed()
    );

    // A fault limited to the embedding model leaves the text model alone.
    let id = m.add_fault(fault(
        FaultKind::Error {
            status: 503,
            message: Some("busy".into()),
        },
        "embed-test",
    ));
    let r = raw(m.addr(), "POST", "/v1/embeddings", &key, embed).await;
    assert_eq!(r.status(), Some(503), "{}", r.body());
    assert_eq!(r.json()["error"]["message"], "busy");
    m.remove_fault(id);

    let id = m.add_fault(fault(FaultKind::Malformed, "embed-test"));
    let r = raw(m.addr(), "POST", "/v1/embeddings", &key, embed).await;
    assert_eq!(r.status(), Some(200));
    assert!(serde_json::from_str::<serde_json::Value>(&r.body()).is_err());
    m.remove_fault(id);

    // A stream cut stops a text completion stream after its chunks, with no [DONE].
    let id = m.add_fault(fault(FaultKind::StreamCut { after_chunks: 3 }, "text-test"));
    let r = raw(m.addr(), "POST", "/v1/completions", &key, stream).await;
    assert_eq!(r.status(), Some(200));
    let events = r.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|e| e.contains("\"text_completion\"")));
    m.remove_fault(id);

    // The full stream: after the time to first token, eight chunks and [DONE].
    let t0 = Instant::now();
    let r = raw(m.addr(), "POST", "/v1/completions", &key, stream).await;
    assert!(t0.elapsed() >= Duration::from_millis(80));
    let events = r.events();
    assert_eq!(events.len(), 9, "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    // Six requests a minute: the sixth passes, the seventh is refused as chat's would be.
    let r = raw(m.addr(), "POST", "/v1/embeddings", &key, embed).await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    let r = raw(m.addr(), "POST", "/v1/completions", &key, stream).await;
    assert_eq!(r.status(), Some(429), "{}", r.body());
    assert!(r.header("retry-after").is_some(), "{}", r.head());

    let stats = m.stats();
    assert_eq!(stats.outcome(RequestOutcome::Error), 1, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::Malformed), 1, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::StreamCut), 1, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::RateLimited), 1, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::Ok), 3, "{stats:?}");
    assert_eq!(stats.completion_tokens, 8 + 8, "{stats:?}");
}

#[tokio::test]
async fn a_batch_of_prompts_streams_one_choice_each_side_by_side() {
    let m = start_mock_named(openai_profile(""), "oai", None).await;
    let body = r#"{"model":"text-test","prompt":["hello","hello world"],"max_tokens":2,
        "stream":true,"stream_options":{"include_usage":true}}"#;
    let r = post(&m, "/v1/completions", body).await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    let events = r.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let (usage, deltas) = chunks.split_last().unwrap();
    let seen: Vec<(u64, bool)> = deltas
        .iter()
        .map(|c| {
            let choice = &c["choices"][0];
            (
                choice["index"].as_u64().unwrap(),
                choice["finish_reason"] == "length",
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(0, false), (1, false), (0, true), (1, true)],
        "{chunks:?}"
    );
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(
        usage["usage"]["prompt_tokens"],
        tokens("hello") + tokens("hello world")
    );
}
