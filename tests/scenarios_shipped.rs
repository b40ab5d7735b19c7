//! The scenarios shipped in `scenarios/`: every one validates, and the quick ones run through
//! the real binary with their documented verdicts (shortened with `--duration`/`--rate`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

/// Runs share the machine's two cores with the rest of the suite: one at a time, so a run's
/// latency checks measure the gateway rather than the other runs.
static RUNS: Mutex<()> = Mutex::new(());

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

struct Run {
    code: i32,
    summary: Value,
    stderr: String,
}

/// `gauntlet run scenarios/NAME.toml -q --out <tempdir> ARGS...`, and its summary.json.
fn run(name: &str, args: &[&str]) -> Run {
    run_file(&scenarios_dir().join(format!("{name}.toml")), args)
}

/// `gauntlet run FILE -q --out <tempdir> ARGS...`, and its summary.json.
fn run_file(file: &Path, args: &[&str]) -> Run {
    let name = file.display().to_string();
    let _one_at_a_time = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(dir.path())
        .arg("--force")
        .arg("-q")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(dir.path().join("summary.json"))
        .unwrap_or_else(|e| panic!("{name}: no summary.json ({e}); stderr:\n{stderr}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        summary: serde_json::from_str(&text).unwrap(),
        stderr,
    }
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {cur}"))
}

fn class<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no class {name}"))
}

/// Which upstream served most of the class's requests in each interval, by interval start.
fn majority_served_by(summary: &Value, class: &str) -> Vec<(f64, String)> {
    summary["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|iv| {
            let by = iv["classes"][class]["served_by"].as_object()?;
            let (name, _) = by.iter().max_by_key(|(_, n)| n.as_u64().unwrap_or(0))?;
            Some((iv["t_s"].as_f64()?, name.clone()))
        })
        .collect()
}

#[test]
fn every_shipped_scenario_validates_and_says_what_it_proves() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 14,
        "expected the shipped set, found {files:?}"
    );
    for name in ["realistic-mix.toml", "agent-sessions.toml"] {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "{name} is missing from {files:?}"
        );
    }
    for file in &files {
        // real-providers.toml reads its keys from the environment; placeholders let it
        // validate here (it is never run in the tests: it would reach paid APIs).
        let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
            .arg("validate")
            .arg(file)
            .env("OPENAI_API_KEY", "sk-placeholder")
            .env("ANTHROPIC_API_KEY", "sk-ant-placeholder")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("# scenarios/"), "{}", file.display());
        assert!(
            text.contains("What it proves") && text.contains("verdict"),
            "{} must say what it proves and its expected verdict",
            file.display()
        );
    }
}

/// quickstart shortened to 14 s: the outage runs from 5.6 s to 9.8 s, the breaker's 5 s
/// cooldown brings deepseek back by about 11 s, leaving the last intervals to show it.
#[test]
fn quickstart_fails_over_to_qwen_and_back_within_the_retry_budget() {
    let r = run("quickstart", &["--duration", "14s", "--rate", "150"]);
    let s = &r.summary;
    // Behaviour, not timing: a debug build on a loaded 2-core CI box can miss the 500 ms
    // TTFT bound (the benchmarks measure speed), but availability and failover must hold.
    let failed: Vec<&str> = s["sla"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failed.iter().all(|n| *n == "ttft_p99"),
        "quickstart must pass all but timing checks: {}\n{}",
        s["sla"],
        r.stderr
    );
    assert_eq!(
        r.code,
        if failed.is_empty() { 0 } else { 1 },
        "{}",
        s["sla"]
    );
    assert!(f(s, &["overall", "availability"]) >= 0.999);

    let fault = &s["faults"][0];
    assert_eq!(fault["upstream"], "deepseek");
    assert!(f(fault, &["affected_requests"]) >= 200.0, "{fault}");
    assert!(f(fault, &["failover_success"]) >= 0.99, "{fault}");
    let (start, end) = (f(fault, &["start_s"]), f(fault, &["end_s"]));
    assert!(
        (start - 5.6).abs() < 0.01 && (end - 9.8).abs() < 0.01,
        "{fault}"
    );

    let served = majority_served_by(s, "everyday");
    let during: Vec<_> = served
        .iter()
        .filter(|(t, _)| *t >= start + 1.0 && *t + 1.0 <= end)
        .collect();
    assert!(!during.is_empty(), "{served:?}");
    assert!(
        during.iter().all(|(_, u)| u == "qwen"),
        "during: {served:?}"
    );
    let before: Vec<_> = served.iter().filter(|(t, _)| *t + 1.0 <= start).collect();
    assert!(
        !before.is_empty() && before.iter().all(|(_, u)| u == "deepseek"),
        "{served:?}"
    );
    let last = served.last().unwrap();
    assert!(
        last.0 >= 12.0 && last.1 == "deepseek",
        "back after: {served:?}"
    );

    // Retry amplification: the gateway's budget allows 20% extra attempts plus 10 per 10 s
    // window; a dead provider refuses connections, so it cannot count more than that.
    let amp = f(s, &["retry_amplification"]);
    assert!((0.9..=1.25).contains(&amp), "retry amplification {amp}");
}

