//! Watching a run from outside while it goes on: the live Prometheus exporter of
//! `gauntlet run --metrics-listen` and `gauntlet probe --metrics-listen`. The engine feeds a
//! `LiveMetrics` and publishes it on the `MetricsServer`'s `Board`, a probe its
//! `ProbeGauges` beside it; the server renders them on each scrape.

mod exposition;
mod live;
mod probe;
mod server;

pub use exposition::CONTENT_TYPE;
pub use live::{LiveMetrics, RunShape};
pub use probe::ProbeGauges;
pub use server::{Board, MetricsServer};
