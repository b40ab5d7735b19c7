//! A platform engineer runs a scenario from the command line and gets every file, including
//! the raw per-request log, with numbers that agree with each other.

use std::path::{Path, PathBuf};
use std::process::Command;

use gauntlet::metrics::Summary;
use gauntlet::rundir::{REQUESTS_HEADER, RunDir, RunFile};

#[test]
fn run_with_raw_writes_one_row_per_request_and_every_report() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/quickstart.toml",
            "-q",
            "--raw",
            "--duration",
            "5s",
            "--rate",
            "60",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    // A 5 s run cannot support a 99.9% promise: inconclusive, which exits 1, never 0.
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("verdict: INCONCLUSIVE"), "{stdout}");

    // Every file exactly once, and no temporary left behind.
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "index.html",
            "junit.xml",
            "latency.hlog",
            "requests.csv",
            "summary.json",
            "summary.md",
            "timeseries.csv",
        ]
    );
    assert_rerender_matches(&dir);
    let (summary, run_dir) = RunDir::load(&dir).unwrap();
    let table = run_dir.read_csv(RunFile::Requests).unwrap();
    let (header, rows) = table.split_first().unwrap();
    assert_eq!(header, &REQUESTS_HEADER);
    let warmup = summary.warmup_s;
    // Rows cover warmup too; those after it are exactly what the summary counted as sent.
    let measured = rows
        .iter()
        .filter(|r| r[0].parse::<f64>().unwrap() >= warmup)
        .count() as u64;
    assert_eq!(measured, summary.overall.requests - summary.overall.dropped);
    let ok = rows.iter().filter(|r| r[3] == "ok").count() as u64;
    assert!(ok >= summary.overall.successes);
    let classes: Vec<&str> = summary.classes.iter().map(|c| c.name.as_str()).collect();
    assert!(rows.iter().all(|r| classes.contains(&r[1].as_str())));
    // The histogram log reads back with one tag per class.
    let tags: std::collections::BTreeSet<String> = run_dir
        .read_hlog()
        .unwrap()
        .into_iter()
        .filter_map(|e| e.tag)
        .collect();
    assert_eq!(tags.len(), classes.len(), "{tags:?}");
    // Every fault window scaled with --duration and was applied and lifted.
    let w = &summary.faults[0];
    assert!(w.applied_at_s.is_some() && w.lifted_at_s.is_some());
    assert!(w.start_s < w.end_s && w.end_s <= 5.0);
    // Latency during the fault is set against the same classes' latency outside it.
    let (during, normal) = (
        w.failed_over_latency_ms.unwrap(),
        w.normal_latency_ms.unwrap(),
    );
    assert!(during.samples > 0 && normal.samples > 0);
    assert!(during.samples + normal.samples <= summary.overall.requests);
}

