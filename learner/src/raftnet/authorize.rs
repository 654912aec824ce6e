//! Who may send which raft RPC, and which payloads are sound enough to hand to openraft: pure
//! functions over plain data (no openraft types, no I/O, no clock), decided before the raft
//! server (`raftnet::server`) passes anything to the raft core.
//!
//! The rules (the table tests at the bottom spell out each one):
//! - **identity**: the peer certificate's CN must be the `ReplicaNode.name` of the node id the
//!   request claims to come from — the leader of its `vote` for AppendEntries and
//!   InstallSnapshot, the candidate of its `vote` for Vote — in this replica's current
//!   membership ([`MembershipView`]);
//! - **role**: that node must be a voter. Only voters lead (so only they append or send
//!   snapshots) and only voters campaign; a learner certificate can do none of it;
//! - **shape** of an AppendEntries: at most `RAFT_APPEND_ENTRIES_BATCH_MAX` entries, log ids
//!   consecutive from right after `prev_log_id`, terms non-decreasing from `prev_log_id`'s and
//!   never above the vote's term (bytes are bounded by the frame decoder before this); a Vote's
//!   or a snapshot's last log id is not from a term above the vote's;
//! - **snapshot chunks** ([`check_snapshot_chunk`]): a chunk starts a snapshot at offset 0,
//!   continues it at the end of what was received so far, or repeats the last chunk (a retry
//!   whose answer was lost); `offset + len` never exceeds [`RAFT_SNAPSHOT_SIZE_MAX_BYTES`], so
//!   the receive buffer stays bounded whatever the offsets say.
//!
//! Which membership: the one in this replica's log (openraft's effective membership) once it
//! has one; before that, the initial voters of its config (`peers`), which is how a fresh
//! voter lets the first candidate's Vote in and a fresh learner its first leader. A replica
//! with neither (started without `peers` and initialized from outside, as some tests do) is
//! [`ViewSource::Unbootstrapped`]: it holds no state yet and accepts the first voter that
//! reaches it — configs that list `peers` close that window.
//!
//! Invariants: refusing is always safe for Raft (a refused RPC is a lost message); every
//! refusal names the peer, what it claimed and the rule it broke.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proto::limits::RAFT_APPEND_ENTRIES_BATCH_MAX;
use proto::raft::RaftRpcKind;
use proto::ErrorCode;
use raftstore::RaftNodeId;

use super::limits::RAFT_SNAPSHOT_SIZE_MAX_BYTES;

/// Where a [`MembershipView`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewSource {
    /// The effective membership of this replica's log.
    Log,
    /// No membership in the log yet: the initial voters of this replica's config.
    ConfiguredPeers,
    /// Neither: a fresh replica started without `peers`.
    Unbootstrapped,
}

impl fmt::Display for ViewSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ViewSource::Log => "current membership",
            ViewSource::ConfiguredPeers => {
                "configured initial voters (no membership in its log yet)"
            }
            ViewSource::Unbootstrapped => "(empty) membership",
        })
    }
}

/// The membership a request is judged against, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipView {
    pub source: ViewSource,
    /// Replica name (the CN of its certificate) of every member, voter or learner.
    pub names: BTreeMap<RaftNodeId, String>,
    /// The voters (of every config, during a joint change).
    pub voters: BTreeSet<RaftNodeId>,
}

impl MembershipView {
    /// The log's membership if it has voters, else the configured initial voters (all voters)
    /// if any, else [`ViewSource::Unbootstrapped`].
    pub fn current(
        log_names: BTreeMap<RaftNodeId, String>,
        log_voters: BTreeSet<RaftNodeId>,
        configured_peers: &BTreeMap<RaftNodeId, String>,
    ) -> MembershipView {
        if !log_voters.is_empty() {
            MembershipView {
                source: ViewSource::Log,
                names: log_names,
                voters: log_voters,
            }
        } else if !configured_peers.is_empty() {
            MembershipView {
                source: ViewSource::ConfiguredPeers,
                names: configured_peers.clone(),
                voters: configured_peers.keys().copied().collect(),
            }
        } else {
            MembershipView {
                source: ViewSource::Unbootstrapped,
                names: BTreeMap::new(),
                voters: BTreeSet::new(),
            }
        }
    }
}

