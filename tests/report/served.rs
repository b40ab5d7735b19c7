//! What the reports say about answers and failures: latency is of successful requests, failures
//! are timed apart, a dashed SLA line is promised only where one is drawn, an interval without
//! answers is a gap, failover that saved money says so, and older summaries still render.

use std::path::Path;

use gauntlet::metrics::{CheckStatus, SlaCheck, SlaKey, Summary};
use gauntlet::report;

use super::{bin, fixture, read, svg_named, write_run};

const V1_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/summary-v1-quickstart.json"
);

/// The caption of the figure holding the chart named `label`.
fn caption<'a>(html: &'a str, label: &str) -> &'a str {
    let at = html
        .find(&format!("aria-label=\"{label}"))
        .unwrap_or_else(|| panic!("no chart named {label:?}"));
    let start = at + html[at..].find("<figcaption>").expect("a caption");
    let end = start + html[start..].find("</figcaption>").unwrap();
    &html[start..end]
}

fn html_of(summary: &Summary) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), summary);
    read(&dir.path().join("index.html"))
}

fn latency_check(scope: &str, target: f64) -> SlaCheck {
    SlaCheck {
        name: SlaKey::P99Latency,
        scope: scope.into(),
        target,
        measured: Some(target / 2.0),
        unit: "ms".into(),
        samples: 5000,
        status: CheckStatus::Pass,
        note: None,
        misses: None,
    }
}

#[test]
fn the_dashed_sla_line_is_promised_only_where_it_is_drawn() {
    // The fixture holds p99_latency for the whole run: drawn, and the caption says so.
    let html = html_of(&fixture::quickstart());
    let latency = svg_named(&html, "Latency percentiles over time");
    assert!(latency.contains("stroke-dasharray"));
    let words = caption(&html, "Latency percentiles over time");
    assert!(words.contains("dashed"), "{words}");
    assert!(words.contains("successful requests only"), "{words}");
    assert!(
        html.contains("judge those"),
        "the SLA's scope is said beside the chart"
    );

    // Without a latency objective: no dashed line on either latency chart, and no promise of one.
    let mut bare = fixture::quickstart();
    bare.sla.checks.retain(|c| c.name != SlaKey::P99Latency);
    let html = html_of(&bare);
    for chart in ["Latency percentiles over time", "Latency by percentile"] {
        assert!(
            !svg_named(&html, chart).contains("stroke-dasharray"),
            "{chart}"
        );
        assert!(!caption(&html, chart).contains("dashed"), "{chart}");
    }
    // The TTFT objective is still drawn on the TTFT chart, and said there.
    assert!(svg_named(&html, "Time to first token").contains("stroke-dasharray"));
    assert!(caption(&html, "Time to first token").contains("dashed"));

    // A class's own objective: its target and its p99 line are drawn, and the caption names it.
    bare.sla.checks.push(latency_check("class:premium", 1500.0));
    let html = html_of(&bare);
    let latency = svg_named(&html, "Latency percentiles over time");
    assert!(
        super::has_text(latency, "SLA premium p99 ≤ 1.50 s"),
        "{latency}"
    );
    assert!(super::has_text(latency, "premium p99"));
    assert!(caption(&html, "Latency percentiles over time").contains("class premium"));
    assert!(super::has_text(
        svg_named(&html, "Latency by percentile"),
        "SLA premium p99 ≤ 1.50 s"
    ));
}

#[test]
fn an_interval_without_answers_is_a_gap_in_the_latency_lines() {
    let whole = fixture::quickstart();
    let mut outage = fixture::quickstart();
    let iv = &mut outage.intervals[10].overall;
    iv.errors.insert("status_5xx".into(), iv.successes);
    iv.successes = 0;
    iv.latency_ms = None;
    iv.ttft_ms = None;
    let lines = |s: &Summary| {
        svg_named(&html_of(s), "Latency percentiles over time")
            .matches("<polyline")
            .count()
    };
    // p50, p90 and p99 each break in two; nothing is drawn at the gap.
    assert_eq!(lines(&outage), lines(&whole) + 3);
}

