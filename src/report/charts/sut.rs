//! The system under test over the run's clock: CPU cores used by each watched part, and the
//! memory of each watched process, with the fault windows shaded like the latency chart.

use super::time::{LineChart, Runs, split_runs, x_end};
use crate::metrics::{PartKind, Summary, SutReport};
use crate::report::ReportError;
use crate::report::fmt::MIB;

/// Pieces of a series with gaps: a reading that failed breaks the line.
fn runs(sut: &SutReport, values: &[Option<f64>]) -> Runs {
    split_runs(sut.t_s.iter().copied().zip(values.iter().copied()))
}

fn chart(
    s: &Summary,
    lines: &[(String, Runs)],
    y_label: &str,
    title: &str,
    size: super::Size,
) -> Result<Option<String>, ReportError> {
    let peak = lines
        .iter()
        .flat_map(|(_, r)| r.iter().flatten().map(|(_, v)| *v))
        .fold(0.0, f64::max);
    if lines.iter().all(|(_, r)| r.is_empty()) {
        return Ok(None);
    }
    LineChart {
        lines,
        targets: &[],
        faults: s,
        x_max: x_end(s),
        peak: if peak > 0.0 { peak } else { 1.0 },
        y_label,
        title,
        y_decimals: if peak < 10.0 { 2 } else { 0 },
    }
    .render(size)
    .map(Some)
}

/// CPU cores used per part, each reading.
pub fn cpu(s: &Summary, size: super::Size) -> Result<Option<String>, ReportError> {
    let Some(sut) = &s.sut else {
        return Ok(None);
    };
    let lines: Vec<(String, Runs)> = sut
        .parts
        .iter()
        .map(|p| (p.name.clone(), runs(sut, &p.cpu_cores)))
        .collect();
    chart(
        s,
        &lines,
        "CPU cores",
        "CPU cores used by each part of the system under test",
        size,
    )
}

/// Resident memory of each watched process, in MiB.
pub fn rss(s: &Summary, size: super::Size) -> Result<Option<String>, ReportError> {
    let Some(sut) = &s.sut else {
        return Ok(None);
    };
    let lines: Vec<(String, Runs)> = sut
        .parts
        .iter()
        .filter(|p| p.kind == PartKind::Process)
        .map(|p| {
            let mib: Vec<Option<f64>> = p
                .rss_bytes
                .iter()
                .map(|b| b.map(|b| b as f64 / MIB))
                .collect();
            (p.name.clone(), runs(sut, &mib))
        })
        .collect();
    chart(
        s,
        &lines,
        "RSS (MiB)",
        "Resident memory of each watched process",
        size,
    )
}