/// Which rule a refused request broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The claimed node id is not in the membership.
    NotAMember,
    /// The certificate's name is not the claimed node's name.
    NameMismatch,
    /// The claimed node is a learner.
    NotAVoter,
    /// Too many entries in one AppendEntries.
    TooManyEntries,
    /// Entries do not follow `prev_log_id` one index at a time.
    LogIdsNotConsecutive,
    /// A term goes down along the log.
    TermsDecrease,
    /// A log id's term is above the request's vote term.
    TermAboveVote,
    /// A snapshot chunk that does not continue the snapshot being received.
    SnapshotOffset,
    /// A snapshot chunk that would take the snapshot past the size limit.
    SnapshotTooLarge,
}

impl Rule {
    /// Rules about who sent the request (as opposed to what it carries).
    pub fn is_authorization(self) -> bool {
        matches!(
            self,
            Rule::NotAMember | Rule::NameMismatch | Rule::NotAVoter
        )
    }

    fn code(self) -> ErrorCode {
        match self {
            Rule::NotAMember | Rule::NameMismatch | Rule::NotAVoter => ErrorCode::Unauthorized,
            Rule::TooManyEntries | Rule::SnapshotTooLarge => ErrorCode::TooLarge,
            Rule::LogIdsNotConsecutive
            | Rule::TermsDecrease
            | Rule::TermAboveVote
            | Rule::SnapshotOffset => ErrorCode::BadRequest,
        }
    }
}

/// Why a request is not handed to openraft: the wire code, the rule, and a message naming the
/// peer, its claim and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub rule: Rule,
    pub message: String,
}

impl Refusal {
    fn new(rule: Rule, message: String) -> Refusal {
        Refusal {
            code: rule.code(),
            rule,
            message,
        }
    }
}

/// What the claimed node wants to do, for messages.
fn act(kind: RaftRpcKind) -> &'static str {
    match kind {
        RaftRpcKind::AppendEntries => "append entries as leader",
        RaftRpcKind::InstallSnapshot => "install a snapshot as leader",
        RaftRpcKind::Vote => "ask for a vote as candidate",
    }
}

/// Whether the peer whose certificate names `peer` may send a `kind` RPC claiming to be raft
/// node `claimed` (the leader or candidate of the request's vote).
pub fn authorize(
    peer: &str,
    kind: RaftRpcKind,
    claimed: RaftNodeId,
    view: &MembershipView,
) -> Result<(), Refusal> {
    if view.source == ViewSource::Unbootstrapped {
        return Ok(());
    }
    let what = kind.as_str();
    let source = view.source;
    let Some(name) = view.names.get(&claimed) else {
        return Err(Refusal::new(
            Rule::NotAMember,
            format!(
                "{what} from certificate {peer:?} claiming raft node {claimed} refused: node \
                 {claimed} is not in this replica's {source}; only a member named by its \
                 certificate may send raft RPCs"
            ),
        ));
    };
    if name != peer {
        return Err(Refusal::new(
            Rule::NameMismatch,
            format!(
                "{what} from certificate {peer:?} claiming raft node {claimed} refused: node \
                 {claimed} is {name:?} in this replica's {source}; a replica may only speak \
                 for the node its certificate names"
            ),
        ));
    }
    if !view.voters.contains(&claimed) {
        return Err(Refusal::new(
            Rule::NotAVoter,
            format!(
                "{what} from {peer:?} (raft node {claimed}) refused: it is a learner in this \
                 replica's {source}; only a voter may {}",
                act(kind)
            ),
        ));
    }
    Ok(())
}

/// A log id as plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainLogId {
    pub term: u64,
    pub index: u64,
}

impl fmt::Display for PlainLogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.term, self.index)
    }
}

fn show(id: Option<PlainLogId>) -> String {
    id.map_or_else(|| "none".to_owned(), |id| id.to_string())
}

