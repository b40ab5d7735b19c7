//! `gauntlet run`: load a scenario, start what it needs, drive the load, write the run folder
//! (`summary.json`, `latency.hlog`), print the summary table and exit with the verdict.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use gauntlet::engine::{self, Finished, RunOptions};
use gauntlet::metrics::{Percentiles, Summary};
use tokio::sync::watch;

use super::{InvalidInput, Outcome};

/// Run a scenario: start its mock upstreams and gateway, send the weighted request mix on
/// schedule, and check the SLA.
#[derive(Debug, Parser)]
pub struct Args {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Send the load to this gateway (http://HOST:PORT) instead of the scenario's target.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Folder for the run's files [default: reports/<scenario>/<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write into --out even if it already holds files.
    #[arg(long)]
    pub force: bool,
    /// Stretch the whole plan (warmup and stages) to this length, e.g. "30s" or "5m".
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Scale open-model arrival rates so the peak is R requests per second.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Seed for the request mix and Poisson arrivals (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Speak HTTP/2 (prior knowledge) to the target.
    #[arg(long)]
    pub http2: bool,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Project the cost at this many tokens a month (repeatable)
    /// [default: 5M, 50M, 500M and 5B].
    #[arg(long, value_name = "N")]
    pub monthly_tokens: Vec<u64>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    gauntlet::config::parse_duration(s)
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let scenario = gauntlet::scenario::load(&args.scenario)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&scenario.name, SystemTime::now()));
    engine::prepare_dir(&out, args.force).map_err(|e| InvalidInput(e.to_string()))?;
    let options = RunOptions {
        target: args.target.clone(),
        duration: args.duration,
        rate: args.rate,
        seed: args.seed,
        http2: args.http2,
        quiet: args.quiet,
        monthly_tokens: if args.monthly_tokens.is_empty() {
            RunOptions::default().monthly_tokens
        } else {
            args.monthly_tokens.clone()
        },
        ..RunOptions::default()
    };
    // Reject bad --rate/--duration before anything starts.
    engine::plan_for(&scenario, &options).map_err(|e| InvalidInput(e.to_string()))?;
    let runtime = super::runtime()?;
    let finished = runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("\nstopping: finishing requests in flight (up to 5 s)...");
            let _ = stop_tx.send(true);
        });
        engine::run_scenario(&scenario, &options, stop_rx).await
    })?;
    engine::write_run(&out, &finished)
        .with_context(|| format!("writing the run folder {}", out.display()))?;
    gauntlet::report::write_all(&finished.summary, &out)
        .with_context(|| format!("writing the reports into {}", out.display()))?;
    print_table(&finished, &out);
    Ok(if finished.summary.interrupted {
        Outcome::Interrupted
    } else if finished.summary.sla.passed {
        Outcome::Ok
    } else {
        Outcome::SlaViolated
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `reports/<scenario>/<UTC timestamp>/`, the timestamp without characters file systems dislike.
fn default_out(scenario: &str, now: SystemTime) -> PathBuf {
    let name: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    PathBuf::from("reports").join(name).join(stamp)
}

fn ms(p: &Percentiles) -> String {
    if p.samples == 0 {
        "-".into()
    } else {
        format!("{:.1}", p.p99)
    }
}

fn print_table(run: &Finished, out: &Path) {
    let s: &Summary = &run.summary;
    println!();
    println!(
        "{} — {} — {:.1} s measured{}",
        s.scenario,
        s.target,
        s.duration_s,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    println!(
        "{:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>10} {:>8}",
        "class", "requests", "avail %", "rps", "p50 ms", "p99 ms", "ttft p99", "errors"
    );
    let row = |name: &str, st: &gauntlet::metrics::Stats| {
        let errors: u64 = st.errors.values().sum::<u64>() + st.dropped;
        println!(
            "{:<16} {:>9} {:>9.3} {:>8.1} {:>9.1} {:>9} {:>10} {:>8}",
            name,
            st.requests,
            st.availability * 100.0,
            st.rps,
            st.latency_ms.p50,
            ms(&st.latency_ms),
            st.ttft_ms.as_ref().map_or_else(|| "-".into(), ms),
            errors
        );
    };
    for c in &s.classes {
        row(&c.name, &c.stats);
    }
    row("overall", &s.overall);
    if !s.overall.errors.is_empty() {
        let list: Vec<String> = s
            .overall
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("errors: {}", list.join(", "));
    }
    println!(
        "generator: schedule lag p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; dropped {}",
        s.generator.schedule_lag_ms.p50,
        s.generator.schedule_lag_ms.p99,
        s.generator.schedule_lag_ms.max,
        s.generator.dropped
    );
    for reason in &s.trust.reasons {
        println!("warning: {reason}");
    }
    for check in &s.sla.checks {
        println!(
            "sla {:<24} {:<14} {:?}: target {} {}, measured {}",
            check.name,
            check.scope,
            check.status,
            check.target,
            check.unit,
            check
                .measured
                .map_or_else(|| "-".to_string(), |m| format!("{m:.4}"))
        );
    }
    println!("verdict: {}", if s.sla.passed { "PASS" } else { "FAIL" });
    println!("wrote {}", out.display());
}
