//! Progress while a run goes on: an indicatif bar on a terminal, one plain line every few
//! seconds on stderr otherwise (CI logs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use super::runner::Live;

const TERMINAL_TICK: Duration = Duration::from_millis(250);
const PLAIN_TICK: Duration = Duration::from_secs(5);

/// The running display; `finish` clears it.
pub struct Progress {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

/// One line of numbers, the same on the bar and in the plain log.
fn line(live: &Live, rate: f64) -> String {
    format!(
        "{rate:>7.0} req/s  p99 {:>8.1} ms  errors {}  dropped {}",
        live.p99_us.load(Ordering::Relaxed) as f64 / 1000.0,
        live.errors.load(Ordering::Relaxed),
        live.dropped.load(Ordering::Relaxed),
    )
}

impl Progress {
    /// Starts showing progress of a run planned to last `total`; `quiet` shows nothing.
    pub fn start(live: Arc<Live>, total: Duration, quiet: bool) -> Self {
        let terminal = !quiet && std::io::stderr().is_terminal();
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total.as_millis().try_into().unwrap_or(u64::MAX));
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ms  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            if quiet {
                return;
            }
            let start = Instant::now();
            let tick = if shown.is_some() {
                TERMINAL_TICK
            } else {
                PLAIN_TICK
            };
            let mut last = (start, 0u64);
            let mut ticker = tokio::time::interval(tick);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let now = Instant::now();
                let done =
                    live.completed.load(Ordering::Relaxed) + live.dropped.load(Ordering::Relaxed);
                let dt = now.duration_since(last.0).as_secs_f64();
                let rate = if dt > 0.0 {
                    (done - last.1) as f64 / dt
                } else {
                    0.0
                };
                last = (now, done);
                let elapsed = now.duration_since(start).min(total);
                match &shown {
                    Some(bar) => {
                        bar.set_position(elapsed.as_millis().try_into().unwrap_or(u64::MAX));
                        bar.set_message(line(&live, rate));
                    }
                    None => eprintln!(
                        "[{:>6.1}s / {:.0}s] {}",
                        elapsed.as_secs_f64(),
                        total.as_secs_f64(),
                        line(&live, rate)
                    ),
                }
            }
        });
        Self { task, bar }
    }

    pub fn finish(self) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
