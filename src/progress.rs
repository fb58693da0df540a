//! Progress lines for long steps, in the style kind prints: ` • step ...` then ` ✓ step (1.2s)`.

use std::io::Write;
use std::time::Instant;

/// Prints steps to stderr unless quiet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub quiet: bool,
}

/// One step under way; finish it with [`Step::done`] (or drop it on failure).
pub struct Step {
    progress: Progress,
    what: String,
    started: Instant,
    finished: bool,
}

impl Progress {
    pub fn step(&self, what: impl Into<String>) -> Step {
        let what = what.into();
        if !self.quiet {
            eprintln!(" • {what} ...");
        }
        Step {
            progress: *self,
            what,
            started: Instant::now(),
            finished: false,
        }
    }

    /// A detail line under the current step.
    pub fn detail(&self, line: &str) {
        if !self.quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "   {line}");
        }
    }

    pub fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

impl Step {
    pub fn done(mut self) {
        self.finished = true;
        if !self.progress.quiet {
            eprintln!(
                " ✓ {} ({:.1}s)",
                self.what,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.finished && !self.progress.quiet && !std::thread::panicking() {
            eprintln!(" ✗ {}", self.what);
        }
    }
}
