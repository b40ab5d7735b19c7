//! A platform engineer runs a scenario from the command line and gets every file, including
//! the raw per-request log, with numbers that agree with each other.

use std::path::{Path, PathBuf};
use std::process::Command;

use gauntlet::metrics::Summary;

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
    let summary: Summary =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let mut csv = csv::Reader::from_path(dir.join("requests.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let warmup = summary.warmup_s;
    // Rows cover warmup too; those after it are exactly what the summary counted as sent.
    let measured = rows
        .iter()
        .filter(|r| r[0].parse::<f64>().unwrap() >= warmup)
        .count() as u64;
    assert_eq!(measured, summary.overall.requests - summary.overall.dropped);
    let ok = rows.iter().filter(|r| &r[3] == "ok").count() as u64;
    assert!(ok >= summary.overall.successes);
    let classes: Vec<&str> = summary.classes.iter().map(|c| c.name.as_str()).collect();
    assert!(rows.iter().all(|r| classes.contains(&&r[1])));
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
