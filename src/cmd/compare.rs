//! `gauntlet compare`: the performance gate — per-metric deltas between two runs, exit 1 when
//! one regressed beyond the allowed bound.

use std::path::PathBuf;

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
///
/// Given two capacity searches (folders of `gauntlet capacity`, or their capacity.json),
/// compares the capacity each found, with faults and without: exit 1 when one fell by more
/// than the bound, or could no longer be found.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The base run: a run folder or its summary.json (or a capacity search's folder).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The new run: a run folder or its summary.json (or a capacity search's folder).
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// The relative worsening allowed before a metric counts as regressed.
    #[arg(long, value_name = "PERCENT", default_value = "10%")]
    pub max_regression: String,
    /// Where to write compare.md and compare.html [default: the new run's folder].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A capacity search's folder or its capacity.json, rather than a run's.
fn is_capacity(path: &std::path::Path) -> bool {
    let name = RunFile::CapacityJson.name();
    path.file_name().is_some_and(|f| f == name) || (path.is_dir() && path.join(name).is_file())
}

/// Two capacity searches: each capacity found, exit 1 when one fell beyond the bound.
fn capacities(args: &Args, max_regression: f64) -> anyhow::Result<Outcome> {
    if !(is_capacity(&args.base) && is_capacity(&args.new)) {
        return Err(InvalidInput(format!(
            "{} and {} are not both capacity searches (capacity.json): compare two runs or \
             two searches, not one of each",
            args.base.display(),
            args.new.display()
        ))
        .into());
    }
    let read = |p: &std::path::Path| {
        report::read_capacity(p).map_err(|e| {
            if e.is_invalid_input() {
                anyhow::Error::new(InvalidInput(e.to_string()))
            } else {
                e.into()
            }
        })
    };
    let (base, new) = (read(&args.base)?, read(&args.new)?);
    let deltas = report::compare_capacity(&base, &new, max_regression);
    print!(
        "{}",
        report::capacity_compare_terminal(&deltas, max_regression)
    );
    Ok(if deltas.iter().any(|d| d.regressed) {
        Outcome::SlaViolated
    } else {
        Outcome::Ok
    })
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let max_regression = super::percent("--max-regression", &args.max_regression)?;
    if is_capacity(&args.base) || is_capacity(&args.new) {
        return capacities(&args, max_regression);
    }
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
