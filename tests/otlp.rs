//! An SRE feeds a run to their OpenTelemetry collector: `gauntlet run --otlp URL` pushes the
//! live numbers as OTLP/HTTP protobuf while it runs and once more at the end, so the
//! collector's last numbers are `summary.json`'s; the OpenTelemetry project's own Python
//! bindings read the same bytes the same way; a collector that is down costs warnings, never
//! the run; a URL that is no endpoint is refused before anything starts.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, metric, number_data_point,
};
use serde_json::Value;

use crate::support::{gauntlet_run, otlp_receiver, python_script, refused_url};

fn scenario(primary: &str, fallback: &str) -> String {
    crate::support::failover_scenario(
        "otlp-push",
        5,
        primary,
        fallback,
        r#"[load]
warmup = "1s"
stages = [{ duration = "4s", rate = 40 }]
[[requests]]
name = "chat.stream"
weight = 3
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
primary = "primary"
[[requests]]
name = "unrouted"
weight = 1
model = "no-such-model"
prompt = "hello"
max_tokens = 8
[[faults]]
upstream = "primary"
at = "2s"
duration = "1s"
kind = "outage"
"#,
    )
}

/// The scenario run in `dir` against the two instant mocks (`profile_extra` added to their
/// profile), pushing to `url` every 500 ms: its summary and stderr, once its exit code is
/// checked against the summary's verdict.
async fn run_pushing(dir: &std::path::Path, profile_extra: &str, url: &str) -> (Value, String) {
    let (primary, fallback) = crate::support::primary_and_fallback(profile_extra).await;
    let path = dir.join("otlp.toml");
    std::fs::write(&path, scenario(&primary.url(), &fallback.url())).unwrap();
    let out = dir.join("run");
    let (code, stderr) =
        gauntlet_run(&path, &out, &["--otlp", url, "--otlp-interval", "500ms"]).await;
    let summary = crate::support::summary_json(&out, &stderr);
    assert_eq!(code, crate::support::verdict_code(&summary), "{stderr}");
    (summary, stderr)
}

fn text(kv: &KeyValue) -> (&str, &str) {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => (kv.key.as_str(), s.as_str()),
        other => panic!("{}: not a string: {other:?}", kv.key),
    }
}

fn labels(attrs: &[KeyValue]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|kv| {
            let (k, v) = text(kv);
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A push's metrics by name.
fn metrics(req: &ExportMetricsServiceRequest) -> BTreeMap<&str, &Metric> {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| (m.name.as_str(), m))
        .collect()
}

/// The integer value of the counter `name`'s point whose attributes include `want`, summed
/// over every such point.
fn counter(req: &ExportMetricsServiceRequest, name: &str, want: &[(&str, &str)]) -> i64 {
    let ms = metrics(req);
    let m = ms.get(name).unwrap_or_else(|| panic!("no metric {name}"));
    let Some(metric::Data::Sum(sum)) = &m.data else {
        panic!("{name} is not a sum: {m:?}");
    };
    sum.data_points
        .iter()
        .filter(|p| {
            let l = labels(&p.attributes);
            want.iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(n)) => n,
            other => panic!("{name}: not an integer: {other:?}"),
        })
        .sum()
}

