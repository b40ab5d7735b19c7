//! Reading a `summary.json` back (from a run folder or the file itself), refusing schema
//! versions newer than this build understands.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ReportError, SUMMARY_JSON};
use crate::metrics::{SCHEMA_VERSION, Summary};

#[derive(Deserialize)]
struct VersionOnly {
    schema_version: Option<u64>,
}

/// Loads a summary from a run folder or a `summary.json` path; returns it with the folder it
/// came from.
pub fn load_summary(path: &Path) -> Result<(Summary, PathBuf), ReportError> {
    let file = if path.is_dir() {
        path.join(SUMMARY_JSON)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| ReportError::io(&file, e))?;
    let parse = |e: serde_json::Error| ReportError::Parse {
        path: file.clone(),
        message: e.to_string(),
    };
    // The version is read on its own first: a newer file may not parse as today's struct, and
    // "too new" is the error that tells the user what to do.
    let version: VersionOnly = serde_json::from_str(&text).map_err(parse)?;
    match version.schema_version {
        None => {
            return Err(ReportError::Parse {
                path: file,
                message: "no `schema_version` field".into(),
            });
        }
        Some(found) if found > u64::from(SCHEMA_VERSION) => {
            return Err(ReportError::NewerSchema {
                path: file,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {}
    }
    let summary: Summary = serde_json::from_str(&text).map_err(parse)?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((summary, dir))
}
