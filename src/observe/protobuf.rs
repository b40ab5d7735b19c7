//! The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily`, length-delimited),
//! served when a scraper asks for it: the only format that carries native histograms. Written
//! from the same `Snapshot` as the text; a histogram series that keeps native buckets
//! (prometheus-client's, see `Histogram::native`) gets them beside its classic ones.

use prometheus_client::encoding::prometheus_protobuf::{encode, prometheus_data_model as pb};
use prometheus_client::registry::Registry;
use prost::Message;

use super::exposition::MetricType;
use super::snapshot::{Histogram, MetricSeries, Snapshot, Value};

/// What a scraper asks for, and gets, for this format.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Whether an `Accept` header prefers the delimited MetricFamily protobuf to text, by the
/// media ranges' q-values (Prometheus with native histograms on sends it at q=0.7 beside
/// text at q=0.3 or lower).
pub fn preferred(accept: &str) -> bool {
    let mut protobuf = 0.0f64;
    let mut text = 0.0f64;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut q = 1.0;
        let (mut proto, mut delimited) = (false, false);
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = v.parse().unwrap_or(0.0),
                "proto" => proto = v == "io.prometheus.client.MetricFamily",
                "encoding" => delimited = v == "delimited",
                _ => {}
            }
        }
        match media.as_str() {
            "application/vnd.google.protobuf" if proto && delimited => protobuf = protobuf.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    protobuf > 0.0 && protobuf >= text
}

/// Every family, each as one length-delimited `MetricFamily` message.
pub fn encode_delimited(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for f in &snapshot.families {
        let family = pb::MetricFamily {
            name: f.name.to_string(),
            help: f.help.to_string(),
            r#type: match f.kind {
                MetricType::Counter => pb::MetricType::Counter,
                MetricType::Gauge => pb::MetricType::Gauge,
                MetricType::Histogram => pb::MetricType::Histogram,
            } as i32,
            metric: f.series.iter().map(metric).collect(),
            unit: String::new(),
        };
        // Encoding into a Vec only fails for want of capacity, which a Vec grows.
        let _ = family.encode_length_delimited(&mut out);
    }
    out
}

fn metric(s: &MetricSeries) -> pb::Metric {
    let label = s
        .labels
        .iter()
        .map(|(k, v)| pb::LabelPair {
            name: (*k).to_string(),
            value: v.clone(),
        })
        .collect();
    let mut m = pb::Metric {
        label,
        ..Default::default()
    };
    match &s.value {
        Value::Counter(n) => {
            m.counter = Some(pb::Counter {
                value: *n as f64,
                ..Default::default()
            });
        }
        Value::Gauge(v) => m.gauge = Some(pb::Gauge { value: *v }),
        Value::Histogram(h) => m.histogram = Some(histogram(h)),
    }
    m
}

fn histogram(h: &Histogram) -> pb::Histogram {
    let mut cumulative = 0u64;
    // The +Inf bucket is implicit: it is the sample count.
    let bucket = h
        .bounds_ns
        .iter()
        .zip(&h.counts)
        .map(|(b, n)| {
            cumulative = cumulative.saturating_add(*n);
            pb::Bucket {
                cumulative_count: cumulative,
                upper_bound: *b as f64 / 1e9,
                ..Default::default()
            }
        })
        .collect();
    let classic = pb::Histogram {
        sample_count: h.count(),
        sample_sum: h.sum_seconds,
        bucket,
        ..Default::default()
    };
    match h.native.as_ref().and_then(native) {
        // Count and sum from the native side, read after the classic buckets: the recorder
        // adds to the classic ones first, so no classic bucket can exceed this count, and the
        // native buckets add up to it exactly as Prometheus requires.
        Some(n) => pb::Histogram {
            sample_count: n.sample_count,
            sample_sum: n.sample_sum,
            bucket: classic.bucket,
            ..n
        },
        None => classic,
    }
}

/// The native side of a prometheus-client histogram, as its own protobuf encoder writes it.
fn native(h: &prometheus_client::metrics::histogram::Histogram) -> Option<pb::Histogram> {
    let mut registry = Registry::default();
    // A clone shares the observations; the registry is only a way into the encoder.
    registry.register("native", "", h.clone());
    let families = encode(&registry).ok()?;
    families
        .into_iter()
        .next()?
        .metric
        .into_iter()
        .next()?
        .histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_protobuf_and_a_plain_scrape_does_not() {
        // Prometheus 3 with native histograms on (scrape_protocols with PrometheusProto first).
        assert!(preferred(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
             encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        ));
        assert!(!preferred("text/plain;version=0.0.4;q=0.3,*/*;q=0.2"));
        assert!(!preferred("*/*"));
        assert!(!preferred(""));
        // Text preferred over protobuf, or a protobuf of something else.
        assert!(!preferred(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
             encoding=delimited;q=0.2,text/plain;q=0.9"
        ));
        assert!(!preferred(
            "application/vnd.google.protobuf;proto=other.Message;encoding=delimited"
        ));
        assert!(!preferred(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"
        ));
    }
}
