//! Admin plane messages: commits, rollbacks, proposals, status, log reads, membership and
//! overlay rebuild requests (a replica asking the leader, design decision 5).
//!
//! A commit can carry a 2 MiB delta and a log answer several entries, far beyond what a frame
//! header may hold, so admin frames put the message in the payload: the header is only the
//! message's *kind* ([`AdminRequestKind`], [`AdminResponseKind`]), which lets a server refuse
//! an oversized body for a small kind (a 2 MiB `Status` request) before reading it; the payload
//! is the postcard-encoded [`AdminRequest`] / [`AdminResponse`]. Admin traffic is rare, so the
//! body is decoded by copy; nothing here is on the boot path.
//!
//! One request frame per bidirectional stream, one response frame back, as on the boot plane.
//!
//! Evolution without a frame version bump (see `proto::frame`): a message that gains fields
//! gets a new variant at the end (`StatusV2`), and the old variant keeps its old bytes
//! (`Status` answers are encoded by `status_v1`), so old and new peers keep talking.
//!
//! Invariants:
//! - the body's variant always matches the header's kind (checked both ways);
//! - a body decodes only if it is consumed exactly and its wire-bounded fields (names,
//!   addresses, error messages) are within limits. Journal semantics (valid paths, parents,
//!   sizes of deltas) are `config::apply`'s job on the leader, not the codec's.

use bytes::Bytes;
use config::limits::NAME_LEN_MAX_BYTES;
use config::{ConfigEntry, JournalCommand, NewEntry, Scope, Seq, VClusterId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::code::{bounded_message, ErrorCode};
use crate::error::{DecodeError, EncodeError, InvalidField};
use crate::frame::{EncodedFrame, Frame, Header};
use crate::limits::{
    ADDR_LEN_MAX_BYTES, ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES, ADMIN_REQUEST_SIZE_MAX_BYTES,
    ADMIN_RESPONSE_SIZE_MAX_BYTES, ERROR_MESSAGE_LEN_MAX_BYTES,
};

/// What an admin asks the cluster to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Append a config entry through Raft. The server **overwrites `entry.author`** with the
    /// identity of the admin client certificate, so the journal's author is authenticated, not
    /// claimed; the timestamp is likewise the leader's clock reading.
    Commit { entry: NewEntry },
    /// Restore `scope`'s config as of `to_seq` (appends a `Rollback` entry; history is never
    /// rewritten). `parent` is optimistic concurrency, as on a commit. Author as for `Commit`.
    Rollback {
        scope: Scope,
        to_seq: Seq,
        parent: Option<Seq>,
    },
    /// Propose any other journal command (set a vCluster policy, register a node, record an
    /// operation). Authors are overwritten from the certificate as for `Commit`. The server
    /// refuses `SetOverlay` and `ExpireTtl` here: those are derived by the leader itself.
    Propose(JournalCommand),
    /// The cluster's status as this replica sees it.
    Status,
    /// Journal entries with seq >= `since`, optionally of one scope, at most `limit` of them
    /// (the server clamps `limit` to `LOG_ENTRIES_PER_RESPONSE_MAX` and to the response size).
    Log {
        scope: Option<Scope>,
        since: Seq,
        limit: u32,
    },
    /// Add a replica as a non-voting learner.
    AddLearner {
        /// Raft node id, unique in the cluster.
        node_id: u64,
        /// Human name (e.g. `rack12-a`), shown in status.
        name: String,
        /// `host:port` of its raft plane.
        raft_addr: String,
        /// `host:port` of its boot plane, handed to agents.
        boot_addr: String,
        /// `host:port` of its admin plane.
        admin_addr: String,
    },
    /// Make a learner a voter.
    Promote { node_id: u64 },
    /// Remove a replica from the cluster (voter or learner).
    Remove { node_id: u64 },
    /// Ask the leader to rebuild `vcluster`'s overlay now and commit it with `SetOverlay`: the
    /// asking replica's stored overlay is missing or older than `seq` (its newest seq affecting
    /// the vCluster). Allowed for replica certificates. Advisory and idempotent: the leader
    /// coalesces requests for one vCluster into one build, and answers `RebuildQueued` before
    /// building (the asker watches its own state for the `SetOverlay`).
    RebuildOverlay { vcluster: VClusterId, seq: Seq },
    /// [`AdminRequest::Status`] answered with every field of today's [`ReplicaStatus`]
    /// (`StatusV2`: since v1 each replica's certificate expiry). A replica older than this
    /// variant refuses its tag; the client then asks `Status`, whose answer keeps the v1 bytes.
    StatusV2,
}

