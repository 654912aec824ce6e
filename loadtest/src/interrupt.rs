//! How a run ends: the Ctrl-C flag every workload polls, and the process exit code of a
//! finished run.
//!
//! Invariants: the flag only ever goes from unset to set; the exit code is the same function
//! of the outcome for every workload (interrupted beats a failed baseline, which beats failed
//! operations). Bottom layer: imports nothing of this crate.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit code when the run completed but some operations failed.
pub const EXIT_FAILURES: u8 = 1;
/// Exit code when the run could not be made (bad arguments, cluster not started, …).
pub const EXIT_ERROR: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit code of a finished run, the same for every workload: interrupted beats a failed
/// baseline, which beats failed operations.
pub fn run_exit_code(interrupted: bool, baseline_failed: bool, operations_failed: u64) -> ExitCode {
    if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if baseline_failed {
        ExitCode::from(EXIT_ERROR)
    } else if operations_failed > 0 {
        ExitCode::from(EXIT_FAILURES)
    } else {
        ExitCode::SUCCESS
    }
}

/// Set by Ctrl-C (or SIGTERM): workloads stop claiming work, report what they measured and
/// the spawned cluster is stopped.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Resolves once the flag is set (polled: the flag has no waker and 50 ms is well within
    /// what a person pressing Ctrl-C notices).
    pub async fn wait(&self) {
        while !self.is_set() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