/// Whether an AppendEntries from `peer` with vote term `vote_term`, `prev_log_id` `prev` and
/// entries with log ids `entries` (in order) is well formed; see the module doc.
pub fn check_append_entries(
    peer: &str,
    vote_term: u64,
    prev: Option<PlainLogId>,
    entries: &[PlainLogId],
) -> Result<(), Refusal> {
    if entries.len() > RAFT_APPEND_ENTRIES_BATCH_MAX {
        return Err(Refusal::new(
            Rule::TooManyEntries,
            format!(
                "append-entries from {peer:?} refused: {} entries, more than \
                 RAFT_APPEND_ENTRIES_BATCH_MAX ({RAFT_APPEND_ENTRIES_BATCH_MAX})",
                entries.len()
            ),
        ));
    }
    if let Some(prev) = prev {
        if prev.term > vote_term {
            return Err(Refusal::new(
                Rule::TermAboveVote,
                format!(
                    "append-entries from {peer:?} refused: prev_log_id {prev} is from a term \
                     above the leader's term {vote_term}"
                ),
            ));
        }
    }
    let mut expected = prev.map(|p| p.index.checked_add(1));
    let mut last_term = prev.map_or(0, |p| p.term);
    for (i, entry) in entries.iter().enumerate() {
        let want = match expected {
            None => Some(0),
            Some(next) => next,
        };
        if want != Some(entry.index) {
            return Err(Refusal::new(
                Rule::LogIdsNotConsecutive,
                format!(
                    "append-entries from {peer:?} refused: entry {i} has log id {entry}, but \
                     after prev_log_id {} the entries must be consecutive from index {}",
                    show(prev),
                    prev.map_or(0, |p| p.index.saturating_add(1))
                ),
            ));
        }
        if entry.term < last_term {
            return Err(Refusal::new(
                Rule::TermsDecrease,
                format!(
                    "append-entries from {peer:?} refused: entry {i} has log id {entry}, from a \
                     term below the {last_term} before it (prev_log_id {})",
                    show(prev)
                ),
            ));
        }
        if entry.term > vote_term {
            return Err(Refusal::new(
                Rule::TermAboveVote,
                format!(
                    "append-entries from {peer:?} refused: entry {i} has log id {entry}, from a \
                     term above the leader's term {vote_term}"
                ),
            ));
        }
        last_term = entry.term;
        expected = Some(entry.index.checked_add(1));
    }
    Ok(())
}

