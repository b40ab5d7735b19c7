//! A team copies examples/ci/ into its repository and it works: each file passes yamllint,
//! has the structure its CI system requires, and the gauntlet commands it runs succeed here,
//! against the paths its other steps publish, so the examples cannot rot.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const YAMLLINT: &str = "yamllint";
/// yamllint's defaults, with lines as long as the rest of the project's files.
const YAMLLINT_CONFIG: &str = "{extends: default, rules: {line-length: {max: 100}}}";
/// How the examples invoke the binary they built.
const BINARY: &str = "./target/release/gauntlet";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name)
}

/// The YAML file as JSON, read by PyYAML (what yamllint itself parses with).
fn parse(path: &Path) -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn lint(path: &Path) {
    let out = Command::new(YAMLLINT)
        .args(["-s", "-d", YAMLLINT_CONFIG])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{YAMLLINT} cannot run ({e}): install the Debian `yamllint` package \
                 (apt-get install -y yamllint; .ci/run does)"
            )
        });
    assert!(
        out.status.success(),
        "{} fails yamllint:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The gauntlet command lines among `lines`, as argument lists after the binary.
fn gauntlet_commands(lines: &[String]) -> Vec<Vec<String>> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix(BINARY))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Runs `gauntlet ARGS` in `dir`, the plan shortened; returns its exit code.
fn run_in(dir: &Path, args: &[String]) -> i32 {
    let mut args: Vec<String> = args
        .iter()
        .map(|a| {
            if a.ends_with(".toml") {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(a)
                    .display()
                    .to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    if args.first().is_some_and(|a| a == "run") {
        args.extend(["--duration", "3s", "--rate", "40"].map(str::to_string));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .args(&args)
        .current_dir(dir)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "gauntlet {args:?} exited {code}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

/// Runs the example's commands in order in a fresh folder: a `run`, then each `compare`, whose
/// base (the main branch's run, fetched by the CI system) is this run copied where the example
/// puts it. Comparing a run with itself must find no regression. Returns the folder.
fn run_commands(commands: &[Vec<String>]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let runs: Vec<&Vec<String>> = commands.iter().filter(|c| c[0] == "run").collect();
    let compares: Vec<&Vec<String>> = commands.iter().filter(|c| c[0] == "compare").collect();
    assert!(!runs.is_empty(), "no `gauntlet run` in {commands:?}");
    assert!(
        !compares.is_empty(),
        "no `gauntlet compare` in {commands:?}"
    );
    let mut out_dir = None;
    for r in &runs {
        run_in(tmp.path(), r);
        let at = r
            .iter()
            .position(|a| a == "--out")
            .expect("the run names its --out");
        out_dir = Some(tmp.path().join(&r[at + 1]));
    }
    let out_dir = out_dir.unwrap();
    for c in &compares {
        let folders: Vec<&String> = c[1..].iter().take_while(|a| !a.starts_with("--")).collect();
        assert_eq!(folders.len(), 2, "compare BASE NEW: {c:?}");
        let base = tmp.path().join(folders[0]);
        assert!(
            !base.exists(),
            "the base run comes from the CI system: {c:?}"
        );
        copy_dir(&out_dir, &base);
        assert_eq!(
            tmp.path().join(folders[1]),
            out_dir,
            "compare reads this job's run folder"
        );
        assert_eq!(
            run_in(tmp.path(), c),
            0,
            "a run compared with itself: {c:?}"
        );
    }
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn github_actions_example_lints_has_its_structure_and_its_commands_run() {
    let path = example("github-actions.yml");
    lint(&path);
    let doc = parse(&path);
    assert!(doc.get("on").is_some(), "a workflow needs `on`");
    let jobs = doc["jobs"].as_object().expect("`jobs` is a map");
    assert!(jobs.contains_key("sla") && jobs.contains_key("regression"));
    let mut lines = Vec::new();
    for (name, job) in jobs {
        assert!(job["runs-on"].is_string(), "job {name} lacks runs-on");
        let steps = job["steps"].as_array().expect("steps");
        assert!(!steps.is_empty(), "job {name} has no steps");
        for s in steps {
            assert!(
                s.get("uses").is_some() || s.get("run").is_some(),
                "job {name}: a step needs `uses` or `run`: {s}"
            );
            if let Some(run) = s.get("run") {
                lines.extend(strings(run));
            }
        }
    }
    assert_eq!(jobs["regression"]["needs"], "sla");
    let steps = |job: &str| jobs[job]["steps"].as_array().unwrap().clone();
    let with = |job: &str, action: &str| -> Value {
        steps(job)
            .into_iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
            .unwrap_or_else(|| panic!("job {job} does not use {action}"))["with"]
            .clone()
    };
    let junit = with("sla", "mikepenz/action-junit-report")["report_paths"]
        .as_str()
        .unwrap()
        .to_string();
    let uploaded = with("sla", "actions/upload-artifact")["path"]
        .as_str()
        .unwrap()
        .to_string();
    let downloaded = with("regression", "actions/download-artifact")["path"]
        .as_str()
        .unwrap()
        .to_string();

    let dir = run_commands(&gauntlet_commands(&lines));
    assert!(dir.path().join(&junit).is_file(), "{junit} was published");
    assert!(dir.path().join(&uploaded).join("summary.md").is_file());
    assert!(dir.path().join(&uploaded).join("index.html").is_file());
    assert_eq!(
        downloaded.trim_end_matches('/'),
        uploaded.trim_end_matches('/')
    );
}

#[test]
fn gitlab_ci_example_lints_has_its_structure_and_its_commands_run() {
    let path = example("gitlab-ci.yml");
    lint(&path);
    let doc = parse(&path);
    let doc = doc.as_object().expect("a map");
    let stages = strings(&doc["stages"]);
    assert!(!stages.is_empty(), "`stages` lists the pipeline's stages");
    const KEYWORDS: [&str; 9] = [
        "stages",
        "default",
        "variables",
        "include",
        "workflow",
        "image",
        "services",
        "cache",
        "before_script",
    ];
    let jobs: Vec<(&String, &Value)> = doc
        .iter()
        .filter(|(k, _)| !KEYWORDS.contains(&k.as_str()) && !k.starts_with('.'))
        .collect();
    assert!(jobs.len() >= 3, "build, sla and regression jobs");
    let mut lines = Vec::new();
    for (name, job) in &jobs {
        let stage = job["stage"].as_str().unwrap_or("test");
        assert!(
            stages.iter().any(|s| s == stage),
            "job {name}: stage {stage}"
        );
        let script = strings(&job["script"]);
        assert!(!script.is_empty(), "job {name} needs a script");
        for need in strings(&job["needs"]) {
            assert!(
                doc.contains_key(&need),
                "job {name} needs unknown job {need}"
            );
        }
        lines.extend(script);
    }
    let sla = &doc["sla"];
    let junit = sla["artifacts"]["reports"]["junit"]
        .as_str()
        .expect("junit report");
    let kept = strings(&sla["artifacts"]["paths"]);
    assert_eq!(
        sla["artifacts"]["when"], "always",
        "kept when the SLA fails too"
    );
    let shown = strings(&sla["after_script"]).join("\n");

    let dir = run_commands(&gauntlet_commands(&lines));
    assert!(dir.path().join(junit).is_file(), "{junit} was published");
    for k in &kept {
        assert!(dir.path().join(k).is_dir(), "artifact {k} exists");
    }
    let summary = shown
        .split_whitespace()
        .find(|w| w.ends_with("summary.md"))
        .expect("the job log shows summary.md");
    assert!(dir.path().join(summary).is_file(), "{summary}");
}
