//! Every number of `summary.json` and the terminal summary checked against a value computed
//! by hand from a made-up recording, not against what the code produced last time.
//!
//! The recording: 10 s, 1 s intervals, no warmup. Class `chat` sends 100 requests, the i-th
//! (1..=100) intended at (i-1)*100 ms, taking i ms, sent i*100 us late, served by `a` with 10
//! prompt and 20 completion tokens. Class `code` sends one request a second (j = 0..9, at
//! j s + 50 ms, on time): j < 8 succeed on `b` in 200 ms with TTFT (j+1)*10 ms, token gaps of
//! 10 and 20 ms, 100 + 50 tokens; j = 8 is a 500 after 30 ms; j = 9 the gateway's own 429
//! after 5 ms.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use gauntlet::metrics::cost::Price;
use gauntlet::metrics::{
    CheckStatus, ClassInfo, ErrorKind, Evidence, Layout, PerRequestBounds, Percentiles, Recorder,
    RunInfo, Sample, ServedBy, SlaKey, Summary, UpstreamCounters, conclude,
};
use gauntlet::scenario::{Objective, PerRequest, Scope, Sla, SlaTarget};

const CHAT: usize = 0;
const CODE: usize = 1;
const A: u16 = 0;
const B: u16 = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn recording() -> Recorder {
    recording_judged(PerRequest::default())
}

/// The layout of the hand-made recordings: `chat` and `code` over upstreams `a` and `b`, ten
/// one-second intervals, no warmup.
fn ten_seconds() -> Layout {
    Layout::new(
        vec!["chat".into(), "code".into()],
        vec!["a".into(), "b".into()],
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
}

/// The recording, each success also judged against `[sla.per_request]` for goodput.
fn recording_judged(per_request: PerRequest) -> Recorder {
    let layout = ten_seconds().with_per_request(per_request);
    let mut rec = Recorder::new(layout);
    for i in 1..=100u64 {
        let mut s = Sample::new(CHAT, ms((i - 1) * 100), Duration::from_micros(i * 100));
        s.latency = ms(i);
        s.served_by = Some(ServedBy::Known(A));
        s.prompt_tokens = 10;
        s.completion_tokens = 20;
        rec.record(&s);
    }
    for j in 0..10u64 {
        let mut s = Sample::new(CODE, ms(j * 1000 + 50), Duration::ZERO);
        match j {
            8 => {
                s.latency = ms(30);
                s.result = Err(ErrorKind::Status5xx);
            }
            9 => {
                s.latency = ms(5);
                s.result = Err(ErrorKind::RateLimited);
                s.gateway_rate_limited = true;
            }
            _ => {
                s.latency = ms(200);
                s.ttft = Some(ms((j + 1) * 10));
                s.itl = vec![ms(10), ms(20)];
                s.served_by = Some(ServedBy::Known(B));
                s.prompt_tokens = 100;
                s.completion_tokens = 50;
            }
        }
        rec.record(&s);
    }
    rec.add_abandoned(2);
    rec
}

fn info() -> RunInfo {
    let class = |name: &str, weight, stream| ClassInfo {
        name: name.into(),
        weight,
        model: format!("{name}-model"),
        stream,
        api: "chat",
        primary: None,
        tier: None,
    };
    RunInfo {
        scenario: "hand-made".into(),
        description: None,
        seed: 3,
        target: "http://127.0.0.1:1".into(),
        started_at: SystemTime::UNIX_EPOCH,
        ran_for: Duration::from_secs(10),
        interrupted: false,
        classes: vec![class("chat", 10, false), class("code", 1, true)],
    }
}

/// The summary of a recording with no upstream counters, prices or alternatives.
fn concluded(
    rec: &Recorder,
    info: &RunInfo,
    faults: &[gauntlet::metrics::failover::FaultAttempt],
    sla: &Sla,
) -> Summary {
    let none = BTreeMap::new();
    conclude(Evidence {
        recording: rec,
        info,
        faults,
        counters_before: &none,
        counters_after: &none,
        answered_tokens: &BTreeMap::new(),
        prices: &BTreeMap::new(),
        sla,
        monthly_tokens: &[],
        alternatives: &[],
    })
}

fn counters(requests_total: u64, prompt_tokens: u64, completion_tokens: u64) -> UpstreamCounters {
    UpstreamCounters {
        requests_total,
        prompt_tokens,
        completion_tokens,
        ..UpstreamCounters::default()
    }
}

fn summary() -> Summary {
    let rec = recording();
    let info = info();
    // The upstreams' own counters: `a` received 5 retries on top of the 100 it served.
    let before = BTreeMap::from([
        ("a".to_string(), counters(7, 40, 40)),
        ("b".to_string(), counters(0, 0, 0)),
    ]);
    let after = BTreeMap::from([
        ("a".to_string(), counters(7 + 105, 40 + 1_000, 40 + 2_000)),
        ("b".to_string(), counters(10, 800, 400)),
    ]);
    let prices = BTreeMap::from([
        (
            "a".to_string(),
            Price {
                input_per_m: 1.0,
                output_per_m: 2.0,
                cached_input_per_m: None,
            },
        ),
        (
            "b".to_string(),
            Price {
                input_per_m: 10.0,
                output_per_m: 20.0,
                cached_input_per_m: None,
            },
        ),
    ]);
    let overall = |objective| SlaTarget {
        scope: Scope::Overall,
        objective,
    };
    let sla = Sla {
        targets: vec![
            // The class's own availability bar comes first, so a lookup that ignored the
            // scope would hold the whole run to it.
            SlaTarget {
                scope: Scope::Class("code".into()),
                objective: Objective::Availability(0.95),
            },
            overall(Objective::Availability(0.9)),
            overall(Objective::Uptime(0.5)),
            overall(Objective::P99Latency(ms(250))),
            overall(Objective::MaxCostPerMillion(100.0)),
            overall(Objective::MaxRetryAmplification(1.5)),
            SlaTarget {
                scope: Scope::Class("code".into()),
                objective: Objective::TtftP99(ms(500)),
            },
        ],
        ..Default::default()
    };
    conclude(Evidence {
        recording: &rec,
        info: &info,
        faults: &[],
        counters_before: &before,
        counters_after: &after,
        answered_tokens: &BTreeMap::new(),
        prices: &prices,
        sla: &sla,
        monthly_tokens: &[1_000_000, 300_000_000],
        alternatives: &[],
    })
}

/// Equal within the histograms' precision (3 significant digits) and float rounding.
fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= want.abs() * 2e-3 + 1e-9
}

