//! Arrivals from a recorded trace: a replay sends each line at its recorded time (over the
//! speed), as the class it names, with its recorded output length as `max_tokens` and a
//! synthetic prompt of its recorded prompt length; and a
//! gamma scenario loads with its burstiness.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet::engine::{self, RunOptions};
use gauntlet::openai::Message;
use gauntlet::scenario::{Arrival, StageLoad};
use gauntlet::tokenizer::{Encoding, Tokenizer};
use serde_json::Value;
use tokio::sync::watch;

use crate::support::{self, TestServer, completion_json, reply};

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// Six sends over 2 s, by class name and by model, one without a recorded output length.
/// Timestamps are epoch seconds, as a recorder writes them: the replay starts at the first.
const TRACE: &str = r#"{"timestamp": 1732950000.0, "class": "short", "prompt_tokens": 40, "output_tokens": 5}
{"timestamp": 1732950000.4, "model": "m-long", "prompt_tokens": 900, "output_tokens": 6}
{"timestamp": 1732950000.8, "class": "short", "output_tokens": 7}

{"timestamp": 1732950001.2, "model": "m-long", "prompt_tokens": 1200}
{"timestamp": 1732950001.6, "class": "long", "output_tokens": 9}
{"timestamp": 1732950002.0, "model": "m-short", "prompt_tokens": 10, "output_tokens": 10}
"#;

/// The (model, max_tokens) each line should reach the server with.
const EXPECTED: [(&str, u64); 6] = [
    ("m-short", 5),
    ("m-long", 6),
    ("m-short", 7),
    ("m-long", 16),
    ("m-long", 9),
    ("m-short", 10),
];

fn scenario_text(url: &str, speed: f64) -> String {
    format!(
        r#"
[target]
url = "{url}"
[load]
trace = "traces/peak.jsonl"
speed = {speed}
[[requests]]
name = "short"
model = "m-short"
prompt = "hi"
max_tokens = 16
[[requests]]
name = "long"
model = "m-long"
prompt = "summarise this"
max_tokens = 16
"#
    )
}

/// A server that answers at once and keeps every request body, by arrival index.
async fn recording_server() -> (TestServer, Arc<Mutex<Vec<(usize, Value)>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let server = support::chat_server(move |r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        seen.lock().unwrap().push((r.index, body));
        reply(200, &[], completion_json("alpha"))
    })
    .await;
    (server, bodies)
}

/// Replays the trace at `speed`; the server's arrival times and the bodies, in arrival order.
async fn replay(speed: f64) -> (Vec<Instant>, Vec<Value>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::write(dir.path().join("traces/peak.jsonl"), TRACE).unwrap();
    let (server, bodies) = recording_server().await;
    let path = dir.path().join("replay.toml");
    std::fs::write(&path, scenario_text(&server.url(), speed)).unwrap();
    let sc = gauntlet::scenario::load(&path).unwrap();
    let (_tx, rx) = watch::channel(false);
    let run = engine::run_scenario(&sc, &quiet(), rx).await.unwrap();
    assert_eq!(run.summary.overall.requests, 6);
    assert_eq!(run.summary.overall.successes, 6);
    let total = sc.load.total_duration();
    let arrivals = server.arrivals();
    let mut bodies = std::mem::take(&mut *bodies.lock().unwrap());
    bodies.sort_by_key(|(i, _)| *i);
    server.join().await;
    (
        arrivals,
        bodies.into_iter().map(|(_, b)| b).collect(),
        total,
    )
}

