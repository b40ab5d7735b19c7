//! gauntlet's HTTP clients against a wiremock server that checks what they send: the control
//! client a run uses to break mocks in another process (paths, token header, JSON bodies, how
//! a failed or garbled answer is reported), and the reference gateway's upstream client (the
//! upstream's key replaces the client's, client headers stay behind, timeouts end an attempt).

use std::time::{Duration, Instant};

use gauntlet::config::Source;
use gauntlet::gateway::{Config, GatewayHandle};
use gauntlet::mock::{
    ControlClient, ControlError, FaultId, FaultKind, FaultKindName, FaultSpec, RequestOutcome,
};
use http::StatusCode;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TestClient, completion_json};

const TOKEN: &str = "x-gauntlet-token";

fn error_503() -> FaultSpec {
    FaultSpec {
        kind: FaultKind::Error {
            status: 503,
            message: None,
        },
        rate: 0.5,
        model: Some("m".into()),
    }
}

#[tokio::test]
async fn control_client_posts_a_fault_as_json_with_the_admin_token() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/__gauntlet/faults"))
        .and(header(TOKEN, "s3cret"))
        .and(header("content-type", "application/json"))
        .and(body_json(serde_json::json!({
            "kind": "error", "status": 503, "rate": 0.5, "model": "m"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 7})))
        .expect(1)
        .mount(&mock)
        .await;
    let client = ControlClient::new(&format!("{}/", mock.uri()), Some("s3cret".into())).unwrap();
    let id = client.add_fault(&error_503()).await.unwrap();
    assert_eq!(id, FaultId(7));
}

#[tokio::test]
async fn control_client_reads_stats_and_sends_no_token_when_it_has_none() {
    let mock = MockServer::start().await;
    let stats = serde_json::json!({
        "upstream": "deepseek", "requests_total": 12, "in_flight": 1,
        "by_model": {"m": 12}, "by_outcome": {"ok": 9, "error": 3},
        "faults_injected": {"error": 3}, "prompt_tokens": 120, "completion_tokens": 90
    });
    Mock::given(method("GET"))
        .and(path("/__gauntlet/stats"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stats))
        .expect(1)
        .mount(&mock)
        .await;
    let client = ControlClient::new(&mock.uri(), None).unwrap();
    let s = client.stats().await.unwrap();
    assert_eq!(s.upstream, "deepseek");
    assert_eq!(s.requests_total, 12);
    assert_eq!(s.outcome(RequestOutcome::Ok), 9);
    assert_eq!(s.outcome(RequestOutcome::Error), 3);
    assert_eq!(s.faults(FaultKindName::Error), 3);
    assert_eq!(s.model("m"), 12);
    let sent = mock.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert!(
        !sent[0].headers.contains_key(TOKEN),
        "no token configured, none sent: {:?}",
        sent[0].headers
    );
}

#[tokio::test]
async fn control_client_removes_faults_and_an_unknown_id_is_not_an_error() {
    let mock = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/__gauntlet/faults/3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"removed": 1})))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/__gauntlet/faults/4"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no fault 4"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/__gauntlet/faults"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"removed": 2})))
        .expect(1)
        .mount(&mock)
        .await;
    let client = ControlClient::new(&mock.uri(), Some("t".into())).unwrap();
    assert!(client.remove_fault(FaultId(3)).await.unwrap());
    assert!(!client.remove_fault(FaultId(4)).await.unwrap());
    assert_eq!(client.clear_faults().await.unwrap(), 2);
}

#[tokio::test]
async fn control_client_reports_a_500_with_its_status_body_and_url() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/__gauntlet/stats"))
        .respond_with(ResponseTemplate::new(500).set_body_string("stats store is on fire"))
        .mount(&mock)
        .await;
    let client = ControlClient::new(&mock.uri(), None).unwrap();
    let e = client.stats().await.unwrap_err();
    match &e {
        ControlError::Status { status, body, url } => {
            assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body, "stats store is on fire");
            assert_eq!(url, &format!("{}/__gauntlet/stats", mock.uri()));
        }
        other => panic!("want a status error, got {other:?}"),
    }
    let shown = e.to_string();
    assert!(
        shown.contains("500") && shown.contains("stats store is on fire"),
        "{shown}"
    );
}

#[tokio::test]
async fn control_client_reports_a_garbled_answer_as_undecodable() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/__gauntlet/faults"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>ok</html>"))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/__gauntlet/stats"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"requests": "many"})),
        )
        .mount(&mock)
        .await;
    let client = ControlClient::new(&mock.uri(), None).unwrap();
    let e = client.add_fault(&error_503()).await.unwrap_err();
    assert!(matches!(e, ControlError::Decode { .. }), "{e:?}");
    let e = client.stats().await.unwrap_err();
    assert!(matches!(e, ControlError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("/__gauntlet/stats"), "{e}");
}

