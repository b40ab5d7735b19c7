//! `gauntlet probe`: the scenario's SLA checked against a live endpoint at a trickle, for as
//! long as it is left running (or one round with `--once`), with burn-rate alerts, a rolling
//! report and daily caps. Exit: 0 a round passed, 1 it failed, 2 invalid input (a literal key
//! among them), 3 the probe failed, 4 a daily cap stopped it, 130 stopped by Ctrl-C/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::Parser;
use gauntlet::config::ConfigErrors;
use gauntlet::observe::{Board, MetricsServer};
use gauntlet::probe::{ALERTS_FILE, ProbeDir, ProbeEnd, ProbeOptions};
use gauntlet::rundir::RunDir;
use gauntlet::scenario::Scenario;
use tokio::sync::watch;

use super::tls_args::TlsArgs;
use super::{InvalidInput, Outcome};

/// Probe a live endpoint with the scenario's mix at a trickle ([probe] rate), checking its SLA
/// over a sliding window with burn-rate alerts; never injects faults.
#[derive(Debug, Parser)]
#[command(
    after_help = "Exit codes: 0 the --once round passed, 1 it failed, 2 invalid input \
(a key written in the file among them), 3 the probe itself failed, 4 stopped at a daily cap \
(max_cost_per_day, max_tokens_per_day), 130 stopped by Ctrl-C or SIGTERM."
)]
pub struct Args {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Send one request per class, write the round's report and exit with its verdict
    /// (for cron or a Kubernetes CronJob).
    #[arg(long)]
    pub once: bool,
    /// Probe this endpoint instead of the scenario's target: http://HOST:PORT or
    /// https://HOST[:PORT].
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// The probe's folder [default: reports/<scenario>/probe-<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write into --out even if it is not empty.
    #[arg(long)]
    pub force: bool,
    /// Speak HTTP/2 with prior knowledge (h2c) to a plain http:// target.
    #[arg(long)]
    pub http2: bool,
    /// Serve the probe's numbers (requests, latency, burn rates, firing alerts, spend) as
    /// Prometheus text on GET http://ADDR/metrics, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// No status line at each report refresh.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let scenario = gauntlet::scenario::load(&args.scenario)?;
    refuse_literal_keys(&scenario)?;
    note_what_is_left_out(&scenario, args.once);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| super::default_out(&scenario.name, "probe-", SystemTime::now()));
    let options = ProbeOptions {
        once: args.once,
        target: args.target.clone(),
        tls: args.tls.settings()?,
        http2: args.http2,
        metrics: None,
        quiet: args.quiet,
    };
    let runtime = super::runtime()?;
    let exporter = match args.metrics_listen {
        Some(addr) => Some(runtime.block_on(super::run::start_exporter(addr, Board::default()))?),
        None => None,
    };
    let options = ProbeOptions {
        metrics: exporter.as_ref().map(MetricsServer::board),
        ..options
    };
    let folder = RunDir::create(&out, args.force).map_err(|e| InvalidInput(e.to_string()))?;
    let dir = ProbeDir::new(&folder, scenario.probe.keep.get());
    let (stop_tx, stop_rx) = watch::channel(false);
    runtime.spawn(async move {
        super::stop_signal().await;
        eprintln!(
            "\nstopping: waiting for the answers in flight (up to {} s)...",
            gauntlet::engine::DEFAULT_DRAIN.as_secs_f64()
        );
        let _ = stop_tx.send(true);
    });
    if !args.once {
        let p = &scenario.probe;
        eprintln!(
            "probing at {} (SLA window {}, report every {}); alerts go to {}; Ctrl-C stops",
            p.rate,
            humantime::format_duration(p.window),
            humantime::format_duration(p.report_every),
            dir.path().join(ALERTS_FILE).display()
        );
    }
    let ended = runtime.block_on(gauntlet::probe::run(&scenario, &options, &dir, stop_rx));
    if let Some(server) = exporter {
        runtime.block_on(server.shutdown());
    }
    if ended.is_err() {
        folder.discard_if_empty();
    }
    let ended = ended.map_err(|e| -> anyhow::Error {
        if e.is_invalid_input() {
            InvalidInput(e.to_string()).into()
        } else {
            anyhow::Error::new(e).context(format!("probing into {}", out.display()))
        }
    })?;
    let report = dir.path().join("index.html");
    Ok(match ended {
        ProbeEnd::Round { passed, summary } => {
            print!("{}", gauntlet::report::terminal_summary(&summary));
            println!("report: {}", report.display());
            println!("probe round: {}", if passed { "pass" } else { "FAIL" });
            if passed {
                Outcome::Ok
            } else {
                Outcome::SlaViolated
            }
        }
        ProbeEnd::Stopped { .. } => {
            eprintln!("probe stopped; report: {}", report.display());
            Outcome::Interrupted
        }
        ProbeEnd::Capped { cap, .. } => {
            eprintln!("probe stopped: {cap}; report: {}", report.display());
            Outcome::Capped
        }
    })
}

/// Probe mode reaches real endpoints: a key must come from the environment. Every literal
/// one is named, with its place in the file (exit 2).
fn refuse_literal_keys(scenario: &Scenario) -> Result<(), ConfigErrors> {
    match scenario.probe.literal_keys.as_slice() {
        [] => Ok(()),
        keys => Err(ConfigErrors(keys.to_vec())),
    }
}

/// Says what a probe does not do with what the scenario has.
fn note_what_is_left_out(scenario: &Scenario, once: bool) {
    if !scenario.faults.is_empty() {
        eprintln!(
            "note: probe mode never injects faults; the scenario's {} [[faults]] are ignored",
            scenario.faults.len()
        );
    }
    if !once && gauntlet::probe::budgets(&scenario.sla).is_empty() {
        eprintln!(
            "note: [sla] sets neither `availability` nor `p99_latency`, so there is no error \
             budget to alert on; the SLA is still checked over each window"
        );
    }
}
