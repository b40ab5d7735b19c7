//! What a request class sends: dataset requests as the file has them (filled with the
//! class's keys), seeded order, synthetic prompts of the asked length, and conversations
//! whose turns resend a growing history, all checked on what a real server received.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet::engine::{self, Client, ClientOptions, RunOptions};
use gauntlet::metrics::{Sample, TokenSource};
use gauntlet::scenario::{RequestClass, Scenario};
use gauntlet::tokenizer::{Encoding, MESSAGE_OVERHEAD, Tokenizer};
use serde_json::Value;
use tokio::sync::watch;

use crate::support::{self, TestServer, reply, stream_body};

/// A JSON completion without `usage`, so the engine must count prompt tokens itself.
const NO_USAGE: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"noted"},"finish_reason":"stop"}]}"#;

/// A server that records every chat request's body and headers and answers `stream`s with
/// three deltas ("t0 t1 t2 ") and JSON requests with `NO_USAGE`.
async fn recording() -> (TestServer, Arc<Mutex<Vec<(Value, http::HeaderMap)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = support::chat_server(move |r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let stream = body["stream"].as_bool().unwrap_or(false);
        log.lock().unwrap().push((body, r.headers.clone()));
        if stream {
            reply(
                200,
                &[("content-type", "text/event-stream")],
                stream_body("alpha", 3, true, true),
            )
        } else {
            reply(200, &[("content-type", "application/json")], NO_USAGE)
        }
    })
    .await;
    (server, seen)
}

/// The scenario `classes` (TOML `[[requests]]` tables) compile to, with `files` written
/// beside it.
fn compile(files: &[(&str, &str)], classes: &str) -> (tempfile::TempDir, Scenario) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let toml = format!(
        "name = \"w\"\n[target]\nurl = \"http://127.0.0.1:9\"\n[load]\nduration = \"10s\"\nrate = 1\n{classes}"
    );
    let sc = gauntlet::scenario::load_str(dir.path().join("w.toml"), toml)
        .unwrap_or_else(|e| panic!("{e}"));
    (dir, sc)
}

/// A scenario of one class, "chat", whose conversations run `turns` turns of "hi" 10 ms apart.
fn session_class(turns: u32) -> (tempfile::TempDir, Scenario) {
    compile(
        &[],
        &format!(
            "[[requests]]\nname = \"chat\"\nmodel = \"m\"\nprompt = \"hi\"\n\
             [requests.session]\nturns = {turns}\nthink_time = \"10ms\"\n"
        ),
    )
}

