//! Watching a run from outside while it goes on: the live Prometheus exporter of
//! `gauntlet run --metrics-listen`. The engine feeds a `LiveMetrics` and publishes it on the
//! `MetricsServer`'s `Board`; the server renders it on each scrape.

mod exposition;
mod live;
mod server;

pub use exposition::CONTENT_TYPE;
pub use live::{LiveMetrics, RunShape};
pub use server::{Board, MetricsServer};
