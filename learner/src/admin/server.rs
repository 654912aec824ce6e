//! The admin plane server: the shared admission shell (`crate::admission`: a Retry for every
//! unvalidated address, a per-source cap, a connection permit, a handshake budget, a
//! streamless bound; numbers in [`admission_limits`]), one task per connection, one request
//! per bidirectional stream (`rpc::read_frame`/`write_frame` with
//! timeouts), and the handlers that turn admin requests into journal commands, membership
//! changes, status reports and log pages.
//!
//! Invariants:
//! - the author of a commit is the admin certificate's identity, never the request's claim:
//!   every author field of `Commit`, `Rollback` and `Propose` is overwritten with the verified
//!   client certificate's CN before the command reaches Raft;
//! - timestamps are the leader's clock reading, set here (the state machine has no clock);
//! - every request is authorized first, by the certificate's role (`authz::authorize`): a
//!   replica certificate may only add *itself* as a learner, read `Status` and ask for an
//!   overlay rebuild (`RebuildOverlay`: advisory, idempotent, coalesced by the leader's overlay
//!   task); a monitor certificate may only read `Status` and `Log`; a refusal answers
//!   `Unauthorized` naming the role, the CN and the operation;
//! - writes are never forwarded: a follower answers `NotLeader { leader }` with the leader's
//!   admin address from its raft metrics, and the client follows it;
//! - `Status`, `StatusV2` and `Log` read the local state machine (and, for its own row, the
//!   replica certificate's `notAfter`) only; they never enter Raft;
//! - `RebuildOverlay` never enters Raft either: the leader answers at once (`RebuildQueued`)
//!   and its overlay task proposes the `SetOverlay` (a follower answers `NotLeader`);
//! - every wait is bounded: handshakes, streamless time, request reads, response writes
//!   (`limits.rs`; no lifetime bound, see `ADMIN_CONNECTION_LIFETIME_MAX_MS`), Raft writes (`ADMIN_WRITE_TIMEOUT_MS`, answered as `Timeout`: outcome unknown).
//!
//! Membership changes in openraft 0.9 restart the leader's replication streams (every
//! `change_membership`, including `add_learner`, rebuilds the replication set). They are cheap
//! but not free: add a rack's learners one request after another, not in a tight loop, and
//! expect a brief replication pause on each change.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::{EntryType, JournalCommand, NewEntry, StateDelta};
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use proto::limits::{ADMIN_RESPONSE_SIZE_MAX_BYTES, LOG_ENTRIES_PER_RESPONSE_MAX};
use proto::{
    AdminRequest, AdminRequestKind, AdminResponse, ErrorCode, ReplicaRole, ReplicaStatus,
    StatusReport,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::batch::{Batcher, WriteFailure};
use super::limits::{
    ADMIN_CONNECTIONS_CONCURRENT_MAX, ADMIN_CONNECTIONS_PER_SOURCE_MAX,
    ADMIN_CONNECTION_LIFETIME_MAX_MS, ADMIN_CONNECTION_QUEUE_MAX,
    ADMIN_CONNECTION_STREAMLESS_MAX_MS, ADMIN_HANDSHAKE_TIMEOUT_MS, ADMIN_REQUEST_READ_TIMEOUT_MS,
    ADMIN_RESPONSE_WRITE_TIMEOUT_MS, ADMIN_SHUTDOWN_DRAIN_MS, ADMIN_WRITE_TIMEOUT_MS,
    LOG_RESPONSE_SLACK_BYTES, STATUS_RAFT_QUERY_TIMEOUT_MS,
};
use super::AdminContext;
use crate::admission::{self, Admission, AdmissionLimits, Admitted};
use net::rpc;
use net::{peer_identity, PeerIdentity};
use raftstore::ReplicaNode;

/// Application close code sent when the server refuses or ends a connection.
const CLOSE_REFUSED: u32 = 1;
/// Application close code sent on shutdown.
const CLOSE_SHUTDOWN: u32 = 0;

/// State shared by every connection task of one admin server.
struct Server {
    ctx: Arc<AdminContext>,
    /// Admin writes go through it: writes that arrive together share one raft entry.
    batcher: Batcher,
    /// The state digest of the last applied index a Status computed, so repeated status polls
    /// do not re-serialize the whole journal (it only changes when the applied index does).
    digest: Mutex<Option<(Option<u64>, String)>>,
}

/// Serves the admin plane on `endpoint` until `shutdown` is cancelled, with the admission of
/// [`admission_limits`], then closes the endpoint and waits (bounded) for it to drain.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Arc<AdminContext>, shutdown: CancellationToken) {
    serve_with(endpoint, ctx, shutdown, admission_limits()).await;
}

