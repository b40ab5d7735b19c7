//! An SRE asks "how much can it take, and how much less while a provider is down?": the
//! capacity search runs the scenario at rate after rate against real mocks and the reference
//! gateway, and lands on the capacity the mocks' profile implies, with and without the outage.

use std::path::Path;
use std::process::{Command, Output};

use gauntlet::capacity::{CapacityResult, Purpose, StopReason, Verdict};

/// 16 slots of 100 ms each: past 16 requests in flight the mock answers 429, so one mock
/// serves at most 160 requests a second, and the pair behind the gateway 320.
const SLOTS: &str = r#"name = "slots"
seed = 1
[[models]]
name = "m"
input_price_per_m = 0.1
output_price_per_m = 0.2
[latency]
ttft = "100ms"
tokens_per_second = 1000000
[completion]
tokens = 4
[limits]
concurrency = 16
"#;

/// Evenly spaced arrivals, so below the slots' capacity no request ever finds both mocks
/// full. The gateway retries a 429 or an outage on the other mock at once and never opens a
/// breaker: the pair's slots act as one pool, and losing `a` halves it.
fn scenario(extra: &str) -> String {
    format!(
        r#"name = "capacity-truth"
seed = 3
[[upstreams]]
name = "a"
profile = "slots.toml"
[[upstreams]]
name = "b"
profile = "slots.toml"
[gateway]
keys = [{{ key = "gk", tier = "standard", rpm = 100000000 }}]
routes = [{{ model = "m", targets = ["a", "b"] }}]
breaker = {{ enabled = false }}
retry = {{ max_attempts = 2, backoff_base = "0ms", backoff_max = "0ms", budget = "100%", retry_on = [429, 503] }}
[load]
arrival = "constant"
warmup = "500ms"
stages = [{{ duration = "2s", rate = 100 }}]
[[requests]]
name = "only"
weight = 1
model = "m"
prompt = "hello"
max_tokens = 4
api_key = "gk"
{extra}"#
    )
}

fn write(dir: &Path, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("slots.toml"), SLOTS).unwrap();
    let path = dir.join("truth.toml");
    std::fs::write(&path, scenario(extra)).unwrap();
    path
}

fn capacity(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .arg("capacity")
        .args(args)
        .output()
        .unwrap()
}

/// `gauntlet capacity ARGS --force`. On a machine busy with the rest of the suite the
/// generator can fall behind; the search then rightly stops at an invalid probe (exit 3)
/// instead of reporting: that is tried again, up to three times.
fn searched(args: &[&std::ffi::OsStr]) -> Output {
    let mut all = args.to_vec();
    all.push("--force".as_ref());
    let mut done = capacity(&all);
    for _ in 0..2 {
        let invalid = done.status.code() == Some(3)
            && String::from_utf8_lossy(&done.stderr).contains("invalid probe");
        if !invalid {
            break;
        }
        done = capacity(&all);
    }
    done
}