/// Runs `gauntlet run` with `args` into `dir` and reads back the summary it wrote.
fn run_into(dir: &std::path::Path, args: &[&str]) -> (Summary, std::process::Output) {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    let text = std::fs::read(dir.join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (serde_json::from_slice(&text).unwrap(), out)
}

/// Nearest-rank percentile of unsorted values.
fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[test]
fn an_outage_without_fallback_does_not_look_fast() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let (summary, run) = run_into(
        &dir,
        &[
            "scenarios/no-fallback.toml",
            "-q",
            "--raw",
            "--duration",
            "8s",
            "--rate",
            "60",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "the SLA fails, on purpose");
    let o = &summary.overall;
    let refused = o.errors.get("status_5xx").copied().unwrap_or(0);
    assert!(refused > 50, "the outage refused requests: {:?}", o.errors);

    // Overall p50 is that of the successful requests, as the raw log tells them.
    let mut csv = csv::Reader::from_path(dir.join("requests.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let measured = rows
        .iter()
        .filter(|r| r[0].parse::<f64>().unwrap() >= summary.warmup_s);
    let ok: Vec<f64> = measured
        .filter(|r| &r[3] == "ok")
        .map(|r| r[4].parse().unwrap())
        .collect();
    assert_eq!(ok.len() as u64, o.successes);
    assert_eq!(o.latency_ms.samples, o.successes);
    let raw_p50 = percentile(ok, 0.5);
    assert!(
        (o.latency_ms.p50 - raw_p50).abs() <= raw_p50 * 0.03,
        "summary p50 {} ms, successful requests' p50 {raw_p50} ms",
        o.latency_ms.p50
    );

    // During the outage the answers that still came are not faster than usual: no interval in
    // the window reports the refusals' sub-millisecond latency.
    let w = &summary.faults[0];
    let normal = w.normal_latency_ms.expect("answers outside the outage");
    let inside: Vec<_> = summary
        .intervals
        .iter()
        .filter(|iv| iv.t_s >= w.start_s && iv.t_s + summary.interval_s <= w.end_s)
        .collect();
    assert!(!inside.is_empty());
    for iv in &inside {
        assert!(iv.overall.errors.values().sum::<u64>() > 0, "{iv:?}");
        if let Some(p) = iv.overall.latency_ms {
            assert!(
                p.p50 >= normal.p50 * 0.9,
                "interval at {} s: p50 {} ms against {} ms outside the outage",
                iv.t_s,
                p.p50,
                normal.p50
            );
        }
    }

    // The refusals are timed apart, and they are fast.
    let t = &o.time_to_error_ms["status_5xx"];
    assert_eq!(t.samples, refused);
    assert!(
        t.p50 < 50.0 && t.p50 * 5.0 < o.latency_ms.p50,
        "refusals took {} ms (answers {} ms)",
        t.p50,
        o.latency_ms.p50
    );
}

#[test]
fn a_hanging_upstream_times_out_without_slowing_the_answers() {
    let out = tempfile::tempdir().unwrap();
    let scenario = out.path().join("hang.toml");
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mock-upstreams/deepseek-v4-flash.toml"
    );
    std::fs::write(
        &scenario,
        format!(
            r#"
name = "hang"
seed = 3
[[upstreams]]
name = "deepseek"
profile = "{profile}"
[load]
arrival = "constant"
warmup = "1s"
timeout = "2s"
stages = [{{ duration = "7s", rate = 40 }}]
[[requests]]
name = "everyday"
model = "deepseek-v4-flash"
prompt = "Generate a product description"
max_tokens = 64
stream = true
primary = "deepseek"
[[faults]]
upstream = "deepseek"
at = "3s"
duration = "2s"
kind = "hang"
[sla]
availability = "99%"
"#
        ),
    )
    .unwrap();
    let dir = out.path().join("run");
    let (summary, run) = run_into(&dir, &[scenario.to_str().unwrap(), "-q"]);
    assert_eq!(run.status.code(), Some(1));
    let o = &summary.overall;
    // Two seconds of a seven-second run hung: about 2/6 of the measured requests time out.
    assert!(
        (0.5..0.9).contains(&o.availability),
        "availability {}",
        o.availability
    );
    let timeouts = o.errors.get("timeout").copied().unwrap_or(0);
    let t = &o.time_to_error_ms["timeout"];
    assert_eq!(t.samples, timeouts);
    assert!(
        (1900.0..3000.0).contains(&t.p50),
        "time to timeout {} ms",
        t.p50
    );
    // The answers are what they were: the 2 s timeouts are not in their percentiles.
    assert_eq!(o.latency_ms.samples, o.successes);
    assert!(
        o.latency_ms.p99 < 1500.0 && o.latency_ms.max < t.p50,
        "answers p99 {} ms, max {} ms",
        o.latency_ms.p99,
        o.latency_ms.max
    );
    let normal = summary.faults[0]
        .normal_latency_ms
        .expect("answers outside the hang");
    assert!(
        (o.latency_ms.p50 - normal.p50).abs() <= normal.p50 * 0.1,
        "p50 {} ms overall, {} ms outside the hang",
        o.latency_ms.p50,
        normal.p50
    );
    // latency.hlog holds the timeouts under their own tag, apart from the class's answers.
    let entries = RunDir::open(&dir).unwrap().read_hlog().unwrap();
    let count = |tag: &str| -> u64 {
        entries
            .iter()
            .filter(|e| e.tag.as_deref() == Some(tag))
            .map(|e| e.histogram.len())
            .sum()
    };
    assert_eq!(count("everyday"), o.successes);
    assert_eq!(count("everyday/time_to_error/timeout"), timeouts);
}

fn gauntlet(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `gauntlet report` renders from summary.json alone exactly what the run wrote, and
/// re-rendering in place leaves the summary as the run wrote it.
fn assert_rerender_matches(run: &Path) {
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let files = [
        "summary.json",
        "index.html",
        "summary.md",
        "junit.xml",
        "timeseries.csv",
    ];
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("again");
    gauntlet(&[
        "report".as_ref(),
        run.as_os_str(),
        "--out".as_ref(),
        other.as_os_str(),
    ]);
    for f in files {
        assert!(
            read(run.join(f)) == read(other.join(f)),
            "{f}: `gauntlet report` renders what the run wrote"
        );
    }
    let summary = read(run.join("summary.json"));
    let listed = gauntlet(&["report".as_ref(), run.as_os_str()]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.contains("summary.json"),
        "in place, only the reports are written: {listed}"
    );
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(read(run.join("summary.json")) == summary);
    for f in files {
        assert!(read(run.join(f)) == read(other.join(f)), "{f} in place");
    }
}

/// Ports nothing listens on: bound once to get them, then let go.
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// The shipped external-gateway scenario, pointed at `target` and `mocks` instead of
/// :4000 and :8001-8003, with `extra` TOML added to the upstream named in it.
fn external_gateway(dir: &Path, target: u16, mocks: [u16; 3], extra: &str) -> PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/external-gateway.toml"),
    )
    .unwrap();
    let mut text = shipped.replace("127.0.0.1:4000", &format!("127.0.0.1:{target}"));
    for (i, port) in mocks.iter().enumerate() {
        text = text.replace(
            &format!("127.0.0.1:800{}\"", i + 1),
            &format!("127.0.0.1:{port}\"{extra}"),
        );
    }
    assert_ne!(text, shipped);
    let path = dir.join("external-gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a scenario the way a user does; returns the exit code, stderr and how long it took.
fn run_scenario_file(path: &Path, out: &Path) -> (Option<i32>, String, std::time::Duration) {
    let start = std::time::Instant::now();
    let done = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(path)
        .arg("-q")
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (
        done.status.code(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
        start.elapsed(),
    )
}

#[test]
fn with_nothing_running_the_run_fails_at_once_saying_what_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let [target, a, b, c] = free_ports::<4>();
    let scenario = external_gateway(dir.path(), target, [a, b, c], "");
    let out = dir.path().join("run");
    let (code, stderr, took) = run_scenario_file(&scenario, &out);
    assert_eq!(code, Some(3), "{stderr}");
    // The plan is 22 s long: failing in seconds means no load was sent.
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    assert!(
        stderr.contains(&format!(
            "nothing listens at http://127.0.0.1:{target} (Connection refused"
        )) && stderr.contains("start the gateway under test first"),
        "{stderr}"
    );
    for (name, port) in [("deepseek", a), ("qwen", b), ("premium", c)] {
        assert!(
            stderr.contains(&format!(
                "the mock upstream `{name}` at http://127.0.0.1:{port} does not answer its \
                 control API (/__gauntlet/stats"
            )),
            "{stderr}"
        );
    }
    assert!(stderr.contains("gauntlet mock --config"), "{stderr}");
    assert!(
        !out.exists(),
        "nothing was measured: no run folder is left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_mocks_up_but_no_gateway_the_message_names_the_target() {
    use crate::support::{instant_profile, start_mock_named};
    let deepseek = start_mock_named(instant_profile(""), "deepseek", None).await;
    let qwen = start_mock_named(instant_profile(""), "qwen", None).await;
    // The third needs its control token, and the scenario gives it.
    let premium = start_mock_named(instant_profile(""), "premium", Some("s3cret")).await;
    let ports = [&deepseek, &qwen, &premium].map(|m| m.addr().port());
    let [target] = free_ports::<1>();
    let dir = tempfile::tempdir().unwrap();
    let with_token = "\nadmin_token = \"s3cret\"";
    let scenario = external_gateway(dir.path(), target, ports, with_token);
    let out = dir.path().join("run");
    let (code, stderr, took) =
        tokio::task::spawn_blocking(move || run_scenario_file(&scenario, &out))
            .await
            .unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    assert!(
        stderr.contains(&format!("nothing listens at http://127.0.0.1:{target}")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("mock upstream"),
        "the mocks answered: {stderr}"
    );

    // The wrong token is named as such, not as a mock that is missing.
    let scenario = external_gateway(dir.path(), target, ports, "\nadmin_token = \"wrong\"");
    let out = dir.path().join("run2");
    let (code, stderr, _) = tokio::task::spawn_blocking(move || run_scenario_file(&scenario, &out))
        .await
        .unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the mock upstream `premium` at http://127.0.0.1:{} refused the control token",
            ports[2]
        )),
        "{stderr}"
    );
    for m in [deepseek, qwen, premium] {
        m.shutdown().await;
    }
}

#[test]
fn a_target_that_takes_connections_but_answers_no_http_is_named() {
    // Accepts and hangs up at once, as a port held by something that is not a gateway may.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            drop(conn);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let done = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "scenarios/quickstart.toml", "-q", "--target"])
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(3), "{stderr}");
    assert!(start.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        stderr.contains(&format!(
            "http://127.0.0.1:{port} takes connections but gave no HTTP answer to GET \
             http://127.0.0.1:{port}/v1/models"
        )),
        "{stderr}"
    );
}
