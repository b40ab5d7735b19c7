//! Watching a run from outside while it goes on: the live Prometheus exporter of
//! `gauntlet run --metrics-listen` and the OTLP push of `--otlp`. The engine feeds a
//! `LiveMetrics` and publishes it on a `Board`; the server renders a snapshot of it on each
//! scrape, the pusher sends one on each tick.

mod exposition;
mod live;
mod otlp;
mod protobuf;
mod server;
mod snapshot;

pub use exposition::{CONTENT_TYPE, MetricType};
pub use live::{LiveMetrics, RunShape};
pub use otlp::{OtlpEndpoint, OtlpError, OtlpPusher, PushTally};
pub use protobuf::CONTENT_TYPE as PROTOBUF_CONTENT_TYPE;
pub use server::{Board, MetricsServer};
pub use snapshot::{Family, Histogram, MetricSeries, Snapshot, Value};
