//! `requests.csv` for `--raw`: one row per request, streamed to disk while the run goes and
//! renamed into place only when finished, so memory stays flat and no half file is left.

use std::path::{Path, PathBuf};

use super::atomic::AtomicFile;
use super::{REQUESTS_CSV, ReportError};

/// One request as the raw log records it.
#[derive(Debug, Clone, Copy)]
pub struct RawRequest<'a> {
    /// Intended send time on the run's clock, seconds.
    pub intended_s: f64,
    pub class: &'a str,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// `ok` or the error kind (`status_5xx`, `timeout`, ...).
    pub outcome: &'a str,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub served_by: Option<&'a str>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

pub const RAW_HEADER: [&str; 9] = [
    "intended_s",
    "class",
    "status",
    "outcome",
    "latency_ms",
    "ttft_ms",
    "served_by",
    "prompt_tokens",
    "completion_tokens",
];

/// Streams raw request rows to `requests.csv`; call `finish` to put the file in place.
pub struct RawRequestWriter {
    csv: csv::Writer<AtomicFile>,
    path: PathBuf,
    rows: u64,
}

impl RawRequestWriter {
    /// Starts `requests.csv` in `dir` (created if missing).
    pub fn create(dir: &Path) -> Result<Self, ReportError> {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
        let path = dir.join(REQUESTS_CSV);
        let file = AtomicFile::create(&path)?;
        let mut csv = csv::Writer::from_writer(file);
        csv.write_record(RAW_HEADER)
            .map_err(|e| ReportError::render("requests.csv", e))?;
        Ok(Self { csv, path, rows: 0 })
    }

    pub fn write(&mut self, r: &RawRequest<'_>) -> Result<(), ReportError> {
        let status = r.status.map(|s| s.to_string()).unwrap_or_default();
        let ttft = r.ttft_ms.map(|t| format!("{t:.3}")).unwrap_or_default();
        let record = [
            format!("{:.6}", r.intended_s),
            r.class.to_string(),
            status,
            r.outcome.to_string(),
            format!("{:.3}", r.latency_ms),
            ttft,
            r.served_by.unwrap_or("").to_string(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
        ];
        self.csv
            .write_record(&record)
            .map_err(|e| ReportError::render("requests.csv", e))?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and renames the file into place; returns its path.
    pub fn finish(self) -> Result<PathBuf, ReportError> {
        let path = self.path;
        let file = self
            .csv
            .into_inner()
            .map_err(|e| ReportError::io(&path, std::io::Error::other(e.error().to_string())))?;
        file.commit()
    }
}
