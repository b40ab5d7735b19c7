//! A platform team choosing a gateway runs one bake-off: the same scenario, outage included,
//! against two gateways on the same mocks, and reads one table that says which held up.

use std::path::Path;
use std::process::Output;

use gauntlet::gateway::GatewayHandle;
use gauntlet::metrics::CheckStatus;
use gauntlet::mock::MockHandle;
use gauntlet::report::BakeoffTable;

use crate::support::{gateway, instant_profile, start_mock_named};

/// Two mocks serving models `a` and `b` (so each gateway's traffic can be told apart in the
/// mocks' own counters).
async fn mocks() -> (MockHandle, MockHandle) {
    crate::support::primary_and_fallback(
        "[[models]]\nname = \"a\"\ninput_price_per_m = 1\noutput_price_per_m = 2\n\
         context_window = 1000\n[[models]]\nname = \"b\"\ninput_price_per_m = 1\n\
         output_price_per_m = 2\ncontext_window = 1000\n",
    )
    .await
}

/// The mocks, one reference gateway with fallbacks in front of them, and a folder holding the
/// scenario as `s.toml`.
async fn one_gateway() -> (MockHandle, MockHandle, GatewayHandle, tempfile::TempDir) {
    let (primary, fallback) = mocks().await;
    let gw = gateway(&gateway_toml(&primary.url(), &fallback.url(), "a", true)).await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("s.toml"),
        scenario(&primary.url(), &fallback.url(), ""),
    )
    .unwrap();
    (primary, fallback, gw, tmp)
}

