//! `latency.hlog`: the per-interval latency histograms of each class in the standard
//! HdrHistogram interval-log format, readable by HdrHistogram tools. A class's own tag holds
//! its successful requests; `CLASS/time_to_error/KIND` tags hold its failures of each kind.

use std::io::Write;
use std::time::SystemTime;

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::recorder::Recorder;
use super::sample::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    #[error("writing the histogram log: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding a histogram: {0}")]
    Encode(String),
}

/// A tag may not contain spaces, commas or colons; anything else passes through.
fn tag_text(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || c == ',' || c == ':' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The tag of a class's failures of one kind.
fn error_tag(class: &str, kind: ErrorKind) -> String {
    format!("{}/time_to_error/{kind}", tag_text(class))
}

/// Writes every non-empty interval histogram (microseconds) of every class: the latency of
/// its successes, then the time to error of each kind of failure.
pub fn write_hlog<W: Write>(
    rec: &Recorder,
    started_at: SystemTime,
    out: &mut W,
) -> Result<(), HlogError> {
    let layout = rec.layout();
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(
            "gauntlet latency log: values in microseconds; tag CLASS: successful requests, \
             tag CLASS/time_to_error/KIND: failed requests of that kind",
        )
        .with_start_time(started_at)
        .with_base_time(started_at)
        .with_max_value_divisor(1000.0);
    let mut writer = builder.begin_log_with(out, &mut serializer)?;
    let tags: Vec<String> = layout.classes.iter().map(|c| tag_text(c)).collect();
    for i in 0..layout.intervals {
        let start = layout.warmup + layout.interval * u32::try_from(i).unwrap_or(u32::MAX);
        for ((cell, tag), class) in rec.interval(i).iter().zip(&tags).zip(&layout.classes) {
            if let Some(h) = cell.latency() {
                writer
                    .write_histogram(h.as_ref(), start, layout.interval, Tag::new(tag))
                    .map_err(|e| HlogError::Encode(format!("{e:?}")))?;
            }
            for (kind, h) in cell.time_to_error() {
                let tag = error_tag(class, kind);
                writer
                    .write_histogram(h.as_ref(), start, layout.interval, Tag::new(&tag))
                    .map_err(|e| HlogError::Encode(format!("{e:?}")))?;
            }
        }
    }
    Ok(())
}
