//! Every file a run folder can hold, by name: the one list the engine, the reports and the
//! commands share.

/// A file of a run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunFile {
    /// The run's conclusion, the pivot every report is rendered from.
    Summary,
    /// Per-class HdrHistogram interval log of latencies.
    LatencyHlog,
    IndexHtml,
    SummaryMd,
    JunitXml,
    Timeseries,
    /// One row per request (`--raw`).
    Requests,
    CompareMd,
    CompareHtml,
    /// A capacity search's result (`gauntlet capacity`).
    CapacityJson,
    CapacityHtml,
    /// A shard's whole recording (`--shard I/N`), for `gauntlet merge`.
    Part,
}

impl RunFile {
    pub const ALL: [RunFile; 12] = [
        RunFile::Summary,
        RunFile::LatencyHlog,
        RunFile::IndexHtml,
        RunFile::SummaryMd,
        RunFile::JunitXml,
        RunFile::Timeseries,
        RunFile::Requests,
        RunFile::CompareMd,
        RunFile::CompareHtml,
        RunFile::CapacityJson,
        RunFile::CapacityHtml,
        RunFile::Part,
    ];

    /// The file's name inside the run folder.
    pub fn name(self) -> &'static str {
        match self {
            RunFile::Summary => "summary.json",
            RunFile::LatencyHlog => "latency.hlog",
            RunFile::IndexHtml => "index.html",
            RunFile::SummaryMd => "summary.md",
            RunFile::JunitXml => "junit.xml",
            RunFile::Timeseries => "timeseries.csv",
            RunFile::Requests => "requests.csv",
            RunFile::CompareMd => "compare.md",
            RunFile::CompareHtml => "compare.html",
            RunFile::CapacityJson => "capacity.json",
            RunFile::CapacityHtml => "capacity.html",
            RunFile::Part => "part.gpart",
        }
    }
}

impl std::fmt::Display for RunFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
