//! The command-line edge: one module per subcommand, each owning its arguments and turning
//! library results into an exit status. `anyhow` lives here and nowhere in the library.

pub mod bakeoff;
pub mod capacity;
pub mod compare;
pub mod gateway;
pub mod k8s;
pub mod merge;
pub mod mock;
mod part_origin;
mod plan_args;
pub mod probe;
pub mod report;
pub mod run;
pub mod schema;
mod sharded;
mod tls_args;
pub mod validate;

use std::process::ExitCode;

pub const EXIT_OK: u8 = 0;
pub const EXIT_SLA_VIOLATED: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
/// The run itself failed: its preflight found the target or a running mock not answering
/// (`engine::PreflightError`), a server would not start, a file could not be written.
pub const EXIT_RUN_FAILED: u8 = 3;
/// `gauntlet probe` stopped at a daily cap (`max_cost_per_day`, `max_tokens_per_day`).
pub const EXIT_CAPPED: u8 = 4;
pub const EXIT_INTERRUPTED: u8 = 130;

/// What a command achieved when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    SlaViolated,
    Interrupted,
    /// A probe reached a daily cap.
    Capped,
}

/// Marks an error as the user's input being wrong (exit 2) rather than the run failing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// A share given on the command line as "5%" or 0.05; the error names the flag.
fn percent(flag: &str, text: &str) -> Result<f64, InvalidInput> {
    use gauntlet::config::{RawNum, parse_ratio};
    let raw = match text.trim().parse::<f64>() {
        Ok(n) => RawNum::Number(n),
        Err(_) => RawNum::Text(text.to_string()),
    };
    parse_ratio(&raw).map_err(|e| InvalidInput(format!("{flag}: {e}")))
}

/// Logs to stderr at `default` unless `GAUNTLET_LOG` says otherwise.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAUNTLET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn exit_code(result: anyhow::Result<Outcome>) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::from(EXIT_OK),
        Ok(Outcome::SlaViolated) => ExitCode::from(EXIT_SLA_VIOLATED),
        Ok(Outcome::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Ok(Outcome::Capped) => ExitCode::from(EXIT_CAPPED),
        Err(e) => {
            let invalid = e.chain().any(|c| {
                c.is::<gauntlet::config::ConfigErrors>()
                    || c.is::<gauntlet::config::ConfigError>()
                    || c.is::<InvalidInput>()
                    || c.downcast_ref::<gauntlet::engine::EngineError>()
                        .is_some_and(gauntlet::engine::EngineError::is_invalid_input)
                    || c.downcast_ref::<gauntlet::cluster::link::LinkError>()
                        .is_some_and(gauntlet::cluster::link::LinkError::is_invalid_input)
            });
            eprintln!("error: {e:#}");
            ExitCode::from(if invalid {
                EXIT_INVALID
            } else {
                EXIT_RUN_FAILED
            })
        }
    }
}

/// A multi-threaded runtime for a command; building one only fails if the OS refuses threads.
#[allow(dead_code)] // the run command builds its runtime here
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Which signal asked a command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ctrl-C (SIGINT): a person stopped it.
    Interrupt,
    /// SIGTERM: a supervisor (systemd, Kubernetes, CI) ended it.
    Terminate,
}

/// Waits for Ctrl-C or SIGTERM. A signal that cannot be listened for is warned about and
/// waited on no further: a command is never stopped by a failed handler.
pub async fn stop_signal() -> StopSignal {
    async fn interrupt() -> StopSignal {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("warning: cannot listen for Ctrl-C ({e})");
            std::future::pending::<()>().await;
        }
        StopSignal::Interrupt
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                s = interrupt() => s,
                _ = term.recv() => StopSignal::Terminate,
            },
            Err(e) => {
                eprintln!("warning: cannot listen for SIGTERM ({e}); stop with Ctrl-C");
                interrupt().await
            }
        }
    }
    #[cfg(not(unix))]
    interrupt().await
}

/// `reports/<scenario>/<prefix><UTC timestamp>/`, with the characters file systems dislike
/// left out of both names.
fn default_out(scenario: &str, prefix: &str, now: std::time::SystemTime) -> std::path::PathBuf {
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
    let stamp = gauntlet::rundir::stamp(humantime::format_rfc3339_seconds(now));
    std::path::PathBuf::from("reports")
        .join(name)
        .join(format!("{prefix}{stamp}"))
}
