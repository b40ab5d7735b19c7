//! The reference gateway in front of real upstreams on loopback: failover, timeouts,
//! breakers, retry budget, weighted split, streams, per-key limits and client errors —
//! checked on what the client saw and on what each upstream actually received.

use std::time::{Duration, Instant};

use crate::support::{Mode, TestClient, TestUpstream, failover, failover_toml, gateway, upstream};

#[tokio::test]
async fn primary_503_is_served_by_the_fallback_in_two_attempts() {
    let (p, f, gw) = failover("").await;
    p.set_mode(Mode::status(503));
    let r = TestClient::new().chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-upstream"), "fallback");
    assert_eq!(r.header("x-gateway-attempts"), "2");
    assert_eq!(r.json()["system_fingerprint"], "gauntlet-fallback");
    assert_eq!((p.hits(), f.hits()), (1, 1));
    // The client's request reached the upstream unchanged (model and unknown fields).
    assert_eq!(f.models(), vec!["m".to_string()]);
}

/// Tools of a kind the gateway's own types do not model, a response format newer than it and
/// sampling fields are the upstream's to judge: the gateway routes on model and messages and
/// relays the client's bytes untouched.
#[tokio::test]
async fn fields_the_gateway_does_not_model_are_relayed_byte_for_byte() {
    let (p, _f, gw) = failover("").await;
    let body = r#"{"model":"m","messages":[{"role":"user","content":"run it"}],"tools":[{"type":"custom","custom":{"name":"run_sql","format":{"type":"grammar","syntax":"lark","definition":"start: /.+/"}}}],"tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"custom","name":"run_sql"}]},"response_format":{"type":"json_schema_v9"},"temperature":0.2,"seed":7}"#;
    let r = TestClient::new()
        .post(&gw.url(), "/v1/chat/completions", None, body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-upstream"), "primary");
    assert_eq!(p.bodies(), vec![bytes::Bytes::from_static(body.as_bytes())]);
}

#[tokio::test]
async fn hanging_primary_times_out_per_attempt_then_fails_over() {
    let extra = "[timeouts]\nfirst_byte = \"300ms\"\ntotal = \"20s\"\n";
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::Hang);
    let t0 = Instant::now();
    let r = TestClient::new().chat(&gw.url(), None, "m", false).await;
    let took = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-upstream"), "fallback");
    assert_eq!(r.header("x-gateway-attempts"), "2");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        took < Duration::from_secs(5),
        "well within the 20 s total: {took:?}"
    );
    assert_eq!((p.hits(), f.hits()), (1, 1));
}

#[tokio::test]
async fn total_deadline_answers_504() {
    let extra = "[timeouts]\nfirst_byte = \"5s\"\ntotal = \"400ms\"\n";
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::Hang);
    f.set_mode(Mode::Hang);
    let t0 = Instant::now();
    let r = TestClient::new().chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(r.header("x-gateway-attempts"), "1");
    assert_eq!(f.hits(), 0);
}