fn client(url: &str, classes: &[RequestClass], seed: u64) -> Client {
    Client::new(
        classes,
        &vec![url.to_string(); classes.len()],
        ClientOptions {
            seed,
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

fn user_text(body: &Value) -> String {
    let messages = body["messages"].as_array().unwrap();
    let last = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
    last["content"].as_str().unwrap().to_string()
}

const DATASET: &str = concat!(
    r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"q0"}]}"#,
    "\n",
    r#"{"messages":[{"role":"user","content":"q1"}],"max_tokens":7}"#,
    "\n",
    r#"{"messages":[{"role":"user","content":"q2"}],"tools":[{"type":"function","function":{"name":"own_tool"}}]}"#,
    "\n\n",
    r#"{"messages":[{"role":"user","content":"q3 a somewhat longer question about token counting"}]}"#,
    "\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_class_sends_the_datasets_requests_filled_with_the_class_keys() {
    let (_dir, sc) = compile(
        &[("d.jsonl", DATASET)],
        r#"[[requests]]
name = "ds"
model = "m1"
dataset = "d.jsonl"
order = "sequential"
max_tokens = 33
tools = [{ type = "function", function = { name = "class_tool" } }]
extra_body = { temperature = 0.5, metadata = { team = "x" } }
"#,
    );
    let (server, seen) = recording().await;
    let c = client(&server.url(), &sc.requests, 1);
    let t0 = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..8 {
        samples.push(c.send(0, t0, t0.elapsed()).await);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8, "the server got every request");
    let users: Vec<String> = seen.iter().map(|(b, _)| user_text(b)).collect();
    let q3 = "q3 a somewhat longer question about token counting";
    assert_eq!(
        users,
        ["q0", "q1", "q2", q3, "q0", "q1", "q2", q3],
        "file order, wrapping, the blank line skipped"
    );
    for (b, _) in seen.iter() {
        assert_eq!(b["model"], "m1");
        assert_eq!(b["temperature"], 0.5);
        assert_eq!(b["metadata"]["team"], "x");
        assert!(b.get("stream").is_none(), "{b}");
    }
    // The line's own keys win over the class's.
    assert_eq!(seen[0].0["max_tokens"], 33);
    assert_eq!(seen[1].0["max_tokens"], 7);
    assert_eq!(seen[2].0["tools"][0]["function"]["name"], "own_tool");
    assert_eq!(seen[3].0["tools"][0]["function"]["name"], "class_tool");
    assert_eq!(seen[0].0["messages"][0]["role"], "system");
    // No usage in the answers: prompt tokens are the tokenizer's count of what was sent.
    let tok = Tokenizer::new(Encoding::O200k).unwrap();
    let expect = [
        tok.count("be brief") + tok.count("q0") + 2 * MESSAGE_OVERHEAD,
        tok.count("q1") + MESSAGE_OVERHEAD,
        tok.count("q2") + MESSAGE_OVERHEAD,
        tok.count(q3) + MESSAGE_OVERHEAD,
    ];
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(s.result, Ok(()), "request {i}");
        assert_eq!(s.prompt_tokens, expect[i % 4], "request {i}");
        assert_eq!(s.prompt_tokens_from, TokenSource::Tokenizer);
        assert_eq!(s.turn, None);
    }
    assert!(
        expect[3] > 10,
        "a real BPE count, not one per word: {}",
        expect[3]
    );
}

