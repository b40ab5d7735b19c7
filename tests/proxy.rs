//! A fault proxy in front of a real provider (here a TLS mock standing in for one): requests
//! pass through untouched with the proxy's key, the same faults as a mock's are played from
//! the same control API, and the proxy counts what the provider's usage says.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet::config::Secret;
use gauntlet::mock::{
    self, ControlClient, FaultKind, FaultSpec, Forward, RateLimitCode, RequestOutcome,
};
use gauntlet::tls::{ALPN_HTTP1, ClientSettings, SelfSigned, server_config};

use crate::support::{
    Received, Routes, chat_body, completion_json, post_chat, profile, raw, reply,
};

fn fault(kind: FaultKind) -> FaultSpec {
    FaultSpec {
        kind,
        rate: 1.0,
        model: None,
    }
}

/// A TLS "provider" named `real` serving model `m` fast, with a private CA made in `pki`.
async fn tls_provider(pki: &std::path::Path) -> (mock::MockHandle, SelfSigned) {
    let pki = SelfSigned::generate(pki).unwrap();
    let config = server_config(&pki.server, &[ALPN_HTTP1]).unwrap();
    let provider = mock::start_tls(
        profile(
            "name = \"real\"\nseed = 2\n[latency]\ntokens_per_second = 4000\n[[models]]\n\
             name = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n",
        ),
        "real",
        "127.0.0.1:0".parse().unwrap(),
        None,
        config,
    )
    .await
    .unwrap();
    (provider, pki)
}