#[track_caller]
fn assert_near(got: f64, want: f64, what: &str) {
    assert!(near(got, want), "{what}: got {got}, want {want}");
}

#[track_caller]
fn assert_percentiles(p: &Percentiles, want: [f64; 6], samples: u64, what: &str) {
    assert_eq!(p.samples, samples, "{what} samples");
    let [p50, p90, p99, p999, max, mean] = want;
    for (got, want, name) in [
        (p.p50, p50, "p50"),
        (p.p90, p90, "p90"),
        (p.p99, p99, "p99"),
        (p.p999, p999, "p99.9"),
        (p.max, max, "max"),
        (p.mean, mean, "mean"),
    ] {
        assert_near(got, want, &format!("{what} {name}"));
    }
}

#[test]
fn overall_counts_rates_and_percentiles_are_the_hand_computed_ones() {
    let s = summary();
    let o = &s.overall;
    assert_eq!((o.requests, o.successes, o.dropped), (110, 108, 0));
    assert_near(o.availability, 108.0 / 110.0, "availability");
    assert_near(o.rps, 11.0, "rps");
    assert_near(s.duration_s, 10.0, "duration");
    // Successes only, nearest rank of 108 values (1..=100 ms and eight of 200 ms): p50 is the
    // 54th, p90 the 98th (ceil 97.2), p99 the 107th.
    let mean = (5_050.0 + 8.0 * 200.0) / 108.0;
    assert_percentiles(
        &o.latency_ms,
        [54.0, 98.0, 200.0, 200.0, 200.0, mean],
        108,
        "latency",
    );
    // TTFT 10..=80 ms: the 4th of 8 is the median.
    let ttft = o.ttft_ms.as_ref().expect("code streams");
    assert_percentiles(ttft, [40.0, 80.0, 80.0, 80.0, 80.0, 45.0], 8, "ttft");
    let itl = o.itl_ms.as_ref().expect("token gaps");
    assert_percentiles(itl, [10.0, 20.0, 20.0, 20.0, 20.0, 15.0], 16, "itl");
    assert_eq!(
        o.errors,
        BTreeMap::from([("rate_limited".into(), 1), ("status_5xx".into(), 1)])
    );
    assert_percentiles(
        &o.time_to_error_ms["status_5xx"],
        [30.0; 6],
        1,
        "time to 5xx",
    );
    assert_percentiles(
        &o.time_to_error_ms["rate_limited"],
        [5.0; 6],
        1,
        "time to 429",
    );
    assert_eq!(o.time_to_error_ms.len(), 2);
    assert_eq!(
        o.served_by,
        BTreeMap::from([("a".into(), 100), ("b".into(), 8)])
    );
    assert_eq!(
        (o.tokens.prompt, o.tokens.completion),
        (100 * 10 + 8 * 100, 100 * 20 + 8 * 50)
    );
    assert_eq!(o.gateway_rate_limited, 1);
}

#[test]
fn per_class_numbers_and_the_nines_spectrum_are_the_hand_computed_ones() {
    let s = summary();
    assert_eq!(s.classes.len(), 2);
    let (chat, code) = (&s.classes[0], &s.classes[1]);
    assert_eq!(
        (
            chat.name.as_str(),
            chat.weight,
            chat.model.as_str(),
            chat.stream
        ),
        ("chat", 10, "chat-model", false)
    );
    assert_eq!(
        (code.name.as_str(), code.weight, code.stream),
        ("code", 1, true)
    );
    assert_eq!((chat.stats.requests, chat.stats.successes), (100, 100));
    assert_eq!((code.stats.requests, code.stats.successes), (10, 8));
    assert_near(chat.stats.availability, 1.0, "chat availability");
    assert_near(code.stats.availability, 0.8, "code availability");
    assert_near(chat.stats.rps, 10.0, "chat rps");
    assert_near(code.stats.rps, 1.0, "code rps");
    assert_percentiles(
        &chat.stats.latency_ms,
        [50.0, 90.0, 99.0, 100.0, 100.0, 50.5],
        100,
        "chat latency",
    );
    assert_percentiles(&code.stats.latency_ms, [200.0; 6], 8, "code latency");
    assert!(chat.stats.ttft_ms.is_none() && chat.stats.itl_ms.is_none());
    assert_eq!(
        (chat.stats.tokens.prompt, chat.stats.tokens.completion),
        (1_000, 2_000)
    );
    assert_eq!(
        (code.stats.tokens.prompt, code.stats.tokens.completion),
        (800, 400)
    );
    assert_eq!(code.stats.gateway_rate_limited, 1);
    assert_eq!(chat.stats.gateway_rate_limited, 0);
    // The nines of 1..=100 ms: the value at percentile q is ceil(q) ms (nearest rank).
    let want: Vec<(f64, f64)> = [
        0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
    ]
    .iter()
    .map(|&q: &f64| (q, q.ceil().max(1.0)))
    .collect();
    assert_eq!(chat.latency_spectrum.len(), want.len());
    for ((q, v), (wq, wv)) in chat.latency_spectrum.iter().zip(&want) {
        assert_eq!(q, wq);
        assert_near(*v, *wv, &format!("spectrum at {q}"));
    }
}

