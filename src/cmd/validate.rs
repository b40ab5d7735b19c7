//! `gauntlet validate FILE...`: check scenario files without running them.

use std::path::PathBuf;

use super::{InvalidInput, Outcome};

/// A file with thousands of mistakes is usually the wrong file; show enough to tell.
const MAX_SHOWN: usize = 100;

/// Check scenario files without running them: syntax, types, unknown keys, values,
/// referenced profile files and environment variables. Exit 2 if any file is invalid.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut bad = 0;
    for file in &args.files {
        match gauntlet::scenario::load(file) {
            Ok(s) => {
                let warmup = if s.load.warmup.is_zero() {
                    String::new()
                } else {
                    format!(", warmup {}", humantime::format_duration(s.load.warmup))
                };
                println!(
                    "ok: {} ({} classes, {} upstreams, {}{warmup})",
                    file.display(),
                    s.requests.len(),
                    s.upstreams.len(),
                    humantime::format_duration(s.load.total_duration()),
                );
            }
            Err(errors) => {
                bad += 1;
                let n = errors.0.len();
                eprintln!(
                    "invalid: {} ({n} error{})",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
                for e in errors.0.iter().take(MAX_SHOWN) {
                    eprintln!("  {e}");
                }
                if n > MAX_SHOWN {
                    eprintln!("  ... and {} more", n - MAX_SHOWN);
                }
            }
        }
    }
    if bad > 0 {
        return Err(
            InvalidInput(format!("{bad} of {} files are invalid", args.files.len())).into(),
        );
    }
    Ok(Outcome::Ok)
}
