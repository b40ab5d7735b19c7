//! Reports: every file a run writes exists and parses with real parsers, the charts carry the
//! series they promise, writes are atomic, and `report` / `compare` work through the real binary.

mod browser;
mod fixture;
mod served;

use std::path::{Path, PathBuf};
use std::process::Command;

use gauntlet::metrics::{CheckStatus, Summary, TokenSource};
use gauntlet::report;
use gauntlet::rundir::{RequestRow, RunDir, RunFile};
use quick_xml::events::Event;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/summary-quickstart.json"
);

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gauntlet"));
    cmd.env_remove("GITHUB_STEP_SUMMARY");
    cmd
}

fn write_run(dir: &Path, summary: &Summary) -> Vec<PathBuf> {
    report::write_all(summary, dir).unwrap()
}

/// plotters writes each label on its own line inside `<text>`.
fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">\n{text}\n<")) || svg.contains(&format!(">{text}<"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The inline SVG whose accessible name starts with `label`.
fn svg_named<'a>(html: &'a str, label: &str) -> &'a str {
    let at = html
        .find(&format!("aria-label=\"{label}"))
        .unwrap_or_else(|| panic!("no chart named {label:?}"));
    let start = html[..at].rfind("<svg").unwrap();
    let end = at + html[at..].find("</svg>").unwrap() + "</svg>".len();
    &html[start..end]
}

#[test]
fn fixture_file_matches_its_generator() {
    let built = fixture::quickstart();
    if std::env::var_os("GAUNTLET_BLESS").is_some() {
        std::fs::write(
            FIXTURE,
            serde_json::to_string_pretty(&built).unwrap() + "\n",
        )
        .unwrap();
    }
    let (stored, _) = RunDir::load(Path::new(FIXTURE)).unwrap();
    assert!(
        stored == built,
        "rerun with GAUNTLET_BLESS=1 to rewrite {FIXTURE}"
    );
    assert_eq!(built.intervals.len(), fixture::INTERVALS);
    let statuses: Vec<CheckStatus> = built.sla.checks.iter().map(|c| c.status).collect();
    for st in [
        CheckStatus::Pass,
        CheckStatus::Fail,
        CheckStatus::Inconclusive,
    ] {
        assert!(statuses.contains(&st), "the fixture exercises {st:?}");
    }
}

#[derive(Default, Debug)]
struct JunitCounts {
    testcases: usize,
    failures: usize,
    skipped: usize,
    failure_messages: Vec<String>,
}