fn result(out: &Path) -> CapacityResult {
    let text = std::fs::read_to_string(out.join("capacity.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

const OUTAGE: &str = r#"
[sla]
availability = "98%"

[capacity]
at_least = 1000

[[faults]]
upstream = "a"
at = "0s"
duration = "2s"
kind = "outage"
"#;

#[test]
fn the_search_lands_on_the_capacity_the_profile_implies_with_and_without_the_outage() {
    let _quiet = crate::support::machine_to_myself();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), OUTAGE);
    let out = dir.path().join("out");
    let args = [
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--min".as_ref(),
        "100".as_ref(),
        "--tolerance".as_ref(),
        "10%".as_ref(),
        "--no-faults".as_ref(),
    ];
    // The slots are 100 ms of wall time: a machine starved by the rest of the suite makes
    // every answer late, so even the lowest rate can miss (`BelowMin`). That is the search
    // telling the truth about a starved run; the claim under test is about an unstarved one,
    // so a search that did not converge is tried again, up to three times in all.
    let mut done = searched(&args);
    for _ in 0..2 {
        let converged = out.join("capacity.json").is_file()
            && result(&out)
                .searches
                .iter()
                .all(|s| s.stop == StopReason::Converged);
        if converged {
            break;
        }
        eprintln!(
            "capacity search did not converge, trying again:\n{}",
            String::from_utf8_lossy(&done.stdout)
        );
        done = searched(&args);
    }
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    // [capacity] at_least = 1000 is far above what two 16-slot mocks hold: the gate fails.
    assert_eq!(done.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("NOT met"), "{stdout}");
    let r = result(&out);
    let outage = r.with_faults().unwrap();
    let healthy = r.healthy().unwrap();
    for (s, truth) in [(outage, 160.0), (healthy, 320.0)] {
        assert_eq!(s.stop, StopReason::Converged, "{s:?}");
        let found = s.capacity_rps.unwrap();
        let [pass, fail] = s.bracket;
        // The highest pass never exceeds what the slots can serve, the bracket is within the
        // tolerance, and the truth lies inside it (a few percent of each 100 ms slot goes to
        // the gateway's and the mock's own work, so the truth is a little below the ideal).
        assert!(
            found <= truth * 1.02,
            "{found} above the truth {truth}: {s:?}"
        );
        assert!(
            found >= truth * 0.8,
            "{found} far below the truth {truth}: {s:?}"
        );
        assert!(fail.unwrap() - pass.unwrap() <= 0.1 * pass.unwrap() + 1e-9);
        assert!(fail.unwrap() >= truth * 0.9, "{s:?}");
        assert_eq!(s.binding.as_deref(), Some("availability overall"));
        // Every pass rests on intervals wholly on the right side of their targets.
        for p in s.probes.iter().filter(|p| p.verdict == Verdict::Pass) {
            for c in &p.checks {
                let [_, hi] = c.miss_share_interval.unwrap();
                assert!(hi <= c.allowed_miss_share.unwrap(), "{p:?}");
            }
        }
        // The answer was confirmed by a rerun of the highest pass.
        assert!(
            s.probes
                .iter()
                .any(|p| p.purpose == Purpose::Confirm && p.offered_rps == Some(found)),
            "{s:?}"
        );
    }
    assert_eq!(outage.fault_summary, vec!["a outage 0.0–2.0 s".to_string()]);
    let ratio = healthy.capacity_rps.unwrap() / outage.capacity_rps.unwrap();
    assert!((1.6..=2.4).contains(&ratio), "healthy/outage {ratio}");
    assert!(stdout.contains("the faults cost"), "{stdout}");
    // Each probe is a normal run folder, linked from the report.
    let html = std::fs::read_to_string(out.join("capacity.html")).unwrap();
    for s in &r.searches {
        for p in &s.probes {
            let folder = p.folder.as_ref().unwrap();
            assert!(out.join(folder).join("summary.json").is_file(), "{folder}");
            // minijinja escapes `/` in attribute values.
            let link = format!("{}/index.html", folder.replace('/', "&#x2f;"));
            assert!(html.contains(&link), "{folder}");
        }
    }
    assert!(html.contains("<svg"), "the capacity curve is drawn");
    assert!(r.ceiling_rps.unwrap() > 160.0, "{:?}", r.ceiling_rps);
}

/// Latency whose 1% tail sits right at the bound: no probe can tell the share over it from
/// 1%, however long, so each is lengthened, and none may pass.
#[test]
fn a_tail_at_the_bound_is_lengthened_and_never_passed() {
    // A 61 ms bound on a 20 ms median: a starved machine's own delays would fail it outright.
    let _quiet = crate::support::machine_to_myself();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tail.toml"),
        r#"name = "tail"
seed = 5
[[models]]
name = "m"
input_price_per_m = 0.1
output_price_per_m = 0.2
[latency]
ttft = { dist = "lognormal", median = "20ms", p99 = "60ms" }
tokens_per_second = 1000000
[completion]
tokens = 4
"#,
    )
    .unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        r#"name = "noisy"
seed = 9
[[upstreams]]
name = "a"
profile = "tail.toml"
[load]
warmup = "500ms"
stages = [{ duration = "2s", rate = 200 }]
[[requests]]
name = "only"
weight = 1
model = "m"
prompt = "hello"
max_tokens = 4
primary = "a"
[sla]
p99_latency = "61ms"
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let done = searched(&[
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--min".as_ref(),
        "200".as_ref(),
        "--max".as_ref(),
        "200".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert_eq!(done.status.code(), Some(1), "{stdout}");
    let r = result(&out);
    let s = r.with_faults().unwrap();
    let at_rate: Vec<_> = s
        .probes
        .iter()
        .filter(|p| p.offered_rps == Some(200.0))
        .collect();
    // Unresolved, then rerun at twice and four times the length.
    assert_eq!(at_rate[0].verdict, Verdict::Unresolved, "{s:?}");
    assert_eq!(at_rate[1].purpose, Purpose::Lengthen);
    assert_eq!(at_rate[1].duration_s, 2.0 * at_rate[0].duration_s);
    assert!(at_rate.iter().all(|p| p.verdict != Verdict::Pass), "{s:?}");
    assert_eq!(s.capacity_rps, None);
    assert_eq!(s.stop, StopReason::BelowMin);
}

fn refused(args: &[&str], scenario_extra: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), scenario_extra);
    let mut all: Vec<&std::ffi::OsStr> = vec![file.as_os_str()];
    let out = dir.path().join("out");
    all.extend(["--out".as_ref(), out.as_os_str()]);
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let done = capacity(&all);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(expect), "{args:?}: {stderr}");
    assert!(!out.exists(), "a refused search leaves no folder");
}

