//! `gauntlet capacity`: search for the highest arrival rate that keeps the scenario's SLA,
//! with its faults (and, asked, without), write `capacity.json`, `capacity.html` and each
//! probe's run folder, and exit with the verdict.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use gauntlet::capacity::{self, CapacityError, Observer, Probe, Settings, StopReason};
use gauntlet::engine::{self, Finished, RunOptions};
use gauntlet::rundir::RunDir;
use tokio::sync::watch;

use super::{InvalidInput, Outcome};

const DEFAULT_TOLERANCE: f64 = 0.05;
const DEFAULT_BUDGET: Duration = Duration::from_secs(30 * 60);
/// An undecided probe is rerun at 2x and then 4x its length before it counts as not passing.
const MAX_LENGTHEN: u32 = 2;

/// Find the highest request rate at which every SLA check still passes — during the
/// scenario's faults.
///
/// Each probe is a normal run of the scenario (warmup, the stages' shape scaled to the probe's
/// rate, the mix, the fault timeline scaled in time, the SLA) with the same seed, against a
/// freshly started fleet. A short closed-model probe first measures the ceiling of the whole
/// path; the search then doubles the rate from --min until a probe does not pass, and
/// bisects until the bracket is within --tolerance.
///
/// Every check on a share of samples (availability, failover success, goodput, a p99 bound)
/// is judged by its 95% Wilson interval: a probe passes only when every interval is on the
/// right side of its target; one that straddles is rerun longer (2x, then 4x) and never
/// counts as a pass. The last pass is rerun once to confirm it. A probe whose load generator
/// could not keep the schedule (dropped requests, lag) and failed nothing stops the search:
/// gauntlet does not report a capacity it could not drive.
///
/// Writes OUT/capacity.json, OUT/capacity.html and OUT/probes/NN-RATE/ (each probe's run
/// folder). Settings not given here come from the scenario's [capacity] table.
///
/// Exit codes: 0 the capacity was found (and is at least [capacity] at_least), 1 it is below
/// at_least, below --min, or the time budget ran out before it was proven, 2 invalid input
/// (bad bounds, a scenario without [sla] or with a closed-model load), 3 the search could not
/// run honestly (an invalid probe, a server that would not start), 130 interrupted.
#[derive(Debug, Parser)]
pub struct Args {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// The rate (requests/s) the search starts from [default: 10% of the ceiling].
    #[arg(long, value_name = "R")]
    pub min: Option<f64>,
    /// The highest rate probed [default: 1.25x the ceiling].
    #[arg(long, value_name = "R")]
    pub max: Option<f64>,
    /// Stop when the bracket is within this share of the capacity, e.g. "5%" [default: 5%].
    #[arg(long, value_name = "PERCENT")]
    pub tolerance: Option<String>,
    /// Wall-clock time the whole search may take, e.g. "30m" [default: 30m].
    #[arg(long, value_name = "D", value_parser = gauntlet::config::parse_duration)]
    pub budget: Option<Duration>,
    /// Length of each probe, e.g. "20s" [default: the scenario's plan, at most 60 s].
    #[arg(long, value_name = "D", value_parser = gauntlet::config::parse_duration)]
    pub probe_duration: Option<Duration>,
    /// Also search without the scenario's faults: capacity healthy vs during the outage.
    #[arg(long)]
    pub no_faults: bool,
    /// Folder for the search [default: reports/<scenario>/capacity-<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write into --out even if it already holds files.
    #[arg(long)]
    pub force: bool,
    /// Send the load to this gateway instead of the scenario's target: http://HOST:PORT or
    /// https://HOST[:PORT].
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    #[command(flatten)]
    pub tls: super::tls_args::TlsArgs,
    /// Seed for the request mix and arrivals (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Threads that send the load [default: one per core].
    #[arg(long, value_name = "N")]
    pub load_threads: Option<std::num::NonZeroUsize>,
    /// Only the final verdict, no line per probe.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Keeps each probe as a run folder under OUT/probes/ and prints its line.
struct Keeper {
    out: PathBuf,
    quiet: bool,
    /// `--force`: probe folders left by an earlier search into the same --out are replaced.
    force: bool,
    /// A probe folder that could not be written: the search goes on, the error is reported.
    failed: Option<anyhow::Error>,
}

impl Keeper {
    fn keep(&self, probe: &Probe, run: &Finished) -> anyhow::Result<String> {
        let rate = probe
            .offered_rps
            .map_or_else(|| "ceiling".to_string(), |r| format!("{r:.1}rps"));
        let rel = format!("probes/{:02}-{rate}", probe.index);
        let path = self.out.join(&rel);
        let mut dir = RunDir::create(&path, self.force)
            .with_context(|| format!("creating the probe folder {}", path.display()))?;
        engine::write_run(&mut dir, run)
            .with_context(|| format!("writing the probe folder {}", path.display()))?;
        gauntlet::report::write_reports(&run.summary, &mut dir)
            .with_context(|| format!("writing the reports into {}", path.display()))?;
        Ok(rel)
    }
}

impl Observer for Keeper {
    fn probe(&mut self, probe: &Probe, run: &Finished) -> Option<String> {
        if !self.quiet {
            println!("{}", gauntlet::report::capacity_probe_line(probe));
        }
        match self.keep(probe, run) {
            Ok(folder) => Some(folder),
            Err(e) => {
                eprintln!("warning: {e:#}");
                self.failed.get_or_insert(e);
                None
            }
        }
    }