/// The reference gateway routing public model `m` to `primary` as upstream model `upstream`,
/// with or without a fallback to `fallback`.
fn gateway_toml(primary: &str, fallback: &str, upstream: &str, fallbacks: bool) -> String {
    let fb = if fallbacks {
        format!(r#", fallbacks = [{{ upstream = "fallback", model = "{upstream}" }}]"#)
    } else {
        String::new()
    };
    format!(
        r#"routes = [{{ model = "m", targets = [{{ upstream = "primary", model = "{upstream}" }}]{fb} }}]
[[upstreams]]
name = "primary"
url = "{primary}"
[[upstreams]]
name = "fallback"
url = "{fallback}"
"#
    )
}

/// A scenario naming the running mocks by URL: 100 req/s for 7 s (1 s warmup), the primary
/// down from 2.5 s to 4.5 s.
fn scenario(primary: &str, fallback: &str, extra: &str) -> String {
    format!(
        r#"name = "bakeoff-test"
seed = 11
[target]
url = "http://127.0.0.1:9"
[[upstreams]]
name = "primary"
url = "{primary}"
[[upstreams]]
name = "fallback"
url = "{fallback}"
[load]
arrival = "constant"
warmup = "1s"
stages = [{{ duration = "7s", rate = 100 }}]
[[requests]]
name = "chat"
weight = 1
model = "m"
prompt = "hello there"
max_tokens = 8
primary = "primary"
[[faults]]
upstream = "primary"
at = "2.5s"
duration = "2s"
kind = "outage"
[sla]
availability = "99%"
failover_success = "95%"
{extra}
"#
    )
}

async fn bakeoff(dir: &Path, args: &[String]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    cmd.arg("bakeoff").args(args).current_dir(dir);
    cmd.output().await.unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_one_table_the_one_without_fallbacks_fails_and_mocks_are_reset_between() {
    let (primary, fallback) = mocks().await;
    let with = gateway(&gateway_toml(&primary.url(), &fallback.url(), "a", true)).await;
    let without = gateway(&gateway_toml(&primary.url(), &fallback.url(), "b", false)).await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("s.toml"),
        scenario(&primary.url(), &fallback.url(), ""),
    )
    .unwrap();
    let out = bakeoff(
        tmp.path(),
        &strings(&[
            "s.toml",
            "-q",
            "--out",
            "bo",
            "--target",
            &format!("fallbacks={}", with.url()),
            "--target",
            &format!("nofallback={}", without.url()),
        ]),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    let dir = tmp.path().join("bo");
    let table: BakeoffTable =
        serde_json::from_slice(&std::fs::read(dir.join("bakeoff.json")).unwrap()).unwrap();
    assert_eq!(
        table.schema_version,
        gauntlet::report::BAKEOFF_SCHEMA_VERSION
    );
    let names: Vec<&str> = table.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fallbacks", "nofallback"]);
    let (good, bad) = (&table.targets[0], &table.targets[1]);
    assert_eq!(good.verdict, CheckStatus::Pass, "{stdout}");
    assert_eq!(bad.verdict, CheckStatus::Fail, "{stdout}");
    assert!(!table.passed);
    assert!(good.failover_success.unwrap() >= 0.95, "{good:?}");
    // Without a fallback only what the primary answered before the outage bit (the first
    // interval of the window) succeeds; the breaker then keeps refusing.
    assert!(bad.failover_success.unwrap() < 0.3, "{bad:?}");
    assert!(good.best.contains("failover_success") && !bad.best.contains("failover_success"));
    assert!(good.best.contains("availability") && !bad.best.contains("availability"));
    // Each target has its own complete run folder.
    for t in ["fallbacks", "nofallback"] {
        assert!(dir.join(t).join("summary.json").is_file(), "{t}");
        assert!(dir.join(t).join("index.html").is_file(), "{t}");
    }
    let html = std::fs::read_to_string(dir.join("bakeoff.html")).unwrap();
    assert!(
        html.contains("nofallback") && html.contains("<svg"),
        "charts drawn"
    );
    // The terminal shows the same table: a row per target with its verdict.
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
            .to_string()
    };
    assert!(row("fallbacks ").contains("PASS"), "{stdout}");
    assert!(row("nofallback ").contains("FAIL"), "{stdout}");

    // The mocks were reset before the second target: the first gateway's traffic (model `a`)
    // is gone from their counters, the second's (model `b`) is all there is.
    let (p, f) = (primary.stats(), fallback.stats());
    assert_eq!(p.model("a") + f.model("a"), 0, "{p:?}\n{f:?}");
    assert!(p.model("b") > 0, "{p:?}");
    assert_eq!(p.model("b"), p.requests_total, "{p:?}");
    assert_eq!(f.model("b"), 0, "no fallback, nothing reached the fallback");
    // So the second target's amplification is its own: below 1, since its open breaker
    // answered most requests without trying the primary, where the first gateway's fallback
    // traffic would have pushed it above 1.
    let amp = bad.retry_amplification.unwrap();
    let total = (p.requests_total + f.requests_total) as f64;
    assert!(
        amp < 1.0 && amp * bad.requests as f64 <= total,
        "amplification {amp} over {} requests, mocks saw {total}",
        bad.requests
    );
    assert!(primary.faults().is_empty(), "the outage was lifted");

    // --require of the passing target: only it decides, so the bake-off passes although
    // the other target still fails in the table.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = bakeoff(
        tmp.path(),
        &strings(&[
            "s.toml",
            "-q",
            "--out",
            "bo",
            "--target",
            &format!("fallbacks={}", with.url()),
            "--target",
            &format!("nofallback={}", without.url()),
            "--require",
            "fallbacks",
        ]),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let table: BakeoffTable =
        serde_json::from_slice(&std::fs::read(dir.join("bakeoff.json")).unwrap()).unwrap();
    assert_eq!(table.required.as_deref(), Some("fallbacks"));
    assert!(table.passed);
    assert_eq!(table.targets[1].verdict, CheckStatus::Fail);
    assert!(stdout.contains("`fallbacks` decides"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_line_ups_exit_2_and_a_silent_target_exits_3_before_any_load() {
    let (primary, _fallback, gw, tmp) = one_gateway().await;
    let ok = format!("gw={}", gw.url());
    let cases: [(&[&str], &str); 7] = [
        (&["--target", &ok, "--target", &ok], "given twice"),
        (
            &["--target", &ok, "--require", "other"],
            "--require `other`",
        ),
        (&["--target", "gw"], "expected NAME=URL"),
        (&["--target", "gw=ftp://x"], "http:// URL"),
        (
            &["--target", &ok, "--header", "nope:x-a=1"],
            "no target is named `nope`",
        ),
        (&["--embedded"], "[gateway]"),
        (&["--target", "..=http://127.0.0.1:9"], "not `.` or `..`"),
    ];
    for (args, says) in cases {
        let mut all = strings(&["s.toml", "-q", "--out", "bad"]);
        all.extend(strings(args));
        let out = bakeoff(tmp.path(), &all).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(!tmp.path().join("bad").join("bakeoff.json").exists());

    // A target nothing answers at: named, exit 3, within seconds, and the mocks untouched.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let started = std::time::Instant::now();
    let out = bakeoff(
        tmp.path(),
        &strings(&[
            "s.toml",
            "-q",
            "--out",
            "dead",
            "--target",
            &ok,
            "--target",
            &format!("ghost={dead_url}"),
        ]),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("target `ghost`") && stderr.contains(&dead_url),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(primary.stats().model("a"), 0, "no load was sent");
    assert!(
        !tmp.path().join("dead").exists(),
        "a bake-off that never started leaves no folder"
    );
}

/// A supervisor's SIGTERM stops a bake-off as Ctrl-C does: the target being measured stops,
/// what it measured is written, and the exit says it was interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bakeoff_stopped_by_sigterm_writes_what_it_measured_and_exits_130() {
    let (primary, _fallback, gw, tmp) = one_gateway().await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args([
            "bakeoff",
            "s.toml",
            "-q",
            "--out",
            "term",
            "--duration",
            "60s",
        ])
        .arg("--target")
        .arg(format!("gw={}", gw.url()))
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // 60 s stretch the 1 s warmup to 7.5 s (750 requests at 100/s): wait past it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while primary.stats().model("a") < 1_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load reached the mocks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stopped = std::time::Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stopped.elapsed() < std::time::Duration::from_secs(30),
        "{stderr}"
    );
    let summary: gauntlet::metrics::Summary =
        serde_json::from_slice(&std::fs::read(tmp.path().join("term/gw/summary.json")).unwrap())
            .unwrap();
    assert!(summary.interrupted);
    assert!(summary.overall.requests > 0, "{:?}", summary.overall);
}

#[tokio::test]
async fn the_control_api_reset_clears_faults_zeroes_the_counters_and_refills_the_budgets() {
    use gauntlet::mock::{ControlClient, FaultKindName, RawFault};

    use crate::support::{chat_body, post_chat};
    // Four requests a minute: the three before the reset leave one, unless the reset refills.
    let m = start_mock_named(
        instant_profile("[limits]\nrequests_per_minute = 4\n"),
        "m",
        Some("tok"),
    )
    .await;
    let control = ControlClient::new(&m.url(), Some("tok".into())).unwrap();
    let spec = RawFault {
        kind: Some(FaultKindName::Error),
        status: Some(503),
        ..RawFault::default()
    }
    .compile()
    .unwrap();
    control.add_fault(&spec).await.unwrap();
    control.add_fault(&spec).await.unwrap();
    for _ in 0..3 {
        let r = post_chat(m.addr(), &chat_body("m", 2, false)).await;
        assert_eq!(r.status(), Some(503));
    }
    let before = control.stats().await.unwrap();
    assert_eq!(before.requests_total, 3);
    assert_eq!(before.faults(FaultKindName::Error), 3);

    assert_eq!(control.reset().await.unwrap(), 2, "both faults cleared");
    let after = control.stats().await.unwrap();
    assert_eq!(after.requests_total, 0);
    assert_eq!(after.faults(FaultKindName::Error), 0);
    assert!(after.by_outcome.values().all(|n| *n == 0), "{after:?}");
    assert_eq!(after.model("m"), 0);
    assert!(control.faults().await.unwrap().is_empty());
    // The mock answers again, with the whole minute's budget, and counts from zero.
    for i in 0..4 {
        let r = post_chat(m.addr(), &chat_body("m", 2, false)).await;
        assert_eq!(
            r.status(),
            Some(200),
            "request {i} after the reset: {}",
            r.body()
        );
    }
    let r = post_chat(m.addr(), &chat_body("m", 2, false)).await;
    assert_eq!(r.status(), Some(429), "the limit itself still holds");
    let counted = control.stats().await.unwrap().requests_total;
    assert_eq!(counted, 5);
    // Without the token the reset is refused like every control call.
    let anonymous = ControlClient::new(&m.url(), None).unwrap();
    assert!(anonymous.reset().await.is_err());
    assert_eq!(control.stats().await.unwrap().requests_total, counted);
}
