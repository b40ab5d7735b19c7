//! A startup asks what its 80/15/5 mix saves against sending everything to one premium
//! model: the run prices the tokens the providers counted at the alternative, in every report.

use std::process::Command;

use gauntlet::metrics::Summary;
use gauntlet::rundir::{RunDir, RunFile};

#[test]
fn a_run_prices_its_measured_tokens_at_the_alternative_in_every_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_gauntlet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/startup.toml",
            "-q",
            "--duration",
            "3s",
            "--rate",
            "40",
            "--monthly-tokens",
            "50000000",
        ])
        .arg("--out")
        .arg(&dir)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (summary, run_dir): (Summary, RunDir) = RunDir::load(&dir).unwrap();
    let cost = summary.cost.as_ref().expect("the profiles have prices");
    let alt = &cost.alternatives[0];
    assert_eq!(alt.name, "gpt-4o direct");
    // The same tokens the upstreams counted, at $2.50 in and $10 out per million.
    let (prompt, completion) = summary
        .upstreams
        .iter()
        .filter(|u| u.cost_usd.is_some())
        .fold((0u64, 0u64), |(p, c), u| {
            (p + u.tokens.prompt, c + u.tokens.completion)
        });
    assert!(prompt > 0 && completion > 0);
    let expected = (prompt as f64 * 2.5 + completion as f64 * 10.0) / 1e6;
    assert!(
        (alt.total_usd - expected).abs() < 0.005,
        "{alt:?} vs {expected}"
    );
    assert!((alt.savings_usd - (expected - cost.total_usd)).abs() < 0.005);
    // The startup mix is mostly a $0.25/M model: far cheaper than the alternative.
    assert!(alt.savings_ratio.unwrap() > 0.5, "{alt:?}");
    assert_eq!(alt.monthly.len(), 1);
    assert_eq!(alt.monthly[0].tokens_per_month, 50_000_000);
    let per_token = expected / (prompt + completion) as f64;
    assert!((alt.monthly[0].usd - per_token * 5e7).abs() < 0.005);

    let md = std::fs::read_to_string(run_dir.file(RunFile::SummaryMd)).unwrap();
    assert!(md.contains("| against | scale |"), "{md}");
    assert!(
        md.contains("gpt-4o direct") && md.contains("50M tokens a month"),
        "{md}"
    );
    let html = std::fs::read_to_string(run_dir.file(RunFile::IndexHtml)).unwrap();
    assert!(html.contains("id=\"savings\"") && html.contains("gpt-4o direct"));
    assert!(stdout.contains("vs gpt-4o direct"), "{stdout}");
    // Failover's extra cost is still shown beside the savings.
    assert!(md.contains("by failover"), "{md}");
}

#[test]
fn a_wrong_alternative_is_refused_at_its_place() {
    let text = r#"name = "x"
[[upstreams]]
name = "a"
url = "http://127.0.0.1:1"
[load]
stages = [{ duration = "1s", rate = 1 }]
[[requests]]
name = "r"
model = "m"
prompt = "p"
[cost]
compare_to = [
  { name = "direct", input_price_per_m = -1, output_price_per_m = 10 },
  { name = "direct", input_price_per_m = 1, output_price_per_m = 1 },
]
"#;
    let e = gauntlet::scenario::load_str("alt.toml", text)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("alt.toml:13:")
            && e.contains("cost.compare_to[0].input_price_per_m")
            && e.contains("-1"),
        "{e}"
    );
    assert!(
        e.contains("alt.toml:14:") && e.contains("`direct` is named twice"),
        "{e}"
    );
}
