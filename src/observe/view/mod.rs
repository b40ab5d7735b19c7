//! The live full-screen view of `gauntlet run` on a terminal. It reads the same `LiveMetrics`
//! the exporter serves (through the run's `Board`), a few times a second, on a thread of its
//! own: the load never waits on the terminal. `q` or Ctrl-C asks the run to stop; the
//! terminal is given back when the view ends, on an error, and on a panic (ratatui's hook).

mod draw;
mod model;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::server::Board;
use model::Model;

/// How often the screen is redrawn (and keys looked at).
const REDRAW: Duration = Duration::from_millis(250);

/// The running view; `finish` (or dropping it) gives the terminal back.
pub struct LiveView {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveView")
    }
}

impl LiveView {
    /// Takes the terminal over (alternate screen, raw mode) and draws whatever run `board`
    /// publishes; `stop` is called once when the user presses `q` or Ctrl-C.
    pub fn start(board: Board, stop: impl Fn() + Send + 'static) -> io::Result<Self> {
        let terminal = ratatui::try_init()?;
        let done = Arc::new(AtomicBool::new(false));
        let ended = done.clone();
        let thread = std::thread::Builder::new()
            .name("gauntlet-view".into())
            .spawn(move || show(terminal, &board, &ended, stop));
        match thread {
            Ok(thread) => Ok(Self {
                done,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = ratatui::try_restore();
                Err(e)
            }
        }
    }

    /// Stops drawing and restores the terminal; says why drawing failed, if it did.
    pub fn finish(mut self) -> io::Result<()> {
        self.end()
    }

    fn end(&mut self) -> io::Result<()> {
        self.done.store(true, Ordering::Relaxed);
        let drawn = match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the live view panicked"))),
            None => Ok(()),
        };
        let restored = ratatui::try_restore();
        drawn.and(restored)
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        // An error path that never called `finish` still gets its terminal back.
        if self.thread.is_some() {
            let _ = self.end();
        }
    }
}

/// Whether a key asks the run to stop: `q`, or Ctrl-C (raw mode delivers it as a key, not
/// as SIGINT).
fn is_stop(code: KeyCode, modifiers: KeyModifiers) -> bool {
    matches!(code, KeyCode::Char('q' | 'Q'))
        || (code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL))
}

fn show(
    mut terminal: DefaultTerminal,
    board: &Board,
    done: &AtomicBool,
    stop: impl Fn(),
) -> io::Result<()> {
    let mut model = Model::default();
    while !done.load(Ordering::Relaxed) {
        if let Some(run) = board.current() {
            model.update(run.reading(), Instant::now());
        }
        terminal.draw(|f| draw::frame(f, &model))?;
        let until = Instant::now() + REDRAW;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if !event::poll(left)? {
                break;
            }
            if let Event::Key(k) = event::read()?
                && k.kind == KeyEventKind::Press
                && is_stop(k.code, k.modifiers)
                && !model.stopping
            {
                model.stopping = true;
                stop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_and_ctrl_c_stop_other_keys_do_not() {
        assert!(is_stop(KeyCode::Char('q'), KeyModifiers::NONE));
        assert!(is_stop(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(!is_stop(KeyCode::Char('c'), KeyModifiers::NONE));
        assert!(!is_stop(KeyCode::Enter, KeyModifiers::NONE));
    }
}
