//! The reference gateway serves OpenAI's Responses API and embeddings from the same routes
//! as chat: a Responses request is routed as the chat request it asks for, to chat-format
//! and Anthropic-format upstreams alike, and answered as a `response` or its numbered events;
//! embeddings go to OpenAI-format upstreams only, with the same retries and failover.

use gauntlet::mock::{FaultKind, FaultSpec, MockHandle};
use serde_json::{Value, json};

use crate::support::{TestClient, gateway, profile, raw, start_mock_named, upstream};

const RESPONSES: &str = "/v1/responses";
const EMBEDDINGS: &str = "/v1/embeddings";

/// Two text models and an embedding model; `completion` is the `[completion]` table.
fn fleet_profile(name: &str, completion: &str) -> gauntlet::mock::Profile {
    profile(&format!(
        "name = \"{name}\"\nseed = 3\n[latency]\ntokens_per_second = 2000\n\
         [completion]\n{completion}\n\
         [[models]]\nname = \"gpt-test\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n\
         [[models]]\nname = \"claude-test\"\ninput_price_per_m = 3\noutput_price_per_m = 15\n\
         [[models]]\nname = \"embed-test\"\ninput_price_per_m = 0.02\noutput_price_per_m = 0\n\
         embedding_dimensions = 64\n"
    ))
}

/// A mock whose answers are 5 tokens long, unless their budget is smaller.
async fn mock(name: &str) -> MockHandle {
    start_mock_named(fleet_profile(name, "tokens = 5"), name, None).await
}

fn outage() -> FaultSpec {
    FaultSpec {
        kind: FaultKind::Outage,
        rate: 1.0,
        model: None,
    }
}

/// A gateway routing `routes` (TOML array items) over `upstreams` (name, URL, API).
async fn gateway_over(
    routes: &str,
    upstreams: &[(&str, String, &str)],
) -> gauntlet::gateway::GatewayHandle {
    let mut toml = format!("routes = [{routes}]\n");
    for (name, url, api) in upstreams {
        toml.push_str(&format!(
            "[[upstreams]]\nname = \"{name}\"\nurl = \"{url}\"\napi = \"{api}\"\n"
        ));
    }
    gateway(&toml).await
}

fn responses_body(model: &str, budget: Option<u32>, stream: bool) -> String {
    json!({
        "model": model, "instructions": "Be brief.", "input": "Say hello",
        "max_output_tokens": budget, "stream": stream,
    })
    .to_string()
}

/// `(name, data)` of each SSE event, checking that each names its own type.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap_or_else(|| panic!("{e}"));
            let name = name
                .strip_prefix("event: ")
                .unwrap_or_else(|| panic!("{e}"));
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name, "each event names its type: {e}");
            (name.to_string(), data)
        })
        .collect()
}

fn words(v: &Value) -> usize {
    v.as_str().unwrap_or("").split_whitespace().count()
}

/// What a streamed answer must hold, whatever served it: the events in Responses order,
/// numbered from 0, the deltas adding up to the text the closing events repeat; returns the
/// closing event's response.
fn check_stream(text: &str, last: &str, context: &str) -> Value {
    assert!(!text.contains("[DONE]"), "{context}: {text}");
    let events = events(text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert!(deltas > 0, "{context}: {names:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        last,
    ]);
    assert_eq!(names, expected, "{context}");
    for (i, (_, e)) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{context}: numbered in order");
    }
    let first = &events[0].1["response"];
    assert_eq!(first["status"], "in_progress", "{context}");
    assert_eq!(first["output"], json!([]), "{context}");
    let joined: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    let item_id = &events[2].1["item"]["id"];
    for (_, e) in events.iter().filter(|(n, _)| n.contains("output_text")) {
        assert_eq!(&e["item_id"], item_id, "{context}");
        assert_eq!(e["output_index"], 0, "{context}");
        assert_eq!(e["content_index"], 0, "{context}");
    }
    let done = &events[events.len() - 4].1;
    assert_eq!(done["text"], joined.as_str(), "{context}");
    let response = events[events.len() - 1].1["response"].clone();
    assert_eq!(response["id"], first["id"], "{context}");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        joined.as_str(),
        "{context}"
    );
    response
}

