//! `gauntlet run --otlp URL`: the live numbers pushed to an OpenTelemetry collector as OTLP
//! metrics over HTTP/protobuf (`POST {URL}/v1/metrics`, `application/x-protobuf`, an
//! `ExportMetricsServiceRequest`) every interval and once more when the run ends. Everything
//! is written from a `Snapshot`, so it sends whatever the Prometheus exposition serves.
//!
//! A collector that is down or refuses a push costs that push, never the run: failures are
//! counted and warned about, and the next tick tries again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram as OtlpHistogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::exposition::MetricType;
use super::server::Board;
use super::snapshot::{MetricSeries, Snapshot, Value};
use crate::gateway::upstream::{self, HttpClient};
use crate::tls::ClientTls;

/// What the OTLP/HTTP spec names for a binary protobuf body.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// The path the spec appends to a base endpoint for metrics.
const METRICS_PATH: &str = "v1/metrics";
/// A collector slower than this costs that push; the next tick tries again.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error(
        "`{url}` is not an OTLP endpoint: {reason} (expected http://HOST:PORT or https://HOST[:PORT], optionally with a base path)"
    )]
    BadUrl { url: String, reason: String },
}

/// Where pushes go: the URL given, with `/v1/metrics` appended to its path as the OTLP spec
/// does for a base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint {
    uri: Uri,
}

impl OtlpEndpoint {
    pub fn parse(url: &str) -> Result<Self, OtlpError> {
        let bad = |reason: &str| OtlpError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => return Err(bad(&format!("the scheme {other} is not http or https"))),
            None => return Err(bad("no scheme")),
        }
        let Some(authority) = uri.authority() else {
            return Err(bad("no host"));
        };
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        if uri.query().is_some() {
            return Err(bad("a query string has no place in an OTLP endpoint"));
        }
        let base = uri.path().trim_end_matches('/');
        let full = format!(
            "{}://{authority}{base}/{METRICS_PATH}",
            uri.scheme_str().unwrap_or("http")
        );
        let uri = full
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        Ok(Self { uri })
    }
}

