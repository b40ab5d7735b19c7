//! `requests.csv` (`--raw`): one row per request, mapped from the engine's samples and
//! streamed to disk while the run goes; renamed into place only when finished, so memory stays
//! flat and no half file is left.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::atomic::AtomicFile;
use super::error::RunDirError;
use crate::metrics::{Sample, ServedBy, TokenSource};

/// One request as the raw log records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRow<'a> {
    /// Intended send time on the run's clock, seconds.
    pub intended_s: f64,
    pub class: &'a str,
    /// HTTP status, when a response arrived and the sample carries it.
    pub status: Option<u16>,
    /// `ok` or the error kind (`status_5xx`, `timeout`, ...).
    pub outcome: &'a str,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub served_by: Option<&'a str>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// First output token (content or tool call, after any reasoning).
    pub ttfot_ms: Option<f64>,
    /// Time per output token after the first.
    pub tpot_ms: Option<f64>,
    /// 1-based turn of a conversation.
    pub turn: Option<u16>,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// `usage` or `tokenizer`.
    pub prompt_tokens_from: TokenSource,
}

/// New columns go last, so readers that index the first nine keep working.
pub const REQUESTS_HEADER: [&str; 15] = [
    "intended_s",
    "class",
    "status",
    "outcome",
    "latency_ms",
    "ttft_ms",
    "served_by",
    "prompt_tokens",
    "completion_tokens",
    "ttfot_ms",
    "tpot_ms",
    "turn",
    "cached_tokens",
    "reasoning_tokens",
    "prompt_tokens_from",
];

/// The names a sample's indices point at: request classes and upstreams, in the scenario's
/// order (the recorder's layout).
#[derive(Debug, Clone, Default)]
pub struct RowNames {
    pub classes: Vec<String>,
    pub upstreams: Vec<String>,
}

impl<'a> RequestRow<'a> {
    /// The row for one measured request; an index no name is known for reads `?`.
    pub fn from_sample(s: &'a Sample, names: &'a RowNames) -> Self {
        let served_by = match &s.served_by {
            Some(ServedBy::Known(i)) => names.upstreams.get(usize::from(*i)).map(String::as_str),
            Some(ServedBy::Other(name)) => Some(&**name),
            None => None,
        };
        RequestRow {
            intended_s: s.intended.as_secs_f64(),
            class: names.classes.get(s.class).map_or("?", String::as_str),
            // Samples do not keep the status: the outcome names its class of failure.
            status: None,
            outcome: match s.result {
                Ok(()) => "ok",
                Err(kind) => kind.as_str(),
            },
            latency_ms: s.latency.as_secs_f64() * 1e3,
            ttft_ms: s.ttft.map(|t| t.as_secs_f64() * 1e3),
            served_by,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            ttfot_ms: s.ttfot.map(|t| t.as_secs_f64() * 1e3),
            tpot_ms: s.tpot.map(|t| t.as_secs_f64() * 1e3),
            turn: s.turn,
            cached_tokens: s.cached_tokens,
            reasoning_tokens: s.reasoning_tokens,
            prompt_tokens_from: s.prompt_tokens_from,
        }
    }
}

/// Streams rows to `requests.csv`; call `finish` to put the file in place.
#[derive(Debug)]
pub struct RequestWriter {
    csv: csv::Writer<AtomicFile>,
    path: PathBuf,
    rows: u64,
}