/// A TLS "provider" (a mock with a private CA) and a proxy in front of it that trusts the CA.
async fn provider_and_proxy(dir: &std::path::Path) -> (mock::MockHandle, mock::MockHandle) {
    let (provider, pki) = tls_provider(dir).await;
    let trust = ClientSettings {
        ca_certs: vec![pki.ca.clone()],
        identity: None,
    };
    let forward = Forward::new(&provider.url(), None, &trust).unwrap();
    let proxy = mock::start_proxy(
        "openai",
        "127.0.0.1:0".parse().unwrap(),
        Some("ctl-token".into()),
        forward,
        None,
    )
    .await
    .unwrap();
    (provider, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_fault_the_proxy_passes_answers_through_and_counts_their_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, proxy) = provider_and_proxy(dir.path()).await;

    let plain = post_chat(proxy.addr(), &chat_body("m", 7, false)).await;
    assert_eq!(plain.status(), Some(200), "{}", plain.body());
    let v = plain.json();
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(
        plain.header("x-gauntlet-upstream").as_deref(),
        Some("openai"),
        "the proxy names itself, as a mock does"
    );
    let stream = post_chat(proxy.addr(), &chat_body("m", 5, true)).await;
    assert_eq!(stream.status(), Some(200));
    let events = stream.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(events.len() >= 7, "{events:?}");
    // Other paths pass too: the provider's model list.
    let models = raw(proxy.addr(), "GET", "/v1/models", &[], "").await;
    assert_eq!(models.json()["data"][0]["id"], "m");

    let stats = proxy.stats();
    assert_eq!(
        stats.completion_tokens, 12,
        "7 + 5 from the provider's usage"
    );
    assert_eq!(stats.prompt_tokens, provider.stats().prompt_tokens);
    assert_eq!(stats.outcome(RequestOutcome::Ok), 3);
    assert_eq!(provider.stats().requests_total, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_plays_a_mocks_faults_from_its_control_api() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, proxy) = provider_and_proxy(dir.path()).await;
    let control = ControlClient::new(&proxy.url(), Some("ctl-token".into())).unwrap();

    // An error instead of forwarding: the provider never sees it.
    let id = control
        .add_fault(&fault(FaultKind::Error {
            status: 503,
            message: None,
        }))
        .await
        .unwrap();
    let r = post_chat(proxy.addr(), &chat_body("m", 3, false)).await;
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.json()["error"]["type"], "server_error");
    assert_eq!(provider.stats().requests_total, 0);
    control.remove_fault(id).await.unwrap();

    // A 429 storm with Retry-After.
    let id = control
        .add_fault(&fault(FaultKind::RateLimit {
            code: RateLimitCode::RateLimitExceeded,
            retry_after: Duration::from_secs(2),
        }))
        .await
        .unwrap();
    let r = post_chat(proxy.addr(), &chat_body("m", 3, false)).await;
    assert_eq!(r.status(), Some(429));
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    control.remove_fault(id).await.unwrap();

    // Latency before forwarding.
    let id = control
        .add_fault(&fault(FaultKind::Latency {
            delay: gauntlet::config::DurationDist::fixed(Duration::from_millis(300)),
        }))
        .await
        .unwrap();
    let started = Instant::now();
    let r = post_chat(proxy.addr(), &chat_body("m", 3, false)).await;
    assert_eq!(r.status(), Some(200));
    assert!(started.elapsed() >= Duration::from_millis(300));
    control.remove_fault(id).await.unwrap();

    // A stream cut after two events: the client sees them, then the connection ends.
    let id = control
        .add_fault(&fault(FaultKind::StreamCut { after_chunks: 2 }))
        .await
        .unwrap();
    let r = post_chat(proxy.addr(), &chat_body("m", 20, true)).await;
    assert_eq!(r.status(), Some(200));
    let events = r.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
    control.remove_fault(id).await.unwrap();

    // A malformed event in the middle of a real stream.
    let id = control
        .add_fault(&fault(FaultKind::Malformed))
        .await
        .unwrap();
    let r = post_chat(proxy.addr(), &chat_body("m", 6, true)).await;
    let broken = r
        .events()
        .iter()
        .filter(|e| *e != "[DONE]" && serde_json::from_str::<serde_json::Value>(e).is_err())
        .count();
    assert_eq!(broken, 1, "{:?}", r.events());
    control.remove_fault(id).await.unwrap();

    // A slowed stream: 8 events at 20 a second take at least 0.35 s, however fast the provider.
    let id = control
        .add_fault(&fault(FaultKind::SlowStream {
            tokens_per_second: 20.0,
        }))
        .await
        .unwrap();
    let started = Instant::now();
    let r = post_chat(proxy.addr(), &chat_body("m", 6, true)).await;
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));
    assert!(r.events().len() >= 8, "{:?}", r.events());
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    control.remove_fault(id).await.unwrap();

    // An outage: the connection closes without an answer.
    control.add_fault(&fault(FaultKind::Outage)).await.unwrap();
    let r = post_chat(proxy.addr(), &chat_body("m", 3, false)).await;
    assert_eq!(r.status(), None);
    control.clear_faults().await.unwrap();

    let stats = control.stats().await.unwrap();
    assert_eq!(stats.outcome(RequestOutcome::Error), 1);
    assert_eq!(stats.outcome(RequestOutcome::RateLimited), 1);
    assert_eq!(stats.outcome(RequestOutcome::StreamCut), 1);
    assert_eq!(stats.outcome(RequestOutcome::Malformed), 1);
    assert_eq!(stats.outcome(RequestOutcome::Outage), 1);
    assert_eq!(
        provider.stats().requests_total,
        4,
        "latency, cut, malformed and slow were forwarded"
    );
}