fn junit_counts(xml: &str) -> JunitCounts {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut counts = JunitCounts::default();
    loop {
        match reader.read_event().expect("junit.xml is well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => counts.testcases += 1,
                b"failure" => {
                    counts.failures += 1;
                    for a in e.attributes() {
                        let a = a.unwrap();
                        if a.key.as_ref() == b"message" {
                            counts
                                .failure_messages
                                .push(String::from_utf8_lossy(&a.value).into_owned());
                        }
                    }
                }
                b"skipped" => counts.skipped += 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    counts
}

#[test]
fn every_file_is_written_and_parses() {
    let dir = tempfile::tempdir().unwrap();
    let summary = fixture::quickstart();
    let written = write_run(dir.path(), &summary);
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "summary.json",
        "index.html",
        "summary.md",
        "junit.xml",
        "timeseries.csv",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
        assert!(dir.path().join(expected).is_file());
    }

    // summary.json round-trips to the same Summary.
    let (back, from) = RunDir::load(dir.path()).unwrap();
    assert!(back == summary, "summary.json round-trips");
    assert_eq!(from.path(), dir.path());

    // junit.xml: one case per check; failures carry measured vs target; inconclusive skipped.
    let counts = junit_counts(&read(&dir.path().join("junit.xml")));
    let n = |st| summary.sla.checks.iter().filter(|c| c.status == st).count();
    assert_eq!(counts.testcases, summary.sla.checks.len());
    assert_eq!(counts.failures, n(CheckStatus::Fail));
    assert_eq!(counts.skipped, n(CheckStatus::Inconclusive));
    assert!(
        counts
            .failure_messages
            .iter()
            .all(|m| m.contains("measured") && m.contains("target")),
        "{:?}",
        counts.failure_messages
    );

    // timeseries.csv: an overall row and one per class in every interval.
    let mut csv = csv::Reader::from_path(dir.path().join("timeseries.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    assert_eq!(&headers[0], "t_s");
    assert_eq!(&headers[1], "class");
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        rows.len(),
        fixture::INTERVALS * (1 + fixture::CLASSES.len())
    );
    let overall_requests: u64 = rows
        .iter()
        .filter(|r| &r[1] == "overall")
        .map(|r| r[2].parse::<u64>().unwrap())
        .sum();
    assert_eq!(overall_requests, summary.overall.requests);

    // summary.md: the verdict and the SLA table.
    let md = read(&dir.path().join("summary.md"));
    assert!(md.contains("FAIL"), "{md}");
    assert!(md.contains("| `p99_latency` | overall |"), "{md}");
    assert!(md.contains("No faults") == summary.faults.is_empty());
}

#[test]
fn charts_hold_the_expected_series() {
    let dir = tempfile::tempdir().unwrap();
    let summary = fixture::quickstart();
    write_run(dir.path(), &summary);
    let html = read(&dir.path().join("index.html"));
    assert!(!html.contains("<script"), "the report needs no JavaScript");
    let style = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
    assert!(
        !style.contains("&quot;") && !style.contains("&#x"),
        "the stylesheet is inlined unescaped"
    );
    assert!(style.contains("prefers-color-scheme: dark") && style.contains("@media print"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no external resources"
    );

    let latency = svg_named(&html, "Latency percentiles over time");
    // p50, p90, p99 and the SLA line, plus their legend entries.
    assert!(latency.matches("<polyline").count() >= 4, "{latency}");
    assert!(
        latency.contains("stroke-dasharray"),
        "the SLA line is dashed"
    );
    assert!(
        has_text(latency, "deepseek outage"),
        "the fault window is labelled"
    );
    assert!(has_text(latency, "SLA p99 ≤ 1.00 s"));
    for p in ["p50", "p90", "p99"] {
        assert!(has_text(latency, p), "legend has {p}");
    }
    // The fault window is a shaded rect spanning 8..14 s: wider than a tenth of the plot.
    assert!(latency.contains("fill=\"#DC503C\""), "fault window shaded");
    assert!(
        latency.contains("currentColor"),
        "ink follows the page's text color"
    );
    assert!(!latency.contains("\"#000000\""));

    let served = svg_named(&html, "Which upstream served the traffic");
    for up in ["deepseek", "qwen", "premium"] {
        assert!(has_text(served, up), "legend names {up}");
    }
    assert!(served.matches("<polygon").count() >= 3);

    let spectrum = svg_named(&html, "Latency by percentile");
    for class in fixture::CLASSES {
        assert!(has_text(spectrum, class));
    }
    for label in ["90%", "99%", "99.9%"] {
        assert!(has_text(spectrum, label), "nines axis labelled {label}");
    }

    let throughput = svg_named(&html, "Throughput and errors");
    for kind in ["success", "status_5xx", "connect"] {
        assert!(has_text(throughput, kind), "stack has {kind}");
    }
    svg_named(&html, "Time to first token by percentile");
    svg_named(&html, "Inter-token gap by percentile");

    for section in [
        "SLA checks",
        "Faults and failover",
        "Cost",
        "Load generator health",
    ] {
        assert!(html.contains(section), "{section}");
    }
    assert!(
        html.contains("$") && html.contains("tokens a month"),
        "monthly projection"
    );
}

#[test]
fn empty_sections_say_so_instead_of_drawing() {
    let dir = tempfile::tempdir().unwrap();
    let mut summary = fixture::quickstart();
    summary.faults.clear();
    summary.cost = None;
    summary.sla = fixture::sla(Vec::new());
    for c in &mut summary.classes {
        c.stream = false;
        c.stats.ttft_ms = None;
    }
    write_run(dir.path(), &summary);
    let html = read(&dir.path().join("index.html"));
    assert!(html.contains("No faults were injected"));
    assert!(html.contains("no cost was computed"));
    assert!(html.contains("nothing was checked"));
    assert!(html.contains("No class streamed"));
    assert!(!html.contains("aria-label=\"Time to first token"));
    assert!(!has_text(&html, "deepseek outage"));
    // No checks: junit.xml has the run itself as its one case.
    let counts = junit_counts(&read(&dir.path().join("junit.xml")));
    assert_eq!(
        (counts.testcases, counts.failures, counts.skipped),
        (1, 0, 0)
    );
}

fn temp_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.contains(".tmp"))
        .collect()
}

#[test]
fn writes_are_atomic_and_leave_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &fixture::quickstart());
    // Rewriting over existing files replaces them whole.
    write_run(dir.path(), &fixture::quickstart());
    assert_eq!(temp_leftovers(dir.path()), Vec::<String>::new());

    // A raw log abandoned mid-run leaves neither a half file nor its temporary.
    {
        let mut raw = RunDir::open(dir.path()).unwrap().request_writer().unwrap();
        raw.write(&sample_request(0)).unwrap();
        assert!(
            !dir.path().join("requests.csv").exists(),
            "not in place before finish"
        );
        assert_eq!(
            temp_leftovers(dir.path()).len(),
            1,
            "streams into a temporary file"
        );
    }
    assert!(!dir.path().join("requests.csv").exists());
    assert_eq!(temp_leftovers(dir.path()), Vec::<String>::new());
}