#[tokio::test]
async fn breaker_opens_after_n_failures_and_closes_after_cooldown() {
    let extra = "[breaker]\nconsecutive_failures = 3\ncooldown = \"1s\"\n";
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::status(500));
    let c = TestClient::new();
    for _ in 0..10 {
        let r = c.chat(&gw.url(), None, "m", false).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-gateway-upstream"), "fallback");
    }
    // Three failures opened it; the other seven requests skipped the primary entirely.
    assert_eq!(p.hits(), 3);
    assert_eq!(f.hits(), 10);
    let m = c.get(&gw.url(), "/metrics").await.text();
    assert!(
        m.contains("gateway_breaker_state{upstream=\"primary\"} 2"),
        "{m}"
    );

    p.set_mode(Mode::Ok);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for _ in 0..5 {
        let r = c.chat(&gw.url(), None, "m", false).await;
        assert_eq!(r.header("x-gateway-upstream"), "primary");
        assert_eq!(r.header("x-gateway-attempts"), "1");
    }
    assert_eq!(p.hits(), 8);
    assert_eq!(f.hits(), 10);
    let m = c.get(&gw.url(), "/metrics").await.text();
    assert!(
        m.contains("gateway_breaker_state{upstream=\"primary\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn retry_budget_caps_attempts_during_a_total_outage() {
    let extra = "[retry]\nmax_attempts = 4\nbackoff_base = \"1ms\"\nbackoff_max = \"2ms\"\n\
                 budget = \"10%\"\nbudget_min = 2\n[breaker]\nenabled = false\n";
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::status(503));
    f.set_mode(Mode::status(503));
    let c = TestClient::new();
    let n = 100;
    for _ in 0..n {
        let r = c.chat(&gw.url(), None, "m", false).await;
        assert_eq!(r.status, 503);
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            msg.starts_with("all upstreams for model m are unavailable"),
            "{msg}"
        );
    }
    let attempts = p.hits() + f.hits();
    // Without a budget this would be 4 x 100; the budget allows 10% extra (+2 floor).
    assert!(attempts >= n, "{attempts}");
    assert!(
        attempts <= n + n / 10 + 2,
        "retry storm: {attempts} attempts"
    );
    let m = c.get(&gw.url(), "/metrics").await.text();
    assert!(
        m.contains("gateway_retry_budget_exhausted_total{route=\"m\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn weighted_targets_split_80_15_5() {
    let (a, b, c) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    );
    let cfg = format!(
        r#"routes = [{{ model = "m", targets = [{{ upstream = "a", weight = 80 }}, {{ upstream = "b", weight = 15 }}, {{ upstream = "c", weight = 5 }}] }}]
[[upstreams]]
name = "a"
url = "{}"
[[upstreams]]
name = "b"
url = "{}"
[[upstreams]]
name = "c"
url = "{}"
"#,
        a.url(),
        b.url(),
        c.url()
    );
    let gw = gateway(&cfg).await;
    let client = TestClient::new();
    let n = 2000u64;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), gw.url());
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / 8 {
                let r = client.chat(&url, None, "m", false).await;
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let share = |u: &TestUpstream| u.hits() as f64 / n as f64;
    assert_eq!(a.hits() + b.hits() + c.hits(), n);
    assert!((share(&a) - 0.80).abs() < 0.04, "a {}", share(&a));
    assert!((share(&b) - 0.15).abs() < 0.03, "b {}", share(&b));
    assert!((share(&c) - 0.05).abs() < 0.02, "c {}", share(&c));
}

#[tokio::test]
async fn stream_fails_over_before_first_byte_and_is_cut_after_it() {
    let (p, f, gw) = failover("").await;
    let c = TestClient::new();

    // Breaks before its first chunk: nothing reached the client, so the fallback serves.
    p.script(vec![Mode::StreamCut(0)]);
    let r = c.chat(&gw.url(), None, "m", true).await;
    assert_eq!(r.status, 200);
    assert!(!r.cut);
    assert_eq!(r.header("x-gateway-upstream"), "fallback");
    assert_eq!(r.header("x-gateway-attempts"), "2");
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    assert_eq!((p.hits(), f.hits()), (1, 1));

    // Breaks after two chunks: the client already has them, so it sees the stream cut.
    p.script(vec![Mode::StreamCut(2)]);
    let r = c.chat(&gw.url(), None, "m", true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-gateway-upstream"), "primary");
    assert!(r.cut, "the client must see the stream cut");
    assert!(!r.text().contains("[DONE]"));
    assert!(r.text().contains("gauntlet-primary"));
    assert_eq!((p.hits(), f.hits()), (2, 1));
}

#[tokio::test]
async fn per_key_limits_are_isolated_between_keys() {
    let u = upstream("u").await;
    let cfg = format!(
        r#"keys = [{{ key = "gk-small", rpm = 3 }}, {{ key = "gk-big", tier = "pro", rpm = 1000 }}]
routes = [{{ model = "m", targets = ["u"] }}]
[[upstreams]]
name = "u"
url = "{}"
"#,
        u.url()
    );
    let gw = gateway(&cfg).await;
    let c = TestClient::new();
    for _ in 0..3 {
        let r = c.chat(&gw.url(), Some("gk-small"), "m", false).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit-requests"), "3");
    }
    let r = c.chat(&gw.url(), Some("gk-small"), "m", false).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    let retry_after: u64 = r.header("retry-after").parse().unwrap();
    let retry_ms: u64 = r.header("retry-after-ms").parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert!(retry_ms > 1000 && retry_ms <= 20_000, "{retry_ms}");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), "0");
    assert!(!r.header("x-ratelimit-reset-requests").is_empty());
    // The other key is untouched by the first one's exhaustion.
    for _ in 0..10 {
        let r = c.chat(&gw.url(), Some("gk-big"), "m", false).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(u.hits(), 13, "refused requests never reach the upstream");
}

