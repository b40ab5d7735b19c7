//! The "gateway overhead" section of every report (`[load] baseline = "direct"`): per class and
//! overall, the gateway's p50/p99 beside the direct baseline's, the difference, and the samples
//! each side rests on.

use std::fmt::Write;

use serde::Serialize;

use super::fmt;
use crate::metrics::{Overhead, OverheadStats, Percentiles, Summary};

/// What is subtracted, said wherever the numbers are shown.
pub const MEANING: &str = "Added = gateway percentile - direct percentile: a difference of \
    percentiles, not a percentile of differences. Successful requests only, on both sides; \
    intervals with an applied fault are left out of both.";

/// One scope's row, already formatted.
#[derive(Debug, Serialize)]
pub struct OverheadRow {
    pub scope: String,
    pub gateway_p50: String,
    pub direct_p50: String,
    pub added_p50: String,
    pub gateway_p99: String,
    pub direct_p99: String,
    pub added_p99: String,
    pub gateway_samples: String,
    pub direct_samples: String,
    /// Sent direct in the whole window, with failures and drops.
    pub direct_requests: String,
}

#[derive(Debug, Serialize)]
pub struct OverheadView {
    pub rows: Vec<OverheadRow>,
    pub meaning: &'static str,
    /// Set when fault windows were left out.
    pub excluded: Option<String>,
}

fn signed_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 0.0 => format!("-{}", fmt::ms(-v)),
        Some(v) => format!("+{}", fmt::ms(v)),
        None => "–".into(),
    }
}

fn row(scope: &str, st: &OverheadStats) -> OverheadRow {
    let at = |p: Option<&Percentiles>, q: fn(&Percentiles) -> f64| {
        p.map_or_else(|| "–".into(), |p| fmt::ms(q(p)))
    };
    let samples = |p: Option<&Percentiles>| fmt::count(p.map_or(0, |p| p.samples));
    let (g, d) = (st.gateway_ms.as_ref(), st.direct_ms.as_ref());
    OverheadRow {
        scope: scope.to_string(),
        gateway_p50: at(g, |p| p.p50),
        direct_p50: at(d, |p| p.p50),
        added_p50: signed_ms(st.added_p50_ms),
        gateway_p99: at(g, |p| p.p99),
        direct_p99: at(d, |p| p.p99),
        added_p99: signed_ms(st.added_p99_ms),
        gateway_samples: samples(g),
        direct_samples: samples(d),
        direct_requests: fmt::count(st.direct_requests),
    }
}

/// The section's view; None when the run sent no baseline.
pub fn view(s: &Summary) -> Option<OverheadView> {
    let o: &Overhead = s.overhead.as_ref()?;
    let mut rows: Vec<OverheadRow> = o.classes.iter().map(|c| row(&c.name, &c.stats)).collect();
    rows.push(row("overall", &o.overall));
    Some(OverheadView {
        rows,
        meaning: MEANING,
        excluded: (o.excluded_s > 0.0).then(|| {
            format!(
                "{} of fault windows left out of both sides.",
                fmt::seconds(o.excluded_s)
            )
        }),
    })
}

/// The terminal's lines for the section; nothing when the run sent no baseline.
pub fn terminal(o: &mut String, s: &Summary) {
    let Some(v) = view(s) else { return };
    let _ = writeln!(
        o,
        "{:<26} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "overhead (vs direct)", "added p50", "added p99", "gateway n", "direct n", "sent"
    );
    for r in &v.rows {
        let _ = writeln!(
            o,
            "  {:<24} {:>10} {:>10} {:>9} {:>9} {:>9}",
            r.scope,
            r.added_p50,
            r.added_p99,
            r.gateway_samples,
            r.direct_samples,
            r.direct_requests
        );
    }
    if let Some(e) = &v.excluded {
        let _ = writeln!(o, "  {e}");
    }
}
