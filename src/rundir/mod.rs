//! The run folder's one owner: `RunDir` knows every file name a run folder holds, writes each
//! through the one atomic writer, at most once per run, and reads back `summary.json`,
//! `latency.hlog`, `timeseries.csv` and `requests.csv`. The engine (the summary and the
//! histogram log) and `report` (the rendered files) both write through it.
//!
//! It depends on `metrics` only, so `engine` and `report` share it without importing each other.

mod atomic;
mod error;
mod file;
mod hlog;
mod requests;
mod summary;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::metrics::{Recorder, Summary};

pub use atomic::AtomicFile;
pub use error::RunDirError;
pub use file::RunFile;
pub use hlog::HlogEntry;
pub use requests::{
    REQUESTS_HEADER, RequestLog, RequestLogEnd, RequestRow, RequestWriter, RowNames,
};

/// A run folder, and what has been written into it through this value. Writing the same file
/// twice is refused: a run's files are each written once, by the one part that owns them.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    written: BTreeSet<RunFile>,
    /// Made by `create`, so a run that never started may take it away again.
    created: bool,
}

/// A folder's `file`, or the file named directly: the folder and the file's path.
pub fn locate(path: &Path, file: RunFile) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        (path.to_path_buf(), path.join(file.name()))
    } else {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, path.to_path_buf())
    }
}

