//! The run folder: `summary.json` and `latency.hlog`, each written to a temporary file and
//! renamed, so a reader never sees half a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::session::Finished;
use crate::metrics::{self, HlogError, Summary};

pub const SUMMARY_FILE: &str = "summary.json";
pub const HLOG_FILE: &str = "latency.hlog";

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists and is not empty; choose another --out or pass --force")]
    NotEmpty { path: PathBuf },
    #[error("encoding the summary: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{path}: {source}")]
    Hlog { path: PathBuf, source: HlogError },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes sure `dir` can take a run: absent or empty, unless `force`.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<(), OutputError> {
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
        && !force
    {
        return Err(OutputError::NotEmpty {
            path: dir.to_path_buf(),
        });
    }
    fs::create_dir_all(dir).map_err(io(dir))
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

pub fn write_summary(dir: &Path, summary: &Summary) -> Result<PathBuf, OutputError> {
    let mut json = serde_json::to_vec_pretty(summary)?;
    json.push(b'\n');
    write_atomic(dir, SUMMARY_FILE, &json)
}

/// Writes the whole run folder: the summary and the histogram log.
pub fn write_run(dir: &Path, run: &Finished) -> Result<(), OutputError> {
    let mut hlog = Vec::new();
    metrics::write_hlog(&run.recorder, run.started_at, &mut hlog).map_err(|source| {
        OutputError::Hlog {
            path: dir.join(HLOG_FILE),
            source,
        }
    })?;
    write_atomic(dir, HLOG_FILE, &hlog)?;
    write_summary(dir, &run.summary)?;
    Ok(())
}
