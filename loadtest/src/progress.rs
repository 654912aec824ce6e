//! Progress on stderr while a workload runs: an indicatif bar (done/total, rate, failures) when
//! stderr is a terminal; with `--progress` and no terminal (CI logs, `2> file`), the same bar
//! drawn as one plain line per second. Otherwise nothing, so scripted runs stay quiet.
//!
//! Must never: write to stdout (the report goes there) or slow the workload (the bar is
//! updated from shared counters by a ticker, not by every commit).

use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use crate::limits::PLAIN_LINES_PER_S;

/// A progress display; `None` inside when hidden.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// When the display was made: the rate shown is done / elapsed since then.
    started: Instant,
}

impl Progress {
    /// A bar for `total` operations of `unit` (e.g. "commits"), shown if stderr is a terminal
    /// or `forced`.
    pub fn new(total: u64, unit: &str, forced: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else if forced {
            ProgressDrawTarget::term_like_with_hz(
                Box::new(PlainLines::default()),
                PLAIN_LINES_PER_S,
            )
        } else {
            return Progress::hidden();
        };
        let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}");
        let style = ProgressStyle::with_template(&template)
            .expect("the progress template is valid")
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(style)
            .with_message("0/s, 0 failed");
        Progress {
            bar: Some(bar),
            started: Instant::now(),
        }
    }

    /// A display that shows nothing (tests, `--json` runs in scripts).
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            started: Instant::now(),
        }
    }

    /// Sets the done and failed counts.
    pub fn update(&self, done: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            let elapsed_s = self.started.elapsed().as_secs_f64();
            let rate = if elapsed_s > 0.0 {
                done as f64 / elapsed_s
            } else {
                0.0
            };
            bar.set_position(done);
            bar.set_message(format!("{rate:.0}/s, {failed} failed"));
        }
    }

    /// Leaves the final state on screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A "terminal" that prints each drawn bar as its own line: cursor movements and line
/// clearing are dropped, so a log file gets one readable line per redraw (a redraw of the
/// same text, which indicatif does on finish, is not repeated).
#[derive(Debug, Default)]
struct PlainLines {
    last: Mutex<String>,
}

impl PlainLines {
    fn line(&self, s: &str) -> std::io::Result<()> {
        let mut last = self.last.lock().expect("the last-line lock");
        if s.trim().is_empty() || *last == s {
            return Ok(());
        }
        *last = s.to_owned();
        writeln!(std::io::stderr(), "{s}")
    }
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        120
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.line(s)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.line(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