/// A UTC time as a folder name that sorts in time order, at the precision `t` was formatted
/// with: `20261201T054205Z` (`format_rfc3339_seconds`), `20261201T054205.123Z` (`_millis`).
pub fn stamp(t: humantime::Rfc3339Timestamp) -> String {
    t.to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

impl RunDir {
    /// The folder for a new run: absent or empty (created here), or anything with `force`.
    pub fn create(path: &Path, force: bool) -> Result<Self, RunDirError> {
        if let Ok(mut entries) = fs::read_dir(path)
            && entries.next().is_some()
            && !force
        {
            return Err(RunDirError::NotEmpty {
                path: path.to_path_buf(),
            });
        }
        let created = !path.exists();
        Ok(RunDir {
            created,
            ..Self::open(path)?
        })
    }

    /// For a run that could not start: removes the folder if `create` made it and nothing
    /// was put in it, so a failed start leaves no empty run folder behind.
    pub fn discard_if_empty(self) {
        if self.created {
            // Only ever removes an empty folder; anything in it stays, and so does the folder.
            let _ = fs::remove_dir(&self.path);
        }
    }

    /// A folder to write into whatever it holds (created if missing), e.g. to re-render the
    /// reports of a run.
    pub fn open(path: &Path) -> Result<Self, RunDirError> {
        fs::create_dir_all(path).map_err(|e| RunDirError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            written: BTreeSet::new(),
            created: false,
        })
    }

    /// Reads a summary from a run folder or from a summary file named directly; returns it
    /// with the folder it came from.
    pub fn load(path: &Path) -> Result<(Summary, RunDir), RunDirError> {
        let (dir, file) = locate(path, RunFile::Summary);
        let summary = summary::read(&file)?;
        Ok((
            summary,
            RunDir {
                path: dir,
                written: BTreeSet::new(),
                created: false,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `file` lives in this folder.
    pub fn file(&self, file: RunFile) -> PathBuf {
        self.path.join(file.name())
    }

    /// Claims `file` for one write, or says it was written already.
    fn claim(&mut self, file: RunFile) -> Result<PathBuf, RunDirError> {
        let path = self.file(file);
        if self.written.insert(file) {
            Ok(path)
        } else {
            Err(RunDirError::WrittenTwice { path })
        }
    }

    /// Writes `bytes` as `file`, atomically; returns its path.
    pub fn write(&mut self, file: RunFile, bytes: &[u8]) -> Result<PathBuf, RunDirError> {
        let path = self.claim(file)?;
        atomic::write_atomic(&path, bytes)
    }

    pub fn write_summary(&mut self, summary: &Summary) -> Result<PathBuf, RunDirError> {
        let path = self.claim(RunFile::Summary)?;
        let json = summary::encode(summary, &path)?;
        atomic::write_atomic(&path, &json)
    }

    /// Writes the recording's latency histograms as an HdrHistogram interval log.
    pub fn write_hlog(
        &mut self,
        recorder: &Recorder,
        started_at: SystemTime,
    ) -> Result<PathBuf, RunDirError> {
        let path = self.claim(RunFile::LatencyHlog)?;
        hlog::write(&path, recorder, started_at)?;
        Ok(path)
    }

    /// Starts `requests.csv`, streamed row by row and put in place by `RequestWriter::finish`.
    pub fn request_writer(&mut self) -> Result<RequestWriter, RunDirError> {
        let path = self.claim(RunFile::Requests)?;
        RequestWriter::create(&path)
    }

    /// Starts `requests.csv` as a log the engine's samples can be recorded into from any thread.
    pub fn request_log(&mut self, names: RowNames) -> Result<RequestLog, RunDirError> {
        Ok(RequestLog::new(self.request_writer()?, names))
    }

    /// Every interval histogram of `latency.hlog`, in file order.
    pub fn read_hlog(&self) -> Result<Vec<HlogEntry>, RunDirError> {
        hlog::read(&self.file(RunFile::LatencyHlog))
    }

    /// The rows of a CSV file of the folder (`timeseries.csv`, `requests.csv`), header first.
    pub fn read_csv(&self, file: RunFile) -> Result<Vec<Vec<String>>, RunDirError> {
        let path = self.file(file);
        let bad = |e: csv::Error| RunDirError::Parse {
            path: path.clone(),
            message: e.to_string(),
        };
        let text = fs::read(&path).map_err(|e| RunDirError::io(&path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_slice());
        reader
            .records()
            .map(|r| {
                r.map(|r| r.iter().map(str::to_string).collect())
                    .map_err(bad)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_is_written_once_per_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::create(&dir.path().join("run"), false).unwrap();
        let path = run.write(RunFile::IndexHtml, b"<p>one</p>").unwrap();
        assert_eq!(path, dir.path().join("run/index.html"));
        let again = run.write(RunFile::IndexHtml, b"<p>two</p>").unwrap_err();
        assert!(matches!(again, RunDirError::WrittenTwice { .. }), "{again}");
        assert!(again.to_string().contains("index.html"), "{again}");
        assert_eq!(std::fs::read(&path).unwrap(), b"<p>one</p>");
        // Another file of the same folder is still free.
        run.write(RunFile::SummaryMd, b"# one").unwrap();
    }

    #[test]
    fn a_used_folder_is_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
        let err = RunDir::create(dir.path(), false).unwrap_err();
        assert!(matches!(err, RunDirError::NotEmpty { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        RunDir::create(dir.path(), true).unwrap();
        // An empty folder is as good as a missing one.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        RunDir::create(&empty, false).unwrap().discard_if_empty();
        assert!(empty.is_dir(), "a folder the user made stays");
        // One it made and left empty goes; one with a file in it stays.
        let fresh = dir.path().join("fresh");
        RunDir::create(&fresh, false).unwrap().discard_if_empty();
        assert!(!fresh.exists());
        let mut used = RunDir::create(&fresh, false).unwrap();
        used.write(RunFile::SummaryMd, b"# run").unwrap();
        used.discard_if_empty();
        assert!(fresh.join("summary.md").is_file());
    }

    #[test]
    fn a_failed_write_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunDir::open(dir.path()).unwrap();
        // A folder where the file should go: the rename fails, even for root.
        std::fs::create_dir(dir.path().join("junit.xml")).unwrap();
        std::fs::write(dir.path().join("junit.xml/inside"), "x").unwrap();
        let err = run.write(RunFile::JunitXml, b"<x/>").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().join("junit.xml").display().to_string()),
            "{text}"
        );
        // The temporary was cleaned up.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["junit.xml"]);
    }

    #[test]
    fn every_file_has_its_own_name() {
        let names: BTreeSet<&str> = RunFile::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), RunFile::ALL.len());
    }
}