/// anthropic-fallback at its own 20 s: the 529 storm runs from 8 s to 14 s. OpenAI
/// clients are served by the Anthropic-format primary before it, by the OpenAI-format fallback
/// during it, and see no error.
#[test]
fn anthropic_fallback_translates_and_fails_over_the_529_storm() {
    // 60/s, not the scenario's 100: every answer is a stream of about a hundred events through
    // three debug-built hops (mock, translating gateway, client), and at 120/s a CI machine
    // busy with the rest of the suite fell so far behind that the generator hit its in-flight
    // cap and dropped requests, which count against availability as they should. The full
    // 20 s keeps the samples above the 1,000 a 99.9% target needs to be conclusive.
    let r = run("anthropic-fallback", &["--rate", "60"]);
    let s = &r.summary;
    assert_eq!(
        r.code, 0,
        "{}\n{}\n{}\n{}",
        s["sla"], s["overall"], s["generator"], r.stderr
    );
    assert_eq!(f(s, &["overall", "availability"]), 1.0, "{}", s["overall"]);
    let fault = &s["faults"][0];
    assert_eq!(fault["upstream"], "claude");
    assert!(f(fault, &["affected_requests"]) >= 100.0, "{fault}");
    assert_eq!(f(fault, &["failover_success"]), 1.0, "{fault}");
    let (start, end) = (f(fault, &["start_s"]), f(fault, &["end_s"]));
    let served = majority_served_by(s, "assistant");
    let before: Vec<_> = served.iter().filter(|(t, _)| *t + 1.0 <= start).collect();
    assert!(
        !before.is_empty() && before.iter().all(|(_, u)| u == "claude"),
        "the Anthropic-format primary serves while healthy: {served:?}"
    );
    let during: Vec<_> = served
        .iter()
        .filter(|(t, _)| *t >= start + 1.0 && *t + 1.0 <= end)
        .collect();
    assert!(
        !during.is_empty() && during.iter().all(|(_, u)| u == "deepseek"),
        "{served:?}"
    );
    // The Messages-speaking class rode it out as well.
    let sdk = class(s, "anthropic-sdk");
    assert!(f(sdk, &["requests"]) >= 100.0, "{sdk}");
    assert_eq!(f(sdk, &["availability"]), 1.0, "{sdk}");
    assert!(
        f(sdk, &["ttft_ms", "samples"]) == f(sdk, &["successes"]),
        "{sdk}"
    );
    // Usage came back through the translation: every success counted its tokens.
    let overall = &s["overall"];
    assert_eq!(
        overall["prompt_tokens_from"]["usage"], overall["successes"],
        "{overall}"
    );
    assert!(f(overall, &["tokens", "completion"]) >= 40.0 * f(overall, &["successes"]));
}

#[test]
fn without_a_fallback_the_outage_costs_its_share_and_the_run_exits_1() {
    let r = run("no-fallback", &["--duration", "14s", "--rate", "150"]);
    let s = &r.summary;
    assert_eq!(r.code, 1, "no-fallback must fail its SLA: {}", s["sla"]);
    assert_eq!(s["sla"]["verdict"], "fail");
    // The outage is 4.2 s of 12.6 s measured and hits the 80% everyday class: ~27% lost,
    // a little more while the breaker's 1 s cooldown runs out after it.
    let avail = f(s, &["overall", "availability"]);
    assert!((0.55..=0.85).contains(&avail), "availability {avail}");
    assert!(f(class(s, "fallback-tier"), &["availability"]) >= 0.99);
    assert!(f(class(s, "premium"), &["availability"]) >= 0.99);
    let failed = s["sla"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "availability")
        .unwrap();
    assert_eq!(failed["status"], "fail");
}

