//! Scenario files: the shipped and documented shapes load into the expected typed values, and
//! every broken file in `tests/data/bad-scenarios/` fails through the real `gauntlet validate`
//! with exit 2 and a message at the expected line:col.

use std::io::Read;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gauntlet::mock::{FaultKind, Profile};
use gauntlet::openai::Message;
use gauntlet::scenario::{
    Arrival, Objective, Scope, Stage, StageLoad, Target, UpstreamSource, load, load_str,
};

const QUICKSTART: &str = include_str!("../scenarios/quickstart.toml");

/// The example from DESIGN.md's "The scenario format", verbatim.
const DESIGN_EXAMPLE: &str = r#"
# scenarios/quickstart.toml: the 80/15/5 model router rides out a 6 s primary outage.
name = "quickstart"
seed = 7

[[upstreams]]                    # mock providers gauntlet starts (or `url = ...` for running ones)
name = "deepseek"
profile = "../mock-upstreams/deepseek-v4-flash.toml"
[[upstreams]]
name = "qwen"
profile = "../mock-upstreams/qwen3-32b.toml"
[[upstreams]]
name = "premium"
profile = "../mock-upstreams/deepseek-r1.toml"

[gateway]                        # the embedded reference gateway; omit it and set [target] url instead
keys = [{ key = "gk-standard-demo", tier = "standard", rpm = 20000 }]
routes = [
  { model = "deepseek-v4-flash", targets = ["deepseek"], fallbacks = ["qwen"] },
  { model = "qwen3-32b",         targets = ["qwen"],     fallbacks = ["deepseek"] },
  { model = "deepseek-r1",       targets = ["premium"],  fallbacks = ["qwen"] },
]

[load]                           # open model: arrivals per second, ramp then hold
arrival = "poisson"
warmup = "2s"
stages = [{ duration = "3s", rate = 200 }, { duration = "17s", rate = 200 }]

[[requests]]
name = "everyday"
weight = 80
model = "deepseek-v4-flash"
prompt = "Generate a product description"
max_tokens = 64
stream = true
api_key = "gk-standard-demo"
# [[requests]] "fallback-tier" (weight 15, qwen3-32b) and "premium" (weight 5, deepseek-r1) alike

[[faults]]
upstream = "deepseek"
at = "8s"
duration = "6s"
kind = "outage"

[sla]
ttft_p99 = "500ms"
availability = "99.9%"
failover_success = "99%"
max_failover_time = "1s"
"#;

const PROFILES: [&str; 3] = ["deepseek-v4-flash", "qwen3-32b", "deepseek-r1"];

