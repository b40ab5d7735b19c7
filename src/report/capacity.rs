//! A capacity search for people and CI: the live line per probe, the final verdict line,
//! `capacity.json` and `capacity.html` (the curve, the binding check, every probe linked to
//! its own run folder).

use std::path::PathBuf;

use serde::Serialize;

use super::ReportError;
use super::charts::{self, CapacityCharts};
use super::fmt;
use super::template::render;
use crate::capacity::{CapacityResult, Probe, Purpose, SearchResult, StopReason};
use crate::rundir::{RunDir, RunFile};

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), fmt::rate)
}

fn purpose(p: Purpose) -> &'static str {
    match p {
        Purpose::Ceiling => "ceiling",
        Purpose::Bracket => "bracket",
        Purpose::Bisect => "bisect",
        Purpose::Lengthen => "lengthen",
        Purpose::Confirm => "confirm",
    }
}

/// One probe, as the terminal shows it while the search runs.
pub fn capacity_probe_line(p: &Probe) -> String {
    let tail = match (p.ttft_p99_ms, p.p99_latency_ms) {
        (Some(t), _) => format!("ttft p99 {}", fmt::ms(t)),
        (None, Some(l)) => format!("p99 {}", fmt::ms(l)),
        (None, None) => "no success".to_string(),
    };
    let Some(offered) = p.offered_rps else {
        // The ceiling is measured, not judged: its SLA verdict says nothing about a rate.
        return format!(
            "probe {:>2} {:<8} {:>10} {:>6.1} s  {} requests answered ({}), {tail}",
            p.index,
            purpose(p.purpose),
            "closed",
            p.duration_s,
            fmt::count(p.requests),
            fmt::rate(p.requests as f64 / p.duration_s.max(f64::MIN_POSITIVE)),
        );
    };
    format!(
        "probe {:>2} {:<8} {:>10} {:>6.1} s  {:<10}  achieved {:>9}  avail {:>8}  {tail}\n           {}",
        p.index,
        purpose(p.purpose),
        fmt::rate(offered),
        p.duration_s,
        p.verdict.as_str(),
        fmt::rate(p.achieved_rps),
        fmt::pct(p.availability),
        p.why
    )
}

fn search_line(s: &SearchResult) -> String {
    let condition = if !s.faults {
        "without faults".to_string()
    } else if s.fault_summary.is_empty() {
        "(the scenario has no faults)".to_string()
    } else {
        format!("with {}", s.fault_summary.join(", "))
    };
    let bound = s
        .binding
        .as_ref()
        .map(|b| format!("; bound by {b}"))
        .unwrap_or_default();
    let bracket = format!("bracket {}–{}", rate(s.bracket[0]), rate(s.bracket[1]));
    match (s.stop, s.capacity_rps) {
        (StopReason::Invalid, _) => {
            format!("no capacity {condition}: the search stopped at an invalid probe")
        }
        (StopReason::BelowMin, _) => format!(
            "capacity below the lowest rate probed ({}) {condition}{bound}",
            rate(s.bracket[1])
        ),
        (StopReason::ReachedMax, Some(c)) => format!(
            "capacity at least {} {condition} (every rate up to the maximum passed)",
            fmt::rate(c)
        ),
        (stop, Some(c)) => {
            let tail = match stop {
                StopReason::Converged => String::new(),
                other => format!(" [{}: the bracket is as it stood]", other.as_str()),
            };
            format!(
                "capacity {} ({bracket}) {condition}{bound}{tail}",
                fmt::rate(c)
            )
        }
        (stop, None) => format!("no rate passed {condition} ({}){bound}", stop.as_str()),
    }
}