#[tokio::test]
async fn the_proxy_sends_its_own_key_and_never_shows_it() {
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = seen.clone();
    let provider = Routes::new()
        .route("/v1/chat/completions", move |r| {
            log.lock().unwrap().push(r);
            reply(
                200,
                &[("content-type", "application/json")],
                completion_json("real"),
            )
        })
        .route("/v1/messages", {
            let log = seen.clone();
            move |r| {
                log.lock().unwrap().push(r);
                reply(200, &[("content-type", "application/json")], "{}")
            }
        })
        .serve()
        .await;
    let secret = "sk-live-very-secret-123";
    let forward = Forward::new(
        &provider.url(),
        Some(Secret::new(secret)),
        &ClientSettings::default(),
    )
    .unwrap();
    let proxy = mock::start_proxy(
        "openai",
        "127.0.0.1:0".parse().unwrap(),
        None,
        forward,
        None,
    )
    .await
    .unwrap();
    let r = raw(
        proxy.addr(),
        "POST",
        "/v1/chat/completions?trace=1",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer client-key"),
            ("openai-organization", "org-1"),
        ],
        &chat_body("m", 3, false),
    )
    .await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    let got = seen.lock().unwrap().pop().unwrap();
    assert_eq!(got.path, "/v1/chat/completions");
    assert_eq!(
        got.headers.get("authorization").unwrap(),
        &format!("Bearer {secret}"),
        "the proxy's key replaces the client's"
    );
    assert_eq!(got.headers.get("openai-organization").unwrap(), "org-1");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["max_tokens"], 3, "the body goes as it came");

    let control = ControlClient::new(&proxy.url(), None).unwrap();
    let stats = serde_json::to_string(&control.stats().await.unwrap()).unwrap();
    let faults = serde_json::to_string(&control.faults().await.unwrap()).unwrap();
    for shown in [stats, faults, format!("{:?}", proxy.profile())] {
        assert!(!shown.contains(secret), "{shown}");
    }

    // Anthropic's clients put their key in `x-api-key`: the proxy's goes there instead.
    let r = raw(
        proxy.addr(),
        "POST",
        "/v1/messages",
        &[
            ("content-type", "application/json"),
            ("x-api-key", "client-key"),
        ],
        "{}",
    )
    .await;
    assert_eq!(r.status(), Some(200), "{}", r.body());
    let got = seen.lock().unwrap().pop().unwrap();
    assert_eq!(got.path, "/v1/messages");
    assert_eq!(got.headers.get("x-api-key").unwrap(), secret);
    assert!(got.headers.get("authorization").is_none());
}

/// The user's story: the gateway routes to a real provider through a proxy gauntlet starts
/// from the scenario (`proxy_to`), the provider "goes down" at the proxy, and the gateway
/// fails over to the fallback; the proxy counted what reached the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_puts_a_proxy_in_front_of_a_real_provider_and_breaks_it_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, _) = tls_provider(&dir.path().join("pki")).await;
    std::fs::write(
        dir.path().join("backup.toml"),
        "name = \"backup\"\nseed = 4\n[latency]\ntokens_per_second = 4000\n[[models]]\n\
         name = \"m\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n",
    )
    .unwrap();
    let text = format!(
        r#"name = "through-a-proxy"
seed = 5
[tls]
ca_cert = "pki/ca.pem"
[[upstreams]]
name = "real"
proxy_to = "{url}"
api_key = "sk-provider"
[[upstreams]]
name = "backup"
profile = "backup.toml"
[gateway]
routes = [{{ model = "m", targets = ["real"], fallbacks = ["backup"] }}]
[load]
stages = [{{ duration = "4s", rate = 40 }}]
[[requests]]
name = "chat"
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
primary = "real"
[[faults]]
upstream = "real"
at = "1s"
duration = "1500ms"
kind = "outage"
[sla]
failover_success = "99%"
"#,
        url = provider.url()
    );
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let scenario = gauntlet::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let options = gauntlet::engine::RunOptions {
        quiet: true,
        ..gauntlet::engine::RunOptions::default()
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let run = gauntlet::engine::run_scenario(&scenario, &options, rx)
        .await
        .unwrap();
    let s = &run.summary;
    assert_eq!(
        s.overall.successes, s.overall.requests,
        "{:?}",
        s.overall.errors
    );
    let fault = &s.faults[0];
    assert!(fault.affected_requests >= 20, "{fault:?}");
    assert_eq!(fault.failover_success, Some(1.0), "{fault:?}");
    let served = &s.overall.served_by;
    assert!(served.get("real").copied().unwrap_or(0) >= 20, "{served:?}");
    assert!(
        served.get("backup").copied().unwrap_or(0) >= 20,
        "{served:?}"
    );
    // What reached the real provider went through the proxy, and was counted there.
    let reached = provider.stats();
    let proxy = &s.upstreams.iter().find(|u| u.name == "real").unwrap();
    assert_eq!(
        proxy.tokens.completion, reached.completion_tokens,
        "{proxy:?}"
    );
    assert!(
        proxy.received.unwrap() > reached.requests_total,
        "the gateway's attempts during the outage stopped at the proxy: {proxy:?} {reached:?}"
    );
    assert!(reached.completion_tokens >= 8 * 20, "{reached:?}");
}

