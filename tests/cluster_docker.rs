//! Across hosts: the compose run of deploy/compose/ (mocks, gateway, a coordinator and three
//! shards, each a container of the image deploy/image/build.sh makes from the debug binary, on
//! a private network) ends with one merged verdict and the shards' clock offsets; a shard
//! killed or cut off mid-run makes it `inconclusive`, naming the shard. Docker Engine is
//! required: without it the tests fail saying so. Every container and network a test makes
//! carries its own name and is removed when the test ends, failed or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The image the tests build; rebuilt once per test process from the binary under test.
const IMAGE: &str = "gauntlet-test:debug";
/// The shard the failure tests take down.
const VICTIM: &str = "shard-2";
const VICTIM_INDEX: u64 = 2;
/// Start-up, registration, the 14 s plan, a lost shard's silence and the reports, with room
/// for a loaded machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose_dir() -> PathBuf {
    repo().join("deploy/compose")
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("docker cannot run ({e}): these tests need Docker Engine and its CLI")
        })
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds the test image once per process: a daemon that does not answer fails every test
/// with the reason.
fn image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let server = docker(&["version", "--format", "{{.Server.Version}}"]);
        if !server.status.success() {
            return Err(format!(
                "the Docker daemon does not answer (these tests need Docker Engine): {}",
                String::from_utf8_lossy(&server.stderr)
            ));
        }
        let out = Command::new(repo().join("deploy/image/build.sh"))
            .args([env!("CARGO_BIN_EXE_gauntlet"), IMAGE])
            .output()
            .map_err(|e| format!("deploy/image/build.sh cannot run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "deploy/image/build.sh failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    IMAGE
}

/// compose.yaml as PyYAML reads it (what docker-compose v1 itself parses with; merge keys
/// resolved).
fn compose() -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(compose_dir().join("compose.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("python3 (with PyYAML) is needed to read compose.yaml: {e}"));
    assert!(
        out.status.success(),
        "compose.yaml does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The containers and network of one test, removed on drop whatever happened.
struct Cluster {
    prefix: String,
    network: String,
    containers: Vec<String>,
    compose: Value,
}

impl Cluster {
    fn new(test: &str) -> Self {
        image();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("gauntlet-{test}-{}-{nanos:x}", std::process::id());
        let network = format!("{prefix}-net");
        let cluster = Self {
            prefix: prefix.clone(),
            network: network.clone(),
            containers: Vec::new(),
            compose: compose(),
        };
        // Internal, as compose.yaml's: the load and the faults have no way out.
        docker_ok(&[
            "network",
            "create",
            "--internal",
            "--label",
            &format!("gauntlet-test={prefix}"),
            &network,
        ]);
        cluster
    }

    fn name(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix)
    }

    /// Starts compose.yaml's `service` as compose would: its command, environment, mounts and
    /// read-only setting, reachable on the network by the service's name.
    fn start(&mut self, service: &str) {
        let s = &self.compose["services"][service];
        assert!(s.is_object(), "compose.yaml has no service {service}");
        let name = self.name(service);
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.network,
            "--network-alias",
            service,
            "--label",
            &format!("gauntlet-test={}", self.prefix),
        ]
        .map(String::from)
        .to_vec();
        for volume in s["volumes"].as_array().unwrap() {
            let spec = volume.as_str().unwrap();
            let (host, rest) = spec.split_once(':').unwrap();
            let host = std::fs::canonicalize(compose_dir().join(host)).unwrap();
            args.extend(["-v".into(), format!("{}:{rest}", host.display())]);
        }
        if let Some(env) = s["environment"].as_object() {
            for (k, v) in env {
                args.extend(["-e".into(), format!("{k}={}", v.as_str().unwrap())]);
            }
        }
        if s["read_only"] == true {
            args.push("--read-only".into());
        }
        for t in s["tmpfs"].as_array().into_iter().flatten() {
            args.extend(["--tmpfs".into(), t.as_str().unwrap().to_string()]);
        }
        args.push(IMAGE.into());
        for c in s["command"].as_array().unwrap() {
            args.push(c.as_str().unwrap().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        self.containers.push(name);
    }

    fn logs(&self, service: &str) -> String {
        let out = docker(&["logs", &self.name(service)]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits until `service` has logged `needle` `times` times.
    fn wait_for_log(&self, service: &str, needle: &str, times: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let logs = self.logs(service);
            if logs.matches(needle).count() >= times {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{service} did not log {needle:?} {times}x within {within:?}:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Mocks and gateway up and listening, then the coordinator and the shards.
    fn start_run(&mut self) {
        self.start("mocks");
        self.start("gateway");
        self.wait_for_log("mocks", "\"upstream\"", 3, Duration::from_secs(30));
        self.wait_for_log("gateway", "listening on", 1, Duration::from_secs(30));
        for service in ["coordinator", "shard-1", "shard-2", "shard-3"] {
            self.start(service);
        }
    }

    /// The exit code of `service`, once it has ended.
    fn wait_exit(&self, service: &str) -> i32 {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let state = docker_ok(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &self.name(service),
            ]);
            if let Some(code) = state.strip_prefix("exited ") {
                return code.parse().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{service} still {state} after {RUN_TIMEOUT:?}:\n{}",
                self.logs(service)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The coordinator's run folder, copied out of its (stopped) container.
    fn run_folder(&self, into: &Path) -> PathBuf {
        let dest = into.join("run");
        docker_ok(&[
            "cp",
            &format!("{}:/work/run", self.name("coordinator")),
            dest.to_str().unwrap(),
        ]);
        dest
    }

    fn all_logs(&self) -> String {
        ["coordinator", "shard-1", "shard-2", "shard-3"]
            .iter()
            .map(|s| format!("--- {s}\n{}", self.logs(s)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(self.containers.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

fn summary(dir: &Path, logs: &str) -> Value {
    let bytes = std::fs::read(dir.join("summary.json")).unwrap_or_else(|e| {
        panic!("no summary.json in the coordinator's run folder ({e}):\n{logs}")
    });
    serde_json::from_slice(&bytes).unwrap()
}

/// The per-shard table's rows.
fn shard_rows(summary: &Value) -> Vec<Value> {
    summary["shards"]
        .as_array()
        .unwrap_or_else(|| panic!("summary.json has no `shards` table: {summary:#}"))
        .clone()
}

/// A row's reason the shard cannot be trusted, if it has one.
fn note(row: &Value) -> Option<&str> {
    row["note"].as_str()
}

/// The machine's own load can make a shard's schedule lag past the bound (10 ms p99) on a
/// shared 2-core machine running debug builds; the verdict then says so, and that is the only
/// way a run of healthy shards may miss a pass.
fn fell_behind(why: &str) -> bool {
    why.starts_with("fell behind")
}

#[test]
fn a_coordinator_and_three_shard_containers_give_one_merged_passing_verdict() {
    let _quiet = crate::support::machine_to_myself();
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new("pass");
    cluster.start_run();
    let code = cluster.wait_exit("coordinator");
    let logs = cluster.all_logs();
    for shard in ["shard-1", "shard-2", "shard-3"] {
        assert_eq!(cluster.wait_exit(shard), 0, "{shard} failed:\n{logs}");
    }
    let s = summary(&cluster.run_folder(tmp.path()), &logs);
    // One verdict, on the merged data: every check passes.
    let checks = s["sla"]["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    for check in checks {
        assert_eq!(check["status"], "pass", "{check:#}\n{logs}");
    }
    // Every shard sent its part, and the merged count is their sum.
    let rows = shard_rows(&s);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let sent: Vec<u64> = rows
        .iter()
        .map(|r| r["requests"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        sent.iter().all(|n| *n > 0),
        "a shard sent nothing: {rows:#?}"
    );
    assert_eq!(
        s["overall"]["requests"].as_u64().unwrap(),
        sent.iter().sum::<u64>(),
        "{rows:#?}"
    );
    // Clock offsets and round trips measured over the network for the shards that registered.
    for row in &rows[1..] {
        assert!(row["clock_offset_ms"].is_number(), "{row:#}");
        assert!(row["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{row:#}");
    }
    if code != 0 {
        assert_eq!(code, 1, "{logs}");
        let reasons: Vec<&str> = rows.iter().filter_map(note).collect();
        assert!(
            !reasons.is_empty() && reasons.iter().all(|why| fell_behind(why)),
            "a run of healthy shards did not pass: {reasons:?}\n{logs}"
        );
        eprintln!(
            "note: the merged checks passed, the verdict is inconclusive because this machine \
             is too loaded for the shards to keep their schedule: {reasons:?}"
        );
    }
}

/// Runs the compose set, takes the victim down with `cut` once it is mid-run, and checks the
/// coordinator ends `inconclusive` naming it.
fn a_lost_shard_makes_the_run_inconclusive(test: &str, cut: impl FnOnce(&Cluster)) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(test);
    cluster.start_run();
    // Its first progress line comes 5 s into its part of the run.
    cluster.wait_for_log(VICTIM, "req/s", 1, Duration::from_secs(90));
    cut(&cluster);
    let code = cluster.wait_exit("coordinator");
    let logs = cluster.all_logs();
    assert_eq!(code, 1, "a lost shard must not pass:\n{logs}");
    let s = summary(&cluster.run_folder(tmp.path()), &logs);
    assert_eq!(s["sla"]["passed"], false, "{logs}");
    assert_eq!(s["sla"]["verdict"], "inconclusive", "{logs}");
    // The victim is named for being lost, not merely for lagging, and it sent less than
    // the shards that ran to the end.
    let rows = shard_rows(&s);
    let victim = rows
        .iter()
        .find(|r| r["index"] == VICTIM_INDEX)
        .unwrap_or_else(|| panic!("no row for shard {VICTIM_INDEX}: {rows:#?}"));
    let why = note(victim).unwrap_or_else(|| panic!("shard {VICTIM_INDEX} not named: {rows:#?}"));
    assert!(
        !fell_behind(why),
        "shard {VICTIM_INDEX} only lagged: {why}\n{logs}"
    );
    for row in rows.iter().filter(|r| r["index"] != VICTIM_INDEX) {
        assert!(note(row).is_none_or(fell_behind), "{row:#}\n{logs}");
        assert!(
            row["requests"].as_u64() > victim["requests"].as_u64(),
            "{rows:#?}"
        );
    }
    let coordinator = cluster.logs("coordinator");
    let named = format!("shard {VICTIM_INDEX}: {why}");
    assert!(
        coordinator.contains(&named),
        "the coordinator does not say {named:?}:\n{coordinator}"
    );
}

#[test]
fn a_shard_container_killed_mid_run_makes_the_merged_verdict_inconclusive_naming_it() {
    let _quiet = crate::support::machine_to_myself();
    a_lost_shard_makes_the_run_inconclusive("kill", |c| {
        docker_ok(&["kill", &c.name(VICTIM)]);
    });
}

#[test]
fn a_shard_cut_off_the_network_mid_run_makes_the_merged_verdict_inconclusive_naming_it() {
    let _quiet = crate::support::machine_to_myself();
    a_lost_shard_makes_the_run_inconclusive("cut", |c| {
        docker_ok(&["network", "disconnect", "-f", &c.network, &c.name(VICTIM)]);
    });
}