#[test]
fn bad_bounds_and_scenarios_that_cannot_be_searched_are_refused_before_any_probe() {
    let sla = "[sla]\navailability = \"99%\"\n";
    refused(
        &["--min", "500", "--max", "100"],
        sla,
        "--min (500) is above --max (100)",
    );
    refused(&["--tolerance", "0%"], sla, "--tolerance must be above 0%");
    refused(&["--tolerance", "60%"], sla, "at most 50%");
    refused(&[], "", "the scenario has no [sla]");
    let closed = scenario(sla)
        .replace(
            "arrival = \"constant\"\n",
            "model = \"closed\"\nconcurrency = 8\n",
        )
        .replace(
            "stages = [{ duration = \"2s\", rate = 100 }]",
            "duration = \"2s\"",
        );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slots.toml"), SLOTS).unwrap();
    let file = dir.path().join("closed.toml");
    std::fs::write(&file, closed).unwrap();
    let done = capacity(&[file.as_os_str()]);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("closed model") && stderr.contains("concurrency"),
        "{stderr}"
    );
    // The [capacity] table is checked where it is written.
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!("{sla}\n[capacity]\ntolerance = \"0%\"\nmin = 50\nmax = 10\n"),
    );
    let done = capacity(&[file.as_os_str()]);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("truth.toml:") && stderr.contains("capacity.tolerance"),
        "{stderr}"
    );
    assert!(
        stderr.contains("capacity.max") && stderr.contains("below capacity.min"),
        "{stderr}"
    );
}

fn search_result(faults: bool, capacity: Option<f64>) -> gauntlet::capacity::SearchResult {
    gauntlet::capacity::SearchResult {
        faults,
        fault_summary: Vec::new(),
        capacity_rps: capacity,
        bracket: [capacity, capacity.map(|c| c * 1.05)],
        binding: Some("availability overall".into()),
        stop: StopReason::Converged,
        probes: Vec::new(),
        warnings: Vec::new(),
    }
}