#[tokio::test]
async fn token_limit_counts_prompt_and_max_tokens() {
    let u = upstream("u").await;
    let cfg = format!(
        "keys = [{{ key = \"gk-t\", tpm = 60 }}]\nroutes = [{{ model = \"m\", targets = [\"u\"] }}]\n\
         [[upstreams]]\nname = \"u\"\nurl = \"{}\"\n",
        u.url()
    );
    let gw = gateway(&cfg).await;
    let c = TestClient::new();
    // Each request: "Say hello" = 3 tokens + 4 framing + 16 max_tokens = 23 tokens.
    assert_eq!(
        c.chat(&gw.url(), Some("gk-t"), "m", false).await.status,
        200
    );
    assert_eq!(
        c.chat(&gw.url(), Some("gk-t"), "m", false).await.status,
        200
    );
    let r = c.chat(&gw.url(), Some("gk-t"), "m", false).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ratelimit-limit-tokens"), "60");
    assert_eq!(u.hits(), 2);
}

#[tokio::test]
async fn client_errors_are_openai_shaped_and_never_reach_upstreams() {
    let u = upstream("u").await;
    let cfg = format!(
        "keys = [{{ key = \"gk-ok\" }}]\nmax_request_bytes = 2048\nroutes = [{{ model = \"m\", targets = [\"u\"] }}]\n\
         [[upstreams]]\nname = \"u\"\nurl = \"{}\"\n",
        u.url()
    );
    let gw = gateway(&cfg).await;
    let c = TestClient::new();
    let url = gw.url();

    let r = c.chat(&url, None, "m", false).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (401, "invalid_api_key".into())
    );
    let r = c.chat(&url, Some("gk-wrong"), "m", false).await;
    assert_eq!(r.status, 401);
    assert!(!r.text().contains("gk-wrong"), "keys are never echoed");
    let req = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", "Bearer gk-ok")
        .header("authorization", "Bearer gk-ok")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        c.send(req).await.status,
        401,
        "repeated Authorization headers"
    );
    let req = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", "  bearer \t gk-ok ")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
        )))
        .unwrap();
    assert_eq!(c.send(req).await.status, 200, "Bearer parsing is forgiving");

    let r = c.chat(&url, Some("gk-ok"), "nope", false).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert_eq!(r.json()["error"]["param"], "model");

    let r = c
        .post(
            &url,
            "/v1/chat/completions",
            Some("gk-ok"),
            "{not json".into(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = c
        .post(
            &url,
            "/v1/chat/completions",
            Some("gk-ok"),
            r#"{"messages":[]}"#.into(),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["param"].clone()),
        (400, "model".into())
    );

    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(10_000)
    );
    let r = c
        .post(&url, "/v1/chat/completions", Some("gk-ok"), big.clone())
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    // Without a Content-Length (chunked), the limit still holds while reading.
    let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>> = big
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client
        .request(
            http::Request::post(format!("{url}/v1/chat/completions"))
                .header("authorization", "Bearer gk-ok")
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    let r = c.get(&url, "/v1/chat/completions").await;
    assert_eq!(r.status, 405);
    let r = c.get(&url, "/nowhere").await;
    assert_eq!(r.status, 404);
    for r in [c.get(&url, "/health").await, c.get(&url, "/nowhere").await] {
        assert!(!r.header("x-gateway-attempts").is_empty());
    }
    let models = c.get(&url, "/v1/models").await.json();
    assert_eq!(models["data"][0]["id"], "m");
    assert_eq!(
        u.hits(),
        1,
        "only the one valid request reached the upstream"
    );
}

#[tokio::test]
async fn upstream_4xx_is_returned_as_is_and_quota_moves_on() {
    let (p, f, gw) = failover("").await;
    let c = TestClient::new();
    p.script(vec![Mode::Error {
        status: 400,
        code: "context_length_exceeded",
        retry_after_ms: None,
    }]);
    let r = c.chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "context_length_exceeded");
    assert_eq!(r.header("x-gateway-upstream"), "primary");
    assert_eq!(r.header("x-gateway-attempts"), "1");
    assert_eq!(f.hits(), 0);

    // Out of credit: never retried on the same upstream, the fallback serves.
    p.set_mode(Mode::Error {
        status: 429,
        code: "insufficient_quota",
        retry_after_ms: None,
    });
    let r = c.chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-gateway-upstream"), "fallback");
    assert_eq!((p.hits(), f.hits()), (2, 1));
}