/// The admin plane's admission (`crate::admission`), from `limits.rs`: a Retry for every
/// unvalidated address, `ADMIN_CONNECTIONS_PER_SOURCE_MAX` per source IP, then one of
/// `ADMIN_CONNECTIONS_CONCURRENT_MAX` permits or a refusal at once (no queue); the handshake
/// within `ADMIN_HANDSHAKE_TIMEOUT_MS`; closed after `ADMIN_CONNECTION_STREAMLESS_MAX_MS`
/// without a stream; no lifetime bound (`ADMIN_CONNECTION_LIFETIME_MAX_MS` says why).
pub fn admission_limits() -> AdmissionLimits {
    AdmissionLimits {
        connections_max: ADMIN_CONNECTIONS_CONCURRENT_MAX,
        queue_max: ADMIN_CONNECTION_QUEUE_MAX,
        queue_wait_max_ms: 0,
        per_source_max: ADMIN_CONNECTIONS_PER_SOURCE_MAX,
        handshake_max_ms: ADMIN_HANDSHAKE_TIMEOUT_MS,
        streamless_max_ms: Some(ADMIN_CONNECTION_STREAMLESS_MAX_MS),
        lifetime_max_ms: ADMIN_CONNECTION_LIFETIME_MAX_MS,
        shutdown_drain_ms: ADMIN_SHUTDOWN_DRAIN_MS,
    }
}

/// [`serve`] with other admission numbers (tests and drills: a short streamless bound).
pub async fn serve_with(
    endpoint: quinn::Endpoint,
    ctx: Arc<AdminContext>,
    shutdown: CancellationToken,
    limits: AdmissionLimits,
) {
    let batcher = Batcher::start(ctx.raft.clone(), shutdown.child_token());
    let revocations = ctx.revocations.clone();
    let server = Arc::new(Server {
        ctx,
        batcher,
        digest: Mutex::new(None),
    });
    let admission = Admission::new_revocable(limits, revocations, |event| {
        // Counted nowhere yet (the admin plane has no admission metrics); traced only, at
        // debug so a flood does not flood the log.
        tracing::debug!(?event, "admin plane admission");
    });
    // Connection tasks stop on the caller's shutdown: a child token, so nothing here ever
    // cancels the caller's.
    let stop = shutdown.child_token();
    let handler = move |admitted: Admitted| server.clone().connection(admitted, stop.clone());
    admission::serve(endpoint, admission, shutdown, handler).await;
}