/// Usage counts `output` tokens and some input, and adds them up; returns the input.
fn check_usage_sums(usage: &Value, output: u64, context: &str) -> u64 {
    assert_eq!(usage["output_tokens"], output, "{context}: {usage}");
    let input = usage["input_tokens"].as_u64().unwrap_or(0);
    assert!(input > 0, "{context}: {usage}");
    assert_eq!(usage["total_tokens"], input + output, "{context}: {usage}");
    input
}

/// As `check_usage_sums`, with the details OpenAI always sends (nothing cached, no reasoning).
fn check_usage(usage: &Value, output: u64, context: &str) -> u64 {
    let input = check_usage_sums(usage, output, context);
    assert_eq!(
        usage["input_tokens_details"]["cached_tokens"], 0,
        "{context}"
    );
    assert_eq!(
        usage["output_tokens_details"]["reasoning_tokens"], 0,
        "{context}"
    );
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_served_whole_and_streamed_from_chat_and_anthropic_upstreams() {
    // The mocks fill a budget when given one and answer 5 tokens otherwise. An Anthropic
    // upstream is always given one (its API requires it), so only the chat one ends on its own.
    for (api, budgets) in [("chat", &[None, Some(3)][..]), ("messages", &[Some(3)][..])] {
        let p = mock("p").await;
        let gw = gateway_over(
            r#"{ model = "gpt-test", targets = ["p"] }"#,
            &[("p", p.url(), api)],
        )
        .await;
        let c = TestClient::new();
        let (mut inputs, mut sent) = (Vec::new(), 0);
        for &budget in budgets {
            let context = format!("upstream speaking {api}, budget {budget:?}");
            let (tokens, status, reason) = match budget {
                None => (5, "completed", Value::Null),
                Some(n) => (n, "incomplete", json!({"reason": "max_output_tokens"})),
            };
            let body = |stream| responses_body("gpt-test", budget, stream);

            let r = c.post(&gw.url(), RESPONSES, None, body(false)).await;
            assert_eq!(r.status, 200, "{context}: {}", r.text());
            assert_eq!(r.header("x-gateway-upstream"), "p", "{context}");
            assert_eq!(r.header("x-gateway-attempts"), "1", "{context}");
            assert!(r.header("content-type").starts_with("application/json"));
            let v = r.json();
            assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
            assert_eq!(v["object"], "response", "{context}: {v}");
            assert_eq!(v["model"], "gpt-test", "{context}: {v}");
            assert_eq!(v["status"], status, "{context}: {v}");
            assert_eq!(v["incomplete_details"], reason, "{context}: {v}");
            assert_eq!(v["error"], Value::Null, "{context}: {v}");
            assert!(v["created_at"].as_u64().unwrap() > 0, "{v}");
            let output = v["output"].as_array().unwrap();
            assert_eq!(output.len(), 1, "{context}: {v}");
            let message = &output[0];
            assert_eq!(message["type"], "message", "{context}: {v}");
            assert!(message["id"].as_str().unwrap().starts_with("msg_"), "{v}");
            assert_eq!(message["role"], "assistant");
            assert_eq!(
                message["status"], status,
                "the item a budget cut short: {v}"
            );
            let part = &message["content"][0];
            assert_eq!(part["type"], "output_text");
            assert_eq!(part["annotations"], json!([]));
            assert_eq!(words(&part["text"]), tokens as usize, "{context}: {v}");
            inputs.push(check_usage(&v["usage"], tokens.into(), &context));

            let r = c.post(&gw.url(), RESPONSES, None, body(true)).await;
            assert_eq!(r.status, 200, "{context}: {}", r.text());
            assert!(!r.cut, "{context}");
            assert_eq!(r.header("x-gateway-upstream"), "p");
            assert!(r.header("content-type").starts_with("text/event-stream"));
            let last = format!("response.{status}");
            let done = check_stream(&r.text(), &last, &context);
            assert_eq!(done["status"], status, "{context}");
            assert_eq!(done["incomplete_details"], reason, "{context}");
            let text = &done["output"][0]["content"][0]["text"];
            assert_eq!(words(text), tokens as usize, "{context}");
            inputs.push(check_usage(&done["usage"], tokens.into(), &context));
            sent += 2 * u64::from(tokens);
        }
        assert!(
            inputs.windows(2).all(|w| w[0] == w[1]),
            "upstream speaking {api}: the same prompt, counted alike: {inputs:?}"
        );
        let stats = p.stats();
        assert_eq!(stats.requests_total, 2 * budgets.len() as u64, "{stats:?}");
        assert_eq!(stats.model("gpt-test"), 2 * budgets.len() as u64);
        assert_eq!(
            stats.completion_tokens, sent,
            "what the client saw was sent"
        );
    }
}

#[tokio::test]
async fn a_chat_upstream_receives_the_chat_request_a_responses_request_asks_for() {
    let up = upstream("p").await;
    let gw = gateway_over(
        r#"{ model = "m", targets = [{ upstream = "p", model = "m-upstream" }] }"#,
        &[("p", up.url(), "chat")],
    )
    .await;
    let body = json!({
        "model": "m", "instructions": "Be brief.", "stream": true, "store": false,
        "max_output_tokens": 7, "temperature": 0.3,
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Say hello"}]}],
    });
    let r = TestClient::new()
        .post(&gw.url(), RESPONSES, None, body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The scripted upstream streams "a", "b" and sends no usage.
    let done = check_stream(&r.text(), "response.completed", "scripted");
    assert_eq!(done["output"][0]["content"][0]["text"], "ab");
    assert_eq!(done["usage"], Value::Null, "none was sent, none is made up");

    assert_eq!(up.path_hits("/v1/chat/completions"), 1);
    assert_eq!(up.path_hits(RESPONSES), 0);
    let sent: Value = serde_json::from_slice(&up.bodies()[0]).unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["model"], "m-upstream", "renamed as for chat");
    assert_eq!(sent["max_tokens"], 7);
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    for gone in ["input", "instructions", "store", "max_output_tokens"] {
        assert!(sent.get(gone).is_none(), "{gone}: {sent}");
    }
}

#[tokio::test]
async fn a_responses_request_the_gateway_cannot_serve_is_a_400_naming_its_field() {
    let p = mock("p").await;
    let gw = gateway_over(
        r#"{ model = "gpt-test", targets = ["p"] }"#,
        &[("p", p.url(), "chat")],
    )
    .await;
    let c = TestClient::new();
    for (body, param) in [
        (json!({"model": "gpt-test"}), "input"),
        (json!({"model": "gpt-test", "input": []}), "input"),
        (
            json!({"model": "gpt-test", "input": "hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": "gpt-test", "input": "hi", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"model": "gpt-test", "input": [{"type": "image_generation_call"}]}),
            "input",
        ),
    ] {
        let r = c.post(&gw.url(), RESPONSES, None, body.to_string()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.header("content-type").starts_with("application/json"));
        let e = &r.json()["error"];
        assert_eq!(e["type"], "invalid_request_error", "{body}: {e}");
        assert_eq!(e["param"], param, "{body}: {e}");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    let r = c.post(&gw.url(), RESPONSES, None, "{not json".into()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = c
        .post(
            &gw.url(),
            RESPONSES,
            None,
            responses_body("nope", None, false),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "model");
    let r = raw(gw.addr(), "GET", RESPONSES, &[], "").await;
    assert_eq!(r.status(), Some(405), "{}", r.head());
    assert_eq!(p.stats().requests_total, 0, "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_request_fails_over_when_the_primary_is_down() {
    // An Anthropic-format primary and an OpenAI-format fallback: the answer's shape does not
    // depend on who served it.
    let primary = mock("primary").await;
    let fallback = mock("fallback").await;
    let gw = gateway_over(
        r#"{ model = "gpt-test", targets = ["primary"], fallbacks = ["fallback"] }"#,
        &[
            ("primary", primary.url(), "messages"),
            ("fallback", fallback.url(), "chat"),
        ],
    )
    .await;
    primary.add_fault(outage());
    let c = TestClient::new();
    for stream in [false, true, false, true] {
        let r = c
            .post(
                &gw.url(),
                RESPONSES,
                None,
                responses_body("gpt-test", None, stream),
            )
            .await;
        assert_eq!(r.status, 200, "stream {stream}: {}", r.text());
        assert!(!r.cut);
        assert_eq!(
            r.header("x-gateway-upstream"),
            "fallback",
            "stream {stream}"
        );
        let attempts: u32 = r.header("x-gateway-attempts").parse().unwrap();
        assert!(attempts >= 2, "the primary was tried first: {attempts}");
        let response = if stream {
            check_stream(&r.text(), "response.completed", "failed over")
        } else {
            r.json()
        };
        assert_eq!(response["status"], "completed", "{response}");
        check_usage(&response["usage"], 5, "failed over");
    }
    assert!(primary.stats().requests_total >= 4, "the primary saw them");
    assert_eq!(fallback.stats().model("gpt-test"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_routed_renamed_and_fail_over_like_chat() {
    let primary = mock("primary").await;
    let fallback = mock("fallback").await;
    let gw = gateway(&format!(
        r#"keys = [{{ key = "gk-embed", tier = "standard", rpm = 1000 }}, {{ key = "gk-one", rpm = 1 }}]
routes = [{{ model = "embeddings", targets = [{{ upstream = "primary", model = "embed-test" }}],
            fallbacks = [{{ upstream = "fallback", model = "embed-test" }}] }}]
[[upstreams]]
name = "primary"
url = "{}/v1"
[[upstreams]]
name = "fallback"
url = "{}/v1/chat/completions"
"#,
        primary.url(),
        fallback.url()
    ))
    .await;
    let c = TestClient::new();
    let body = json!({"model": "embeddings", "input": ["the quick brown fox", "jumps"],
        "encoding_format": "float", "dimensions": 32})
    .to_string();

    let r = c.post(&gw.url(), EMBEDDINGS, None, body.clone()).await;
    assert_eq!(r.status, 401, "a key is needed, as for chat: {}", r.text());

    let r = c
        .post(&gw.url(), EMBEDDINGS, Some("gk-embed"), body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-upstream"), "primary");
    assert_eq!(r.header("x-gateway-attempts"), "1");
    assert!(
        r.header("x-ratelimit-limit-requests")
            .parse::<u32>()
            .is_ok()
    );
    let v = r.json();
    assert_eq!(v["object"], "list", "{v}");
    assert_eq!(
        v["model"], "embed-test",
        "the upstream's answer, passed through: {v}"
    );
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["index"], i);
        assert_eq!(
            d["embedding"].as_array().unwrap().len(),
            32,
            "dimensions forwarded"
        );
    }
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        primary.stats().model("embed-test"),
        1,
        "renamed for the upstream"
    );

    primary.add_fault(outage());
    for _ in 0..3 {
        let r = c
            .post(&gw.url(), EMBEDDINGS, Some("gk-embed"), body.clone())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-gateway-upstream"), "fallback");
        let attempts: u32 = r.header("x-gateway-attempts").parse().unwrap();
        assert!(attempts >= 2, "{attempts}");
        assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    }
    // The fallback's URL names its chat endpoint; embeddings went beside it.
    assert_eq!(fallback.stats().model("embed-test"), 3);

    // A request without input never leaves the gateway.
    let r = c
        .post(
            &gw.url(),
            EMBEDDINGS,
            Some("gk-embed"),
            json!({"model": "embeddings"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "input");
    assert_eq!(fallback.stats().requests_total, 3);

    // A key's per-minute limit counts embeddings as it counts chat.
    let r = c
        .post(&gw.url(), EMBEDDINGS, Some("gk-one"), body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .post(&gw.url(), EMBEDDINGS, Some("gk-one"), body.clone())
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(!r.header("retry-after").is_empty());

    let metrics = c.get(&gw.url(), "/metrics").await.text();
    assert!(
        metrics.contains(
            "gateway_attempts_total{route=\"embeddings\",upstream=\"fallback\",outcome=\"ok\"} 4"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_skip_anthropic_upstreams_and_a_route_with_only_those_is_refused() {
    let claude = mock("claude").await;
    let gpt = mock("gpt").await;
    let gw = gateway_over(
        r#"{ model = "claude-test", targets = ["claude"] },
  { model = "embed-test", targets = ["claude"], fallbacks = ["gpt"] }"#,
        &[
            ("claude", claude.url(), "messages"),
            ("gpt", gpt.url(), "chat"),
        ],
    )
    .await;
    let c = TestClient::new();
    let body = |model: &str| json!({"model": model, "input": "hi"}).to_string();

    let r = c
        .post(&gw.url(), EMBEDDINGS, None, body("claude-test"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["type"], "invalid_request_error", "{e}");
    assert_eq!(e["param"], "model", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("embeddings") && message.contains("Messages"),
        "{message}"
    );

    let r = c
        .post(&gw.url(), EMBEDDINGS, None, body("embed-test"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-upstream"), "gpt");
    assert_eq!(
        r.header("x-gateway-attempts"),
        "1",
        "the Anthropic target is skipped, not tried"
    );
    assert_eq!(claude.stats().requests_total, 0);
    assert_eq!(gpt.stats().model("embed-test"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_reasoning_and_tool_calls_as_their_own_items() {
    let p = start_mock_named(
        fleet_profile(
            "p",
            "tokens = 5\ntool_call_rate = 1.0\nreasoning_tokens = 3",
        ),
        "p",
        None,
    )
    .await;
    let gw = gateway_over(
        r#"{ model = "gpt-test", targets = ["p"] }"#,
        &[("p", p.url(), "chat")],
    )
    .await;
    let c = TestClient::new();
    let body = |stream: bool| {
        json!({"model": "gpt-test", "input": "Look it up", "stream": stream,
            "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object",
                "required": ["q"], "properties": {"q": {"type": "string"}}}}]})
        .to_string()
    };
    let call_of = |item: &Value| {
        assert_eq!(item["type"], "function_call", "{item}");
        assert_eq!(item["name"], "lookup", "{item}");
        assert!(item["id"].as_str().unwrap().starts_with("fc_"), "{item}");
        assert!(!item["call_id"].as_str().unwrap().is_empty(), "{item}");
        let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
        assert!(args["q"].is_string(), "{item}");
    };

    let v = c.post(&gw.url(), RESPONSES, None, body(false)).await.json();
    let kinds: Vec<&str> = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "function_call"], "{v}");
    assert_eq!(v["output"][0]["content"][0]["type"], "reasoning_text");
    call_of(&v["output"][1]);
    assert_eq!(
        v["usage"]["output_tokens_details"]["reasoning_tokens"], 3,
        "{v}"
    );

    let r = c.post(&gw.url(), RESPONSES, None, body(true)).await;
    let events = events(&r.text());
    for (i, (_, e)) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"response.completed"), "{names:?}");
    assert!(
        names.contains(&"response.reasoning_text.delta"),
        "{names:?}"
    );
    let added: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "response.output_item.added")
        .map(|(_, e)| &e["item"])
        .collect();
    assert_eq!(added.len(), 2, "{names:?}");
    assert_eq!(added[1]["type"], "function_call");
    assert_eq!(added[1]["arguments"], "");
    let pieces: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    let (_, args_done) = events
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(args_done["arguments"], pieces.as_str());
    let done = &events[events.len() - 1].1["response"];
    call_of(&done["output"][1]);
    assert_eq!(done["output"][1]["arguments"], pieces.as_str());
    assert_eq!(done["output"][1]["call_id"], added[1]["call_id"]);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        3
    );
}

/// Needs `python3` with `openai`; never skips. The official SDK reads the gateway's Responses
/// (from a chat-format and from an Anthropic-format upstream) as it reads a mock's own
/// (tests/responses.rs, the same script and judge), its tool calls through the SDK's strict
/// stream helper, and its embeddings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_reads_the_gateways_responses_and_embeddings() {
    // The chat mock's answers are longer than the script's budgets, as its judge expects.
    let p = start_mock_named(fleet_profile("p", ""), "p", None).await;
    let claude = mock("claude").await;
    let tools = start_mock_named(
        fleet_profile("tools", "tool_call_rate = 1.0"),
        "tools",
        None,
    )
    .await;
    let gw = gateway_over(
        r#"{ model = "gpt-test", targets = ["p"] },
  { model = "claude-test", targets = ["claude"] },
  { model = "embed-test", targets = ["p"] },
  { model = "tools-test", targets = [{ upstream = "tools", model = "gpt-test" }] }"#,
        &[
            ("p", p.url(), "chat"),
            ("claude", claude.url(), "messages"),
            ("tools", tools.url(), "chat"),
        ],
    )
    .await;

    let report =
        crate::support::python_script("sdk_openai_responses.py", &[&gw.url(), "gpt-test"]).await;
    let context = "through the gateway";
    crate::support::assert_responses_sdk_answers(&report, context);
    assert_eq!(
        report["plain"]["output_types"],
        json!(["message"]),
        "{context}: {report}"
    );
    let kinds: Vec<&str> = report["stream"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        &kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ],
        "{context}: {report}"
    );
    assert_eq!(
        report["helper"]["status"], "completed",
        "{context}: {report}"
    );
    assert_eq!(
        p.stats().model("gpt-test"),
        3,
        "the refused request never left"
    );

    // The stream helper needs `response.completed`, which an Anthropic-format mock (always
    // given a budget, which it fills) never earns: that upstream is read without it.
    let report = crate::support::python_script("sdk_openai_gateway_apis.py", &[&gw.url()]).await;
    let plain = &report["claude"]["plain"];
    assert_eq!(plain["status"], "incomplete", "{report}");
    assert_eq!(plain["reason"], "max_output_tokens", "{report}");
    assert_eq!(words(&plain["text"]), 4, "{report}");
    check_usage_sums(&plain["usage"], 4, "Anthropic upstream, whole");
    let stream = &report["claude"]["stream"];
    let events = stream["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"), "{report}");
    assert_eq!(kinds.last(), Some(&"response.incomplete"), "{report}");
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert_eq!(deltas, 4, "{report}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{report}");
    }
    assert_eq!(stream["final_status"], "incomplete", "{report}");
    assert_eq!(stream["text"], stream["final_text"], "{report}");
    check_usage_sums(&stream["usage"], 4, "Anthropic upstream, streamed");
    assert_eq!(claude.stats().model("claude-test"), 2);

    let e = &report["embeddings"];
    assert_eq!(e["object"], "list", "{report}");
    assert_eq!(e["model"], "embed-test", "{report}");
    assert_eq!(e["indices"], json!([0, 1]), "{report}");
    assert_eq!(e["lengths"], json!([64, 64]), "{report}");
    for n in e["norms"].as_array().unwrap() {
        assert!((n.as_f64().unwrap() - 1.0).abs() < 1e-3, "{report}");
    }
    assert!(e["prompt_tokens"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(e["float_length"], 64, "{report}");
    assert!(e["same_as_base64"].as_f64().unwrap() < 1e-6, "{report}");

    for key in ["tools", "tools_stream"] {
        let t = &report[key];
        assert_eq!(t["status"], "completed", "{key}: {report}");
        let calls = t["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{key}: {report}");
        assert_eq!(calls[0]["name"], "lookup", "{key}: {report}");
        assert!(calls[0]["arguments"]["q"].is_string(), "{key}: {report}");
    }
    let types = report["tools_stream"]["types"].as_array().unwrap();
    assert!(
        types.contains(&json!("response.function_call_arguments.done")),
        "{report}"
    );
    assert_eq!(tools.stats().model("gpt-test"), 2);
    assert_eq!(p.stats().model("embed-test"), 2);
}