fn sample_request(i: u64) -> RequestRow<'static> {
    let ok = !i.is_multiple_of(10);
    RequestRow {
        intended_s: i as f64 * 0.005,
        class: if i.is_multiple_of(5) {
            "premium"
        } else {
            "everyday"
        },
        status: Some(if ok { 200 } else { 503 }),
        outcome: if ok { "ok" } else { "status_5xx" },
        latency_ms: 200.0 + i as f64,
        ttft_ms: ok.then_some(80.0),
        served_by: ok.then_some("deepseek"),
        prompt_tokens: 12,
        completion_tokens: if ok { 64 } else { 0 },
        ttfot_ms: ok.then_some(95.0),
        tpot_ms: ok.then_some(4.0),
        turn: None,
        cached_tokens: 0,
        reasoning_tokens: 0,
        prompt_tokens_from: TokenSource::Tokenizer,
    }
}

#[test]
fn raw_request_log_streams_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RunDir::open(dir.path()).unwrap().request_writer().unwrap();
    for i in 0..5000 {
        raw.write(&sample_request(i)).unwrap();
    }
    assert_eq!(raw.rows(), 5000);
    let path = raw.finish().unwrap();
    assert_eq!(path, dir.path().join("requests.csv"));
    let mut csv = csv::Reader::from_path(&path).unwrap();
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "intended_s",
            "class",
            "status",
            "outcome",
            "latency_ms",
            "ttft_ms",
            "served_by",
            "prompt_tokens",
            "completion_tokens",
            "ttfot_ms",
            "tpot_ms",
            "turn",
            "cached_tokens",
            "reasoning_tokens",
            "prompt_tokens_from"
        ]
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 5000);
    assert_eq!(
        (&rows[1][9], &rows[1][10], &rows[1][14]),
        ("95.000", "4.000", "tokenizer")
    );
    assert_eq!(
        &rows[10][9], "",
        "a failed request has no first output token"
    );
    assert_eq!(rows.iter().filter(|r| &r[3] == "status_5xx").count(), 500);
    assert_eq!(&rows[10][2], "503");
    assert_eq!(&rows[10][6], "", "a failed request was served by no one");
    assert_eq!(temp_leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn hlog_reader_returns_the_recorded_histograms() {
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::V2DeflateSerializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latency.hlog");
    let mut recorded = Vec::new();
    let mut bytes = Vec::new();
    {
        let mut serializer = V2DeflateSerializer::new();
        let mut log = IntervalLogWriterBuilder::new()
            .with_base_time(std::time::SystemTime::UNIX_EPOCH)
            .begin_log_with(&mut bytes, &mut serializer)
            .unwrap();
        for second in 0..3u64 {
            for (n, class) in fixture::CLASSES.iter().enumerate() {
                let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
                for v in 0..(100 + n as u64 * 10) {
                    h.record(200_000 + v * 1000 + second * 7).unwrap();
                }
                log.write_histogram(
                    &h,
                    std::time::Duration::from_secs(second),
                    std::time::Duration::from_secs(1),
                    Tag::new(class),
                )
                .unwrap();
                recorded.push((class.to_string(), h));
            }
        }
    }
    std::fs::write(&path, bytes).unwrap();
    let run = RunDir::open(dir.path()).unwrap();
    assert_eq!(run.file(RunFile::LatencyHlog), path);
    let entries = run.read_hlog().unwrap();
    assert_eq!(entries.len(), recorded.len());
    for (entry, (class, h)) in entries.iter().zip(&recorded) {
        assert_eq!(entry.tag.as_deref(), Some(class.as_str()));
        assert_eq!(entry.histogram.len(), h.len());
        assert_eq!(
            entry.histogram.value_at_quantile(0.99),
            h.value_at_quantile(0.99)
        );
        assert_eq!(&entry.histogram, h);
    }
    std::fs::write(&path, "not a log\n").unwrap();
    let err = run.read_hlog().unwrap_err();
    assert!(err.to_string().contains("latency.hlog"), "{err}");
}

#[test]
fn report_command_rerenders_a_run_folder() {
    let run = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, run.path().join("summary.json")).unwrap();
    let step_summary = run.path().join("step-summary.md");
    let out = bin()
        .arg("report")
        .arg(run.path())
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["index.html", "summary.md", "junit.xml", "timeseries.csv"] {
        assert!(run.path().join(f).is_file(), "{f}");
    }
    assert!(
        std::fs::read(run.path().join("summary.json")).unwrap() == std::fs::read(FIXTURE).unwrap(),
        "re-rendering in place leaves the run's summary as it was"
    );
    assert!(
        read(&step_summary).contains("FAIL"),
        "appended to $GITHUB_STEP_SUMMARY"
    );

    // From the summary file itself, into another folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("report")
        .arg(run.path().join("summary.json"))
        .arg("--out")
        .arg(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(elsewhere.path().join("index.html").is_file());
    let (copied, _) = RunDir::load(elsewhere.path()).unwrap();
    assert!(
        copied == fixture::quickstart(),
        "the summary travels with its reports"
    );

    // A folder without a summary is the user's mistake: exit 2 naming the file.
    let empty = tempfile::tempdir().unwrap();
    let out = bin().arg("report").arg(empty.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("summary.json"));
}

#[test]
fn a_failed_report_write_names_the_file_and_exits_3() {
    let run = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, run.path().join("summary.json")).unwrap();
    // A folder stands where summary.md goes: no rename can replace it, even as root.
    let blocked = run.path().join("summary.md");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), "x").unwrap();
    let out = bin().arg("report").arg(run.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&blocked.display().to_string()),
        "names the file it could not write: {stderr}"
    );
    assert_eq!(temp_leftovers(run.path()), Vec::<String>::new());
}