#[test]
fn failures_are_timed_apart_in_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let summary = fixture::quickstart();
    write_run(dir.path(), &summary);
    let html = read(&dir.path().join("index.html"));
    let table = &html[html
        .find("id=\"time-to-error\"")
        .expect("a time-to-error section")..];
    let table = &table[..table.find("</table>").unwrap()];
    let refused = &summary.overall.time_to_error_ms["status_5xx"];
    assert!(table.contains("<code>status_5xx</code>") && table.contains("<code>connect</code>"));
    assert!(table.contains(&format!("{:.1} ms", refused.p50)), "{table}");

    let md = read(&dir.path().join("summary.md"));
    assert!(md.contains("### Time to error"), "{md}");
    assert!(md.contains("| overall | `status_5xx` |"), "{md}");

    let mut csv = csv::Reader::from_path(dir.path().join("timeseries.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let col = headers
        .iter()
        .position(|h| h == "time_to_error_p50_ms")
        .expect("a time-to-error column");
    let first_outage_second = csv
        .records()
        .map(Result::unwrap)
        .find(|r| &r[1] == "overall" && r[0].parse::<f64>().unwrap() == fixture::FAULT_START)
        .unwrap();
    assert!(
        first_outage_second[col].contains("status_5xx="),
        "{first_outage_second:?}"
    );

    let text = report::terminal_summary(&summary);
    assert!(text.contains("time to error: "), "{text}");
    assert!(
        text.contains("latency columns: successful requests only"),
        "{text}"
    );
}

#[test]
fn a_failover_that_made_the_run_cheaper_reads_as_saved() {
    let mut summary = fixture::quickstart();
    summary.cost.as_mut().unwrap().failover_extra_usd = -0.00045;
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), &summary);
    let text = report::terminal_summary(&summary);
    let md = read(&dir.path().join("summary.md"));
    let html = read(&dir.path().join("index.html"));
    assert!(text.contains("failover saved $0.00045"), "{text}");
    assert!(md.contains("| saved by failover | $0.00045 |"), "{md}");
    assert!(html.contains("saved by failover"));
    for out in [&text, &md, &html] {
        assert!(!out.contains("$-"), "no negative amounts");
    }
    // And a failover that cost money still says added.
    let text = report::terminal_summary(&fixture::quickstart());
    assert!(text.contains("failover added $0.00012"), "{text}");
}

#[test]
fn a_version_1_summary_still_renders_and_compares() {
    let (old, _) = gauntlet::rundir::RunDir::load(Path::new(V1_FIXTURE)).unwrap();
    assert_eq!(
        old.schema_version, 1,
        "the committed fixture is of version 1"
    );
    assert!(old.schema_version < gauntlet::metrics::SCHEMA_VERSION);

    let run = tempfile::tempdir().unwrap();
    std::fs::copy(V1_FIXTURE, run.path().join("summary.json")).unwrap();
    let out = bin().arg("report").arg(run.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = read(&run.path().join("index.html"));
    svg_named(&html, "Latency percentiles over time");
    assert!(
        html.contains("schema version 1"),
        "the older latency's meaning is said"
    );
    assert!(!html.contains("successful requests only"));
    let md = read(&run.path().join("summary.md"));
    assert!(
        md.contains("FAIL") && md.contains("schema version 1"),
        "{md}"
    );

    // Against a current summary: compared, with the difference in meaning said.
    let now = tempfile::tempdir().unwrap();
    std::fs::copy(super::FIXTURE, now.path().join("summary.json")).unwrap();
    let out = bin()
        .arg("compare")
        .arg(run.path())
        .arg(now.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("p99 latency"), "{stdout}");
    assert!(
        stdout.contains("note: the base run's summary has schema version 1"),
        "{stdout}"
    );
    let md = read(&now.path().join("compare.md"));
    assert!(md.contains("schema version 1"), "{md}");
    assert!(read(&now.path().join("compare.html")).contains("schema version 1"));
}