#[test]
fn intervals_and_the_generator_are_the_hand_computed_ones() {
    let s = summary();
    assert_eq!(s.intervals.len(), 10);
    for (k, iv) in s.intervals.iter().enumerate() {
        let k64 = k as u64;
        assert_near(iv.t_s, k as f64, "interval start");
        let o = &iv.overall;
        // Ten chat requests and one code request in each second.
        assert_eq!(o.requests, 11, "interval {k}");
        let ok = if k >= 8 { 10 } else { 11 };
        assert_eq!(o.successes, ok, "interval {k}");
        assert_near(
            o.availability.expect("requests"),
            ok as f64 / 11.0,
            "interval availability",
        );
        let chat = &iv.classes["chat"];
        assert_eq!((chat.requests, chat.successes), (10, 10));
        // Chat latencies 10k+1..=10k+10 ms: the 5th is the median; intervals keep 2
        // significant digits, so a looser bound (2%).
        let lat = chat.latency_ms.as_ref().expect("successes");
        let want = (10 * k64 + 5) as f64;
        assert!(
            (lat.p50 - want).abs() <= want * 0.02,
            "interval {k}: {lat:?}"
        );
        assert_eq!(lat.samples, 10);
        assert_eq!(chat.served_by, BTreeMap::from([("a".into(), 10)]));
        let code = &iv.classes["code"];
        assert_eq!(code.requests, 1);
        match k {
            8 => {
                assert_eq!(o.errors, BTreeMap::from([("status_5xx".into(), 1)]));
                assert!(code.latency_ms.is_none() && code.ttft_ms.is_none());
                let t = &o.time_to_error_ms["status_5xx"];
                assert!((t.p50 - 30.0).abs() <= 0.6, "{t:?}");
            }
            9 => {
                assert_eq!(o.errors, BTreeMap::from([("rate_limited".into(), 1)]));
                assert!(!o.served_by.contains_key("b"));
            }
            _ => {
                assert!(o.errors.is_empty(), "interval {k}: {:?}", o.errors);
                let ttft = code.ttft_ms.as_ref().expect("a stream");
                let want = ((k64 + 1) * 10) as f64;
                assert!((ttft.p50 - want).abs() <= want * 0.02, "{ttft:?}");
                assert_eq!(
                    o.served_by,
                    BTreeMap::from([("a".into(), 10), ("b".into(), 1)])
                );
            }
        }
    }
    // Lags: ten of 0 and 0.1..=10 ms. Of 110, the 55th is the 45th chat lag, the 99th the
    // 89th, the 109th the 99th.
    let lag = &s.generator.schedule_lag_ms;
    assert_percentiles(lag, [4.5, 8.9, 9.9, 10.0, 10.0, 505.0 / 110.0], 110, "lag");
    assert_eq!((s.generator.dropped, s.generator.abandoned), (0, 2));
    // A p99 lag of 9.9 ms is within the 10 ms the generator is trusted to.
    assert!(s.trust.trustworthy, "{:?}", s.trust);
}

#[test]
fn upstreams_cost_and_retry_amplification_are_the_hand_computed_ones() {
    let s = summary();
    let rows: Vec<_> = s
        .upstreams
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.received,
                u.served,
                u.tokens.prompt,
                u.tokens.completion,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a", Some(105), 100, 1_000, 2_000),
            ("b", Some(10), 8, 800, 400)
        ]
    );
    let (a, b) = (&s.upstreams[0], &s.upstreams[1]);
    // a: 1,000 in at $1/M + 2,000 out at $2/M; b: 800 at $10/M + 400 at $20/M.
    let (cost_a, cost_b) = (0.005, 0.016);
    assert_near(a.cost_usd.expect("priced"), cost_a, "cost a");
    assert_near(b.cost_usd.expect("priced"), cost_b, "cost b");
    assert_eq!(
        (a.price_in_per_m, a.price_out_per_m),
        (Some(1.0), Some(2.0))
    );
    assert_eq!(
        (b.price_in_per_m, b.price_out_per_m),
        (Some(10.0), Some(20.0))
    );
    let cost = s.cost.as_ref().expect("prices given");
    let total = cost_a + cost_b;
    assert_near(cost.total_usd, total, "total");
    assert_near(
        cost.per_million_requests_usd,
        total / 110.0 * 1e6,
        "per 1M requests",
    );
    // 4,200 tokens for $0.021: $5 per million.
    assert_near(cost.blended_per_million_tokens_usd, 5.0, "blended");
    assert_near(cost.failover_extra_usd, 0.0, "no fault, no failover cost");
    let monthly: Vec<(u64, f64)> = cost
        .monthly
        .iter()
        .map(|m| (m.tokens_per_month, m.usd))
        .collect();
    assert_eq!(monthly.len(), 2);
    assert_eq!((monthly[0].0, monthly[1].0), (1_000_000, 300_000_000));
    assert_near(monthly[0].1, 5.0, "1M tokens a month");
    assert_near(monthly[1].1, 1_500.0, "300M tokens a month");
    // 115 attempts received for 110 requests sent.
    assert_near(
        s.retry_amplification.expect("every upstream counted"),
        115.0 / 110.0,
        "retry amplification",
    );
}

