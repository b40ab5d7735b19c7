//! `gauntlet compare`: the performance gate — per-metric deltas between two runs, exit 1 when
//! one regressed beyond the allowed bound.

use std::path::PathBuf;

use gauntlet::config::{RawNum, parse_ratio};
use gauntlet::report;
use gauntlet::rundir::{RunDir, RunFile};

use super::report::classify;
use super::{InvalidInput, Outcome};

/// Compare a new run against a base run: latency (p50/p90/p99, TTFT p99), availability,
/// throughput and cost, overall and per class. Exits 1 when a metric regressed beyond the bound.
///
/// Latency and cost regress when they rise by more than the bound; availability when its
/// failure rate rises by more than the bound (and by more than 0.1 percentage points).
/// Throughput is shown but not gated. Writes compare.md and compare.html.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The base run: a run folder or its summary.json.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The new run: a run folder or its summary.json.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// The relative worsening allowed before a metric counts as regressed.
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub max_regression: String,
    /// Where to write compare.md and compare.html [default: the new run's folder].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn bound(text: &str) -> Result<f64, InvalidInput> {
    let raw = match text.trim().parse::<f64>() {
        Ok(n) => RawNum::Number(n),
        Err(_) => RawNum::Text(text.to_string()),
    };
    parse_ratio(&raw).map_err(|e| InvalidInput(format!("--max-regression: {e}")))
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let max_regression = bound(&args.max_regression)?;
    let (base, _) = RunDir::load(&args.base).map_err(classify)?;
    let (new, new_dir) = RunDir::load(&args.new).map_err(classify)?;
    let cmp = report::compare(&base, &new, max_regression);
    print!("{}", report::compare_terminal(&cmp));
    let mut out = match args.out {
        Some(dir) => RunDir::open(&dir)?,
        None => new_dir,
    };
    let md = out.write(
        RunFile::CompareMd,
        report::compare_markdown(&cmp)?.as_bytes(),
    )?;
    let html = out.write(
        RunFile::CompareHtml,
        report::compare_html(&cmp, &base, &new)?.as_bytes(),
    )?;
    println!("wrote {} and {}", md.display(), html.display());
    Ok(if cmp.regressed() {
        Outcome::SlaViolated
    } else {
        Outcome::Ok
    })
}