impl Server {
    /// Serves one admitted, authenticated connection: every bidirectional stream is one
    /// request; closed by the admission shell when no stream has been open for its streamless
    /// bound.
    async fn connection(self: Arc<Self>, admitted: Admitted, shutdown: CancellationToken) {
        let conn = admitted.conn.clone();
        let identity = match peer_identity(&conn) {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                conn.close(
                    CLOSE_REFUSED.into(),
                    b"the admin plane needs a client certificate",
                );
                return;
            }
            Err(error) => {
                let reason = error.to_string();
                conn.close(CLOSE_REFUSED.into(), reason.as_bytes());
                return;
            }
        };
        tracing::debug!(peer = %identity, remote = %conn.remote_address(), "admin connection");
        let identity = Arc::new(identity);
        // Streams per connection are bounded by the transport (max concurrent bidi streams).
        let mut streams = JoinSet::new();
        loop {
            // Reap ended stream tasks: "no stream open" is what the streamless bound measures.
            while streams.try_join_next().is_some() {}
            let idle = streams.is_empty();
            let (send, recv) = tokio::select! {
                _ = shutdown.cancelled() => break,
                // A stream ending may make the connection idle: look again.
                Some(_) = streams.join_next(), if !streams.is_empty() => continue,
                stream = admitted.accept_bi(idle) => match stream {
                    Some(stream) => stream,
                    None => break, // closed by the client, streamless, or lost
                },
            };
            let server = self.clone();
            let identity = identity.clone();
            streams.spawn(async move { server.stream(&identity, send, recv).await });
        }
        streams.abort_all();
        while streams.join_next().await.is_some() {}
        conn.close(CLOSE_SHUTDOWN.into(), b"");
    }

    /// One request, one answer.
    async fn stream(
        &self,
        identity: &PeerIdentity,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) {
        let read_timeout = Duration::from_millis(ADMIN_REQUEST_READ_TIMEOUT_MS);
        let response = match rpc::read_frame::<AdminRequestKind>(&mut recv, read_timeout).await {
            Ok(frame) => match AdminRequest::from_frame(&frame) {
                Ok(request) => self.handle(identity, request).await,
                Err(error) => AdminResponse::error(error.code(), error.to_string()),
            },
            Err(error) => AdminResponse::error(error.code(), error.to_string()),
        };
        let frame = match response.encode() {
            Ok(frame) => frame,
            Err(error) => {
                match AdminResponse::error(error.code(), format!("cannot send the answer: {error}"))
                    .encode()
                {
                    Ok(frame) => frame,
                    Err(_) => return,
                }
            }
        };
        let write_timeout = Duration::from_millis(ADMIN_RESPONSE_WRITE_TIMEOUT_MS);
        if let Err(error) = rpc::write_frame(&mut send, frame, write_timeout).await {
            tracing::debug!(peer = %identity, %error, "admin answer not delivered");
        }
    }

    /// Authorizes and executes one request.
    async fn handle(&self, identity: &PeerIdentity, request: AdminRequest) -> AdminResponse {
        if let Some(refusal) = authorize(identity, &request) {
            return refusal;
        }
        let author = identity.name.clone();
        match request {
            AdminRequest::Commit { mut entry } => {
                entry.author = author;
                entry.timestamp_ms = now_ms();
                if let Some(refusal) = precheck_entry(&entry) {
                    return refusal;
                }
                self.write(JournalCommand::AppendEntry(entry)).await
            }
            AdminRequest::Rollback {
                scope,
                to_seq,
                parent,
            } => {
                let entry = NewEntry {
                    timestamp_ms: now_ms(),
                    entry_type: EntryType::Rollback,
                    scope,
                    author,
                    parent,
                    delta: StateDelta::default(),
                    policy_ref: None,
                    ttl_s: None,
                    emergency_reason: None,
                    target_seq: Some(to_seq),
                };
                self.write(JournalCommand::AppendEntry(entry)).await
            }
            AdminRequest::Propose(command) => match authored(command, author, now_ms()) {
                Ok(JournalCommand::AppendEntry(entry)) => {
                    if let Some(refusal) = precheck_entry(&entry) {
                        return refusal;
                    }
                    self.write(JournalCommand::AppendEntry(entry)).await
                }
                Ok(command) => self.write(command).await,
                Err(refusal) => refusal,
            },
            // One report; `Status` answers carry it in v1 bytes (no certificate expiry).
            AdminRequest::Status => match self.status().await {
                Ok(report) => AdminResponse::Status(report),
                Err(refusal) => refusal,
            },
            AdminRequest::StatusV2 => match self.status().await {
                Ok(report) => AdminResponse::StatusV2(report),
                Err(refusal) => refusal,
            },
            AdminRequest::Log {
                scope,
                since,
                limit,
                // Monitors read this too: once files can be marked secret, their contents are
                // redacted in `log_page` for every role but admin (see `authz`).
            } => self.log(scope, since, limit).await,
            AdminRequest::AddLearner {
                node_id,
                name,
                raft_addr,
                boot_addr,
                admin_addr,
            } => {
                let node = ReplicaNode {
                    name,
                    raft_addr,
                    admin_addr,
                    boot_addr,
                };
                self.add_learner(node_id, node).await
            }
            AdminRequest::Promote { node_id } => self.promote(node_id).await,
            AdminRequest::Remove { node_id } => self.remove(node_id).await,
            AdminRequest::RebuildOverlay { vcluster, seq } => self.rebuild_overlay(vcluster, seq),
        }
    }

    /// Queues a rebuild of `vcluster` on this leader's overlay task unless its overlay is
    /// already current for `seq`. Answers at once; the build and its `SetOverlay` follow.
    fn rebuild_overlay(&self, vcluster: String, seq: u64) -> AdminResponse {
        if let Some(not_leader) = self.not_leader() {
            return not_leader;
        }
        let Some(nudger) = &self.ctx.overlay_nudger else {
            return AdminResponse::error(
                ErrorCode::Unavailable,
                "this replica runs no overlay task; the overlay will be rebuilt by the leader's own schedule",
            );
        };
        {
            let state = self.ctx.reader.read();
            let journal = &state.journal;
            // Not applied here yet: the task keeps the request until it is.
            if journal.last_seq >= seq {
                if !journal.policies.contains_key(&vcluster) {
                    return AdminResponse::error(
                        ErrorCode::Rejected,
                        format!(
                            "vcluster {vcluster:?} does not exist on the leader (applied seq {})",
                            journal.last_seq
                        ),
                    );
                }
                let current = journal
                    .overlays
                    .get(&vcluster)
                    .is_some_and(|overlay| overlay.seq >= seq)
                    || !journal.overlay_is_stale(&vcluster);
                if current {
                    return AdminResponse::RebuildQueued { queued: false };
                }
            }
        }
        match nudger.nudge(vcluster, seq) {
            Ok(()) => AdminResponse::RebuildQueued { queued: true },
            Err(error) => AdminResponse::error(ErrorCode::Unavailable, error.to_string()),
        }
    }

    /// Proposes `command` through Raft (batched with concurrent writes) and answers with its
    /// outcome.
    async fn write(&self, command: JournalCommand) -> AdminResponse {
        let timeout = Duration::from_millis(ADMIN_WRITE_TIMEOUT_MS);
        match tokio::time::timeout(timeout, self.batcher.write(command)).await {
            Err(_) => write_timed_out(),
            Ok(Ok((Ok(applied), log_index))) => AdminResponse::Committed {
                seq: applied.seq,
                log_index,
            },
            Ok(Ok((Err(refusal), _))) => AdminResponse::error(ErrorCode::Rejected, refusal.message),
            Ok(Err(WriteFailure::Raft(error))) => self.write_error(error),
            Ok(Err(WriteFailure::Stopped)) => AdminResponse::error(
                ErrorCode::Unavailable,
                "this replica is shutting down and did not propose the change; retry (another replica will lead)",
            ),
            Ok(Err(WriteFailure::Unencodable(reason))) => AdminResponse::error(
                ErrorCode::BadRequest,
                format!("the command cannot be encoded for the journal: {reason}"),
            ),
        }
    }

    /// Maps an openraft write error to an answer; `ForwardToLeader` becomes `NotLeader`.
    fn write_error(
        &self,
        error: RaftError<u64, ClientWriteError<u64, ReplicaNode>>,
    ) -> AdminResponse {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                let leader = match forward.leader_node {
                    Some(node) => Some(node.admin_addr),
                    None => forward.leader_id.and_then(|id| self.admin_addr_of(id)),
                };
                AdminResponse::NotLeader { leader }
            }
            // openraft 0.9 runs one membership change at a time: another one in flight (two
            // learners joining at once, as `bootstorm dev` starts them) is transient, so it
            // answers `Unavailable`, which the join loop and clients retry. Answering
            // `Rejected` made a learner started next to another give up joining for good.
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(error),
            )) => AdminResponse::error(
                ErrorCode::Unavailable,
                format!("another membership change is in progress ({error}); retry in a moment"),
            ),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
                AdminResponse::error(
                    ErrorCode::Rejected,
                    format!("membership change refused: {error}"),
                )
            }
            RaftError::Fatal(fatal) => AdminResponse::error(
                ErrorCode::Unavailable,
                format!("this replica's raft has stopped ({fatal}); try another replica"),
            ),
        }
    }

    /// Member `node_id` as the newest membership config records it.
    fn member(&self, node_id: u64) -> Option<ReplicaNode> {
        let metrics = self.ctx.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .cloned()
    }

    /// The admin address of member `node_id` in the newest membership config.
    fn admin_addr_of(&self, node_id: u64) -> Option<String> {
        self.member(node_id).map(|node| node.admin_addr)
    }

    /// `NotLeader` with the current leader's admin address, if this replica is not the leader;
    /// `None` if it is (or believes it is).
    fn not_leader(&self) -> Option<AdminResponse> {
        let leader = self.ctx.raft.metrics().borrow().current_leader;
        match leader {
            Some(id) if id == self.ctx.node_id => None,
            Some(id) => Some(AdminResponse::NotLeader {
                leader: self.admin_addr_of(id),
            }),
            None => Some(AdminResponse::NotLeader { leader: None }),
        }
    }

    async fn add_learner(&self, node_id: u64, node: ReplicaNode) -> AdminResponse {
        if node_id == 0 {
            return AdminResponse::error(
                ErrorCode::BadRequest,
                "node id 0 is reserved; use an id > 0",
            );
        }
        if let Some(not_leader) = self.not_leader() {
            return not_leader;
        }
        // Idempotent: a learner retrying its join after a lost answer must not fail, and a
        // different replica must not silently take over an id.
        if let Some(existing) = self.member(node_id) {
            if existing == node {
                return AdminResponse::Ok;
            }
            return AdminResponse::error(
                ErrorCode::Rejected,
                format!(
                    "node id {node_id} is already a member as {existing}; remove it first or pick another id"
                ),
            );
        }
        let timeout = Duration::from_millis(ADMIN_WRITE_TIMEOUT_MS);
        match tokio::time::timeout(timeout, self.ctx.raft.add_learner(node_id, node, false)).await {
            Err(_) => write_timed_out(),
            Ok(Ok(_)) => AdminResponse::Ok,
            Ok(Err(error)) => self.write_error(error),
        }
    }

    async fn promote(&self, node_id: u64) -> AdminResponse {
        if let Some(not_leader) = self.not_leader() {
            return not_leader;
        }
        let (is_voter, is_learner) = self.member_roles(node_id);
        if is_voter {
            return AdminResponse::Ok;
        }
        if !is_learner {
            return AdminResponse::error(
                ErrorCode::Rejected,
                format!("node {node_id} is not a learner of this cluster; add it with add-learner first"),
            );
        }
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
        self.change_membership(change).await
    }

    async fn remove(&self, node_id: u64) -> AdminResponse {
        if let Some(not_leader) = self.not_leader() {
            return not_leader;
        }
        let (is_voter, is_learner) = self.member_roles(node_id);
        let change = if is_voter {
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else if is_learner {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        } else {
            return AdminResponse::error(
                ErrorCode::Rejected,
                format!("node {node_id} is not a member of this cluster"),
            );
        };
        self.change_membership(change).await
    }

    /// `(voter, learner)` for `node_id` in the newest membership config.
    fn member_roles(&self, node_id: u64) -> (bool, bool) {
        let metrics = self.ctx.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voter = membership.voter_ids().any(|id| id == node_id);
        let learner = membership.learner_ids().any(|id| id == node_id);
        (voter, learner)
    }

    async fn change_membership(&self, change: ChangeMembers<u64, ReplicaNode>) -> AdminResponse {
        let timeout = Duration::from_millis(ADMIN_WRITE_TIMEOUT_MS);
        // retain = false: a removed voter leaves the cluster instead of staying on as a learner.
        match tokio::time::timeout(timeout, self.ctx.raft.change_membership(change, false)).await {
            Err(_) => write_timed_out(),
            Ok(Ok(_)) => AdminResponse::Ok,
            Ok(Err(error)) => self.write_error(error),
        }
    }

    /// This replica's view of the cluster, from its raft metrics and local state machine (or
    /// the error to answer). Only its own row carries a certificate expiry.
    async fn status(&self) -> Result<StatusReport, AdminResponse> {
        let metrics = self.ctx.raft.metrics().borrow().clone();
        let committed = tokio::time::timeout(
            Duration::from_millis(STATUS_RAFT_QUERY_TIMEOUT_MS),
            self.ctx
                .raft
                .with_raft_state(|state| state.committed.map(|id| id.index)),
        )
        .await;
        let local = {
            let reader = self.ctx.reader.clone();
            let cached = self.digest.lock().expect("digest cache lock").clone();
            match tokio::task::spawn_blocking(move || local_view(&reader, cached)).await {
                Ok(local) => local,
                Err(error) => {
                    return Err(AdminResponse::error(
                        ErrorCode::Internal,
                        format!("computing the local status failed: {error}"),
                    ))
                }
            }
        };
        *self.digest.lock().expect("digest cache lock") =
            Some((local.applied_index, local.state_digest.clone()));
        let applied_index = local.applied_index.unwrap_or(0);
        // The commit index the raft core holds; if it cannot answer in time (busy, stopping),
        // the applied index is a lower bound of it.
        let commit_index = match committed {
            Ok(Ok(committed)) => committed.unwrap_or(0),
            _ => applied_index,
        };
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replication = metrics.replication.as_ref();
        let mut replicas = Vec::new();
        for (id, node) in membership.nodes() {
            let role = if voters.contains(id) {
                ReplicaRole::Voter
            } else {
                ReplicaRole::Learner
            };
            let mut row = ReplicaStatus {
                node_id: *id,
                name: node.name.clone(),
                role,
                reachable: false,
                boot_addr: node.boot_addr.clone(),
                admin_addr: node.admin_addr.clone(),
                applied_index: 0,
                applied_seq: 0,
                lag: 0,
                state_digest: String::new(),
                overlays: Vec::new(),
                cert_not_after_unix_s: None,
            };
            if *id == self.ctx.node_id {
                row.reachable = true;
                row.applied_index = applied_index;
                row.applied_seq = local.applied_seq;
                row.lag = commit_index.saturating_sub(applied_index);
                row.state_digest = local.state_digest.clone();
                row.overlays = local.overlays.clone();
                row.cert_not_after_unix_s = self.ctx.cert_not_after_unix_s;
            } else if let Some(matched) = replication.and_then(|r| r.get(id)) {
                // Only the leader has replication metrics: what it knows each peer holds.
                let matched = matched.map(|log_id| log_id.index);
                row.reachable = matched.is_some();
                row.applied_index = matched.unwrap_or(0);
                row.lag = commit_index.saturating_sub(matched.unwrap_or(0));
            }
            replicas.push(row);
        }
        Ok(StatusReport {
            replica: self.ctx.node_id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            commit_index,
            replicas,
        })
    }

    /// A page of the local journal: seq >= `since`, of `scope` if given.
    async fn log(&self, scope: Option<config::Scope>, since: u64, limit: u32) -> AdminResponse {
        let reader = self.ctx.reader.clone();
        let page = tokio::task::spawn_blocking(move || log_page(&reader, scope, since, limit));
        match page.await {
            Ok(response) => response,
            Err(error) => AdminResponse::error(
                ErrorCode::Internal,
                format!("reading the journal failed: {error}"),
            ),
        }
    }
}

