//! Recording and analysis: per-interval HDR histograms and counters in, a `Summary` out.
//! This module aggregates and never formats; `report` renders.

pub mod cost;
pub mod failover;
pub mod sla;
mod summary;

pub use summary::{
    CheckStatus, ClassStats, Cost, FaultWindow, Generator, Interval, IntervalStats, MonthlyCost,
    Percentiles, SCHEMA_VERSION, SlaCheck, SlaResult, Stats, Summary, Tokens, Trust, UpstreamStats,
};