    fn starting(&mut self, index: usize, rate: Option<f64>, length: Duration) {
        if self.quiet {
            return;
        }
        // On stderr, so the probe lines on stdout stay one per probe for scripts.
        let what = rate.map_or_else(
            || "the ceiling (closed model)".to_string(),
            |r| format!("{r:.1} req/s"),
        );
        eprintln!(
            "  probe {index}: {what} for {:.1} s ...",
            length.as_secs_f64()
        );
    }

    fn search(&mut self, faults: bool) {
        if !self.quiet {
            println!(
                "== searching {}",
                if faults {
                    "with the scenario's faults"
                } else {
                    "without faults"
                }
            );
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let scenario = gauntlet::scenario::load(&args.scenario)?;
    let from_file = scenario.capacity;
    let settings = Settings {
        min: args.min.or(from_file.min),
        max: args.max.or(from_file.max),
        tolerance: match &args.tolerance {
            Some(t) => super::percent("--tolerance", t)?,
            None => from_file.tolerance.unwrap_or(DEFAULT_TOLERANCE),
        },
        budget: args.budget.or(from_file.budget).unwrap_or(DEFAULT_BUDGET),
        probe_duration: args.probe_duration.or(from_file.probe_duration),
        no_faults: args.no_faults,
        max_lengthen: MAX_LENGTHEN,
        at_least: from_file.at_least,
    };
    if settings.probe_duration.is_some_and(|d| d.is_zero()) {
        return Err(InvalidInput("--probe-duration must be longer than zero".into()).into());
    }
    capacity::check(&scenario, &settings).map_err(|e| InvalidInput(e.to_string()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| super::default_out(&scenario.name, "capacity-", SystemTime::now()));
    let mut run_dir = RunDir::create(&out, args.force).map_err(|e| InvalidInput(e.to_string()))?;
    let options = RunOptions {
        target: args.target.clone(),
        tls: args.tls.settings()?,
        seed: args.seed,
        load_threads: args.load_threads,
        quiet: true,
        ..RunOptions::default()
    };
    let mut keeper = Keeper {
        out: out.clone(),
        quiet: args.quiet,
        force: args.force,
        failed: None,
    };
    let runtime = super::runtime()?;
    let result = runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            super::stop_signal().await;
            eprintln!(
                "\nstopping: finishing the probe in flight (up to {} s)...",
                gauntlet::engine::DEFAULT_DRAIN.as_secs_f64()
            );
            let _ = stop_tx.send(true);
        });
        capacity::search(&scenario, &settings, &options, stop_rx, &mut keeper).await
    });
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            if keeper.failed.is_none() {
                run_dir.discard_if_empty();
            }
            return Err(match e {
                CapacityError::Engine(_) | CapacityError::NoCeiling(_) => anyhow::Error::new(e),
                other => InvalidInput(other.to_string()).into(),
            });
        }
    };
    gauntlet::report::write_capacity(&result, &mut run_dir)
        .with_context(|| format!("writing the capacity report into {}", out.display()))?;
    print!("{}", gauntlet::report::capacity_terminal(&result));
    println!(
        "report: {}",
        run_dir
            .file(gauntlet::rundir::RunFile::CapacityHtml)
            .display()
    );
    if let Some(e) = keeper.failed {
        return Err(e.context("a probe's run folder could not be written"));
    }
    let stops = |r: StopReason| result.searches.iter().any(|s| s.stop == r);
    if stops(StopReason::Interrupted) {
        return Ok(Outcome::Interrupted);
    }
    if stops(StopReason::Invalid) {
        anyhow::bail!(
            "the search stopped at an invalid probe: gauntlet could not drive the load it \
             was asked for (see the warning above); no capacity is reported"
        );
    }
    Ok(if result.passed() {
        Outcome::Ok
    } else {
        Outcome::SlaViolated
    })
}
