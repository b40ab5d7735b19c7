//! `summary.json`: written pretty with a final newline, read back refusing schema versions
//! newer than this build understands.

use std::path::Path;

use serde::Deserialize;

use super::error::RunDirError;
use crate::metrics::{SCHEMA_VERSION, Summary};

#[derive(Deserialize)]
struct VersionOnly {
    schema_version: Option<u64>,
}

/// The bytes of `summary.json`.
pub(super) fn encode(summary: &Summary, path: &Path) -> Result<Vec<u8>, RunDirError> {
    let mut json = serde_json::to_vec_pretty(summary).map_err(|e| RunDirError::Encode {
        path: path.to_path_buf(),
        what: "the summary",
        message: e.to_string(),
    })?;
    json.push(b'\n');
    Ok(json)
}

/// Reads the summary at `file`.
pub(super) fn read(file: &Path) -> Result<Summary, RunDirError> {
    let text = std::fs::read_to_string(file).map_err(|e| RunDirError::io(file, e))?;
    let parse = |e: serde_json::Error| RunDirError::Parse {
        path: file.to_path_buf(),
        message: e.to_string(),
    };
    // The version is read on its own first: a newer file may not parse as today's struct, and
    // "too new" is the error that tells the user what to do.
    let version: VersionOnly = serde_json::from_str(&text).map_err(parse)?;
    match version.schema_version {
        None => {
            return Err(RunDirError::Parse {
                path: file.to_path_buf(),
                message: "no `schema_version` field".into(),
            });
        }
        Some(found) if found > u64::from(SCHEMA_VERSION) => {
            return Err(RunDirError::NewerSchema {
                path: file.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {}
    }
    serde_json::from_str(&text).map_err(parse)
}
