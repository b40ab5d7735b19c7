//! The one error type of the run folder: every variant names the file it is about.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{} already exists and is not empty; choose another --out or pass --force",
        path.display()
    )]
    NotEmpty { path: PathBuf },
    #[error("{}: already written by this run; a run writes each file once", path.display())]
    WrittenTwice { path: PathBuf },
    #[error("{}: encoding {what}: {message}", path.display())]
    Encode {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
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
}

impl RunDirError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        RunDirError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when the input (a folder the user named, a summary or log file) is at fault rather
    /// than the machine.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            RunDirError::Parse { .. }
            | RunDirError::NewerSchema { .. }
            | RunDirError::Hlog { .. }
            | RunDirError::NotEmpty { .. } => true,
            RunDirError::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            RunDirError::WrittenTwice { .. } | RunDirError::Encode { .. } => false,
        }
    }
}