impl RequestWriter {
    pub(super) fn create(path: &Path) -> Result<Self, RunDirError> {
        let file = AtomicFile::create(path)?;
        let mut csv = csv::Writer::from_writer(file);
        csv.write_record(REQUESTS_HEADER)
            .map_err(|e| csv_error(path, e))?;
        Ok(Self {
            csv,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    pub fn write(&mut self, r: &RequestRow<'_>) -> Result<(), RunDirError> {
        let status = r.status.map(|s| s.to_string()).unwrap_or_default();
        let ms = |v: Option<f64>| v.map(|t| format!("{t:.3}")).unwrap_or_default();
        let record = [
            format!("{:.6}", r.intended_s),
            r.class.to_string(),
            status,
            r.outcome.to_string(),
            format!("{:.3}", r.latency_ms),
            ms(r.ttft_ms),
            r.served_by.unwrap_or("").to_string(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            ms(r.ttfot_ms),
            ms(r.tpot_ms),
            r.turn.map(|t| t.to_string()).unwrap_or_default(),
            r.cached_tokens.to_string(),
            r.reasoning_tokens.to_string(),
            r.prompt_tokens_from.as_str().to_string(),
        ];
        self.csv
            .write_record(&record)
            .map_err(|e| csv_error(&self.path, e))?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and renames the file into place; returns its path.
    pub fn finish(self) -> Result<PathBuf, RunDirError> {
        let path = self.path;
        let file = self
            .csv
            .into_inner()
            .map_err(|e| RunDirError::io(&path, std::io::Error::other(e.error().to_string())))?;
        file.commit()
    }
}

fn csv_error(path: &Path, e: csv::Error) -> RunDirError {
    match e.into_kind() {
        csv::ErrorKind::Io(source) => RunDirError::io(path, source),
        other => RunDirError::Encode {
            path: path.to_path_buf(),
            what: "a request row",
            message: format!("{other:?}"),
        },
    }
}

/// The raw log of a running run: the engine's sample sink records into it from any thread.
/// The first failed write stops the log (the run goes on) and is reported by `finish`.
#[derive(Debug, Clone)]
pub struct RequestLog {
    state: Arc<Mutex<LogState>>,
    names: Arc<RowNames>,
    path: PathBuf,
}

#[derive(Debug)]
struct LogState {
    writer: Option<RequestWriter>,
    failed: Option<RunDirError>,
}

/// How the raw log ended.
#[derive(Debug)]
pub enum RequestLogEnd {
    /// Complete and in place.
    Written { path: PathBuf, rows: u64 },
    /// A write failed during the run; the partial file was removed.
    Abandoned(RunDirError),
}

impl RequestLog {
    pub(super) fn new(writer: RequestWriter, names: RowNames) -> Self {
        Self {
            path: writer.path.clone(),
            state: Arc::new(Mutex::new(LogState {
                writer: Some(writer),
                failed: None,
            })),
            names: Arc::new(names),
        }
    }

    /// Appends the sample's row.
    pub fn record(&self, sample: &Sample) {
        // A panic elsewhere while holding the lock leaves the writer usable: keep the log.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(writer) = state.writer.as_mut() else {
            return;
        };
        if let Err(e) = writer.write(&RequestRow::from_sample(sample, &self.names)) {
            state.writer = None;
            state.failed = Some(e);
        }
    }

    /// Puts the file in place; later `record`s are ignored.
    pub fn finish(&self) -> Result<RequestLogEnd, RunDirError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = state.failed.take() {
            return Ok(RequestLogEnd::Abandoned(e));
        }
        match state.writer.take() {
            Some(w) => {
                let rows = w.rows();
                Ok(RequestLogEnd::Written {
                    path: w.finish()?,
                    rows,
                })
            }
            None => Err(RunDirError::WrittenTwice {
                path: self.path.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::ErrorKind;

    fn names() -> RowNames {
        RowNames {
            classes: vec!["chat".into(), "batch".into()],
            upstreams: vec!["deepseek".into(), "qwen".into()],
        }
    }

    #[test]
    fn a_sample_becomes_its_row_by_name() {
        let names = names();
        let mut s = Sample::new(1, Duration::from_millis(2_500), Duration::ZERO);
        s.latency = Duration::from_micros(180_250);
        s.ttft = Some(Duration::from_millis(40));
        s.served_by = Some(ServedBy::Known(1));
        s.prompt_tokens = 12;
        s.completion_tokens = 64;
        s.ttfot = Some(Duration::from_millis(90));
        s.tpot = Some(Duration::from_micros(12_500));
        s.turn = Some(3);
        s.cached_tokens = 8;
        s.reasoning_tokens = 20;
        s.prompt_tokens_from = TokenSource::Usage;
        let row = RequestRow::from_sample(&s, &names);
        assert_eq!(row.ttfot_ms, Some(90.0));
        assert_eq!(row.tpot_ms, Some(12.5));
        assert_eq!(row.turn, Some(3));
        assert_eq!((row.cached_tokens, row.reasoning_tokens), (8, 20));
        assert_eq!(row.prompt_tokens_from, TokenSource::Usage);
        assert_eq!(row.class, "batch");
        assert_eq!(row.served_by, Some("qwen"));
        assert_eq!(row.outcome, "ok");
        assert!((row.intended_s - 2.5).abs() < 1e-9);
        assert!((row.latency_ms - 180.25).abs() < 1e-9);
        assert_eq!(row.ttft_ms, Some(40.0));
        assert_eq!((row.prompt_tokens, row.completion_tokens), (12, 64));

        // A failure, from an upstream nobody announced, of a class the names do not know.
        let mut s = Sample::new(7, Duration::ZERO, Duration::ZERO);
        s.result = Err(ErrorKind::Status5xx);
        s.served_by = Some(ServedBy::Other("mystery".into()));
        let row = RequestRow::from_sample(&s, &names);
        assert_eq!((row.class, row.outcome), ("?", "status_5xx"));
        assert_eq!(row.served_by, Some("mystery"));
        s.served_by = Some(ServedBy::Known(9));
        assert_eq!(RequestRow::from_sample(&s, &names).served_by, None);
    }

    #[test]
    fn the_log_puts_every_recorded_sample_in_place_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.csv");
        let log = RequestLog::new(RequestWriter::create(&path).unwrap(), names());
        let writer = log.clone();
        std::thread::spawn(move || {
            for i in 0..100 {
                let mut s = Sample::new(i % 2, Duration::from_millis(i as u64), Duration::ZERO);
                if i == 0 {
                    s.ttfot = Some(Duration::from_millis(250));
                    s.tpot = Some(Duration::from_millis(20));
                    s.turn = Some(2);
                    s.cached_tokens = 1024;
                    s.reasoning_tokens = 300;
                    s.prompt_tokens_from = TokenSource::Usage;
                }
                writer.record(&s);
            }
        })
        .join()
        .unwrap();
        assert!(!path.exists(), "in place only when finished");
        match log.finish().unwrap() {
            RequestLogEnd::Written { path: p, rows } => assert_eq!((p, rows), (path.clone(), 100)),
            RequestLogEnd::Abandoned(e) => panic!("{e}"),
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 101);
        assert!(text.starts_with("intended_s,class,"));
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            REQUESTS_HEADER.join(","),
            "the header names every column"
        );
        // The new columns, filled and empty.
        let first = lines.next().unwrap();
        assert!(
            first.ends_with(",250.000,20.000,2,1024,300,usage"),
            "{first}"
        );
        let second = lines.next().unwrap();
        assert!(second.ends_with(",,,,0,0,tokenizer"), "{second}");
        // Finishing twice is a mistake that says which file.
        let again = log.finish().unwrap_err();
        assert!(again.to_string().contains("requests.csv"), "{again}");
    }
}