/// The refusal for a request this identity may not make (`authz::authorize`), or `None`.
fn authorize(identity: &PeerIdentity, request: &AdminRequest) -> Option<AdminResponse> {
    let refusal = super::authz::authorize(identity.role, &identity.name, request).err()?;
    tracing::info!(peer = %identity, %refusal, "admin request refused");
    Some(AdminResponse::error(ErrorCode::Unauthorized, refusal))
}

/// `command` with its author fields set to `author` and its timestamp to `now_ms`, or the
/// refusal of a command admins may not propose.
fn authored(
    command: JournalCommand,
    author: String,
    now_ms: u64,
) -> Result<JournalCommand, AdminResponse> {
    match command {
        JournalCommand::AppendEntry(mut entry) => {
            entry.author = author;
            entry.timestamp_ms = now_ms;
            Ok(JournalCommand::AppendEntry(entry))
        }
        JournalCommand::UpdateNodeState { node_id, state, .. } => {
            Ok(JournalCommand::UpdateNodeState {
                node_id,
                state,
                author,
                timestamp_ms: now_ms,
            })
        }
        JournalCommand::SetPolicy {
            vcluster_id,
            policy,
            ..
        } => Ok(JournalCommand::SetPolicy {
            vcluster_id,
            policy,
            author,
            timestamp_ms: now_ms,
        }),
        JournalCommand::RecordOperation(mut operation) => {
            operation.author = author;
            operation.timestamp_ms = now_ms;
            Ok(JournalCommand::RecordOperation(operation))
        }
        JournalCommand::RevokeCertificate {
            certificate,
            reason,
            ..
        } => Ok(JournalCommand::RevokeCertificate {
            certificate,
            reason,
            author,
            timestamp_ms: now_ms,
        }),
        JournalCommand::SetOverlay { .. } | JournalCommand::ExpireTtl { .. } => {
            Err(AdminResponse::error(
                ErrorCode::Unauthorized,
                "SetOverlay and ExpireTtl are derived by the leader itself and cannot be proposed by an admin",
            ))
        }
    }
}