fn scaled_latency(mut s: Summary, factor: f64) -> Summary {
    let scale = |p: &mut gauntlet::metrics::Percentiles| {
        p.p50 *= factor;
        p.p90 *= factor;
        p.p99 *= factor;
        p.p999 *= factor;
        p.max *= factor;
    };
    scale(&mut s.overall.latency_ms);
    for c in &mut s.classes {
        scale(&mut c.stats.latency_ms);
    }
    for iv in &mut s.intervals {
        iv.overall.latency_ms.as_mut().map(scale);
    }
    s
}

fn save(dir: &Path, summary: &Summary) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string(summary).unwrap()).unwrap();
    path
}

#[test]
fn compare_gates_on_planted_regressions() {
    let root = tempfile::tempdir().unwrap();
    let base = save(&root.path().join("base"), &fixture::quickstart());
    let same = save(
        &root.path().join("same"),
        &scaled_latency(fixture::quickstart(), 1.05),
    );
    let slow = save(
        &root.path().join("slow"),
        &scaled_latency(fixture::quickstart(), 1.5),
    );

    let out = bin()
        .args(["compare"])
        .arg(&base)
        .arg(&same)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no metric regressed"), "{stdout}");
    assert!(
        root.path().join("same/compare.md").is_file(),
        "written beside NEW by default"
    );
    assert!(root.path().join("same/compare.html").is_file());

    let report_dir = root.path().join("cmp");
    let out = bin()
        .args(["compare", "--max-regression", "10%", "--out"])
        .arg(&report_dir)
        .arg(root.path().join("base"))
        .arg(&slow)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("regressed"), "{stdout}");
    assert!(stdout.contains("p99 latency"), "{stdout}");
    let md = read(&report_dir.join("compare.md"));
    assert!(md.contains("REGRESSED") && md.contains("+50.0%"), "{md}");
    let html = read(&report_dir.join("compare.html"));
    assert!(html.matches("<svg").count() >= 6, "charts side by side");
    // Both runs' latency charts share one y scale, so the slower run looks slower.
    let charts: Vec<&str> = html
        .match_indices("aria-label=\"Latency percentiles over time\"")
        .map(|(at, _)| &html[at..at + html[at..].find("</svg>").unwrap()])
        .collect();
    assert_eq!(charts.len(), 2);
    let y_labels = |svg: &str| -> Vec<String> {
        svg.split("<text")
            .filter(|t| t.contains("text-anchor=\"end\""))
            .filter_map(|t| t.split('>').nth(1))
            .map(|t| t.trim().trim_end_matches("</text").trim().to_string())
            .collect()
    };
    assert!(!y_labels(charts[0]).is_empty());
    assert_eq!(y_labels(charts[0]), y_labels(charts[1]));

    // A looser bound lets the same change through.
    let out = bin()
        .args(["compare", "--max-regression", "60%", "--out"])
        .arg(&report_dir)
        .arg(&base)
        .arg(&slow)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));

    // Availability falling is a regression too.
    let mut flaky = fixture::quickstart();
    flaky.overall.availability = 0.95;
    let flaky = save(&root.path().join("flaky"), &flaky);
    let out = bin()
        .arg("compare")
        .arg(&base)
        .arg(&flaky)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn newer_schema_versions_are_refused_clearly() {
    let root = tempfile::tempdir().unwrap();
    let base = save(&root.path().join("base"), &fixture::quickstart());
    let mut json: serde_json::Value = serde_json::from_str(&read(&base)).unwrap();
    json["schema_version"] = serde_json::json!(gauntlet::metrics::SCHEMA_VERSION + 1);
    json["overall"] = serde_json::json!("reshaped in the future");
    let future = root.path().join("future.json");
    std::fs::write(&future, json.to_string()).unwrap();

    for args in [
        vec!["compare".as_ref(), base.as_os_str(), future.as_os_str()],
        vec!["report".as_ref(), future.as_os_str()],
    ] {
        let out = bin().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("schema_version") && stderr.contains("newer"),
            "{stderr}"
        );
        assert!(stderr.contains("future.json"), "{stderr}");
    }
    let out = bin()
        .args(["compare", "--max-regression", "lots"])
        .arg(&base)
        .arg(&base)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_run_that_measured_nothing_still_renders() {
    let p = r#"{"samples":0,"p50":0,"p90":0,"p99":0,"p999":0,"max":0,"mean":0}"#;
    let json = format!(
        r#"{{"schema_version":1,"gauntlet_version":"0.1.0","scenario":"empty","seed":1,
        "target":"http://127.0.0.1:9","started_at":"2025-06-01T12:00:00Z","duration_s":0,
        "warmup_s":0,"interval_s":1,"interrupted":true,
        "overall":{{"requests":0,"successes":0,"dropped":0,"availability":1,"rps":0,"latency_ms":{p}}},
        "classes":[],"intervals":[],"generator":{{"schedule_lag_ms":{p},"dropped":0}},
        "sla":{{"passed":false,"verdict":"inconclusive","checks":[]}},
        "trust":{{"trustworthy":false,"reasons":[]}}}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("summary.json"), json).unwrap();
    let (summary, _) = RunDir::load(dir.path()).unwrap();
    write_run(dir.path(), &summary);
    let html = read(&dir.path().join("index.html"));
    assert!(
        !html.contains("<svg"),
        "nothing to draw, so no empty charts"
    );
    assert!(html.contains("No request succeeded"));
    assert!(html.contains("INCONCLUSIVE"));
    assert!(html.contains("may not be trustworthy"));
    assert!(html.contains("interrupted"));
    let counts = junit_counts(&read(&dir.path().join("junit.xml")));
    assert_eq!((counts.testcases, counts.failures), (1, 0));
    assert!(
        read(&dir.path().join("junit.xml")).contains("<error"),
        "an interrupted run is an error case"
    );
    let csv = read(&dir.path().join("timeseries.csv"));
    assert_eq!(csv.lines().count(), 1, "just the header");
}

