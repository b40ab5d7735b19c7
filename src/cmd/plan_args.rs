//! The command-line knobs every command that runs a scenario takes (`run`, `bakeoff`): where a
//! used folder may be reused, and how the plan is stretched, scaled and seeded.

use std::time::Duration;

use gauntlet::engine::RunOptions;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Write into --out even if it already holds files.
    #[arg(long)]
    pub force: bool,
    /// Stretch the whole plan (warmup and stages) to this length, e.g. "30s" or "5m".
    #[arg(long, value_name = "D", value_parser = gauntlet::config::parse_duration)]
    pub duration: Option<Duration>,
    /// Scale open-model arrival rates so the peak is R requests per second.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Seed for the request mix and Poisson arrivals (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

impl PlanArgs {
    /// These knobs applied to `base`.
    pub fn apply(&self, base: RunOptions) -> RunOptions {
        RunOptions {
            duration: self.duration,
            rate: self.rate,
            seed: self.seed,
            quiet: self.quiet,
            ..base
        }
    }
}