#[test]
fn a_429_storm_moves_traffic_without_hammering_the_rate_limited_provider() {
    let r = run("rate-limit-storm", &["--duration", "14s", "--rate", "150"]);
    let s = &r.summary;
    assert_eq!(
        r.code, 0,
        "rate-limit-storm must pass: {}\n{}",
        s["sla"], r.stderr
    );
    let requests = f(s, &["overall", "requests"]);
    let amp = f(s, &["retry_amplification"]);
    // Near 1 once the breaker opens. The lower bound leaves room for the window's edge: the
    // upstreams' counters are read over HTTP just after warmup ends, so a few requests sent in
    // that read's round trip are counted by the client but not by the upstreams.
    assert!((0.97..=1.3).contains(&amp), "retry amplification {amp}");
    // Retry-After 2 s: the storm's 429s go to the fallback, not straight back to deepseek, so
    // deepseek receives no more than the everyday share of the requests.
    let deepseek = s["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "deepseek")
        .unwrap();
    let received = f(deepseek, &["received"]);
    assert!(
        received <= 0.9 * requests,
        "deepseek received {received} of {requests}"
    );
    let by = &class(s, "everyday")["served_by"];
    assert!(
        by["qwen"].as_u64().unwrap_or(0) > 50,
        "everyday served by {by}"
    );
    assert!(f(s, &["overall", "availability"]) >= 0.99);
}

/// The closed model through the embedded gateway: 50 users, each sending again as soon as it is
/// answered, every request answered and served by the zero-latency provider.
#[test]
fn max_throughput_keeps_50_users_busy_through_the_gateway() {
    let r = run("max-throughput", &["--duration", "4s"]);
    let s = &r.summary;
    assert_eq!(r.code, 0, "{}\n{}", s["sla"], r.stderr);
    let requests = f(s, &["overall", "requests"]);
    // Thousands a second even in a debug build; users that stopped after a request or two
    // would leave ~100 in the 3.2 s measured.
    assert!(requests > 500.0, "only {requests} requests measured");
    assert_eq!(f(s, &["overall", "successes"]), requests);
    assert_eq!(f(s, &["overall", "dropped"]), 0.0);
    assert_eq!(f(class(s, "bench"), &["served_by", "zero"]), requests);
}

/// agent-sessions shortened to 6 s: sessions of 3 to 6 turns through the gateway, every turn
/// answered; far more requests than arrivals, since each arrival is a whole conversation.
#[test]
fn agent_sessions_run_whole_conversations_through_the_gateway() {
    let r = run("agent-sessions", &["--duration", "6s"]);
    let s = &r.summary;
    let failed: Vec<&str> = s["sla"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // Timing bounds are the benchmarks' business on a loaded debug build, and 6 s hold too
    // few samples for a conclusive verdict; but no answer may fail.
    assert!(
        failed.iter().all(|n| *n == "ttft_p99"),
        "agent-sessions must fail no check but timing: {}\n{}",
        s["sla"],
        r.stderr
    );
    let requests = f(s, &["overall", "requests"]);
    // About 100 sessions start in the 4 s measured; single requests would be about 100.
    assert!(requests >= 150.0, "only {requests} turns measured");
    assert_eq!(f(s, &["overall", "successes"]), requests);
    assert_eq!(f(class(s, "agent"), &["served_by", "deepseek"]), requests);
}

/// Every TOML file gauntlet ships, found by walking the repository: the intentionally broken
/// corpora under `tests/data/bad-*` and build output are left out.
fn shipped_toml_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if path.is_dir() {
                let skipped = name.starts_with('.') || name == "target" || name.starts_with("bad-");
                if !skipped {
                    walk(&path, out);
                }
            } else if name.ends_with(".toml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(env!("CARGO_MANIFEST_DIR")), &mut files);
    files.sort();
    files
}

/// Reads each file named on the command line with Python's `tomllib` (TOML 1.0) and prints
/// `path: message` for each it refuses; exit 1 if any was refused.
const TOML10_CHECK: &str = r#"
import sys
try:
    import tomllib
except ImportError:
    sys.exit("python3 is older than 3.11 and has no tomllib (a TOML 1.0 parser); install python3 >= 3.11")
bad = 0
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as f:
            tomllib.load(f)
    except Exception as e:
        bad += 1
        print(f"{path}: {e}")
sys.exit(1 if bad else 0)
"#;

/// TOML 1.1 allows newlines inside inline tables; Python's tomllib, taplo and most editors
/// read TOML 1.0 and refuse such a file, so every shipped file must be plain TOML 1.0.
#[test]
fn every_shipped_toml_file_is_toml_1_0() {
    let files = shipped_toml_files();
    let has = |dir: &str| files.iter().any(|f| f.to_string_lossy().contains(dir));
    assert!(
        has("/scenarios/") && has("/mock-upstreams/") && has("/examples/") && has("/benches/"),
        "the walk missed a shipped folder: {files:?}"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(TOML10_CHECK)
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): this test needs python3 >= 3.11 (its tomllib is the \
                 TOML 1.0 reference here); install it, e.g. `apt-get install python3`"
            )
        });
    assert!(
        out.status.success(),
        "files that are not TOML 1.0 (checked {} files with python3 tomllib):\n{}{}",
        files.len(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The replayed peak hour sends exactly the trace's lines past the warmup, each as the class
/// its line names, and the outage at the peak fails over without losing requests.
#[test]
fn the_peak_hour_trace_replays_line_for_line_through_the_outage() {
    let trace = std::fs::read_to_string(scenarios_dir().join("traces/peak-hour.jsonl")).unwrap();
    let lines: Vec<Value> = trace
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = lines[0]["timestamp"].as_f64().unwrap();
    // Past the 1 s warmup; by class as the scenario maps models to classes.
    let mut want = std::collections::BTreeMap::<&str, u64>::new();
    for l in &lines {
        if l["timestamp"].as_f64().unwrap() - first < 1.0 {
            continue;
        }
        let class = match (l["model"].as_str(), l["class"].as_str()) {
            (Some("deepseek-v4-flash"), _) => "everyday",
            (Some("qwen3-32b"), _) => "fallback-tier",
            (_, Some(c)) => c,
            other => panic!("unexpected line {other:?}"),
        };
        *want.entry(class).or_default() += 1;
    }
    let r = run("trace-replay", &[]);
    let s = &r.summary;
    for (name, n) in &want {
        assert_eq!(
            f(class(s, name), &["requests"]) as u64,
            *n,
            "class {name}: {}",
            r.stderr
        );
    }
    assert!(f(s, &["overall", "availability"]) >= 0.99, "{}", s["sla"]);
    let fault = &s["faults"][0];
    assert!(f(fault, &["affected_requests"]) >= 200.0, "{fault}");
    assert!(f(fault, &["failover_success"]) >= 0.99, "{fault}");
    assert_eq!(s["generator"]["dropped"], 0);
    assert_eq!(r.code, 0, "{}\n{}", s["sla"], r.stderr);
}

fn tier<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tier {name}: {}", summary["tiers"]))
}

fn check<'a>(summary: &'a Value, name: &str, scope: &str) -> &'a Value {
    summary["sla"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["scope"] == scope)
        .unwrap_or_else(|| panic!("no check {name} {scope}: {}", summary["sla"]))
}