#[test]
fn control_client_refuses_a_url_that_is_not_an_http_base() {
    assert!(ControlClient::new("https://127.0.0.1:8001", None).is_ok());
    for bad in ["127.0.0.1:8001", "ftp://127.0.0.1:8001", "not a url", ""] {
        let e = ControlClient::new(bad, None).err();
        assert!(
            matches!(e, Some(ControlError::InvalidUrl(ref u)) if u == bad),
            "`{bad}`: {e:?}"
        );
    }
}

/// The reference gateway with one upstream `up` at `url`, sending `api_key` to it; clients
/// need the key `gk-client`. `extra` holds more TOML tables.
async fn gateway_to(url: &str, api_key: Option<&str>, extra: &str) -> GatewayHandle {
    let toml = format!(
        "keys = [{{ key = \"gk-client\" }}]\nroutes = [{{ model = \"m\", targets = [\"up\"] }}]\n\
         {extra}\n[[upstreams]]\nname = \"up\"\nurl = \"{url}\"\n"
    );
    let mut config = Config::from_source(&Source::new("clients-gateway.toml", &toml))
        .unwrap_or_else(|e| panic!("{e}\n---\n{toml}"));
    // Set on the compiled config: a test cannot set the environment variable a file names
    // without racing the tests running beside it.
    config.upstreams[0].api_key = api_key.map(gauntlet::config::Secret::new);
    gauntlet::gateway::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A chat request from a client: its own key, a header of its own, and fields the gateway
/// does not know.
async fn client_chat(gw: &GatewayHandle) -> crate::support::ClientReply {
    let body = serde_json::json!({
        "model": "m", "max_tokens": 16, "temperature": 0.3, "user": "u-42",
        "messages": [{"role": "user", "content": "Say hello"}]
    });
    let req = http::Request::post(format!("{}/v1/chat/completions", gw.url()))
        .header("content-type", "application/json")
        .header("authorization", "Bearer gk-client")
        .header("x-client-secret", "do-not-forward")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    TestClient::new().send(req).await
}

#[tokio::test]
async fn gateway_sends_the_upstreams_key_and_the_body_not_the_clients_headers() {
    let up = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-upstream"))
        .and(header("content-type", "application/json"))
        .and(body_json(serde_json::json!({
            "model": "m", "max_tokens": 16, "temperature": 0.3, "user": "u-42",
            "messages": [{"role": "user", "content": "Say hello"}]
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(completion_json("up"), "application/json")
                .insert_header("x-request-id", "req-123")
                .insert_header("x-ratelimit-remaining-requests", "5")
                .insert_header("set-cookie", "upstream=secret"),
        )
        .expect(1)
        .mount(&up)
        .await;
    let gw = gateway_to(&up.uri(), Some("sk-upstream"), "").await;
    let r = client_chat(&gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["system_fingerprint"], "gauntlet-up");
    // The upstream's request id reaches the client; its own limits and cookies do not.
    assert_eq!(r.header("x-request-id"), "req-123");
    assert_ne!(r.header("x-ratelimit-remaining-requests"), "5");
    assert!(r.headers.get("set-cookie").is_none(), "{:?}", r.headers);

    let sent = up.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    let h = &sent[0].headers;
    assert_eq!(h.get_all("authorization").iter().count(), 1, "{h:?}");
    assert!(!h.contains_key("x-client-secret"), "{h:?}");
    assert!(
        h.iter().all(|(_, v)| !v.as_bytes().ends_with(b"gk-client")),
        "the client's key went upstream: {h:?}"
    );
}

#[tokio::test]
async fn gateway_without_an_upstream_key_sends_no_authorization() {
    let up = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(completion_json("up"), "application/json"),
        )
        .expect(1)
        .mount(&up)
        .await;
    let gw = gateway_to(&format!("{}/v1", up.uri()), None, "").await;
    let r = client_chat(&gw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = up.received_requests().await.unwrap();
    assert!(
        !sent[0].headers.contains_key("authorization"),
        "{:?}",
        sent[0].headers
    );
}

#[tokio::test]
async fn gateway_ends_an_attempt_at_the_first_byte_timeout_and_names_it() {
    let up = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(completion_json("up"), "application/json")
                .set_delay(Duration::from_secs(5)),
        )
        .expect(1)
        .mount(&up)
        .await;
    let extra = "[timeouts]\nfirst_byte = \"300ms\"\ntotal = \"20s\"\n[retry]\nmax_attempts = 1\n";
    let gw = gateway_to(&up.uri(), Some("sk-upstream"), extra).await;
    let t0 = Instant::now();
    let r = client_chat(&gw).await;
    let took = t0.elapsed();
    // The only attempt timed out, so no upstream could serve: 503, naming the reason.
    assert_eq!(r.status, 503, "{}", r.text());
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.ends_with("up (first byte timeout after 300ms)"),
        "{message}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        took < Duration::from_secs(4),
        "not the upstream's 5 s: {took:?}"
    );
}
