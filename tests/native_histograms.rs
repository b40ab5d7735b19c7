//! A Prometheus with native histograms on asks the live exporter for the protobuf exposition
//! and gets latency, TTFT and TPOT as native histograms (exponential buckets) beside the
//! classic ones, decoded here with prometheus-client's own `io.prometheus.client` model; a
//! scraper that asks for nothing in particular still gets text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use gauntlet::metrics::{ErrorKind, Sample, ServedBy};
use gauntlet::observe::{Board, LiveMetrics, MetricsServer, PROTOBUF_CONTENT_TYPE, RunShape};
use http::Request;
use http_body_util::Full;
use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
use prost::Message;

use crate::support::TestClient;

/// What Prometheus 3 sends with `scrape_native_histograms: true`.
const PROMETHEUS_ACCEPT: &str = "application/vnd.google.protobuf;\
    proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,\
    text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

fn sample(class: usize, latency_ms: u64, ttft_ms: Option<u64>) -> Sample {
    let mut s = Sample::new(class, Duration::from_secs(2), Duration::ZERO);
    s.latency = Duration::from_millis(latency_ms);
    s.ttft = ttft_ms.map(Duration::from_millis);
    s.served_by = Some(ServedBy::Known(0));
    s
}

/// Each native bucket's upper bound and count, from its spans and deltas (schema `schema`:
/// bucket `i` is (2^((i-1)/2^schema), 2^(i/2^schema)]).
fn native_buckets(h: &pb::Histogram) -> Vec<(f64, u64)> {
    let per_doubling = 2f64.powi(h.schema);
    let mut out = Vec::new();
    let mut index = 0i32;
    let mut count = 0i64;
    let mut deltas = h.positive_delta.iter();
    for span in &h.positive_span {
        index += span.offset;
        for _ in 0..span.length {
            count += deltas.next().expect("a delta per bucket");
            let upper = 2f64.powf(f64::from(index) / per_doubling);
            out.push((upper, u64::try_from(count).unwrap()));
            index += 1;
        }
    }
    assert!(deltas.next().is_none(), "more deltas than buckets");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_asking_for_protobuf_gets_native_histograms_beside_the_classic() {
    let metrics = Arc::new(LiveMetrics::new(
        RunShape {
            scenario: "native".into(),
            seed: 1,
            classes: vec!["chat".into(), "plain".into()],
            upstreams: vec!["up".into()],
            faults: vec![],
            planned: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            native: true,
        },
        Arc::new(AtomicUsize::new(0)),
    ));
    // 20 ms x3, 300 ms x2 and 4 s for chat (streamed); 7 ms for plain; and one failure.
    let observed = [(20, 3), (300, 2), (4_000, 1)];
    for (ms, n) in observed {
        for _ in 0..n {
            metrics.record(&sample(0, ms, Some(ms / 2)));
        }
    }
    metrics.record(&sample(1, 7, None));
    let mut failed = sample(1, 1, None);
    failed.result = Err(ErrorKind::Timeout);
    metrics.record(&failed);

    let board = Board::default();
    board.publish(metrics.clone());
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), board)
        .await
        .unwrap();
    let base = format!("http://{}", server.addr());
    let client = TestClient::new();
    let reply = client
        .send(
            Request::get(format!("{base}/metrics"))
                .header("accept", PROMETHEUS_ACCEPT)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), PROTOBUF_CONTENT_TYPE);
    let mut body = reply.body.clone();
    let mut families = BTreeMap::new();
    while !body.is_empty() {
        let f = pb::MetricFamily::decode_length_delimited(&mut body).expect("a MetricFamily");
        assert!(
            families.insert(f.name.clone(), f).is_none(),
            "a family sent twice"
        );
    }
    // The same families as the text exposition.
    let text = client.get(&base, "/metrics").await;
    assert_eq!(
        text.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = text.text();
    for name in families.keys() {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    assert_eq!(text.matches("# TYPE ").count(), families.len());

    let series = |family: &str, class: &str| -> pb::Metric {
        let f = &families[family];
        f.metric
            .iter()
            .find(|m| {
                m.label
                    .iter()
                    .any(|l| l.name == "class" && l.value == class)
            })
            .unwrap_or_else(|| panic!("{family} has no class {class}"))
            .clone()
    };
    let requests = &families["gauntlet_requests_total"];
    assert_eq!(requests.r#type, pb::MetricType::Counter as i32);
    let timeouts = requests
        .metric
        .iter()
        .find(|m| {
            m.label.iter().any(|l| l.value == "timeout")
                && m.label.iter().any(|l| l.value == "plain")
        })
        .unwrap();
    assert_eq!(timeouts.counter.as_ref().unwrap().value, 1.0);

    let latency = &families["gauntlet_latency_seconds"];
    assert_eq!(latency.r#type, pb::MetricType::Histogram as i32);
    let chat = series("gauntlet_latency_seconds", "chat");
    let h = chat.histogram.as_ref().unwrap();
    assert_eq!(h.sample_count, 6);
    assert!((h.sample_sum - (3.0 * 0.02 + 2.0 * 0.3 + 4.0)).abs() < 1e-9);
    // Classic: cumulative up the exposition's bounds.
    let le = |b: f64| {
        h.bucket
            .iter()
            .find(|x| (x.upper_bound - b).abs() < 1e-12)
            .unwrap_or_else(|| panic!("no bound {b}"))
            .cumulative_count
    };
    assert_eq!(
        (le(0.01), le(0.025), le(0.3), le(3.0), le(5.0)),
        (0, 3, 5, 5, 6)
    );
    // Native: schema 3, and each observation in the bucket whose range holds it.
    assert_eq!(h.schema, 3);
    assert!(h.zero_threshold > 0.0 && h.zero_threshold < 1e-30);
    assert_eq!(h.zero_count, 0);
    let buckets = native_buckets(h);
    assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 6);
    let growth = 2f64.powf(1.0 / 8.0);
    for (ms, n) in observed {
        let v = ms as f64 / 1e3;
        let (upper, count) = buckets
            .iter()
            .find(|(upper, _)| v <= *upper && v > upper / growth)
            .unwrap_or_else(|| panic!("no native bucket holds {v}: {buckets:?}"));
        assert_eq!(*count, n, "{v} s in the bucket up to {upper}");
    }
    assert_eq!(buckets.len(), 3, "only the buckets in use: {buckets:?}");
    // The streamed class has TTFT and TPOT native histograms too; the plain one's are empty.
    let ttft = series("gauntlet_ttft_seconds", "chat");
    assert_eq!(ttft.histogram.as_ref().unwrap().sample_count, 6);
    assert_eq!(ttft.histogram.as_ref().unwrap().schema, 3);
    let plain = series("gauntlet_ttft_seconds", "plain");
    assert_eq!(plain.histogram.as_ref().unwrap().sample_count, 0);
    // Schedule lag stays classic only.
    let lag = &families["gauntlet_schedule_lag_seconds"].metric[0];
    let lag = lag.histogram.as_ref().unwrap();
    assert_eq!(lag.sample_count, 8);
    assert!(lag.positive_span.is_empty() && lag.schema == 0);

    server.shutdown().await;
}
