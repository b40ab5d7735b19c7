//! Prometheus text exposition format 0.0.4, written by hand: the rules a real scraper holds an
//! exporter to (one HELP and one TYPE line per family, before its samples; escaped label
//! values; cumulative buckets ending in `le="+Inf"`, then `_sum` and `_count`).

use std::borrow::Cow;
use std::fmt::{Display, Write};

/// What Prometheus negotiates for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A family's HELP and TYPE lines; its samples follow, all of them before the next family.
pub fn family(out: &mut String, name: &str, kind: MetricType, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

/// One sample line: `name{label="value",...} value`.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Display) {
    out.push_str(name);
    write_labels(out, labels, None);
    let _ = writeln!(out, " {value}");
}

/// A gauge value as the format spells it: `+Inf`, `-Inf` and `NaN` where Rust would not.
pub fn float(v: f64) -> Cow<'static, str> {
    if v.is_nan() {
        Cow::Borrowed("NaN")
    } else if v == f64::INFINITY {
        Cow::Borrowed("+Inf")
    } else if v == f64::NEG_INFINITY {
        Cow::Borrowed("-Inf")
    } else {
        Cow::Owned(v.to_string())
    }
}

/// One histogram series: `counts` holds each bucket's own count (the last one above the top
/// bound), written cumulatively, so `le="+Inf"` and `_count` are the same total by
/// construction even while the counts move under a scrape.
pub fn histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds_ns: &[u64],
    counts: &[u64],
    sum_seconds: f64,
) {
    let mut total = 0u64;
    for (i, n) in counts.iter().enumerate() {
        total = total.saturating_add(*n);
        let le = match bounds_ns.get(i) {
            Some(b) => seconds(*b),
            None => "+Inf".to_string(),
        };
        out.push_str(name);
        out.push_str("_bucket");
        write_labels(out, labels, Some(&le));
        let _ = writeln!(out, " {total}");
    }
    let suffixed = |s: &str| format!("{name}{s}");
    sample(out, &suffixed("_sum"), labels, float(sum_seconds));
    sample(out, &suffixed("_count"), labels, total);
}

/// Nanoseconds as exact decimal seconds: 5_000_000 is "0.005", 60_000_000_000 is "60" (no
/// float rounding, so a bound reads back as written).
pub fn seconds(ns: u64) -> String {
    let whole = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:09}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let all = labels.iter().copied().chain(le.map(|v| ("le", v)));
    for (k, v) in all {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(&escape_label(v));
        out.push('"');
    }
    out.push('}');
}

/// Label values escape backslash, double quote and line feed; nothing else.
fn escape_label(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    Cow::Owned(s)
}

/// HELP text escapes backslash and line feed (a quote is literal there).
fn escape_help(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(v.replace('\\', "\\\\").replace('\n', "\\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped_as_the_format_says() {
        let mut out = String::new();
        family(
            &mut out,
            "x_total",
            MetricType::Counter,
            "a \"quoted\" C:\\path\nsecond line",
        );
        sample(
            &mut out,
            "x_total",
            &[("class", "we\"ird\\cl\nass"), ("outcome", "ok")],
            3,
        );
        assert_eq!(
            out,
            "# HELP x_total a \"quoted\" C:\\\\path\\nsecond line\n\
             # TYPE x_total counter\n\
             x_total{class=\"we\\\"ird\\\\cl\\nass\",outcome=\"ok\"} 3\n"
        );
        let mut bare = String::new();
        sample(&mut bare, "up", &[], float(1.5));
        assert_eq!(bare, "up 1.5\n");
    }

    #[test]
    fn buckets_are_cumulative_and_end_in_inf_equal_to_the_count() {
        let mut out = String::new();
        let bounds = [5_000_000, 100_000_000, 60_000_000_000];
        histogram(
            &mut out,
            "lat_seconds",
            &[("class", "a")],
            &bounds,
            &[2, 0, 3, 1],
            1.25,
        );
        assert_eq!(
            out,
            "lat_seconds_bucket{class=\"a\",le=\"0.005\"} 2\n\
             lat_seconds_bucket{class=\"a\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{class=\"a\",le=\"60\"} 5\n\
             lat_seconds_bucket{class=\"a\",le=\"+Inf\"} 6\n\
             lat_seconds_sum{class=\"a\"} 1.25\n\
             lat_seconds_count{class=\"a\"} 6\n"
        );
    }

    #[test]
    fn bounds_and_floats_read_back_exactly() {
        assert_eq!(seconds(100_000), "0.0001");
        assert_eq!(seconds(2_500_000_000), "2.5");
        assert_eq!(seconds(0), "0");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.000_001), "0.000001");
    }
}