#[tokio::test]
async fn retry_after_is_honoured_on_the_same_upstream() {
    let u = upstream("u").await;
    u.script(vec![Mode::Error {
        status: 429,
        code: "rate_limit_exceeded",
        retry_after_ms: Some(300),
    }]);
    let cfg = format!(
        "routes = [{{ model = \"m\", targets = [\"u\"], upstream_model = \"provider-m\" }}]\n\
         [retry]\nbackoff_base = \"1ms\"\n[[upstreams]]\nname = \"u\"\nurl = \"{}/v1\"\n",
        u.url()
    );
    let gw = gateway(&cfg).await;
    let t0 = Instant::now();
    let r = TestClient::new().chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-attempts"), "2");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(u.models(), vec!["provider-m", "provider-m"]);
    assert_eq!(u.path_hits("/v1/chat/completions"), 2);
}

#[tokio::test]
async fn all_upstreams_unavailable_names_each_reason() {
    let extra =
        "[breaker]\nconsecutive_failures = 1\ncooldown = \"60s\"\n[retry]\nmax_attempts = 2\n";
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::status(500));
    f.set_mode(Mode::status(503));
    let c = TestClient::new();
    let r = c.chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 503);
    // Both breakers are open now: the next request is refused without any attempt.
    let r = c.chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-gateway-attempts"), "0");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert_eq!(
        msg,
        "all upstreams for model m are unavailable: primary (breaker open), fallback (breaker open)"
    );
    assert_eq!((p.hits(), f.hits()), (1, 1));
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count() {
    let (p, _f, gw) = failover("").await;
    p.set_mode(Mode::status(503));
    let c = TestClient::new();
    for _ in 0..3 {
        assert_eq!(c.chat(&gw.url(), None, "m", false).await.status, 200);
    }
    let r = c.get(&gw.url(), "/metrics").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').expect("`name value` sample");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in `{line}`"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in `{line}`"
        );
        samples.insert(name.to_string(), v);
    }
    let get = |k: &str| {
        samples
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("missing {k}\n{text}"))
    };
    assert_eq!(
        get("gateway_requests_total{route=\"m\",status=\"200\"}"),
        3.0
    );
    assert_eq!(
        get("gateway_attempts_total{route=\"m\",upstream=\"primary\",outcome=\"status_error\"}"),
        3.0
    );
    assert_eq!(
        get("gateway_attempts_total{route=\"m\",upstream=\"fallback\",outcome=\"ok\"}"),
        3.0
    );
    assert_eq!(get("gateway_failovers_total{route=\"m\"}"), 3.0);
    assert_eq!(
        get("gateway_request_duration_seconds_count{route=\"m\"}"),
        3.0
    );
    assert!(get("gateway_upstream_duration_seconds_count{upstream=\"fallback\"}") >= 3.0);
}

/// The same story against gauntlet's real mock upstreams: faults injected through the mock's
/// API, and the mocks' own stats say what reached them.
#[tokio::test]
async fn real_mocks_fail_over_open_the_breaker_and_recover() {
    use gauntlet::mock::{FaultKind, FaultSpec, RequestOutcome};
    let primary =
        crate::support::start_mock_named(crate::support::instant_profile(""), "primary", None)
            .await;
    let fallback =
        crate::support::start_mock_named(crate::support::instant_profile(""), "fallback", None)
            .await;
    let extra = "[breaker]\nconsecutive_failures = 3\ncooldown = \"1s\"\n";
    let cfg = failover_toml(&primary.url(), &fallback.url(), extra);
    let gw = gateway(&cfg).await;
    primary.add_fault(FaultSpec {
        kind: FaultKind::Error {
            status: 503,
            message: None,
        },
        rate: 1.0,
        model: None,
    });
    let c = TestClient::new();
    for stream in [false, true, false, true, false, true] {
        let r = c.chat(&gw.url(), None, "m", stream).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-gateway-upstream"), "fallback");
        assert!(r.text().contains("gauntlet-fallback"));
        if stream {
            assert!(r.text().contains("data: [DONE]"));
        }
    }
    let p = primary.stats();
    assert_eq!(
        p.requests_total, 3,
        "breaker opened after 3 failures: {p:?}"
    );
    assert_eq!(p.outcome(RequestOutcome::Error), 3);
    assert_eq!(fallback.stats().outcome(RequestOutcome::Ok), 6);

    primary.clear_faults();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = c.chat(&gw.url(), None, "m", false).await;
    assert_eq!(r.header("x-gateway-upstream"), "primary");
    assert_eq!(primary.stats().outcome(RequestOutcome::Ok), 1);
}

