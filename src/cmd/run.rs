//! `gauntlet run`: load a scenario, start what it needs, drive the load, write the run folder
//! (the engine's evidence, then the reports, each file once), print the summary table and exit
//! with the verdict.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use gauntlet::engine::{self, Finished, RunOptions, SampleSink};
use gauntlet::observe::view::LiveView;
use gauntlet::observe::{Board, MetricsServer, OtlpEndpoint, OtlpPusher, PushTally};
use gauntlet::rundir::{RequestLog, RequestLogEnd, RowNames, RunDir, RunFile};
use gauntlet::scenario::Scenario;

use tokio::sync::watch;

use super::plan_args::PlanArgs;
use super::tls_args::TlsArgs;
use super::{InvalidInput, Outcome};

/// Run a scenario: start its mock upstreams and gateway, send the weighted request mix on
/// schedule, and check the SLA.
#[derive(Debug, Parser)]
pub struct Args {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Send the load to this gateway instead of the scenario's target: http://HOST:PORT or
    /// https://HOST[:PORT] (any host: the load goes wherever this names).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Folder for the run's files [default: reports/<scenario>/<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Speak HTTP/2 with prior knowledge (h2c) to a plain http:// target. Over https://, ALPN
    /// already picks HTTP/2 when the server offers it.
    #[arg(long)]
    pub http2: bool,
    /// Threads that send the load [default: one per core]. Fewer leave cores to a gateway or
    /// mocks running on the same machine.
    #[arg(long, value_name = "N")]
    pub load_threads: Option<std::num::NonZeroUsize>,
    /// Local addresses the load's connections leave from, taken in turn: a range
    /// (127.0.0.2-127.0.0.9), a comma list (127.0.0.2,127.0.0.5) or both. Each must be an
    /// address of this machine; each gives its own ~28k ephemeral ports towards one server,
    /// for runs holding more connections than one address has ports. The load still goes
    /// only where the scenario (or --target) sends it.
    #[arg(long, value_name = "LIST")]
    pub source_ips: Option<String>,
    /// Also write requests.csv: one row per request, streamed to disk during the run.
    #[arg(long)]
    pub raw: bool,
    /// Project the cost at this many tokens a month (repeatable)
    /// [default: 5M, 50M, 500M and 5B].
    #[arg(long, value_name = "N")]
    pub monthly_tokens: Vec<u64>,
    /// Start even when the plan's estimated cost exceeds the scenario's `[budget]` (the run
    /// still stops when it would pass the budget).
    #[arg(long)]
    pub yes: bool,
    /// Serve the run's live numbers as Prometheus text on GET http://ADDR/metrics while it
    /// runs, e.g. 127.0.0.1:9464 (port 0 picks a free port; the URL is printed on stderr).
    /// Any address is taken as given: one that is not loopback lets whoever reaches it read
    /// the run's metrics, without authentication.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Keep serving the final numbers this long after the run, so a scraper's next scrape
    /// sees them (Prometheus scrapes every 15 s by default); Ctrl-C ends it early
    /// [default: the server stops with the run].
    #[arg(long, value_name = "D", requires = "metrics_listen",
          value_parser = gauntlet::config::parse_duration)]
    pub metrics_linger: Option<Duration>,
    /// Push the same live numbers as OTLP metrics (HTTP/protobuf) to the collector at this
    /// base URL, e.g. http://127.0.0.1:4318 (sent to URL/v1/metrics), every --otlp-interval
    /// and once more at the end. A collector that is down costs warnings, never the run.
    #[arg(long, value_name = "URL")]
    pub otlp: Option<String>,
    /// How often to push to --otlp.
    #[arg(long, value_name = "D", requires = "otlp", default_value = "5s",
          value_parser = gauntlet::config::parse_duration)]
    pub otlp_interval: Duration,
    /// No live full-screen view on a terminal: a progress bar instead, as without a terminal
    /// (where the output is plain lines anyway).
    #[arg(long)]
    pub plain: bool,
    /// Send only this shard's slice of the plan, I of N (0-based): every N-th arrival of the
    /// one schedule, every N-th closed-model user. Also from JOB_COMPLETION_INDEX and
    /// GAUNTLET_SHARDS (a Kubernetes Indexed Job's pods). Shard 0 alone plays the faults;
    /// each shard writes its part (part.gpart) for `gauntlet merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Where shard 0 (the coordinator) listens, for the shards to register with: a live
    /// sharded run, started together and merged into one verdict by shard 0.
    #[arg(long, value_name = "HOST:PORT", env = "GAUNTLET_COORDINATOR")]
    pub coordinator: Option<String>,
    /// How long the coordinator waits for every shard to register.
    #[arg(long, value_name = "D", default_value = "120s", env = "GAUNTLET_WAIT_FOR_SHARDS",
          value_parser = gauntlet::config::parse_duration)]
    pub wait_for_shards: Duration,
}

