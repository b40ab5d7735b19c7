//! An SRE watches a run in Prometheus and Grafana while it goes on: `gauntlet run
//! --metrics-listen` serves Prometheus text that the official client's parser reads, whose
//! counters only grow, whose fault gauge shows the outage while it lasts, and whose final
//! numbers are the summary's; the shipped dashboard queries only metrics gauntlet exports.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet::metrics::{CheckStatus, SlaCheck, SlaKey, SlaResult};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{TestClient, python_script};

/// One scrape as the Python parser read it.
struct Scrape {
    report: Value,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`; none when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.report["samples"]
            .as_array()?
            .iter()
            .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)));
        let first = found.next()?;
        assert!(
            found.next().is_none(),
            "{name} {labels:?} names more than one series"
        );
        first[2].as_f64()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    /// The sum over every series of `name` whose labels include `labels`.
    fn total(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.report["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
            .map(|s| s[2].as_f64().unwrap())
            .sum()
    }

    /// Every counter and histogram sample, by name and labels: what must never go down.
    fn monotonic(&self) -> BTreeMap<String, f64> {
        let families = self.report["families"].as_object().unwrap();
        let grows = |sample: &str| {
            families.iter().any(|(f, t)| match t.as_str() {
                Some("counter") => sample == format!("{f}_total"),
                Some("histogram") => ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| sample == format!("{f}{s}")),
                _ => false,
            })
        };
        self.report["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| grows(s[0].as_str().unwrap()))
            .map(|s| (format!("{}{}", s[0], s[1]), s[2].as_f64().unwrap()))
            .collect()
    }
}

fn scenario(primary: &str, fallback: &str) -> String {
    crate::support::failover_scenario(
        "live-metrics",
        11,
        primary,
        fallback,
        r#"[load]
warmup = "1s"
stages = [{ duration = "6s", rate = 40 }]  # the first second is the warmup
[[requests]]
name = "chat.stream"
weight = 3
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
primary = "primary"
[[requests]]
name = "plain"
weight = 1
model = "m"
prompt = "hello"
max_tokens = 8
primary = "primary"
[[requests]]
name = "unrouted"
weight = 1
model = "no-such-model"
prompt = "hello"
max_tokens = 8
[[faults]]
upstream = "primary"
at = "3s"
duration = "2s"
kind = "outage"
[sla]
failover_success = "90%"
availability = "50%"
max_failover_time = "1s"
classes = { plain = { p99_latency = "2s" } }
"#,
    )
}

/// Reads the child's stderr until it says where the metrics are; the rest is kept for
/// failure messages.
async fn metrics_url(
    stderr: tokio::process::ChildStderr,
) -> (String, Arc<std::sync::Mutex<String>>) {
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("the metrics URL is printed within 60 s")
            .unwrap()
            .unwrap_or_else(|| panic!("stderr ended first:\n{}", log.lock().unwrap()));
        log.lock().unwrap().push_str(&line);
        log.lock().unwrap().push('\n');
        if let Some(url) = line.strip_prefix("live metrics: ") {
            break url.trim().to_string();
        }
    };
    let rest = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = rest.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    (url, log)
}

/// A run with an outage on its primary, scraped every 100 ms from start to end, then once
/// more after summary.json is written (the exporter lingers on the final numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_parse_grow_show_the_fault_and_end_equal_to_the_summary() {
    let (primary, fallback) =
        crate::support::primary_and_fallback("[latency]\ntokens_per_second = 4000\n").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.toml");
    std::fs::write(&path, scenario(&primary.url(), &fallback.url())).unwrap();
    let out = dir.path().join("run");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(&path)
        .args([
            "-q",
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-linger",
            "60s",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (url, log) = metrics_url(child.stderr.take().unwrap()).await;
    let (base, _) = url.rsplit_once("/metrics").expect("a /metrics URL");
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    let client = TestClient::new();
    let mut texts = Vec::new();
    let started = Instant::now();
    let summary_path = out.join("summary.json");
    loop {
        // Checked before the scrape: once it exists, this scrape is of the final numbers.
        let done = summary_path.exists();
        let reply = client.get(base, "/metrics").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        texts.push(reply.text());
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no summary after 90 s:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.get(base, "/other").await.status, 404);

    // SIGTERM ends the linger: the run exits with its verdict and the server is gone.
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the linger ends on SIGTERM")
        .unwrap();
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(
        status.code(),
        crate::support::verdict_code(&summary),
        "{}",
        log.lock().unwrap()
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the metrics server outlived the run"
    );

    let files: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.path().join(format!("scrape-{i}.txt"));
            std::fs::write(&p, t).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let reports = python_script("prometheus_scrapes.py", &args).await;
    let scrapes: Vec<Scrape> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Scrape { report: r.clone() })
        .collect();
    for (i, s) in scrapes.iter().enumerate() {
        assert_eq!(
            s.report["problems"],
            Value::Array(vec![]),
            "scrape {i}:\n{}",
            texts[i]
        );
    }
    // Published from the first scrape on or soon after (the fleet starts first).
    let published: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s.get("gauntlet_run_planned_seconds", &[]).is_some())
        .collect();
    assert!(
        published.len() >= 30,
        "{} scrapes with numbers",
        published.len()
    );
    let last = published.last().unwrap();
    let families: BTreeMap<&str, &str> = last.report["families"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    for (name, kind) in crate::support::RUN_FAMILIES {
        assert_eq!(families.get(name), Some(&kind), "{families:?}");
    }
    assert_eq!(
        last.value(
            "gauntlet_run_info",
            &[("scenario", "live-metrics"), ("seed", "11")]
        ),
        1.0
    );
    assert_eq!(last.value("gauntlet_run_planned_seconds", &[]), 6.0);

    // Counters and histograms never go down from one scrape to the next.
    for pair in published.windows(2) {
        let (before, after) = (pair[0].monotonic(), pair[1].monotonic());
        for (key, v) in &before {
            let now = after
                .get(key)
                .unwrap_or_else(|| panic!("{key} disappeared"));
            assert!(now >= v, "{key} went down: {v} -> {now}");
        }
    }
    // A scrape mid-run already counted answers.
    let ok = |s: &Scrape| s.total("gauntlet_requests_total", &[("outcome", "ok")]);
    let mid = published
        .iter()
        .find(|s| s.value("gauntlet_run_elapsed_seconds", &[]) < 5.0 && ok(s) > 0.0)
        .expect("a scrape mid-run with answers counted");
    assert!(ok(mid) < ok(last));

    // The outage shows on its gauge while it lasts, and not before or after.
    let outage = [("upstream", "primary"), ("kind", "outage")];
    let gauge: Vec<f64> = published
        .iter()
        .map(|s| s.value("gauntlet_fault_active", &outage))
        .collect();
    let on = gauge
        .iter()
        .position(|v| *v == 1.0)
        .expect("the outage gauge reads 1");
    let off = on
        + gauge[on..]
            .iter()
            .position(|v| *v == 0.0)
            .expect("and 0 after");
    assert!(on > 0 && gauge[..on].iter().all(|v| *v == 0.0), "{gauge:?}");
    assert!(off - on >= 5, "2 s at 100 ms a scrape: {gauge:?}");
    assert!(gauge[off..].iter().all(|v| *v == 0.0), "{gauge:?}");
    let elapsed_on = published[on].value("gauntlet_run_elapsed_seconds", &[]);
    assert!(
        (2.9..4.0).contains(&elapsed_on),
        "applied at {elapsed_on} s"
    );

    // The final scrape is the summary, class by class.
    let mut sent = 0.0;
    for class in summary["classes"].as_array().unwrap() {
        let name = class["name"].as_str().unwrap();
        let c = [("class", name)];
        let requests = last.total("gauntlet_requests_total", &c);
        let dropped = last.value("gauntlet_dropped_total", &c);
        assert_eq!(
            requests + dropped,
            class["requests"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(dropped, class["dropped"].as_f64().unwrap(), "{name}");
        sent += requests;
        let successes = class["successes"].as_f64().unwrap();
        assert_eq!(
            last.value(
                "gauntlet_requests_total",
                &[("class", name), ("outcome", "ok")]
            ),
            successes,
            "{name}"
        );
        for (kind, n) in class["errors"].as_object().unwrap() {
            let labels = [("class", name), ("outcome", kind.as_str())];
            assert_eq!(
                last.value("gauntlet_requests_total", &labels),
                n.as_f64().unwrap()
            );
        }
        assert_eq!(
            last.value("gauntlet_latency_seconds_count", &c),
            successes,
            "{name}"
        );
        let latency = &class["latency_ms"];
        assert_eq!(latency["samples"].as_f64().unwrap(), successes);
        if successes > 0.0 {
            // Mean from _sum/_count against the summary's own mean (microsecond sums).
            let mean_ms = 1e3 * last.value("gauntlet_latency_seconds_sum", &c) / successes;
            let want = latency["mean"].as_f64().unwrap();
            assert!(
                (mean_ms - want).abs() <= 0.01 * want + 0.05,
                "{name}: {mean_ms} vs {want}"
            );
        }
        let streamed = class["ttft_ms"]["samples"].as_f64().unwrap_or(0.0);
        assert_eq!(
            last.value("gauntlet_ttft_seconds_count", &c),
            streamed,
            "{name}"
        );
        let tpot = class["tpot_ms"]["samples"].as_f64().unwrap_or(0.0);
        assert_eq!(
            last.value("gauntlet_tpot_seconds_count", &c),
            tpot,
            "{name}"
        );
        for (upstream, n) in class["served_by"].as_object().unwrap() {
            let labels = [("class", name), ("upstream", upstream.as_str())];
            assert_eq!(
                last.value("gauntlet_served_total", &labels),
                n.as_f64().unwrap()
            );
        }
        assert_eq!(
            last.total("gauntlet_served_total", &c),
            successes,
            "{name}: every success has its upstream"
        );
        let tokens = &class["tokens"];
        assert_eq!(
            last.value("gauntlet_prompt_tokens_total", &c),
            tokens["prompt"].as_f64().unwrap()
        );
        assert_eq!(
            last.value("gauntlet_completion_tokens_total", &c),
            tokens["completion"].as_f64().unwrap()
        );
    }
    // The story the numbers tell: answers streamed, the fallback took over during the outage,
    // and the unroutable class failed as a 4xx.
    let c = |n| [("class", n)];
    assert!(last.value("gauntlet_ttft_seconds_count", &c("chat.stream")) > 50.0);
    assert_eq!(last.value("gauntlet_ttft_seconds_count", &c("plain")), 0.0);
    let via_fallback = [("class", "chat.stream"), ("upstream", "fallback")];
    assert!(last.value("gauntlet_served_total", &via_fallback) >= 20.0);
    let refused = [("class", "unrouted"), ("outcome", "status_4xx")];
    assert!(last.value("gauntlet_requests_total", &refused) >= 10.0);
    assert_eq!(last.value("gauntlet_schedule_lag_seconds_count", &[]), sent);
    assert_eq!(last.value("gauntlet_in_flight", &[]), 0.0);
    let ran = last.value("gauntlet_run_elapsed_seconds", &[]);
    assert!((5.5..=6.0).contains(&ran), "ran {ran} s");
    // Nothing the upstreams did not serve: the mocks' own counts bound the served-by ones.
    let served_primary = last.total("gauntlet_served_total", &[("upstream", "primary")]);
    assert!(served_primary <= primary.stats().requests_total as f64);

    the_sla_checks_run_and_end_as_the_summary(&published, &summary);
}

/// The SLA checks' running values: judged from early on, failover waits for its fault, and
/// the last scrape holds summary.json's verdict, check by check.
fn the_sla_checks_run_and_end_as_the_summary(published: &[&Scrape], summary: &Value) {
    let status = |s: &Scrape, check: &str, scope: &str| -> Option<String> {
        let found: Vec<String> = ["pass", "fail", "inconclusive"]
            .iter()
            .filter(|st| {
                s.get(
                    "gauntlet_sla_check_status",
                    &[("check", check), ("scope", scope), ("status", st)],
                ) == Some(1.0)
            })
            .map(|st| st.to_string())
            .collect();
        assert!(found.len() <= 1, "{check} {scope}: {found:?}");
        found.into_iter().next()
    };
    let elapsed = |s: &Scrape| s.value("gauntlet_run_elapsed_seconds", &[]);
    let availability = [("check", "availability"), ("scope", "overall")];
    // Mid-run (before the plan's 6 s), availability already has a running value.
    let mid = published
        .iter()
        .find(|s| {
            (1.5..5.0).contains(&elapsed(s))
                && s.get("gauntlet_sla_check_value", &availability).is_some()
        })
        .expect("a scrape mid-run with a running availability");
    let v = mid.value("gauntlet_sla_check_value", &availability);
    assert!((0.0..=1.0).contains(&v), "availability {v}");
    assert_eq!(mid.value("gauntlet_sla_check_target", &availability), 0.5);
    // Before the outage (at 3 s) nothing has failed over: failover success is inconclusive.
    let before_fault = published
        .iter()
        .find(|s| elapsed(s) < 2.5 && status(s, "failover_success", "overall").is_some())
        .expect("a verdict before the fault");
    assert_eq!(
        status(before_fault, "failover_success", "overall").as_deref(),
        Some("inconclusive")
    );
    let failover = [("check", "failover_success"), ("scope", "overall")];
    assert_eq!(
        before_fault.get("gauntlet_sla_check_value", &failover),
        None
    );
    assert_eq!(
        before_fault.get("gauntlet_sla_check_passing", &failover),
        None
    );
    // During the outage it is measured.
    assert!(
        published.iter().any(|s| (3.5..5.5).contains(&elapsed(s))
            && s.get("gauntlet_sla_check_value", &failover).is_some()),
        "failover success never measured during the outage"
    );

    let last = published.last().unwrap();
    let checks = summary["sla"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "{checks:?}");
    for c in checks {
        let (check, scope) = (c["name"].as_str().unwrap(), c["scope"].as_str().unwrap());
        let labels = [("check", check), ("scope", scope)];
        let factor = if c["unit"] == "ms" { 1e-3 } else { 1.0 };
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        let target = last.value("gauntlet_sla_check_target", &labels);
        assert!(
            close(target, c["target"].as_f64().unwrap() * factor),
            "{check} {scope}"
        );
        match c["measured"].as_f64() {
            Some(m) => {
                let got = last.value("gauntlet_sla_check_value", &labels);
                assert!(close(got, m * factor), "{check} {scope}: {got} vs {m}");
            }
            None => assert_eq!(last.get("gauntlet_sla_check_value", &labels), None),
        }
        assert_eq!(
            last.value("gauntlet_sla_check_samples", &labels),
            c["samples"].as_f64().unwrap(),
            "{check} {scope}"
        );
        let want = c["status"].as_str().unwrap();
        assert_eq!(
            status(last, check, scope).as_deref(),
            Some(want),
            "{check} {scope}"
        );
        let passing = last.get("gauntlet_sla_check_passing", &labels);
        let expected = match want {
            "pass" => Some(1.0),
            "fail" => Some(0.0),
            _ => None,
        };
        assert_eq!(passing, expected, "{check} {scope}");
    }
}

/// An address already taken is a server that would not start: exit 3, the flag named, and
/// nothing started or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_address_in_use_fails_the_run_before_it_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.toml");
    // Upstreams nobody listens on: the run must fail on the address before it gets to them.
    std::fs::write(&path, scenario("http://127.0.0.1:9", "http://127.0.0.1:9")).unwrap();
    let out = dir.path().join("run");
    let (code, stderr) =
        crate::support::gauntlet_run(&path, &out, &["--metrics-listen", &addr]).await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-listen {addr}: cannot listen there")),
        "{stderr}"
    );
    assert!(!out.exists(), "a run folder was left behind");
    // An address that is not one is the user's input (exit 2), before anything else.
    let (bad, stderr) =
        crate::support::gauntlet_run(&path, &out, &["--metrics-listen", "localhost:nine"]).await;
    assert_eq!(bad, Some(2), "{stderr}");
    drop(taken);
}

/// The metric names a run exports, read from a rendering of every family.
fn exported_names() -> BTreeSet<String> {
    let metrics = crate::support::every_family_metrics();
    // A verdict with a measured value and a decided status, so every SLA family has a series.
    let check = SlaCheck {
        name: SlaKey::Availability,
        scope: "overall".into(),
        target: 0.999,
        measured: Some(1.0),
        unit: "ratio".into(),
        samples: 1,
        status: CheckStatus::Pass,
        note: None,
        misses: None,
    };
    metrics.set_sla(SlaResult {
        passed: true,
        verdict: CheckStatus::Pass,
        checks: vec![check],
    });
    gauntlet::observe::parse_exposition(&metrics.render())
        .unwrap()
        .into_iter()
        .map(|sample| sample.name)
        .collect()
}

/// PromQL's words that are not metric names, besides functions (always followed by `(`):
/// aggregations (`sum by (le) (...)` puts a clause before the paren) and keywords.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];

/// The metric names a PromQL expression selects: identifiers that are not functions (followed
/// by `(`), keywords, label names in `by (...)`-style lists or `{...}` matchers, durations,
/// numbers or Grafana `$variables`.
fn selected_metrics(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // Inside `{...}`, `[...]`, a string, or the label list after a grouping keyword.
    let mut skip_until: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(end) = skip_until {
            if c == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            } else if c == end {
                skip_until = None;
            }
            i += 1;
            continue;
        }
        match c {
            '{' => skip_until = Some('}'),
            '[' => skip_until = Some(']'),
            '"' => skip_until = Some('"'),
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().position(|c| !c.is_whitespace());
                let paren = next.is_some_and(|n| chars[i + n] == '(');
                let grouping = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if grouping && let Some(n) = next.filter(|_| paren) {
                    // Its label list: names of labels, not of metrics.
                    i += n + 1;
                    skip_until = Some(')');
                } else if paren || KEYWORDS.contains(&word.as_str()) {
                    // A function or aggregation, or a keyword.
                } else {
                    names.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// Every `expr` (panel targets, annotations) and Prometheus variable query in the dashboard.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains("label_values") => {
                        out.push(s.clone())
                    }
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_gauntlet_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/gauntlet-run.json");
    let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let exported = exported_names();
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        // `label_values(metric, label)`: the second argument is a label, not a metric.
        let expr = match expr.strip_prefix("label_values(") {
            Some(rest) => rest.split(',').next().unwrap().to_string(),
            None => expr.clone(),
        };
        let names = selected_metrics(&expr);
        assert!(!names.is_empty(), "`{expr}` selects no metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "`{expr}` names {name}, which gauntlet does not export; it exports {exported:?}"
            );
            used.insert(name);
        }
    }
    // The dashboard covers what the issue asks to see.
    for name in [
        "gauntlet_latency_seconds_bucket",
        "gauntlet_ttft_seconds_bucket",
        "gauntlet_requests_total",
        "gauntlet_served_total",
        "gauntlet_fault_active",
        "gauntlet_schedule_lag_seconds_bucket",
        "gauntlet_dropped_total",
        "gauntlet_sla_check_value",
        "gauntlet_sla_check_target",
        "gauntlet_sla_check_passing",
    ] {
        assert!(used.contains(name), "no panel uses {name}");
    }
    // Every panel has a title and a Prometheus datasource.
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(panel["title"].is_string(), "{panel}");
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["type"], "prometheus",
                "{}",
                panel["title"]
            );
        }
    }
}

#[test]
fn the_promql_reader_tells_metrics_from_functions_and_labels() {
    assert_eq!(
        selected_metrics(
            "histogram_quantile(0.99, sum by (class, le) (rate(gauntlet_latency_seconds_bucket{class=~\"$class\", x=\"a}b\"}[$__rate_interval])))"
        ),
        ["gauntlet_latency_seconds_bucket"]
    );
    assert_eq!(
        selected_metrics(
            "sum(rate(a_total[5m])) / ignoring(upstream) group_left sum(rate(b_total[1m])) > bool 0.5 or on() vector(0) unless sum without (x) (c)"
        ),
        ["a_total", "b_total", "c"]
    );
    assert_eq!(selected_metrics("up offset 1h"), ["up"]);
}
