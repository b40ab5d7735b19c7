//! Recording and analysis: per-interval HDR histograms and counters in, a `Summary` out.
//! This module aggregates and never formats; `report` renders.

mod analysis;
pub mod breakdown;
mod codec;
mod conclude;
pub mod cost;
mod delta;
pub mod direct;
pub mod failover;
mod fold;
mod hist;
mod hlog;
mod overhead;
mod recorder;
mod sample;
pub mod sla;
mod summary;
mod sut;

pub use crate::scenario::{SlaKey, Unit};
pub use analysis::{ClassInfo, MAX_TRUSTED_LAG, RunInfo, percentiles, summarize};
pub use codec::{CodecError, decode_recording, encode_recording};
pub use conclude::{Evidence, UpstreamCounters, conclude};
pub use delta::RecordingDeltas;
pub use fold::{FoldError, fold_recordings};
pub use hlog::{HlogError, write_hlog};
pub use recorder::{
    Cell, ClassRecord, ConnectionCounts, Counts, ErrorTimes, Layout, MergeError, Recorder,
    new_cumulative,
};
pub use sample::{ErrorKind, Opened, Sample, ServedBy, TlsSession, TokenCounts, TokenSource, Via};
pub use summary::{
    AlternativeCost, BudgetReport, CheckStatus, ClassOverhead, ClassStats, Connections, Cost,
    FaultWindow, Generator, Interval, IntervalStats, Misses, MonthlyCost, MonthlySavings, Overhead,
    OverheadStats, PerRequestBounds, Percentiles, PromptBin, SCHEMA_VERSION, ShardStats, SlaCheck,
    SlaResult, Stats, Summary, TierStats, TokenSources, Tokens, Trust, TurnStats, UpstreamStats,
};
pub use sut::{CountSeries, PartKind, ScrapeReport, ScrapedSeries, SutPart, SutReport};
