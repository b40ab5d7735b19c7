//! Upstreams that misbehave after saying 200: bodies that never end, an endless SSE line,
//! gigantic bodies, the wrong content type, invalid JSON, a stream without `[DONE]`. The load
//! engine names each with exactly one error kind; the gateway answers an OpenAI-shaped error
//! naming the upstream before the first byte (failing over when it can) or cuts the stream
//! after it, and counts it. Nobody reads more than its limit, nobody hangs, and both keep
//! serving the next, normal request.

use std::time::{Duration, Instant};

use gauntlet::engine::{Client, ClientOptions};
use gauntlet::gateway::GatewayHandle;
use gauntlet::metrics::ErrorKind;

use crate::support::{
    Act, ClientReply, Exchange, Misbehaving, TestClient, TestUpstream, class, completion_json,
    gateway, misbehaving, stream_body, upstream,
};

const MIB: usize = 1024 * 1024;
/// The engine's per-request deadline in these tests.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(1);
/// Far beyond every deadline configured here: a call slower than this hung.
const BOUND: Duration = Duration::from_secs(10);
/// More than any limit plus what loopback socket buffers can hold: an upstream that wrote
/// less than this before being hung up on was not read to the end.
const READ_BOUND: usize = 40 * MIB;

/// The load engine's client aimed at `url`: class 0 asks for JSON, class 1 for a stream.
fn engine(url: &str) -> Client {
    Client::new(
        &[class("json", 1, "m", false), class("stream", 1, "m", true)],
        &[url.to_string(), url.to_string()],
        ClientOptions {
            timeout: ENGINE_TIMEOUT,
            upstreams: vec!["bad".into()],
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

/// One measured request of the engine: its outcome, and how long the call took.
async fn engine_sends(client: &Client, stream: bool) -> Result<(), ErrorKind> {
    let t0 = Instant::now();
    let s = client.send(usize::from(stream), t0, Duration::ZERO).await;
    assert!(t0.elapsed() < BOUND, "the engine hung: {:?}", t0.elapsed());
    s.result
}

/// A gateway in front of the misbehaving upstream `bad`: route `m` has only it, route `mf`
/// falls back to the well-behaved `good`. Short deadlines; no breaker, so every request
/// reaches `bad` and the counts below are exact.
struct Stage {
    bad: Misbehaving,
    good: TestUpstream,
    gw: GatewayHandle,
    client: TestClient,
}

async fn stage(act: Act) -> Stage {
    let bad = misbehaving(act).await;
    let good = upstream("good").await;
    let toml = format!(
        r#"routes = [
  {{ model = "m", targets = ["bad"] }},
  {{ model = "mf", targets = ["bad"], fallbacks = ["good"] }},
]
[timeouts]
first_byte = "400ms"
total = "1500ms"
[retry]
max_attempts = 2
backoff_base = "1ms"
backoff_max = "2ms"
[breaker]
enabled = false
[[upstreams]]
name = "bad"
url = "{}"
[[upstreams]]
name = "good"
url = "{}"
"#,
        bad.url(),
        good.url()
    );
    let gw = gateway(&toml).await;
    Stage {
        bad,
        good,
        gw,
        client: TestClient::new(),
    }
}

impl Stage {
    async fn chat(&self, model: &str, stream: bool) -> ClientReply {
        let t0 = Instant::now();
        let r = self.client.chat(&self.gw.url(), None, model, stream).await;
        assert!(t0.elapsed() < BOUND, "the gateway hung: {:?}", t0.elapsed());
        r
    }

    /// One sample of the gateway's `/metrics`, 0 when absent.
    async fn metric(&self, sample: &str) -> f64 {
        let text = self.client.get(&self.gw.url(), "/metrics").await.text();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn bad_responses(&self, route: &str) -> f64 {
        self.metric(&format!(
            "gateway_attempts_total{{route=\"{route}\",upstream=\"bad\",outcome=\"bad_response\"}}"
        ))
        .await
    }

    async fn cuts(&self, reason: &str) -> f64 {
        self.metric(&format!(
            "gateway_stream_cuts_total{{route=\"m\",reason=\"{reason}\"}}"
        ))
        .await
    }

    /// The upstream behaves again: the gateway serves both kinds of request from it.
    async fn serves_normally_again(&self) {
        self.bad.act(Act::Normal);
        let r = self.chat("m", false).await;
        assert_eq!(r.status, 200, "{}", shown(&r));
        assert_eq!(r.json()["system_fingerprint"], "gauntlet-bad");
        let r = self.chat("m", true).await;
        assert_eq!(r.status, 200, "{}", shown(&r));
        assert!(!r.cut);
        assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", shown(&r));
    }
}

/// The engine serves both kinds of request from the upstream once it behaves again.
async fn engine_serves_normally_again(client: &Client, bad: &Misbehaving) {
    bad.act(Act::Normal);
    assert_eq!(engine_sends(client, false).await, Ok(()));
    assert_eq!(engine_sends(client, true).await, Ok(()));
}

/// The start of a reply, for failure messages (some of these bodies are megabytes).
fn shown(r: &ClientReply) -> String {
    r.text().chars().take(300).collect()
}

/// The gateway's own error: OpenAI-shaped, naming the upstream and what it did.
fn assert_gateway_error(r: &ClientReply, status: u16, says: &str) {
    assert_eq!(r.status, status, "{}", shown(r));
    let e = &r.json()["error"];
    assert_eq!(e["type"], "server_error", "{}", shown(r));
    let message = e["message"].as_str().unwrap_or_default();
    assert!(message.contains("bad"), "names the upstream: {message}");
    assert!(message.contains(says), "says `{says}`: {message}");
    assert_eq!(r.header("x-gateway-upstream"), "none");
}

/// The upstream was hung up on before it had written everything, after at most `most` bytes.
fn hung_up_early(x: &Exchange, most: usize) {
    assert!(!x.complete, "the peer read it all: {x:?}");
    assert!(
        x.written < most,
        "read {} bytes, more than the limit allows",
        x.written
    );
}

fn json_trickle() -> Act {
    Act::Trickle {
        content_type: "application/json",
        piece: " ",
        every: Duration::from_millis(50),
    }
}

fn sse_trickle() -> Act {
    Act::Trickle {
        content_type: "text/event-stream",
        piece: ": still here\n\n",
        every: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_is_a_timeout_and_the_connection_is_let_go() {
    let bad = misbehaving(json_trickle()).await;
    let client = engine(&bad.url());
    assert_eq!(engine_sends(&client, false).await, Err(ErrorKind::Timeout));
    bad.act(sse_trickle());
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Timeout));
    bad.act(Act::Stall {
        content_type: "text/event-stream",
    });
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Timeout));
    for x in bad.ended(3, BOUND).await {
        assert!(!x.complete, "the engine hung up on the endless body: {x:?}");
    }
    engine_serves_normally_again(&client, &bad).await;

    let s = stage(json_trickle()).await;
    // Not streamed: the body is read against the total deadline, then a 504.
    let r = s.chat("m", false).await;
    assert_gateway_error(&r, 504, "did not answer within 1500ms");
    // Streamed, silent after its head: no first chunk in time on either attempt, and nothing
    // reached the client, so it gets an error (503 when the attempts ran out first, 504 when
    // the deadline did), never a 200.
    s.bad.act(Act::Stall {
        content_type: "text/event-stream",
    });
    let r = s.chat("m", true).await;
    assert!(matches!(r.status, 503 | 504), "{} {}", r.status, shown(&r));
    assert_gateway_error(&r, r.status, "first byte timeout");
    // Streamed and trickling: the first bytes went out, so the deadline cuts the stream.
    s.bad.act(sse_trickle());
    let r = s.chat("m", true).await;
    assert_eq!(r.status, 200);
    assert!(r.cut, "the client must see the stream cut: {}", shown(&r));
    assert!(r.text().starts_with(": still here"), "{}", shown(&r));
    assert_eq!(s.cuts("deadline").await, 1.0);
    for x in s.bad.ended(4, BOUND).await {
        assert!(
            !x.complete,
            "the gateway hung up on the endless body: {x:?}"
        );
    }
    s.serves_normally_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_sse_line_is_refused_at_the_line_limit() {
    let endless = Act::LongLine { len: 256 * MIB };
    let bad = misbehaving(endless.clone()).await;
    let client = engine(&bad.url());
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Malformed));
    hung_up_early(&bad.ended(1, BOUND).await[0], READ_BOUND);
    engine_serves_normally_again(&client, &bad).await;

    let s = stage(endless).await;
    let r = s.chat("m", true).await;
    assert_eq!(r.status, 200, "the first bytes were already relayed");
    assert!(r.cut, "the client must see the stream cut");
    assert!(r.body.len() <= 2 * MIB, "relayed {} bytes", r.body.len());
    assert!(r.text().starts_with("data: xxxx"));
    assert_eq!(s.cuts("line_too_long").await, 1.0);
    hung_up_early(&s.bad.ended(1, BOUND).await[0], READ_BOUND);
    s.serves_normally_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigantic_body_is_refused_at_the_limit_not_buffered() {
    let huge = Act::Huge { len: 64 * MIB };
    let bad = misbehaving(huge.clone()).await;
    let client = engine(&bad.url());
    assert_eq!(
        engine_sends(&client, false).await,
        Err(ErrorKind::Malformed)
    );
    hung_up_early(&bad.ended(1, BOUND).await[0], READ_BOUND);
    // One gigantic event in a stream: bigger than any event may be.
    bad.act(Act::LongLine { len: 8 * MIB });
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Malformed));
    assert!(!bad.ended(2, BOUND).await[1].complete);
    engine_serves_normally_again(&client, &bad).await;

    let s = stage(huge).await;
    let r = s.chat("m", false).await;
    assert_gateway_error(&r, 503, "larger than the gateway's limit");
    hung_up_early(&s.bad.ended(1, BOUND).await[0], READ_BOUND);
    // With somewhere else to go, the client never notices.
    let r = s.chat("mf", false).await;
    assert_eq!(r.status, 200, "{}", shown(&r));
    assert_eq!(r.header("x-gateway-upstream"), "good");
    assert_eq!(r.header("x-gateway-attempts"), "2");
    assert_eq!(s.good.hits(), 1);
    hung_up_early(&s.bad.ended(2, BOUND).await[1], READ_BOUND);
    assert_eq!(
        s.bad_responses("m").await + s.bad_responses("mf").await,
        2.0
    );
    s.bad.act(Act::LongLine { len: 8 * MIB });
    let r = s.chat("m", true).await;
    assert!(r.cut && r.body.len() <= 2 * MIB, "{} bytes", r.body.len());
    assert_eq!(s.cuts("line_too_long").await, 1.0);
    s.serves_normally_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_type_is_malformed_never_a_success() {
    let html = Act::Fixed {
        content_type: "text/html; charset=utf-8",
        body: "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
    };
    // A provider that ignores `stream: true` and answers a whole completion.
    let json_for_stream = Act::Fixed {
        content_type: "application/json",
        body: completion_json("bad"),
    };
    let bad = misbehaving(html.clone()).await;
    let client = engine(&bad.url());
    assert_eq!(
        engine_sends(&client, false).await,
        Err(ErrorKind::Malformed)
    );
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Malformed));
    bad.act(json_for_stream.clone());
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Malformed));
    engine_serves_normally_again(&client, &bad).await;

    let s = stage(html).await;
    for stream in [false, true] {
        let r = s.chat("m", stream).await;
        assert_gateway_error(&r, 503, "content type `text/html; charset=utf-8`");
        let r = s.chat("mf", stream).await;
        assert_eq!(r.status, 200, "{}", shown(&r));
        assert_eq!(r.header("x-gateway-upstream"), "good");
        assert!(!r.text().contains("<html>"));
    }
    s.bad.act(json_for_stream);
    let r = s.chat("m", true).await;
    assert_gateway_error(&r, 503, "where text/event-stream was expected");
    assert_eq!(s.bad_responses("m").await, 3.0);
    assert_eq!(s.bad_responses("mf").await, 2.0);
    assert_eq!(s.good.hits(), 2);
    s.serves_normally_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_in_a_200_is_malformed_never_a_success() {
    let broken = Act::Fixed {
        content_type: "application/json",
        body: r#"{"id":"chatcmpl-1","choices": [oops"#.into(),
    };
    let not_a_completion = Act::Fixed {
        content_type: "application/json",
        body: r#"{"status":"ok"}"#.into(),
    };
    let broken_event = Act::Fixed {
        content_type: "text/event-stream",
        body: "data: {\"choices\": [oops\n\ndata: [DONE]\n\n".into(),
    };
    let bad = misbehaving(broken.clone()).await;
    let client = engine(&bad.url());
    assert_eq!(
        engine_sends(&client, false).await,
        Err(ErrorKind::Malformed)
    );
    bad.act(not_a_completion.clone());
    assert_eq!(
        engine_sends(&client, false).await,
        Err(ErrorKind::Malformed)
    );
    bad.act(broken_event.clone());
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Malformed));
    engine_serves_normally_again(&client, &bad).await;

    let s = stage(broken).await;
    let r = s.chat("m", false).await;
    assert_gateway_error(&r, 503, "not a JSON chat completion");
    let r = s.chat("mf", false).await;
    assert_eq!(r.status, 200, "{}", shown(&r));
    assert_eq!(r.json()["system_fingerprint"], "gauntlet-good");
    s.bad.act(not_a_completion);
    assert_gateway_error(&s.chat("m", false).await, 503, "missing field `choices`");
    assert_eq!(s.bad_responses("m").await, 2.0);
    // Stream events are relayed, not parsed: the client sees the broken event as sent and
    // names it itself.
    s.bad.act(broken_event);
    let through = engine(&s.gw.url());
    assert_eq!(
        engine_sends(&through, true).await,
        Err(ErrorKind::Malformed)
    );
    s.serves_normally_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_without_done_is_truncated_and_cut() {
    let unfinished = Act::Fixed {
        content_type: "text/event-stream",
        body: stream_body("bad", 3, false, false),
    };
    let bad = misbehaving(unfinished.clone()).await;
    let client = engine(&bad.url());
    assert_eq!(engine_sends(&client, true).await, Err(ErrorKind::Truncated));
    // A finish reason without `[DONE]` still ends the answer (the DESIGN's success rule).
    bad.act(Act::Fixed {
        content_type: "text/event-stream",
        body: stream_body("bad", 3, true, false),
    });
    assert_eq!(engine_sends(&client, true).await, Ok(()));
    engine_serves_normally_again(&client, &bad).await;

    let s = stage(unfinished).await;
    let r = s.chat("m", true).await;
    assert_eq!(r.status, 200);
    assert!(r.cut, "a stream without [DONE] must not look complete");
    assert!(r.text().contains("gauntlet-bad"), "{}", shown(&r));
    assert_eq!(s.cuts("unfinished").await, 1.0);
    let through = engine(&s.gw.url());
    assert_eq!(
        engine_sends(&through, true).await,
        Err(ErrorKind::Truncated)
    );
    assert_eq!(s.cuts("unfinished").await, 2.0);
    s.serves_normally_again().await;
    assert_eq!(
        s.cuts("unfinished").await,
        2.0,
        "a complete stream is not cut"
    );
}

