//! The other LLM APIs: a mock speaks Anthropic's Messages API well enough that Anthropic's own
//! SDK is the judge, and answers the `/health` probe benchmark tools send before they start.

use gauntlet::mock::{FaultKind, FaultSpec};

use crate::support::{profile, raw, start_mock_named};

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

    let plain = &report["plain"];
    assert!(
        plain["id"].as_str().unwrap().starts_with("msg_"),
        "{report}"
    );
    assert_eq!(plain["role"], "assistant");
    assert_eq!(plain["stop_reason"], "max_tokens", "{report}");
    assert_eq!(plain["output_tokens"], 7, "{report}");
    assert_eq!(
        plain["text"].as_str().unwrap().split_whitespace().count(),
        7,
        "{report}"
    );
    assert!(plain["input_tokens"].as_u64().unwrap() > 0, "{report}");

    let stream = &report["stream"];
    let events: Vec<&str> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{report}");
    assert_eq!(events.last(), Some(&"message_stop"), "{report}");
    let deltas = events
        .iter()
        .filter(|e| **e == "content_block_delta")
        .count();
    assert_eq!(deltas, 5, "one delta per token: {report}");
    assert_eq!(stream["text"], stream["final_text"], "{report}");
    assert_eq!(stream["output_tokens"], 5, "{report}");
    assert_eq!(stream["stop_reason"], "max_tokens", "{report}");

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
