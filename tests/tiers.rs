//! Tiers in the reference gateway, against real upstreams on loopback: capacity reserved for
//! Pro, Standard shed at once with a 429 that says why, tier defaults, a provider's 429 that
//! sends only Pro to the fallbacks, and the OpenAI SDK honouring a tier's 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::support::{ClientReply, Mode, TestClient, failover, gateway, upstream};
use crate::support::{Routes, TestServer, after, completion_json, reply};

const CHAT: &str = "/v1/chat/completions";

/// An upstream that answers every chat request `hold` late, counting how many it holds at
/// once (now, and the most ever).
struct Holding {
    server: TestServer,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

async fn holding(hold: Duration) -> Holding {
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (n, m) = (Arc::clone(&now), Arc::clone(&most));
    let server = Routes::new()
        .route(CHAT, move |_| {
            let (n, m) = (Arc::clone(&n), Arc::clone(&m));
            let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(in_flight, Ordering::SeqCst);
            let body = completion_json("held");
            let answer = after(
                hold,
                reply(200, &[("content-type", "application/json")], body),
            );
            Box::pin(async move {
                let r = answer.await;
                n.fetch_sub(1, Ordering::SeqCst);
                r
            })
        })
        .serve()
        .await;
    Holding { server, now, most }
}

fn shed_properly(r: &ClientReply, why: &str) {
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("x-gateway-shed"), why, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 20),
        "the error says why: {}",
        r.text()
    );
    assert!(r.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1));
}

#[tokio::test]
async fn half_of_twenty_slots_reserved_keeps_standard_to_ten_and_admits_pro() {
    let up = holding(Duration::from_secs(4)).await;
    let cfg = format!(
        r#"keys = [{{ key = "gk-std", tier = "standard", rpm = 100000 }}, {{ key = "gk-pro", tier = "pro" }}]
routes = [{{ model = "m", targets = ["u"] }}]
[admission]
reserved = "50%"
[[upstreams]]
name = "u"
url = "{}"
max_concurrent = 20
"#,
        up.server.url()
    );
    let gw = gateway(&cfg).await;
    let c = TestClient::new();
    let url = gw.url();
    let standard = (0..100).map(|_| {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = c.chat(&url, Some("gk-std"), "m", false).await;
            (r, t0.elapsed())
        })
    });
    let standard: Vec<_> = standard.collect();
    // Let the flood arrive: the held ones stay in flight for 4 s.
    let t0 = Instant::now();
    while up.now.load(Ordering::SeqCst) < 10 && t0.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let standard_held = up.now.load(Ordering::SeqCst);
    assert_eq!(standard_held, 10, "Standard fills exactly the open half");
    let pro = join_all((0..5).map(|_| c.chat(&url, Some("gk-pro"), "m", false))).await;
    for r in &pro {
        assert_eq!(
            r.status,
            200,
            "Pro is admitted into its reserve: {}",
            r.text()
        );
    }
    let mut served = 0;
    for h in standard {
        let (r, took) = h.await.unwrap();
        if r.status == 200 {
            served += 1;
        } else {
            shed_properly(&r, "tier");
            assert!(
                took < Duration::from_secs(3),
                "shed at once, not after the upstream's 4 s: {took:?}"
            );
        }
    }
    assert!(served >= 10, "{served}");
    assert!(
        up.most.load(Ordering::SeqCst) <= 15,
        "10 Standard + 5 Pro at most: {}",
        up.most.load(Ordering::SeqCst)
    );
    let m = c.get(&url, "/metrics").await.text();
    let shed = 100 - served;
    assert!(
        m.contains(&format!(
            "gateway_tier_shed_total{{tier=\"standard\",reason=\"tier\"}} {shed}"
        )),
        "{m}"
    );
    assert!(
        m.contains("gateway_tier_requests_total{tier=\"pro\"} 5"),
        "{m}"
    );
    assert!(m.contains("gateway_tier_in_flight{tier=\"pro\"} 0"), "{m}");
}