/// The header of an admin request frame: which [`AdminRequest`] the payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdminRequestKind {
    Commit,
    Rollback,
    Propose,
    Status,
    Log,
    AddLearner,
    Promote,
    Remove,
    RebuildOverlay,
    StatusV2,
}

impl AdminRequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRequestKind::Commit => "commit",
            AdminRequestKind::Rollback => "rollback",
            AdminRequestKind::Propose => "propose",
            AdminRequestKind::Status => "status",
            AdminRequestKind::Log => "log",
            AdminRequestKind::AddLearner => "add-learner",
            AdminRequestKind::Promote => "promote",
            AdminRequestKind::Remove => "remove",
            AdminRequestKind::RebuildOverlay => "rebuild-overlay",
            AdminRequestKind::StatusV2 => "status-v2",
        }
    }
}

impl Header for AdminRequestKind {
    const WHAT: &'static str = "admin request";
    const PAYLOAD_SIZE_MAX_BYTES: usize = ADMIN_REQUEST_SIZE_MAX_BYTES;

    fn payload_size_max_bytes(&self) -> usize {
        match self {
            AdminRequestKind::Commit | AdminRequestKind::Propose => ADMIN_REQUEST_SIZE_MAX_BYTES,
            AdminRequestKind::Rollback
            | AdminRequestKind::Status
            | AdminRequestKind::Log
            | AdminRequestKind::AddLearner
            | AdminRequestKind::Promote
            | AdminRequestKind::Remove
            | AdminRequestKind::RebuildOverlay
            | AdminRequestKind::StatusV2 => ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES,
        }
    }
}

impl AdminRequest {
    pub fn kind(&self) -> AdminRequestKind {
        match self {
            AdminRequest::Commit { .. } => AdminRequestKind::Commit,
            AdminRequest::Rollback { .. } => AdminRequestKind::Rollback,
            AdminRequest::Propose(_) => AdminRequestKind::Propose,
            AdminRequest::Status => AdminRequestKind::Status,
            AdminRequest::Log { .. } => AdminRequestKind::Log,
            AdminRequest::AddLearner { .. } => AdminRequestKind::AddLearner,
            AdminRequest::Promote { .. } => AdminRequestKind::Promote,
            AdminRequest::Remove { .. } => AdminRequestKind::Remove,
            AdminRequest::RebuildOverlay { .. } => AdminRequestKind::RebuildOverlay,
            AdminRequest::StatusV2 => AdminRequestKind::StatusV2,
        }
    }

    /// Checks the fields the wire bounds (names and addresses).
    pub fn validate(&self) -> Result<(), InvalidField> {
        match self {
            AdminRequest::RebuildOverlay { vcluster, .. } => {
                InvalidField::check("vcluster name", vcluster.len(), NAME_LEN_MAX_BYTES)
            }
            AdminRequest::AddLearner {
                name,
                raft_addr,
                boot_addr,
                admin_addr,
                ..
            } => {
                InvalidField::check("replica name", name.len(), NAME_LEN_MAX_BYTES)?;
                InvalidField::check("raft address", raft_addr.len(), ADDR_LEN_MAX_BYTES)?;
                InvalidField::check("boot address", boot_addr.len(), ADDR_LEN_MAX_BYTES)?;
                InvalidField::check("admin address", admin_addr.len(), ADDR_LEN_MAX_BYTES)
            }
            _ => Ok(()),
        }
    }