/// noisy-neighbour shortened to 16 s (the flood runs for about 5 s): Pro loses nothing and
/// Standard's flood is refused only by clean, marked 429s. Pro's p99 bound is checked loosely:
/// a debug build on a loaded 2-core box is not the release gateway the verdict is about.
#[test]
fn noisy_neighbour_keeps_pro_whole_and_sheds_the_standard_flood_cleanly() {
    let r = run("noisy-neighbour", &["--duration", "16s"]);
    let s = &r.summary;
    let pro = tier(s, "pro");
    assert_eq!(pro["classes"][0], "pro");
    assert!(f(pro, &["requests"]) >= 400.0, "{pro}");
    // The full run holds 99.9% (its SLA); shortened, in a debug build sharing two cores with
    // the rest of the suite, a slow gateway can fill even Pro's reserve for a moment. Against
    // a gateway without admission the same run loses a third of Pro (the test below).
    assert!(
        f(pro, &["availability"]) >= 0.99,
        "Pro is untouched by the flood: {pro}\n{}",
        r.stderr
    );
    let pro_errors = pro["errors"].as_object().unwrap();
    assert!(
        pro_errors
            .keys()
            .all(|k| k == "status_5xx" || k == "rate_limited"),
        "whatever Pro lost was refused at once, never timed out or reset: {pro}"
    );
    assert!(f(pro, &["latency_ms", "p99"]) < 1000.0, "{pro}");
    let std = tier(s, "standard");
    let shed = f(std, &["shed"]);
    assert!(shed >= 1000.0, "most of the flood is shed: {std}");
    let errors = std["errors"].as_object().unwrap();
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        ["rate_limited"],
        "429s only: no timeouts, no resets, no 5xx: {std}"
    );
    assert_eq!(
        f(std, &["errors", "rate_limited"]),
        shed,
        "every 429 is marked shed"
    );
    assert_eq!(
        f(std, &["gateway_rate_limited"]),
        shed,
        "the gateway answered them"
    );
}