/// Whether a log id carried by a Vote (the candidate's last log id) or an InstallSnapshot (the
/// snapshot's last log id) is not from a term above the request's vote term.
pub fn check_last_log_id(
    peer: &str,
    kind: RaftRpcKind,
    vote_term: u64,
    last: Option<PlainLogId>,
) -> Result<(), Refusal> {
    match last {
        Some(last) if last.term > vote_term => Err(Refusal::new(
            Rule::TermAboveVote,
            format!(
                "{} from {peer:?} refused: its last log id {last} is from a term above its vote \
                 term {vote_term}",
                kind.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// How far the snapshot being received has come (the server keeps one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotReceipt {
    pub snapshot_id: String,
    /// Offset of the last chunk accepted: a retry of it is accepted again.
    pub last_chunk_offset: u64,
    /// End of what was received so far: the next chunk's offset.
    pub end: u64,
}

/// One InstallSnapshot chunk as plain data.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotChunk<'a> {
    pub snapshot_id: &'a str,
    pub offset: u64,
    pub len: u64,
    pub done: bool,
}

/// Whether `chunk` from `peer` may be handed to openraft given what was received so far.
pub fn check_snapshot_chunk(
    peer: &str,
    receipt: Option<&SnapshotReceipt>,
    chunk: SnapshotChunk<'_>,
) -> Result<(), Refusal> {
    let SnapshotChunk {
        snapshot_id,
        offset,
        len,
        ..
    } = chunk;
    let limit = RAFT_SNAPSHOT_SIZE_MAX_BYTES;
    if offset.checked_add(len).is_none_or(|end| end > limit) {
        return Err(Refusal::new(
            Rule::SnapshotTooLarge,
            format!(
                "install-snapshot from {peer:?} refused: a chunk of {len} bytes at offset \
                 {offset} of snapshot {snapshot_id:?} goes past RAFT_SNAPSHOT_SIZE_MAX_BYTES \
                 ({limit})"
            ),
        ));
    }
    if offset == 0 {
        return Ok(());
    }
    match receipt {
        Some(r) if r.snapshot_id == snapshot_id => {
            if offset == r.end || offset == r.last_chunk_offset {
                Ok(())
            } else {
                Err(Refusal::new(
                    Rule::SnapshotOffset,
                    format!(
                        "install-snapshot from {peer:?} refused: a chunk at offset {offset} of \
                         snapshot {snapshot_id:?}, whose next chunk starts at {}; chunks must be \
                         sent in order",
                        r.end
                    ),
                ))
            }
        }
        _ => Err(Refusal::new(
            Rule::SnapshotOffset,
            format!(
                "install-snapshot from {peer:?} refused: a chunk at offset {offset} of snapshot \
                 {snapshot_id:?}, which is not being received; a snapshot starts at offset 0"
            ),
        )),
    }
}

/// The receipt after openraft accepted `chunk` (which passed [`check_snapshot_chunk`]): `None`
/// once the last chunk is in.
pub fn advance_receipt(
    receipt: Option<SnapshotReceipt>,
    chunk: SnapshotChunk<'_>,
) -> Option<SnapshotReceipt> {
    if chunk.done {
        return None;
    }
    let end = chunk.offset + chunk.len;
    match receipt {
        // A retry of the last chunk: the end stays where it was.
        Some(r) if r.snapshot_id == chunk.snapshot_id && r.end > end => Some(r),
        _ => Some(SnapshotReceipt {
            snapshot_id: chunk.snapshot_id.to_owned(),
            last_chunk_offset: chunk.offset,
            end,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(term: u64, index: u64) -> PlainLogId {
        PlainLogId { term, index }
    }

    /// Voters 1 ("voter-1"), 2 ("voter-2"); learner 4 ("learner-4").
    fn log_view() -> MembershipView {
        MembershipView::current(
            [(1, "voter-1"), (2, "voter-2"), (4, "learner-4")]
                .into_iter()
                .map(|(id, name)| (id, name.to_owned()))
                .collect(),
            [1, 2].into_iter().collect(),
            &BTreeMap::new(),
        )
    }

    #[test]
    fn authorization_table() {
        use RaftRpcKind::{AppendEntries as Ae, InstallSnapshot as Is, Vote as V};
        let view = log_view();
        let cases: &[(&str, RaftRpcKind, RaftNodeId, Option<Rule>)] = &[
            // A voter speaking for itself: every kind.
            ("voter-1", Ae, 1, None),
            ("voter-1", Is, 1, None),
            ("voter-2", V, 2, None),
            // A learner's certificate claiming itself: never leads, never campaigns.
            ("learner-4", Ae, 4, Some(Rule::NotAVoter)),
            ("learner-4", Is, 4, Some(Rule::NotAVoter)),
            ("learner-4", V, 4, Some(Rule::NotAVoter)),
            // A learner's certificate claiming to be a voter.
            ("learner-4", Ae, 1, Some(Rule::NameMismatch)),
            ("learner-4", V, 2, Some(Rule::NameMismatch)),
            // A voter claiming another voter.
            ("voter-2", Ae, 1, Some(Rule::NameMismatch)),
            // Ids or names outside the membership.
            ("voter-1", Ae, 9, Some(Rule::NotAMember)),
            ("stranger", V, 9, Some(Rule::NotAMember)),
            ("stranger", Ae, 1, Some(Rule::NameMismatch)),
        ];
        for &(peer, kind, claimed, want) in cases {
            let got = authorize(peer, kind, claimed, &view);
            assert_eq!(
                got.as_ref().err().map(|r| r.rule),
                want,
                "{peer} {kind:?} claiming {claimed}: {got:?}"
            );
            if let Err(refusal) = got {
                assert_eq!(refusal.code, ErrorCode::Unauthorized);
                assert!(refusal.rule.is_authorization());
                assert!(
                    refusal.message.contains(&format!("{peer:?}")),
                    "{refusal:?}"
                );
                assert!(
                    refusal.message.contains(&format!("node {claimed}")),
                    "{refusal:?}"
                );
            }
        }
    }

    #[test]
    fn the_view_falls_back_to_configured_peers_then_to_none() {
        let peers: BTreeMap<RaftNodeId, String> = [(1, "voter-1".to_owned())].into();
        let view = MembershipView::current(BTreeMap::new(), BTreeSet::new(), &peers);
        assert_eq!(view.source, ViewSource::ConfiguredPeers);
        assert_eq!(authorize("voter-1", RaftRpcKind::Vote, 1, &view), Ok(()));
        let refused = authorize("learner-4", RaftRpcKind::AppendEntries, 4, &view).unwrap_err();
        assert_eq!(refused.rule, Rule::NotAMember);
        assert!(refused.message.contains("configured initial voters"));
        // A log membership wins over the config, even one that dropped a configured peer.
        let log = MembershipView::current([(2, "voter-2".to_owned())].into(), [2].into(), &peers);
        assert_eq!(log.source, ViewSource::Log);
        assert_eq!(
            authorize("voter-1", RaftRpcKind::Vote, 1, &log)
                .unwrap_err()
                .rule,
            Rule::NotAMember
        );
        let none = MembershipView::current(BTreeMap::new(), BTreeSet::new(), &BTreeMap::new());
        assert_eq!(none.source, ViewSource::Unbootstrapped);
        assert_eq!(
            authorize("anyone", RaftRpcKind::AppendEntries, 7, &none),
            Ok(())
        );
    }

    #[test]
    fn append_entries_shape_table() {
        let many: Vec<PlainLogId> = (1..=RAFT_APPEND_ENTRIES_BATCH_MAX as u64 + 1)
            .map(|i| id(1, i))
            .collect();
        // (what, vote term, prev_log_id, entries, the rule it breaks)
        type Case = (
            &'static str,
            u64,
            Option<PlainLogId>,
            Vec<PlainLogId>,
            Option<Rule>,
        );
        let cases: Vec<Case> = vec![
            ("heartbeat", 3, Some(id(2, 10)), vec![], None),
            (
                "first batch of a log",
                1,
                None,
                vec![id(1, 0), id(1, 1)],
                None,
            ),
            (
                "follows prev",
                3,
                Some(id(2, 10)),
                vec![id(2, 11), id(3, 12)],
                None,
            ),
            (
                "gap after prev",
                3,
                Some(id(2, 10)),
                vec![id(2, 12)],
                Some(Rule::LogIdsNotConsecutive),
            ),
            (
                "gap inside",
                3,
                Some(id(2, 10)),
                vec![id(2, 11), id(2, 13)],
                Some(Rule::LogIdsNotConsecutive),
            ),
            (
                "repeat inside",
                3,
                Some(id(2, 10)),
                vec![id(2, 11), id(2, 11)],
                Some(Rule::LogIdsNotConsecutive),
            ),
            (
                "first not at 0",
                1,
                None,
                vec![id(1, 5)],
                Some(Rule::LogIdsNotConsecutive),
            ),
            (
                "index overflow",
                3,
                Some(id(2, u64::MAX)),
                vec![id(2, 0)],
                Some(Rule::LogIdsNotConsecutive),
            ),
            (
                "term goes down",
                3,
                Some(id(2, 10)),
                vec![id(3, 11), id(2, 12)],
                Some(Rule::TermsDecrease),
            ),
            (
                "below prev's term",
                3,
                Some(id(2, 10)),
                vec![id(1, 11)],
                Some(Rule::TermsDecrease),
            ),
            (
                "entry above vote",
                3,
                Some(id(2, 10)),
                vec![id(4, 11)],
                Some(Rule::TermAboveVote),
            ),
            (
                "prev above vote",
                3,
                Some(id(5, 10)),
                vec![],
                Some(Rule::TermAboveVote),
            ),
            (
                "too many",
                1,
                None,
                many.clone(),
                Some(Rule::TooManyEntries),
            ),
            (
                "as many as allowed",
                1,
                Some(id(1, 0)),
                many[..RAFT_APPEND_ENTRIES_BATCH_MAX].to_vec(),
                None,
            ),
        ];
        for (what, vote_term, prev, entries, want) in cases {
            let got = check_append_entries("voter-1", vote_term, prev, &entries);
            assert_eq!(got.as_ref().err().map(|r| r.rule), want, "{what}: {got:?}");
            if let Err(refusal) = got {
                assert!(!refusal.rule.is_authorization());
                assert_ne!(refusal.code, ErrorCode::Unauthorized);
                assert!(
                    refusal.message.contains("\"voter-1\""),
                    "{what}: {refusal:?}"
                );
            }
        }
    }

    #[test]
    fn last_log_id_terms() {
        let vote = RaftRpcKind::Vote;
        assert_eq!(check_last_log_id("v", vote, 3, None), Ok(()));
        assert_eq!(check_last_log_id("v", vote, 3, Some(id(3, 9))), Ok(()));
        let refused = check_last_log_id("v", vote, 3, Some(id(4, 9))).unwrap_err();
        assert_eq!(
            (refused.rule, refused.code),
            (Rule::TermAboveVote, ErrorCode::BadRequest)
        );
    }

    #[test]
    fn snapshot_chunk_table() {
        let receipt = SnapshotReceipt {
            snapshot_id: "s1".to_owned(),
            last_chunk_offset: 100,
            end: 200,
        };
        let limit = RAFT_SNAPSHOT_SIZE_MAX_BYTES;
        let chunk = |snapshot_id, offset, len| SnapshotChunk {
            snapshot_id,
            offset,
            len,
            done: false,
        };
        let cases: Vec<(&str, Option<&SnapshotReceipt>, SnapshotChunk, Option<Rule>)> = vec![
            ("start", None, chunk("s1", 0, 100), None),
            ("restart", Some(&receipt), chunk("s1", 0, 100), None),
            (
                "another snapshot starts",
                Some(&receipt),
                chunk("s2", 0, 100),
                None,
            ),
            ("next chunk", Some(&receipt), chunk("s1", 200, 100), None),
            (
                "retry of the last chunk",
                Some(&receipt),
                chunk("s1", 100, 100),
                None,
            ),
            (
                "skips ahead",
                Some(&receipt),
                chunk("s1", 300, 100),
                Some(Rule::SnapshotOffset),
            ),
            (
                "goes back further",
                Some(&receipt),
                chunk("s1", 50, 100),
                Some(Rule::SnapshotOffset),
            ),
            (
                "nothing in progress",
                None,
                chunk("s1", 200, 100),
                Some(Rule::SnapshotOffset),
            ),
            (
                "another snapshot mid-way",
                Some(&receipt),
                chunk("s2", 200, 1),
                Some(Rule::SnapshotOffset),
            ),
            (
                "huge offset",
                None,
                chunk("s1", 1 << 60, 1),
                Some(Rule::SnapshotTooLarge),
            ),
            (
                "offset overflow",
                Some(&receipt),
                chunk("s1", u64::MAX, 2),
                Some(Rule::SnapshotTooLarge),
            ),
            ("up to the limit", None, chunk("s1", 0, limit), None),
            (
                "past the limit",
                None,
                chunk("s1", 0, limit + 1),
                Some(Rule::SnapshotTooLarge),
            ),
        ];
        for (what, receipt, chunk, want) in cases {
            let got = check_snapshot_chunk("voter-1", receipt, chunk);
            assert_eq!(got.as_ref().err().map(|r| r.rule), want, "{what}: {got:?}");
        }
    }

    #[test]
    fn receipts_advance_with_accepted_chunks() {
        let chunk = |offset, len, done| SnapshotChunk {
            snapshot_id: "s1",
            offset,
            len,
            done,
        };
        let r = advance_receipt(None, chunk(0, 10, false));
        let r = advance_receipt(r, chunk(10, 10, false));
        let want = SnapshotReceipt {
            snapshot_id: "s1".to_owned(),
            last_chunk_offset: 10,
            end: 20,
        };
        assert_eq!(r.as_ref(), Some(&want));
        // A retry of the last chunk leaves the receipt as it was.
        let r = advance_receipt(r, chunk(10, 10, false));
        assert_eq!(r.as_ref(), Some(&want));
        assert_eq!(advance_receipt(r, chunk(20, 5, true)), None);
    }
}
