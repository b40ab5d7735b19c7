//! The `gauntlet` command: parse the command line, run the library, map the outcome to an
//! exit code (0 pass, 1 SLA violated, 2 invalid input or usage, 3 the run failed, 4 a probe's
//! daily cap reached, 130 Ctrl-C).

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

// The gateway, mocks and engine allocate small buffers per request on every core; mimalloc's
// thread-local free lists cost a fraction of glibc malloc's locking on that path.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load-test and verify the SLA of OpenAI-compatible LLM gateways.
///
/// gauntlet starts scripted mock providers, drives a weighted request mix through a gateway
/// (its own reference gateway by default, or any gateway by URL), breaks providers on
/// schedule, and checks p99 latency, TTFT, availability, failover and cost against the
/// scenario's SLA.
#[derive(Parser)]
#[command(name = "gauntlet", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 pass, 1 SLA violated, 2 invalid input or usage, \
3 the run itself failed, 4 a probe reached its daily cap, 130 interrupted."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and check its SLA.
    Run(cmd::run::Args),
    Bakeoff(cmd::bakeoff::Args),
    Capacity(cmd::capacity::Args),
    Probe(cmd::probe::Args),
    Validate(cmd::validate::Args),
    Schema(cmd::schema::Args),
    Report(cmd::report::Args),
    Compare(cmd::compare::Args),
    Merge(cmd::merge::Args),
    /// Start the mock providers (or fault proxies in front of real ones) of a fleet file and
    /// serve until Ctrl-C / SIGTERM.
    #[command(visible_alias = "proxy")]
    Mock(cmd::mock::Args),
    /// Run the reference gateway (model router) standalone.
    Gateway(cmd::gateway::Args),
    K8s(cmd::k8s::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { cmd::EXIT_INVALID } else { 0 });
        }
    };
    // During a run the embedded gateway's unserved requests are the injected faults the run
    // measures and reports; one warning per request would bury the terminal.
    let default_log = match cli.command {
        Command::Run(_) | Command::Bakeoff(_) | Command::Capacity(_) | Command::Probe(_) => {
            "warn,gauntlet::gateway::server=error"
        }
        _ => "warn",
    };
    cmd::init_tracing(default_log);
    let result: anyhow::Result<cmd::Outcome> = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Bakeoff(args) => cmd::bakeoff::run(args),
        Command::Capacity(args) => cmd::capacity::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Compare(args) => cmd::compare::run(args),
        Command::Merge(args) => cmd::merge::run(args),
        Command::Mock(args) => cmd::mock::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::K8s(args) => cmd::k8s::run(args),
    };
    cmd::exit_code(result)
}