/// A duration in OpenAI's reset format (`20ms`, `1.5s`, `6m0s`, `1h2m3.5s`) in milliseconds;
/// `None` for anything else (`1.500s` included: it must be the canonical spelling).
fn reset_ms(text: &str) -> Option<u64> {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let ms = if let Some(ms) = text.strip_suffix("ms") {
        number(ms)?
    } else {
        let body = text.strip_suffix('s')?;
        let (hours, rest) = body
            .split_once('h')
            .map_or(Ok((0, body)), |(h, r)| number(h).map(|h| (h, r)).ok_or(()))
            .ok()?;
        let (minutes, secs) = rest
            .split_once('m')
            .map_or(Ok((0, rest)), |(m, r)| number(m).map(|m| (m, r)).ok_or(()))
            .ok()?;
        let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
        let frac_ms = if frac.is_empty() {
            0
        } else if frac.len() <= 3 {
            number(frac)? * 10u64.pow(3 - frac.len() as u32)
        } else {
            return None;
        };
        ((hours * 60 + minutes) * 60 + number(whole)?) * 1000 + frac_ms
    };
    (gauntlet::openai::duration_text(Duration::from_millis(ms)) == text).then_some(ms)
}

#[test]
fn reset_parser_takes_the_canonical_spelling_only() {
    for (text, ms) in [("0s", 0), ("20ms", 20), ("1.5s", 1500), ("6m0s", 360_000)] {
        assert_eq!(reset_ms(text), Some(ms), "{text}");
    }
    assert_eq!(reset_ms("1h2m3.5s"), Some(3_723_500));
    for bad in ["1.500s", "1500ms", "6m", "1.5", "", "s", "0.5s", "1h3s"] {
        assert_eq!(reset_ms(bad), None, "{bad}");
    }
}

