//! The live numbers at one instant, as metric families with labelled series: what every way
//! out (Prometheus text, OTLP) is written from, so a family added here is served and pushed
//! alike without code of its own in either.

use std::time::{Duration, SystemTime};

use super::exposition::{self as text, MetricType};

/// Every family of a run at the instant it was read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The run's scenario, which a push names in its resource.
    pub scenario: String,
    /// When the run's counters started from zero: the start of every cumulative series.
    pub started: SystemTime,
    /// When the numbers were read.
    pub taken: SystemTime,
    pub families: Vec<Family>,
}

/// One metric family: a name, its HELP, and its series, all of `kind`.
#[derive(Debug, Clone)]
pub struct Family {
    /// The Prometheus name: counters end in `_total`, times in `_seconds`.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
    pub series: Vec<MetricSeries>,
}

/// One labelled series of a family.
#[derive(Debug, Clone)]
pub struct MetricSeries {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A series' value; its variant matches the family's kind.
#[derive(Debug, Clone)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Histogram),
}

/// A classic histogram read at one instant.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Upper bounds (inclusive), ascending, in nanoseconds.
    pub bounds_ns: &'static [u64],
    /// Each bucket's own count, one more than the bounds: the last is above the top bound.
    pub counts: Vec<u64>,
    pub sum_seconds: f64,
    /// The same observations in native (exponential) buckets, where the series keeps them;
    /// a handle on the live histogram, read only by the protobuf exposition.
    pub native: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Histogram {
    /// Every observation: the sum of the buckets, so it can never disagree with them.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, n| a.saturating_add(*n))
    }

    /// What was observed after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            bounds_ns: self.bounds_ns,
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_seconds: (self.sum_seconds - earlier.sum_seconds).max(0.0),
            // Native buckets are only ever read whole, by a scrape.
            native: None,
        }
    }

    /// The `q` quantile as Prometheus's `histogram_quantile` estimates it: linear within the
    /// bucket it falls in (from 0 for the first), the top bound when it falls above it. None
    /// when nothing was observed.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, n) in self.counts.iter().enumerate() {
            let upto = below + n;
            if (upto as f64) >= rank && *n > 0 {
                let Some(&upper) = self.bounds_ns.get(i) else {
                    return self.bounds_ns.last().map(|b| Duration::from_nanos(*b));
                };
                let lower = if i == 0 { 0 } else { self.bounds_ns[i - 1] };
                let within = (rank - below as f64) / *n as f64;
                let ns = lower as f64 + (upper - lower) as f64 * within;
                return Some(Duration::from_nanos(ns as u64));
            }
            below = upto;
        }
        self.bounds_ns.last().map(|b| Duration::from_nanos(*b))
    }
}

impl Family {
    pub fn new(name: &'static str, kind: MetricType, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            series: Vec::new(),
        }
    }

    /// Adds a series; `labels` in the order the exposition writes them.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: Value) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
        self.series.push(MetricSeries { labels, value });
    }
}

impl Snapshot {
    /// Prometheus text format 0.0.4: each family's HELP and TYPE, then its series.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(4096 + 512 * self.series_count());
        for f in &self.families {
            text::family(&mut out, f.name, f.kind, f.help);
            for s in &f.series {
                let labels: Vec<(&str, &str)> =
                    s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                match &s.value {
                    Value::Counter(n) => text::sample(&mut out, f.name, &labels, n),
                    Value::Gauge(v) => text::sample(&mut out, f.name, &labels, text::float(*v)),
                    Value::Histogram(h) => text::histogram(
                        &mut out,
                        f.name,
                        &labels,
                        h.bounds_ns,
                        &h.counts,
                        h.sum_seconds,
                    ),
                }
            }
        }
        out
    }

    fn series_count(&self) -> usize {
        self.families.iter().map(|f| f.series.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const BOUNDS: &[u64] = &[10 * MS, 100 * MS, 1_000 * MS];

    fn histogram(counts: Vec<u64>) -> Histogram {
        Histogram {
            bounds_ns: BOUNDS,
            counts,
            ..Histogram::default()
        }
    }

    #[test]
    fn quantiles_interpolate_within_buckets_like_histogram_quantile() {
        let b = histogram(vec![0, 100, 0, 0]);
        // Half-way through the 10..100 ms bucket.
        assert_eq!(b.quantile(0.5), Some(Duration::from_millis(55)));
        assert_eq!(b.quantile(1.0), Some(Duration::from_millis(100)));
        let over = histogram(vec![1, 0, 0, 99]);
        // Above the top bound: the top bound, as Prometheus answers.
        assert_eq!(over.quantile(0.99), Some(Duration::from_secs(1)));
        assert_eq!(over.quantile(0.005), Some(Duration::from_millis(5)));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn deltas_are_what_came_after() {
        let before = histogram(vec![1, 2, 3, 4]);
        let after = histogram(vec![1, 5, 3, 10]);
        assert_eq!(after.since(&before).counts, vec![0, 3, 0, 6]);
        assert_eq!(after.since(&Histogram::default()).counts, after.counts);
    }

    #[test]
    fn text_is_each_family_then_its_series_in_order() {
        let mut requests = Family::new("x_total", MetricType::Counter, "Requests.");
        requests.push(&[("class", "a")], Value::Counter(3));
        let mut up = Family::new("up", MetricType::Gauge, "Up.");
        up.push(&[], Value::Gauge(0.5));
        let mut lat = Family::new("lat_seconds", MetricType::Histogram, "Latency.");
        lat.push(
            &[],
            Value::Histogram(Histogram {
                bounds_ns: &[1_000_000_000],
                counts: vec![1, 2],
                sum_seconds: 4.5,
                native: None,
            }),
        );
        let s = Snapshot {
            scenario: "s".into(),
            started: SystemTime::UNIX_EPOCH,
            taken: SystemTime::UNIX_EPOCH,
            families: vec![requests, up, lat],
        };
        assert_eq!(
            s.to_text(),
            "# HELP x_total Requests.\n# TYPE x_total counter\nx_total{class=\"a\"} 3\n\
             # HELP up Up.\n# TYPE up gauge\nup 0.5\n\
             # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{le=\"1\"} 1\nlat_seconds_bucket{le=\"+Inf\"} 3\n\
             lat_seconds_sum 4.5\nlat_seconds_count 3\n"
        );
    }
}