impl std::fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// The export request for `snapshot`: one resource (`service.name = "gauntlet"`, the
/// scenario), one scope, one metric per family. Counters become monotonic cumulative sums
/// named without `_total` (a collector's Prometheus exporter adds it back), histograms
/// cumulative explicit-bucket histograms with the exposition's bounds in seconds.
fn export_request(snapshot: &Snapshot) -> ExportMetricsServiceRequest {
    let start = unix_nanos(snapshot.started);
    let now = unix_nanos(snapshot.taken);
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = snapshot
        .families
        .iter()
        .map(|f| {
            let data = match f.kind {
                MetricType::Counter => metric::Data::Sum(Sum {
                    data_points: f.series.iter().map(|s| number(s, start, now)).collect(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                MetricType::Gauge => metric::Data::Gauge(Gauge {
                    data_points: f.series.iter().map(|s| number(s, start, now)).collect(),
                }),
                MetricType::Histogram => metric::Data::Histogram(OtlpHistogram {
                    data_points: f
                        .series
                        .iter()
                        .filter_map(|s| histogram(s, start, now))
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            let name = match f.kind {
                MetricType::Counter => f.name.strip_suffix("_total").unwrap_or(f.name),
                _ => f.name,
            };
            Metric {
                name: name.to_string(),
                description: f.help.to_string(),
                // UCUM, as OTel spells units; a Prometheus exporter maps "s" to `_seconds`.
                unit: if f.name.ends_with("_seconds") {
                    "s"
                } else {
                    ""
                }
                .to_string(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    attribute("service.name", "gauntlet"),
                    attribute("service.version", env!("CARGO_PKG_VERSION")),
                    attribute("gauntlet.scenario", &snapshot.scenario),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "gauntlet".to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn attributes(s: &MetricSeries) -> Vec<KeyValue> {
    s.labels.iter().map(|(k, v)| attribute(k, v)).collect()
}

fn number(s: &MetricSeries, start: u64, now: u64) -> NumberDataPoint {
    let value = match &s.value {
        Value::Counter(n) => number_data_point::Value::AsInt(i64::try_from(*n).unwrap_or(i64::MAX)),
        Value::Gauge(v) => number_data_point::Value::AsDouble(*v),
        // A family's kind fixes its values' variant; a histogram here would be a bug upstream,
        // sent as its count rather than dropped.
        Value::Histogram(h) => {
            number_data_point::Value::AsInt(i64::try_from(h.count()).unwrap_or(i64::MAX))
        }
    };
    NumberDataPoint {
        attributes: attributes(s),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(value),
        ..Default::default()
    }
}

fn histogram(s: &MetricSeries, start: u64, now: u64) -> Option<HistogramDataPoint> {
    let Value::Histogram(h) = &s.value else {
        return None;
    };
    Some(HistogramDataPoint {
        attributes: attributes(s),
        start_time_unix_nano: start,
        time_unix_nano: now,
        count: h.count(),
        sum: Some(h.sum_seconds),
        // Per bucket, not cumulative, as OTLP counts them; the last is above the top bound.
        bucket_counts: h.counts.clone(),
        explicit_bounds: h.bounds_ns.iter().map(|ns| *ns as f64 / 1e9).collect(),
        ..Default::default()
    })
}

/// How the pushes of one run went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushTally {
    /// Pushes the collector accepted whole.
    pub accepted: u64,
    /// Pushes that failed: unreachable, timed out, refused, or partly rejected.
    pub failed: u64,
    /// Why the last failed one did.
    pub last_error: Option<String>,
}

struct Pusher {
    endpoint: OtlpEndpoint,
    client: HttpClient,
    board: Board,
    tally: PushTally,
    /// Whether the last push failed: warnings mark the changes, not every tick.
    failing: bool,
}

impl Pusher {
    /// Pushes what the board holds now, if a run is published on it yet.
    async fn push(&mut self) {
        let Some(live) = self.board.current() else {
            return;
        };
        let body = export_request(&live.snapshot()).encode_to_vec();
        match tokio::time::timeout(PUSH_TIMEOUT, self.send(body)).await {
            Ok(Ok(())) => {
                if self.failing {
                    tracing::warn!("otlp: {} accepts pushes again", self.endpoint);
                    self.failing = false;
                }
                self.tally.accepted += 1;
            }
            Ok(Err(why)) => self.failed(why),
            Err(_) => self.failed(format!("no answer within {}s", PUSH_TIMEOUT.as_secs())),
        }
    }

    fn failed(&mut self, why: String) {
        // When it starts failing, not every tick: a collector that is down stays down a while.
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                "otlp: push to {} failed: {why}; the run goes on, and later pushes try again",
                self.endpoint
            );
        }
        self.tally.failed += 1;
        self.tally.last_error = Some(why);
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.endpoint.uri.clone();
        req.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            return Err(format!(
                "HTTP {status}{}{}",
                if text.is_empty() { "" } else { ": " },
                truncate(text)
            ));
        }
        // A 200 may still carry a partial success: some points were rejected.
        let rejected = ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|answer| answer.partial_success)
            .filter(|p| p.rejected_data_points > 0);
        if let Some(p) = rejected {
            return Err(format!(
                "the collector rejected {} data points: {}",
                p.rejected_data_points, p.error_message
            ));
        }
        Ok(())
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// hyper-util's error says "client error (Connect)"; the cause says what happened.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The pushing task of one run; `finish` makes the final push and says how it went.
#[derive(Debug)]
pub struct OtlpPusher {
    stop: watch::Sender<bool>,
    task: JoinHandle<Pusher>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("endpoint", &self.endpoint)
            .field("tally", &self.tally)
            .finish_non_exhaustive()
    }
}

impl OtlpPusher {
    /// Pushes the board's run to `endpoint` every `interval` on the current runtime, from one
    /// interval after now (the fleet is still starting before that).
    pub fn start(
        endpoint: OtlpEndpoint,
        interval: Duration,
        board: Board,
        tls: &ClientTls,
    ) -> Self {
        let client = upstream::client(PUSH_TIMEOUT, tls);
        let mut pusher = Pusher {
            endpoint,
            client,
            board,
            tally: PushTally::default(),
            failing: false,
        };
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let first = tokio::time::Instant::now() + interval;
            let mut ticks = tokio::time::interval_at(first, interval);
            // A slow collector delays the next push rather than bunching them up.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stop = tokio::select! {
                    _ = ticks.tick() => false,
                    _ = stopped.wait_for(|s| *s) => true,
                };
                if stop {
                    break;
                }
                pusher.push().await;
            }
            pusher
        });
        Self { stop, task }
    }

    /// Stops the ticks and pushes the final numbers, so the collector ends on what
    /// `summary.json` says.
    pub async fn finish(self) -> PushTally {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(mut pusher) => {
                pusher.push().await;
                pusher.tally
            }
            // The task panicked: a bug, reported as the failed pushes it cost.
            Err(e) => PushTally {
                accepted: 0,
                failed: 1,
                last_error: Some(format!("the pushing task failed: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::snapshot::{Family, Histogram};

    #[test]
    fn endpoints_get_the_metrics_path_and_bad_urls_say_why() {
        let ok = |u: &str| OtlpEndpoint::parse(u).unwrap().to_string();
        assert_eq!(
            ok("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            ok("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            ok("https://otel.example:443/base/"),
            "https://otel.example:443/base/v1/metrics"
        );
        for (url, why) in [
            ("127.0.0.1:4318", "scheme"),
            ("ftp://127.0.0.1:4318", "ftp is not http or https"),
            ("http://", ""),
            ("http://h:4318/x?y=1", "query"),
            ("not a url", ""),
        ] {
            let e = OtlpEndpoint::parse(url).unwrap_err().to_string();
            assert!(e.contains(url) && e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn families_become_cumulative_otlp_metrics_with_the_same_numbers() {
        let mut requests = Family::new("g_requests_total", MetricType::Counter, "Requests.");
        requests.push(&[("class", "a"), ("outcome", "ok")], Value::Counter(7));
        let mut up = Family::new("g_elapsed_seconds", MetricType::Gauge, "Elapsed.");
        up.push(&[], Value::Gauge(2.5));
        let mut lat = Family::new("g_latency_seconds", MetricType::Histogram, "Latency.");
        lat.push(
            &[("class", "a")],
            Value::Histogram(Histogram {
                bounds_ns: &[5_000_000, 1_000_000_000],
                counts: vec![1, 0, 2],
                sum_seconds: 9.5,
                native: None,
            }),
        );
        let started = UNIX_EPOCH + Duration::from_secs(100);
        let taken = UNIX_EPOCH + Duration::from_secs(103);
        let snapshot = Snapshot {
            scenario: "scen".into(),
            started,
            taken,
            families: vec![requests, up, lat],
        };
        let req = export_request(&snapshot);
        // Through the wire format and back, as a collector reads it.
        let req = ExportMetricsServiceRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        let rm = &req.resource_metrics[0];
        let attrs: Vec<(String, String)> = rm
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| match &kv.value.as_ref().unwrap().value {
                Some(any_value::Value::StringValue(s)) => (kv.key.clone(), s.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(attrs.contains(&("service.name".into(), "gauntlet".into())));
        assert!(attrs.contains(&("gauntlet.scenario".into(), "scen".into())));
        let metrics = &rm.scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[0].name, "g_requests");
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("{:?}", metrics[0]);
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &sum.data_points[0];
        assert_eq!(p.value, Some(number_data_point::Value::AsInt(7)));
        assert_eq!(p.start_time_unix_nano, 100_000_000_000);
        assert_eq!(p.time_unix_nano, 103_000_000_000);
        assert_eq!(p.attributes.len(), 2);
        assert_eq!(p.attributes[1].key, "outcome");
        assert_eq!(metrics[1].unit, "s");
        let Some(metric::Data::Gauge(g)) = &metrics[1].data else {
            panic!("{:?}", metrics[1]);
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(2.5))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[2].data else {
            panic!("{:?}", metrics[2]);
        };
        assert_eq!(
            h.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, vec![0.005, 1.0]);
        assert_eq!(p.bucket_counts, vec![1, 0, 2]);
        assert_eq!(p.count, 3);
        assert_eq!(p.sum, Some(9.5));
    }
}
