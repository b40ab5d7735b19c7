//! The probe's folder: the current window's report (`summary.json`, `index.html` and the
//! rest, refreshed in place), `alerts.jsonl` (one line per alert transition, appended) and
//! `windows/<UTC start>/summary.json` for each closed window, the oldest deleted past `keep`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::ProbeError;
use super::burn::Transition;
use crate::metrics::Summary;
use crate::rundir::{self, RunDir};

pub const ALERTS_FILE: &str = "alerts.jsonl";
const WINDOWS_DIR: &str = "windows";

/// The probe's folder; the `RunDir` it is in was made (and is taken away again if the probe
/// never started) by whoever created it.
#[derive(Debug, Clone)]
pub struct ProbeDir {
    path: PathBuf,
    keep: usize,
}

/// A closed window's folder name: its UTC start to the millisecond, `20261201T054205.123Z`.
fn stamp(t: SystemTime) -> String {
    rundir::stamp(humantime::format_rfc3339_millis(t))
}

/// Whether a folder name is one `stamp` made (so pruning never touches anything else).
fn is_stamp(name: &str) -> bool {
    name.len() == 20
        && name.ends_with('Z')
        && name.as_bytes().get(8) == Some(&b'T')
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'.' | b'Z'))
}

impl ProbeDir {
    /// The probe's use of a new run folder (`RunDir::create`), keeping `keep` closed windows.
    pub fn new(folder: &RunDir, keep: usize) -> Self {
        Self {
            path: folder.path().to_path_buf(),
            keep: keep.max(1),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one alert transition as a JSON line.
    pub fn alert(&self, t: &Transition, at: SystemTime) -> Result<(), ProbeError> {
        let line = serde_json::json!({
            "at": humantime::format_rfc3339_millis(at).to_string(),
            "alert": t.alert,
            "slo": t.slo.as_str(),
            "state": if t.firing { "firing" } else { "resolved" },
            "factor": t.factor,
            "long_window": humantime::format_duration(t.long_window).to_string(),
            "short_window": humantime::format_duration(t.short_window).to_string(),
            "long_burn_rate": finite(t.long.rate),
            "short_burn_rate": finite(t.short.rate),
            "long_bad": t.long.bad,
            "long_requests": t.long.total,
            "short_bad": t.short.bad,
            "short_requests": t.short.total,
        });
        let path = self.path.join(ALERTS_FILE);
        let io = |source| ProbeError::Write {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        // One write per line: a reader tailing the file never sees half of one.
        file.write_all(format!("{line}\n").as_bytes()).map_err(io)
    }

    /// Rewrites the current window's report files.
    pub fn current(&self, summary: &Summary) -> Result<(), ProbeError> {
        crate::report::write_all(summary, &self.path)?;
        Ok(())
    }

    /// Keeps a closed window's summary, and deletes the oldest past `keep`.
    pub fn rotate(&self, summary: &Summary, start: SystemTime) -> Result<PathBuf, ProbeError> {
        let windows = self.path.join(WINDOWS_DIR);
        let dir = windows.join(stamp(start));
        let written = RunDir::open(&dir)?.write_summary(summary)?;
        let io = |source| ProbeError::Write {
            path: windows.clone(),
            source,
        };
        let mut kept: Vec<String> = fs::read_dir(&windows)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_stamp(n))
            .collect();
        kept.sort();
        let excess = kept.len().saturating_sub(self.keep);
        for old in kept.iter().take(excess) {
            let old = windows.join(old);
            fs::remove_dir_all(&old).map_err(|source| ProbeError::Write { path: old, source })?;
        }
        Ok(written)
    }
}

/// JSON has no infinity: a burn against a zero budget is written as null.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_sort_in_time_order_and_are_recognised() {
        let a = stamp(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_567_725_123));
        assert_eq!(a, "20251201T054205.123Z");
        assert!(is_stamp(&a));
        let b = stamp(SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_567_726_000));
        assert!(a < b);
        assert!(!is_stamp("index.html"));
        assert!(!is_stamp("notes"));
    }
}
