//! Hardening: `gauntlet run` interrupted by real signals still writes what it measured and
//! lifts its faults; the mock and the gateway shrug off hostile clients; broken profile and
//! gateway files fail through the real binary with exit 2 at a located line:col.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// A child process killed when the test ends, whatever happened.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the exit at most `limit`, panicking (and killing through Drop) after it.
    fn wait_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "child did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts `gauntlet mock` on a one-provider fleet and returns the child and the mock's URL.
fn spawn_mock(dir: &Path) -> (Guard, String) {
    let profile = dir.join("p.toml");
    std::fs::write(
        &profile,
        "name = \"hard\"\nseed = 3\n[[models]]\nname = \"m\"\ninput_price_per_m = 1\n\
         output_price_per_m = 2\ncontext_window = 100000\n",
    )
    .unwrap();
    let fleet = dir.join("fleet.toml");
    std::fs::write(
        &fleet,
        "[[providers]]\nname = \"hard\"\nprofile = \"p.toml\"\nport = 0\n",
    )
    .unwrap();
    let mut child = Guard(
        Command::new(BIN)
            .args(["mock", "--config"])
            .arg(&fleet)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the mock prints its URL within 20 s");
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let url = v["url"].as_str().unwrap().to_string();
    (child, url)
}

fn scenario(url: &str) -> String {
    format!(
        r#"name = "interrupted"
seed = 1

[[upstreams]]
name = "hard"
url = "{url}"

[load]
warmup = "0s"
stages = [{{ duration = "20s", rate = 50 }}]

[[requests]]
name = "chat"
model = "m"
prompt = "hello"
max_tokens = 8
stream = true
primary = "hard"

[[faults]]
upstream = "hard"
at = "1s"
duration = "18s"
kind = "error"
status = 503
"#
    )
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Files anywhere under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn run_interrupted_by(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, url) = spawn_mock(dir.path());
    let sc = dir.path().join("s.toml");
    std::fs::write(&sc, scenario(&url)).unwrap();
    let out = dir.path().join("out");
    let mut run = Guard(
        Command::new(BIN)
            .arg("run")
            .arg(&sc)
            .arg("--out")
            .arg(&out)
            .arg("-q")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = run.0.stderr.take().unwrap();
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    // Past the fault's start (1 s), so the run has a fault on the mock to lift.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let addr = addr_of(&url);
    let during = raw(addr, "GET", "/__gauntlet/faults", &[], "").await.json();
    assert_eq!(
        during.as_array().map(Vec::len),
        Some(1),
        "the run set its fault: {during}"
    );
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(run.pid().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let status = run.wait_within(Duration::from_secs(20));
    let stderr = err_text.join().unwrap();
    assert_eq!(status.code(), Some(130), "exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let summary_path = files_under(&out)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "summary.json"))
        .unwrap_or_else(|| panic!("no summary.json under {out:?}; stderr:\n{stderr}"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    let requests = summary["overall"]["requests"].as_u64().unwrap();
    assert!(requests > 0, "requests {requests}");

    let after = raw(addr, "GET", "/__gauntlet/faults", &[], "").await.json();
    assert_eq!(after, serde_json::json!([]), "faults left on the mock");
    let stats = raw(addr, "GET", "/__gauntlet/stats", &[], "").await.json();
    assert!(stats.to_string().contains("in_flight"), "{stats}");

    let leftovers: Vec<PathBuf> = files_under(&out)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.ends_with(".tmp") || n.starts_with('.') || n.contains(".tmp.")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_run_writes_summary_lifts_faults_and_exits_130() {
    run_interrupted_by("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_run_writes_summary_lifts_faults_and_exits_130() {
    run_interrupted_by("TERM").await;
}
