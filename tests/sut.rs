//! An SRE wants to know what the gateway spent to carry the load: a run watches the system
//! under test from inside — the embedded gateway's and mocks' CPU by thread, the process's
//! memory, a separate process by pid or by name, the gateway's own `/metrics` — puts the
//! series in `summary.json` and a "System under test" section in the report, and treats a
//! scrape that fails as a gap, never as a zero or a failed run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{gauntlet_run, instant_profile, start_mock_named};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/profiles/tiny.toml");

fn summary(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// The part of `sut.parts` called `name`.
fn part<'a>(sut: &'a Value, name: &str) -> &'a Value {
    sut["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no part {name} in {:#}", sut["parts"]))
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_gateway_is_watched_and_its_own_metrics_are_in_the_summary_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "sut-embedded"
[[upstreams]]
name = "primary"
profile = "{TINY}"
[[upstreams]]
name = "fallback"
profile = "{TINY}"
[gateway]
routes = [{{ model = "tiny-model", targets = ["primary"], fallbacks = ["fallback"] }}]
[load]
warmup = "1s"
stages = [{{ duration = "5s", rate = 120 }}]
baseline = "direct"
baseline_share = "20%"
[[requests]]
name = "chat"
model = "tiny-model"
primary = "primary"
prompt = "hello"
max_tokens = 16
stream = true
[[faults]]
upstream = "primary"
at = "2s"
duration = "2s"
kind = "outage"
"#
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let (code, stderr) = gauntlet_run(&scenario, &out, &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&out);
    let sut = &s["sut"];
    let readings = sut["t_s"].as_array().unwrap().len();
    assert!(readings >= 5, "one reading per interval: {readings}");

    // CPU of the gateway's and the mocks' own threads: above zero while loaded, and far
    // below what 2 cores could give.
    for name in ["gateway", "mocks", "load generator"] {
        let p = part(sut, name);
        assert_eq!(p["kind"], "threads");
        let cores = numbers(&p["cpu_cores"]);
        assert!(cores.iter().any(|c| *c > 0.0), "{name} used no CPU: {p}");
        assert!(cores.iter().all(|c| *c < 64.0), "{name}: {p}");
        assert!(p["cpu_seconds"].as_f64().unwrap() > 0.0, "{name}: {p}");
        assert!(numbers(&p["threads"]).iter().all(|t| *t >= 1.0), "{p}");
        assert!(p.get("rss_bytes").is_none(), "memory is per process: {p}");
    }
    let me = part(sut, "gauntlet process");
    let rss = numbers(&me["rss_bytes"]);
    assert_eq!(rss.len(), readings);
    assert!(
        rss.iter()
            .all(|b| *b > 1024.0 * 1024.0 && *b < 16.0 * 1024.0 * 1024.0 * 1024.0),
        "RSS between 1 MiB and 16 GiB: {rss:?}"
    );
    assert!(numbers(&me["fds"]).iter().all(|n| *n >= 3.0));

    // The gateway's own metrics, scraped from its /metrics: it answered every request sent.
    let scrape = &sut["scrape"];
    assert_eq!(scrape["failed"], 0, "{scrape}");
    assert!(scrape["url"].as_str().unwrap().ends_with("/metrics"));
    let series = scrape["series"].as_array().unwrap();
    let answered: f64 = series
        .iter()
        .filter(|x| x["name"] == "gateway_requests_total")
        .map(|x| *numbers(&x["values"]).last().unwrap())
        .sum();
    let measured = s["overall"]["requests"].as_f64().unwrap();
    assert!(
        answered >= measured,
        "the gateway counted {answered} requests, gauntlet sent {measured} after warmup"
    );
    let breaker: Vec<f64> = series
        .iter()
        .find(|x| x["name"] == "gateway_breaker_state" && x["labels"]["upstream"] == "primary")
        .map(|x| numbers(&x["values"]))
        .expect("the primary's breaker state is kept");
    assert!(
        breaker.iter().any(|v| *v > 0.0),
        "the breaker opened during the outage: {breaker:?}"
    );

    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let section = &html[html
        .find("id=\"sut\"")
        .expect("a System under test section")..];
    assert!(
        section.contains("CPU cores used by each part"),
        "the CPU chart"
    );
    assert!(section.contains("Resident memory of each watched process"));
    assert!(section.contains("CPU per 1,000 requests"));
    assert!(section.contains("The gateway's own counts beside gauntlet's"));
    // The reference gateway counts what the mocks and the load generator counted, read at
    // the same moments: no row disagrees, though a fifth of the requests went straight to
    // the primary mock (the direct baseline), which only the mocks counted.
    assert!(
        s["overhead"]["overall"]["direct_requests"]
            .as_u64()
            .unwrap()
            > 50
    );
    let counts = &section[section.find("id=\"sut-counts\"").expect("the counts table")..];
    let counts = &counts[..counts.find("</table>").unwrap()];
    for measure in ["requests", "attempts at upstreams", "retries and fallbacks"] {
        assert!(counts.contains(measure), "{measure}: {counts}");
    }
    assert!(!counts.contains("disagree"), "{counts}");
    assert!(section.contains("gateway's circuit breaker"));
}

