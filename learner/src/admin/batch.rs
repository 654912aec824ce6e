//! Group commit at the Raft level: admin writes that arrive while earlier proposals are in
//! flight travel together as one raft entry (`raft::Proposal`).
//!
//! Why: openraft 0.9 appends and fsyncs each `client_write` on the leader before replicating
//! it, so one command per entry caps throughput at one leader fsync plus one follower round
//! trip per commit, whatever the log store batches underneath. One entry of N commands costs
//! one append, one fsync per replica, one replication round trip and one apply pass.
//!
//! How: one task owns a bounded queue of pending writes. It waits for a free in-flight slot
//! (`PROPOSALS_IN_FLIGHT_MAX`), then for the first pending write, then takes whatever else
//! is already queued — up to `PROPOSAL_COMMANDS_MAX` commands and
//! `PROPOSAL_COMMANDS_SIZE_MAX_BYTES` of encoded commands — and proposes them. A lone client
//! never waits for company: its write goes out as soon as a slot is free. Under load the
//! batches grow by themselves, because writes queue while the slots are busy.
//!
//! Invariants:
//! - every queued write gets exactly one answer: its own command's result, or the error of
//!   the proposal that carried it (not leader, raft stopped), or "stopped" if the batcher
//!   shuts down before proposing it;
//! - a proposal holds at least one command, at most `PROPOSAL_COMMANDS_MAX`, and its commands
//!   encode to at most `max(one command, PROPOSAL_COMMANDS_SIZE_MAX_BYTES)` bytes, so the raft
//!   entry stays under `proto::limits::RAFT_ENTRY_SIZE_MAX_BYTES`;
//! - commands keep their arrival order inside and across proposals (one queue, one taker;
//!   proposals in flight together are appended in the order they were handed to openraft).

use std::sync::Arc;

use config::JournalCommand;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::limits::{
    PROPOSALS_IN_FLIGHT_MAX, PROPOSAL_COMMANDS_MAX, PROPOSAL_COMMANDS_SIZE_MAX_BYTES,
    PROPOSAL_QUEUE_CAPACITY,
};
use raftstore::{CommandResult, Proposal, ReplicaNode, TypeConfig};

/// Why a write got no result of its own.
#[derive(Clone, Debug)]
pub enum WriteFailure {
    /// The proposal carrying it failed in openraft (not the leader, raft stopped, ...).
    Raft(RaftError<u64, ClientWriteError<u64, ReplicaNode>>),
    /// The batcher stopped (replica shutting down) before the write was proposed.
    Stopped,
    /// The command could not be encoded to measure it (a bug: commands are plain data).
    Unencodable(String),
}

/// What the server gets back for one write.
pub type WriteOutcome = Result<(CommandResult, u64), WriteFailure>;

/// One write waiting for a proposal: the command, its encoded size, and where to answer
/// (the result and the raft log index of the entry that carried it).
struct Pending {
    command: JournalCommand,
    size_bytes: usize,
    reply: oneshot::Sender<WriteOutcome>,
}

/// The handle the admin server writes through. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the batching task for `raft`; it stops when `shutdown` is cancelled, answering
    /// every write still queued with `WriteFailure::Stopped`.
    pub fn start(raft: openraft::Raft<TypeConfig>, shutdown: CancellationToken) -> Batcher {
        let (queue, pending) = mpsc::channel(PROPOSAL_QUEUE_CAPACITY);
        tokio::spawn(run(raft, pending, shutdown));
        Batcher { queue }
    }

    /// Proposes `command` (with whatever else is queued) and waits for its result. The caller
    /// bounds the wait; dropping the future abandons the answer, not the command (it may still
    /// be committed: the outcome is then unknown, as for any timed-out write).
    pub async fn write(&self, command: JournalCommand) -> WriteOutcome {
        let size_bytes = postcard::experimental::serialized_size(&command)
            .map_err(|error| WriteFailure::Unencodable(error.to_string()))?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command,
            size_bytes,
            reply,
        };
        if self.queue.send(pending).await.is_err() {
            return Err(WriteFailure::Stopped);
        }
        answer.await.unwrap_or(Err(WriteFailure::Stopped))
    }
}

async fn run(
    raft: openraft::Raft<TypeConfig>,
    mut queue: mpsc::Receiver<Pending>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT_MAX));
    // A write taken from the queue that did not fit the previous proposal: first of the next.
    let mut carried: Option<Pending> = None;
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let first = match carried.take() {
            Some(pending) => pending,
            None => tokio::select! {
                _ = shutdown.cancelled() => break,
                pending = queue.recv() => match pending {
                    Some(pending) => pending,
                    None => break,
                },
            },
        };
        let (batch, rest) = take_batch(first, &mut queue);
        carried = rest;
        tokio::spawn(propose(raft.clone(), batch, slot));
    }
    // Shutting down: answer everything still queued so no caller waits for its timeout.
    queue.close();
    let stopped = carried
        .into_iter()
        .chain(std::iter::from_fn(|| queue.try_recv().ok()));
    for pending in stopped {
        let _ = pending.reply.send(Err(WriteFailure::Stopped));
    }
}

/// `first` plus the writes already queued, within the proposal limits. Returns the batch and
/// the write that would have overflowed it, if one was taken.
fn take_batch(
    first: Pending,
    queue: &mut mpsc::Receiver<Pending>,
) -> (Vec<Pending>, Option<Pending>) {
    let mut size_bytes = first.size_bytes;
    let mut batch = vec![first];
    while batch.len() < PROPOSAL_COMMANDS_MAX {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        if size_bytes + next.size_bytes > PROPOSAL_COMMANDS_SIZE_MAX_BYTES {
            return (batch, Some(next));
        }
        size_bytes += next.size_bytes;
        batch.push(next);
    }
    (batch, None)
}

/// Proposes one batch and answers each of its writes; frees its in-flight slot when done.
async fn propose(
    raft: openraft::Raft<TypeConfig>,
    batch: Vec<Pending>,
    slot: OwnedSemaphorePermit,
) {
    let (commands, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|pending| (pending.command, pending.reply))
        .unzip();
    let count = commands.len();
    metrics::counter!("bootstorm_admin_proposals_total").increment(1);
    metrics::counter!("bootstorm_admin_proposal_commands_total").increment(count as u64);
    let outcome = raft.client_write(Proposal { commands }).await;
    drop(slot);
    match outcome {
        Ok(response) => {
            let index = response.log_id.index;
            let results = response.data.results;
            assert_eq!(
                results.len(),
                count,
                "a proposal answers one result per command"
            );
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok((result, index)));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(WriteFailure::Raft(error.clone())));
            }
        }
    }
}
