//! `gauntlet run`: load a scenario, start what it needs, drive the load, write the run folder
//! (`summary.json`, `latency.hlog`), print the summary table and exit with the verdict.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use gauntlet::engine::{self, Finished, RunOptions, SampleSink};
use gauntlet::metrics::{Sample, ServedBy};
use gauntlet::report::{RawRequest, RawRequestWriter};
use gauntlet::scenario::Scenario;

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
    /// Threads that send the load [default: one per core]. Fewer leave cores to a gateway
    /// on this machine (load only goes to loopback, so it always shares the machine).
    #[arg(long, value_name = "N")]
    pub load_threads: Option<std::num::NonZeroUsize>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write requests.csv: one row per request, streamed to disk during the run.
    #[arg(long)]
    pub raw: bool,
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
        load_threads: args.load_threads,
        quiet: args.quiet,
        monthly_tokens: if args.monthly_tokens.is_empty() {
            RunOptions::default().monthly_tokens
        } else {
            args.monthly_tokens.clone()
        },
        ..RunOptions::default()
    };
    let raw = if args.raw {
        Some(raw_log(&scenario, &out)?)
    } else {
        None
    };
    let options = RunOptions {
        sink: raw.as_ref().map(|(sink, _)| sink.clone()),
        ..options
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
    if let Some((_, state)) = raw {
        finish_raw_log(&state)?;
    }
    print_table(&finished, &out);
    if let Err(e) = gauntlet::report::append_github_step_summary(&finished.summary) {
        eprintln!("warning: could not append to $GITHUB_STEP_SUMMARY: {e}");
    }
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

fn print_table(run: &Finished, out: &Path) {
    print!("{}", gauntlet::report::terminal_summary(&run.summary));
    println!(
        "report: {}",
        out.join(gauntlet::report::INDEX_HTML).display()
    );
}

/// The raw request log: a writer shared with the recorder's sink, and the first write error.
type RawLog = Arc<Mutex<(Option<RawRequestWriter>, Option<String>)>>;

fn raw_log(scenario: &Scenario, out: &Path) -> anyhow::Result<(SampleSink, RawLog)> {
    let writer = RawRequestWriter::create(out)
        .with_context(|| format!("creating requests.csv in {}", out.display()))?;
    let state: RawLog = Arc::new(Mutex::new((Some(writer), None)));
    let classes: Vec<String> = scenario.requests.iter().map(|c| c.name.clone()).collect();
    let upstreams: Vec<String> = scenario.upstreams.iter().map(|u| u.name.clone()).collect();
    let shared = state.clone();
    let sink = SampleSink::new(move |s: &Sample| {
        let Ok(mut guard) = shared.lock() else { return };
        let (writer, error) = &mut *guard;
        let Some(w) = writer.as_mut() else { return };
        let served_by = match &s.served_by {
            Some(ServedBy::Known(i)) => upstreams.get(usize::from(*i)).map(String::as_str),
            Some(ServedBy::Other(name)) => Some(&**name),
            None => None,
        };
        let row = RawRequest {
            intended_s: s.intended.as_secs_f64(),
            class: classes.get(s.class).map_or("?", String::as_str),
            status: None,
            outcome: match s.result {
                Ok(()) => "ok",
                Err(kind) => kind.as_str(),
            },
            latency_ms: s.latency.as_secs_f64() * 1e3,
            ttft_ms: s.ttft.map(|t| t.as_secs_f64() * 1e3),
            served_by,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
        };
        if let Err(e) = w.write(&row) {
            // Stop writing at the first failure; the run itself goes on and says so at the end.
            *error = Some(e.to_string());
            *writer = None;
        }
    });
    Ok((sink, state))
}

fn finish_raw_log(state: &RawLog) -> anyhow::Result<()> {
    let Ok(mut guard) = state.lock() else {
        anyhow::bail!("the raw request log was left in a broken state");
    };
    if let Some(e) = guard.1.take() {
        eprintln!("warning: requests.csv was not written completely: {e}");
    }
    if let Some(w) = guard.0.take() {
        w.finish().context("finishing requests.csv")?;
    }
    Ok(())
}