/// The verdict lines after the search: one per search, the price of the faults, the target.
pub fn capacity_terminal(r: &CapacityResult) -> String {
    let mut out = String::new();
    if let Some(c) = r.ceiling_rps {
        out.push_str(&format!(
            "ceiling (closed model, no faults): {} answered\n",
            fmt::rate(c)
        ));
    }
    for s in &r.searches {
        out.push_str(&search_line(s));
        out.push('\n');
        for w in &s.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    if let Some(price) = outage_price(r) {
        out.push_str(&format!("{price}\n"));
    }
    if let Some(want) = r.at_least {
        let verdict = if r.at_least_met() { "met" } else { "NOT met" };
        out.push_str(&format!(
            "target: at least {} with faults: {verdict}\n",
            fmt::rate(want)
        ));
    }
    out
}

/// "the faults cost 320/s (50%)": healthy capacity minus capacity with faults.
fn outage_price(r: &CapacityResult) -> Option<String> {
    let healthy = r.healthy()?.capacity_rps?;
    let faulty = r.with_faults()?.capacity_rps?;
    let lost = healthy - faulty;
    Some(format!(
        "the faults cost {} of capacity ({} of {} healthy)",
        fmt::rate(lost.max(0.0)),
        fmt::pct(if healthy > 0.0 {
            lost.max(0.0) / healthy
        } else {
            0.0
        }),
        fmt::rate(healthy)
    ))
}

#[derive(Serialize)]
struct ProbeRow {
    index: usize,
    search: &'static str,
    purpose: &'static str,
    offered: String,
    duration: String,
    requests: String,
    achieved: String,
    availability: String,
    goodput: String,
    tail: String,
    verdict: &'static str,
    why: String,
    folder: Option<String>,
}

#[derive(Serialize)]
struct SearchView {
    line: String,
    faults: bool,
    stop: &'static str,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct CapacityView<'a> {
    r: &'a CapacityResult,
    passed: bool,
    at_least_met: bool,
    searches: Vec<SearchView>,
    price: Option<String>,
    ceiling: String,
    probes: Vec<ProbeRow>,
    charts: CapacityCharts,
}

pub fn capacity_html(r: &CapacityResult) -> Result<String, ReportError> {
    let mut probes = Vec::new();
    for s in &r.searches {
        for p in &s.probes {
            probes.push(ProbeRow {
                index: p.index,
                search: if s.faults { "with faults" } else { "no faults" },
                purpose: purpose(p.purpose),
                offered: rate(p.offered_rps),
                duration: fmt::seconds(p.duration_s),
                requests: fmt::count(p.requests),
                achieved: fmt::rate(p.achieved_rps),
                availability: fmt::pct(p.availability),
                goodput: fmt::pct(p.goodput),
                tail: p
                    .ttft_p99_ms
                    .or(p.p99_latency_ms)
                    .map_or_else(|| "–".into(), fmt::ms),
                verdict: p.verdict.as_str(),
                why: p.why.clone(),
                folder: p.folder.clone(),
            });
        }
    }
    let view = CapacityView {
        r,
        passed: r.passed(),
        at_least_met: r.at_least_met(),
        searches: r
            .searches
            .iter()
            .map(|s| SearchView {
                line: search_line(s),
                faults: s.faults,
                stop: s.stop.as_str(),
                warnings: s.warnings.clone(),
            })
            .collect(),
        price: outage_price(r),
        ceiling: rate(r.ceiling_rps),
        probes,
        charts: charts::render_capacity(r, charts::HALF)?,
    };
    render("capacity.html.j2", &view)
}

/// Writes `capacity.json` and `capacity.html` into the search's folder.
pub fn write_capacity(r: &CapacityResult, dir: &mut RunDir) -> Result<Vec<PathBuf>, ReportError> {
    let json = serde_json::to_vec_pretty(r)
        .map_err(|e| ReportError::render(RunFile::CapacityJson.name(), e))?;
    Ok(vec![
        dir.write(RunFile::CapacityJson, &json)?,
        dir.write(RunFile::CapacityHtml, capacity_html(r)?.as_bytes())?,
    ])
}

/// Reads a `capacity.json` (or the folder holding one).
pub fn read_capacity(path: &std::path::Path) -> Result<CapacityResult, ReportError> {
    let (_, file) = crate::rundir::locate(path, RunFile::CapacityJson);
    let text = std::fs::read_to_string(&file).map_err(|e| ReportError::io(&file, e))?;
    let unreadable = |message: String| ReportError::Unreadable {
        path: file.clone(),
        message,
    };
    let r: CapacityResult = serde_json::from_str(&text)
        .map_err(|e| unreadable(format!("not a capacity result: {e}")))?;
    if r.schema_version != crate::capacity::CAPACITY_SCHEMA_VERSION {
        return Err(unreadable(format!(
            "schema version {} is not {} (written by another gauntlet version)",
            r.schema_version,
            crate::capacity::CAPACITY_SCHEMA_VERSION
        )));
    }
    Ok(r)
}

/// One capacity of two searches side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityDelta {
    /// "with faults" or "no faults".
    pub search: &'static str,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// The new capacity fell by more than the allowed share (or was lost).
    pub regressed: bool,
}

/// Each search's capacity in `base` against `new`: a fall beyond `max_regression` (a share of
/// the base capacity), or a capacity that could no longer be found, regresses.
pub fn compare_capacity(
    base: &CapacityResult,
    new: &CapacityResult,
    max_regression: f64,
) -> Vec<CapacityDelta> {
    [(true, "with faults"), (false, "no faults")]
        .into_iter()
        .filter_map(|(faults, name)| {
            let pick = |r: &CapacityResult| {
                r.searches
                    .iter()
                    .find(|s| s.faults == faults)
                    .map(|s| s.capacity_rps)
            };
            let (b, n) = (pick(base)?, pick(new));
            let n = n.flatten();
            let regressed = match (b, n) {
                (Some(b), Some(n)) => n < b * (1.0 - max_regression),
                (Some(_), None) => true,
                (None, _) => false,
            };
            Some(CapacityDelta {
                search: name,
                base: b,
                new: n,
                regressed,
            })
        })
        .collect()
}

/// The comparison as the terminal shows it.
pub fn capacity_compare_terminal(deltas: &[CapacityDelta], max_regression: f64) -> String {
    let mut out = format!(
        "capacity compared (a fall of more than {} regresses)\n",
        fmt::pct(max_regression)
    );
    for d in deltas {
        let change = match (d.base, d.new) {
            (Some(b), Some(n)) if b > 0.0 => format!("{:+.1}%", (n / b - 1.0) * 100.0),
            _ => "–".into(),
        };
        out.push_str(&format!(
            "{:<12} {:>10} -> {:>10}  {change:>8}  {}\n",
            d.search,
            rate(d.base),
            rate(d.new),
            if d.regressed { "REGRESSED" } else { "ok" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(purpose: Purpose, offered: Option<f64>, verdict: crate::capacity::Verdict) -> Probe {
        Probe {
            index: 3,
            purpose,
            offered_rps: offered,
            duration_s: 2.0,
            requests: 300,
            achieved_rps: 98.5,
            availability: 0.995,
            goodput: 0.99,
            p99_latency_ms: Some(120.0),
            ttft_p99_ms: None,
            verdict,
            why: "availability overall failed: because".into(),
            checks: Vec::new(),
            folder: None,
        }
    }

    #[test]
    fn a_probe_line_says_its_rate_verdict_and_why() {
        use crate::capacity::Verdict;
        let line = capacity_probe_line(&probe(Purpose::Bisect, Some(150.0), Verdict::Unresolved));
        assert!(line.starts_with("probe  3 bisect"), "{line}");
        for part in [
            "150/s",
            "2.0 s",
            "unresolved",
            "98.5/s",
            "99.50%",
            "p99 120 ms",
            "because",
        ] {
            assert!(line.contains(part), "{part} missing: {line}");
        }
        let pass = capacity_probe_line(&probe(Purpose::Confirm, Some(150.0), Verdict::Pass));
        assert!(
            pass.contains(" pass ") && pass.contains("confirm"),
            "{pass}"
        );
        let fail = capacity_probe_line(&probe(Purpose::Lengthen, Some(150.0), Verdict::Fail));
        assert!(
            fail.contains(" fail ") && fail.contains("lengthen"),
            "{fail}"
        );
        // The ceiling is measured, not judged: no verdict on its line.
        let ceiling = capacity_probe_line(&probe(Purpose::Ceiling, None, Verdict::Fail));
        assert!(
            ceiling.contains("300 requests answered (150/s)") && !ceiling.contains("fail"),
            "{ceiling}"
        );
    }
}
