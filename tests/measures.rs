//! What gauntlet measures from reasoning and tool-calling traffic: TTFT against the first
//! output token, time per output token, cached and reasoning tokens read from usage, per-turn
//! and prompt-length breakdowns that merge exactly, the SLA keys on them, and cost with cached
//! input priced apart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use gauntlet::engine::{Client, ClientOptions};
use gauntlet::metrics::cost::Price;
use gauntlet::metrics::failover::FaultAttempt;
use gauntlet::metrics::{
    self, CheckStatus, ClassInfo, ErrorKind, Evidence, Layout, Recorder, RunInfo, Sample, ServedBy,
    SlaKey, Summary, TokenSource, UpstreamCounters,
};
use gauntlet::scenario::{Objective, Scope, Sla, SlaTarget};

use crate::support::{self, class, paced, reasoning_stream, tool_call_stream};

const GAP: Duration = Duration::from_millis(20);

async fn stream_outcome(url: &str) -> Sample {
    let client = Client::new(
        &[class("r", 1, "m", true)],
        &[url.to_string()],
        ClientOptions {
            timeout: Duration::from_secs(10),
            upstreams: vec!["alpha".into()],
            ..ClientOptions::default()
        },
    )
    .unwrap();
    client.send(0, Instant::now(), Duration::ZERO).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_then_content_times_the_first_output_token_and_its_pace() {
    // 5 reasoning deltas, then 10 content deltas, 20 ms apart; usage says 15 completion
    // tokens of which 5 reasoning, and 32 of the 50 prompt tokens were cached.
    let server = support::chat_server(|_| {
        paced(reasoning_stream("alpha", 5, 10, Some([50, 15, 32, 5])), GAP)
    })
    .await;
    let s = stream_outcome(&server.url()).await;
    assert_eq!(s.result, Ok(()));
    let (ttft, ttfot) = (s.ttft.unwrap(), s.ttfot.unwrap());
    // Five paced events separate the first reasoning delta from the first content delta;
    // half of that is a bound no loaded machine can miss.
    assert!(
        ttfot >= ttft + GAP * 5 / 2,
        "ttft {ttft:?}, ttfot {ttfot:?}"
    );
    // Nine gaps of at least 20 ms between ten output tokens.
    let tpot = s.tpot.unwrap();
    assert!(
        (GAP * 3 / 4..GAP * 10).contains(&tpot),
        "tpot {tpot:?} against a 20 ms pace"
    );
    assert_eq!(s.itl.len(), 9, "gaps between the ten output deltas only");
    assert_eq!(
        (s.prompt_tokens, s.completion_tokens),
        (50, 15),
        "from usage"
    );
    assert_eq!((s.cached_tokens, s.reasoning_tokens), (32, 5));
    assert_eq!(s.prompt_tokens_from, TokenSource::Usage);
    assert_eq!(s.served_by, Some(ServedBy::Known(0)));
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_deltas_are_output_tokens() {
    // A call named in one delta, its arguments in 6 more, no usage, no reasoning.
    let server = support::chat_server(|_| paced(tool_call_stream("alpha", 6), GAP)).await;
    let s = stream_outcome(&server.url()).await;
    assert_eq!(s.result, Ok(()), "finish_reason tool_calls ends a stream");
    assert_eq!(
        s.ttfot, s.ttft,
        "without reasoning the first token is an output token"
    );
    assert!(s.ttft.is_some());
    assert_eq!(s.itl.len(), 6);
    assert_eq!(s.completion_tokens, 7, "one token per delta without usage");
    assert_eq!(s.reasoning_tokens, 0);
    let tpot = s.tpot.unwrap();
    assert!((GAP * 3 / 4..GAP * 10).contains(&tpot), "tpot {tpot:?}");
    // No usage: the client's own count fills the prompt, and says so.
    assert_eq!(s.prompt_tokens_from, TokenSource::Tokenizer);
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_answer_reports_its_cached_and_reasoning_tokens_but_no_stream_timing() {
    let body = serde_json::json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "system_fingerprint": "gauntlet-alpha",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020,
            "prompt_tokens_details": {"cached_tokens": 768},
            "completion_tokens_details": {"reasoning_tokens": 100}},
    })
    .to_string();
    let server = support::chat_server(move |_| {
        support::reply(200, &[("content-type", "application/json")], body.clone())
    })
    .await;
    let client = Client::new(
        &[class("j", 1, "m", false)],
        &[server.url()],
        ClientOptions {
            upstreams: vec!["alpha".into()],
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let s = client.send(0, Instant::now(), Duration::ZERO).await;
    assert_eq!(s.result, Ok(()));
    assert_eq!((s.prompt_tokens, s.completion_tokens), (900, 120));
    assert_eq!((s.cached_tokens, s.reasoning_tokens), (768, 100));
    assert_eq!(s.prompt_tokens_from, TokenSource::Usage);
    assert_eq!((s.ttft, s.ttfot, s.tpot), (None, None, None));
    server.join().await;
}

fn layout(classes: &[&str]) -> Layout {
    Layout::new(
        classes.iter().map(|c| c.to_string()).collect(),
        vec!["alpha".into()],
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
}

fn info(classes: &[&str]) -> RunInfo {
    RunInfo {
        scenario: "measures".into(),
        description: None,
        seed: 1,
        target: "direct".into(),
        started_at: SystemTime::UNIX_EPOCH,
        ran_for: Duration::from_secs(10),
        interrupted: false,
        classes: classes
            .iter()
            .map(|c| ClassInfo {
                name: c.to_string(),
                weight: 1,
                model: "m".into(),
                stream: true,
                api: "chat",
                primary: None,
                tier: None,
            })
            .collect(),
    }
}

/// The i-th request of a hand-made run: TTFOT i+1 ms, TPOT (i mod 100 + 1) x 100 us,
/// turn i mod 3 + 1 for class 0, prompt lengths spread over three decades.
fn sample(class: usize, i: u64) -> Sample {
    let mut s = Sample::new(class, Duration::from_millis(i * 9 % 10_000), Duration::ZERO);
    s.latency = Duration::from_millis(200 + i % 50);
    s.ttft = Some(Duration::from_micros(500 + i * 10));
    s.ttfot = Some(Duration::from_millis(i + 1));
    s.tpot = Some(Duration::from_micros((i % 100 + 1) * 100));
    s.served_by = Some(ServedBy::Known(0));
    s.prompt_tokens = [20, 200, 2_000][(i % 3) as usize];
    s.completion_tokens = 40;
    s.cached_tokens = i % 2 * 16;
    s.reasoning_tokens = 10;
    s.prompt_tokens_from = if i.is_multiple_of(4) {
        TokenSource::Tokenizer
    } else {
        TokenSource::Usage
    };
    if class == 0 {
        s.turn = Some((i % 3 + 1) as u16);
    }
    s
}

/// Nearest-rank percentile of sorted values, as HDR reads it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn close(measured: f64, exact: f64) -> bool {
    // Three significant digits in the cumulative histograms.
    (measured - exact).abs() <= exact * 1e-3 + 1e-9
}

#[test]
fn a_known_recording_gives_its_ttfot_and_tpot_percentiles() {
    let names = ["chat", "batch"];
    let mut rec = Recorder::new(layout(&names));
    for i in 0..1_000 {
        rec.record(&sample(0, i));
    }
    // Failures carry no first output token worth counting, whatever they say.
    for i in 0..50 {
        let mut s = sample(0, i);
        s.result = Err(ErrorKind::Truncated);
        s.ttfot = Some(Duration::from_secs(30));
        rec.record(&s);
    }
    let s = metrics::summarize(&rec, &info(&names));
    let chat = &s.classes[0].stats;
    let mut ttfot: Vec<f64> = (0..1_000).map(|i| (i + 1) as f64).collect();
    let mut tpot: Vec<f64> = (0..1_000)
        .map(|i| ((i % 100 + 1) * 100) as f64 / 1e3)
        .collect();
    ttfot.sort_by(f64::total_cmp);
    tpot.sort_by(f64::total_cmp);
    let t = chat.ttfot_ms.unwrap();
    let p = chat.tpot_ms.unwrap();
    assert_eq!((t.samples, p.samples), (1_000, 1_000), "successes only");
    for (q, got_t, got_p) in [
        (0.5, t.p50, p.p50),
        (0.9, t.p90, p.p90),
        (0.99, t.p99, p.p99),
    ] {
        assert!(close(got_t, nearest_rank(&ttfot, q)), "ttfot p{q}: {got_t}");
        assert!(close(got_p, nearest_rank(&tpot, q)), "tpot p{q}: {got_p}");
    }
    assert!(close(t.max, 1_000.0), "{}", t.max);
    assert_eq!(s.overall.ttfot_ms.unwrap().samples, 1_000);
    assert!(s.classes[1].stats.ttfot_ms.is_none(), "nothing sent");
    // Each interval has its own, and they add up to the whole.
    let per_interval: u64 = s
        .intervals
        .iter()
        .filter_map(|iv| iv.classes["chat"].ttfot_ms.map(|p| p.samples))
        .sum();
    assert_eq!(per_interval, 1_000);
    assert!(
        s.intervals
            .iter()
            .filter(|iv| iv.overall.successes > 0)
            .all(|iv| iv.overall.tpot_ms.is_some())
    );

    // Tokens and where they came from: all 1,050 requests count.
    let tokens = chat.tokens;
    assert_eq!(
        tokens.cached,
        (0..1_000u64).map(|i| i % 2 * 16).sum::<u64>() + 25 * 16
    );
    assert_eq!(tokens.reasoning, 1_050 * 10);
    let from = chat.prompt_tokens_from;
    assert_eq!((from.tokenizer, from.usage), (250 + 13, 750 + 37));
}

#[test]
fn turns_and_prompt_lengths_are_broken_down() {
    let names = ["session", "single"];
    let mut rec = Recorder::new(layout(&names));
    for i in 0..300 {
        let mut s = sample(0, i);
        // Later turns are slower: 100 ms per turn.
        let turn = s.turn.unwrap();
        s.latency = Duration::from_millis(100 * u64::from(turn));
        s.ttft = Some(Duration::from_millis(10 * u64::from(turn)));
        if i.is_multiple_of(30) {
            s.result = Err(ErrorKind::Status5xx);
        }
        rec.record(&s);
        rec.record(&sample(1, i));
    }
    let s = metrics::summarize(&rec, &info(&names));
    let turns = &s.classes[0].turns;
    assert_eq!(turns.iter().map(|t| t.turn).collect::<Vec<_>>(), [1, 2, 3]);
    for t in turns {
        assert_eq!(t.requests, 100);
        // i % 30 == 0 is always turn 1 (i % 3 == 0): 10 failures there.
        let failed = if t.turn == 1 { 10 } else { 0 };
        assert_eq!(t.successes, 100 - failed, "turn {}", t.turn);
        assert!(close(t.latency_ms.p50, 100.0 * f64::from(t.turn)));
        assert!(close(t.ttft_ms.unwrap().p99, 10.0 * f64::from(t.turn)));
    }
    assert!(s.classes[1].turns.is_empty(), "no conversation, no turns");
    let json = serde_json::to_value(&s.classes[1]).unwrap();
    assert!(json.get("turns").is_none(), "left out of summary.json");

    // Prompts of 20, 200 and 2,000 tokens: three bins, a hundred each per class.
    let bins = &s.classes[1].prompt_lengths;
    assert_eq!(bins.len(), 3);
    for (b, tokens) in bins.iter().zip([20u64, 200, 2_000]) {
        assert!(
            b.min_tokens <= tokens && b.max_tokens.is_some_and(|m| tokens < m),
            "{b:?} holds {tokens}"
        );
        assert_eq!(b.requests, 100);
        assert_eq!(b.ttft_ms.unwrap().samples, 100);
    }
    // The TTFT of class 1 grows with i, and i % 3 picks the bin: bin order is not TTFT order,
    // but each bin's median is that of its own requests.
    let median_of = |k: u64| {
        let mut v: Vec<f64> = (0..300)
            .filter(|i| i % 3 == k)
            .map(|i| (500 + i * 10) as f64 / 1e3)
            .collect();
        v.sort_by(f64::total_cmp);
        nearest_rank(&v, 0.5)
    };
    for (k, b) in bins.iter().enumerate() {
        assert!(close(b.ttft_ms.unwrap().p50, median_of(k as u64)), "{b:?}");
    }
}

#[test]
fn split_recordings_merge_to_the_same_summary() {
    let names = ["session", "single"];
    let mut whole = Recorder::new(layout(&names));
    let mut a = Recorder::new(layout(&names));
    let mut b = Recorder::new(layout(&names));
    for i in 0..2_000 {
        let mut s = sample((i % 2) as usize, i);
        if i.is_multiple_of(17) {
            s.result = Err(ErrorKind::Timeout);
        }
        if i.is_multiple_of(101) {
            // A turn seen by one shard only.
            s.turn = s.turn.map(|_| 7);
        }
        whole.record(&s);
        if i % 3 == 0 { &mut a } else { &mut b }.record(&s);
    }
    a.merge(&b).unwrap();
    let run = info(&names);
    let merged = metrics::summarize(&a, &run);
    let single = metrics::summarize(&whole, &run);
    assert!(merged == single, "merging two shards changed the summary");
    assert!(merged.classes[0].turns.iter().any(|t| t.turn == 7));
    assert!(merged.overall.tpot_ms.is_some() && !merged.classes[0].prompt_lengths.is_empty());
}

fn sla(targets: &[(Scope, Objective)]) -> Sla {
    Sla {
        targets: targets
            .iter()
            .map(|(scope, objective)| SlaTarget {
                scope: scope.clone(),
                objective: *objective,
            })
            .collect(),
        ..Default::default()
    }
}

fn check_status(s: &Summary, targets: &[(Scope, Objective)]) -> Vec<(SlaKey, CheckStatus)> {
    metrics::sla::evaluate(&sla(targets), s)
        .checks
        .iter()
        .map(|c| (c.name, c.status))
        .collect()
}

#[test]
fn ttfot_and_tpot_p99_are_judged_per_scope() {
    let names = ["chat", "batch"];
    let mut rec = Recorder::new(layout(&names));
    for i in 0..1_200 {
        rec.record(&sample(0, i));
    }
    for i in 0..50 {
        rec.record(&sample(1, i));
    }
    let s = metrics::summarize(&rec, &info(&names));
    // chat: TTFOT p99 is 1,188 ms, TPOT p99 9.9 ms.
    let ms = Duration::from_millis;
    let chat = || Scope::Class("chat".into());
    let got = check_status(
        &s,
        &[
            (chat(), Objective::TtfotP99(ms(1_300))),
            (chat(), Objective::TtfotP99(ms(1_000))),
            (chat(), Objective::TpotP99(ms(12))),
            (chat(), Objective::TpotP99(ms(5))),
            (Scope::Class("batch".into()), Objective::TtfotP99(ms(1_300))),
        ],
    );
    assert_eq!(
        got,
        [
            (SlaKey::TtfotP99, CheckStatus::Pass),
            (SlaKey::TtfotP99, CheckStatus::Fail),
            (SlaKey::TpotP99, CheckStatus::Pass),
            (SlaKey::TpotP99, CheckStatus::Fail),
            // 50 requests cannot support a p99 claim.
            (SlaKey::TtfotP99, CheckStatus::Inconclusive),
        ]
    );
    // A run whose streams never produced an output token cannot pass the key.
    let mut none = Recorder::new(layout(&names));
    for i in 0..1_200 {
        let mut s = sample(0, i);
        s.ttfot = None;
        s.tpot = None;
        none.record(&s);
    }
    let s = metrics::summarize(&none, &info(&names));
    let result = metrics::sla::evaluate(&sla(&[(Scope::Overall, Objective::TtfotP99(ms(1)))]), &s);
    assert_eq!(result.checks[0].status, CheckStatus::Inconclusive);
    assert!(result.checks[0].note.is_some());
}

#[test]
fn cached_prompt_tokens_are_priced_at_the_cached_price() {
    let names = ["chat"];
    let mut rec = Recorder::new(layout(&names));
    for i in 0..100 {
        rec.record(&sample(0, i));
    }
    let run = info(&names);
    let counters = |prompt, completion, cached, reasoning| UpstreamCounters {
        requests_total: 100,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
    };
    let before = BTreeMap::from([("alpha".to_string(), counters(0, 0, 0, 0))]);
    // 1.5M prompt tokens of which 600k cached; 250k completion of which 50k reasoning.
    let after = BTreeMap::from([(
        "alpha".to_string(),
        counters(1_500_000, 250_000, 600_000, 50_000),
    )]);
    let cost_with = |cached_input_per_m: Option<f64>| {
        let prices = BTreeMap::from([(
            "alpha".to_string(),
            Price {
                input_per_m: 1.0,
                output_per_m: 4.0,
                cached_input_per_m,
            },
        )]);
        let faults: [FaultAttempt; 0] = [];
        metrics::conclude(Evidence {
            recording: &rec,
            info: &run,
            faults: &faults,
            counters_before: &before,
            counters_after: &after,
            answered_tokens: &BTreeMap::new(),
            prices: &prices,
            sla: &Sla::default(),
            monthly_tokens: &[],
            alternatives: &[],
        })
    };
    let s = cost_with(Some(0.1));
    // By hand: 900k fresh input at $1/M = $0.90, 600k cached at $0.10/M = $0.06, 250k output
    // (reasoning included) at $4/M = $1.00.
    let total = s.cost.as_ref().unwrap().total_usd;
    assert!((total - 1.96).abs() < 0.005, "{total}");
    let up = &s.upstreams[0];
    assert_eq!((up.tokens.cached, up.tokens.reasoning), (600_000, 50_000));
    assert_eq!(up.price_cached_in_per_m, Some(0.1));
    // A profile without a cached price bills them as input: 1.5M at $1/M + $1.00.
    let plain = cost_with(None).cost.unwrap().total_usd;
    assert!((plain - 2.50).abs() < 0.005, "{plain}");
}

#[test]
fn a_schema_2_summary_still_loads() {
    let names = ["chat"];
    let mut rec = Recorder::new(layout(&names));
    for i in 0..10 {
        rec.record(&sample(0, i));
    }
    let s = metrics::summarize(&rec, &info(&names));
    let mut json = serde_json::to_value(&s).unwrap();
    // What a schema 2 writer wrote: none of the new fields.
    json["schema_version"] = 2.into();
    let strip = |v: &mut serde_json::Value| {
        let o = v.as_object_mut().unwrap();
        for k in [
            "ttfot_ms",
            "tpot_ms",
            "prompt_tokens_from",
            "turns",
            "prompt_lengths",
        ] {
            o.remove(k);
        }
        if let Some(t) = o.get_mut("tokens").and_then(|t| t.as_object_mut()) {
            t.remove("cached");
            t.remove("reasoning");
        }
    };
    strip(&mut json["overall"]);
    for c in json["classes"].as_array_mut().unwrap() {
        strip(c);
    }
    for iv in json["intervals"].as_array_mut().unwrap() {
        strip(&mut iv["overall"]);
        for (_, c) in iv["classes"].as_object_mut().unwrap() {
            strip(c);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("summary.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let (old, _) = gauntlet::rundir::RunDir::load(&path).unwrap();
    assert_eq!(old.schema_version, 2);
    assert!(old.overall.ttfot_ms.is_none() && old.classes[0].turns.is_empty());
    assert_eq!(old.overall.tokens.prompt, s.overall.tokens.prompt);
}

/// TPOT divides the output span by the output tokens less one: the usage's completion count
/// less its reasoning when the usage gives one, else one token per output delta. The span is
/// exactly the sum of the recorded inter-token gaps, so each case is computed by hand.
/// Without usage, reasoning deltas count as reasoning (and completion) tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpot_divides_by_the_usages_output_tokens_else_by_the_output_deltas() {
    let gap = Duration::from_millis(5);
    let server = support::chat_server(move |r| {
        let req: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let usage = match req["model"].as_str().unwrap_or("") {
            // 10 content deltas, but the usage counts 20 output tokens (plus 4 reasoning).
            "usage" => Some([50, 24, 0, 4]),
            // A usage that counts no completion tokens says nothing about them.
            "zero" => Some([50, 0, 0, 0]),
            // One output token has no time per output token (and must not divide by zero).
            "one" => return paced(reasoning_stream("alpha", 0, 1, None), gap),
            _ => None,
        };
        paced(reasoning_stream("alpha", 4, 10, usage), gap)
    })
    .await;
    let client = Client::new(
        &[
            class("usage", 1, "usage", true),
            class("zero", 1, "zero", true),
            class("none", 1, "none", true),
            class("one", 1, "one", true),
        ],
        &[server.url(), server.url(), server.url(), server.url()],
        ClientOptions {
            timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    for (i, output_tokens) in [(0, 20), (1, 10), (2, 10)] {
        let s = client.send(i, Instant::now(), Duration::ZERO).await;
        assert_eq!(s.result, Ok(()), "class {i}");
        assert_eq!(s.itl.len(), 9, "ten output deltas, nine gaps");
        let span: Duration = s.itl.iter().sum();
        assert_eq!(
            s.tpot,
            Some(span / (output_tokens - 1)),
            "class {i}: {output_tokens} output tokens"
        );
    }
    // No usage: four reasoning deltas and ten content deltas, one token each.
    let s = client.send(2, Instant::now(), Duration::ZERO).await;
    assert_eq!((s.completion_tokens, s.reasoning_tokens), (14, 4));
    let one = client.send(3, Instant::now(), Duration::ZERO).await;
    assert_eq!((one.result, one.tpot), (Ok(()), None), "{one:?}");
    server.join().await;
}
