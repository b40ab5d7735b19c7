//! `timeseries.csv`: one row per interval and class, plus an `overall` row per interval, for
//! spreadsheets and plotting tools. Latency and TTFT columns are of successful requests; the
//! `time_to_error_*` columns time the failures, per kind.

use super::ReportError;
use crate::metrics::{IntervalStats, Percentiles, Summary};

const HEADER: [&str; 23] = [
    "t_s",
    "class",
    "requests",
    "successes",
    "dropped",
    "availability",
    "latency_samples",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
    "latency_mean_ms",
    "ttft_samples",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "errors",
    "error_kinds",
    "time_to_error_p50_ms",
    "time_to_error_p99_ms",
    "served_by",
    "connections_opened",
    "handshake_share",
];

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_default()
}

/// `name=count` pairs joined by `;`, stable order.
fn pairs(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// `kind=ms` pairs of one percentile of each error kind's time to error.
fn error_times(st: &IntervalStats, get: fn(&Percentiles) -> f64) -> String {
    st.time_to_error_ms
        .iter()
        .map(|(k, p)| format!("{k}={:.3}", get(p)))
        .collect::<Vec<_>>()
        .join(";")
}

fn row(t_s: f64, class: &str, st: &IntervalStats) -> Vec<String> {
    let lat = st.latency_ms.filter(|p| p.samples > 0);
    let ttft = st.ttft_ms.filter(|p| p.samples > 0);
    vec![
        format!("{t_s:.3}"),
        class.to_string(),
        st.requests.to_string(),
        st.successes.to_string(),
        st.dropped.to_string(),
        st.availability
            .map(|a| format!("{a:.6}"))
            .unwrap_or_default(),
        lat.map(|p| p.samples).unwrap_or(0).to_string(),
        opt(lat.map(|p| p.p50)),
        opt(lat.map(|p| p.p90)),
        opt(lat.map(|p| p.p99)),
        opt(lat.map(|p| p.p999)),
        opt(lat.map(|p| p.max)),
        opt(lat.map(|p| p.mean)),
        ttft.map(|p| p.samples).unwrap_or(0).to_string(),
        opt(ttft.map(|p| p.p50)),
        opt(ttft.map(|p| p.p99)),
        st.errors.values().sum::<u64>().to_string(),
        pairs(&st.errors),
        error_times(st, |p| p.p50),
        error_times(st, |p| p.p99),
        pairs(&st.served_by),
        st.connections.opened.to_string(),
        st.connections
            .handshake_share
            .map(|s| format!("{s:.6}"))
            .unwrap_or_default(),
    ]
}

pub fn render(s: &Summary) -> Result<Vec<u8>, ReportError> {
    let err = |e: csv::Error| ReportError::render("timeseries.csv", e);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER).map_err(err)?;
    for iv in &s.intervals {
        w.write_record(row(iv.t_s, "overall", &iv.overall))
            .map_err(err)?;
        // Every class gets a row in every interval, so each class's series has no holes.
        for c in &s.classes {
            let empty = IntervalStats::default();
            let st = iv.classes.get(&c.name).unwrap_or(&empty);
            w.write_record(row(iv.t_s, &c.name, st)).map_err(err)?;
        }
        for (name, st) in &iv.classes {
            if !s.classes.iter().any(|c| &c.name == name) {
                w.write_record(row(iv.t_s, name, st)).map_err(err)?;
            }
        }
    }
    w.into_inner()
        .map_err(|e| ReportError::render("timeseries.csv", e.error()))
}
