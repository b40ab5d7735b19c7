//! `gauntlet report`: re-render every report file of a finished run from its `summary.json`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use gauntlet::report;
use gauntlet::rundir::{RunDir, RunDirError};

use super::{InvalidInput, Outcome};

/// Re-render a run's reports (index.html, summary.md, junit.xml, timeseries.csv) from its
/// summary.json, e.g. after upgrading gauntlet or to put them somewhere else.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run folder (holding summary.json) or a summary.json file.
    #[arg(value_name = "RUN_DIR_OR_SUMMARY")]
    pub input: PathBuf,
    /// Where to write the reports [default: the run's own folder].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Input errors (missing or unreadable summary, too new a schema) exit 2; the rest exit 3.
pub fn classify(e: RunDirError) -> anyhow::Error {
    if e.is_invalid_input() {
        InvalidInput(e.to_string()).into()
    } else {
        e.into()
    }
}

/// The same folder, however it was spelled.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let (summary, mut run_dir) = RunDir::load(&args.input).map_err(classify)?;
    let written = match args.out {
        // Elsewhere, the reports travel with the summary they were rendered from.
        Some(out) if !same_folder(&out, run_dir.path()) => report::write_all(&summary, &out)
            .with_context(|| format!("writing reports to {}", out.display()))?,
        // In place the summary stays as the run wrote it: re-rendering never rewrites evidence.
        _ => report::write_reports(&summary, &mut run_dir)
            .with_context(|| format!("writing reports to {}", run_dir.path().display()))?,
    };
    for path in &written {
        println!("{}", path.display());
    }
    if let Some(step) = report::append_github_step_summary(&summary)? {
        println!("appended the summary to {}", step.display());
    }
    Ok(Outcome::Ok)
}
