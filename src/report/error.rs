//! The one error type of the report writers and readers.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a gauntlet summary: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "{}: schema_version {found} is newer than this gauntlet understands (up to {supported}); \
         use a newer gauntlet to read it",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    #[error("{}: {message}", path.display())]
    Hlog { path: PathBuf, message: String },
    #[error("rendering {what}: {message}")]
    Render { what: &'static str, message: String },
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
            ReportError::Parse { .. } | ReportError::NewerSchema { .. } => true,
            ReportError::Hlog { .. } => true,
            ReportError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            ReportError::Render { .. } => false,
        }
    }

    pub(crate) fn render(what: &'static str, e: impl std::fmt::Display) -> Self {
        ReportError::Render {
            what,
            message: e.to_string(),
        }
    }
}
