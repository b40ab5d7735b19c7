//! What the system under test spent to carry the load, as `summary.json` keeps it: CPU, RSS,
//! descriptors and threads of each watched part per reading, and the series scraped from its
//! own `/metrics`. A reading that failed is `null` (a gap), never a zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SutReport {
    /// End of each reading on the run's clock (seconds, warmup included, like
    /// `Interval::t_s`); every series below has one entry per reading. Reading 0 is the
    /// baseline taken as the run starts (no CPU rate: there is no interval before it).
    pub t_s: Vec<f64>,
    pub parts: Vec<SutPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeReport>,
    /// Requests each upstream had received by each reading (its control API's count, warmup
    /// included): read at the same moments as the scrape, so the gateway's counters can be
    /// held against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_requests: Vec<CountSeries>,
    /// Requests gauntlet had seen end by each reading, and how many of them failed (warmup
    /// included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_finished: Vec<Option<u64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_failed: Vec<Option<u64>>,
    /// Requests of the direct baseline that had ended by each reading: the upstreams'
    /// counts include them, the gateway's do not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_direct: Vec<Option<u64>>,
    /// What a reader should know: gaps, series left out, how RSS is shared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Whose resources a part's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// Threads of the gauntlet process, told apart by name: CPU and thread count are theirs,
    /// memory and descriptors belong to the whole process (the `process` part).
    Threads,
    /// A whole process: gauntlet's own, or one named by `[observe]`.
    Process,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SutPart {
    /// "gateway", "mocks", "load generator", "gauntlet process", or the watched process.
    pub name: String,
    pub kind: PartKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// CPU cores used during each reading (CPU seconds / wall seconds); None where it could
    /// not be read, and for the run's last reading when it lasted under a quarter interval
    /// (/proc counts CPU in 10 ms ticks: too coarse for a rate over a few milliseconds).
    pub cpu_cores: Vec<Option<f64>>,
    /// CPU seconds spent in the measured window (after warmup); None when unreadable.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// Resident memory; empty for `Threads` parts (memory is per process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rss_bytes: Vec<Option<u64>>,
    /// Open file descriptors (sockets included); empty for `Threads` parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fds: Vec<Option<u64>>,
    pub threads: Vec<Option<u64>>,
}

/// The system under test's own metrics, scraped once per reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrapeReport {
    pub url: String,
    pub succeeded: u64,
    pub failed: u64,
    /// Why the first failed scrape failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub series: Vec<ScrapedSeries>,
    /// More series were offered than a summary keeps; the rest were left out.
    #[serde(default)]
    pub truncated: bool,
}

/// One scraped time series: its sample name (`_total` included), labels, and its value at
/// each reading (None where the scrape failed or the series was not there yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapedSeries {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub values: Vec<Option<f64>>,
}

/// A cumulative count per reading; None where it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountSeries {
    pub name: String,
    pub values: Vec<Option<u64>>,
}

impl ScrapeReport {
    /// The series with this sample name.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a ScrapedSeries> + 'a {
        self.series.iter().filter(move |s| s.name == name)
    }
}