/// A copy of the gauntlet binary under a name no other process has (a symlink: the kernel
/// names the process after the path it was started by).
fn renamed_binary(dir: &Path, tag: &str) -> (PathBuf, String) {
    let name = format!("sut{tag}{}", std::process::id() % 100_000);
    let link = dir.join(&name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gauntlet"), &link).unwrap();
    (link, name)
}

/// `gauntlet mock` started as `program` with one provider; returns it and its URL.
async fn one_mock(dir: &Path, program: &Path) -> (tokio::process::Child, String) {
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        format!("[[providers]]\nname = \"outside\"\nprofile = \"{TINY}\"\nport = 0\n"),
    )
    .unwrap();
    let (child, mut urls) = crate::support::mock_process(program, &fleet, 1).await;
    (child, urls.remove(0))
}

fn direct_scenario(url: &str, observe: &str) -> String {
    format!(
        r#"name = "sut-outside"
[[upstreams]]
name = "outside"
url = "{url}"
[load]
stages = [{{ duration = "3s", rate = 100 }}]
[[requests]]
name = "chat"
model = "tiny-model"
prompt = "hello"
max_tokens = 16
primary = "outside"
[observe]
{observe}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_process_is_watched_by_pid_and_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (program, name) = renamed_binary(tmp.path(), "one");
    let (mut child, url) = one_mock(tmp.path(), &program).await;
    let pid = child.id().unwrap();
    for (label, observe) in [
        ("by-pid", format!("pid = {pid}")),
        ("by-name", format!("process = \"{name}\"")),
    ] {
        let scenario = tmp.path().join(format!("{label}.toml"));
        std::fs::write(&scenario, direct_scenario(&url, &observe)).unwrap();
        let out = tmp.path().join(label);
        let (code, stderr) = gauntlet_run(&scenario, &out, &[]).await;
        assert_eq!(code, Some(0), "{label}: {stderr}");
        let s = summary(&out);
        let sut = &s["sut"];
        let watched = sut["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .unwrap_or_else(|| panic!("{label}: pid {pid} not watched: {sut:#}"));
        assert_eq!(watched["kind"], "process");
        assert_eq!(watched["name"], name.as_str(), "{label}");
        assert!(
            watched["cpu_seconds"].as_f64().unwrap() > 0.0,
            "{label}: the mock served 300 requests: {watched}"
        );
        let rss = numbers(&watched["rss_bytes"]);
        assert!(
            !rss.is_empty() && rss.iter().all(|b| *b > 1024.0 * 1024.0),
            "{rss:?}"
        );
        assert!(numbers(&watched["threads"]).iter().all(|t| *t >= 1.0));
        assert!(numbers(&watched["fds"]).iter().all(|n| *n >= 3.0));
        // Nothing of gauntlet's own runs the SUT here: no gateway or mock threads part.
        assert!(
            sut["parts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["name"] != "gateway" && p["name"] != "mocks"),
            "{sut:#}"
        );
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(html.contains(&format!("{name} (pid {pid})")), "{label}");
    }
    child.kill().await.unwrap();
}

/// Serves Prometheus text for the first `answers` scrapes (the n-th, from 1, is `body(n)`),
/// then stops listening.
async fn flaky_metrics(answers: usize, body: fn(usize) -> String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while count.load(Ordering::SeqCst) < answers {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let body = body(n);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
        }
        // The listener goes with the task: every later scrape is refused.
    });
    (url, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_url_that_stops_answering_leaves_a_gap_not_a_zero_or_a_failure() {
    let mock = start_mock_named(instant_profile(""), "outside", None).await;
    let (metrics, served) = flaky_metrics(2, |n| {
        format!(
            "# TYPE litellm_requests counter\nlitellm_requests_total{{model=\"m\"}} {}\n",
            n * 10
        )
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("s.toml");
    let observe = format!("metrics_url = \"{metrics}\"\nmetrics = [\"litellm_requests\"]");
    std::fs::write(
        &scenario,
        direct_scenario(&mock.url(), &observe).replace("tiny-model", "m"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let (code, stderr) = gauntlet_run(&scenario, &out, &[]).await;
    assert_eq!(
        code,
        Some(0),
        "a failed scrape never fails the run: {stderr}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 2);
    let s = summary(&out);
    let scrape = &s["sut"]["scrape"];
    assert_eq!(scrape["succeeded"], 2, "{scrape}");
    assert!(scrape["failed"].as_u64().unwrap() >= 1, "{scrape}");
    let series = scrape["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "only the named metric is kept: {scrape}");
    assert_eq!(series[0]["name"], "litellm_requests_total");
    assert_eq!(series[0]["labels"]["model"], "m");
    let values = series[0]["values"].as_array().unwrap();
    assert_eq!(values[0], 10.0);
    assert_eq!(values[1], 20.0);
    assert!(
        values[2..].iter().all(Value::is_null),
        "after the endpoint went away: gaps, never zeros: {values:?}"
    );
    let notes: Vec<&str> = s["sut"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("gaps, not zeros") && n.contains(&metrics)),
        "{notes:?}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("gaps, not zeros"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_is_not_there_is_invalid_input_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    for (label, observe, says) in [
        (
            "pid",
            "pid = 2147483646",
            "observe.pid = 2147483646: cannot read /proc/",
        ),
        (
            "name",
            "process = \"no-such-program-x\"",
            "observe.process = \"no-such-program-x\": no running process has that name",
        ),
    ] {
        let scenario = tmp.path().join(format!("{label}.toml"));
        std::fs::write(&scenario, direct_scenario("http://127.0.0.1:9", observe)).unwrap();
        let out = tmp.path().join(label);
        let (code, stderr) = gauntlet_run(&scenario, &out, &[]).await;
        assert_eq!(code, Some(2), "{label}: {stderr}");
        assert!(stderr.contains(says), "{label}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.join("summary.json").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_of_one_name_are_ambiguous() {
    let tmp = tempfile::tempdir().unwrap();
    let (program, name) = renamed_binary(tmp.path(), "two");
    let (mut a, url) = one_mock(tmp.path(), &program).await;
    let (mut b, _) = one_mock(tmp.path(), &program).await;
    let scenario = tmp.path().join("s.toml");
    std::fs::write(
        &scenario,
        direct_scenario(&url, &format!("process = \"{name}\"")),
    )
    .unwrap();
    let (code, stderr) = gauntlet_run(&scenario, &tmp.path().join("out"), &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "observe.process = \"{name}\": 2 processes have that name"
        )),
        "{stderr}"
    );
    a.kill().await.unwrap();
    b.kill().await.unwrap();
}

/// A gateway that says it retried every request twice while the mocks received each once:
/// the report puts both counts side by side and flags the disagreement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_retry_count_disagrees_with_the_mocks_is_flagged() {
    let mock = start_mock_named(instant_profile(""), "outside", None).await;
    let (metrics, _) = flaky_metrics(1_000, |n| {
        format!(
            "gateway_requests_total{{route=\"m\",status=\"200\"}} {}\n\
             gateway_attempts_total{{route=\"m\",upstream=\"outside\",outcome=\"ok\"}} {}\n",
            n * 100,
            n * 300
        )
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("s.toml");
    std::fs::write(
        &scenario,
        direct_scenario(&mock.url(), &format!("metrics_url = \"{metrics}\""))
            .replace("tiny-model", "m"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let (code, stderr) = gauntlet_run(&scenario, &out, &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary(&out);
    // What the mock received and what the load generator saw end during the run: from the
    // baseline reading to the last.
    let grew = |v: &Value| {
        let n = numbers(v);
        n.last().unwrap() - n.first().unwrap()
    };
    let received = grew(&s["sut"]["upstream_requests"][0]["values"]);
    let ended = grew(&s["sut"]["client_finished"]);
    assert_eq!(s["sut"]["upstream_requests"][0]["name"], "outside");
    assert!(
        (received - ended).abs() <= 2.0,
        "{ended} ended, {received} received"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let counts = &html[html.find("id=\"sut-counts\"").expect("the counts table")..];
    let row = counts
        .split("<tr>")
        .find(|r| r.contains("retries and fallbacks"))
        .expect("a retries row");
    assert!(row.contains("disagree"), "{row}");
    // Both numbers stand side by side: the gateway's (its attempts minus its requests grew
    // 200 a scrape) and the mocks' (received minus what the load generator saw end).
    let cells: Vec<&str> = row.split("<td class=\"num\">").skip(1).collect();
    let number = |c: &str| c.split('<').next().unwrap().parse::<f64>().unwrap();
    assert!(number(cells[0]) >= 400.0, "{row}");
    assert_eq!(number(cells[1]), received - ended, "{row}");
    assert!(counts.contains("of the gateway's counts disagree"));
}
