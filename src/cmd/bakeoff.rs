//! `gauntlet bakeoff`: one scenario against several gateways in turn (same seed, plan, mix and
//! fault timeline, upstreams reset between them), a run folder per target, and one table on
//! top — `bakeoff.json`, `bakeoff.html` and the terminal — with the exit code of the verdicts.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use clap::Parser;
use gauntlet::engine::{self, Bakeoff, Contender, ContenderTarget, Finished, RunOptions};
use gauntlet::report::BakeoffEntry;
use gauntlet::rundir::RunDir;
use tokio::sync::watch;

use super::plan_args::PlanArgs;
use super::{InvalidInput, Outcome};

/// The name `--embedded` takes in the table and as its run folder.
const EMBEDDED: &str = "embedded";

/// Run one scenario against several gateways in turn and compare them in one table.
///
/// Every target gets the same seed, plan, request mix and fault timeline. The scenario's
/// upstreams are started (or, for `url` upstreams, reached) once for the whole bake-off; between
/// targets their faults are cleared and their counters zeroed (`POST /__gauntlet/reset`) once
/// nothing is in flight, so no target inherits another's damage or retries.
///
/// Mocks and targets: a gateway gauntlet does not start cannot know the ports of mocks gauntlet
/// starts, so with any `--target` the scenario must name its upstreams by `url` (mocks started
/// by `gauntlet mock --config FLEET.toml`, each gateway configured to route to them, as in
/// scenarios/external-gateway.toml). `--embedded` alone works with any scenario that has a
/// `[gateway]` table: the reference gateway is built from it and bound to the mocks.
///
/// Writes OUT/NAME/ (each target's normal run folder), OUT/bakeoff.json and OUT/bakeoff.html.
/// Exit codes: 0 every target (or the `--require`d one) passed, 1 otherwise, 2 invalid input
/// (a malformed NAME=URL, a name given twice, `--require` or `--header` of a name not given),
/// 3 a target or upstream does not answer (checked before anything runs).
#[derive(Debug, Parser)]
pub struct Args {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// A gateway under test, named (letters, digits, `-`, `_`, `.`); repeatable.
    #[arg(long = "target", value_name = "NAME=URL")]
    pub targets: Vec<String>,
    /// Also run the reference gateway built from the scenario's [gateway] table, named
    /// `embedded`.
    #[arg(long)]
    pub embedded: bool,
    /// A header sent with every request to target NAME (for gateways that take their
    /// routing config per request); repeatable.
    #[arg(long = "header", value_name = "NAME:KEY=VALUE")]
    pub headers: Vec<String>,
    /// Only this target's verdict decides the exit code (the others are compared).
    #[arg(long, value_name = "NAME")]
    pub require: Option<String>,
    /// Folder for the bake-off [default: reports/<scenario>/bakeoff-<UTC timestamp>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// The line-up from the command line, or what is wrong with it.
fn contenders(args: &Args) -> Result<Vec<Contender>, InvalidInput> {
    let mut out: Vec<Contender> = Vec::new();
    if args.embedded {
        out.push(Contender {
            name: EMBEDDED.to_string(),
            target: ContenderTarget::Embedded,
            headers: Vec::new(),
        });
    }
    for t in &args.targets {
        let (name, url) = t.split_once('=').ok_or_else(|| {
            InvalidInput(format!(
                "--target `{t}`: expected NAME=URL, like gw=http://127.0.0.1:4000"
            ))
        })?;
        if !gauntlet::config::valid_name(name) {
            return Err(InvalidInput(format!(
                "--target `{t}`: the name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.`, not `.` or `..` (it names a folder)"
            )));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| InvalidInput(format!("--target `{t}`: `{url}` is not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(InvalidInput(format!(
                "--target `{t}`: `{url}` must be an http:// URL with a host, like http://127.0.0.1:4000"
            )));
        }
        if out.iter().any(|c| c.name == name) {
            return Err(InvalidInput(format!(
                "--target `{t}`: the name `{name}` is given twice{}",
                if name == EMBEDDED {
                    " (`embedded` is --embedded's)"
                } else {
                    ""
                }
            )));
        }
        out.push(Contender {
            name: name.to_string(),
            target: ContenderTarget::Url(url.trim_end_matches('/').to_string()),
            headers: Vec::new(),
        });
    }
    if out.is_empty() {
        return Err(InvalidInput(
            "a bake-off needs targets: give --target NAME=URL (repeatable) and/or --embedded"
                .into(),
        ));
    }
    let names = out
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    for h in &args.headers {
        let bad = || {
            InvalidInput(format!(
                "--header `{h}`: expected NAME:KEY=VALUE, like gw:x-portkey-config=pc-123"
            ))
        };
        let (name, kv) = h.split_once(':').ok_or_else(bad)?;
        let (key, value) = kv.split_once('=').ok_or_else(bad)?;
        if http::HeaderName::from_bytes(key.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(InvalidInput(format!(
                "--header `{h}`: `{key}: {value}` is not a valid HTTP header"
            )));
        }
        let Some(c) = out.iter_mut().find(|c| c.name == name) else {
            return Err(InvalidInput(format!(
                "--header `{h}`: no target is named `{name}` (the targets: {names})"
            )));
        };
        c.headers.push((key.to_string(), value.to_string()));
    }
    if let Some(r) = &args.require
        && !out.iter().any(|c| &c.name == r)
    {
        return Err(InvalidInput(format!(
            "--require `{r}`: no target is named so (the targets: {names})"
        )));
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let scenario = gauntlet::scenario::load(&args.scenario)?;
    let lineup = contenders(&args)?;
    engine::check_lineup(&scenario, &lineup).map_err(|e| InvalidInput(e.to_string()))?;
    let options = args.plan.apply(RunOptions::default());
    engine::plan_for(&scenario, &options).map_err(|e| InvalidInput(e.to_string()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| super::default_out(&scenario.name, "bakeoff-", SystemTime::now()));
    let out_dir = RunDir::create(&out, args.plan.force).map_err(|e| InvalidInput(e.to_string()))?;

    let runtime = super::runtime()?;
    let ran = runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            super::stop_signal().await;
            eprintln!("\nstopping: finishing the current target's requests in flight...");
            let _ = stop_tx.send(true);
        });
        let mut bakeoff = Bakeoff::start(&scenario, &lineup).await?;
        let mut finished: Vec<(String, Finished)> = Vec::new();
        for c in &lineup {
            if *stop_rx.borrow() {
                break;
            }
            if !args.plan.quiet {
                eprintln!("bake-off: target `{}`", c.name);
            }
            match bakeoff.run(&scenario, c, &options, stop_rx.clone()).await {
                Ok(f) => finished.push((c.name.clone(), f)),
                Err(e) => {
                    bakeoff.shutdown().await;
                    return Err(anyhow::Error::new(e));
                }
            }
        }
        bakeoff.shutdown().await;
        let interrupted = *stop_rx.borrow();
        Ok::<_, anyhow::Error>((finished, interrupted))
    });
    let (finished, interrupted) = match ran {
        Ok(r) => r,
        Err(e) => {
            // A bake-off that could not start leaves no empty folder behind.
            out_dir.discard_if_empty();
            return Err(e);
        }
    };

    for (name, f) in &finished {
        let dir = out.join(name);
        let mut run_dir =
            RunDir::create(&dir, args.plan.force).map_err(|e| InvalidInput(e.to_string()))?;
        engine::write_run(&mut run_dir, f)
            .with_context(|| format!("writing the run folder {}", dir.display()))?;
        gauntlet::report::write_reports(&f.summary, &mut run_dir)
            .with_context(|| format!("writing the reports into {}", dir.display()))?;
    }
    let entries: Vec<BakeoffEntry<'_>> = finished
        .iter()
        .map(|(name, f)| BakeoffEntry {
            name,
            run_dir: name,
            summary: &f.summary,
        })
        .collect();
    let seed = args.plan.seed.unwrap_or(scenario.seed);
    let table =
        gauntlet::report::bakeoff_table(&scenario.name, seed, &entries, args.require.as_deref());
    let summaries: Vec<_> = finished.iter().map(|(_, f)| &f.summary).collect();
    gauntlet::report::write_bakeoff(&table, &summaries, &out)
        .with_context(|| format!("writing the bake-off into {}", out.display()))?;
    print!("{}", gauntlet::report::bakeoff_terminal(&table));
    println!(
        "report: {}",
        out.join(gauntlet::report::BAKEOFF_HTML).display()
    );
    Ok(if interrupted {
        Outcome::Interrupted
    } else if table.passed {
        Outcome::Ok
    } else {
        Outcome::SlaViolated
    })
}
