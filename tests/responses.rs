//! OpenAI's Responses API and embeddings as request classes: the mock serves `/v1/responses`
//! well enough that the openai SDK is the judge; a class with `api = "responses"` is sent as
//! OpenAI's clients send it and timed from the Responses events; a class with
//! `api = "embeddings"` sends one input per message and is counted from the answer's usage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gauntlet::api::Api;
use gauntlet::metrics::{ErrorKind, ServedBy, TokenSource};
use gauntlet::mock::{FaultKind, FaultSpec, RequestOutcome};
use gauntlet::openai::Message;
use gauntlet::scenario::RequestClass;
use gauntlet::tokenizer::{Encoding, Tokenizer};

use crate::support::{Received, Routes, class, paced, profile, reply, send_one, start_mock_named};

const RESPONSES: &str = "/v1/responses";

/// A text model and an embedding model, both fast.
fn openai_profile() -> gauntlet::mock::Profile {
    profile(
        "name = \"openai\"\nseed = 5\n[latency]\ntokens_per_second = 2000\n\
         [[models]]\nname = \"gpt-test\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n\
         context_window = 8192\n\
         [[models]]\nname = \"embed-test\"\ninput_price_per_m = 0.02\noutput_price_per_m = 0\n\
         context_window = 8192\nembedding_dimensions = 64\n",
    )
}

fn tokens(text: &str) -> u64 {
    Tokenizer::new(Encoding::O200k).unwrap().count(text)
}

/// Needs `python3` with the `openai` package (`.ci/run` installs it); never skips.
#[tokio::test]
async fn the_openai_python_sdk_reads_the_mocks_responses_and_their_events() {
    let m = start_mock_named(openai_profile(), "oai", None).await;
    let report =
        crate::support::python_script("sdk_openai_responses.py", &[&m.url(), "gpt-test"]).await;
    crate::support::assert_responses_sdk_answers(&report, "straight to the mock");

    let stats = m.stats();
    assert_eq!(stats.requests_total, 4, "{stats:?}");
    assert_eq!(stats.outcome(RequestOutcome::Ok), 3, "{stats:?}");
    assert_eq!(
        stats.model("gpt-test"),
        3,
        "the refused one names no model it reached"
    );
}

fn responses_class(stream: bool) -> RequestClass {
    let mut c = class("resp", 1, "gpt-test", stream);
    c.api = Api::Responses;
    c.max_tokens = Some(10);
    c.messages = vec![
        Message::new("system", "Answer in one line."),
        Message::new("user", "Generate a product description"),
    ];
    c.api_key = Some(gauntlet::config::Secret::new("sk-test"));
    c
}

