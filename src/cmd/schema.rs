//! `gauntlet schema`: print the JSON Schema of scenario files for editors.

use super::Outcome;

/// Print the JSON Schema of the scenario format, so editors can complete and check it
/// (e.g. `gauntlet schema > gauntlet.schema.json` and point taplo or VS Code at it).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<Outcome> {
    let schema = gauntlet::scenario::json_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(Outcome::Ok)
}
