//! Reading `latency.hlog` (the standard HdrHistogram interval log the engine writes, one tag
//! per class) back into histograms, for tests and tools that want more than the summary.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use super::ReportError;

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

/// Every interval histogram in the log, in file order.
pub fn read_hlog(path: &Path) -> Result<Vec<HlogEntry>, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, e))?;
    let bad = |message: String| ReportError::Hlog {
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