/// A folder laid out like the repository: `scenarios/` beside `mock-upstreams/`.
fn repo_like_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scenarios")).unwrap();
    std::fs::create_dir(dir.path().join("mock-upstreams")).unwrap();
    for p in PROFILES {
        // The real shipped profiles, so validation reads what users get.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("mock-upstreams")
            .join(format!("{p}.toml"));
        let path = dir.path().join("mock-upstreams").join(format!("{p}.toml"));
        std::fs::copy(shipped, path).unwrap();
    }
    dir
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the real binary from the crate root, failing the test if it takes over 60 s (a hang).
fn gauntlet(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("GAUNTLET_TEST_UNSET_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("gauntlet {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn quickstart_loads_into_the_expected_typed_values() {
    let dir = repo_like_dir();
    let path = dir.path().join("scenarios/quickstart.toml");
    std::fs::write(&path, QUICKSTART).unwrap();
    let s = load(&path).unwrap();

    assert_eq!(s.name, "quickstart");
    assert_eq!(s.seed, 7);
    let names: Vec<&str> = s.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["deepseek", "qwen", "premium"]);
    let Target::EmbeddedGateway(gateway) = &s.target else {
        panic!("expected the embedded gateway, got {:?}", s.target);
    };
    assert_eq!(gateway.upstreams(), names);
    let routes: Vec<(&str, &str, &str)> = gateway
        .routes()
        .iter()
        .map(|r| {
            let target = r.targets[0].upstream.as_str();
            (r.model.as_str(), target, r.fallbacks[0].upstream.as_str())
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("deepseek-v4-flash", "deepseek", "qwen"),
            ("qwen3-32b", "qwen", "deepseek"),
            ("deepseek-r1", "premium", "qwen"),
        ]
    );
    assert_eq!(gateway.keys()[0].key.expose(), "gk-standard-demo");
    for (u, profile) in s.upstreams.iter().zip(PROFILES) {
        let file = dir
            .path()
            .join("mock-upstreams")
            .join(format!("{profile}.toml"));
        let UpstreamSource::Profile(loaded) = &u.source else {
            panic!("{}: expected a profile, got {:?}", u.name, u.source);
        };
        assert_eq!(**loaded, Profile::load(&file).unwrap(), "{}", u.name);
        assert_eq!(loaded.models[0].name, profile);
    }

    assert_eq!(
        s.load.stages,
        [
            Stage {
                duration: secs(3),
                load: StageLoad::Rate {
                    from: 20.0,
                    to: 200.0
                }
            },
            Stage {
                duration: secs(17),
                load: StageLoad::Rate {
                    from: 200.0,
                    to: 200.0
                }
            },
        ]
    );
    assert_eq!(s.load.total_duration(), secs(20));
    assert_eq!(s.load.warmup, secs(2));
    assert_eq!(s.load.arrival, Arrival::Poisson);
    assert_eq!(s.load.max_in_flight, NonZeroUsize::new(1000).unwrap());
    assert_eq!(s.load.timeout, secs(30));
    assert_eq!(s.load.interval, secs(1));

    let mix: Vec<(&str, u32, &str, Option<&str>)> = s
        .requests
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.weight.get(),
                r.model.as_str(),
                r.primary.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        mix,
        [
            ("everyday", 80, "deepseek-v4-flash", Some("deepseek")),
            ("fallback-tier", 15, "qwen3-32b", Some("qwen")),
            ("premium", 5, "deepseek-r1", Some("premium")),
        ]
    );
    let everyday = &s.requests[0];
    assert_eq!(
        everyday.messages,
        [Message::new("user", "Generate a product description")]
    );
    assert_eq!(everyday.max_tokens, Some(64));
    assert!(everyday.stream);
    assert_eq!(
        everyday.api_key.as_ref().map(|k| k.expose()),
        Some("gk-standard-demo")
    );
    assert!(!format!("{everyday:?}").contains("gk-standard-demo"));
    assert_eq!(s.requests[2].messages.len(), 2);
    assert_eq!(s.requests[2].messages[0].role, "system");

    assert_eq!(s.faults.len(), 1);
    let f = &s.faults[0];
    assert_eq!(
        (f.upstream.as_str(), f.at, f.duration, f.count),
        ("deepseek", secs(8), secs(6), NonZeroU32::MIN)
    );
    assert_eq!(f.spec.kind, FaultKind::Outage);
    assert_eq!(f.windows().collect::<Vec<_>>(), [(secs(8), secs(14))]);

    let targets: Vec<(Scope, Objective)> = s
        .sla
        .targets
        .iter()
        .map(|t| (t.scope.clone(), t.objective))
        .collect();
    assert_eq!(targets.len(), 4);
    assert!(targets.contains(&(
        Scope::Overall,
        Objective::TtftP99(Duration::from_millis(500))
    )));
    assert!(targets.contains(&(Scope::Overall, Objective::MaxFailoverTime(secs(1)))));
    let availability = targets.iter().find_map(|(_, o)| match o {
        Objective::Availability(a) => Some(*a),
        _ => None,
    });
    assert!((availability.unwrap() - 0.999).abs() < 1e-12);
}

#[test]
fn design_example_loads_verbatim() {
    let dir = repo_like_dir();
    let s = load_str(dir.path().join("scenarios/design.toml"), DESIGN_EXAMPLE).unwrap();
    assert_eq!(s.name, "quickstart");
    assert_eq!(s.requests.len(), 1);
    assert_eq!(s.requests[0].weight.get(), 80);
    assert_eq!(s.load.total_duration(), secs(20));
    assert_eq!(s.faults[0].spec.kind, FaultKind::Outage);
    assert_eq!(s.sla.targets.len(), 4);
}

#[test]
fn shorthand_closed_model_url_upstreams_and_class_slas() {
    let text = r#"
        [target]
        url = "http://127.0.0.1:4000/"
        [[upstreams]]
        name = "remote"
        url = "http://127.0.0.1:9001"
        admin_token = "tok-literal"
        [load]
        model = "closed"
        duration = "5s"
        concurrency = 8
        timeout = "2s"
        interval = "250ms"
        [[requests]]
        name = "a"
        model = "m"
        messages = [{ role = "user", content = "hi" }]
        headers = { "x-team" = "search" }
        [[faults]]
        upstream = "remote"
        at = "500ms"
        duration = "1s"
        every = "1500ms"
        count = 3
        kind = "latency"
        delay = "800ms"
        rate = 0.5
        model = "m"
        [sla]
        availability = "99%"
        [sla.classes.a]
        p99_latency = "1s"
        uptime = 0.95
    "#;
    let s = load_str("/nowhere/closed-run.toml", text).unwrap();
    assert_eq!(s.name, "closed-run", "name defaults to the file stem");
    assert_eq!(s.seed, 1);
    assert_eq!(s.target, Target::Url("http://127.0.0.1:4000".into()));
    match &s.upstreams[0].source {
        UpstreamSource::Url { url, admin_token } => {
            assert_eq!(url, "http://127.0.0.1:9001");
            assert_eq!(admin_token.as_ref().unwrap().expose(), "tok-literal");
        }
        other => panic!("expected a URL upstream, got {other:?}"),
    }
    assert_eq!(
        s.load.stages,
        [Stage {
            duration: secs(5),
            load: StageLoad::Concurrency(NonZeroUsize::new(8).unwrap())
        }]
    );
    assert_eq!(s.load.timeout, secs(2));
    assert_eq!(s.load.interval, Duration::from_millis(250));
    assert_eq!(
        s.requests[0].headers,
        [("x-team".to_string(), "search".to_string())]
    );
    assert_eq!(s.requests[0].weight.get(), 1, "weight defaults to 1");
    assert!(!s.requests[0].stream);

    let f = &s.faults[0];
    let windows: Vec<_> = f.windows().collect();
    assert_eq!(
        windows,
        [
            (Duration::from_millis(500), Duration::from_millis(1500)),
            (Duration::from_millis(2000), Duration::from_millis(3000)),
            (Duration::from_millis(3500), Duration::from_millis(4500)),
        ]
    );
    assert!(matches!(f.spec.kind, FaultKind::Latency { .. }));
    assert_eq!((f.spec.rate, f.spec.model.as_deref()), (0.5, Some("m")));

    let class = Scope::Class("a".into());
    assert!(
        s.sla
            .targets
            .iter()
            .any(|t| t.scope == class && t.objective == Objective::P99Latency(secs(1)))
    );
    assert!(
        s.sla
            .targets
            .iter()
            .any(|t| t.scope == class && t.objective == Objective::Uptime(0.95))
    );
}

/// An SLA may hold latency alone (availability and uptime are not required of every SLA), and
/// `[sla.per_request]` may set one bound of the three.
#[test]
fn a_latency_only_sla_and_a_one_bound_per_request_table_load_as_written() {
    for (bound, want) in [
        ("ttft", [Some(Duration::from_millis(200)), None, None]),
        ("tpot", [None, Some(Duration::from_millis(200)), None]),
        ("latency", [None, None, Some(Duration::from_millis(200))]),
    ] {
        let text = format!(
            "name = \"s\"\n[target]\nurl = \"http://127.0.0.1:4000\"\n\
             [load]\nduration = \"5s\"\nrate = 1\n\
             [[requests]]\nname = \"a\"\nmodel = \"m\"\nprompt = \"hi\"\n\
             [sla]\np99_latency = \"500ms\"\ngoodput = \"95%\"\n\
             [sla.per_request]\n{bound} = \"200ms\"\n"
        );
        let s = load_str("/nowhere/s.toml", text).unwrap_or_else(|e| panic!("{bound}: {e}"));
        let p = &s.sla.per_request;
        assert_eq!([p.ttft, p.tpot, p.latency], want, "{bound}");
        assert_eq!(s.sla.targets.len(), 2, "{bound}: {:?}", s.sla.targets);
        assert!(
            s.sla
                .targets
                .iter()
                .any(|t| t.objective == Objective::P99Latency(Duration::from_millis(500))),
            "{bound}: {:?}",
            s.sla.targets
        );
    }
    // Uptime with the availability it is measured against loads too.
    let text = "name = \"s\"\n[target]\nurl = \"http://127.0.0.1:4000\"\n\
                [load]\nduration = \"5s\"\nrate = 1\n\
                [[requests]]\nname = \"a\"\nmodel = \"m\"\nprompt = \"hi\"\n\
                [sla]\navailability = \"99%\"\nuptime = \"90%\"\n";
    let s = load_str("/nowhere/s.toml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.sla.targets.len(), 2, "{:?}", s.sla.targets);
}

#[test]
fn direct_target_and_every_fault_kind() {
    let dir = repo_like_dir();
    let mut text = String::from(
        "[[upstreams]]\nname = \"up\"\nprofile = \"../mock-upstreams/qwen3-32b.toml\"\n\
         [load]\nduration = \"60s\"\nrate = 5\narrival = \"constant\"\n\
         [[requests]]\nname = \"r\"\nmodel = \"qwen3-32b\"\nprompt = \"x\"\n",
    );
    let kinds = [
        "kind = \"error\"\nstatus = 503",
        "kind = \"rate_limit\"\nretry_after = \"2s\"\ncode = \"insufficient_quota\"",
        "kind = \"latency\"\ndelay = { dist = \"lognormal\", median = \"100ms\", p99 = \"900ms\" }",
        "kind = \"hang\"\nhang_for = \"3s\"",
        "kind = \"reset\"",
        "kind = \"stream_cut\"\nafter_chunks = 2",
        "kind = \"malformed\"",
        "kind = \"slow_stream\"\ntokens_per_second = 4.0",
        "kind = \"outage\"",
    ];
    for (i, k) in kinds.iter().enumerate() {
        text.push_str(&format!(
            "[[faults]]\nupstream = \"up\"\nat = \"{}s\"\nduration = \"5s\"\n{k}\n",
            i * 6
        ));
    }
    let s = load_str(dir.path().join("scenarios/kinds.toml"), text).unwrap();
    assert_eq!(s.target, Target::Direct);
    assert_eq!(s.load.arrival, Arrival::Constant);
    let names: Vec<&str> = s
        .faults
        .iter()
        .map(|f| f.spec.kind.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "error",
            "rate_limit",
            "latency",
            "hang",
            "reset",
            "stream_cut",
            "malformed",
            "slow_stream",
            "outage"
        ]
    );
}

/// `# expect: LINE:COL fragment` on the first line of each corpus file.
fn expectation(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} lacks `# expect: L:C fragment`", path.display()));
    let (at, fragment) = rest.split_once(' ').unwrap();
    (at.to_string(), fragment.to_string())
}

