//! Someone runs `gauntlet run` in a terminal: a live full-screen view shows the classes, the
//! fault as it happens and each SLA check's running verdict; `q` stops the run as Ctrl-C
//! does (partial reports, exit 130) and gives the terminal back. Driven in a real terminal,
//! tmux's, with `send-keys` and `capture-pane`. Without a terminal the output stays plain.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `seconds` long, warmup included; the primary's outage from 3 s to a second before the end.
fn scenario(primary: &str, fallback: &str, seconds: u32) -> String {
    let outage = seconds - 4;
    crate::support::failover_scenario(
        "tui",
        3,
        primary,
        fallback,
        &format!(
            r#"[load]
warmup = "1s"
stages = [{{ duration = "{seconds}s", rate = 40 }}]
[[requests]]
name = "everyday"
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
at = "3s"
duration = "{outage}s"
kind = "outage"
[sla]
availability = "50%"
failover_success = "90%"
"#
        ),
    )
}

/// A tmux server of the test's own (its own socket), killed with the test.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `gauntlet run ARGS` in a 160x50 session named "run" on a tmux server of its own
    /// (`socket`); the shell then writes the exit code to `exit_file` and keeps the pane open,
    /// so its last screen can be read. The view needs a real terminal to draw on: tmux's. A
    /// machine without it fails here rather than passing without having looked.
    fn start(socket: String, args: &str, exit_file: &Path) -> Self {
        assert!(
            Self::available(),
            "tmux is missing: apt-get install -y tmux (.ci/run does)"
        );
        let tmux = Self { socket };
        let command = format!(
            "{} run {args}; echo $? > {}; sleep 60",
            env!("CARGO_BIN_EXE_gauntlet"),
            exit_file.display()
        );
        let started = tmux.cmd(&[
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "50",
            "-s",
            "run",
            &command,
        ]);
        assert!(started.status.success(), "{started:?}");
        tmux
    }

    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            // Inside someone's tmux, this is still a server of its own, not a nested client.
            .env_remove("TMUX")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", "run"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows everything in `want`; the last screen either way.
    fn wait_for(&self, want: &[&str], within: Duration) -> (bool, String) {
        let until = Instant::now() + within;
        loop {
            let screen = self.screen();
            if want.iter().all(|w| screen.contains(w)) {
                return (true, screen);
            }
            if Instant::now() > until {
                return (false, screen);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

fn wait_for_file(path: &Path, within: Duration) -> Option<String> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return Some(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_the_run_and_q_stops_it_like_ctrl_c() {
    let (primary, fallback) =
        crate::support::primary_and_fallback("[latency]\ntokens_per_second = 4000\n").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tui.toml");
    std::fs::write(&path, scenario(&primary.url(), &fallback.url(), 120)).unwrap();
    let out: PathBuf = dir.path().join("run");
    let exit_file = dir.path().join("exit-code");
    let tmux = Tmux::start(
        format!("gauntlet-tui-{}", std::process::id()),
        &format!("{} --out {}", path.display(), out.display()),
        &exit_file,
    );

    // The run is on screen: both classes, the outage (applied at 3 s), a running verdict.
    let want = [
        "gauntlet · tui",
        "everyday",
        "unrouted",
        "ACTIVE  outage on primary",
        // Served-by share moved to the fallback during the outage.
        "fallback 100%",
        "availability",
        "failover_success",
        "PASS",
        "q / Ctrl-C",
    ];
    let (shown, screen) =
        tokio::task::block_in_place(|| tmux.wait_for(&want, Duration::from_secs(60)));
    assert!(
        shown,
        "the view never showed {want:?}; last screen:\n{screen}\nexit code: {:?}",
        std::fs::read_to_string(&exit_file)
    );
    assert!(!out.join("summary.json").exists(), "the run ended before q");

    let pressed = tmux.cmd(&["send-keys", "-t", "run", "q"]);
    assert!(pressed.status.success(), "{pressed:?}");
    let code = tokio::task::block_in_place(|| wait_for_file(&exit_file, Duration::from_secs(60)));
    let screen = tmux.screen();
    let code = code.unwrap_or_else(|| panic!("the run did not end after q:\n{screen}"));
    // 130: interrupted, as after Ctrl-C.
    assert_eq!(code.trim(), "130", "{screen}");
    let summary = crate::support::summary_json(&out, &screen);
    assert_eq!(summary["interrupted"], true);
    assert!(
        summary["duration_s"].as_f64().unwrap() < 100.0,
        "{}",
        summary["duration_s"]
    );
    assert!(out.join("index.html").exists());
    // The terminal is back: the summary table is printed on the normal screen, the view gone.
    assert!(screen.contains("report: "), "{screen}");
    assert!(!screen.contains("q / Ctrl-C"), "{screen}");
}

/// `--plain` on a terminal keeps the progress bar: the view never takes the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_on_a_terminal_keeps_the_progress_bar() {
    let (primary, fallback) = crate::support::primary_and_fallback("").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.toml");
    std::fs::write(&path, scenario(&primary.url(), &fallback.url(), 6)).unwrap();
    let out = dir.path().join("run");
    let exit_file = dir.path().join("exit-code");
    let tmux = Tmux::start(
        format!("gauntlet-tui-plain-{}", std::process::id()),
        &format!("{} --plain --out {}", path.display(), out.display()),
        &exit_file,
    );
    let (bar, screen) =
        tokio::task::block_in_place(|| tmux.wait_for(&["req/s", "ms  "], Duration::from_secs(30)));
    assert!(bar, "no progress bar:\n{screen}");
    assert!(!screen.contains("gauntlet · "), "{screen}");
    let code = tokio::task::block_in_place(|| wait_for_file(&exit_file, Duration::from_secs(60)));
    assert!(code.is_some(), "the run never ended:\n{}", tmux.screen());
    assert!(out.join("summary.json").exists());
}

/// Without a terminal (CI logs, a pipe) the output is the plain one: no escape codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_the_output_stays_plain() {
    let (primary, fallback) = crate::support::primary_and_fallback("").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.toml");
    std::fs::write(&path, scenario(&primary.url(), &fallback.url(), 6)).unwrap();
    let out = dir.path().join("run");
    let done = tokio::process::Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(out.join("summary.json").exists(), "{stderr}");
    assert!(
        !stdout.contains('\x1b') && !stderr.contains('\x1b'),
        "escape codes without a terminal:\n{stdout}\n{stderr}"
    );
    // The plain progress line (every 5 s) and the summary table.
    assert!(
        stderr.contains("req/s") && stderr.contains("s / 6s]"),
        "{stderr}"
    );
    assert!(stdout.contains("report: "), "{stdout}");
}