#[test]
fn sla_checks_measure_the_hand_computed_values() {
    let s = summary();
    let check = |key: SlaKey, scope: &str| {
        s.sla
            .checks
            .iter()
            .find(|c| c.name == key && c.scope == scope)
            .unwrap_or_else(|| panic!("no {key} {scope} check: {:?}", s.sla.checks))
    };
    let avail = check(SlaKey::Availability, "overall");
    assert_near(
        avail.measured.expect("measured"),
        108.0 / 110.0,
        "availability",
    );
    assert_eq!((avail.samples, avail.status), (110, CheckStatus::Pass));
    let code = check(SlaKey::Availability, "class:code");
    assert_near(code.measured.expect("measured"), 0.8, "code availability");
    assert_eq!((code.samples, code.status), (10, CheckStatus::Fail));
    // Every interval is at or above the overall bar of 90% (11/11 or 10/11); the class's
    // own 95% bar, or the default 99.9%, would leave 8 of 10.
    let uptime = check(SlaKey::Uptime, "overall");
    assert_near(uptime.measured.expect("measured"), 1.0, "uptime");
    assert_eq!((uptime.samples, uptime.status), (10, CheckStatus::Pass));
    let p99 = check(SlaKey::P99Latency, "overall");
    assert_near(p99.measured.expect("measured"), 200.0, "p99");
    assert_eq!(p99.samples, 108);
    // 108 successes cannot support a p99 claim (1,000 needed).
    assert_eq!(p99.status, CheckStatus::Inconclusive);
    let cost = check(SlaKey::MaxCostPerMillion, "overall");
    assert_near(
        cost.measured.expect("measured"),
        0.021 / 110.0 * 1e6,
        "cost",
    );
    assert_eq!(
        cost.status,
        CheckStatus::Fail,
        "$190.9 > $100 per 1M requests"
    );
    let amp = check(SlaKey::MaxRetryAmplification, "overall");
    assert_near(
        amp.measured.expect("measured"),
        115.0 / 110.0,
        "amplification",
    );
    assert_eq!(amp.status, CheckStatus::Pass);
    // Measured on that class alone: chat has no TTFT.
    let ttft = check(SlaKey::TtftP99, "class:code");
    assert_near(ttft.measured.expect("measured"), 80.0, "code ttft p99");
    // Bounds are in the check's unit: 500 ms is 500, as 250 ms was for p99 latency.
    assert_eq!((ttft.target, ttft.unit.as_str()), (500.0, "ms"));
    assert_eq!((p99.target, p99.unit.as_str()), (250.0, "ms"));
    // Within its bound but on 8 samples: not a pass.
    assert_eq!((ttft.samples, ttft.status), (8, CheckStatus::Inconclusive));
    assert_eq!(s.sla.verdict, CheckStatus::Fail);
    assert!(!s.sla.passed);
}

