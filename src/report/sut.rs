//! The "System under test" section's view model: what each watched part spent (CPU cores,
//! CPU per 1,000 requests, memory, descriptors, threads), and the gateway's own counts beside
//! gauntlet's measurement of the same thing, flagged where they disagree.

use serde::Serialize;

use super::fmt;
use crate::metrics::{PartKind, ScrapeReport, Summary, SutReport};

const DASH: &str = "–";

#[derive(Debug, Serialize)]
pub struct SutView {
    pub parts: Vec<PartRow>,
    /// The scraped URL and how its scrapes went; None when nothing was scraped.
    pub scrape: Option<String>,
    pub comparisons: Vec<ComparisonRow>,
    /// Comparisons that disagree.
    pub disagreements: usize,
    pub breakers: Vec<BreakerRow>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PartRow {
    pub name: String,
    pub cpu_mean: String,
    pub cpu_peak: String,
    pub cpu_seconds: String,
    pub cpu_per_1k: String,
    pub rss_peak: String,
    pub fds_peak: String,
    pub threads_peak: String,
}

/// One measure as the gateway counts it and as gauntlet measured it.
#[derive(Debug, Serialize)]
pub struct ComparisonRow {
    pub measure: String,
    pub gateway: String,
    pub gauntlet: String,
    pub how: String,
    pub disagree: bool,
}

#[derive(Debug, Serialize)]
pub struct BreakerRow {
    pub upstream: String,
    pub gateway: String,
    pub faults: String,
}

pub fn build(s: &Summary) -> Option<SutView> {
    let sut = s.sut.as_ref()?;
    let requests = s.overall.requests;
    let parts = sut
        .parts
        .iter()
        .map(|p| {
            let cores: Vec<f64> = p.cpu_cores.iter().flatten().copied().collect();
            let mean = (!cores.is_empty()).then(|| cores.iter().sum::<f64>() / cores.len() as f64);
            let name = match (p.kind, p.pid) {
                (PartKind::Process, Some(pid)) => format!("{} (pid {pid})", p.name),
                _ => p.name.clone(),
            };
            PartRow {
                name,
                cpu_mean: opt(mean, cores_text),
                cpu_peak: opt(cores.iter().copied().reduce(f64::max), cores_text),
                cpu_seconds: opt(p.cpu_seconds, |c| format!("{c:.2} s")),
                cpu_per_1k: match p.cpu_seconds {
                    Some(c) if requests > 0 => {
                        format!("{:.3} s", c / (requests as f64 / 1000.0))
                    }
                    _ => DASH.into(),
                },
                rss_peak: opt(peak(&p.rss_bytes), |b| mib(b as f64)),
                fds_peak: opt(peak(&p.fds), fmt::count),
                threads_peak: opt(peak(&p.threads), fmt::count),
            }
        })
        .collect();
    let comparisons = sut
        .scrape
        .as_ref()
        .map(|sc| comparisons(s, sut, sc))
        .unwrap_or_default();
    Some(SutView {
        parts,
        scrape: sut.scrape.as_ref().map(|sc| {
            format!(
                "{}: {} scrapes answered, {} failed; {} series kept",
                sc.url,
                sc.succeeded,
                sc.failed,
                sc.series.len()
            )
        }),
        disagreements: comparisons.iter().filter(|c| c.disagree).count(),
        comparisons,
        breakers: sut
            .scrape
            .as_ref()
            .map(|sc| breakers(s, sut, sc))
            .unwrap_or_default(),
        notes: sut.notes.clone(),
    })
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| DASH.into())
}