#[test]
fn every_bad_scenario_fails_with_its_message_and_place() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "corpus has only {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let rel = format!(
            "tests/data/bad-scenarios/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        let (at, fragment) = expectation(file);
        let run = gauntlet(&["validate", &rel], &[]);
        let prefix = format!("{rel}:{at}: ");
        let located = run
            .stderr
            .lines()
            .any(|l| l.trim_start().starts_with(&prefix) && l.contains(&fragment));
        if run.code != Some(2) || !located || run.stderr.contains("panicked") {
            failures.push(format!(
                "{rel}: want exit 2 and `{prefix}...{fragment}`, got {:?}\n{}",
                run.code, run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn validate_reports_every_error_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.toml");
    std::fs::write(
        &path,
        r#"name = "many"
[[upstreams]]
name = "up"
url = "http://127.0.0.1:9"
[load]
duration = "10s"
rate = 0
[[requests]]
name = "a"
weight = -1
model = "m"
prompt = "p"
primary = "upp"
[[faults]]
upstream = "nope"
at = "1s"
duration = "1s"
kind = "outage"
[sla]
availability = "99.9"
"#,
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let run = gauntlet(&["validate", p], &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains(p)).collect();
    let want = [
        ":7:8: `load.rate`",
        ":10:10: `requests[0].weight`",
        ":13:11: `requests[0].primary`: unknown upstream `upp` (did you mean `up`?)",
        ":15:12: `faults[0].upstream`",
        ":20:16: `sla.availability`",
    ];
    assert_eq!(lines.len(), want.len() + 1, "{}", run.stderr);
    for (line, w) in lines[1..].iter().zip(want) {
        assert!(line.contains(w), "{line:?} should contain {w:?}");
    }
}

#[test]
fn non_utf8_file_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    let mut bytes = b"name = \"x\"\n[load]\nduration = \"caf".to_vec();
    bytes.extend([0xE9, b'"', b'\n']);
    std::fs::write(&path, bytes).unwrap();
    let p = path.to_str().unwrap();
    let run = gauntlet(&["validate", p], &[]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains(&format!("{p}:3:16: file is not valid UTF-8")),
        "{}",
        run.stderr
    );
}

#[test]
fn oversized_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let line = format!("# {}\n", "x".repeat(1000));
    std::fs::write(&path, line.repeat(5 * 1024)).unwrap();
    let p = path.to_str().unwrap();
    let run = gauntlet(&["validate", p], &[]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("configuration files are limited to 4194304 bytes"),
        "{}",
        run.stderr
    );
}

#[test]
fn large_generated_file_is_judged_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    let mut text = String::from(
        "[target]\nurl = \"http://127.0.0.1:4000\"\n[load]\nduration = \"10s\"\nrate = 10\n",
    );
    for i in 0..3000 {
        text.push_str(&format!(
            "[[requests]]\nname = \"class-{i}\"\nweight = 0\nmodel = \"m\"\nprompt = \"{}\"\n",
            "y".repeat(900)
        ));
    }
    assert!(text.len() > 2_500_000 && text.len() < 4_000_000);
    std::fs::write(&path, text).unwrap();
    let started = Instant::now();
    let run = gauntlet(&["validate", path.to_str().unwrap()], &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("3000 request classes; at most 1000 are supported"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn env_secrets_are_resolved_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.toml");
    std::fs::write(
        &path,
        "[target]\nurl = \"http://127.0.0.1:4000\"\n[load]\nduration = \"10s\"\nrate = 10\n\
         [[requests]]\nname = \"a\"\nmodel = \"m\"\nprompt = \"p\"\n\
         api_key = \"env:GAUNTLET_TEST_SET_KEY\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let run = gauntlet(
        &["validate", p],
        &[("GAUNTLET_TEST_SET_KEY", "sk-very-secret-value")],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("ok: {p} (1 classes, 0 upstreams, 10s)"))
    );
    assert!(!run.stdout.contains("sk-very-secret") && !run.stderr.contains("sk-very-secret"));

    let run = gauntlet(&["validate", p], &[("GAUNTLET_TEST_SET_KEY", "")]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("`GAUNTLET_TEST_SET_KEY` is set but empty")
    );
}

#[test]
fn good_and_bad_files_in_one_call() {
    let dir = repo_like_dir();
    let good = dir.path().join("scenarios/quickstart.toml");
    std::fs::write(&good, QUICKSTART).unwrap();
    let bad = dir.path().join("scenarios/bad.toml");
    std::fs::write(&bad, "name = \"bad\"\nsede = 1\n").unwrap();
    let (g, b) = (good.to_str().unwrap(), bad.to_str().unwrap());
    let run = gauntlet(&["validate", g, b], &[]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stdout
            .contains(&format!("ok: {g} (3 classes, 3 upstreams, 20s, warmup 2s)")),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("{b}:2:1: unknown field `sede`"))
    );
    assert!(run.stderr.contains("1 of 2 files are invalid"));

    let run = gauntlet(&["validate", "/definitely/not/here.toml"], &[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("cannot read file"), "{}", run.stderr);
}

#[test]
fn schema_is_json_and_describes_the_format() {
    let run = gauntlet(&["schema"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let props = schema["properties"].as_object().unwrap();
    for key in [
        "name",
        "seed",
        "target",
        "upstreams",
        "gateway",
        "load",
        "requests",
        "faults",
        "sla",
        "probe",
        "observe",
    ] {
        assert!(props.contains_key(key), "schema lacks `{key}`");
    }
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    let text = run.stdout;
    assert!(
        !text.contains("\"null\""),
        "TOML has no null; the schema must not offer it"
    );
    assert_eq!(props["load"]["$ref"], "#/$defs/RawLoad");
    for word in [
        "max_in_flight",
        "p99_latency",
        "slow_stream",
        "concurrency",
        "burn_rate",
        "max_cost_per_day",
        "metrics_url",
    ] {
        assert!(text.contains(word), "schema lacks `{word}`");
    }
}

/// A one-model profile (`m`) answering at once; `extra` is appended (tables only).
fn fast_profile(extra: &str) -> String {
    format!(
        "name = \"p\"\n[[models]]\nname = \"m\"\ninput_price_per_m = 1.0\n\
         output_price_per_m = 2.0\n[latency]\nttft = \"1ms\"\ntokens_per_second = 100000\n{extra}"
    )
}

/// The run after `validate` uses what was validated: the scenario file is parsed once and
/// each profile is read once, so deleting or rewriting the files in between changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_scenario_runs_with_the_profiles_it_validated() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&a, fast_profile("")).unwrap();
    std::fs::write(&b, fast_profile("")).unwrap();
    let path = dir.path().join("story.toml");
    std::fs::write(
        &path,
        r#"
        [[upstreams]]
        name = "a"
        profile = "a.toml"
        [[upstreams]]
        name = "b"
        profile = "b.toml"
        [gateway]
        routes = [
          { model = "m", targets = ["a"] },
          { model = "n", targets = ["b"], upstream_model = "m" },
        ]
        [load]
        duration = "2s"
        rate = 20
        arrival = "constant"
        [[requests]]
        name = "to-a"
        model = "m"
        prompt = "hi"
        primary = "a"
        [[requests]]
        name = "to-b"
        model = "n"
        prompt = "hi"
        primary = "b"
        "#,
    )
    .unwrap();
    let scenario = load(&path).unwrap();

    // Between validation and the run: the scenario file and a's profile are gone, and b's
    // profile now fails every request. A second read would fail the run or every `to-b`.
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&a).unwrap();
    std::fs::write(
        &b,
        fast_profile("[[faults]]\nkind = \"error\"\nstatus = 500\n"),
    )
    .unwrap();
    assert_eq!(
        Profile::load(&b).unwrap().faults.len(),
        1,
        "the new b is valid"
    );

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let options = gauntlet::engine::RunOptions {
        quiet: true,
        ..Default::default()
    };
    let run = gauntlet::engine::run_scenario(&scenario, &options, stop)
        .await
        .unwrap();
    drop(stop_tx);
    let s = &run.summary;
    assert!(s.overall.requests >= 30, "{:?}", s.overall);
    assert_eq!(
        s.overall.successes, s.overall.requests,
        "{:?}",
        s.overall.errors
    );
    for (class, upstream) in [("to-a", "a"), ("to-b", "b")] {
        let c = s.classes.iter().find(|c| c.name == class).unwrap();
        assert!(c.stats.requests > 0, "{class}");
        assert_eq!(
            c.stats.served_by.get(upstream).copied(),
            Some(c.stats.requests),
            "{class}: {:?}",
            c.stats.served_by
        );
    }
}

/// `"env:NAME"` works the same in a request's `api_key` and the embedded gateway's keys: the
/// gateway admits the key it read from the environment and refuses any other.
#[test]
fn env_keys_reach_the_embedded_gateway_and_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), fast_profile("")).unwrap();
    let path = dir.path().join("keys.toml");
    std::fs::write(
        &path,
        r#"
        [[upstreams]]
        name = "up"
        profile = "p.toml"
        [gateway]
        keys = [{ key = "env:GAUNTLET_TEST_GATEWAY_KEY", tier = "pro" }]
        routes = [{ model = "m", targets = ["up"] }]
        [load]
        duration = "2s"
        rate = 20
        arrival = "constant"
        [[requests]]
        name = "from-env"
        model = "m"
        prompt = "hi"
        api_key = "env:GAUNTLET_TEST_GATEWAY_KEY"
        [[requests]]
        name = "wrong-key"
        model = "m"
        prompt = "hi"
        api_key = "gk-not-the-key"
        "#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let env = [("GAUNTLET_TEST_GATEWAY_KEY", "gk-from-the-environment")];
    let p = path.to_str().unwrap();
    let run = gauntlet(
        &["run", p, "--out", out.to_str().unwrap(), "--force", "-q"],
        &env,
    );
    let text = std::fs::read_to_string(out.join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary.json ({e}): {}", run.stderr));
    assert!(
        !text.contains("gk-from-the-environment"),
        "a key leaked into the summary"
    );
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let class = |name: &str| {
        let c = summary["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        (
            c["requests"].as_u64().unwrap(),
            c["successes"].as_u64().unwrap(),
        )
    };
    let (sent, ok) = class("from-env");
    assert!(
        sent > 0 && ok == sent,
        "from-env: {ok} of {sent} answered\n{}",
        run.stderr
    );
    let (sent, ok) = class("wrong-key");
    assert!(sent > 0 && ok == 0, "wrong-key: {ok} of {sent} answered");

    // Without the variable the scenario does not validate, naming it at its place.
    let run = gauntlet(&["validate", p], &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{p}:6:25: `gateway.keys[0].key`: environment variable `GAUNTLET_TEST_GATEWAY_KEY` is not set"
        )),
        "{}",
        run.stderr
    );
}