/// The rate-limit headers of a 429, by name.
fn limit_headers(h: &http::HeaderMap) -> std::collections::BTreeMap<String, String> {
    h.iter()
        .filter(|(k, _)| {
            k.as_str().starts_with("x-ratelimit-") || k.as_str().starts_with("retry-after")
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

#[tokio::test]
async fn mock_and_gateway_announce_a_429_in_the_same_words() {
    let limits = "requests_per_minute = 2\ntokens_per_minute = 1000\n";
    let mock = crate::support::start_mock(crate::support::instant_profile(&format!(
        "[limits]\n{limits}"
    )))
    .await;
    let u = upstream("u").await;
    let gw = gateway(&format!(
        "keys = [{{ key = \"gk-rl\", rpm = 2, tpm = 1000 }}]\n\
         routes = [{{ model = \"m\", targets = [\"u\"] }}]\n\
         [[upstreams]]\nname = \"u\"\nurl = \"{}\"\n",
        u.url()
    ))
    .await;
    let c = TestClient::new();
    let mut refusals = Vec::new();
    for base in [mock.url(), gw.url()] {
        for _ in 0..2 {
            assert_eq!(c.chat(&base, Some("gk-rl"), "m", false).await.status, 200);
        }
        let r = c.chat(&base, Some("gk-rl"), "m", false).await;
        assert_eq!(r.status, 429, "{base}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
        refusals.push(limit_headers(&r.headers));
    }
    let (mock, gw) = (&refusals[0], &refusals[1]);
    let names =
        |m: &std::collections::BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(mock), names(gw), "the same header set");
    assert_eq!(
        mock.len(),
        8,
        "retry-after, retry-after-ms, 3 per limit: {mock:?}"
    );
    for h in [mock, gw] {
        assert_eq!(h["x-ratelimit-limit-requests"], "2");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
        let wait_ms: u64 = h["retry-after-ms"].parse().unwrap();
        assert!(
            (25_000..=30_000).contains(&wait_ms),
            "a request refills in 30 s: {h:?}"
        );
        let wait_s: u64 = h["retry-after"].parse().unwrap();
        assert_eq!(wait_s, wait_ms.div_ceil(1000), "{h:?}");
        // The same instant: full again one refill period (30 s) after a request fits. Only a
        // millisecond-exact reset can show it (not one rounded to tenths).
        let reset = reset_ms(&h["x-ratelimit-reset-requests"]).unwrap_or_else(|| panic!("{h:?}"));
        assert!(reset.abs_diff(wait_ms + 30_000) <= 1, "{h:?}");
        assert!(reset_ms(&h["x-ratelimit-reset-tokens"]).is_some(), "{h:?}");
    }
    // Same requests, same buckets: the numbers differ only by the refill of the few
    // milliseconds between the two runs (tokens refill at 1000 a minute).
    let num = |h: &std::collections::BTreeMap<String, String>, name: &str| -> u64 {
        reset_ms(&h[name])
            .or_else(|| h[name].parse().ok())
            .unwrap_or_else(|| panic!("{name}: {h:?}"))
    };
    for (name, within) in [
        ("retry-after-ms", 5_000),
        ("x-ratelimit-reset-requests", 5_000),
        ("x-ratelimit-remaining-tokens", 20),
        ("x-ratelimit-reset-tokens", 1_500),
    ] {
        let (a, b) = (num(mock, name), num(gw, name));
        assert!(a.abs_diff(b) <= within, "{name}: mock {a}, gateway {b}");
    }
}

/// The gateway rewrites nothing in a body: a tool-call stream, a reasoning stream and a
/// tool-call answer arrive byte for byte as the provider sent them. Two identical mocks (same
/// profile, same name) serve the same requests in the same order, one directly and one
/// through the gateway, so even ids and seeded words match; only `created` (the second the
/// answer was made) may differ.
#[tokio::test]
async fn tool_call_and_reasoning_streams_are_relayed_unchanged() {
    let profile = || {
        crate::support::instant_profile(
            "[latency]\ntokens_per_second = 2000\n[completion]\ntool_call_rate = 1.0\n\
             reasoning_tokens = 5\n",
        )
    };
    let direct = crate::support::start_mock_named(profile(), "deep", None).await;
    let behind = crate::support::start_mock_named(profile(), "deep", None).await;
    let gw = gateway(&format!(
        "routes = [{{ model = \"m\", targets = [\"deep\"] }}]\n\
         [[upstreams]]\nname = \"deep\"\nurl = \"{}\"\n",
        behind.url()
    ))
    .await;
    let tools = serde_json::json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}}}]);
    let messages = serde_json::json!([{"role": "user", "content": "Look it up"}]);
    let bodies = [
        serde_json::json!({"model": "m", "messages": messages, "tools": tools, "stream": true,
            "stream_options": {"include_usage": true}}),
        serde_json::json!({"model": "m", "messages": messages, "max_tokens": 6, "stream": true,
            "stream_options": {"include_usage": true}}),
        serde_json::json!({"model": "m", "messages": messages, "tools": tools}),
    ];
    let c = TestClient::new();
    for body in bodies {
        let a = c
            .post(
                &direct.url(),
                "/v1/chat/completions",
                None,
                body.to_string(),
            )
            .await;
        let b = c
            .post(&gw.url(), "/v1/chat/completions", None, body.to_string())
            .await;
        assert_eq!((a.status, b.status), (200, 200), "{}", b.text());
        assert_eq!(b.header("x-gateway-upstream"), "deep");
        assert!(!b.cut, "{}", b.text());
        let text = a.text();
        assert!(
            text.contains("\"tool_calls\"") || text.contains("\"reasoning_content\""),
            "{text}"
        );
        assert_eq!(without_created(&text), without_created(&b.text()), "{body}");
    }
    assert_eq!(behind.stats().requests_total, 3);
    assert_eq!(behind.stats().reasoning_tokens, 15);
}

/// The text with every `"created":<seconds>` set to 0.
fn without_created(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(i + "\"created\":".len());
        out.push_str(head);
        out.push('0');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// HTTP/2 with prior knowledge and HTTP/1.1 on the same plain listener: the gateway tells them
/// apart by the connection's first bytes, streams included.
#[tokio::test]
async fn plain_connections_are_served_in_http2_with_prior_knowledge_and_in_http1() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let (p, _f, gw) = failover("").await;
    for (http2, stream) in [(true, false), (true, true), (false, true)] {
        let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http();
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"stream":{stream}}}"#
        );
        let req = http::Request::post(format!("{}/v1/chat/completions", gw.url()))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let version = resp.version();
        assert_eq!(resp.status(), 200, "http2 {http2} stream {stream}");
        let want = if http2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        assert_eq!(version, want);
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        if stream {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        } else {
            assert!(text.contains("\"choices\""), "{text}");
        }
    }
    assert_eq!(p.hits(), 3);
}

/// A request whose first bytes trickle in (one byte, then the rest) is still HTTP/1: the
/// gateway waits to see whether they are HTTP/2's preface instead of guessing early.
#[tokio::test]
async fn a_request_head_split_after_its_first_byte_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (p, _f, gw) = failover("").await;
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(&head.as_bytes()[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tcp.write_all(&head.as_bytes()[1..]).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .expect("answered in time")
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(p.hits(), 1);
}
