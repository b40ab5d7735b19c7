//! Watching a run from outside while it goes on, and the system under test from inside: the
//! live Prometheus exporter of `gauntlet run --metrics-listen` and `gauntlet probe
//! --metrics-listen` (the engine feeds a `LiveMetrics` and publishes it on the
//! `MetricsServer`'s `Board`, a probe its `ProbeGauges` beside it; the server renders them on
//! each scrape), and the SUT watcher of `[observe]` (/proc readings and scrapes of the
//! gateway's own `/metrics`, every interval, into the summary).

mod exposition;
mod live;
mod probe;
mod proc;
mod scrape;
mod server;
mod sut;

pub use exposition::CONTENT_TYPE;
pub use live::{LiveMetrics, RunShape};
pub use probe::ProbeGauges;
pub use proc::WatchError;
pub use scrape::{ScrapedSample, Scraper, parse as parse_exposition};
pub use server::{Board, MetricsServer};
pub use sut::{
    ClientCount, ClientCounts, GATEWAY_THREADS, MAX_SERIES, MOCK_THREADS, SutWatcher, WatchPlan,
    Watched, resolve,
};
