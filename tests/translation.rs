//! The reference gateway serves OpenAI chat clients from upstreams that speak Anthropic's
//! Messages API: requests, answers, streams, usage and errors are translated both ways, and an
//! Anthropic 529 is a 5xx the gateway retries and fails over like any other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gauntlet::mock::{FaultKind, FaultSpec};

use crate::support::{Received, Routes, TestClient, gateway, paced, profile, start_mock_named};

fn claude_profile(name: &str) -> gauntlet::mock::Profile {
    profile(&format!(
        "name = \"{name}\"\nseed = 3\n[latency]\ntokens_per_second = 2000\n\
         [[models]]\nname = \"claude-test\"\ninput_price_per_m = 3\noutput_price_per_m = 15\n\
         [[models]]\nname = \"claude-down\"\ninput_price_per_m = 3\noutput_price_per_m = 15\n\
         [[models]]\nname = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n"
    ))
}

fn overloaded() -> FaultSpec {
    FaultSpec {
        kind: FaultKind::Error {
            status: 529,
            message: Some("Overloaded".into()),
        },
        rate: 1.0,
        model: None,
    }
}

/// Needs `python3` with `openai`; never skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_is_served_by_an_anthropic_format_upstream_through_the_gateway() {
    let claude = start_mock_named(claude_profile("claude"), "claude", None).await;
    let down = start_mock_named(claude_profile("down"), "down", None).await;
    down.add_fault(overloaded());
    let gw = gateway(&format!(
        r#"routes = [
  {{ model = "claude-test", targets = ["claude"] }},
  {{ model = "claude-down", targets = ["down"] }},
]
[retry]
max_attempts = 1
[[upstreams]]
name = "claude"
url = "{}"
api = "messages"
api_key = "sk-ant-upstream"
[[upstreams]]
name = "down"
url = "{}"
api = "messages"
"#,
        claude.url(),
        down.url()
    ))
    .await;
    let report =
        crate::support::python_sdk("sdk_openai_via_anthropic.py", &format!("{}/v1", gw.url()))
            .await;

    let plain = &report["plain"];
    assert_eq!(plain["object"], "chat.completion", "{report}");
    assert_eq!(
        plain["finish"], "length",
        "max_tokens is `length`: {report}"
    );
    assert_eq!(plain["completion_tokens"], 6, "{report}");
    assert_eq!(
        plain["content"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        6,
        "{report}"
    );
    let prompt = plain["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 0, "{report}");
    assert_eq!(plain["total_tokens"], prompt + 6, "{report}");

    let stream = &report["stream"];
    assert_eq!(
        stream["roles"],
        serde_json::json!(["assistant"]),
        "{report}"
    );
    assert_eq!(stream["pieces"].as_array().unwrap().len(), 4, "{report}");
    assert_eq!(stream["finish"], "length", "{report}");
    assert_eq!(stream["completion_tokens"], 4, "{report}");
    assert_eq!(
        stream["prompt_tokens"], prompt,
        "the same prompt, counted alike"
    );

    let error = &report["error"];
    assert_eq!(
        error["status"], 503,
        "529 reaches OpenAI clients as 503: {report}"
    );
    assert_eq!(error["class"], "InternalServerError", "{report}");

    let stats = claude.stats();
    assert_eq!(stats.by_model.get("claude-test"), Some(&2));
    assert_eq!(stats.completion_tokens, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_529_storm_on_the_anthropic_primary_fails_over_to_the_openai_fallback() {
    let claude = start_mock_named(claude_profile("claude"), "claude", None).await;
    let gpt = start_mock_named(claude_profile("gpt"), "gpt", None).await;
    // Retry settings written for OpenAI statuses: 529 is not among them, and still fails
    // over, because the gateway sees it as the 503 it means.
    let gw = gateway(&format!(
        r#"routes = [{{ model = "m", targets = ["claude"], fallbacks = ["gpt"] }}]
[retry]
retry_on = [429, 500, 502, 503, 504]
[[upstreams]]
name = "claude"
url = "{}"
api = "messages"
[[upstreams]]
name = "gpt"
url = "{}"
"#,
        claude.url(),
        gpt.url()
    ))
    .await;
    let client = TestClient::new();
    let ask = |stream: bool| {
        let client = client.clone();
        let url = gw.url();
        async move { client.chat(&url, None, "m", stream).await }
    };
    for stream in [false, true] {
        let r = ask(stream).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("x-gateway-upstream"),
            "claude",
            "healthy: the primary serves"
        );
    }
    claude.add_fault(overloaded());
    for stream in [false, true, false, true] {
        let r = ask(stream).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.cut, "stream {stream}");
        assert_eq!(r.header("x-gateway-upstream"), "gpt", "the fallback serves");
        let attempts: u32 = r.header("x-gateway-attempts").parse().unwrap();
        assert!(attempts >= 2, "the 529 was tried first: {attempts}");
    }
    assert!(
        claude.stats().requests_total >= 6,
        "the primary saw the storm"
    );

    // A refusal retrying cannot fix reaches the client, in OpenAI's shape.
    claude.clear_faults();
    claude.add_fault(FaultSpec {
        kind: FaultKind::Error {
            status: 400,
            message: Some("prompt is too long".into()),
        },
        rate: 1.0,
        model: None,
    });
    let r = ask(false).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("content-type"), "application/json");
    let v = r.json();
    assert_eq!(v["error"]["message"], "prompt is too long", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(
        v["error"]["code"], "invalid_request_error",
        "Anthropic's type: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_sends_anthropics_headers_and_fails_over_on_an_error_event_before_output() {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let event = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let primary = Routes::new()
        .route("/v1/messages", move |r| {
            log.lock().unwrap().push(r);
            paced(
                vec![event(
                    "error",
                    serde_json::json!({"type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                )],
                Duration::ZERO,
            )
        })
        .serve()
        .await;
    let fallback = start_mock_named(claude_profile("gpt"), "gpt", None).await;
    let gw = gateway(&format!(
        r#"routes = [{{ model = "m", targets = ["claude"], fallbacks = ["gpt"] }}]
[[upstreams]]
name = "claude"
url = "{}/v1"
api = "messages"
api_key = "sk-ant-secret"
[[upstreams]]
name = "gpt"
url = "{}"
"#,
        primary.url(),
        fallback.url()
    ))
    .await;
    let r = TestClient::new().chat(&gw.url(), None, "m", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.cut);
    assert_eq!(r.header("x-gateway-upstream"), "gpt");
    assert!(
        r.text().trim_end().ends_with("data: [DONE]"),
        "{}",
        r.text()
    );

    let seen = seen.lock().unwrap();
    let received = seen.first().expect("the primary was asked");
    let h = &received.headers;
    assert_eq!(h.get("x-api-key").unwrap(), "sk-ant-secret");
    assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
    assert!(h.get("authorization").is_none());
    let body: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(body["max_tokens"], 16);
    assert_eq!(body["stream"], true);
    assert!(body.get("stream_options").is_none(), "{body}");
}

/// Needs `python3` with `anthropic`; never skips. Anthropic's SDK talks to the gateway's
/// `/v1/messages`; behind it the provider speaks OpenAI chat, or Messages itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_is_served_through_the_gateway_whatever_the_upstream_speaks() {
    for upstream_api in ["chat", "messages"] {
        let healthy = start_mock_named(claude_profile("p"), "p", None).await;
        let down = start_mock_named(claude_profile("down"), "down", None).await;
        down.add_fault(overloaded());
        let config_for = |url: String| {
            format!(
                r#"keys = [{{ key = "sk-ant-sdk-test", tier = "standard", rpm = 1000 }}]
routes = [{{ model = "claude-test", targets = ["p"] }}]
[retry]
max_attempts = 1
[[upstreams]]
name = "p"
url = "{url}"
api = "{upstream_api}"
"#
            )
        };
        let good = gateway(&config_for(healthy.url())).await;
        let bad = gateway(&config_for(down.url())).await;
        let report =
            crate::support::python_script("sdk_anthropic.py", &[&good.url(), &bad.url()]).await;
        crate::support::assert_anthropic_sdk_answers(
            &report,
            &format!("through the gateway, upstream speaking {upstream_api}"),
        );
        let error = &report["error"];
        assert_eq!(error["status"], 503, "the gateway's own refusal: {report}");
        assert_eq!(error["type"], "overloaded_error", "{report}");
        assert_eq!(healthy.stats().by_model.get("claude-test"), Some(&2));
    }
}