/// Checks of an entry that do not depend on the journal's state, done before Raft so an
/// obviously invalid entry costs no log entry. Everything else is `config::apply`'s job.
fn precheck_entry(entry: &NewEntry) -> Option<AdminResponse> {
    let size_bytes = entry.delta.size_bytes();
    if size_bytes > config::limits::ENTRY_DELTA_SIZE_MAX_BYTES {
        let rejected = config::Rejected::EntryTooLarge {
            size_bytes,
            max_bytes: config::limits::ENTRY_DELTA_SIZE_MAX_BYTES,
        };
        return Some(AdminResponse::error(
            ErrorCode::TooLarge,
            rejected.to_string(),
        ));
    }
    config::validate::delta(&entry.delta)
        .err()
        .map(|rejected| AdminResponse::error(ErrorCode::Rejected, rejected.to_string()))
}

fn write_timed_out() -> AdminResponse {
    AdminResponse::error(
        ErrorCode::Timeout,
        format!(
            "raft did not commit the change within {ADMIN_WRITE_TIMEOUT_MS} ms (no quorum?); the outcome is unknown: check `bootstorm log`/`status` before retrying"
        ),
    )
}

/// Milliseconds since the Unix epoch on this (the leader's) clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What Status reports about the local state machine.
struct LocalView {
    applied_index: Option<u64>,
    applied_seq: u64,
    state_digest: String,
    overlays: Vec<(String, u64)>,
}