/// Every cumulative number in a push, by metric and attributes: what must never go down.
fn cumulative(req: &ExportMetricsServiceRequest) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, m) in metrics(req) {
        match &m.data {
            Some(metric::Data::Sum(s)) => {
                for p in &s.data_points {
                    let Some(number_data_point::Value::AsInt(n)) = p.value else {
                        panic!("{name}: {p:?}");
                    };
                    out.insert(format!("{name}{:?}", labels(&p.attributes)), n as f64);
                }
            }
            Some(metric::Data::Histogram(h)) => {
                for p in &h.data_points {
                    let key = format!("{name}{:?}", labels(&p.attributes));
                    out.insert(format!("{key}count"), p.count as f64);
                    for (i, n) in p.bucket_counts.iter().enumerate() {
                        out.insert(format!("{key}bucket{i}"), *n as f64);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The families a run's exposition serves, read from a snapshot of every one.
fn exported_families() -> BTreeSet<String> {
    let metrics = crate::support::every_family_metrics();
    metrics
        .snapshot()
        .families
        .iter()
        .map(|f| f.name.to_string())
        .collect()
}

/// A run pushed to a loopback receiver every 500 ms: every push is a well-formed
/// `ExportMetricsServiceRequest` POSTed as protobuf, cumulative and growing, and the last one,
/// read here and by the OpenTelemetry Python bindings, is the summary class by class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_pushes_grow_and_the_last_one_is_the_summary() {
    let receiver = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let (summary, stderr) =
        run_pushing(dir.path(), "[latency]\ntokens_per_second = 4000\n", &url).await;
    assert!(
        stderr.contains(&format!("otlp: pushing to {url}/v1/metrics every 500ms")),
        "{stderr}"
    );
    assert!(!stderr.contains("warning: otlp"), "{stderr}");

    let pushes = receiver.pushes();
    // 5 s of run (plus the fleet's start) at 500 ms, and the final push.
    assert!(pushes.len() >= 6, "{} pushes", pushes.len());
    let mut requests = Vec::new();
    for (i, p) in pushes.iter().enumerate() {
        assert_eq!(p.method, http::Method::POST, "push {i}");
        assert_eq!(
            p.content_type.as_deref(),
            Some("application/x-protobuf"),
            "push {i}"
        );
        let req = p
            .request
            .as_ref()
            .unwrap_or_else(|e| panic!("push {i}: {e}"));
        requests.push(req);
    }

    // Who sent it: one resource naming the service and the scenario.
    for req in &requests {
        assert_eq!(req.resource_metrics.len(), 1);
        let resource = req.resource_metrics[0].resource.as_ref().unwrap();
        let attrs = labels(&resource.attributes);
        assert_eq!(attrs["service.name"], "gauntlet");
        assert_eq!(attrs["gauntlet.scenario"], "otlp-push");
    }
    let last = *requests.last().unwrap();
    // The exposition's families, each as the OTLP type its Prometheus type maps to.
    let kinds: BTreeMap<&str, &str> = metrics(last)
        .into_iter()
        .map(|(n, m)| {
            let kind = match &m.data {
                Some(metric::Data::Sum(s)) => {
                    assert!(s.is_monotonic, "{n}");
                    assert_eq!(
                        s.aggregation_temporality,
                        AggregationTemporality::Cumulative as i32,
                        "{n}"
                    );
                    "sum"
                }
                Some(metric::Data::Histogram(h)) => {
                    assert_eq!(
                        h.aggregation_temporality,
                        AggregationTemporality::Cumulative as i32,
                        "{n}"
                    );
                    "histogram"
                }
                Some(metric::Data::Gauge(_)) => "gauge",
                other => panic!("{n}: {other:?}"),
            };
            (n, kind)
        })
        .collect();
    let want: BTreeMap<&str, &str> = crate::support::RUN_FAMILIES
        .into_iter()
        .map(|(name, kind)| (name, if kind == "counter" { "sum" } else { kind }))
        .collect();
    // Every family the exposition serves is pushed: the same set as a scrape's.
    for (name, kind) in &want {
        assert_eq!(kinds.get(name), Some(kind), "{kinds:?}");
    }
    let scraped = exported_families();
    let pushed: BTreeSet<String> = kinds
        .iter()
        .map(|(n, k)| match *k {
            "sum" => format!("{n}_total"),
            _ => n.to_string(),
        })
        .collect();
    assert_eq!(pushed, scraped, "pushed vs scraped families");

    // Cumulative: every series starts when the run did, and never goes down.
    let start = |req: &ExportMetricsServiceRequest| {
        let m = metrics(req)["gauntlet_requests"];
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!()
        };
        (
            s.data_points[0].start_time_unix_nano,
            s.data_points[0].time_unix_nano,
        )
    };
    let (t0, _) = start(requests[0]);
    for pair in requests.windows(2) {
        let (a, b) = (cumulative(pair[0]), cumulative(pair[1]));
        for (key, v) in &a {
            let now = b.get(key).unwrap_or_else(|| panic!("{key} disappeared"));
            assert!(now >= v, "{key} went down: {v} -> {now}");
        }
        assert_eq!(start(pair[1]).0, t0, "the start of the series moved");
        assert!(start(pair[1]).1 > start(pair[0]).1, "time went back");
    }
    let ok =
        |r: &ExportMetricsServiceRequest| counter(r, "gauntlet_requests", &[("outcome", "ok")]);
    assert!(
        requests.iter().any(|r| ok(r) > 0 && ok(r) < ok(last)),
        "a push mid-run already counted answers"
    );

    // The last push is the summary, class by class.
    for class in summary["classes"].as_array().unwrap() {
        let name = class["name"].as_str().unwrap();
        let c = [("class", name)];
        let requests = counter(last, "gauntlet_requests", &c);
        let dropped = counter(last, "gauntlet_dropped", &c);
        assert_eq!(
            requests + dropped,
            class["requests"].as_i64().unwrap(),
            "{name}"
        );
        let successes = class["successes"].as_i64().unwrap();
        assert_eq!(
            counter(
                last,
                "gauntlet_requests",
                &[("class", name), ("outcome", "ok")]
            ),
            successes,
            "{name}"
        );
        for (kind, n) in class["errors"].as_object().unwrap() {
            let l = [("class", name), ("outcome", kind.as_str())];
            assert_eq!(counter(last, "gauntlet_requests", &l), n.as_i64().unwrap());
        }
        for (upstream, n) in class["served_by"].as_object().unwrap() {
            let l = [("class", name), ("upstream", upstream.as_str())];
            assert_eq!(counter(last, "gauntlet_served", &l), n.as_i64().unwrap());
        }
        let tokens = &class["tokens"];
        assert_eq!(
            counter(last, "gauntlet_prompt_tokens", &c),
            tokens["prompt"].as_i64().unwrap()
        );
        assert_eq!(
            counter(last, "gauntlet_completion_tokens", &c),
            tokens["completion"].as_i64().unwrap()
        );
    }
    let streamed = counter(
        last,
        "gauntlet_requests",
        &[("class", "chat.stream"), ("outcome", "ok")],
    );
    assert!(streamed > 50, "{streamed} answers streamed");
    assert!(counter(last, "gauntlet_served", &[("upstream", "fallback")]) > 0);

    // The independent judge: the OpenTelemetry project's Python bindings decode the bytes
    // as sent, and find the same numbers.
    let body = dir.path().join("last-push.bin");
    std::fs::write(&body, &pushes.last().unwrap().body).unwrap();
    let reports = python_script("otlp_metrics.py", &[body.to_str().unwrap()]).await;
    let report = &reports[0];
    assert_eq!(report["problems"], Value::Array(vec![]), "{report}");
    assert_eq!(report["resource"]["service.name"], "gauntlet");
    assert_eq!(report["resource"]["gauntlet.scenario"], "otlp-push");
    assert_eq!(report["scope"], "gauntlet");
    let m = &report["metrics"];
    assert_eq!(m["gauntlet_requests"]["kind"], "sum");
    assert_eq!(m["gauntlet_requests"]["monotonic"], true);
    assert_eq!(
        m["gauntlet_requests"]["temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    assert_eq!(
        m["gauntlet_latency_seconds"]["temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    assert_eq!(m["gauntlet_latency_seconds"]["unit"], "s");
    for class in summary["classes"].as_array().unwrap() {
        let name = class["name"].as_str().unwrap();
        let of_class = |metric: &str| -> Vec<Value> {
            m[metric]["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["attributes"]["class"] == name)
                .cloned()
                .collect()
        };
        let answered: i64 = of_class("gauntlet_requests")
            .iter()
            .map(|p| p["value"].as_i64().unwrap())
            .sum();
        let dropped = class["dropped"].as_i64().unwrap();
        assert_eq!(
            answered + dropped,
            class["requests"].as_i64().unwrap(),
            "{name}"
        );
        let latency = of_class("gauntlet_latency_seconds");
        assert_eq!(latency.len(), 1, "{name}");
        let successes = class["successes"].as_i64().unwrap();
        assert_eq!(latency[0]["count"].as_i64().unwrap(), successes, "{name}");
        // The exposition's bounds, in seconds: 5 ms up to 60 s.
        let bounds = latency[0]["bounds"].as_array().unwrap();
        assert_eq!(bounds.first().and_then(Value::as_f64), Some(0.005));
        assert_eq!(bounds.last().and_then(Value::as_f64), Some(60.0));
        if successes > 0 {
            let mean_ms = 1e3 * latency[0]["sum"].as_f64().unwrap() / successes as f64;
            let want = class["latency_ms"]["mean"].as_f64().unwrap();
            assert!(
                (mean_ms - want).abs() <= 0.01 * want + 0.05,
                "{name}: {mean_ms} vs {want}"
            );
        }
    }
}

/// A collector that is down is a warning and counted failed pushes; the run and its files are
/// as they would have been without `--otlp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_warnings_not_the_run() {
    let (primary, fallback) = crate::support::primary_and_fallback("").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otlp.toml");
    std::fs::write(&path, scenario(&primary.url(), &fallback.url())).unwrap();
    let out = dir.path().join("run");
    let down = refused_url().await;
    let (code, stderr) =
        gauntlet_run(&path, &out, &["--otlp", &down, "--otlp-interval", "1s"]).await;
    let summary = crate::support::summary_json(&out, &stderr);
    assert_eq!(code, crate::support::verdict_code(&summary), "{stderr}");
    assert!(out.join("index.html").exists());
    assert!(summary["overall"]["requests"].as_u64().unwrap() > 50);
    // Warned once when it first failed, and the count at the end: every tick and the final
    // push failed.
    assert_eq!(stderr.matches("push to").count(), 1, "{stderr}");
    let tally = stderr
        .lines()
        .find(|l| l.starts_with("warning: otlp: "))
        .unwrap_or_else(|| panic!("no tally in {stderr}"));
    let (failed, rest) = tally["warning: otlp: ".len()..].split_once(" of ").unwrap();
    let (total, _) = rest.split_once(' ').unwrap();
    assert_eq!(failed, total, "{tally}");
    assert!(failed.parse::<u32>().unwrap() >= 4, "{tally}");
    assert!(
        tally.contains("Connection refused") || tally.contains("connection refused"),
        "{tally}"
    );
}

/// A URL that is no OTLP endpoint, or an interval of nothing, is the user's input: exit 2,
/// the flag named, before anything starts or is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_otlp_url_or_interval_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otlp.toml");
    // Upstreams nobody listens on: the run must stop on the flag before it gets to them.
    std::fs::write(&path, scenario("http://127.0.0.1:9", "http://127.0.0.1:9")).unwrap();
    let out = dir.path().join("run");
    for (args, says) in [
        (
            vec!["--otlp", "127.0.0.1:4318"],
            "--otlp: `127.0.0.1:4318` is not an OTLP endpoint",
        ),
        (
            vec!["--otlp", "grpc://127.0.0.1:4317"],
            "the scheme grpc is not http or https",
        ),
        (vec!["--otlp", "http://:4318"], "--otlp: `http://:4318`"),
        (
            vec!["--otlp", "http://127.0.0.1:4318", "--otlp-interval", "0s"],
            "--otlp-interval: must be longer than 0s",
        ),
        (vec!["--otlp-interval", "1s"], "--otlp"),
    ] {
        let (code, stderr) = gauntlet_run(&path, &out, &args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}: a run folder was left behind");
    }
}

/// A collector that refuses the first pushes (503, as one starting up or shedding load does)
/// costs those pushes: one warning, the count at the end, and the later pushes, the final one
/// included, still arrive whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_refuses_at_first_gets_the_later_pushes() {
    let collector = crate::support::otlp_receiver_refusing(2).await;
    let dir = tempfile::tempdir().unwrap();
    let (summary, stderr) = run_pushing(dir.path(), "", &collector.url()).await;
    assert_eq!(stderr.matches("push to").count(), 1, "{stderr}");
    assert!(stderr.contains("accepts pushes again"), "{stderr}");
    let accepted: Vec<ExportMetricsServiceRequest> = collector
        .pushes()
        .into_iter()
        .map(|p| p.request.unwrap())
        .collect();
    let total = 2 + accepted.len();
    assert!(
        stderr.contains(&format!(
            "warning: otlp: 2 of {total} pushes failed (last: HTTP 503 Service Unavailable: starting up)"
        )),
        "{stderr}"
    );
    let last = accepted.last().expect("pushes after the collector came up");
    let answered = counter(last, "gauntlet_requests", &[]);
    let dropped = counter(last, "gauntlet_dropped", &[]);
    assert_eq!(
        answered + dropped,
        summary["overall"]["requests"].as_i64().unwrap()
    );
}