#[tokio::test]
async fn a_flood_is_shed_cleanly_and_the_queue_stays_bounded() {
    let up = holding(Duration::from_millis(600)).await;
    let cfg = format!(
        r#"keys = [{{ key = "gk-std", rpm = 1000000 }}, {{ key = "gk-pro", tier = "pro" }}]
routes = [{{ model = "m", targets = ["u"] }}]
[tiers.standard]
queue = 8
queue_timeout = "100ms"
[admission]
max_in_flight = 4
reserved = "50%"
[[upstreams]]
name = "u"
url = "{}"
"#,
        up.server.url()
    );
    let gw = gateway(&cfg).await;
    let c = TestClient::new();
    let url = gw.url();
    // 10x the gateway's 4 slots, ten times over.
    let flood: Vec<_> = (0..400)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = c.chat(&url, Some("gk-std"), "m", false).await;
                (r, t0.elapsed())
            })
        })
        .collect();
    let pro = c.chat(&url, Some("gk-pro"), "m", false).await;
    assert_eq!(pro.status, 200, "{}", pro.text());
    let mut served = 0;
    for h in flood {
        let (r, took) = h.await.unwrap();
        match r.status {
            200 => served += 1,
            _ => {
                shed_properly(&r, "tier");
                // The queue waits at most 100 ms; a loaded machine gets generous slack, and
                // a timeout would be the upstream's 600 ms at least, times a queue.
                assert!(took < Duration::from_secs(10), "{took:?}");
            }
        }
    }
    // Pro in flight counts against the open half too: the reserve is what stays free.
    assert!(served >= 1, "Standard still gets the open half: {served}");
    assert!(
        up.most.load(Ordering::SeqCst) <= 4,
        "never more in flight than the gateway's limit: {}",
        up.most.load(Ordering::SeqCst)
    );
    let m = c.get(&url, "/metrics").await.text();
    assert!(
        m.contains("gateway_tier_in_flight{tier=\"standard\"} 0"),
        "every slot given back: {m}"
    );
    assert!(
        m.contains("gateway_tier_queue_wait_seconds_count{tier=\"standard\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn a_standard_key_without_limits_gets_fifty_a_minute_and_pro_no_cap() {
    let u = upstream("u").await;
    let cfg = format!(
        r#"keys = [{{ key = "gk-std", tier = "standard" }}, {{ key = "gk-pro", tier = "pro" }}, {{ key = "gk-custom", tier = "standard", rpm = 3 }}]
routes = [{{ model = "m", targets = ["u"] }}]
[[upstreams]]
name = "u"
url = "{}"
"#,
        u.url()
    );
    let gw = gateway(&cfg).await;
    let c = TestClient::new();
    for i in 0..50 {
        let r = c.chat(&gw.url(), Some("gk-std"), "m", false).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests"), "50");
    }
    let r = c.chat(&gw.url(), Some("gk-std"), "m", false).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), "0");
    for _ in 0..60 {
        let r = c.chat(&gw.url(), Some("gk-pro"), "m", false).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("x-ratelimit-limit-requests").is_empty());
    }
    for _ in 0..3 {
        let r = c.chat(&gw.url(), Some("gk-custom"), "m", false).await;
        assert_eq!(
            r.header("x-ratelimit-limit-requests"),
            "3",
            "the key's own rpm wins"
        );
    }
    assert_eq!(u.hits(), 113);
}

#[tokio::test]
async fn a_providers_429_sends_only_pro_to_the_fallbacks() {
    let extra = r#"keys = [{ key = "gk-std", rpm = 1000 }, { key = "gk-pro", tier = "pro" }]
[admission]
"#;
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::Error {
        status: 429,
        code: "rate_limit_exceeded",
        retry_after_ms: Some(2000),
    });
    let c = TestClient::new();
    let r = c.chat(&gw.url(), Some("gk-std"), "m", false).await;
    shed_properly(&r, "tier");
    assert_eq!(r.header("retry-after"), "2", "the provider's own wait");
    assert_eq!(f.hits(), 0, "the fallback is kept for Pro");
    let r = c.chat(&gw.url(), Some("gk-pro"), "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-gateway-upstream"), "fallback");
    assert_eq!((p.hits(), f.hits()), (2, 1));
}

#[tokio::test]
async fn without_an_admission_table_every_tier_fails_over_on_a_429() {
    let extra = r#"keys = [{ key = "gk-std", rpm = 1000 }]"#;
    let (p, f, gw) = failover(extra).await;
    p.set_mode(Mode::Error {
        status: 429,
        code: "rate_limit_exceeded",
        retry_after_ms: Some(2000),
    });
    let r = TestClient::new()
        .chat(&gw.url(), Some("gk-std"), "m", false)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((p.hits(), f.hits()), (1, 1));
}

/// The OpenAI Python SDK against a Standard key with no limits of its own: the tier's 50 a
/// minute are drained, and the SDK's retry waits as the gateway's `retry-after-ms` says (about
/// 1.2 s, more than its own 0.5 s backoff) and is served. Needs `python3` with `openai`.
#[tokio::test]
async fn openai_python_sdk_honours_the_standard_tiers_429() {
    let u = upstream("u").await;
    let cfg = format!(
        r#"keys = [{{ key = "sk-sdk-retry", tier = "standard" }}]
routes = [{{ model = "m", targets = ["u"] }}]
[[upstreams]]
name = "u"
url = "{}"
"#,
        u.url()
    );
    let gw = gateway(&cfg).await;
    let report = crate::support::python_sdk("sdk_retry.py", &format!("{}/v1", gw.url())).await;
    // 50 at once, and one more for every 1.2 s the draining took on a busy machine.
    let drained = report["drained"].as_u64().unwrap();
    assert!(
        (50..=60).contains(&drained),
        "the tier's 50 a minute: {report}"
    );
    let wait_ms: u64 = report["retry_after_ms"].as_str().unwrap().parse().unwrap();
    assert!(
        (1..=1200).contains(&wait_ms),
        "one request refills in 1.2 s: {report}"
    );
    assert_eq!(report["retries_taken"], 1, "{report}");
    let served_after = report["served_after_s"].as_f64().unwrap();
    assert!(
        served_after >= wait_ms as f64 / 1000.0 - 0.05,
        "waited as told: {report}"
    );
    assert_eq!(u.hits(), drained + 1, "refusals never reach the upstream");
}