    /// The frame: kind header, postcard body payload.
    pub fn to_frame(&self) -> Result<Frame<AdminRequestKind>, EncodeError> {
        self.validate().map_err(|source| EncodeError::Invalid {
            what: AdminRequestKind::WHAT,
            source,
        })?;
        to_frame(self.kind(), self)
    }

    pub fn encode(&self) -> Result<EncodedFrame, EncodeError> {
        self.to_frame()?.encode()
    }

    /// The request a decoded frame carries.
    pub fn from_frame(frame: &Frame<AdminRequestKind>) -> Result<Self, DecodeError> {
        let request: AdminRequest = decode_body(AdminRequestKind::WHAT, &frame.payload)?;
        if request.kind() != frame.header {
            return Err(DecodeError::KindMismatch {
                header: frame.header.as_str(),
                body: request.kind().as_str(),
            });
        }
        request.validate().map_err(|source| DecodeError::Invalid {
            what: AdminRequestKind::WHAT,
            source,
        })?;
        Ok(request)
    }

    /// Decodes one complete request frame.
    pub fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        Self::from_frame(&Frame::decode(buf)?)
    }
}

/// A replica's role in the Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRole {
    Voter,
    Learner,
}

/// One replica as the answering replica sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub node_id: u64,
    pub name: String,
    pub role: ReplicaRole,
    /// Whether the answering replica (the leader, if it is one) reached it recently.
    pub reachable: bool,
    pub boot_addr: String,
    pub admin_addr: String,
    /// Raft log index applied to its state machine.
    pub applied_index: u64,
    /// Journal seq applied to its state machine.
    pub applied_seq: Seq,
    /// Log entries it is behind the leader's commit index.
    pub lag: u64,
    /// Digest of its journal state (hex blake3), equal on replicas that applied the same log:
    /// a mismatch at the same applied index is a determinism bug.
    pub state_digest: String,
    /// Stored overlays: vCluster and the seq each was built for.
    pub overlays: Vec<(VClusterId, Seq)>,
    /// `notAfter` of its replica certificate (Unix seconds), filled in by that replica itself
    /// (another replica's row: `None`). Only in `StatusV2` answers; `None` from a v1 answer.
    pub cert_not_after_unix_s: Option<u64>,
}

/// The answer to [`AdminRequest::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Node id of the answering replica.
    pub replica: u64,
    /// Node id of the current leader, if known.
    pub leader: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub replicas: Vec<ReplicaStatus>,
}

/// The answer to an [`AdminRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    /// Done (membership changes).
    Ok,
    /// The command is durable on a quorum and applied. `seq` is the journal seq it appended
    /// (`None` for commands that append no entry).
    Committed { seq: Option<Seq>, log_index: u64 },
    /// The answer to `Status`, in v1 bytes: the fields added later
    /// (`cert_not_after_unix_s`) are not sent and decode as `None`.
    Status(#[serde(with = "status_v1")] StatusReport),
    /// Journal entries in seq order. `next_since` is the `since` to ask for the next page, or
    /// `None` when the journal was read to its end.
    Log {
        entries: Vec<ConfigEntry>,
        next_since: Option<Seq>,
    },
    /// Writes go to the leader: its admin address (`host:port`), if known.
    NotLeader { leader: Option<String> },
    /// The request failed; `message` says why and what to do.
    Error { code: ErrorCode, message: String },
    /// The leader took a [`AdminRequest::RebuildOverlay`]. `queued`: a build was queued for its
    /// overlay task (coalesced with every other pending request for the vCluster); `false`:
    /// the leader's overlay is already current at that seq, so nothing was queued — its
    /// `SetOverlay` is committed and on its way to the asker through Raft.
    RebuildQueued { queued: bool },
    /// The answer to `StatusV2`: every field of the report.
    StatusV2(StatusReport),
}