/// `--source-ips`, parsed and checked to be this machine's addresses before anything starts.
fn source_ips(list: &str) -> Result<Vec<std::net::IpAddr>, InvalidInput> {
    let bad = |e: engine::SourceIpsError| InvalidInput(format!("--source-ips `{list}`: {e}"));
    let addrs = engine::parse_source_ips(list).map_err(bad)?;
    engine::check_source_ips(&addrs).map_err(bad)?;
    Ok(addrs)
}

/// Whether the run gets the live full-screen view: asked for neither quiet nor plain output,
/// and both output streams are a terminal (a redirected stdout keeps its text clean).
fn wants_view(args: &Args) -> bool {
    !args.plan.quiet
        && !args.plain
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let scenario = gauntlet::scenario::load(&args.scenario)?;
    let shard =
        gauntlet::cluster::ShardId::resolve(args.shard.as_deref(), |k| std::env::var(k).ok())
            .map_err(|e| InvalidInput(e.to_string()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| super::default_out(&scenario.name, "", SystemTime::now()));
    let source_ips = match &args.source_ips {
        Some(list) => source_ips(list)?,
        None => Vec::new(),
    };
    let options = args.plan.apply(RunOptions {
        source_ips,
        target: args.target.clone(),
        tls: args.tls.settings()?,
        http2: args.http2,
        load_threads: args.load_threads,
        monthly_tokens: if args.monthly_tokens.is_empty() {
            RunOptions::default().monthly_tokens
        } else {
            args.monthly_tokens.clone()
        },
        shard,
        ..RunOptions::default()
    });
    // Reject bad --rate/--duration before anything starts.
    let plan = engine::plan_for(&scenario, &options).map_err(|e| InvalidInput(e.to_string()))?;
    if let Some(budget) = &scenario.budget {
        check_budget(budget, engine::estimate(&scenario, &plan), args.yes)?;
    }
    if shard.is_none()
        && let Some(c) = &args.coordinator
    {
        return Err(InvalidInput(format!(
            "--coordinator {c} (or GAUNTLET_COORDINATOR) is set but no shard is: give --shard \
             I/N, or JOB_COMPLETION_INDEX and GAUNTLET_SHARDS"
        ))
        .into());
    }
    if let (Some(shard), Some(coordinator)) = (shard, &args.coordinator) {
        sharded_refusals(&args)?;
        let invocation = super::sharded::Invocation {
            scenario: &scenario,
            scenario_path: &args.scenario,
            out,
            force: args.plan.force,
            target_given: args.target.is_some(),
        };
        let member = super::sharded::Membership {
            shard,
            coordinator: coordinator.clone(),
            wait: args.wait_for_shards,
        };
        return super::sharded::run(invocation, options, member);
    }
    // With the system's CAs, for an https:// collector; loaded before anything is written.
    let otlp = match otlp_endpoint(&args)? {
        Some(endpoint) => Some((
            endpoint,
            gauntlet::tls::ClientTls::system().context("--otlp: TLS setup")?,
        )),
        None => None,
    };
    let runtime = super::runtime()?;
    let viewing = wants_view(&args);
    // One board for every way out: what a scrape serves is what a push sends and the view
    // shows.
    let board = (args.metrics_listen.is_some() || otlp.is_some() || viewing).then(Board::default);
    // Listening before the run folder exists: an address in use fails the run before it
    // leaves anything behind.
    let exporter = match (args.metrics_listen, &board) {
        (Some(addr), Some(board)) => Some(runtime.block_on(start_exporter(addr, board.clone()))?),
        _ => None,
    };
    let mut run_dir =
        RunDir::create(&out, args.plan.force).map_err(|e| InvalidInput(e.to_string()))?;
    let raw = if args.raw {
        Some(raw_log(&scenario, &mut run_dir)?)
    } else {
        None
    };
    let options = RunOptions {
        sink: raw.as_ref().map(|log| {
            let log = log.clone();
            SampleSink::new(move |s| log.record(s))
        }),
        metrics: board.clone(),
        native_histograms: args.metrics_listen.is_some(),
        // The view replaces the progress bar.
        quiet: options.quiet || viewing,
        ..options
    };
    let pusher = match (otlp, &board) {
        (Some((endpoint, tls)), Some(board)) => {
            eprintln!(
                "otlp: pushing to {endpoint} every {}",
                humantime::format_duration(args.otlp_interval)
            );
            let _in_runtime = runtime.enter();
            Some(OtlpPusher::start(
                endpoint,
                args.otlp_interval,
                board.clone(),
                &tls,
            ))
        }
        _ => None,
    };
    // One listener for the whole command: a signal that comes after the run (while the
    // reports are written) is still seen by the linger, which a listener started later would
    // miss.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let running = Arc::new(AtomicBool::new(true));
    let still_running = running.clone();
    let signalled = stop_tx.clone();
    runtime.spawn(async move {
        super::stop_signal().await;
        // The view says so itself; a line on its screen would garble it.
        if still_running.load(Ordering::Relaxed) && !viewing {
            eprintln!(
                "\nstopping: finishing requests in flight (up to {} s)...",
                gauntlet::engine::DEFAULT_DRAIN.as_secs_f64()
            );
        }
        let _ = signalled.send(true);
    });
    // `q` and Ctrl-C in the view stop the run as Ctrl-C does without it.
    let view = match board.filter(|_| viewing) {
        Some(board) => {
            let pressed = stop_tx.clone();
            let stop = move || {
                let _ = pressed.send(true);
            };
            match LiveView::start(board, stop) {
                Ok(view) => Some(view),
                // The run does not need the view; it goes on without a display.
                Err(e) => {
                    eprintln!("warning: the live view could not start ({e}); running without it");
                    None
                }
            }
        }
        None => None,
    };
    let finished = runtime.block_on(engine::run_scenario(&scenario, &options, stop_rx.clone()));
    running.store(false, Ordering::Relaxed);
    // The terminal is given back before anything is printed, whatever the run's end.
    if let Some(view) = view
        && let Err(e) = view.finish()
    {
        eprintln!("warning: the live view failed: {e}");
    }
    // The final push goes out as soon as the numbers are final, before the reports.
    if let Some(pusher) = pusher {
        warn_failed_pushes(&runtime.block_on(pusher.finish()));
    }
    let finished = match finished {
        Ok(f) => f,
        Err(e) => {
            // The raw log's temporary file goes with the log; then a run folder this run made
            // and never used goes too.
            drop((options, raw));
            run_dir.discard_if_empty();
            return Err(e.into());
        }
    };
    engine::write_run(&mut run_dir, &finished)
        .with_context(|| format!("writing the run folder {}", out.display()))?;
    gauntlet::report::write_reports(&finished.summary, &mut run_dir)
        .with_context(|| format!("writing the reports into {}", out.display()))?;
    if let Some(log) = raw {
        finish_raw_log(&log)?;
    }
    if let Some(shard) = shard {
        let at =
            super::merge::write_part(&mut run_dir, &scenario, &args.scenario, shard, &finished)?;
        eprintln!("shard {shard}: part written to {}", at.display());
    }
    print_table(&finished, &run_dir);
    if let Err(e) = gauntlet::report::append_github_step_summary(&finished.summary) {
        eprintln!("warning: could not append to $GITHUB_STEP_SUMMARY: {e}");
    }
    if let Some(server) = exporter {
        // Whoever stopped the run wants the command over, not a linger.
        let linger = args
            .metrics_linger
            .filter(|_| !finished.summary.interrupted);
        runtime.block_on(linger_then_stop(server, linger, stop_rx));
    }
    Ok(if finished.summary.interrupted {
        Outcome::Interrupted
    } else if finished.summary.sla.passed {
        Outcome::Ok
    } else {
        Outcome::SlaViolated
    })
}

/// What a live sharded run cannot do, refused before anything starts rather than ignored:
/// the live numbers come from one process's own recorder, and in a sharded run that is one
/// shard's slice, which a scrape or a push would pass off as the whole load. The full-screen
/// view falls back to the progress bar for the same reason, and says so.
fn sharded_refusals(args: &Args) -> Result<(), InvalidInput> {
    let why = "a live sharded run (--coordinator) has no live exporter: each process records \
               only its own shard's slice, and the merged numbers exist once the run ends \
               (in the coordinator's run folder)";
    let exporter = [
        ("--metrics-listen", args.metrics_listen.is_some()),
        ("--otlp", args.otlp.is_some()),
    ];
    if let Some((flag, _)) = exporter.into_iter().find(|(_, given)| *given) {
        return Err(InvalidInput(format!("{flag} is not available here: {why}")));
    }
    if wants_view(args) {
        eprintln!("note: a live sharded run shows a progress bar, not the live view: {why}");
    }
    Ok(())
}

/// `--otlp` checked before anything starts: a URL that is no endpoint is bad input (exit 2).
fn otlp_endpoint(args: &Args) -> Result<Option<OtlpEndpoint>, InvalidInput> {
    let Some(url) = &args.otlp else {
        return Ok(None);
    };
    if args.otlp_interval.is_zero() {
        return Err(InvalidInput(
            "--otlp-interval: must be longer than 0s, e.g. 5s".to_string(),
        ));
    }
    OtlpEndpoint::parse(url)
        .map(Some)
        .map_err(|e| InvalidInput(format!("--otlp: {e}")))
}

/// A collector that was down or refused pushes is worth a warning, not a failed run.
fn warn_failed_pushes(tally: &PushTally) {
    if tally.failed > 0 {
        eprintln!(
            "warning: otlp: {} of {} pushes failed (last: {})",
            tally.failed,
            tally.failed + tally.accepted,
            tally.last_error.as_deref().unwrap_or("unknown")
        );
    }
}

/// Starts the live exporter and says where it is; an address that cannot be listened on is
/// a server that would not start (exit 3), named with the flag that asked for it.
pub(super) async fn start_exporter(
    addr: SocketAddr,
    board: Board,
) -> anyhow::Result<MetricsServer> {
    let server = MetricsServer::start(addr, board)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen there"))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: --metrics-listen {addr} is not a loopback address: whoever reaches it \
             can read this run's metrics"
        );
    }
    eprintln!("live metrics: http://{}/metrics", server.addr());
    Ok(server)
}