fn cores_text(c: f64) -> String {
    format!("{c:.2}")
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn peak(v: &[Option<u64>]) -> Option<u64> {
    v.iter().flatten().copied().max()
}

/// The growth of the counters named `name` (summed over their labels, filtered by `keep`)
/// over the measured window: from the reading that closed the warmup (the last within half
/// an interval of its end; 0 when none: the gateway's counters start with it) to the last
/// reading that answered.
fn growth(
    sut: &SutReport,
    sc: &ScrapeReport,
    (warmup_s, interval_s): (f64, f64),
    name: &str,
    keep: impl Fn(&crate::metrics::ScrapedSeries) -> bool,
) -> Option<f64> {
    let series: Vec<_> = sc.named(name).filter(|s| keep(s)).collect();
    if series.is_empty() {
        return None;
    }
    // A series that appeared later was 0 before it: missing values count as 0 there, but
    // a reading whose scrape failed has no value at all.
    let answered = |i: usize| {
        series
            .iter()
            .any(|s| s.values.get(i).copied().flatten().is_some())
    };
    let sum_at = |i: usize| -> f64 {
        series
            .iter()
            .filter_map(|s| s.values.get(i).copied().flatten())
            .sum()
    };
    // Readings are due on the interval and taken a moment later.
    let slack = interval_s / 2.0;
    let start = (0..sut.t_s.len())
        .rev()
        .find(|i| sut.t_s[*i] <= warmup_s + slack && answered(*i))
        .map_or(0.0, sum_at);
    let end = (0..sut.t_s.len()).rev().find(|i| answered(*i))?;
    Some(sum_at(end) - start)
}

/// Counts agree when they differ by at most 5 or 5%: the two sides read at slightly
/// different moments, so a request in flight at either edge may land on one side only.
fn disagree(a: f64, b: f64) -> bool {
    (a - b).abs() > 5.0_f64.max(0.05 * a.abs().max(b.abs()))
}

fn comparisons(s: &Summary, sut: &SutReport, sc: &ScrapeReport) -> Vec<ComparisonRow> {
    let all = |_: &crate::metrics::ScrapedSeries| true;
    let attempts = growth(
        sut,
        sc,
        (s.warmup_s, s.interval_s),
        "gateway_attempts_total",
        all,
    );
    let failed = growth(
        sut,
        sc,
        (s.warmup_s, s.interval_s),
        "gateway_attempts_total",
        |x| x.labels.get("outcome").is_some_and(|o| o != "ok"),
    );
    let answered = growth(
        sut,
        sc,
        (s.warmup_s, s.interval_s),
        "gateway_requests_total",
        all,
    );
    let received: Option<u64> = if s.upstreams.is_empty() {
        None
    } else {
        s.upstreams.iter().map(|u| u.received).sum()
    };
    let sent = s.overall.requests.saturating_sub(s.overall.dropped);
    let mut rows = Vec::new();
    let mut row = |measure: &str, gateway: Option<f64>, gauntlet: Option<f64>, how: &str| {
        if let (Some(g), Some(m)) = (gateway, gauntlet) {
            rows.push(ComparisonRow {
                measure: measure.into(),
                gateway: format!("{g:.0}"),
                gauntlet: format!("{m:.0}"),
                how: how.into(),
                disagree: disagree(g, m),
            });
        }
    };
    row(
        "requests",
        answered,
        Some(sent as f64),
        "gateway_requests_total vs requests gauntlet sent",
    );
    row(
        "attempts at upstreams",
        attempts,
        received.map(|r| r as f64),
        "gateway_attempts_total vs requests the mocks received",
    );
    row(
        "retries and fallbacks",
        attempts.zip(answered).map(|(a, r)| a - r),
        received.map(|r| r as f64 - sent as f64),
        "gateway attempts − its requests vs mocks' received − requests sent",
    );
    row(
        "failed attempts",
        failed,
        received.map(|r| r as f64 - s.overall.successes as f64),
        "gateway attempts not ok vs mocks' received − successes gauntlet saw",
    );
    rows
}

/// When each upstream's breaker was open or half-open, beside the faults injected into it.
fn breakers(s: &Summary, sut: &SutReport, sc: &ScrapeReport) -> Vec<BreakerRow> {
    sc.named("gateway_breaker_state")
        .filter_map(|series| {
            let upstream = series.labels.get("upstream")?.clone();
            let mut spans: Vec<String> = Vec::new();
            let mut open: Option<(f64, f64)> = None;
            for (t, v) in sut.t_s.iter().zip(&series.values) {
                match (v.filter(|v| *v > 0.0), open) {
                    (Some(_), None) => open = Some((*t, *t)),
                    (Some(_), Some((a, _))) => open = Some((a, *t)),
                    (None, Some((a, b))) => {
                        spans.push(format!("{a:.1}–{b:.1} s"));
                        open = None;
                    }
                    (None, None) => {}
                }
            }
            if let Some((a, b)) = open {
                spans.push(format!("{a:.1}–{b:.1} s"));
            }
            let faults: Vec<String> = s
                .faults
                .iter()
                .filter(|f| f.upstream == upstream)
                .map(|f| format!("{} {:.1}–{:.1} s", f.kind, f.start_s, f.end_s))
                .collect();
            Some(BreakerRow {
                upstream,
                gateway: if spans.is_empty() {
                    "closed throughout".into()
                } else {
                    format!("not closed at readings {}", spans.join(", "))
                },
                faults: if faults.is_empty() {
                    "none".into()
                } else {
                    faults.join(", ")
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_disagree_beyond_five_or_five_percent() {
        assert!(!disagree(100.0, 105.0));
        assert!(!disagree(1000.0, 1049.0));
        assert!(disagree(1000.0, 1060.0));
        assert!(disagree(0.0, 6.0));
        assert!(!disagree(0.0, 0.0));
    }
}
