//! Overhead as a measure: `[load] baseline = "direct"` sends a share of the requests straight
//! to each class's primary mock, and the summary says how much latency the gateway adds.
//! The gateway here is a pass-through proxy that waits a known time before forwarding.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gauntlet::metrics::{CheckStatus, OverheadStats, SlaKey, Summary};
use gauntlet::mock::MockHandle;

use crate::support::summary_of;
use crate::support::{
    TestServer, delaying_proxy, gauntlet_run, instant_profile, profile, start_mock_named,
};

/// Two mocks answering at once: `alpha` serves model `m`, `beta` model `n`.
async fn mocks() -> (MockHandle, MockHandle) {
    let alpha = start_mock_named(instant_profile(""), "alpha", None).await;
    let beta = start_mock_named(
        profile(
            "name = \"beta\"\nseed = 6\n[[models]]\nname = \"n\"\ninput_price_per_m = 1\n\
             output_price_per_m = 2\ncontext_window = 1000\n",
        ),
        "beta",
        None,
    )
    .await;
    (alpha, beta)
}

/// A proxy adding `delay` in front of the two mocks.
async fn gateway(delay: Duration, alpha: &MockHandle, beta: &MockHandle) -> TestServer {
    delaying_proxy(delay, &[("m", alpha.url()), ("n", beta.url())]).await
}

