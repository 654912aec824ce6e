//! Watching the raft core: openraft 0.9 stops its core task on a fatal error (a log append,
//! flush or vote write that failed: EIO, disk full) or when the task panics, and from then on
//! every raft call fails while the rest of the process — the boot plane above all — would keep
//! answering from a frozen state machine. [`core_stopped`] is the signal the daemon waits on to
//! fail stop instead (`daemon::serve_with`).
//!
//! The signal, read from the vendored openraft: `RaftMetrics::running_state` turns `Err(Fatal)`
//! when `RaftCore::main` returns on an error (the cause is in it), and the metrics sender is
//! owned by the core task alone, so the watch channel closes when that task ends any other
//! way (a panic unwinds it before it can report). `Raft::wait` is a wrapper over the same
//! channel with a timeout; joining the core task would consume it (`Raft::shutdown` needs it).
//!
//! Invariant: [`core_stopped`] returns only once the core has stopped, never while it runs.

use std::time::Duration;

use openraft::error::Fatal;
use openraft::Raft;
use raftstore::TypeConfig;

/// Longest [`core_stopped`] waits for openraft to name the cause after the core task ended
/// without reporting one (it joins the finished task, which is immediate).
pub const CORE_STOP_CAUSE_TIMEOUT_MS: u64 = 1_000;

/// Waits until the raft core of `raft` stops, for whatever reason, and returns the cause as
/// a sentence for the log.
pub async fn core_stopped(raft: &Raft<TypeConfig>) -> String {
    let mut metrics = raft.metrics();
    loop {
        let reported = metrics.borrow_and_update().running_state.clone();
        if let Err(fatal) = reported {
            return describe(&fatal);
        }
        if metrics.changed().await.is_err() {
            break;
        }
    }
    // The core task ended without reporting: openraft names the cause when a call finds the
    // core gone (`Fatal::Panicked` for a panic).
    let wait = Duration::from_millis(CORE_STOP_CAUSE_TIMEOUT_MS);
    match tokio::time::timeout(wait, raft.is_initialized()).await {
        Ok(Err(fatal)) => describe(&fatal),
        _ => "the raft core task ended without reporting a cause".to_owned(),
    }
}

/// The cause of a stop as a sentence.
fn describe(fatal: &Fatal<u64>) -> String {
    match fatal {
        Fatal::Panicked => {
            "the raft core panicked (the panic message is logged just before this)".to_owned()
        }
        Fatal::Stopped => "the raft core stopped without being asked to".to_owned(),
        Fatal::StorageError(error) => format!("raft storage failed: {error}"),
    }
}
