//! Watching a run from outside while it goes on: the live Prometheus exporter of
//! `gauntlet run --metrics-listen` and the live terminal view. The engine feeds a
//! `LiveMetrics` and publishes it on a `Board`; the server renders it on each scrape, the
//! view draws from its snapshots.

mod exposition;
mod live;
mod server;
mod reading;
mod verdicts;
pub mod view;

pub use exposition::CONTENT_TYPE;
pub use live::{LiveMetrics, PlannedFault, RunShape};
pub use server::{Board, MetricsServer};
pub use reading::{Buckets, ClassReading, FaultReading, LiveReading};
