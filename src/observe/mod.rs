//! Watching a run from outside while it goes on, and the system under test from inside: the
//! live Prometheus exporter of `gauntlet run --metrics-listen` and `gauntlet probe
//! --metrics-listen`, the OTLP push of `--otlp` and the live terminal view (the engine feeds a
//! `LiveMetrics` and publishes it on a `Board`, a probe its `ProbeGauges` beside it; the
//! server renders a snapshot of them on each scrape, the pusher sends one on each tick, the
//! view draws from successive readings), and the SUT watcher of `[observe]` (/proc readings
//! and scrapes of the gateway's own `/metrics`, every interval, into the summary).

mod exposition;
mod live;
mod otlp;
mod probe;
mod proc;
mod protobuf;
mod reading;
mod scrape;
mod server;
mod snapshot;
mod sut;
mod verdicts;
pub mod view;

pub use exposition::{CONTENT_TYPE, MetricType};
pub use live::{LiveMetrics, PlannedFault, RunShape};
pub use otlp::{OtlpEndpoint, OtlpError, OtlpPusher, PushTally};
pub use probe::ProbeGauges;
pub use proc::WatchError;
pub use protobuf::CONTENT_TYPE as PROTOBUF_CONTENT_TYPE;
pub use scrape::{ScrapedSample, Scraper, parse as parse_exposition};
pub use server::{Board, MetricsServer};
pub use snapshot::Snapshot;
pub use sut::{
    ClientCount, ClientCounts, GATEWAY_THREADS, MAX_SERIES, MOCK_THREADS, SutWatcher, WatchPlan,
    Watched, resolve,
};