/// The header of an admin response frame: which [`AdminResponse`] the payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdminResponseKind {
    Ok,
    Committed,
    Status,
    Log,
    NotLeader,
    Error,
    RebuildQueued,
    StatusV2,
}

impl AdminResponseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminResponseKind::Ok => "ok",
            AdminResponseKind::Committed => "committed",
            AdminResponseKind::Status => "status",
            AdminResponseKind::Log => "log",
            AdminResponseKind::NotLeader => "not-leader",
            AdminResponseKind::Error => "error",
            AdminResponseKind::RebuildQueued => "rebuild-queued",
            AdminResponseKind::StatusV2 => "status-v2",
        }
    }
}

impl Header for AdminResponseKind {
    const WHAT: &'static str = "admin response";
    const PAYLOAD_SIZE_MAX_BYTES: usize = ADMIN_RESPONSE_SIZE_MAX_BYTES;

    fn payload_size_max_bytes(&self) -> usize {
        match self {
            AdminResponseKind::Status | AdminResponseKind::StatusV2 | AdminResponseKind::Log => {
                ADMIN_RESPONSE_SIZE_MAX_BYTES
            }
            AdminResponseKind::Ok
            | AdminResponseKind::Committed
            | AdminResponseKind::NotLeader
            | AdminResponseKind::Error
            | AdminResponseKind::RebuildQueued => ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES,
        }
    }
}

impl AdminResponse {
    /// An `Error` answer whose message is cut to the wire limit.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        AdminResponse::Error {
            code,
            message: bounded_message(message),
        }
    }

    pub fn kind(&self) -> AdminResponseKind {
        match self {
            AdminResponse::Ok => AdminResponseKind::Ok,
            AdminResponse::Committed { .. } => AdminResponseKind::Committed,
            AdminResponse::Status(_) => AdminResponseKind::Status,
            AdminResponse::Log { .. } => AdminResponseKind::Log,
            AdminResponse::NotLeader { .. } => AdminResponseKind::NotLeader,
            AdminResponse::Error { .. } => AdminResponseKind::Error,
            AdminResponse::RebuildQueued { .. } => AdminResponseKind::RebuildQueued,
            AdminResponse::StatusV2(_) => AdminResponseKind::StatusV2,
        }
    }

    /// Checks the fields the wire bounds (addresses, error messages).
    pub fn validate(&self) -> Result<(), InvalidField> {
        match self {
            AdminResponse::NotLeader {
                leader: Some(addr), ..
            } => InvalidField::check("leader address", addr.len(), ADDR_LEN_MAX_BYTES),
            AdminResponse::Error { message, .. } => {
                InvalidField::check("error message", message.len(), ERROR_MESSAGE_LEN_MAX_BYTES)
            }
            _ => Ok(()),
        }
    }

    /// The frame: kind header, postcard body payload. A `Log` or `Status` answer over
    /// `ADMIN_RESPONSE_SIZE_MAX_BYTES` is refused here (`EncodeError::PayloadTooLarge`): page it.
    pub fn to_frame(&self) -> Result<Frame<AdminResponseKind>, EncodeError> {
        self.validate().map_err(|source| EncodeError::Invalid {
            what: AdminResponseKind::WHAT,
            source,
        })?;
        to_frame(self.kind(), self)
    }

    pub fn encode(&self) -> Result<EncodedFrame, EncodeError> {
        self.to_frame()?.encode()
    }

    /// The answer a decoded frame carries.
    pub fn from_frame(frame: &Frame<AdminResponseKind>) -> Result<Self, DecodeError> {
        let response: AdminResponse = decode_body(AdminResponseKind::WHAT, &frame.payload)?;
        if response.kind() != frame.header {
            return Err(DecodeError::KindMismatch {
                header: frame.header.as_str(),
                body: response.kind().as_str(),
            });
        }
        response.validate().map_err(|source| DecodeError::Invalid {
            what: AdminResponseKind::WHAT,
            source,
        })?;
        Ok(response)
    }

    /// Decodes one complete answer frame.
    pub fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        Self::from_frame(&Frame::decode(buf)?)
    }
}

