//! The probe's reports, judged and written off its loop: rendering a window's report takes
//! a while (charts), and a loop blocked on it would send late and charge the endpoint for the
//! probe's own stall (latency is measured from the intended send time). One thread takes the
//! jobs in order; a refresh asked for while one is still being written is skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use super::ProbeError;
use super::output::ProbeDir;
use super::window::Judge;
use crate::metrics::{Sample, Summary};
use crate::report::fmt;

enum WriteJob {
    /// The current window's report, in the folder itself.
    Current {
        samples: Vec<Arc<Sample>>,
        start: Duration,
        end: Duration,
        interrupted: bool,
    },
    /// A closed window's summary, into `windows/`.
    Rotate {
        samples: Vec<Arc<Sample>>,
        start: Duration,
        end: Duration,
    },
}

pub struct ReportWriter {
    jobs: mpsc::Sender<WriteJob>,
    /// A current-window report is queued or being written.
    busy: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<ProbeError>>>,
    task: tokio::task::JoinHandle<Option<Summary>>,
}

impl ReportWriter {
    pub fn start(judge: Judge, dir: ProbeDir, started_at: SystemTime, quiet: bool) -> Self {
        let (jobs, rx) = mpsc::channel::<WriteJob>();
        let busy = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(Mutex::new(None));
        let (still_busy, failure) = (busy.clone(), failed.clone());
        let task = tokio::task::spawn_blocking(move || {
            let mut last = None;
            for job in rx {
                let done = match job {
                    WriteJob::Current {
                        samples,
                        start,
                        end,
                        interrupted,
                    } => {
                        let summary = judge.summarize(samples, start, end, interrupted);
                        let written = dir.current(&summary);
                        if written.is_ok() && !quiet {
                            eprintln!("{}", status_line(&summary, end - start));
                        }
                        last = Some(summary);
                        still_busy.store(false, Ordering::Release);
                        written
                    }
                    WriteJob::Rotate {
                        samples,
                        start,
                        end,
                    } => {
                        let summary = judge.summarize(samples, start, end, false);
                        dir.rotate(&summary, started_at + start).map(|_| ())
                    }
                };
                if let Err(e) = done {
                    let mut slot = match failure.lock() {
                        Ok(s) => s,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    slot.get_or_insert(e);
                    // The probe stops on the first failure; what follows would fail alike.
                    break;
                }
            }
            last
        });
        Self {
            jobs,
            busy,
            failed,
            task,
        }
    }

    /// Asks for the current window's report, unless one is still being written.
    pub fn current(&self, samples: Vec<Arc<Sample>>, start: Duration, end: Duration) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.jobs.send(WriteJob::Current {
            samples,
            start,
            end,
            interrupted: false,
        });
    }

    /// Keeps a closed window's summary; never skipped.
    pub fn rotate(&self, samples: Vec<Arc<Sample>>, start: Duration, end: Duration) {
        let _ = self.jobs.send(WriteJob::Rotate {
            samples,
            start,
            end,
        });
    }

    /// The first write that failed, if one did.
    pub fn failure(&self) -> Option<ProbeError> {
        match self.failed.lock() {
            Ok(mut s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Writes the last report (of a probe that was `interrupted` or not) after everything
    /// queued, and returns its summary.
    pub async fn finish(
        self,
        samples: Vec<Arc<Sample>>,
        start: Duration,
        end: Duration,
        interrupted: bool,
    ) -> Result<Summary, ProbeError> {
        let _ = self.jobs.send(WriteJob::Current {
            samples,
            start,
            end,
            interrupted,
        });
        drop(self.jobs);
        let last = self.task.await.ok().flatten();
        let failed = match self.failed.lock() {
            Ok(mut s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match (failed, last) {
            (Some(e), _) => Err(e),
            (None, Some(summary)) => Ok(summary),
            // The thread died without a word: only a panic does that.
            (None, None) => Err(ProbeError::WriterGone),
        }
    }
}

pub(super) fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The window's state in one line: requests, availability, p99 and the SLA verdict, in the
/// terminal summary's formats.
fn status_line(s: &Summary, window: Duration) -> String {
    let o = &s.overall;
    let availability = if o.requests > 0 {
        fmt::pct(o.availability)
    } else {
        "n/a".to_string()
    };
    let p99 = if o.latency_ms.samples > 0 {
        fmt::ms(o.latency_ms.p99)
    } else {
        "n/a".to_string()
    };
    // Whole seconds: the window's end is wherever the refresh fell.
    let window = if window >= Duration::from_secs(1) {
        Duration::from_secs(window.as_secs_f64().round() as u64)
    } else {
        round_ms(window)
    };
    format!(
        "probe: last {}: {} requests, availability {availability}, p99 {p99}, SLA {}",
        humantime::format_duration(window),
        o.requests,
        fmt::status(s.sla.verdict).to_uppercase()
    )
}
