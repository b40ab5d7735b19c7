//! The README's promises, each defended by a test that fails when the promise breaks: latency
//! is measured from each request's intended send time (a generator that sends late cannot hide
//! the wait), and every documented exit code is what the real binary returns.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gauntlet::engine::{Client, ClientOptions};

use crate::support::summary_of;
use crate::support::{self, class, completion_json, reply};

/// A server that answers every chat request at once.
async fn instant_server() -> support::TestServer {
    support::chat_server(|_| reply(200, &[], completion_json("alpha"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_late_is_measured_from_when_it_was_due() {
    let server = instant_server().await;
    let client = Client::new(
        &[class("a", 1, "m", false)],
        &[server.url()],
        ClientOptions::default(),
    )
    .unwrap();
    // Due 300 ms ago, 10 s into a run: the generator is late by at least that much when it
    // sends.
    let late_by = Duration::from_millis(300);
    let into_run = Duration::from_secs(10);
    let t0 = Instant::now().checked_sub(into_run + late_by).unwrap();
    let sample = client.send(0, t0, into_run).await;
    assert_eq!(sample.result, Ok(()), "{sample:?}");
    assert!(
        sample.lag >= late_by,
        "the schedule lag reports the late send: {sample:?}"
    );
    assert!(
        sample.latency >= late_by,
        "the latency includes the wait before the send: {sample:?}"
    );
    // The exchange itself comes on top of the wait.
    assert!(sample.latency >= sample.lag, "{sample:?}");
    // ...and the clock starts when the request was due, not at the run's start (10 s before).
    assert!(
        sample.latency < into_run / 2,
        "measured from when it was due: {sample:?}"
    );

    // On time, the same server answers well under the wait above: the 300 ms were the wait.
    let on_time = client.send(0, Instant::now(), Duration::ZERO).await;
    assert_eq!(on_time.result, Ok(()));
    assert!(
        on_time.lag < late_by && on_time.latency < late_by,
        "{on_time:?}"
    );
    server.join().await;
}

/// A scenario for `gauntlet run` against `url`: one class, an open loop at `rate`.
fn scenario_file(dir: &Path, url: &str, rate: u32, duration: &str, sla: &str) -> PathBuf {
    let path = dir.join("promise.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"promise\"\n[target]\nurl = \"{url}\"\n[load]\nduration = \"{duration}\"\n\
             rate = {rate}\n[[requests]]\nname = \"a\"\nmodel = \"m\"\nprompt = \"p\"\n{sla}"
        ),
    )
    .unwrap();
    path
}

fn spawn_run(scenario: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .arg("run")
        .arg(scenario)
        .arg("-q")
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig}");
}

/// Waits (off the runtime) for the run to end; its exit code and stderr.
async fn finish(child: Child) -> (Option<i32>, String) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the server has answered `n` chat requests: the run is sending load.
async fn until_received(server: &support::TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.received() < n {
        assert!(Instant::now() < deadline, "the run never sent {n} requests");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_generator_shows_its_stall_in_latency_and_in_schedule_lag() {
    // The server answers at once and runs in this process, so it keeps answering while the
    // run's whole process is stopped: every late request is late on the generator's side only.
    let server = instant_server().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path(), &server.url(), 100, "4s", "");
    let out = dir.path().join("run");
    let run = spawn_run(&scenario, &out);
    until_received(&server, 50).await;
    // A stop-the-world pause of the load generator (as a GC pause or a starved host gives):
    // ~120 requests fall due while it cannot send, and go out late in a burst afterwards.
    signal(&run, "STOP");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    signal(&run, "CONT");
    let (_, stderr) = finish(run).await;
    let s = summary_of(&out, &stderr);
    let (lag, latency) = (&s.generator.schedule_lag_ms, &s.overall.latency_ms);
    // About 30% of the ~400 requests were sent late, the latest 10% by 800 ms or more.
    assert!(
        lag.p90 >= 400.0,
        "the schedule lag shows the stall: {lag:?}"
    );
    assert!(
        latency.p90 >= 400.0,
        "the latency includes the stall, as measured from the intended send: {latency:?} \
         (lag {lag:?})"
    );
    assert!(latency.max >= lag.max, "latency {latency:?} lag {lag:?}");
    // Most requests went out on time to a server that answers at once: their latency is the
    // exchange alone, measured from each one's own due time (not from the run's start).
    assert!(
        latency.p50 < 1_000.0,
        "on-time requests are quick: {latency:?} (lag {lag:?})"
    );
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_its_promises_exits_0() {
    let server = instant_server().await;
    let dir = tempfile::tempdir().unwrap();
    // 100 requests: more than the 10 a 90% promise needs (room for one failure in ten).
    let sla = "[sla]\navailability = \"90%\"\n";
    let scenario = scenario_file(dir.path(), &server.url(), 50, "2s", sla);
    let out = dir.path().join("run");
    let (code, stderr) = finish(spawn_run(&scenario, &out)).await;
    assert_eq!(code, Some(0), "{stderr}");
    let s = summary_of(&out, &stderr);
    assert!(s.sla.passed, "{:?}", s.sla);
    assert_eq!(s.overall.successes, s.overall.requests);
    server.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_breaks_a_promise_exits_1() {
    // Every answer takes 50 ms, against a promise of 10 ms at p99.
    let server = support::chat_server(|_| {
        support::after(
            Duration::from_millis(50),
            reply(200, &[], completion_json("alpha")),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // A broken promise fails on any number of samples: a light run is enough.
    let sla = "[sla]\np99_latency = \"10ms\"\n";
    let scenario = scenario_file(dir.path(), &server.url(), 50, "2s", sla);
    let out = dir.path().join("run");
    let (code, stderr) = finish(spawn_run(&scenario, &out)).await;
    assert_eq!(code, Some(1), "{stderr}");
    let s = summary_of(&out, &stderr);
    assert!(!s.sla.passed);
    assert!(
        s.overall.latency_ms.p99 >= 50.0,
        "{:?}",
        s.overall.latency_ms
    );
    server.join().await;
}

#[test]
fn an_invalid_scenario_exits_2_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path(), "http://127.0.0.1:9", 0, "3s", "");
    let out = dir.path().join("run");
    let run = spawn_run(&scenario, &out).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("promise.toml:") && stderr.contains("rate"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "nothing ran, so no run folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_nothing_listening_exits_3() {
    let url = support::refused_url().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path(), &url, 100, "3s", "");
    let out = dir.path().join("run");
    let (code, stderr) = finish(spawn_run(&scenario, &out)).await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("nothing listens at"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_interrupted_by_sigint_exits_130_with_what_it_measured() {
    let server = instant_server().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(dir.path(), &server.url(), 100, "60s", "");
    let out = dir.path().join("run");
    let run = spawn_run(&scenario, &out);
    until_received(&server, 50).await;
    let stopped = Instant::now();
    signal(&run, "INT");
    let (code, stderr) = finish(run).await;
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "stopped long before the 60 s plan ended"
    );
    let s = summary_of(&out, &stderr);
    assert!(s.interrupted);
    assert!(s.overall.requests >= 50, "{:?}", s.overall);
    server.join().await;
}