/// Reads the local state under one read lock, so index, seq, digest and overlays agree.
/// Reuses `cached` when it was computed at the same applied index.
fn local_view(
    reader: &raftstore::ReplicaReader,
    cached: Option<(Option<u64>, String)>,
) -> LocalView {
    let state = reader.read();
    let applied_index = state.last_applied.map(|id| id.index);
    let state_digest = match cached {
        Some((index, digest)) if index == applied_index => digest,
        _ => state_digest(&state.journal),
    };
    LocalView {
        applied_index,
        applied_seq: state.journal.last_seq,
        state_digest,
        overlays: state
            .journal
            .overlays
            .iter()
            .map(|(vc, overlay)| (vc.clone(), overlay.seq))
            .collect(),
    }
}

/// Hex blake3 of the postcard encoding of `journal`: equal on replicas that applied the same
/// log (the state is all B-tree maps, so its encoding is deterministic).
pub fn state_digest(journal: &config::JournalState) -> String {
    let mut hasher = blake3::Hasher::new();
    match postcard::to_io(journal, &mut hasher) {
        Ok(_) => hasher.finalize().to_hex().to_string(),
        // Serializing plain data into a hasher cannot fail; say so rather than panic.
        Err(error) => format!("unavailable: {error}"),
    }
}

/// Counts the bytes postcard would write, without keeping them.
struct CountingWriter(usize);

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encoded_len_bytes<T: serde::Serialize>(value: &T) -> usize {
    postcard::to_io(value, CountingWriter(0)).map_or(usize::MAX, |w| w.0)
}

