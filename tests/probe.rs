//! An SRE leaves `gauntlet probe` watching an endpoint: it pages when the error budget burns
//! and clears when it stops (on stderr, in alerts.jsonl and on /metrics), keeps a rolling
//! report, stops at its daily cost cap, backs off when told 429, answers a cron job with one
//! round's verdict, and refuses a key written in the file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gauntlet::mock::{ControlClient, FaultKind, FaultSpec, RateLimitCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::support::{TestClient, instant_profile, python_script, start_mock_named};

/// A scenario probing the mock at `url` straight (no gateway), with `probe` as its `[probe]`
/// table and `extra` appended.
fn scenario(url: &str, probe: &str, extra: &str) -> String {
    format!(
        r#"name = "probe"
seed = 3
[[upstreams]]
name = "up"
url = "{url}"
[load]
duration = "1s"
rate = 1
[[requests]]
name = "chat"
weight = 3
model = "m"
prompt = "hello"
max_tokens = 8
primary = "up"
[[requests]]
name = "stream"
weight = 1
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
primary = "up"
[sla]
availability = "99%"
[probe]
{probe}
{extra}"#
    )
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("probe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `gauntlet probe`, its stderr collected as it comes.
struct Probing {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Probing {
    fn start(scenario: &Path, out: &Path, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .arg("probe")
            .arg(scenario)
            .args(args)
            .arg("--out")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until stderr holds `text`, at most a minute (a loaded machine is slow).
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if let Some(at) = log.find(text) {
                let line_end = log[at..].find('\n').map_or(log.len(), |e| at + e);
                return log[at..line_end].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no `{text}` on stderr within 60 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ctrl-C, then the exit code.
    async fn interrupt(self) -> (Option<i32>, String) {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        self.finish().await
    }

    async fn finish(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the probe did not end:\n{}", self.log()))
            .unwrap();
        // The reader has the last lines once the pipe closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status.code(), self.log())
    }
}

fn errors() -> FaultSpec {
    FaultSpec {
        kind: FaultKind::Error {
            status: 500,
            message: None,
        },
        rate: 1.0,
        model: None,
    }
}

fn alerts(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The mock starts failing every request through its control API: the page alert fires on
/// stderr, in alerts.jsonl and on /metrics; the errors stop and it clears. Meanwhile the
/// rolling report is refreshed and closed windows rotate, keeping the last two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burn_rate_alert_fires_when_errors_pass_the_budget_and_clears_after() {
    let mock = start_mock_named(instant_profile(""), "up", None).await;
    let control = ControlClient::new(&mock.url(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 99% availability: 1% may fail; the page fires past 5x, 5% failing over both windows.
    let path = write(
        dir.path(),
        &scenario(
            &mock.url(),
            r#"rate = "10/s"
window = "2s"
report_every = "1s"
keep = 2
alerts = [{ name = "page", long_window = "3s", short_window = "1s", burn_rate = 5 }]"#,
            "",
        ),
    );
    let out = dir.path().join("probe");
    let probe = Probing::start(&path, &out, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = probe.wait_for("live metrics: http://").await;
    let base = metrics
        .trim_start_matches("live metrics: ")
        .trim_end_matches("/metrics")
        .to_string();
    // Healthy first: a report is written, nothing fires.
    probe.wait_for("probe: last").await;
    assert!(out.join("summary.json").exists() && out.join("index.html").exists());
    assert!(!probe.log().contains("FIRING"), "{}", probe.log());

    let fault = control.add_fault(&errors()).await.unwrap();
    let fired = probe.wait_for("alert page/availability FIRING").await;
    assert!(fired.contains("threshold 5x"), "{fired}");
    let client = TestClient::new();
    let scrape = client.get(&base, "/metrics").await.text();
    assert!(
        scrape.contains("gauntlet_probe_alert_firing{alert=\"page\",slo=\"availability\"} 1\n"),
        "{scrape}"
    );
    let path_scrape = dir.path().join("scrape.txt");
    std::fs::write(&path_scrape, &scrape).unwrap();
    let parsed = python_script("prometheus_scrapes.py", &[path_scrape.to_str().unwrap()]).await;
    assert_eq!(parsed[0]["problems"], serde_json::json!([]), "{scrape}");
    let burn = parsed[0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == "gauntlet_probe_burn_rate" && s[1]["window"] == "1s")
        .unwrap_or_else(|| panic!("no 1s burn rate in\n{scrape}"))[2]
        .as_f64()
        .unwrap();
    assert!(
        burn > 5.0,
        "the short window burns past the threshold: {burn}"
    );

    assert!(control.remove_fault(fault).await.unwrap());
    probe.wait_for("alert page/availability resolved").await;
    let scrape = client.get(&base, "/metrics").await.text();
    assert!(
        scrape.contains("gauntlet_probe_alert_firing{alert=\"page\",slo=\"availability\"} 0\n"),
        "{scrape}"
    );
    // Eight reports, a second apart: at least three 2 s windows have closed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe.log().matches("probe: last").count() < 8 {
        assert!(Instant::now() < deadline, "{}", probe.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, log) = probe.interrupt().await;
    assert_eq!(code, Some(130), "{log}");

    let a = alerts(&out);
    assert_eq!(a.len(), 2, "one firing, one resolved: {a:?}");
    assert_eq!(
        (&a[0]["alert"], &a[0]["slo"], &a[0]["state"]),
        (&"page".into(), &"availability".into(), &"firing".into())
    );
    assert!(a[0]["short_burn_rate"].as_f64().unwrap() > 5.0, "{a:?}");
    assert_eq!(a[1]["state"], "resolved");
    // The final report is of the last window, and closed windows rotate: two kept.
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["overall"]["requests"].as_u64().unwrap() > 0);
    let windows: Vec<_> = std::fs::read_dir(out.join("windows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(windows.len(), 2, "{windows:?}\n{log}");
    assert!(windows.iter().all(|w| w.join("summary.json").exists()));
    // The mock saw the probe's trickle: about 10 a second, never a flood.
    let received = mock.stats().requests_total;
    assert!(received > 10, "{received}");
}

/// The latency budget: answers slowed past `p99_latency` by a latency fault page on the
/// `latency` SLO (1% may be slower), and the page clears once the fault is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_alert_fires_when_answers_slow_past_the_target() {
    let mock = start_mock_named(instant_profile(""), "up", None).await;
    let control = ControlClient::new(&mock.url(), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        &mock.url(),
        r#"rate = "10/s"
report_every = "1s"
alerts = [{ name = "page", long_window = "3s", short_window = "1s", burn_rate = 5 }]"#,
        "",
    )
    .replace("availability = \"99%\"", "p99_latency = \"150ms\"");
    let path = write(dir.path(), &text);
    let out = dir.path().join("probe");
    let probe = Probing::start(&path, &out, &[]);
    probe.wait_for("probe: last").await;
    let slow = FaultSpec {
        kind: FaultKind::Latency {
            delay: gauntlet::config::DurationDist::fixed(Duration::from_millis(400)),
        },
        rate: 1.0,
        model: None,
    };
    let fault = control.add_fault(&slow).await.unwrap();
    probe.wait_for("alert page/latency FIRING").await;
    assert!(control.remove_fault(fault).await.unwrap());
    probe.wait_for("alert page/latency resolved").await;
    let (code, log) = probe.interrupt().await;
    assert_eq!(code, Some(130), "{log}");
    assert!(
        !log.contains("availability FIRING"),
        "no request failed: {log}"
    );
    let states: Vec<(Value, Value)> = alerts(&out)
        .iter()
        .map(|a| (a["slo"].clone(), a["state"].clone()))
        .collect();
    // Slow answers still in flight when the fault was lifted arrive after it, and may page
    // once more on the short window: what is asserted is fire, then clear.
    assert_eq!(
        states.get(..2),
        Some(
            &[
                ("latency".into(), "firing".into()),
                ("latency".into(), "resolved".into())
            ][..]
        ),
        "{log}"
    );
}

/// A priced provider behind gauntlet's proxy and a cap of $0.10 a day: at ~$0.016 a request
/// the probe stops after a handful, exit 4, saying which cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cost_cap_stops_the_probe() {
    let mock = start_mock_named(instant_profile(""), "up", None).await;
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        &mock.url(),
        "rate = \"10/s\"\nmax_cost_per_day = \"$0.10\"",
        "",
    )
    .replace(
        &format!("url = \"{}\"", mock.url()),
        &format!(
            "proxy_to = \"{}\"\ninput_price_per_m = 1000\noutput_price_per_m = 1000",
            mock.url()
        ),
    );
    let path = write(dir.path(), &text);
    let out = dir.path().join("probe");
    let (code, log) = Probing::start(&path, &out, &["-q"]).finish().await;
    assert_eq!(code, Some(4), "{log}");
    assert!(log.contains("the daily cost cap is reached"), "{log}");
    assert!(log.contains("max_cost_per_day is $0.1000"), "{log}");
    // Each request is ~16 tokens at $1,000/M: the cap allows six at most.
    let received = mock.stats().requests_total;
    assert!((3..=7).contains(&received), "{received} requests\n{log}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["overall"]["requests"].as_u64(), Some(received));
}

/// `--once` is one request per class and the verdict: 0 while the mock is healthy, 1 once
/// it fails requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_with_the_rounds_verdict() {
    let mock = start_mock_named(instant_profile(""), "up", None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &scenario(&mock.url(), "", ""));
    let (code, log) = Probing::start(&path, &dir.path().join("ok"), &["--once"])
        .finish()
        .await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(mock.stats().requests_total, 2, "one request per class");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ok/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["overall"]["requests"], 2);

    ControlClient::new(&mock.url(), None)
        .unwrap()
        .add_fault(&errors())
        .await
        .unwrap();
    let (code, log) = Probing::start(&path, &dir.path().join("failing"), &["--once"])
        .finish()
        .await;
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(mock.stats().requests_total, 4);
}

/// Tried locally, a probe starts what the scenario asks for, as `run` does: here the
/// embedded gateway in front of the mock, which serves the round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_goes_through_the_embedded_gateway_the_scenario_starts() {
    let mock = start_mock_named(instant_profile(""), "up", None).await;
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        &mock.url(),
        "",
        "[gateway]\nroutes = [{ model = \"m\", targets = [\"up\"] }]\n",
    );
    let path = write(dir.path(), &text);
    let out = dir.path().join("round");
    let (code, log) = Probing::start(&path, &out, &["--once"]).finish().await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(mock.stats().requests_total, 2, "{log}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["target"], "embedded gateway");
    assert_eq!(summary["overall"]["served_by"]["up"], 2, "{summary}");
}

/// An endpoint answering 429 with Retry-After: 2 s gets one request per 2 s, not ten a
/// second: the probe holds off as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_slows_the_probe_down() {
    let mock = start_mock_named(instant_profile(""), "up", None).await;
    mock.add_fault(FaultSpec {
        kind: FaultKind::RateLimit {
            code: RateLimitCode::RateLimitExceeded,
            retry_after: Duration::from_secs(2),
        },
        rate: 1.0,
        model: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &scenario(&mock.url(), "rate = \"10/s\"", ""));
    let probe = Probing::start(&path, &dir.path().join("probe"), &["-q"]);
    probe
        .wait_for("holding off 2s (as its Retry-After asks)")
        .await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = started.elapsed();
    let (code, log) = probe.interrupt().await;
    assert_eq!(code, Some(130), "{log}");
    // Ten a second would be 40+ over these 4 s; held off 2 s per 429, it is 2 or 3, plus the
    // first and any sent before it was answered.
    let received = mock.stats().requests_total;
    let allowed = 4 + during.as_secs();
    assert!(
        received >= 2 && received <= allowed,
        "{received} requests in {during:?}\n{log}"
    );
}

/// A probe sends single requests: a conversation class, wherever it is in the list, is
/// refused with exit 2 naming it, before any request goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_class_is_refused_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario("http://127.0.0.1:9", "", "").replace(
        "stream = true\nprimary = \"up\"\n",
        "stream = true\nprimary = \"up\"\n[requests.session]\nturns = 2\n",
    );
    assert!(text.contains("[requests.session]"));
    let path = write(dir.path(), &text);
    let out = dir.path().join("probe");
    let (code, log) = Probing::start(&path, &out, &["--once"]).finish().await;
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("request class `stream` is a conversation"),
        "{log}"
    );
}

/// A key written in the file is refused in probe mode, naming the field and its place; the
/// same key from the environment is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_literal_key_or_a_bad_target_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario("http://127.0.0.1:9", "", "").replace(
        "primary = \"up\"\n[[requests]]",
        "primary = \"up\"\napi_key = \"sk-live-123\"\n[[requests]]",
    );
    let path = write(dir.path(), &text);
    let (code, log) = Probing::start(&path, &dir.path().join("probe"), &["--once"])
        .finish()
        .await;
    assert_eq!(code, Some(2), "{log}");
    let at = format!("{}:16:11: `requests[0].api_key`", path.display());
    assert!(log.contains(&at), "want {at} in\n{log}");
    assert!(log.contains("env:NAME"), "{log}");
    assert!(
        !log.contains("sk-live-123"),
        "the key is never printed: {log}"
    );
    assert!(
        !dir.path().join("probe").exists(),
        "nothing is written for a refused scenario"
    );

    // A --target that is not a URL is the user's to fix too, and leaves no folder behind.
    let path = write(dir.path(), &scenario("http://127.0.0.1:9", "", ""));
    let out = dir.path().join("bad-target");
    let (code, log) = Probing::start(&path, &out, &["--once", "--target", "notaurl"])
        .finish()
        .await;
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("`notaurl` is not a usable"), "{log}");
    assert!(!out.exists(), "{log}");
}
