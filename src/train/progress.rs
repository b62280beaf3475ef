//! Progress of long loops: an indicatif bar in a terminal; elsewhere (a notebook, a log file),
//! where `\r` redraws do not show, a plain line every few seconds.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Lines are at least this far apart when there is no terminal.
const LINE_EVERY: Duration = Duration::from_secs(15);

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: usize,
    done: usize,
    started: Instant,
    last_line: Instant,
    verbose: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: usize, verbose: bool) -> Self {
        let label = label.into();
        let bar = (verbose && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .expect("a valid template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar
        });
        let now = Instant::now();
        Self { bar, label, total, done: 0, started: now, last_line: now, verbose }
    }

    /// `n` more steps done; `message` (e.g. the running loss) is only built when shown.
    pub fn inc(&mut self, n: usize, message: impl FnOnce() -> String) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.set_message(message());
            bar.inc(n as u64);
        } else if self.verbose && self.last_line.elapsed() >= LINE_EVERY && self.done < self.total {
            self.last_line = Instant::now();
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            println!("  {}: {}/{} {} ({rate:.1}/s)", self.label, self.done, self.total, message());
        }
    }

    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
