//! The one atomic writer: every file of a run folder is written to a temporary sibling and
//! renamed into place, so an interrupted run or a reader never meets a half-written file.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::RunDirError;

/// A file being written: bytes go to a hidden temporary sibling until `commit` renames it
/// over the final path. Dropped without `commit`, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
    committed: bool,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self, RunDirError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| RunDirError::io(path, io::Error::other("not a file path")))?;
        // Same folder, so the final rename never crosses file systems; the process id keeps
        // two gauntlets writing into one folder (`--force`) off each other's temporaries.
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| RunDirError::io(&tmp, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::new(file)),
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<PathBuf, RunDirError> {
        if let Some(writer) = self.writer.take() {
            let file = writer
                .into_inner()
                .map_err(|e| RunDirError::io(&self.tmp, e.into_error()))?;
            file.sync_all().map_err(|e| RunDirError::io(&self.tmp, e))?;
        }
        fs::rename(&self.tmp, &self.path).map_err(|e| RunDirError::io(&self.path, e))?;
        self.committed = true;
        Ok(self.path.clone())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            self.writer.take();
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<PathBuf, RunDirError> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| RunDirError::io(path, e))?;
    file.commit()
}
