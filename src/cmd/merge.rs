//! `gauntlet merge`: shards' parts (their run folders or part files) into one run folder with
//! one verdict, offline; and the part a sharded `gauntlet run` leaves in its own folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gauntlet::cluster::{self, PartHeader, ShardId};
use gauntlet::engine::Finished;
use gauntlet::rundir::{RunDir, RunFile};
use gauntlet::scenario::Scenario;

use super::part_origin::PartOrigin;
use super::{InvalidInput, Outcome};

/// Merge the parts of a sharded run into one run folder: histograms added and counters
/// summed exactly, the SLA judged once on the whole, every report written, and a table of
/// the shards. Parts of different scenarios, seeds, plans, shard counts or gauntlet versions
/// are refused (exit 2); a shard without a part makes the verdict inconclusive (exit 1).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A shard's run folder, or its part file (part.gpart); one per shard.
    #[arg(value_name = "PART", required = true)]
    pub parts: Vec<PathBuf>,
    /// Folder for the merged run's files.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The scenario file the shards ran [default: the path the parts recorded]. Its SLA is
    /// what the merged run is judged by; it must be the same scenario (checked).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Write into a non-empty --out folder.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // Read side by side as streams: memory is the merged run's, however many parts.
    let files: Vec<PathBuf> = args
        .parts
        .iter()
        .map(|p| gauntlet::rundir::locate(p, RunFile::Part).1)
        .collect();
    let merged = cluster::merge_files(&files).map_err(|e| InvalidInput(refusal(e)))?;
    let scenario = scenario_of(&merged.header, args.scenario.as_deref())?;
    let summary = cluster::conclude_merged(&merged, &scenario);
    let mut dir = RunDir::create(&args.out, args.force).map_err(|e| InvalidInput(e.to_string()))?;
    cluster::write_merged(&mut dir, &merged, &summary)
        .with_context(|| format!("writing the merged run into {}", args.out.display()))?;
    print!("{}", gauntlet::report::terminal_summary(&summary));
    println!("report: {}", dir.file(RunFile::IndexHtml).display());
    Ok(if summary.sla.passed {
        Outcome::Ok
    } else {
        Outcome::SlaViolated
    })
}

/// Why the parts were refused, saying what to give when a file could not be read.
fn refusal(e: cluster::FilesError) -> String {
    match e {
        cluster::FilesError::Part {
            path,
            error: cluster::PartError::Read(e),
        } => format!(
            "{path}: cannot read the part ({e}); give a shard's run folder or its {}",
            RunFile::Part
        ),
        other => other.to_string(),
    }
}

/// The scenario the shards ran, read again for its SLA: from `given`, else where the parts
/// say; refused unless it is the very scenario they ran.
fn scenario_of(header: &PartHeader, given: Option<&Path>) -> Result<Scenario, InvalidInput> {
    let path = given
        .map(Path::to_path_buf)
        .or_else(|| header.scenario_path.clone())
        .ok_or_else(|| {
            InvalidInput(
                "the parts do not say where their scenario is: pass --scenario FILE".into(),
            )
        })?;
    let scenario = gauntlet::scenario::load(&path).map_err(|e| {
        InvalidInput(format!(
            "reading the scenario the shards ran ({}): {e}; pass the file with --scenario FILE",
            path.display()
        ))
    })?;
    let found = cluster::file_fingerprint(&path)
        .map_err(|e| InvalidInput(format!("reading {}: {e}", path.display())))?;
    if found != header.fingerprint {
        return Err(InvalidInput(format!(
            "{} is not the scenario the shards ran (fingerprint {found}, the parts' is {}): it \
             was edited since, or is another file; pass the one they ran with --scenario FILE",
            path.display(),
            header.fingerprint
        )));
    }
    Ok(scenario)
}

/// A shard's part, written into its own run folder beside its reports.
pub(super) fn write_part(
    dir: &mut RunDir,
    scenario: &Scenario,
    scenario_path: &Path,
    shard: ShardId,
    run: &Finished,
) -> anyhow::Result<PathBuf> {
    let origin = PartOrigin {
        scenario,
        path: scenario_path,
        plan: &run.plan,
        fingerprint: cluster::file_fingerprint(scenario_path)
            .with_context(|| format!("reading {}", scenario_path.display()))?,
        seed: run.summary.seed,
        shard,
    };
    let part = origin.whole(run);
    dir.write(RunFile::Part, &part.encode())
        .with_context(|| format!("writing the part into {}", dir.path().display()))
}