fn event(data: serde_json::Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

/// A Responses stream: 3 reasoning-summary deltas, 6 text deltas, then (when `end`) the
/// completed response with usage (40 input tokens of which 30 cached, 9 output of which 3
/// reasoning).
fn responses_stream(end: bool) -> Vec<String> {
    let mut out = vec![event(serde_json::json!({
        "type": "response.created", "sequence_number": 0,
        "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    }))];
    out.extend((0..3).map(|i| {
        event(
            serde_json::json!({"type": "response.reasoning_summary_text.delta",
            "sequence_number": 1 + i, "item_id": "rs_1", "output_index": 0,
            "summary_index": 0, "delta": format!("hmm{i} ")}),
        )
    }));
    out.extend((0..6).map(|i| {
        event(serde_json::json!({"type": "response.output_text.delta",
            "sequence_number": 4 + i, "item_id": "msg_1", "output_index": 1,
            "content_index": 0, "delta": format!("w{i} ")}))
    }));
    if end {
        out.push(event(serde_json::json!({
            "type": "response.completed", "sequence_number": 10,
            "response": {"id": "resp_1", "object": "response", "status": "completed",
                "usage": {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 30},
                    "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 3},
                    "total_tokens": 49}}
        })));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_class_is_sent_as_openais_clients_send_it_and_timed_from_its_events() {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let gap = Duration::from_millis(15);
    let server = Routes::new()
        .route(RESPONSES, move |r| {
            log.lock().unwrap().push(r);
            paced(responses_stream(true), gap)
        })
        .serve()
        .await;
    let s = send_one(responses_class(true), &server.url(), &[]).await;
    assert_eq!(s.result, Ok(()), "{s:?}");

    let received = seen.lock().unwrap().pop().expect("one request");
    assert_eq!(received.path, RESPONSES);
    assert_eq!(
        received.headers.get("authorization").unwrap(),
        "Bearer sk-test"
    );
    let body: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(
        body["input"],
        serde_json::json!([
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "Generate a product description"}
        ])
    );
    assert_eq!(body["max_output_tokens"], 10);
    assert_eq!(body["stream"], true);
    for chat_only in ["messages", "max_tokens", "stream_options"] {
        assert!(body.get(chat_only).is_none(), "{chat_only}: {body}");
    }

    // TTFT at the first reasoning delta, TTFOT at the first text delta, three gaps apart.
    let (ttft, ttfot) = (s.ttft.unwrap(), s.ttfot.unwrap());
    assert!(
        ttfot >= ttft + gap * 3 / 2,
        "ttft {ttft:?}, ttfot {ttfot:?}"
    );
    assert_eq!(s.itl.len(), 5, "gaps between the six text deltas");
    assert_eq!(s.completion_tokens, 9);
    assert_eq!(s.reasoning_tokens, 3, "the usage splits reasoning out");
    let tpot = s.tpot.expect("6 answer tokens over 5 gaps");
    assert!(tpot >= gap / 2, "{tpot:?}");
    assert_eq!(s.prompt_tokens, 40);
    assert_eq!(s.cached_tokens, 30);
    assert_eq!(s.prompt_tokens_from, TokenSource::Usage);
}

#[tokio::test]
async fn a_responses_stream_that_fails_or_stops_short_is_not_a_success() {
    let server = Routes::new()
        .route(RESPONSES, |_| {
            let mut events = responses_stream(false);
            events.truncate(5);
            events.push(event(serde_json::json!({"type": "response.failed",
                "sequence_number": 5, "response": {"status": "failed",
                "error": {"code": "server_error", "message": "boom"}}})));
            paced(events, Duration::ZERO)
        })
        .route("/v1/cut/v1/responses", |_| {
            paced(responses_stream(false), Duration::ZERO)
        })
        .route("/v1/failed/v1/responses", |_| {
            reply(
                200,
                &[("content-type", "application/json")],
                r#"{"id":"resp_2","object":"response","status":"failed","output":[]}"#,
            )
        })
        .route("/v1/broken/v1/responses", |_| {
            reply(
                200,
                &[("content-type", "application/json")],
                r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#,
            )
        })
        .serve()
        .await;
    let s = send_one(responses_class(true), &server.url(), &[]).await;
    assert_eq!(
        s.result,
        Err(ErrorKind::Status5xx),
        "response.failed mid-stream"
    );
    let cut = format!("{}/v1/cut", server.url());
    let s = send_one(responses_class(true), &cut, &[]).await;
    assert_eq!(s.result, Err(ErrorKind::Truncated), "no response.completed");
    let failed = format!("{}/v1/failed", server.url());
    let s = send_one(responses_class(false), &failed, &[]).await;
    assert_eq!(s.result, Err(ErrorKind::Status5xx), "a failed response");
    let broken = format!("{}/v1/broken", server.url());
    let s = send_one(responses_class(false), &broken, &[]).await;
    assert_eq!(
        s.result,
        Err(ErrorKind::Malformed),
        "a chat answer where a response was asked for"
    );
}

#[tokio::test]
async fn responses_and_embeddings_classes_against_the_mock_count_tokens_and_faults() {
    let m = start_mock_named(openai_profile(), "oai", None).await;
    let stream = send_one(responses_class(true), &m.url(), &["oai"]).await;
    assert_eq!(stream.result, Ok(()), "{stream:?}");
    assert_eq!(stream.served_by, Some(ServedBy::Known(0)));
    assert_eq!(stream.completion_tokens, 10);
    assert_eq!(stream.itl.len(), 9);
    assert!(stream.ttft.is_some() && stream.tpot.is_some());
    assert!(stream.prompt_tokens > 5, "{stream:?}");
    assert_eq!(stream.prompt_tokens_from, TokenSource::Usage);

    let plain = send_one(responses_class(false), &m.url(), &["oai"]).await;
    assert_eq!(plain.result, Ok(()), "{plain:?}");
    assert_eq!(plain.completion_tokens, 10);
    assert_eq!(plain.prompt_tokens, stream.prompt_tokens, "the same prompt");

    let mut vectors = class("vectors", 1, "embed-test", false);
    vectors.api = Api::Embeddings;
    vectors.max_tokens = None;
    vectors.messages = vec![
        Message::new("user", "the quick brown fox"),
        Message::new("user", "jumps over"),
    ];
    let e = send_one(vectors.clone(), &m.url(), &["oai"]).await;
    assert_eq!(e.result, Ok(()), "{e:?}");
    assert_eq!(
        e.prompt_tokens,
        tokens("the quick brown fox") + tokens("jumps over"),
        "one input per message, counted by the provider"
    );
    assert_eq!(e.completion_tokens, 0);
    assert_eq!(e.prompt_tokens_from, TokenSource::Usage);

    let stats = m.stats();
    assert_eq!(stats.model("gpt-test"), 2);
    assert_eq!(stats.model("embed-test"), 1);
    assert_eq!(stats.completion_tokens, 20);

    let id = m.add_fault(FaultSpec {
        kind: FaultKind::Error {
            status: 503,
            message: None,
        },
        rate: 1.0,
        model: None,
    });
    let s = send_one(responses_class(true), &m.url(), &["oai"]).await;
    assert_eq!(s.result, Err(ErrorKind::Status5xx));
    let s = send_one(vectors.clone(), &m.url(), &["oai"]).await;
    assert_eq!(s.result, Err(ErrorKind::Status5xx));
    m.remove_fault(id);
    m.add_fault(FaultSpec {
        kind: FaultKind::StreamCut { after_chunks: 3 },
        rate: 1.0,
        model: None,
    });
    let s = send_one(responses_class(true), &m.url(), &["oai"]).await;
    assert_eq!(s.result, Err(ErrorKind::Truncated), "{s:?}");
    assert_eq!(s.itl.len(), 2, "three deltas arrived before the cut");
}

/// The user's story: a retrieval app's traffic (answers over the Responses API, lookups as
/// embeddings) through the embedded gateway while its primary provider has an outage; the
/// gateway fails both kinds of traffic over, the run counts each class in its own API and
/// passes its SLA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauntlet_run_drives_responses_and_embeddings_through_the_gateway_across_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("openai.toml"),
        "name = \"openai\"\nseed = 5\n[latency]\ntokens_per_second = 2000\n\
         [[models]]\nname = \"gpt-test\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n\
         [[models]]\nname = \"embed-test\"\ninput_price_per_m = 0.02\noutput_price_per_m = 0\n\
         embedding_dimensions = 64\n",
    )
    .unwrap();
    let scenario = dir.path().join("rag.toml");
    std::fs::write(
        &scenario,
        r#"name = "rag-mix"
seed = 9
[[upstreams]]
name = "primary"
profile = "openai.toml"
[[upstreams]]
name = "backup"
profile = "openai.toml"
[gateway]
keys = [{ key = "gk-rag", tier = "standard", rpm = 100000 }]
routes = [
  { model = "gpt-test", targets = ["primary"], fallbacks = ["backup"] },
  { model = "embed-test", targets = ["primary"], fallbacks = ["backup"] },
]
[load]
stages = [{ duration = "3s", rate = 40 }]
[[requests]]
name = "answers"
weight = 3
model = "gpt-test"
api = "responses"
prompt = "Answer from the retrieved passages"
max_tokens = 12
stream = true
api_key = "gk-rag"
primary = "primary"
[[requests]]
name = "lookups"
weight = 1
model = "embed-test"
api = "embeddings"
messages = [
  { role = "user", content = "the quick brown fox" },
  { role = "user", content = "jumps over" },
]
api_key = "gk-rag"
primary = "primary"
[[faults]]
upstream = "primary"
at = "1s"
duration = "1s"
kind = "outage"
[sla]
availability = "99%"
"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, stderr) = crate::support::gauntlet_run(&scenario, &out, &[]).await;
    assert_eq!(code, Some(0), "the SLA holds: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let class = |name: &str| {
        summary["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let answers = class("answers");
    assert_eq!(answers["api"], "responses", "{answers}");
    let ok = answers["successes"].as_u64().unwrap();
    assert!(ok >= 50, "{answers}");
    assert_eq!(answers["requests"], ok, "no answer lost: {answers}");
    assert_eq!(answers["tokens"]["completion"], ok * 12, "{answers}");
    assert_eq!(answers["ttft_ms"]["samples"], ok, "{answers}");
    assert_eq!(answers["itl_ms"]["samples"], ok * 11, "{answers}");
    assert!(
        answers["served_by"]["backup"].as_u64().unwrap() > 0,
        "failed over during the outage: {answers}"
    );

    let lookups = class("lookups");
    assert_eq!(lookups["api"], "embeddings", "{lookups}");
    let ok = lookups["successes"].as_u64().unwrap();
    assert!(ok >= 15, "{lookups}");
    assert_eq!(lookups["requests"], ok, "{lookups}");
    let pair = tokens("the quick brown fox") + tokens("jumps over");
    assert_eq!(
        lookups["tokens"]["prompt"],
        ok * pair,
        "each lookup's two inputs, counted by the provider: {lookups}"
    );
    assert_eq!(lookups["tokens"]["completion"], 0, "{lookups}");
    assert!(
        lookups["served_by"]["backup"].as_u64().unwrap() > 0,
        "{lookups}"
    );
}