/// The engine's default body limit is 16 MiB: a long but honest answer of 15 MiB is read
/// and counted a success, one of 17 MiB is `malformed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_an_answer_of_15_mib_is_read_and_one_of_17_mib_is_malformed() {
    let answer = |len: usize| {
        let open = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""#;
        let close = r#""},"finish_reason":"stop"}]}"#;
        format!(
            "{open}{}{close}",
            "x".repeat(len - open.len() - close.len())
        )
    };
    let (fits, too_big) = (answer(15 * MIB), answer(17 * MIB));
    let server = crate::support::chat_server(move |r| {
        let req: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let body = if req["model"] == "fits" {
            &fits
        } else {
            &too_big
        };
        crate::support::reply(200, &[], body.clone())
    })
    .await;
    let client = Client::new(
        &[
            class("fits", 1, "fits", false),
            class("big", 1, "big", false),
        ],
        &[server.url(), server.url()],
        ClientOptions {
            timeout: BOUND,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let s = client.send(0, Instant::now(), Duration::ZERO).await;
    assert_eq!(
        s.result,
        Ok(()),
        "a 15 MiB answer is within the default limit"
    );
    let s = client.send(1, Instant::now(), Duration::ZERO).await;
    assert_eq!(s.result, Err(ErrorKind::Malformed), "17 MiB is past it");
}

/// An error answer is read only so far (64 KiB, enough to keep the connection): a 500 whose
/// body never ends is a `status_5xx` at once, not a timeout a whole deadline later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_whose_body_never_ends_is_a_5xx_not_a_timeout() {
    use tokio::io::AsyncWriteExt;
    let server = crate::support::serve_raw(|mut tcp| async move {
        if crate::support::read_request(&mut tcp).await.is_none() {
            return;
        }
        let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if tcp.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // 8 KiB every 5 ms until the peer hangs up (or the test's own bound).
        let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
        let t0 = Instant::now();
        while t0.elapsed() < BOUND && tcp.write_all(chunk.as_bytes()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let client = Client::new(
        &[class("json", 1, "m", false)],
        &[server.url()],
        ClientOptions {
            timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let s = client.send(0, t0, Duration::ZERO).await;
    assert_eq!(s.result, Err(ErrorKind::Status5xx), "{s:?}");
    assert!(
        s.latency < Duration::from_secs(5),
        "the endless error body was not read to the deadline: {:?}",
        s.latency
    );
}

/// An answer that arrives in pieces is read whole: a completion sent as three chunks, 20 ms
/// apart, is one success with its usage, not its last piece parsed alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_in_three_pieces_is_read_whole() {
    use tokio::io::AsyncWriteExt;
    let server = crate::support::serve_raw(|mut tcp| async move {
        if crate::support::read_request(&mut tcp).await.is_none() {
            return;
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        let body = completion_json("alpha");
        let third = body.len() / 3;
        let pieces = [&body[..third], &body[third..2 * third], &body[2 * third..]];
        let _ = tcp.write_all(head.as_bytes()).await;
        for piece in pieces {
            let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
            let _ = tcp.write_all(chunk.as_bytes()).await;
            let _ = tcp.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tcp.write_all(b"0\r\n\r\n").await;
    })
    .await;
    let client = engine(&server.url());
    let s = client.send(0, Instant::now(), Duration::ZERO).await;
    assert_eq!(s.result, Ok(()), "{s:?}");
    assert_eq!((s.prompt_tokens, s.completion_tokens), (7, 2), "{s:?}");
}

/// The body limit holds for streams too, however small their events: 2,000 ordinary deltas
/// (about 400 KB) against a 64 KiB limit are `malformed`, and the same stream under a 1 MiB
/// limit is a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_the_body_limit_is_malformed_whatever_its_events() {
    let server = crate::support::chat_server(|_| {
        crate::support::reply(
            200,
            &[("content-type", "text/event-stream")],
            stream_body("alpha", 2_000, true, true),
        )
    })
    .await;
    for (limit, expected) in [(64 * 1024, Err(ErrorKind::Malformed)), (MIB, Ok(()))] {
        let client = Client::new(
            &[class("stream", 1, "m", true)],
            &[server.url()],
            ClientOptions {
                timeout: BOUND,
                max_body_bytes: limit,
                ..ClientOptions::default()
            },
        )
        .unwrap();
        let s = client.send(0, Instant::now(), Duration::ZERO).await;
        assert_eq!(s.result, expected, "limit {limit}");
    }
}

/// A stream whose last event, `[DONE]`, lacks the closing blank line still ended: the
/// connection's end completes the event, and the answer is a success, not `truncated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_without_its_blank_line_still_ends_the_stream() {
    let server = crate::support::chat_server(|_| {
        let body = stream_body("alpha", 3, false, true);
        crate::support::reply(
            200,
            &[("content-type", "text/event-stream")],
            body.trim_end().to_string(),
        )
    })
    .await;
    let client = engine(&server.url());
    let s = client.send(1, Instant::now(), Duration::ZERO).await;
    assert_eq!(s.result, Ok(()), "{s:?}");
    assert_eq!(s.completion_tokens, 3);
}