/// A class with one fixed prompt is built once and sent as is: what the scenario adds to the
/// body (tools, `extra_body`) must be in those bytes, or a gateway is tested on requests the
/// application never sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_prompt_class_sends_its_tools_and_extra_body_on_every_request() {
    let (_dir, sc) = compile(
        &[],
        r#"[[requests]]
name = "fixed"
model = "m1"
prompt = "Summarise this ticket"
tools = [{ type = "function", function = { name = "class_tool" } }]
extra_body = { temperature = 0.25, metadata = { team = "y" } }
"#,
    );
    assert!(sc.requests[0].workload.is_fixed(), "the one-prompt path");
    let (server, seen) = recording().await;
    let c = client(&server.url(), &sc.requests, 1);
    let t0 = Instant::now();
    for i in 0..3 {
        let s = c.send(0, t0, t0.elapsed()).await;
        assert_eq!(s.result, Ok(()), "request {i}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "the server got every request");
    for (b, _) in seen.iter() {
        assert_eq!(b["model"], "m1");
        assert_eq!(user_text(b), "Summarise this ticket");
        assert_eq!(b["tools"][0]["function"]["name"], "class_tool", "{b}");
        assert_eq!(b["temperature"], 0.25, "{b}");
        assert_eq!(b["metadata"]["team"], "y", "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
    let lines: String = (0..50).map(|i| format!("prompt number {i}\n")).collect();
    let (_dir, sc) = compile(
        &[("p.txt", &lines)],
        "[[requests]]\nname = \"t\"\nmodel = \"m\"\ndataset = \"p.txt\"\n",
    );
    let (server, seen) = recording().await;
    let mut runs = Vec::new();
    for seed in [5, 5, 6] {
        let c = client(&server.url(), &sc.requests, seed);
        let t0 = Instant::now();
        for _ in 0..20 {
            assert_eq!(c.send(0, t0, t0.elapsed()).await.result, Ok(()));
        }
        let mut seen = seen.lock().unwrap();
        runs.push(
            seen.drain(..)
                .map(|(b, _)| user_text(&b))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        runs[0], runs[1],
        "same seed, same requests in the same order"
    );
    assert_ne!(runs[0], runs[2], "another seed draws differently");
    let distinct: std::collections::HashSet<_> = runs[0].iter().collect();
    assert!(
        distinct.len() >= 10,
        "random draws spread over the file: {distinct:?}"
    );
    assert!(runs[0].iter().all(|u| u.starts_with("prompt number ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_prompts_have_about_the_asked_token_count() {
    let (_dir, sc) = compile(
        &[],
        r#"[[requests]]
name = "syn"
model = "m"
prompt_tokens = 1500
max_tokens = { dist = "uniform", min = 10, max = 20 }
"#,
    );
    let (server, seen) = recording().await;
    let c = client(&server.url(), &sc.requests, 3);
    let t0 = Instant::now();
    for _ in 0..4 {
        let s = c.send(0, t0, t0.elapsed()).await;
        assert_eq!(s.result, Ok(()));
        assert!(
            (1450..=1560).contains(&s.prompt_tokens),
            "{}",
            s.prompt_tokens
        );
    }
    let tok = Tokenizer::new(Encoding::O200k).unwrap();
    let seen = seen.lock().unwrap();
    let texts: Vec<String> = seen.iter().map(|(b, _)| user_text(b)).collect();
    for (t, (b, _)) in texts.iter().zip(seen.iter()) {
        let n = tok.count(t) as f64;
        assert!((n - 1500.0).abs() <= 45.0, "{n} tokens");
        let budget = b["max_tokens"].as_u64().unwrap();
        assert!((10..=20).contains(&budget), "{budget}");
    }
    assert_ne!(texts[0], texts[1], "each request gets its own text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_turn_session_sends_a_growing_history_with_its_id() {
    let (_dir, sc) = compile(
        &[],
        r#"[[requests]]
name = "chat"
model = "m"
messages = [{ role = "system", content = "you are terse" }, { role = "user", content = "hello" }]
stream = true
[requests.session]
turns = 3
think_time = "100ms"
id_header = "x-session-id"
"#,
    );
    let (server, seen) = recording().await;
    let c = client(&server.url(), &sc.requests, 9);
    assert!(c.is_session(0));
    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut emit = |s| samples.push(s);
    c.converse(
        None,
        gauntlet::engine::SessionStart {
            class: 0,
            draw: None,
        },
        t0,
        Duration::ZERO,
        Duration::from_secs(60),
        &mut emit,
    )
    .await;
    assert_eq!(samples.len(), 3);
    let turns: Vec<_> = samples.iter().map(|s| s.turn).collect();
    assert_eq!(turns, [Some(1), Some(2), Some(3)]);
    for pair in samples.windows(2) {
        // A turn is intended at the previous answer's end plus the think time.
        let end = pair[0].intended + pair[0].latency;
        let gap = pair[1].intended.saturating_sub(end);
        assert!(gap >= Duration::from_millis(99), "{gap:?}");
        assert!(gap < Duration::from_millis(150), "{gap:?}");
        assert!(pair[1].prompt_tokens > pair[0].prompt_tokens);
    }
    // And the server saw it so: each next turn arrived a think time after the last, not at
    // once with only its intended time saying otherwise.
    for pair in server.arrivals().windows(2) {
        let apart = pair[1] - pair[0];
        assert!(apart >= Duration::from_millis(99), "{apart:?}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let lens: Vec<usize> = seen
        .iter()
        .map(|(b, _)| b["messages"].as_array().unwrap().len())
        .collect();
    assert_eq!(
        lens,
        [2, 4, 6],
        "each turn adds the answer and the next question"
    );
    let last = seen[2].0["messages"].as_array().unwrap();
    let roles: Vec<&str> = last.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user", "assistant", "user"]
    );
    // The streamed answers, reassembled, are what the next turns resend.
    assert_eq!(last[2]["content"], "t0 t1 t2 ");
    assert_eq!(last[4]["content"], "t0 t1 t2 ");
    // Each turn's history begins with the previous turn's whole request.
    assert_eq!(seen[1].0["messages"].as_array().unwrap()[..2], last[..2]);
    let ids: Vec<String> = seen
        .iter()
        .map(|(_, h)| h["x-session-id"].to_str().unwrap().to_string())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0] && !i.is_empty()), "{ids:?}");
    assert!(seen.iter().all(|(b, _)| b["user"] == ids[0].as_str()));
}

/// Open-model conversations share idle connections as single requests do: every turn after
/// the first rides the conversation's connection, and the next conversation takes the one
/// the last left, so a run of conversations is not a run of handshakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_reuse_their_connection_and_leave_it_for_the_next() {
    let (_dir, sc) = session_class(2);
    let (server, _seen) = recording().await;
    let c = client(&server.url(), &sc.requests, 9);
    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    for draw in 0..2 {
        let mut emit = |s| samples.push(s);
        let start = gauntlet::engine::SessionStart {
            class: 0,
            draw: Some(draw),
        };
        c.converse(
            None,
            start,
            t0,
            t0.elapsed(),
            Duration::from_secs(60),
            &mut emit,
        )
        .await;
    }
    assert_eq!(samples.len(), 4, "two conversations of two turns");
    assert!(samples.iter().all(|s| s.result.is_ok()), "{samples:?}");
    let opened: Vec<bool> = samples.iter().map(|s| s.opened.is_some()).collect();
    assert_eq!(
        opened,
        [true, false, false, false],
        "one connection for both conversations"
    );
}

/// A turn that fails ends its conversation: there is no answer to continue from, and a
/// next turn sent anyway would be a request no real user sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_turn_ends_the_conversation() {
    let (_dir, sc) = session_class(3);
    let server = support::chat_server(|_| {
        reply(
            500,
            &[("content-type", "application/json")],
            r#"{"error":{"message":"down"}}"#,
        )
    })
    .await;
    let c = client(&server.url(), &sc.requests, 9);
    let t0 = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut emit = |s| samples.push(s);
    let start = gauntlet::engine::SessionStart {
        class: 0,
        draw: None,
    };
    c.converse(
        None,
        start,
        t0,
        Duration::ZERO,
        Duration::from_secs(60),
        &mut emit,
    )
    .await;
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert!(samples[0].result.is_err());
    assert_eq!(samples[0].turn, Some(1));
    assert_eq!(server.received(), 1, "no second turn was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_arrivals_start_sessions_and_every_turn_is_recorded() {
    let (_dir, mut sc) = session_class(2);
    let (server, seen) = recording().await;
    sc.target = gauntlet::scenario::Target::Url(server.url());
    sc.load = support::open_load(20.0, Duration::from_secs(2));
    let (_tx, rx) = watch::channel(false);
    let options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let run = engine::run_scenario(&sc, &options, rx).await.unwrap();
    let s = &run.summary;
    // 40 sessions of two turns; turns of the last arrivals may fall past the end.
    assert!(
        (70..=80).contains(&s.overall.requests),
        "{}",
        s.overall.requests
    );
    assert_eq!(s.overall.successes, s.overall.requests);
    let seen = seen.lock().unwrap();
    let second_turns = seen
        .iter()
        .filter(|(b, _)| b["messages"].as_array().unwrap().len() == 3)
        .count();
    assert!(second_turns >= 30, "{second_turns}");
}

/// What the closed users of `sc` send as `shard` (None: the whole run), each user answered
/// only after the stage ended so it sends exactly one conversation: (session id, prompt).
async fn closed_sends(
    sc: &Scenario,
    shard: Option<gauntlet::cluster::ShardId>,
) -> Vec<(String, String)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = support::chat_server(move |r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let id = r.headers["x-session-id"].to_str().unwrap().to_string();
        log.lock().unwrap().push((id, user_text(&body)));
        support::after(
            Duration::from_millis(1500),
            reply(200, &[("content-type", "application/json")], NO_USAGE),
        )
    })
    .await;
    let mut sc = sc.clone();
    sc.target = gauntlet::scenario::Target::Url(server.url());
    let (_tx, rx) = watch::channel(false);
    let options = RunOptions {
        quiet: true,
        shard,
        ..RunOptions::default()
    };
    engine::run_scenario(&sc, &options, rx).await.unwrap();
    let mut sent = seen.lock().unwrap().clone();
    sent.sort();
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_users_send_the_same_ids_in_any_shard_and_no_two_shards_share_one() {
    let (_dir, mut sc) = compile(
        &[],
        r#"[[requests]]
name = "conv"
model = "m"
prompt_tokens = 30
[requests.session]
turns = 1
id_header = "x-session-id"
"#,
    );
    let users = 6;
    sc.load = support::closed_load(users, Duration::from_secs(1), Duration::ZERO);
    let shard = |i| Some(gauntlet::cluster::ShardId::new(i, 2, "test").unwrap());
    let (whole, first, second) = tokio::join!(
        closed_sends(&sc, None),
        closed_sends(&sc, shard(0)),
        closed_sends(&sc, shard(1)),
    );
    assert_eq!(whole.len(), users, "one conversation per user: {whole:?}");
    let ids: std::collections::BTreeSet<_> = whole.iter().map(|(id, _)| id).collect();
    let texts: std::collections::BTreeSet<_> = whole.iter().map(|(_, t)| t).collect();
    assert_eq!((ids.len(), texts.len()), (users, users), "{whole:?}");
    for (a, b) in &first {
        assert!(
            !second.iter().any(|(c, d)| a == c || b == d),
            "both shards sent id {a} or its prompt"
        );
    }
    // Each user sends in its shard what it sends in the whole run.
    let mut union: Vec<_> = first.into_iter().chain(second).collect();
    union.sort();
    assert_eq!(union, whole);
}

/// Anthropic's answer to a non-streamed `messages` request.
const ANTHROPIC_REPLY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"noted"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":1}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_line_for_a_messages_class_goes_out_in_anthropics_shape() {
    // Dataset lines are chat-shaped; a `messages` class must translate each one the way
    // Anthropic's API takes it (the system prompt lifted out of `messages`), or every
    // request of the class measures a 400 instead of the provider.
    let (_dir, sc) = compile(
        &[("d.jsonl", DATASET)],
        r#"[[requests]]
name = "claude"
model = "m"
api = "messages"
dataset = "d.jsonl"
order = "sequential"
max_tokens = 33
"#,
    );
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    let server = support::Routes::new()
        .route("/v1/messages", move |r| {
            log.lock()
                .unwrap()
                .push(serde_json::from_slice(&r.body).unwrap_or_default());
            reply(
                200,
                &[("content-type", "application/json")],
                ANTHROPIC_REPLY,
            )
        })
        .serve()
        .await;
    let c = client(&server.url(), &sc.requests, 1);
    let t0 = Instant::now();
    let first = c.send(0, t0, t0.elapsed()).await;
    let second = c.send(0, t0, t0.elapsed()).await;
    assert_eq!(first.result, Ok(()), "{first:?}");
    assert_eq!(second.result, Ok(()), "{second:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "both requests reached the messages endpoint");
    let body = &seen[0];
    assert_eq!(body["system"], "be brief", "{body}");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "only the user turn stays: {body}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(body["max_tokens"], 33);
    assert_eq!(seen[1]["max_tokens"], 7, "the line's own key wins");
    assert!(seen[1].get("system").is_none(), "{}", seen[1]);
}
