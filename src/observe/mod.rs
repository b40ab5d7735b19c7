//! Watching a run from outside while it goes on, and the system under test from inside: the
//! live Prometheus exporter of `gauntlet run --metrics-listen` (the engine feeds a
//! `LiveMetrics` and publishes it on the `MetricsServer`'s `Board`; the server renders it on
//! each scrape), and the SUT watcher of `[observe]` (/proc readings and scrapes of the
//! gateway's own `/metrics`, every interval, into the summary).

mod exposition;
mod live;
mod proc;
mod scrape;
mod server;
mod sut;

pub use exposition::CONTENT_TYPE;
pub use live::{LiveMetrics, RunShape};
pub use proc::WatchError;
pub use scrape::{ScrapedSample, Scraper, parse as parse_exposition};
pub use server::{Board, MetricsServer};
pub use sut::{
    ClientCounts, GATEWAY_THREADS, MAX_SERIES, MOCK_THREADS, SutWatcher, WatchPlan, Watched,
    resolve,
};