fn to_frame<K: Header, B: Serialize>(kind: K, body: &B) -> Result<Frame<K>, EncodeError> {
    let body = postcard::to_allocvec(body).map_err(|source| EncodeError::Serialize {
        what: K::WHAT,
        source,
    })?;
    let max_bytes = kind.payload_size_max_bytes();
    if body.len() > max_bytes {
        return Err(EncodeError::PayloadTooLarge {
            what: K::WHAT,
            payload_len_bytes: body.len(),
            max_bytes,
        });
    }
    Ok(Frame::new(kind, Bytes::from(body)))
}

fn decode_body<B: DeserializeOwned>(what: &'static str, payload: &[u8]) -> Result<B, DecodeError> {
    let (body, rest) = postcard::take_from_bytes::<B>(payload)
        .map_err(|source| DecodeError::Malformed { what, source })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing {
            what,
            trailing_bytes: rest.len(),
        });
    }
    Ok(body)
}

/// The v1 wire form of a status report (before `cert_not_after_unix_s`): what a `Status`
/// answer carries, so a client that predates `StatusV2` decodes it unchanged.
mod status_v1 {
    use config::{Seq, VClusterId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{ReplicaRole, ReplicaStatus, StatusReport};

    #[derive(Serialize, Deserialize)]
    struct ReportV1 {
        replica: u64,
        leader: Option<u64>,
        term: u64,
        commit_index: u64,
        replicas: Vec<ReplicaV1>,
    }

    #[derive(Serialize, Deserialize)]
    struct ReplicaV1 {
        node_id: u64,
        name: String,
        role: ReplicaRole,
        reachable: bool,
        boot_addr: String,
        admin_addr: String,
        applied_index: u64,
        applied_seq: Seq,
        lag: u64,
        state_digest: String,
        overlays: Vec<(VClusterId, Seq)>,
    }

    pub fn serialize<S: Serializer>(report: &StatusReport, s: S) -> Result<S::Ok, S::Error> {
        ReportV1 {
            replica: report.replica,
            leader: report.leader,
            term: report.term,
            commit_index: report.commit_index,
            replicas: report
                .replicas
                .iter()
                .map(|r| ReplicaV1 {
                    node_id: r.node_id,
                    name: r.name.clone(),
                    role: r.role,
                    reachable: r.reachable,
                    boot_addr: r.boot_addr.clone(),
                    admin_addr: r.admin_addr.clone(),
                    applied_index: r.applied_index,
                    applied_seq: r.applied_seq,
                    lag: r.lag,
                    state_digest: r.state_digest.clone(),
                    overlays: r.overlays.clone(),
                })
                .collect(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StatusReport, D::Error> {
        let v1 = ReportV1::deserialize(d)?;
        Ok(StatusReport {
            replica: v1.replica,
            leader: v1.leader,
            term: v1.term,
            commit_index: v1.commit_index,
            replicas: v1
                .replicas
                .into_iter()
                .map(|r| ReplicaStatus {
                    node_id: r.node_id,
                    name: r.name,
                    role: r.role,
                    reachable: r.reachable,
                    boot_addr: r.boot_addr,
                    admin_addr: r.admin_addr,
                    applied_index: r.applied_index,
                    applied_seq: r.applied_seq,
                    lag: r.lag,
                    state_digest: r.state_digest,
                    overlays: r.overlays,
                    cert_not_after_unix_s: None,
                })
                .collect(),
        })
    }
}
