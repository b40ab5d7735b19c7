//! The one error type of the report writers.

use std::io;
use std::path::{Path, PathBuf};

use crate::rundir::RunDirError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Reading or writing a file of the run folder.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error("rendering {what}: {message}")]
    Render { what: &'static str, message: String },
    /// A file given to read back is not what it should be.
    #[error("{}: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
}

impl ReportError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the input (a summary or log file) is at fault rather than the machine.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            ReportError::RunDir(e) => e.is_invalid_input(),
            ReportError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            ReportError::Render { .. } => false,
            ReportError::Unreadable { .. } => true,
        }
    }

    pub(crate) fn render(what: &'static str, e: impl std::fmt::Display) -> Self {
        ReportError::Render {
            what,
            message: e.to_string(),
        }
    }
}