/// The same flood against a reference gateway with tier admission off: the providers'
/// concurrency caps refuse Pro and Standard alike, and the Pro SLA fails. The check can fail.
#[test]
fn noisy_neighbour_without_tier_admission_fails_the_pro_sla() {
    let dir = tempfile::tempdir().unwrap();
    let mocks = Path::new(env!("CARGO_MANIFEST_DIR")).join("mock-upstreams");
    let text = std::fs::read_to_string(scenarios_dir().join("noisy-neighbour.toml")).unwrap();
    assert!(text.contains("\nenabled = true"));
    let off = text
        .replace("\nenabled = true", "\nenabled = false")
        .replace("../mock-upstreams", &mocks.display().to_string());
    let file = dir.path().join("noisy-neighbour-tiers-off.toml");
    std::fs::write(&file, off).unwrap();
    let r = run_file(&file, &["--duration", "16s"]);
    let s = &r.summary;
    assert_eq!(
        r.code, 1,
        "the Pro SLA must fail: {}\n{}",
        s["sla"], r.stderr
    );
    assert_eq!(check(s, "availability", "tier:pro")["status"], "fail");
    let pro = tier(s, "pro");
    assert!(f(pro, &["availability"]) < 0.99, "{pro}");
    assert_eq!(
        f(tier(s, "standard"), &["shed"]),
        0.0,
        "nothing sheds by tier"
    );
}

/// free-tier at 4 requests a second for 30 s: 120 requests against a bucket of 50 that
/// refills 25 in that time, so 75 are served and exactly the other 45 get the gateway's 429.
#[test]
fn free_tier_refuses_exactly_the_share_over_fifty_a_minute() {
    let r = run("free-tier", &["--rate", "4", "--duration", "30s"]);
    let s = &r.summary;
    let std = tier(s, "standard");
    assert_eq!(f(std, &["requests"]), 120.0, "{std}");
    let refused = f(std, &["errors", "rate_limited"]);
    assert!((44.0..=46.0).contains(&refused), "45 over the limit: {std}");
    assert_eq!(
        f(std, &["successes"]) + refused,
        120.0,
        "nothing else failed: {std}"
    );
    assert_eq!(
        f(std, &["gateway_rate_limited"]),
        refused,
        "refused by the gateway"
    );
    assert_eq!(
        f(std, &["shed"]),
        0.0,
        "a key's limit is not admission shedding"
    );
    assert_eq!(r.code, 0, "{}\n{}", s["sla"], r.stderr);
}

/// gateway-overhead shortened to 6 s: a fifth of the requests go straight to the provider,
/// the rest through the embedded gateway, and the summary says what the gateway added. Some
/// 280 direct answers cannot support a p99 claim, so the shortened run is inconclusive.
#[test]
fn gateway_overhead_sends_a_fifth_direct_and_reports_what_the_gateway_adds() {
    let r = run("gateway-overhead", &["--duration", "6s"]);
    let s = &r.summary;
    let o = &s["overhead"]["classes"][0];
    assert_eq!(o["name"], "bench", "{}", s["overhead"]);
    let direct = f(o, &["direct_requests"]);
    let share = direct / (direct + f(s, &["overall", "requests"]));
    assert!((0.15..0.25).contains(&share), "direct share {share}");
    // The gateway is a loopback hop in front of a provider answering at once.
    let added = f(o, &["added_p50_ms"]);
    assert!((-5.0..25.0).contains(&added), "p50 added {added} ms");
    assert_eq!(
        f(s, &["overall", "successes"]),
        f(s, &["overall", "requests"])
    );
    let bound = check(s, "max_overhead_p99", "overall");
    assert_eq!(bound["status"], "inconclusive", "{bound}");
    assert_eq!(r.code, 1, "inconclusive is not a pass: {}", r.stderr);
}
