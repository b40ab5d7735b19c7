//! Number formatting shared by every human-facing writer (HTML, Markdown, terminal).

use crate::metrics::CheckStatus;

/// Bytes in a mebibyte.
pub const MIB: f64 = 1024.0 * 1024.0;

/// What a table cell shows for a value that is missing.
pub const DASH: &str = "–";

/// `f(v)`, or a dash when there is no value.
pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| DASH.into())
}

/// Milliseconds, with precision that suits the magnitude: "0.42 ms", "87.3 ms", "1.24 s".
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 1.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// A ratio as a percentage that never rounds a miss up to "100%".
pub fn pct(r: f64) -> String {
    if !r.is_finite() {
        return "–".into();
    }
    let p = r * 100.0;
    if p >= 100.0 {
        "100%".into()
    } else if p >= 99.99 {
        format!("{:.3}%", (p * 1000.0).floor() / 1000.0)
    } else {
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    }
}

pub fn usd(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("${}", count(v.round() as u64))
    } else if v.abs() >= 1.0 || v == 0.0 {
        format!("${v:.2}")
    } else if v.abs() >= 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.5}")
    }
}

/// What failover did to the bill, as a verb and a positive amount: ("added", "$0.0012") when
/// the fallbacks cost more, ("saved", "$0.00045") when they cost less; never "added $-0.00045".
pub fn failover_cost(extra_usd: f64) -> (&'static str, String) {
    if extra_usd < 0.0 {
        ("saved", usd(-extra_usd))
    } else {
        ("added", usd(extra_usd))
    }
}

/// An integer with thousands separators: "12,345".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Large token counts read better abbreviated: "1.5M", "250k", "3B".
pub fn tokens(n: u64) -> String {
    let v = n as f64;
    if v >= 1e9 {
        format!("{}B", trim(v / 1e9))
    } else if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        n.to_string()
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// Requests per second: "26,255/s", "38.5/s".
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{}/s", count(v.round() as u64))
    } else {
        format!("{v:.1}/s")
    }
}

pub fn seconds(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} s")
    } else {
        format!("{v:.1} s")
    }
}

/// A value in the unit an SLA check names (`ms`, `s`, `ratio`, `x`, `usd`, `rps`).
pub fn in_unit(v: f64, unit: &str) -> String {
    match unit {
        "rps" => rate(v),
        "ms" => ms(v),
        "s" => seconds(v),
        "ratio" => pct(v),
        "x" => format!("{v:.2}x"),
        "usd" => usd(v),
        other => format!("{v} {other}"),
    }
}

/// Ratios are promises from below (availability ≥ 99.9%); everything else from above.
pub fn bound_symbol(unit: &str) -> &'static str {
    if unit == "ratio" { "≥" } else { "≤" }
}

pub fn status(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Pass => "pass",
        CheckStatus::Fail => "fail",
        CheckStatus::Inconclusive => "inconclusive",
    }
}

/// Percentile label for the "nines" axis: 90 -> "90%", 99.9 -> "99.9%".
pub fn percentile_label(p: f64) -> String {
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// "12 opened (TLS 2 full, 10 resumed); connecting took 0.4% of request time", or nothing
/// when no request opened a connection it was seen to open.
pub fn connections(c: &crate::metrics::Connections) -> Option<String> {
    if c.opened == 0 {
        return None;
    }
    let mut line = format!("{} opened", count(c.opened));
    if c.tls_full + c.tls_resumed > 0 {
        line.push_str(&format!(
            " (TLS {} full, {} resumed)",
            count(c.tls_full),
            count(c.tls_resumed)
        ));
    }
    if let Some(share) = c.handshake_share {
        line.push_str(&format!("; connecting took {} of request time", pct(share)));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_well() {
        assert_eq!(ms(87.34), "87.3 ms");
        assert_eq!(ms(1240.0), "1.24 s");
        assert_eq!(pct(0.99995), "99.995%");
        assert_eq!(pct(0.999999), "99.999%");
        assert_eq!(pct(1.0), "100%");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(tokens(1_500_000), "1.5M");
        assert_eq!(percentile_label(99.9), "99.9%");
        assert_eq!(percentile_label(90.0), "90%");
        assert_eq!(usd(0.0042), "$0.00420");
        assert_eq!(rate(26255.4), "26,255/s");
        assert_eq!(rate(197.0), "197/s");
        assert_eq!(rate(38.46), "38.5/s");
    }
}