fn budget_scenario(provider_url: &str, budget: &str, rate: u32, secs: u32) -> String {
    format!(
        r#"name = "on-a-budget"
seed = 5
[tls]
ca_cert = "pki/ca.pem"
[[upstreams]]
name = "real"
proxy_to = "{provider_url}"
input_price_per_m = 2.5
output_price_per_m = 10
[gateway]
routes = [{{ model = "m", targets = ["real"] }}]
[load]
stages = [{{ duration = "{secs}s", rate = {rate} }}]
[[requests]]
name = "chat"
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
primary = "real"
[budget]
{budget}
"#
    )
}

/// A run against a paid provider stops itself, cleanly, before it passes its token budget;
/// the summary says so and what was spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_stops_the_run_cleanly_before_it_is_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (provider, _) = tls_provider(&dir.path().join("pki")).await;
    let path = dir.path().join("budget.toml");
    std::fs::write(
        &path,
        budget_scenario(&provider.url(), "max_tokens = 1500", 40, 8),
    )
    .unwrap();
    let scenario = gauntlet::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let options = gauntlet::engine::RunOptions {
        quiet: true,
        ..gauntlet::engine::RunOptions::default()
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let run = gauntlet::engine::run_scenario(&scenario, &options, rx)
        .await
        .unwrap();
    let s = &run.summary;
    let b = s.budget.expect("a budget report");
    assert!(b.stopped, "{b:?}");
    assert!(s.interrupted, "stopped like Ctrl-C stops a run");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "it stopped early"
    );
    assert!(
        (1000..=2000).contains(&b.spent_tokens),
        "stopped near 1,500 tokens, before the next moment's spend: {b:?}"
    );
    assert_eq!(
        b.spent_tokens,
        provider.stats().prompt_tokens + provider.stats().completion_tokens
    );
    let expected = (provider.stats().prompt_tokens as f64 * 2.5
        + provider.stats().completion_tokens as f64 * 10.0)
        / 1e6;
    assert!((b.spent_usd - expected).abs() < 1e-9, "{b:?} vs {expected}");
    assert_eq!(
        s.overall.successes, s.overall.requests,
        "{:?}",
        s.overall.errors
    );
}

#[test]
fn a_plan_estimated_over_its_budget_needs_yes_to_start() {
    let dir = tempfile::tempdir().unwrap();
    SelfSigned::generate(&dir.path().join("pki")).unwrap();
    let path = dir.path().join("dear.toml");
    // Nothing listens there: the refusal comes before anything starts.
    std::fs::write(
        &path,
        budget_scenario("https://127.0.0.1:9", "max_cost = \"$0.001\"", 100, 60),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(&path)
        .arg("-q")
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // 6,000 requests x (hello: 5 prompt tokens + 8 output) at $2.5 / $10 per 1M.
    assert!(
        stderr
            .contains("estimated cost of the plan: at most $0.5550 (6000 requests, 78000 tokens)"),
        "{stderr}"
    );
    assert!(stderr.contains("pass --yes"), "{stderr}");
    assert!(
        !dir.path().join("run").exists(),
        "nothing started, nothing written"
    );
}