/// Serves the final numbers for `linger` (or until Ctrl-C / SIGTERM), then stops the server.
async fn linger_then_stop(
    server: MetricsServer,
    linger: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    if let Some(linger) = linger.filter(|d| !d.is_zero()) {
        eprintln!(
            "live metrics: serving the final numbers for {} more (Ctrl-C to stop now)",
            humantime::format_duration(linger)
        );
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    server.shutdown().await;
}

fn print_table(run: &Finished, dir: &RunDir) {
    print!("{}", gauntlet::report::terminal_summary(&run.summary));
    println!("report: {}", dir.file(RunFile::IndexHtml).display());
}

/// The raw request log, named after the scenario's classes and upstreams.
fn raw_log(scenario: &Scenario, dir: &mut RunDir) -> anyhow::Result<RequestLog> {
    let names = RowNames {
        classes: scenario.requests.iter().map(|c| c.name.clone()).collect(),
        upstreams: scenario.upstreams.iter().map(|u| u.name.clone()).collect(),
    };
    dir.request_log(names)
        .with_context(|| format!("creating requests.csv in {}", dir.path().display()))
}

/// A write that failed mid-run costs only the raw log: the run itself is reported.
fn finish_raw_log(log: &RequestLog) -> anyhow::Result<()> {
    match log.finish().context("finishing requests.csv")? {
        RequestLogEnd::Written { .. } => {}
        RequestLogEnd::Abandoned(e) => {
            eprintln!("warning: requests.csv was not written completely: {e}");
        }
    }
    Ok(())
}

/// Says what the plan should cost against its `[budget]`, and refuses a plan that would pass
/// it unless told `--yes`.
fn check_budget(
    budget: &gauntlet::scenario::Budget,
    estimate: Option<engine::Estimate>,
    yes: bool,
) -> Result<(), InvalidInput> {
    let limit = match (budget.max_cost, budget.max_tokens) {
        (Some(c), Some(t)) => format!("${c:.2} and {t} tokens"),
        (Some(c), None) => format!("${c:.2}"),
        (None, Some(t)) => format!("{t} tokens"),
        (None, None) => String::new(),
    };
    let Some(e) = estimate else {
        eprintln!(
            "budget {limit}: this plan's cost cannot be estimated before it runs (a closed \
             model, a dataset, or a class without max_tokens); the run stops at the budget"
        );
        return Ok(());
    };
    eprintln!(
        "estimated cost of the plan: at most ${:.4} ({:.0} requests, {:.0} tokens); budget {limit}",
        e.cost_usd, e.requests, e.tokens
    );
    let over = budget.max_cost.is_some_and(|c| e.cost_usd > c)
        || budget.max_tokens.is_some_and(|t| e.tokens > t as f64);
    if over && !yes {
        return Err(InvalidInput(format!(
            "the plan's estimated cost (${:.4}, {:.0} tokens) exceeds the scenario's [budget] \
             ({limit}): lower the rate, the duration or max_tokens, or pass --yes to start \
             anyway (the run stops when it would pass the budget)",
            e.cost_usd, e.tokens
        )));
    }
    Ok(())
}
