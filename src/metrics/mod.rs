//! Recording and analysis: per-interval HDR histograms and counters in, a `Summary` out.
//! This module aggregates and never formats; `report` renders.

mod analysis;
mod conclude;
pub mod cost;
pub mod failover;
mod hlog;
mod recorder;
mod sample;
pub mod sla;
mod summary;

pub use crate::scenario::{SlaKey, Unit};
pub use analysis::{ClassInfo, MAX_TRUSTED_LAG, RunInfo, percentiles, summarize};
pub use conclude::{Evidence, UpstreamCounters, conclude};
pub use hlog::{HlogError, write_hlog};
pub use recorder::{
    Cell, ClassRecord, Counts, ErrorTimes, Layout, MergeError, Recorder, new_cumulative,
};
pub use sample::{ErrorKind, Sample, ServedBy, TokenSource};
pub use summary::{
    CheckStatus, ClassStats, Cost, FaultWindow, Generator, Interval, IntervalStats, MonthlyCost,
    Percentiles, SCHEMA_VERSION, SlaCheck, SlaResult, Stats, Summary, Tokens, Trust, UpstreamStats,
};
