//! The engine keeps its schedule and tells the truth: the mix follows the weights, the open
//! loop sends on time whatever the server does, stalls show in the tail, every failure is
//! named right, recordings merge exactly, and the run folder reads back.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant, SystemTime};

use gauntlet::engine::{self, Client, ClientOptions, Mix, RunOptions, mix_rng};
use gauntlet::metrics::{
    self, CheckStatus, ClassInfo, ErrorKind, Layout, Recorder, RunInfo, Sample, ServedBy, SlaKey,
    Summary, TokenSource,
};
use gauntlet::rundir::{RunDir, RunFile};
use rand::{RngExt, SeedableRng};
use tokio::sync::watch;

use crate::support::{
    self, class, closed_load, completion_json, open_load, reply, scenario, stream_body,
};

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

fn never_stop() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // Keep the sender alive for the whole test so the receiver never sees a closed channel.
    std::mem::forget(tx);
    rx
}

#[test]
fn mix_follows_the_weights_and_the_seed() {
    let mix = Mix::new([80, 15, 5].map(|w| NonZeroU32::new(w).unwrap()));
    let draw = |seed| {
        let mut rng = mix_rng(seed);
        (0..10_000).map(|_| mix.pick(&mut rng)).collect::<Vec<_>>()
    };
    let a = draw(7);
    for (class, expected) in [(0, 0.80), (1, 0.15), (2, 0.05)] {
        let share = a.iter().filter(|c| **c == class).count() as f64 / 10_000.0;
        assert!(
            (share - expected).abs() <= 0.015,
            "class {class}: {share} vs {expected}"
        );
    }
    assert_eq!(a, draw(7), "same seed, same sequence");
    assert_ne!(a, draw(8), "another seed, another sequence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_1000_requests_at_200_per_second_on_schedule() {
    let server = support::chat_server(|_| {
        reply(
            200,
            &[("x-gauntlet-upstream", "alpha")],
            completion_json("alpha"),
        )
    })
    .await;
    let sc = scenario(
        &server.url(),
        open_load(200.0, Duration::from_secs(5)),
        vec![class("everyday", 1, "m", false)],
    );
    let start = Instant::now();
    let run = engine::run_scenario(&sc, &quiet(), never_stop())
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(4_900) && took < Duration::from_secs(9),
        "took {took:?}"
    );
    let s = &run.summary;
    assert_eq!(s.overall.requests, 1000);
    assert_eq!(s.overall.successes, 1000);
    assert_eq!(server.received(), 1000, "the server saw every request");
    assert_eq!(s.overall.served_by.get("alpha"), Some(&1000));
    // On schedule, as the server saw it: the 1000 arrivals span ~4.995 s ...
    let arrivals = server.arrivals();
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(
        span > Duration::from_millis(4_700) && span < Duration::from_millis(5_400),
        "span {span:?}"
    );
    // ... and every second of it got its ~200.
    for second in 0..5 {
        let lo = arrivals[0] + Duration::from_secs(second);
        let hi = lo + Duration::from_secs(1);
        let n = arrivals.iter().filter(|t| **t >= lo && **t < hi).count();
        assert!((150..=250).contains(&n), "second {second}: {n}");
    }
    assert_eq!(s.intervals.len(), 5);
    // Typical lag is small; the tail is left alone because this 2-core box is shared.
    assert!(s.generator.schedule_lag_ms.p50 < 20.0, "{:?}", s.generator);
    assert_eq!(s.generator.schedule_lag_ms.samples, 1000);
    assert_eq!(s.generator.dropped, 0);
    assert!(
        (s.overall.rps - 200.0).abs() < 10.0,
        "rps {}",
        s.overall.rps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_shows_in_the_tail_not_in_the_schedule() {
    // Every 50th request (2%) stalls for a second.
    let server = support::chat_server(|r| {
        let i = r.index;
        let r = reply(200, &[], completion_json("alpha"));
        if i % 50 == 25 {
            support::after(Duration::from_secs(1), r)
        } else {
            r
        }
    })
    .await;
    let sc = scenario(
        &server.url(),
        open_load(200.0, Duration::from_secs(5)),
        vec![class("everyday", 1, "m", false)],
    );
    let run = engine::run_scenario(&sc, &quiet(), never_stop())
        .await
        .unwrap();
    let s = &run.summary;
    assert_eq!(s.overall.successes, 1000);
    assert!(
        s.overall.latency_ms.p99 >= 900.0,
        "the stall must show: p99 {} ms",
        s.overall.latency_ms.p99
    );
    assert!(
        s.overall.latency_ms.p50 < 100.0,
        "p50 {}",
        s.overall.latency_ms.p50
    );
    // The schedule did not wait for the stalled answers.
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 1000);
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(span < Duration::from_millis(5_400), "span {span:?}");
    let first_second = arrivals
        .iter()
        .filter(|t| **t < arrivals[0] + Duration::from_secs(1))
        .count();
    assert!((150..=250).contains(&first_second), "{first_second}");
    assert!(s.generator.schedule_lag_ms.p50 < 20.0, "{:?}", s.generator);
}

async fn outcome_of(url: &str, c: gauntlet::scenario::RequestClass, timeout: Duration) -> Sample {
    let client = Client::new(
        &[c],
        &[url.to_string()],
        ClientOptions {
            timeout,
            upstreams: vec!["alpha".into()],
            ..ClientOptions::default()
        },
    )
    .unwrap();
    client.send(0, Instant::now(), Duration::ZERO).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_classified_as_exactly_its_kind() {
    let server = support::chat_server(|r| {
        let req: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let model = req["model"].as_str().unwrap_or("").to_string();
        let error = r#"{"error":{"message":"x","type":"server_error","param":null,"code":null}}"#;
        match model.as_str() {
            "ok" => reply(200, &[], completion_json("alpha")),
            "e500" => reply(500, &[], error),
            "e400" => reply(400, &[], error),
            "gateway429" => reply(429, &[("retry-after", "1")], error),
            "upstream429" => reply(429, &[("x-gauntlet-upstream", "alpha")], error),
            "hang" => support::after(
                Duration::from_secs(5),
                reply(200, &[], completion_json("alpha")),
            ),
            "badjson" => reply(200, &[], "{\"choices\": [oops"),
            "stream" => reply(
                200,
                &[("content-type", "text/event-stream")],
                stream_body("alpha", 5, true, true),
            ),
            "stream-finish-only" => reply(200, &[], stream_body("alpha", 3, true, false)),
            "stream-cut" => reply(200, &[], stream_body("alpha", 3, false, false)),
            "stream-bad" => reply(200, &[], "data: {not json\n\n"),
            _ => reply(404, &[], error),
        }
    })
    .await;
    let url = server.url();
    let t = Duration::from_secs(2);
    let cases = [
        ("ok", false, Ok(())),
        ("e500", false, Err(ErrorKind::Status5xx)),
        ("e400", false, Err(ErrorKind::Status4xx)),
        ("gateway429", false, Err(ErrorKind::RateLimited)),
        ("upstream429", false, Err(ErrorKind::RateLimited)),
        ("hang", false, Err(ErrorKind::Timeout)),
        ("badjson", false, Err(ErrorKind::Malformed)),
        ("stream", true, Ok(())),
        ("stream-finish-only", true, Ok(())),
        ("stream-cut", true, Err(ErrorKind::Truncated)),
        ("stream-bad", true, Err(ErrorKind::Malformed)),
    ];
    for (model, stream, expected) in cases {
        let s = outcome_of(&url, class(model, 1, model, stream), t).await;
        assert_eq!(s.result, expected, "model {model}");
        if model == "hang" {
            assert!(s.latency >= t, "a timeout waits the whole deadline");
        }
    }
    // A closed-model user on its own connection classifies alike, and reconnects after
    // failures that leave the connection unusable.
    let all: Vec<_> = cases.iter().map(|(m, st, _)| class(m, 1, m, *st)).collect();
    let client = Client::new(
        &all,
        &vec![url.clone(); all.len()],
        ClientOptions {
            timeout: t,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let mut conn = client.user_connections();
    for (i, (model, _, expected)) in cases.iter().enumerate() {
        let s = client
            .send_on(&mut conn, i, Instant::now(), Duration::ZERO)
            .await;
        assert_eq!(s.result, *expected, "model {model} on a user connection");
    }
    let ok = outcome_of(&url, class("ok", 1, "ok", false), t).await;
    assert_eq!(
        ok.served_by,
        Some(ServedBy::Known(0)),
        "from system_fingerprint"
    );
    assert_eq!((ok.prompt_tokens, ok.completion_tokens), (7, 2));
    let gw = outcome_of(&url, class("g", 1, "gateway429", false), t).await;
    assert!(gw.gateway_rate_limited, "an untagged 429 is the gateway's");
    let up = outcome_of(&url, class("u", 1, "upstream429", false), t).await;
    assert!(!up.gateway_rate_limited, "a tagged 429 is the provider's");
    let st = outcome_of(&url, class("s", 1, "stream", true), t).await;
    assert!(st.ttft.is_some());
    assert_eq!(st.itl.len(), 4, "five deltas, four gaps");
    assert_eq!(
        st.completion_tokens, 5,
        "counted deltas without a usage chunk"
    );

    let reset = support::serve_reset().await;
    let s = outcome_of(&reset.url(), class("r", 1, "ok", false), t).await;
    assert_eq!(s.result, Err(ErrorKind::Reset));
    assert!(reset.received() >= 1);
    let s = outcome_of(&support::refused_url().await, class("c", 1, "ok", false), t).await;
    assert_eq!(s.result, Err(ErrorKind::Connect));
    // Everything the server got, it got from us: 11 cases twice + 4 follow-ups.
    assert_eq!(server.received(), 26);
    // Every request parsed as JSON at the server (its behaviour would have panicked).
    server.join().await;
    reset.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_is_malformed_not_memory() {
    let server = support::chat_server(|_| reply(200, &[], vec![b' '; 2 * 1024 * 1024])).await;
    let client = Client::new(
        &[class("big", 1, "m", false)],
        &[server.url()],
        ClientOptions {
            max_body_bytes: 1024 * 1024,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let s = client.send(0, Instant::now(), Duration::ZERO).await;
    assert_eq!(s.result, Err(ErrorKind::Malformed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_cap_are_dropped_and_distrusted() {
    let server = support::answering_after(Duration::from_secs(2)).await;
    let mut load = open_load(100.0, Duration::from_secs(1));
    load.max_in_flight = NonZeroUsize::new(10).unwrap();
    let sc = scenario(&server.url(), load, vec![class("c", 1, "m", false)]);
    let run = engine::run_scenario(&sc, &quiet(), never_stop())
        .await
        .unwrap();
    let s = &run.summary;
    assert_eq!(s.overall.requests, 100);
    assert_eq!(s.overall.dropped, 90);
    assert_eq!(s.generator.dropped, 90);
    assert_eq!(server.received(), 10);
    assert!(
        (s.overall.availability - 0.10).abs() < 1e-9,
        "dropped count against availability"
    );
    assert!(!s.trust.trustworthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_keeps_n_users_busy_and_warmup_is_excluded() {
    let server = support::answering_after(Duration::from_millis(10)).await;
    let load = closed_load(4, Duration::from_secs(2), Duration::from_secs(1));
    let sc = scenario(&server.url(), load, vec![class("c", 1, "m", false)]);
    let run = engine::run_scenario(&sc, &quiet(), never_stop())
        .await
        .unwrap();
    let s = &run.summary;
    // ~4 users x 1 s / ~10 ms each after the warmup; the server also saw the warmup's share.
    assert!(s.overall.requests > 100, "{}", s.overall.requests);
    assert!((server.received() as u64) > s.overall.requests + 100);
    assert_eq!(s.overall.requests, s.overall.successes);
    assert_eq!(s.intervals.len(), 1);
    assert!((s.warmup_s - 1.0).abs() < 1e-9);
}

/// Runs `sc` and presses Ctrl-C after 1 s: the run must end soon after, marked interrupted.
async fn stopped_after_1s(sc: &gauntlet::scenario::Scenario) -> Summary {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = tx.send(true);
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let start = Instant::now();
    let run = engine::run_scenario(sc, &quiet(), rx).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(run.summary.interrupted);
    run.summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_sending_and_keeps_what_was_measured() {
    let server = support::chat_server(|_| reply(200, &[], completion_json("alpha"))).await;
    let sc = scenario(
        &server.url(),
        open_load(100.0, Duration::from_secs(30)),
        vec![class("c", 1, "m", false)],
    );
    let s = &stopped_after_1s(&sc).await;
    // Stopped after 1 s of 100/s: never more than that second's requests and a few in flight.
    // Fewer is only a slow start (a loaded machine sent 70 here), which this test is not about.
    assert!(
        (30..=130).contains(&s.overall.requests),
        "{}",
        s.overall.requests
    );
    assert_eq!(s.overall.requests as usize, server.received());
    assert!(s.duration_s < 2.0 && s.intervals.len() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_a_closed_stage_keeps_every_answer_the_users_got() {
    // Each answer takes a while, so every user is mid-request when the stop comes.
    let server = support::answering_after(Duration::from_millis(30)).await;
    let load = closed_load(8, Duration::from_secs(30), Duration::ZERO);
    let sc = scenario(&server.url(), load, vec![class("c", 1, "m", false)]);
    let s = &stopped_after_1s(&sc).await;
    // 8 users x ~1 s / ~30 ms each; the requests in flight at the stop finish and count.
    assert!(s.overall.requests > 50, "{}", s.overall.requests);
    assert_eq!(s.overall.requests, s.overall.successes);
    assert_eq!(s.overall.requests as usize, server.received());
}

fn synthetic_samples(n: usize) -> Vec<Sample> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    (0..n)
        .map(|i| {
            let mut s = Sample::new(
                rng.random_range(0..3),
                Duration::from_micros(rng.random_range(0..10_000_000)),
                Duration::from_micros(rng.random_range(0..3_000)),
            );
            s.latency = Duration::from_micros(rng.random_range(100..2_000_000));
            if s.class == 2 {
                s.ttft = Some(s.latency / 3);
                s.ttfot = Some(s.latency / 2);
                s.tpot = Some(Duration::from_micros(rng.random_range(500..30_000)));
                s.itl = vec![Duration::from_micros(rng.random_range(1_000..40_000)); 3];
                s.turn = Some(rng.random_range(1..6));
                s.cached_tokens = rng.random_range(0..10);
                s.reasoning_tokens = rng.random_range(0..5);
            }
            s.result = match i % 37 {
                0 => Err(ErrorKind::Status5xx),
                1 => Err(ErrorKind::Timeout),
                2 => Err(ErrorKind::RateLimited),
                _ => Ok(()),
            };
            s.gateway_rate_limited = i % 37 == 2 && i % 2 == 0;
            s.served_by = Some(if i % 11 == 0 {
                ServedBy::Other("stranger".into())
            } else {
                ServedBy::Known((i % 2) as u16)
            });
            s.prompt_tokens = rng.random_range(1..20_000);
            s.completion_tokens = rng.random_range(1..100);
            if i % 3 == 0 {
                s.prompt_tokens_from = metrics::TokenSource::Usage;
            }
            s
        })
        .collect()
}

fn layout() -> Layout {
    Layout::new(
        vec!["a".into(), "b".into(), "c".into()],
        vec!["alpha".into(), "beta".into()],
        Duration::from_secs(1),
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
}

fn info() -> RunInfo {
    RunInfo {
        scenario: "merge".into(),
        description: None,
        seed: 1,
        target: "t".into(),
        started_at: SystemTime::UNIX_EPOCH,
        ran_for: Duration::from_secs(10),
        interrupted: false,
        classes: ["a", "b", "c"]
            .iter()
            .map(|n| ClassInfo {
                name: n.to_string(),
                weight: 1,
                model: "m".into(),
                stream: *n == "c",
                api: "chat",
                primary: None,
                tier: None,
            })
            .collect(),
    }
}

#[test]
fn two_shards_merge_into_exactly_the_summary_of_one() {
    let samples = synthetic_samples(20_000);
    let mut whole = Recorder::new(layout());
    let mut left = Recorder::new(layout());
    let mut right = Recorder::new(layout());
    for (i, s) in samples.iter().enumerate() {
        whole.record(s);
        if i % 3 == 0 { &mut left } else { &mut right }.record(s);
    }
    for (i, t) in [1.5, 2.5, 9.9].into_iter().enumerate() {
        whole.record_dropped(i, Duration::from_secs_f64(t));
        left.record_dropped(i, Duration::from_secs_f64(t));
    }
    left.merge(&right).unwrap();
    let a = metrics::summarize(&whole, &info());
    let b = metrics::summarize(&left, &info());
    assert_eq!(a, b);
    // The split was real and the warmup was left out.
    let in_warmup = samples
        .iter()
        .filter(|s| s.intended < Duration::from_secs(1))
        .count();
    assert!(in_warmup > 1000);
    assert_eq!(a.overall.requests as usize, samples.len() - in_warmup + 3);
    assert_eq!(a.overall.dropped, 3);
    assert_eq!(a.intervals.len(), 9);
    assert!(a.overall.served_by.contains_key("stranger"));
    assert!(a.classes[2].stats.ttft_ms.is_some() && a.classes[0].stats.ttft_ms.is_none());
    // The new measures split and merge too: TTFOT, TPOT, turns, prompt bins, token sources.
    let c = &a.classes[2];
    assert!(c.stats.ttfot_ms.is_some() && c.stats.tpot_ms.is_some());
    assert_eq!(c.turns.len(), 5);
    assert!(a.classes[0].turns.is_empty() && a.classes[0].stats.tpot_ms.is_none());
    assert!(c.prompt_lengths.len() >= 10, "{:?}", c.prompt_lengths);
    assert!(a.overall.prompt_tokens_from.usage > 0 && a.overall.prompt_tokens_from.tokenizer > 0);
    assert!(a.overall.tokens.cached > 0);
    // A recording of another layout refuses to merge.
    let other = Recorder::new(Layout::new(
        vec!["x".into()],
        vec![],
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(10),
    ));
    assert!(left.merge(&other).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_folder_reads_back() {
    let server = support::chat_server(|r| {
        if r.index % 10 == 0 {
            reply(503, &[], "{}")
        } else {
            reply(200, &[], stream_body("alpha", 4, true, true))
        }
    })
    .await;
    let mut load = open_load(50.0, Duration::from_millis(2_500));
    load.warmup = Duration::from_millis(500);
    let sc = scenario(
        &server.url(),
        load,
        vec![class("chat", 3, "m", true), class("batch", 1, "m", true)],
    );
    let run = engine::run_scenario(&sc, &quiet(), never_stop())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut run_dir = RunDir::create(&out, false).unwrap();
    engine::write_run(&mut run_dir, &run).unwrap();
    let text = std::fs::read_to_string(run_dir.file(RunFile::Summary)).unwrap();
    let back: Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(back, run.summary);
    assert!(back.sla.passed && back.sla.checks.is_empty());
    assert_eq!(back.classes.len(), 2);
    assert!(back.overall.errors.get("status_5xx").copied().unwrap_or(0) > 0);
    assert!(back.overall.ttft_ms.is_some());
    assert!(!back.classes[0].latency_spectrum.is_empty());
    assert_eq!(back.intervals.len(), 2);
    assert!(back.intervals[0].classes.contains_key("chat"));
    // The histogram log is the standard format with one tag per class for its answers, and
    // one per class and error kind for its failures.
    let hlog = std::fs::read(run_dir.file(RunFile::LatencyHlog)).unwrap();
    let tags: std::collections::BTreeSet<String> =
        hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog)
            .filter_map(|e| match e.unwrap() {
                hdrhistogram::serialization::interval_log::LogEntry::Interval(h) => {
                    h.tag().map(|t| t.as_str().to_string())
                }
                _ => None,
            })
            .collect();
    assert_eq!(
        tags,
        [
            "batch",
            "batch/time_to_error/status_5xx",
            "chat",
            "chat/time_to_error/status_5xx"
        ]
        .map(String::from)
        .into()
    );
    // A used folder is refused unless forced.
    assert!(RunDir::create(&out, false).is_err());
    RunDir::create(&out, true).unwrap();
}

/// A client of one non-streamed chat class sent to `url`, with default options.
fn json_client(url: &str) -> Client {
    Client::new(
        &[class("json", 1, "m", false)],
        &[url.to_string()],
        ClientOptions::default(),
    )
    .unwrap()
}

/// A server that answers one request per connection and then hangs up, as a server does when
/// a keep-alive connection reached its end (it said nothing about closing). It counts
/// connections.
async fn one_answer_per_connection() -> support::TestServer {
    use tokio::io::AsyncWriteExt;
    support::serve_raw(|mut tcp| async move {
        if support::read_request(&mut tcp).await.is_none() {
            return;
        }
        let body = completion_json("solo");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = tcp.write_all(format!("{head}{body}").as_bytes()).await;
        // A moment later, while the connection sits idle at the client, dropping the
        // socket closes it: the end of keep-alive, unannounced.
        tokio::time::sleep(Duration::from_millis(20)).await;
    })
    .await
}

#[tokio::test]
async fn a_kept_alive_connection_the_server_closed_is_not_blamed_on_the_server() {
    let server = one_answer_per_connection().await;
    let client = json_client(&server.url());
    // A closed-model user's own connection, and the open model's shared idle ones.
    let mut user = client.user_connections();
    let t0 = Instant::now();
    for i in 0..3 {
        let s = client.send_on(&mut user, 0, t0, t0.elapsed()).await;
        assert_eq!(s.result, Ok(()), "user request {i}");
        assert_eq!(
            s.completion_tokens, 2,
            "user request {i} was read to the end"
        );
        // Let the hang-up arrive before the next request goes out on the same connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..3 {
        let s = client.send(0, t0, t0.elapsed()).await;
        assert_eq!(s.result, Ok(()), "open-model request {i}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every request needed a connection of its own: each was resent, none lost or doubled.
    assert_eq!(server.received(), 6);
}

/// A server that drops every new connection is blamed for every request: the request fails
/// and is not tried again on another connection, even when it never left (a resend is for a
/// kept-alive connection closed at the end of its life, never for a fresh one).
#[test]
fn a_server_dropping_new_connections_fails_each_request_once() {
    // The server runs on a thread of its own, so it hangs up while the client's one thread
    // is busy elsewhere.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = servers.block_on(support::serve_raw(|tcp| async move { drop(tcp) }));
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let requests = 20;
    clients.block_on(async {
        // Holds the client's thread for a moment at every turn, so the hang-up is often seen
        // before the request is written (hyper then hands the request back, unsent).
        let busy = tokio::spawn(async {
            loop {
                std::thread::sleep(Duration::from_millis(2));
                tokio::task::yield_now().await;
            }
        });
        let client = json_client(&server.url());
        let t0 = Instant::now();
        for i in 0..requests {
            let mut user = client.user_connections();
            let s = client.send_on(&mut user, 0, t0, t0.elapsed()).await;
            assert!(
                matches!(s.result, Err(ErrorKind::Reset | ErrorKind::Connect)),
                "request {i}: {:?}",
                s.result
            );
        }
        busy.abort();
    });
    assert_eq!(server.received(), requests, "one connection a request");
}

/// Open-model requests share idle connections: the next request reuses the one the last
/// left, and one left idle longer than a server's keep-alive commonly lasts (4 s) is closed
/// instead, so a request is not lost to a server closing it at the same moment. A
/// closed-model user's own connection is kept the same way (a think time of 5 s meets
/// uvicorn's keep-alive at its end): idle is counted from its last answer, so a user who
/// asks every 1.5 s keeps one connection however long it lives.
#[tokio::test]
async fn an_idle_connection_is_reused_while_fresh_and_replaced_once_stale() {
    let server = support::chat_server(|_| reply(200, &[], completion_json("alpha"))).await;
    let client = json_client(&server.url());
    let t0 = Instant::now();
    let shared = [
        client.send(0, t0, t0.elapsed()).await,
        client.send(0, t0, t0.elapsed()).await,
    ];
    let mut user = client.user_connections();
    let own = [
        client.send_on(&mut user, 0, t0, t0.elapsed()).await,
        client.send_on(&mut user, 0, t0, t0.elapsed()).await,
    ];
    for (which, [first, second]) in [("shared", shared), ("own", own)] {
        assert_eq!((first.result, second.result), (Ok(()), Ok(())), "{which}");
        assert!(
            first.opened.is_some(),
            "{which}: the first request opens one"
        );
        assert!(
            second.opened.is_none(),
            "{which}: the next one reuses the idle connection"
        );
    }
    // A user asking every 1.5 s: idle well under 4 s each time however slow the machine,
    // and its connection older than 4 s by the last request.
    let mut steady = client.user_connections();
    let mut steady_opened = Vec::new();
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
        let s = client.send_on(&mut steady, 0, t0, t0.elapsed()).await;
        steady_opened.push(s.opened.is_some());
    }
    let late = client.send(0, t0, t0.elapsed()).await;
    let late_own = client.send_on(&mut user, 0, t0, t0.elapsed()).await;
    assert_eq!((late.result, late_own.result), (Ok(()), Ok(())));
    assert!(
        late.opened.is_some() && late_own.opened.is_some(),
        "a connection idle for 4.5 s is not reused: a new one is opened"
    );
    assert_eq!(
        steady_opened,
        [true, false, false, false],
        "a connection used every 1.5 s is kept past 4 s"
    );
}

/// A request that timed out leaves its connection busy with an answer that may never come:
/// the user's next request goes out on a new connection instead of queueing behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_timeout_the_next_request_goes_out_on_a_new_connection() {
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = support::chat_server(move |_| {
        let r = reply(200, &[], completion_json("alpha"));
        if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            // The first answer stalls far past the client's timeout.
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                r.await
            })
        } else {
            r
        }
    })
    .await;
    let client = Client::new(
        &[class("json", 1, "m", false)],
        &[server.url()],
        ClientOptions {
            timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let mut user = client.user_connections();
    let t0 = Instant::now();
    let stalled = client.send_on(&mut user, 0, t0, t0.elapsed()).await;
    assert_eq!(stalled.result, Err(metrics::ErrorKind::Timeout));
    let next = client.send_on(&mut user, 0, t0, t0.elapsed()).await;
    assert_eq!(next.result, Ok(()), "{next:?}");
    assert!(next.opened.is_some(), "a new connection: {next:?}");
}

/// A direct run at 40 requests a second for 4 s against one running mock `up` (given by
/// `url`, with `token` for its control API), whose outage is due at `fault_at`; the SLA
/// holds the failover to account.
fn outage_scenario(url: &str, token: &str, fault_at: &str) -> gauntlet::scenario::Scenario {
    let text = format!(
        r#"
        name = "outage"
        [[upstreams]]
        name = "up"
        url = "{url}"
        admin_token = "{token}"
        [load]
        arrival = "constant"
        duration = "4s"
        rate = 40
        [[requests]]
        name = "a"
        model = "m"
        prompt = "hi"
        max_tokens = 4
        primary = "up"
        [[faults]]
        upstream = "up"
        at = "{fault_at}"
        duration = "1s"
        kind = "outage"
        [sla]
        availability = "90%"
        failover_success = "90%"
        max_failover_time = "1s"
        max_recovery_time = "1s"
        "#
    );
    gauntlet::scenario::load_str("outage.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

const FAILOVER_KEYS: [SlaKey; 3] = [
    SlaKey::FailoverSuccess,
    SlaKey::MaxFailoverTime,
    SlaKey::MaxRecoveryTime,
];

/// The failover checks, each as (status, note).
fn failover_checks(s: &Summary) -> Vec<(SlaKey, CheckStatus, String)> {
    s.sla
        .checks
        .iter()
        .filter(|c| FAILOVER_KEYS.contains(&c.name))
        .map(|c| (c.name, c.status, c.note.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_its_fault_does_not_judge_the_failover() {
    let mock = support::start_mock_named(support::instant_profile(""), "up", Some("tok")).await;
    let sc = outage_scenario(&mock.url(), "tok", "3s");
    let s = &stopped_after_1s(&sc).await;
    assert!(s.overall.requests > 20, "{}", s.overall.requests);
    assert_eq!(s.overall.successes, s.overall.requests);
    let w = &s.faults[0];
    assert_eq!(w.applied_at_s, None);
    let why = w.not_applied.clone().unwrap_or_default();
    assert!(why.starts_with("the run stopped at "), "{why}");
    let checks = failover_checks(s);
    assert_eq!(checks.len(), 3);
    for (key, status, note) in checks {
        assert_eq!(status, CheckStatus::Inconclusive, "{key}: {note}");
        assert_eq!(
            note,
            format!("the outage on up at 3.0 s was never applied: {why}")
        );
    }
    // Nothing failed and nothing broke: not violated, and nothing to distrust.
    assert_eq!(s.sla.verdict, CheckStatus::Inconclusive);
    // A fault that never came is no reason to distrust the run. (A loaded machine may still
    // flag the generator's own lag; that is not what this test is about.)
    assert!(
        s.trust
            .reasons
            .iter()
            .all(|r| !r.contains("outage") && !r.contains("fault")),
        "{:?}",
        s.trust.reasons
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_the_control_api_refuses_makes_the_run_untrustworthy() {
    // An upstream whose control API answers its stats (so the preflight passes) but refuses
    // every fault with a 500, as a mock mid-upgrade or a proxy in front of it might.
    let stats = serde_json::to_string(&gauntlet::mock::MockStats::default()).unwrap();
    let up = support::Routes::new()
        .route(support::CHAT, |_| {
            support::reply(
                200,
                &[("content-type", "application/json")],
                support::completion_json("up"),
            )
        })
        .route("/__gauntlet/stats", move |_| {
            support::reply(200, &[("content-type", "application/json")], stats.clone())
        })
        .route("/__gauntlet/faults", |_| {
            support::reply(500, &[], "control plane is down")
        })
        .serve()
        .await;
    let sc = outage_scenario(&up.url(), "tok", "1s");
    let options = RunOptions {
        duration: Some(Duration::from_secs(2)),
        ..quiet()
    };
    let run = engine::run_scenario(&sc, &options, never_stop())
        .await
        .unwrap();
    let s = &run.summary;
    // The outage never reached the mock: every request was answered.
    assert!(s.overall.requests >= 70, "{}", s.overall.requests);
    assert_eq!(s.overall.successes, s.overall.requests);
    assert!(up.hits("/__gauntlet/faults") >= 1, "the fault was tried");

    assert!(!s.trust.trustworthy);
    let reason = s
        .trust
        .reasons
        .iter()
        .find(|r| r.starts_with("the outage on up at 0.5 s could not be applied: "))
        .unwrap_or_else(|| panic!("{:?}", s.trust.reasons));
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(s.faults[0].applied_at_s, None);
    for (key, status, note) in failover_checks(s) {
        assert_eq!(status, CheckStatus::Inconclusive, "{key}: {note}");
        assert!(
            note.contains("was never applied: its control API failed"),
            "{note}"
        );
    }
    assert_eq!(s.sla.verdict, CheckStatus::Inconclusive);
    up.join().await;
}

/// Who served an answer and how many prompt tokens it took are read from the answer only
/// within bounds: `none` (the reference gateway's tag on its own answers) names no upstream,
/// so a 429 tagged `none` is the gateway's own limit; a name longer than 64 bytes is cut on a
/// character boundary, so a hostile fingerprint cannot grow the report or split a character;
/// and a usage that says 0 prompt tokens, or no usage at all, leaves the count to the
/// client's tokenizer, which says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_fingerprints_and_prompt_counts_are_believed_only_within_bounds() {
    // 81 bytes: "a" then 40 two-byte characters, so byte 64 falls inside one.
    let long = format!("a{}", "é".repeat(40));
    let fingerprint = format!("gauntlet-{long}");
    let server = support::chat_server(move |r| {
        let req: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let error = r#"{"error":{"message":"x","type":"rate_limit","param":null,"code":null}}"#;
        let answer = |usage: serde_json::Value| {
            serde_json::json!({
                "id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "system_fingerprint": fingerprint,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                             "finish_reason": "stop"}],
                "usage": usage,
            })
            .to_string()
        };
        match req["model"].as_str().unwrap_or("") {
            "none429" => reply(429, &[("x-gateway-upstream", "none")], error),
            "alpha429" => reply(429, &[("x-gateway-upstream", "alpha")], error),
            "none200" => reply(
                200,
                &[("x-gateway-upstream", "none")],
                completion_json("alpha"),
            ),
            "long" => reply(200, &[], answer(serde_json::Value::Null)),
            "zero" => reply(
                200,
                &[],
                answer(
                    serde_json::json!({"prompt_tokens": 0, "completion_tokens": 3,
                                          "total_tokens": 3}),
                ),
            ),
            _ => reply(404, &[], error),
        }
    })
    .await;
    let url = server.url();
    let t = Duration::from_secs(5);

    let gw = outcome_of(&url, class("g", 1, "none429", false), t).await;
    assert_eq!(gw.result, Err(ErrorKind::RateLimited));
    assert!(
        gw.gateway_rate_limited,
        "a 429 tagged `none` is the gateway's"
    );
    let up = outcome_of(&url, class("u", 1, "alpha429", false), t).await;
    assert!(!up.gateway_rate_limited, "a 429 tagged `alpha` is alpha's");
    let own = outcome_of(&url, class("n", 1, "none200", false), t).await;
    assert_eq!(
        own.served_by,
        Some(ServedBy::Known(0)),
        "a `none` tag leaves the fingerprint to say who served"
    );

    let cut = outcome_of(&url, class("l", 1, "long", false), t).await;
    assert_eq!(cut.result, Ok(()));
    let expected = format!("a{}", "é".repeat(31));
    assert_eq!(expected.len(), 63);
    assert_eq!(
        cut.served_by,
        Some(ServedBy::Other(expected.as_str().into()))
    );

    // The class's one message, counted as the tokenizer counts a chat.
    let c = class("z", 1, "zero", false);
    let counted = gauntlet::tokenizer::Tokenizer::new(c.workload.encoding)
        .unwrap()
        .count_messages(&c.messages);
    assert!(counted > 1, "a real count: {counted}");
    for (c, why) in [
        (c, "usage says 0 prompt tokens"),
        (class("l", 1, "long", false), "no usage"),
    ] {
        let s = outcome_of(&url, c, t).await;
        assert_eq!(s.result, Ok(()), "{why}");
        assert_eq!(s.prompt_tokens, counted, "{why}");
        assert_eq!(s.prompt_tokens_from, TokenSource::Tokenizer, "{why}");
    }
    server.join().await;
}

/// Recordings merge only when they record the same thing: another class list, interval
/// count, warmup or interval length is refused, never summed into the wrong cells. Two that
/// match add up, the requests abandoned at the drain deadline included.
#[test]
fn recordings_of_different_layouts_refuse_to_merge() {
    let secs = Duration::from_secs;
    let layout = |classes: &[&str], warmup: u64, interval: u64, total: u64| {
        Layout::new(
            classes.iter().map(|c| c.to_string()).collect(),
            Vec::new(),
            secs(warmup),
            secs(interval),
            secs(total),
        )
    };
    let mut rec = Recorder::new(layout(&["a", "b"], 0, 1, 10));
    // Each differs from it in one thing only.
    for (what, other) in [
        ("classes", layout(&["a"], 0, 1, 10)),
        ("intervals", layout(&["a", "b"], 0, 1, 11)),
        ("warmup", layout(&["a", "b"], 1, 1, 11)),
        ("interval length", layout(&["a", "b"], 0, 2, 20)),
    ] {
        assert!(
            matches!(
                rec.merge(&Recorder::new(other)),
                Err(metrics::MergeError::Layout)
            ),
            "{what}"
        );
    }
    rec.add_abandoned(2);
    let mut same = Recorder::new(layout(&["a", "b"], 0, 1, 10));
    same.add_abandoned(3);
    rec.merge(&same).expect("the same layout merges");
    assert_eq!(rec.abandoned(), 5);
}

/// HTTP/1.1 asks every request for a `Host` header, and a gateway routes by it: the engine's
/// own connections send origin-form (`POST /v1/chat/completions`) with `Host` naming the
/// target, on a fresh connection and on a reused one alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_request_names_its_target_in_a_host_header() {
    let hosts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hosts.clone();
    let server = support::chat_server(move |r| {
        let host = r.headers.get(http::header::HOST).cloned();
        seen.lock().unwrap().push((r.path, host));
        reply(200, &[], completion_json("alpha"))
    })
    .await;
    let client = Client::new(
        &[class("a", 1, "m", false)],
        &[server.url()],
        ClientOptions::default(),
    )
    .unwrap();
    let t0 = Instant::now();
    for _ in 0..2 {
        let s = client.send(0, t0, t0.elapsed()).await;
        assert_eq!(s.result, Ok(()), "{s:?}");
    }
    let want = format!("127.0.0.1:{}", server.addr.port());
    let got = hosts.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    for (path, host) in got {
        assert_eq!(path, support::CHAT);
        assert_eq!(
            host.as_ref().and_then(|h| h.to_str().ok()),
            Some(want.as_str())
        );
    }
    server.join().await;
}