fn check_bodies(bodies: &[Value]) {
    let got: Vec<(&str, u64)> = bodies
        .iter()
        .map(|b| {
            (
                b["model"].as_str().unwrap(),
                b["max_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, EXPECTED);
    // A line without a prompt length sends its class's own prompt.
    assert_eq!(bodies[2]["messages"][0]["content"], "hi");
    assert_eq!(bodies[4]["messages"][0]["content"], "summarise this");
    // A line with one sends a prompt of that many tokens, as a provider's tokenizer counts it.
    let tokenizer = Tokenizer::new(Encoding::O200k).unwrap();
    for (line, recorded) in [(0, 40), (1, 900), (3, 1200), (5, 10)] {
        let messages: Vec<Message> =
            serde_json::from_value(bodies[line]["messages"].clone()).unwrap();
        assert_eq!(
            tokenizer.count_messages(&messages),
            recorded,
            "line {line}: {messages:?}"
        );
    }
    // Each line its own words: no two lines share a prefix a provider's cache would serve.
    assert_ne!(
        bodies[1]["messages"][0]["content"].as_str().unwrap()[..40],
        bodies[3]["messages"][0]["content"].as_str().unwrap()[..40]
    );
}

/// Each arrival's offset from the first, against the trace's offsets over `speed`, within a
/// quarter second (a shared 2-core box can delay a send that much; the gaps are 200-400 ms).
fn check_times(arrivals: &[Instant], speed: f64) {
    assert_eq!(arrivals.len(), 6);
    for (i, at) in arrivals.iter().enumerate() {
        let got = (*at - arrivals[0]).as_secs_f64();
        let want = 0.4 * i as f64 / speed;
        assert!(
            (got - want).abs() < 0.25,
            "speed {speed}: line {i} arrived at +{got:.3} s, recorded at +{want:.3} s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_replays_at_its_times_classes_and_lengths_and_speed_2_halves_the_span() {
    let (at_1x, bodies_1x, total_1x) = replay(1.0).await;
    check_times(&at_1x, 1.0);
    check_bodies(&bodies_1x);
    // The stage lasts until just after the last send, on a whole second.
    assert_eq!(total_1x, Duration::from_secs(3));

    let (at_2x, bodies_2x, total_2x) = replay(2.0).await;
    check_times(&at_2x, 2.0);
    check_bodies(&bodies_2x);
    assert_eq!(total_2x, Duration::from_secs(2));
    let span = |a: &[Instant]| (*a.last().unwrap() - a[0]).as_secs_f64();
    let ratio = span(&at_2x) / span(&at_1x);
    assert!((0.35..=0.65).contains(&ratio), "span ratio {ratio}");
}

/// A server whose answers carry no `usage`: gauntlet counts the prompts itself, and a traced
/// prompt counts as the length the trace recorded (the class's own prompt where it recorded none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_usage_a_traced_prompt_counts_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::write(dir.path().join("traces/peak.jsonl"), TRACE).unwrap();
    let server = support::chat_server(|_| {
        reply(
            200,
            &[],
            r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#,
        )
    })
    .await;
    let path = dir.path().join("replay.toml");
    std::fs::write(&path, scenario_text(&server.url(), 4.0)).unwrap();
    let sc = gauntlet::scenario::load(&path).unwrap();
    let (_tx, rx) = watch::channel(false);
    let run = engine::run_scenario(&sc, &quiet(), rx).await.unwrap();
    let s = &run.summary.overall;
    assert_eq!((s.requests, s.successes), (6, 6));
    assert_eq!(
        s.prompt_tokens_from.tokenizer, 6,
        "{:?}",
        s.prompt_tokens_from
    );
    let t = Tokenizer::new(Encoding::O200k).unwrap();
    let class = |text: &str| t.count_messages(&[Message::new("user", text)]);
    // Four lines recorded a length; one `short` and one `long` line did not.
    let expected = 40 + 900 + 1200 + 10 + class("hi") + class("summarise this");
    assert_eq!(s.tokens.prompt, expected, "{:?}", s.tokens);
    server.join().await;
}

#[test]
fn a_trace_is_read_once_with_its_speed_and_a_duration_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::write(dir.path().join("traces/peak.jsonl"), TRACE).unwrap();
    let text = scenario_text("http://127.0.0.1:9", 4.0)
        .replace("speed = 4\n", "speed = 4\nduration = \"350ms\"\n");
    let sc = gauntlet::scenario::load_str(dir.path().join("s.toml"), text).unwrap();
    let StageLoad::Trace(trace) = &sc.load.stages[0].load else {
        panic!("not a trace stage: {:?}", sc.load.stages);
    };
    assert_eq!(trace.speed, 4.0);
    // Lines at 0, 0.1, 0.2, 0.3 s are inside 350 ms; 0.4 and 0.5 are cut. Epoch seconds
    // carry microsecond noise in a float, hence the rounding.
    let at: Vec<_> = trace
        .lines
        .iter()
        .map(|l| (l.at.as_secs_f64() * 1000.0).round())
        .collect();
    assert_eq!(at, [0.0, 100.0, 200.0, 300.0]);
    let classes: Vec<_> = trace.lines.iter().map(|l| l.class).collect();
    assert_eq!(classes, [0, 1, 0, 1]);
    assert_eq!(trace.lines[3].prompt_tokens, Some(1200));
    assert_eq!(trace.lines[3].max_tokens, None);
    assert_eq!(sc.load.total_duration(), Duration::from_millis(350));
}

#[test]
fn a_gamma_scenario_loads_its_burstiness() {
    let text = r#"
[target]
url = "http://127.0.0.1:9"
[load]
arrival = "gamma"
burstiness = 2.5
stages = [{ duration = "10s", from = 5, to = 50 }]
[[requests]]
name = "chat"
model = "m"
prompt = "hi"
"#;
    let sc = gauntlet::scenario::load_str("gamma.toml", text).unwrap();
    assert_eq!(sc.load.arrival, Arrival::Gamma { cv: 2.5 });
}
