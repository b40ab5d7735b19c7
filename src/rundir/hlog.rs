//! `latency.hlog`: the standard HdrHistogram interval log (one tag per class) written from the
//! recording, and read back into histograms for tools and tests that want more than the summary.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::atomic::AtomicFile;
use super::error::RunDirError;
use crate::metrics::{self, HlogError, Recorder};

/// One interval histogram of the log.
#[derive(Debug, Clone)]
pub struct HlogEntry {
    /// The class tag (`None` for untagged histograms).
    pub tag: Option<String>,
    /// Start of the interval relative to the log's base or start time.
    pub start: Duration,
    pub duration: Duration,
    pub histogram: Histogram<u64>,
}

/// Streams the recording's histograms into `path`, atomically.
pub(super) fn write(
    path: &Path,
    recorder: &Recorder,
    started_at: SystemTime,
) -> Result<(), RunDirError> {
    let mut file = AtomicFile::create(path)?;
    metrics::write_hlog(recorder, started_at, &mut file).map_err(|e| match e {
        HlogError::Io(source) => RunDirError::io(path, source),
        HlogError::Encode(message) => RunDirError::Encode {
            path: path.to_path_buf(),
            what: "a histogram",
            message,
        },
    })?;
    file.commit()?;
    Ok(())
}

/// Every interval histogram in the log at `path`, in file order.
pub(super) fn read(path: &Path) -> Result<Vec<HlogEntry>, RunDirError> {
    let bytes = std::fs::read(path).map_err(|e| RunDirError::io(path, e))?;
    let bad = |message: String| RunDirError::Hlog {
        path: path.to_path_buf(),
        message,
    };
    let mut deserializer = Deserializer::new();
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| bad(format!("not an HdrHistogram interval log: {e:?}")))?;
        let LogEntry::Interval(h) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .map_err(|e| bad(format!("histogram at {:?}: {e}", h.start_timestamp())))?;
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut raw.as_slice())
            .map_err(|e| bad(format!("histogram at {:?}: {e:?}", h.start_timestamp())))?;
        out.push(HlogEntry {
            tag: h.tag().map(|t| t.as_str().to_string()),
            start: h.start_timestamp(),
            duration: h.duration(),
            histogram,
        });
    }
    Ok(out)
}
