//! The "System under test" section's view model: what each watched part spent (CPU cores,
//! CPU per 1,000 requests, memory, descriptors, threads), and the gateway's own counts beside
//! gauntlet's measurement of the same thing, flagged where they disagree.

use serde::Serialize;

use super::fmt::{self, DASH, opt};
use crate::metrics::{PartKind, ScrapeReport, ScrapedSeries, Summary, SutReport};

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
        .map(|sc| comparisons(sut, sc))
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

fn cores_text(c: f64) -> String {
    format!("{c:.2}")
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / fmt::MIB)
}

fn peak(v: &[Option<u64>]) -> Option<u64> {
    v.iter().flatten().copied().max()
}

/// The counts are compared between two readings: the baseline (reading 0), taken as the run
/// started, and the last one, after every request ended, which this gives. Both edges are quiet, so the gateway's, the
/// mocks' and the load generator's counts (read a few milliseconds apart, and the load
/// generator's in batches) meet there; an edge inside the run would catch requests in flight.
fn window_end(sut: &SutReport) -> Option<usize> {
    sut.t_s.len().checked_sub(1)
}

/// A cumulative count at reading `i`: the latest value read at or before it (a failed read
/// in between is skipped over, not taken as 0).
fn at(values: &[Option<f64>], i: usize) -> Option<f64> {
    values.get(..=i)?.iter().rev().find_map(|v| *v)
}

/// How much the sum of `series` grew from the baseline reading to `end` (a series not yet
/// read at the baseline starts from 0); None when the end was never read.
fn growth(series: &[Vec<Option<f64>>], end: usize) -> Option<f64> {
    if series.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for values in series {
        let last = at(values, end)?;
        let first = at(values, 0).unwrap_or(0.0);
        total += last - first;
    }
    Some(total)
}

fn scraped(
    sc: &ScrapeReport,
    name: &str,
    keep: impl Fn(&ScrapedSeries) -> bool,
) -> Vec<Vec<Option<f64>>> {
    sc.named(name)
        .filter(|x| keep(x))
        .map(|x| x.values.clone())
        .collect()
}

fn counts(values: &[Option<u64>]) -> Vec<Option<f64>> {
    values.iter().map(|v| v.map(|n| n as f64)).collect()
}

/// Counts agree when they differ by at most 2 or 1%: the sides are read a few milliseconds
/// apart and count a request at different steps (arrival, answer), which the quiet edges
/// of the window keep to a handful.
fn disagree(a: f64, b: f64) -> bool {
    (a - b).abs() > 2.0_f64.max(0.01 * a.abs().max(b.abs()))
}

fn comparisons(sut: &SutReport, sc: &ScrapeReport) -> Vec<ComparisonRow> {
    let Some(w) = window_end(sut) else {
        return Vec::new();
    };
    let attempts = growth(&scraped(sc, "gateway_attempts_total", |_| true), w);
    let failed = growth(
        &scraped(sc, "gateway_attempts_total", |x| {
            x.labels.get("outcome").is_some_and(|o| o != "ok")
        }),
        w,
    );
    let answered = growth(&scraped(sc, "gateway_requests_total", |_| true), w);
    // The direct baseline reaches the upstreams without the gateway: take it off their side.
    let direct = growth(&[counts(&sut.client_direct)], w).unwrap_or(0.0);
    let received = growth(
        &sut.upstream_requests
            .iter()
            .map(|u| counts(&u.values))
            .collect::<Vec<_>>(),
        w,
    )
    .map(|r| r - direct);
    let ended = growth(&[counts(&sut.client_finished)], w);
    let ended_failed = growth(&[counts(&sut.client_failed)], w);
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
        ended,
        "gateway_requests_total vs requests gauntlet saw end",
    );
    row(
        "attempts at upstreams",
        attempts,
        received,
        "gateway_attempts_total vs requests the mocks received",
    );
    row(
        "retries and fallbacks",
        attempts.zip(answered).map(|(a, r)| a - r),
        received.zip(ended).map(|(r, e)| r - e),
        "gateway attempts − its requests vs mocks' received − requests gauntlet saw end",
    );
    row(
        "failed attempts",
        failed,
        received
            .zip(ended)
            .zip(ended_failed)
            .map(|((r, e), f)| r - (e - f)),
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
    fn growth_skips_failed_reads_and_starts_from_zero_without_a_warmup_reading() {
        let a = vec![Some(10.0), None, Some(30.0), None];
        let b = vec![None, Some(5.0), Some(6.0), Some(8.0)];
        assert_eq!(at(&a, 1), Some(10.0));
        assert_eq!(at(&b, 0), None);
        // From reading 0 to 3: a grew 20 (its failed last read is skipped), b 8 from nothing.
        assert_eq!(growth(&[a, b], 3), Some(28.0));
        assert_eq!(growth(&[vec![None, None]], 1), None);
        assert_eq!(growth(&[], 1), None);
    }

    #[test]
    fn counts_disagree_beyond_two_or_one_percent() {
        assert!(!disagree(100.0, 102.0));
        assert!(!disagree(0.0, -2.0));
        assert!(!disagree(10_000.0, 10_099.0));
        assert!(disagree(10_000.0, 10_150.0));
        assert!(disagree(0.0, 3.0));
        assert!(!disagree(0.0, 0.0));
    }
}