/// Classes `x` (model `m`, primary `alpha`) and `y` (model `n`, primary `beta`) through the
/// gateway at `gateway`, with `load` (the baseline's keys among it) and `sla` appended.
fn scenario(
    dir: &Path,
    gateway: &TestServer,
    mocks: (&MockHandle, &MockHandle),
    load: &str,
    sla: &str,
) -> PathBuf {
    let path = dir.join("overhead.toml");
    let text = format!(
        r#"name = "overhead"
seed = 11
[target]
url = "{gw}"
[[upstreams]]
name = "alpha"
url = "{a}"
[[upstreams]]
name = "beta"
url = "{b}"
[load]
{load}
[[requests]]
name = "x"
weight = 3
model = "m"
prompt = "hello"
max_tokens = 4
primary = "alpha"
[[requests]]
name = "y"
weight = 1
model = "n"
prompt = "hello"
max_tokens = 4
primary = "beta"
{sla}"#,
        gw = gateway.url(),
        a = mocks.0.url(),
        b = mocks.1.url(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Half of the requests sent direct.
const HALF: &str = "baseline = \"direct\"\nbaseline_share = \"50%\"";

fn class<'a>(s: &'a Summary, name: &str) -> &'a OverheadStats {
    let o = s
        .overhead
        .as_ref()
        .expect("a baseline run reports its overhead");
    &o.classes.iter().find(|c| c.name == name).unwrap().stats
}

fn check(s: &Summary, scope: &str) -> CheckStatus {
    s.sla
        .checks
        .iter()
        .find(|c| c.name == SlaKey::MaxOverheadP99 && c.scope == scope)
        .unwrap_or_else(|| panic!("no max_overhead_p99 check for {scope}: {:?}", s.sla))
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_adding_20ms_is_reported_as_20ms_added_and_judged_by_max_overhead_p99() {
    let (alpha, beta) = mocks().await;
    let proxy = gateway(Duration::from_millis(20), &alpha, &beta).await;
    let dir = tempfile::tempdir().unwrap();
    // 2,400 requests, half direct: over 1,000 successes a side, enough for a p99 overall.
    let path = scenario(
        dir.path(),
        &proxy,
        (&alpha, &beta),
        &format!("{HALF}\narrival = \"constant\"\nrate = 240\nduration = \"10s\""),
        "[sla]\nmax_overhead_p99 = \"500ms\"\n[sla.classes.x]\nmax_overhead_p99 = \"5ms\"\n",
    );
    let out = dir.path().join("run");
    let (code, stderr) = gauntlet_run(&path, &out, &[]).await;
    let s = summary_of(&out, &stderr);
    let o = s.overhead.as_ref().expect("overhead reported");

    // About 20 ms added, per class and overall, at p50 (generous bounds: a loaded machine).
    for (scope, st) in [
        ("x", class(&s, "x")),
        ("y", class(&s, "y")),
        ("overall", &o.overall),
    ] {
        let added = st.added_p50_ms.unwrap_or_else(|| panic!("{scope}: {st:?}"));
        assert!(
            (15.0..60.0).contains(&added),
            "{scope}: p50 added {added} ms: {st:?}"
        );
        let (g, d) = (st.gateway_ms.unwrap(), st.direct_ms.unwrap());
        assert!(g.samples > 0 && d.samples > 0, "{scope}: {st:?}");
        assert_eq!(
            st.added_p99_ms,
            Some(g.p99 - d.p99),
            "difference of percentiles"
        );
    }
    assert_eq!(o.excluded_s, 0.0, "no fault, nothing left out");

    // The direct samples are in no gateway number: the proxy saw exactly the gateway's
    // requests, each mock the gateway's plus the baseline's of its class.
    let sent_direct = |st: &OverheadStats| st.direct_requests - st.direct_dropped;
    assert_eq!(
        proxy.hits(crate::support::CHAT) as u64,
        s.overall.requests - s.overall.dropped,
        "the gateway's request count holds no direct request"
    );
    let (x, y) = (&s.classes[0].stats, &s.classes[1].stats);
    assert_eq!(
        alpha.stats().requests_total,
        x.requests - x.dropped + sent_direct(class(&s, "x"))
    );
    assert_eq!(
        beta.stats().requests_total,
        y.requests - y.dropped + sent_direct(class(&s, "y"))
    );
    assert_eq!(
        o.overall.direct_requests,
        class(&s, "x").direct_requests + class(&s, "y").direct_requests
    );
    // The share drawn is about the half asked for, and the mix keeps its 3:1.
    let all = s.overall.requests + o.overall.direct_requests;
    let share = o.overall.direct_requests as f64 / all as f64;
    assert!((0.45..0.55).contains(&share), "direct share {share}");
    assert!(
        x.requests > 2 * y.requests,
        "{} vs {}",
        x.requests,
        y.requests
    );
    // Served-by counts the gateway's answers only.
    assert_eq!(
        s.overall.served_by.values().sum::<u64>(),
        s.overall.successes
    );
    // The mocks counted the baseline too; the gateway is charged for its own requests only:
    // a proxy that never retries amplifies nothing (the baseline would make it about 2x),
    // and each upstream's tokens are those of the gateway's answers.
    let amplification = s.retry_amplification.unwrap();
    assert!((0.99..=1.01).contains(&amplification), "{amplification}");
    let alpha_row = s.upstreams.iter().find(|u| u.name == "alpha").unwrap();
    let (charged, answered) = (alpha_row.tokens.completion, x.tokens.completion);
    assert!(
        charged.abs_diff(answered) <= answered / 100 + 4,
        "alpha charged {charged} completion tokens, the gateway's answers had {answered}"
    );

    // 20 ms is far over 5 ms and well under 500 ms.
    assert_eq!(check(&s, "class:x"), CheckStatus::Fail, "{:?}", s.sla);
    assert_eq!(check(&s, "overall"), CheckStatus::Pass, "{:?}", s.sla);
    assert_eq!(code, Some(1), "an SLA violated exits 1: {stderr}");

    // Every report shows it.
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("### Gateway overhead"), "{md}");
    assert!(md.contains("difference of percentiles"), "{md}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("id=\"overhead\""),
        "HTML has the overhead table"
    );
    let term = gauntlet::report::terminal_summary(&s);
    assert!(term.contains("overhead (vs direct)"), "{term}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_adding_nothing_is_reported_as_adding_about_nothing() {
    let (alpha, beta) = mocks().await;
    let proxy = gateway(Duration::ZERO, &alpha, &beta).await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        &proxy,
        (&alpha, &beta),
        &format!("{HALF}\narrival = \"constant\"\nrate = 100\nduration = \"4s\""),
        "[sla]\nmax_overhead_p99 = \"500ms\"\n",
    );
    let out = dir.path().join("run");
    let (code, stderr) = gauntlet_run(&path, &out, &[]).await;
    let s = summary_of(&out, &stderr);
    let o = s.overhead.as_ref().expect("overhead reported");
    let added = o.overall.added_p50_ms.unwrap();
    // One more loopback hop costs well under a millisecond; bounds allow a loaded machine.
    assert!((-5.0..8.0).contains(&added), "p50 added {added} ms: {o:?}");
    // Some 200 samples a side cannot support a p99 claim: not a pass.
    assert_eq!(
        check(&s, "overall"),
        CheckStatus::Inconclusive,
        "{:?}",
        s.sla
    );
    assert_ne!(
        code,
        Some(0),
        "an inconclusive verdict is not a pass: {stderr}"
    );

    // The same seed without a baseline draws the same classes: the baseline's own draws
    // leave the mix's sequence alone, they only decide which way each request goes.
    let plain = scenario(
        dir.path(),
        &proxy,
        (&alpha, &beta),
        "arrival = \"constant\"\nrate = 100\nduration = \"4s\"",
        "",
    );
    let plain_out = dir.path().join("plain");
    let (code, stderr) = gauntlet_run(&plain, &plain_out, &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let p = summary_of(&plain_out, &stderr);
    assert!(p.overhead.is_none(), "no baseline, no overhead section");
    for (i, name) in ["x", "y"].into_iter().enumerate() {
        assert_eq!(
            s.classes[i].stats.requests + class(&s, name).direct_requests,
            p.classes[i].stats.requests,
            "class {name}: one seed, one sequence of classes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_users_send_their_share_direct_on_connections_of_their_own() {
    let (alpha, beta) = mocks().await;
    let proxy = gateway(Duration::from_millis(20), &alpha, &beta).await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        &proxy,
        (&alpha, &beta),
        &format!("{HALF}\nmodel = \"closed\"\nconcurrency = 4\nduration = \"3s\""),
        "",
    );
    let out = dir.path().join("run");
    let (code, stderr) = gauntlet_run(&path, &out, &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary_of(&out, &stderr);
    let o = s.overhead.as_ref().expect("overhead reported");
    let added = o.overall.added_p50_ms.unwrap();
    assert!((15.0..60.0).contains(&added), "p50 added {added} ms: {o:?}");
    // Each user draws every request's way: about half of the requests by count, though the
    // direct ones take a fraction of the time.
    let all = s.overall.requests + o.overall.direct_requests;
    let share = o.overall.direct_requests as f64 / all as f64;
    assert!((0.4..0.6).contains(&share), "direct share {share}");
    assert_eq!(
        proxy.hits(crate::support::CHAT) as u64,
        s.overall.requests,
        "{o:?}"
    );
}