#[test]
fn the_terminal_summary_prints_the_hand_computed_numbers() {
    let s = summary();
    let text = gauntlet::report::terminal_summary(&s);
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` line in:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // class, requests, avail, rps, p50 ms, p99 ms, ttft p99 ms, errors.
    let overall = line("overall");
    assert_eq!(overall[1..4], ["110", "98.18%", "11.0/s"], "{text}");
    assert_eq!(overall[4..8], ["54.0", "ms", "200", "ms"], "{text}");
    assert!(overall[8].starts_with("80"), "{text}");
    assert_eq!(overall.last(), Some(&"2"), "{text}");
    let code = line("code");
    assert_eq!(code[1..4], ["10", "80.00%", "1.0/s"], "{text}");
    let chat = line("chat");
    assert_eq!(
        chat[1..8],
        ["100", "100%", "10.0/s", "50.0", "ms", "99.0", "ms"]
    );
    assert!(
        text.contains("cost: $0.0210 this run, $191 per 1M requests, $5.00 per 1M tokens"),
        "{text}"
    );
    assert!(
        text.contains("1M tokens $5.00 · 300M tokens $1,500"),
        "{text}"
    );
    assert!(
        text.contains("schedule lag p50 4.5 ms, p99 9.9 ms, max 10.0 ms; dropped 0"),
        "{text}"
    );
    assert!(text.contains("status_5xx p50 30.0 ms"), "{text}");
    assert!(text.contains("retry amplification: 1.045x"), "{text}");
    assert!(text.contains("rate_limited 1, status_5xx 1"), "{text}");
}

#[test]
fn failover_is_judged_against_the_scenarios_availability_bar() {
    // `chat` (primary `a`) sends 10 requests a second for 10 s; `a` is out from 4 s to 6 s,
    // when `b` serves 9 of each second's 10 and one fails. 90% clears the scenario's 80% bar
    // from the first interval, where the default 99.9% would never be met.
    // `code` is served by `b` throughout (one a second): the fault does not hit it.
    let layout = ten_seconds();
    let mut rec = Recorder::new(layout);
    for i in 0..100u64 {
        let mut s = Sample::new(CHAT, ms(i * 100), Duration::ZERO);
        s.latency = ms(10);
        let in_outage = (40..60).contains(&i);
        if in_outage && i % 10 == 0 {
            s.result = Err(ErrorKind::Status5xx);
        } else {
            s.served_by = Some(ServedBy::Known(if in_outage { B } else { A }));
        }
        rec.record(&s);
    }
    for j in 0..10u64 {
        let mut s = Sample::new(CODE, ms(j * 1000 + 50), Duration::ZERO);
        s.latency = ms(10);
        s.served_by = Some(ServedBy::Known(B));
        rec.record(&s);
    }
    let mut info = info();
    info.classes[0].primary = Some("a".into());
    let fault = gauntlet::metrics::failover::FaultAttempt::applied(
        "a",
        "outage",
        (Duration::from_secs(4), Duration::from_secs(6)),
        Duration::from_secs(4),
        Some(Duration::from_secs(6)),
    );
    let overall = |objective| SlaTarget {
        scope: Scope::Overall,
        objective,
    };
    let sla = Sla {
        targets: vec![
            overall(Objective::Availability(0.8)),
            overall(Objective::FailoverSuccess(0.5)),
            SlaTarget {
                scope: Scope::Class("code".into()),
                objective: Objective::FailoverSuccess(0.5),
            },
        ],
        ..Default::default()
    };
    let s = concluded(&rec, &info, &[fault], &sla);
    let w = &s.faults[0];
    assert_eq!(w.affected_classes, ["chat"]);
    assert_eq!((w.affected_requests, w.affected_successes), (20, 18));
    assert_near(
        w.failover_success.expect("requests"),
        0.9,
        "failover success",
    );
    assert_eq!(w.time_to_failover_s, Some(0.0), "{w:?}");
    assert_eq!(w.time_to_recover_s, Some(0.0), "{w:?}");
    assert_eq!(s.classes[0].stats.served_by["b"], 18);
    let check = &s.sla.checks[1];
    assert_eq!(check.name, SlaKey::FailoverSuccess);
    assert_near(
        check.measured.expect("measured"),
        0.9,
        "failover success check",
    );
    assert_eq!((check.samples, check.status), (20, CheckStatus::Pass));
    assert_eq!(
        check.note, None,
        "requests were sent during the fault: {check:?}"
    );
    // The class the fault did not hit has nothing to fail over.
    let code = &s.sla.checks[2];
    assert_eq!(
        (code.scope.as_str(), code.measured, code.samples),
        ("class:code", None, 0)
    );
    assert_eq!(code.status, CheckStatus::Inconclusive);
}

#[test]
fn a_latency_claim_with_no_success_measures_nothing() {
    // Latency is measured on successes: a run where every request failed has no p99 at all,
    // not a p99 of 0 ms.
    let layout = Layout::new(
        vec!["chat".into()],
        Vec::new(),
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(2),
    );
    let mut rec = Recorder::new(layout);
    for i in 0..20u64 {
        let mut s = Sample::new(CHAT, ms(i * 100), Duration::ZERO);
        s.latency = ms(3);
        s.result = Err(ErrorKind::Connect);
        rec.record(&s);
    }
    let mut info = info();
    info.classes.truncate(1);
    info.ran_for = Duration::from_secs(2);
    let sla = Sla {
        targets: vec![SlaTarget {
            scope: Scope::Overall,
            objective: Objective::P99Latency(ms(100)),
        }],
        ..Default::default()
    };
    let s = concluded(&rec, &info, &[], &sla);
    assert_eq!((s.overall.requests, s.overall.successes), (20, 0));
    assert_eq!(s.overall.errors["connect"], 20);
    let c = &s.sla.checks[0];
    assert_eq!((c.measured, c.samples), (None, 0), "{c:?}");
    assert_eq!(c.status, CheckStatus::Inconclusive);
    assert_eq!(
        c.note.as_deref(),
        Some("no request succeeded (latency is measured on successes)")
    );
    assert_eq!(s.sla.verdict, CheckStatus::Inconclusive);
}

/// A one-class run of `n` successes of 10 ms, one every 100 ms, judged against `objective`.
fn judge_successes(n: u64, objective: Objective) -> Summary {
    let layout = Layout::new(
        vec!["chat".into()],
        Vec::new(),
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(2),
    );
    let mut rec = Recorder::new(layout);
    for i in 0..n {
        let mut s = Sample::new(CHAT, ms(i * 100), Duration::ZERO);
        s.latency = ms(10);
        rec.record(&s);
    }
    let mut info = info();
    info.classes.truncate(1);
    info.ran_for = Duration::from_secs(2);
    let sla = Sla {
        targets: vec![SlaTarget {
            scope: Scope::Overall,
            objective,
        }],
        ..Default::default()
    };
    concluded(&rec, &info, &[], &sla)
}

#[test]
fn a_ratio_promise_needs_exactly_the_samples_that_leave_room_for_one_failure() {
    // 90% leaves room for one failure in 10: ten successes back it, nine cannot.
    let ten = judge_successes(10, Objective::Availability(0.9));
    assert_eq!(ten.sla.checks[0].status, CheckStatus::Pass, "{:?}", ten.sla);
    assert!(ten.sla.passed);
    let nine = judge_successes(9, Objective::Availability(0.9));
    let c = &nine.sla.checks[0];
    assert_eq!((c.status, c.samples), (CheckStatus::Inconclusive, 9));
    assert_eq!(
        c.note.as_deref(),
        Some(
            "9 samples cannot support this target (needs at least 10); run longer or at a higher rate"
        )
    );
    assert!(!nine.sla.passed);
    // No request at all measures no availability (not the 100% of an empty ratio).
    let none = judge_successes(0, Objective::Availability(0.9));
    let c = &none.sla.checks[0];
    assert_eq!(
        (c.measured, c.samples, c.status),
        (None, 0, CheckStatus::Inconclusive)
    );
    assert_eq!(c.note, None, "{c:?}");
}

/// The misses behind a TTFOT and a TPOT bound are counted like latency's: code's eight
/// streams reach their first output token at 15..=85 ms and pace it at 1..=8 ms a token; a
/// class that sent nothing has none.
#[test]
fn the_tail_counts_behind_ttfot_and_tpot_checks_are_hand_computed() {
    let layout = ten_seconds();
    let mut rec = Recorder::new(layout);
    for j in 0..8u64 {
        let mut s = Sample::new(CODE, ms(j * 1000 + 50), Duration::ZERO);
        s.latency = ms(200);
        s.ttft = Some(ms((j + 1) * 10));
        s.ttfot = Some(ms((j + 1) * 10 + 5));
        s.tpot = Some(ms(j + 1));
        s.served_by = Some(ServedBy::Known(B));
        rec.record(&s);
    }
    let sla = Sla {
        targets: vec![
            SlaTarget {
                scope: Scope::Class("code".into()),
                objective: Objective::TtfotP99(ms(40)),
            },
            SlaTarget {
                scope: Scope::Overall,
                objective: Objective::TpotP99(ms(5)),
            },
            // chat sent nothing: no misses to count (not "0 of 0").
            SlaTarget {
                scope: Scope::Class("chat".into()),
                objective: Objective::TtfotP99(ms(40)),
            },
        ],
        ..Default::default()
    };
    let s = concluded(&rec, &info(), &[], &sla);
    let misses: Vec<_> = s
        .sla
        .checks
        .iter()
        .map(|c| c.misses.map(|m| (m.count, m.of, m.allowed)))
        .collect();
    // TTFOT over 40 ms: 45..=85 ms, 5 of 8. TPOT over 5 ms: 6..=8 ms, 3 of 8.
    assert_eq!(misses, [Some((5, 8, 0.01)), Some((3, 8, 0.01)), None]);
}

/// Goodput with `[sla.per_request] ttft = "50ms"`: a request that is not streamed gets its
/// first token with its last byte, so chat's i-th request (i ms) is good for i <= 50; code's
/// j-th success has TTFT (j+1)*10 ms, good for j <= 4; failures are never good. 55 of 110.
#[test]
fn goodput_and_the_tail_counts_behind_each_check_are_hand_computed() {
    let rec = recording_judged(PerRequest {
        ttft: Some(ms(50)),
        ..PerRequest::default()
    });
    let class = |name: &str| Scope::Class(name.into());
    let sla = Sla {
        targets: vec![
            SlaTarget {
                scope: Scope::Overall,
                objective: Objective::Goodput(0.4),
            },
            SlaTarget {
                scope: Scope::Overall,
                objective: Objective::MinGoodputRps(6.0),
            },
            SlaTarget {
                scope: Scope::Overall,
                objective: Objective::P99Latency(ms(50)),
            },
            SlaTarget {
                scope: class("code"),
                objective: Objective::TtftP99(ms(30)),
            },
            SlaTarget {
                scope: Scope::Overall,
                objective: Objective::Availability(0.9),
            },
            SlaTarget {
                scope: Scope::Tier("pro".into()),
                objective: Objective::P99Latency(ms(50)),
            },
        ],
        ..Default::default()
    };
    // `chat` alone is in tier `pro`.
    let mut info = info();
    info.classes[CHAT].tier = Some("pro".into());
    let s = concluded(&rec, &info, &[], &sla);
    assert_eq!(s.overall.good, 55);
    assert_eq!(s.overall.goodput, 0.5);
    assert_eq!(s.overall.goodput_rps, 5.5);
    let chat = &s.classes[CHAT].stats;
    let code = &s.classes[CODE].stats;
    assert_eq!((chat.good, chat.goodput), (50, 0.5));
    assert_eq!((code.good, code.goodput, code.goodput_rps), (5, 0.5, 0.5));
    assert_eq!(
        s.per_request,
        PerRequestBounds {
            ttft_ms: Some(50.0),
            ..PerRequestBounds::default()
        }
    );

    let checks = &s.sla.checks;
    let misses = |i: usize| {
        let m = checks[i]
            .misses
            .unwrap_or_else(|| panic!("{:?}", checks[i]));
        (m.count, m.of, m.allowed)
    };
    // goodput: 55 of 110 not good, 60% may miss.
    assert_eq!(checks[0].measured, Some(0.5));
    assert_eq!(checks[0].status, CheckStatus::Pass);
    assert_eq!(misses(0), (55, 110, 1.0 - 0.4));
    // The check says what "good" meant, beside the share.
    assert_eq!(
        checks[0].note.as_deref(),
        Some("requests that succeeded and met [sla.per_request]")
    );
    // 5.5 good requests a second against at least 6: a point check, no misses.
    assert_eq!(checks[1].measured, Some(5.5));
    assert_eq!(checks[1].status, CheckStatus::Fail);
    assert_eq!(checks[1].unit, "rps");
    assert_eq!(checks[1].misses, None);
    // Successes over 50 ms: chat's 51..=100 ms and code's eight 200 ms answers, of 108.
    assert_eq!(misses(2), (58, 108, 0.01));
    // code's TTFT over 30 ms: 40..=80 ms, 5 of its 8 streams.
    assert_eq!(misses(3), (5, 8, 0.01));
    // Availability: the two failures of 110.
    assert_eq!(misses(4), (2, 110, 1.0 - 0.9));
    // Tier pro is chat alone: its 51..=100 ms answers are over 50 ms, of 100.
    assert_eq!(misses(5), (50, 100, 0.01));

    let text = gauntlet::report::terminal_summary(&s);
    assert!(
        text.contains("goodput: 50.00% of requests, 5.5/s (succeeded with ttft <= 50 ms)"),
        "{text}"
    );
}

#[test]
fn without_per_request_objectives_every_success_is_good() {
    let s = summary();
    assert_eq!(s.overall.good, s.overall.successes);
    assert_eq!(s.overall.goodput, s.overall.availability);
    assert!(s.per_request.is_empty());
    let text = gauntlet::report::terminal_summary(&s);
    assert!(
        text.contains("every success counts: no [sla.per_request]"),
        "{text}"
    );
}

/// One interval with failures of two kinds keeps their times to error apart: three 5xx after
/// 30 ms and two timeouts after 2 s are two series of the interval, not one.
#[test]
fn an_interval_keeps_each_error_kinds_time_to_error_apart() {
    let layout = Layout::new(
        vec!["chat".into()],
        Vec::new(),
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut rec = Recorder::new(layout);
    // Interleaved, so each kind finds the other's slot already there.
    for (i, (kind, took)) in [
        (ErrorKind::Status5xx, ms(30)),
        (ErrorKind::Timeout, ms(2_000)),
        (ErrorKind::Status5xx, ms(30)),
        (ErrorKind::Timeout, ms(2_000)),
        (ErrorKind::Status5xx, ms(30)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = Sample::new(0, ms(i as u64 * 100), Duration::ZERO);
        s.latency = took;
        s.result = Err(kind);
        rec.record(&s);
    }
    let mut info = info();
    info.classes.truncate(1);
    let s = concluded(&rec, &info, &[], &Sla::default());
    let o = &s.intervals[0].overall;
    assert_eq!(
        o.errors,
        BTreeMap::from([("status_5xx".into(), 3), ("timeout".into(), 2)])
    );
    let kinds: Vec<_> = o.time_to_error_ms.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["status_5xx", "timeout"]);
    // Intervals keep two significant digits: within 1%.
    for (kind, samples, took) in [("status_5xx", 3, 30.0), ("timeout", 2, 2_000.0)] {
        let p = &o.time_to_error_ms[kind];
        assert_eq!(p.samples, samples, "{kind}");
        assert!((p.max - took).abs() <= took * 0.01, "{kind}: {p:?}");
        assert!((p.p50 - took).abs() <= took * 0.01, "{kind}: {p:?}");
    }
}

/// A request the generator could not send counts in the interval and the class it was due
/// in: drops due at 0.5 s (chat), 1.5 s (chat) and 2.5 s (code) are one each in exactly those
/// cells of the time series, and nowhere else.
#[test]
fn a_dropped_request_counts_in_the_interval_and_class_it_was_due_in() {
    let layout = Layout::new(
        vec!["chat".into(), "code".into()],
        Vec::new(),
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let mut rec = Recorder::new(layout);
    for (class, due) in [(CHAT, ms(500)), (CHAT, ms(1_500)), (CODE, ms(2_500))] {
        rec.record_dropped(class, due);
    }
    let s = concluded(&rec, &info(), &[], &Sla::default());
    let dropped: Vec<Vec<(u64, u64)>> = s
        .intervals
        .iter()
        .map(|iv| {
            ["chat", "code"]
                .iter()
                .map(|c| (iv.classes[*c].requests, iv.classes[*c].dropped))
                .collect()
        })
        .collect();
    assert_eq!(
        dropped,
        [[(1, 1), (0, 0)], [(1, 1), (0, 0)], [(0, 0), (1, 1)]]
    );
    assert_eq!((s.overall.requests, s.overall.dropped), (3, 3));
}

/// The numbers the main recording leaves at zero: shed refusals, cached and reasoning tokens,
/// where prompt counts came from, the connections opened (with TLS and the handshake's share
/// of request time), and the breakdowns by conversation turn and by prompt length.
///
/// One streaming class, six requests, the k-th intended at k s + 100 ms:
///
/// | k | turn | result | latency | TTFT | prompt (source) | cached | reasoning | opened |
/// |---|---|---|---|---|---|---|---|---|
/// | 0 | 1 | ok | 100 ms | 20 ms | 10 (usage) | 0 | 5 | 10 ms, TLS full |
/// | 1 | 2 | ok | 200 ms | 40 ms | 20 (usage) | 16 | 0 | reused |
/// | 2 | 3 | ok | 300 ms | 60 ms | 40 (usage) | 32 | 10 | 30 ms, TLS resumed |
/// | 3 | 1 | ok | 400 ms | 80 ms | 10 (tokenizer) | 0 | 0 | 20 ms, plain |
/// | 4 | 2 | shed 429 | 1 ms | – | 20 (tokenizer) | 0 | 0 | reused |
/// | 5 | – | shed 429 | 1 ms | – | 0 (tokenizer) | 0 | 0 | reused |
///
/// Each success has 30 completion tokens.
#[test]
fn shed_tokens_connections_turns_and_prompt_lengths_are_hand_computed() {
    use gauntlet::metrics::{Opened, TlsSession, TokenSource};
    let layout = Layout::new(
        vec!["chat".into()],
        vec!["a".into()],
        Duration::ZERO,
        Duration::from_secs(1),
        Duration::from_secs(10),
    );
    let mut rec = Recorder::new(layout);
    let opened = |took: u64, tls| {
        Some(Opened {
            took: ms(took),
            tls,
        })
    };
    // turn, ok, latency ms, prompt tokens and their source, cached, reasoning, opened.
    type Row = (
        Option<u16>,
        bool,
        u64,
        u64,
        TokenSource,
        u64,
        u64,
        Option<Opened>,
    );
    let rows: [Row; 6] = [
        (
            Some(1),
            true,
            100,
            10,
            TokenSource::Usage,
            0,
            5,
            opened(10, Some(TlsSession::Full)),
        ),
        (Some(2), true, 200, 20, TokenSource::Usage, 16, 0, None),
        (
            Some(3),
            true,
            300,
            40,
            TokenSource::Usage,
            32,
            10,
            opened(30, Some(TlsSession::Resumed)),
        ),
        (
            Some(1),
            true,
            400,
            10,
            TokenSource::Tokenizer,
            0,
            0,
            opened(20, None),
        ),
        (Some(2), false, 1, 20, TokenSource::Tokenizer, 0, 0, None),
        (None, false, 1, 0, TokenSource::Tokenizer, 0, 0, None),
    ];
    for (k, (turn, ok, latency, prompt, from, cached, reasoning, opened)) in
        rows.into_iter().enumerate()
    {
        let k = k as u64;
        let mut s = Sample::new(CHAT, ms(k * 1000 + 100), Duration::ZERO);
        s.turn = turn;
        s.latency = ms(latency);
        s.prompt_tokens = prompt;
        s.prompt_tokens_from = from;
        s.cached_tokens = cached;
        s.reasoning_tokens = reasoning;
        s.opened = opened;
        if ok {
            s.ttft = Some(ms((k + 1) * 20));
            s.completion_tokens = 30;
            s.served_by = Some(ServedBy::Known(A));
        } else {
            s.result = Err(ErrorKind::RateLimited);
            s.gateway_rate_limited = true;
            s.gateway_shed = true;
        }
        rec.record(&s);
    }
    let info = RunInfo {
        classes: vec![ClassInfo {
            name: "chat".into(),
            weight: 1,
            model: "m".into(),
            stream: true,
            api: "chat",
            primary: None,
            tier: None,
        }],
        ..info()
    };
    let s = concluded(&rec, &info, &[], &Sla::default());
    let o = &s.overall;
    assert_eq!((o.requests, o.successes), (6, 4));
    assert_eq!((o.shed, o.gateway_rate_limited), (2, 2));
    assert_eq!(s.classes[0].stats.shed, 2);
    assert_eq!(
        (
            o.tokens.prompt,
            o.tokens.completion,
            o.tokens.cached,
            o.tokens.reasoning
        ),
        (10 + 20 + 40 + 10 + 20, 4 * 30, 16 + 32, 5 + 10)
    );
    assert_eq!(
        (o.prompt_tokens_from.usage, o.prompt_tokens_from.tokenizer),
        (3, 3)
    );
    let c = &o.connections;
    assert_eq!((c.opened, c.tls_full, c.tls_resumed), (3, 1, 1));
    // 10 + 30 + 20 ms opening connections, of 100 + 200 + 300 + 400 + 1 + 1 ms of requests.
    assert_near(
        c.handshake_share.expect("requests were timed"),
        60.0 / 1002.0,
        "handshake share",
    );
    // Each interval keeps the connection its one request opened: 10 ms of 100 in the first.
    let iv = |k: usize| &s.intervals[k].overall.connections;
    assert_eq!((iv(0).opened, iv(0).tls_full, iv(0).tls_resumed), (1, 1, 0));
    assert_eq!((iv(1).opened, iv(1).handshake_share), (0, Some(0.0)));
    assert_eq!((iv(2).opened, iv(2).tls_full, iv(2).tls_resumed), (1, 0, 1));
    assert_near(
        iv(0).handshake_share.expect("timed"),
        0.1,
        "interval 0 share",
    );

    // Turns 1 (k = 0, 3), 2 (k = 1 and the shed k = 4) and 3 (k = 2); k = 5 has no turn.
    let turns: Vec<_> = s.classes[0]
        .turns
        .iter()
        .map(|t| (t.turn, t.requests, t.successes))
        .collect();
    assert_eq!(turns, [(1, 2, 2), (2, 2, 1), (3, 1, 1)]);
    let t = &s.classes[0].turns;
    assert_percentiles(
        &t[0].latency_ms,
        [100.0, 400.0, 400.0, 400.0, 400.0, 250.0],
        2,
        "turn 1 latency",
    );
    assert_percentiles(
        t[0].ttft_ms.as_ref().expect("streams"),
        [20.0, 80.0, 80.0, 80.0, 80.0, 50.0],
        2,
        "turn 1 ttft",
    );
    assert_percentiles(&t[1].latency_ms, [200.0; 6], 1, "turn 2 latency");
    assert_percentiles(&t[2].latency_ms, [300.0; 6], 1, "turn 3 latency");

    // Prompt bins: [0, 16) holds 10, 10; [16, 32) holds 20, 20 (one shed); [32, 64) holds 40;
    // the prompt of 0 tokens is in none.
    let bins: Vec<_> = s.classes[0]
        .prompt_lengths
        .iter()
        .map(|b| (b.min_tokens, b.max_tokens, b.requests))
        .collect();
    assert_eq!(
        bins,
        [(0, Some(16), 2), (16, Some(32), 2), (32, Some(64), 1)]
    );
    let bin_ttft = |i: usize| s.classes[0].prompt_lengths[i].ttft_ms;
    assert_percentiles(
        &bin_ttft(0).expect("two streams"),
        [20.0, 80.0, 80.0, 80.0, 80.0, 50.0],
        2,
        "ttft of prompts under 16",
    );
    // The shed request in [16, 32) had no first token: only k = 1's 40 ms.
    assert_percentiles(
        &bin_ttft(1).expect("one stream"),
        [40.0; 6],
        1,
        "ttft 16..32",
    );

    // The terminal says the same numbers.
    let text = gauntlet::report::terminal_summary(&s);
    assert!(
        text.contains(
            "tokens: 100 prompt (48 cached), 120 completion (15 reasoning); \
             prompt counts from usage 3, tokenizer 3"
        ),
        "{text}"
    );
    // 60 / 1002 is 5.988%, written down to two decimals.
    assert!(
        text.contains(
            "connections: 3 opened (TLS 1 full, 1 resumed); connecting took 5.98% of request time"
        ),
        "{text}"
    );
    let by_turn = text
        .lines()
        .find(|l| l.starts_with("chat by turn: "))
        .unwrap_or_else(|| panic!("no turns line in:\n{text}"));
    for part in [
        "#1 2 req p99 400 ms",
        "#2 2 req p99 200 ms",
        "#3 1 req p99 300 ms",
    ] {
        assert!(by_turn.contains(part), "{part} in {by_turn}");
    }
}