fn saved(
    dir: &Path,
    name: &str,
    with_faults: Option<f64>,
    healthy: Option<f64>,
) -> std::path::PathBuf {
    let r = CapacityResult {
        schema_version: gauntlet::capacity::CAPACITY_SCHEMA_VERSION,
        scenario: "s".into(),
        seed: 1,
        ceiling_rps: Some(1000.0),
        searches: vec![
            search_result(true, with_faults),
            search_result(false, healthy),
        ],
        at_least: None,
        took_s: 1.0,
    };
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("capacity.json"),
        serde_json::to_vec(&r).unwrap(),
    )
    .unwrap();
    folder
}

fn compare(base: &Path, new: &Path, bound: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(["compare".as_ref(), base.as_os_str(), new.as_os_str()])
        .args(["--max-regression", bound])
        .output()
        .unwrap()
}

#[test]
fn compare_gates_on_a_capacity_that_fell() {
    let dir = tempfile::tempdir().unwrap();
    let base = saved(dir.path(), "base", Some(300.0), Some(600.0));
    let slightly = saved(dir.path(), "slightly", Some(285.0), Some(600.0));
    let fell = saved(dir.path(), "fell", Some(250.0), Some(610.0));
    let lost = saved(dir.path(), "lost", None, Some(600.0));

    let out = compare(&base, &slightly, "10%");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("-5.0%"), "{text}");

    let out = compare(&base, &fell, "10%");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("REGRESSED") && text.contains("-16.7%"),
        "{text}"
    );
    // 250 is within a 20% allowance.
    assert_eq!(compare(&base, &fell, "20%").status.code(), Some(0));
    // A capacity that can no longer be found has regressed, whatever the allowance.
    assert_eq!(compare(&base, &lost, "50%").status.code(), Some(1));
    // capacity.json named directly works too.
    let out = compare(
        &base.join("capacity.json"),
        &fell.join("capacity.json"),
        "10%",
    );
    assert_eq!(out.status.code(), Some(1));

    // A run and a search do not compare; a capacity.json from another schema is refused.
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let out = compare(&base, &run, "10%");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let future = dir.path().join("future");
    std::fs::create_dir_all(&future).unwrap();
    let text = std::fs::read_to_string(base.join("capacity.json"))
        .unwrap()
        .replace("\"schema_version\":1", "\"schema_version\":99");
    std::fs::write(future.join("capacity.json"), text).unwrap();
    let out = compare(&base, &future, "10%");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("schema version 99"), "{stderr}");
}

#[test]
fn a_search_the_budget_cuts_short_says_so_and_does_not_pass() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[sla]\navailability = \"98%\"\n");
    let out = dir.path().join("out");
    // The ceiling probe alone takes about 1.5 s: no rate probe fits in what is left.
    let done = capacity(&[
        file.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--budget".as_ref(),
        "2s".as_ref(),
        "-q".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert_eq!(done.status.code(), Some(1), "{stdout}");
    let r = result(&out);
    assert_eq!(r.searches[0].stop, StopReason::Budget);
    // Without the budget the search would probe for minutes; a starved machine may still
    // take a while over the ceiling probe, so the bound is loose.
    assert!(r.took_s < 60.0, "{}", r.took_s);
    assert!(
        stdout.contains("no rate passed") && stdout.contains("time budget spent"),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_stops_the_search_with_what_it_measured_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[sla]\navailability = \"98%\"\n");
    let out = dir.path().join("out");
    let child = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("capacity")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(["--min", "100", "--probe-duration", "30s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Past the ceiling probe, inside the first 30 s rate probe.
    let started = std::time::Instant::now();
    while !out
        .join("probes")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(
            started.elapsed().as_secs() < 60,
            "the ceiling probe never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let killed = std::time::Instant::now();
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    // The probe had about 28 s to go: stopping well before that is stopping on Ctrl-C.
    assert!(
        killed.elapsed().as_secs() < 20,
        "the probe was not cut short"
    );
    let r = result(&out);
    assert_eq!(r.searches[0].stop, StopReason::Interrupted);
    // The interrupted probe is kept, as a run folder of what it measured.
    let last = r.searches[0].probes.last().unwrap();
    assert!(
        out.join(last.folder.as_ref().unwrap())
            .join("summary.json")
            .is_file()
    );
}