#[test]
fn prompt_length_turn_and_output_token_views_show_only_with_their_data() {
    use gauntlet::metrics::{Percentiles, PromptBin, SlaCheck, SlaKey, TurnStats};
    let html_of = |s: &Summary| {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), s);
        read(&dir.path().join("index.html"))
    };
    let plain = fixture::quickstart();
    let html = html_of(&plain);
    for label in [
        "Prompt length distribution",
        "Time to first token against prompt length",
        "Time to first output token",
        "Time per output token",
    ] {
        assert!(
            !html.contains(&format!("aria-label=\"{label}")),
            "{label} drawn without data"
        );
    }
    assert!(!html.contains("Conversation turns"));

    let pct = |samples: u64, p50: f64, p99: f64| Percentiles {
        samples,
        p50,
        p90: (p50 + p99) / 2.0,
        p99,
        p999: p99 * 1.2,
        max: p99 * 1.5,
        mean: p50,
    };
    let mut rich = plain.clone();
    let everyday = &mut rich.classes[0];
    assert_eq!(everyday.name, "everyday");
    everyday.stats.ttfot_ms = Some(pct(1_500, 180.0, 412.0));
    everyday.stats.tpot_ms = Some(pct(1_500, 9.0, 23.0));
    everyday.prompt_lengths = [(64, 128, 700, 90.0), (1_024, 2_048, 500, 240.0)]
        .iter()
        .map(|&(lo, hi, n, ttft)| PromptBin {
            min_tokens: lo,
            max_tokens: Some(hi),
            requests: n,
            ttft_ms: Some(pct(n, ttft, ttft * 2.5)),
        })
        .collect();
    everyday.turns = (1..=3)
        .map(|turn| TurnStats {
            turn,
            requests: 400,
            successes: 398,
            latency_ms: pct(398, 100.0 * f64::from(turn), 250.0 * f64::from(turn)),
            ttft_ms: Some(pct(398, 30.0, 77.0 * f64::from(turn))),
        })
        .collect();
    rich.sla.checks.push(SlaCheck {
        name: SlaKey::TtfotP99,
        scope: "class:everyday".into(),
        target: 500.0,
        measured: Some(412.0),
        unit: "ms".into(),
        samples: 1_500,
        status: CheckStatus::Pass,
        note: None,
        misses: None,
    });
    let html = html_of(&rich);
    let lengths = svg_named(&html, "Prompt length distribution");
    assert!(lengths.contains("<rect"), "bars drawn");
    assert!(has_text(lengths, "everyday"), "legend names the class");
    let by_length = svg_named(&html, "Time to first token against prompt length");
    assert!(has_text(by_length, "everyday p50") && has_text(by_length, "everyday p99"));
    let ttfot = svg_named(&html, "Time to first output token");
    assert!(
        ttfot.contains("stroke-dasharray"),
        "the ttfot_p99 bound is a dashed line"
    );
    let tpot = svg_named(&html, "Time per output token");
    assert!(tpot.contains("<polyline"), "the class's line is drawn");
    assert!(html.contains("Conversation turns"));
    assert!(
        html.contains(">412.0 ms<") || html.contains("412"),
        "TTFOT p99 in the table"
    );

    let md = report::summary_markdown(&rich).unwrap();
    assert!(md.contains("| TTFOT p99 | TPOT p99 |"), "{md}");
    assert!(md.contains("### Conversation turns"));
    assert!(
        !report::summary_markdown(&plain)
            .unwrap()
            .contains("Conversation turns")
    );
    let term = report::terminal_summary(&rich);
    assert!(
        term.contains("ttfot p99") && term.contains("everyday by turn: #1"),
        "{term}"
    );
}