/// One `Log` answer: at most `limit` (clamped to `LOG_ENTRIES_PER_RESPONSE_MAX`; 0 means the
/// maximum) entries with seq >= `since`, stopping early before the answer would exceed the
/// response size limit.
fn log_page(
    reader: &raftstore::ReplicaReader,
    scope: Option<config::Scope>,
    since: u64,
    limit: u32,
) -> AdminResponse {
    let limit = match limit {
        0 => LOG_ENTRIES_PER_RESPONSE_MAX,
        n => n.min(LOG_ENTRIES_PER_RESPONSE_MAX),
    } as usize;
    let budget_bytes = ADMIN_RESPONSE_SIZE_MAX_BYTES - LOG_RESPONSE_SLACK_BYTES;
    let state = reader.read();
    // `JournalState::log` yields seq > its argument.
    let mut matching = state.journal.log(scope.as_ref(), since.saturating_sub(1));
    let mut entries = Vec::new();
    let mut used_bytes = 0usize;
    let mut next_since = None;
    for entry in matching.by_ref() {
        let len = encoded_len_bytes(entry);
        if used_bytes + len > budget_bytes {
            if entries.is_empty() {
                return AdminResponse::error(
                    ErrorCode::TooLarge,
                    format!(
                        "entry seq {} encodes to {len} bytes, more than one log answer may carry ({budget_bytes})",
                        entry.seq
                    ),
                );
            }
            next_since = Some(entry.seq);
            break;
        }
        used_bytes += len;
        entries.push(entry.clone());
        if entries.len() == limit {
            break;
        }
    }
    if next_since.is_none() && entries.len() == limit {
        next_since = matching.next().map(|entry| entry.seq);
    }
    AdminResponse::Log {
        entries,
        next_since,
    }
}