/// A run whose classes have gateway tiers gets a tier table in every report (terminal,
/// Markdown, HTML): requests, availability, p99, TTFT p99 and the shed count; a run without
/// tiers (every summary written before them) has none.
#[test]
fn tiers_get_their_own_table_in_every_report() {
    use gauntlet::metrics::{Stats, TierStats};
    let plain = fixture::quickstart();
    let mut s = plain.clone();
    let mut stats = Stats {
        requests: 12_345,
        successes: 11_000,
        availability: 11_000.0 / 12_345.0,
        shed: 1_234,
        ..s.overall.clone()
    };
    stats.latency_ms.p99 = 321.0;
    s.tiers = vec![TierStats {
        name: "standard".into(),
        classes: vec!["everyday".into(), "fallback-tier".into()],
        stats,
    }];
    let term = report::terminal_summary(&s);
    assert!(
        term.contains("tier standard: 12,345 requests") && term.contains("shed 1,234"),
        "{term}"
    );
    let md = report::summary_markdown(&s).unwrap();
    assert!(md.contains("### Gateway tiers"), "{md}");
    assert!(
        md.contains("| standard | everyday, fallback-tier | 12,345 |") && md.contains("| 1,234 |"),
        "{md}"
    );
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &s);
    let html = read(&dir.path().join("index.html"));
    assert!(
        html.contains("id=\"tiers\"") && html.contains("1,234"),
        "tier table in HTML"
    );
    let back: Summary = serde_json::from_str(&read(&dir.path().join("summary.json"))).unwrap();
    assert_eq!(back.tiers, s.tiers, "summary.json keeps the tiers");

    assert!(
        !report::summary_markdown(&plain)
            .unwrap()
            .contains("Gateway tiers")
    );
    let term = report::terminal_summary(&plain);
    assert!(!term.lines().any(|l| l.starts_with("tier ")), "{term}");
}

#[test]
fn the_terminal_check_table_lines_up() {
    let text = report::terminal_summary(&fixture::quickstart());
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["PASS ", "FAIL ", "INCONCLUSIVE "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(rows.len() >= 2, "{text}");
    // Every column starts where it does in the first row: status, key, scope, target.
    let column = |row: &str, word: &str| row.find(word).unwrap_or(usize::MAX);
    for row in &rows {
        assert_eq!(
            column(row, " target "),
            column(rows[0], " target "),
            "{text}"
        );
        assert_eq!(
            column(row, "overall").min(column(row, "class:")),
            38,
            "the scope starts after a 24-wide key: {row}"
        );
    }
}
