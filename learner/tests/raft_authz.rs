//! The raft plane from the attacker's side (threat model: a compromised rack replica must not
//! vote, lead or append). A real cluster on loopback — three voters, one learner, real QUIC and
//! certificates of one CA — is sent forged raft RPCs over the project's own framing
//! (`proto::raft` frames through `net::rpc`), with the learner's replica certificate, with a
//! certificate of a replica that is no member, and with the leader's own certificate for
//! payloads that are malformed rather than unauthorized. Each must be refused with a clear
//! code before openraft sees it: the leader stays leader in the same term, no log moves,
//! nothing is committed, and a commit afterwards reaches every replica.

mod cluster_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use cluster_support::*;
use conf::{Peer, Role};
use net::{quic, tls, Plane, ServerLimits, SocketConfig, TlsFiles, TlsMaterial};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, SnapshotMeta, StoredMembership, Vote};
use proto::raft::{RaftRequest, RaftResponse, RaftRpcKind};
use proto::ErrorCode;
use raftstore::types::LogId;
use raftstore::TypeConfig;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use bootstorm::replica::{Replica, ReplicaOptions};

/// Bound on one forged RPC (connect + answer).
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// A raft-plane client holding one replica certificate of the cluster CA.
struct Attacker {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl Attacker {
    fn new(certs: &net::ClusterCertFiles, name: &str) -> Attacker {
        let pair = &certs.replicas[name];
        let material = TlsMaterial::load(&TlsFiles {
            ca_cert: certs.ca_cert.clone(),
            cert: pair.cert.clone(),
            key: pair.key.clone(),
        })
        .expect("load the attacker's certificate");
        let limits = ServerLimits::for_plane(Plane::Raft);
        let tls = tls::raft_client_tls(&material.roots, &material.identity).expect("raft tls");
        let config = quic::client_config(Plane::Raft, tls, &limits.transport).expect("config");
        let endpoint =
            quic::client_endpoint(loopback(0), &SocketConfig::default()).expect("client endpoint");
        Attacker { endpoint, config }
    }

    /// Sends `request` as a `kind` RPC to `to` and returns the answer's header.
    async fn send<Req: Serialize>(
        &self,
        to: &Replica,
        kind: RaftRpcKind,
        request: &Req,
    ) -> RaftResponse {
        let addr: SocketAddr = to.raft_addr;
        let exchange = async {
            let conn = quic::connect(
                &self.endpoint,
                Plane::Raft,
                self.config.clone(),
                addr,
                &to.name,
            )
            .await
            .expect("the raft plane accepts any replica certificate of the CA");
            let payload = Bytes::from(postcard::to_stdvec(request).expect("encode"));
            let frame = RaftRequest::Rpc {
                kind,
                target: to.node_id,
            }
            .encode(payload)
            .expect("frame");
            let answer = net::rpc::call::<RaftResponse>(&conn, frame, RPC_TIMEOUT)
                .await
                .expect("an answer");
            conn.close(0u32.into(), b"done");
            answer.header
        };
        tokio::time::timeout(RPC_TIMEOUT * 2, exchange)
            .await
            .expect("answered in time")
    }
}

/// What must not move under attack, per replica: term, leader, last log index, committed index.
type Observed = Vec<(u64, u64, Option<u64>, Option<u64>, Option<u64>)>;

fn observe(replicas: &[&Replica]) -> Observed {
    replicas
        .iter()
        .map(|r| {
            let m = r.raft.metrics().borrow().clone();
            (
                r.node_id,
                m.current_term,
                m.current_leader,
                m.last_log_index,
                m.last_applied.map(|id| id.index),
            )
        })
        .collect()
}

/// Asserts `answer` is an `Error` with `code` whose message contains every one of `needles`.
fn assert_refused(what: &str, answer: RaftResponse, code: ErrorCode, needles: &[&str]) {
    match answer {
        RaftResponse::Error { code: got, message } => {
            assert_eq!(got, code, "{what}: refused with the wrong code: {message}");
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{what}: the refusal should mention {needle:?}: {message}"
                );
            }
            println!("{what}: {code:?}: {message}");
        }
        other => panic!("{what}: was not refused: {other:?}"),
    }
}

/// Sum of `name` over every label set of `replica` (the process's recorder).
fn counter_sum(name: &str, replica: &str) -> u64 {
    let text = bootstorm::metrics::prometheus().expect("recorder").render();
    let label = format!("replica=\"{replica}\"");
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn log_id(term: u64, leader: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, leader), index)
}

/// A forged commit at `log_id`.
fn forged_entry(log_id: LogId) -> Entry<TypeConfig> {
    let command = global_commits(1, 666).remove(0);
    Entry {
        log_id,
        payload: EntryPayload::Normal(command.into()),
    }
}

fn append_entries(
    vote: Vote<u64>,
    prev: Option<LogId>,
    entries: Vec<Entry<TypeConfig>>,
) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote,
        prev_log_id: prev,
        leader_commit: entries.last().map(|e| e.log_id),
        entries,
    }
}

fn snapshot_chunk(
    vote: Vote<u64>,
    last: Option<LogId>,
    offset: u64,
    done: bool,
) -> InstallSnapshotRequest<TypeConfig> {
    InstallSnapshotRequest {
        vote,
        meta: SnapshotMeta {
            last_log_id: last,
            last_membership: StoredMembership::default(),
            snapshot_id: "forged-snapshot".to_owned(),
        },
        offset,
        data: vec![0xAB; 1024],
        done,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_raft_rpcs_are_refused_and_the_cluster_keeps_serving() {
    bootstorm::metrics::prometheus().expect("install the recorder before the replicas start");
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(
        dir.path(),
        &[
            "voter-1",
            "voter-2",
            "voter-3",
            "learner-4",
            "learner-5",
            "stranger-9",
        ],
    );
    let voters = start_voters(dir.path(), &certs, 3, ReplicaOptions::default()).await;
    let refs: Vec<&Replica> = voters.iter().collect();
    let leader_id = wait_leader(&refs, None).await;
    let leader = by_id(&voters, leader_id);
    let follower = voters.iter().find(|r| r.node_id != leader_id).unwrap();

    // learner-4: a member (non-voting), its certificate is the attacker's.
    let learner_conf = replica_conf(
        dir.path(),
        &certs,
        4,
        "learner-4",
        Role::Learner,
        any_ports(),
        Vec::new(),
    );
    let learner = Replica::start_with(
        learner_conf,
        ReplicaOptions::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    leader
        .raft
        .add_learner(4, node(&learner), true)
        .await
        .expect("add learner");
    // learner-5: configured with the voters as its peers but not added yet, so its log holds
    // no membership: it judges requests by its configured initial voters.
    let peers: Vec<Peer> = voters
        .iter()
        .map(|v| Peer {
            node_id: v.node_id,
            name: v.name.clone(),
            raft: v.raft_addr,
            admin: v.conf.listen.admin,
            boot: v.conf.listen.boot,
        })
        .collect();
    let fresh_conf = replica_conf(
        dir.path(),
        &certs,
        5,
        "learner-5",
        Role::Learner,
        any_ports(),
        peers,
    );
    let fresh = Replica::start_with(
        fresh_conf,
        ReplicaOptions::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    let mut everyone: Vec<&Replica> = voters.iter().collect();
    everyone.push(&learner);
    let converged = wait_converged(&everyone).await;
    // The state machines have applied `converged`; openraft's metrics report it a moment
    // later. Snapshot the raft state only once they do, or catch-up looks like an attack.
    for replica in &everyone {
        replica
            .raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(converged), "metrics report the converged index")
            .await
            .expect("raft metrics catch up with the applied state");
    }
    let before = observe(&everyone);
    let term = leader.raft.metrics().borrow().current_term;
    let last = leader.raft.metrics().borrow().last_applied;
    let next = converged + 1;
    let real_vote = Vote::new_committed(term, leader_id);
    let refused_before: u64 = everyone
        .iter()
        .map(|r| counter_sum("bootstorm_raft_rpcs_unauthorized_total", &r.name))
        .sum();

    let learner_cert = Attacker::new(&certs, "learner-4");
    let stranger = Attacker::new(&certs, "stranger-9");
    let leader_cert = Attacker::new(&certs, &leader.name);
    let ae = RaftRpcKind::AppendEntries;
    let is = RaftRpcKind::InstallSnapshot;
    let vote = RaftRpcKind::Vote;

    // (a) AppendEntries claiming leadership with a higher term, as itself and as the leader.
    let forged = |claimed: u64| {
        append_entries(
            Vote::new_committed(term + 1, claimed),
            last,
            vec![forged_entry(log_id(term + 1, claimed, next))],
        )
    };
    for target in [follower, leader, &learner] {
        let answer = learner_cert.send(target, ae, &forged(4)).await;
        assert_refused(
            "(a) learner leads as itself",
            answer,
            ErrorCode::Unauthorized,
            &["\"learner-4\"", "node 4", "only a voter"],
        );
    }
    let answer = learner_cert.send(follower, ae, &forged(leader_id)).await;
    assert_refused(
        "(a) learner claims the leader's id",
        answer,
        ErrorCode::Unauthorized,
        &[
            "\"learner-4\"",
            &format!("node {leader_id}"),
            &format!("{:?}", leader.name),
        ],
    );

    // (b) Vote with term + 100 to the leader, as itself and as another voter.
    let candidate = |claimed: u64| VoteRequest {
        vote: Vote::new(term + 100, claimed),
        last_log_id: last,
    };
    let answer = learner_cert.send(leader, vote, &candidate(4)).await;
    assert_refused(
        "(b) learner campaigns",
        answer,
        ErrorCode::Unauthorized,
        &["\"learner-4\"", "only a voter may ask for a vote"],
    );
    let answer = learner_cert
        .send(leader, vote, &candidate(follower.node_id))
        .await;
    assert_refused(
        "(b) learner campaigns as a voter",
        answer,
        ErrorCode::Unauthorized,
        &["\"learner-4\"", &follower.name],
    );

    // (c) InstallSnapshot with a higher term.
    let answer = learner_cert
        .send(
            follower,
            is,
            &snapshot_chunk(Vote::new_committed(term + 1, 4), last, 0, true),
        )
        .await;
    assert_refused(
        "(c) learner sends a snapshot",
        answer,
        ErrorCode::Unauthorized,
        &["\"learner-4\"", "only a voter"],
    );

    // (d) AppendEntries with a gap in its log ids: refused for the learner's certificate, and
    // refused as malformed even with the leader's own (the log store used to panic on it).
    let gapped = |claimed: u64, vote: Vote<u64>| {
        let term = vote.leader_id.term;
        append_entries(
            vote,
            last,
            vec![
                forged_entry(log_id(term, claimed, next)),
                forged_entry(log_id(term, claimed, next + 2)),
            ],
        )
    };
    let answer = learner_cert
        .send(follower, ae, &gapped(4, Vote::new_committed(term + 1, 4)))
        .await;
    assert_refused(
        "(d) learner sends a gap",
        answer,
        ErrorCode::Unauthorized,
        &["\"learner-4\""],
    );
    let answer = leader_cert
        .send(follower, ae, &gapped(leader_id, real_vote))
        .await;
    assert_refused(
        "(d) a gap under the leader's certificate",
        answer,
        ErrorCode::BadRequest,
        &["consecutive", &format!("{}", next + 2)],
    );
    let answer = leader_cert
        .send(
            follower,
            ae,
            &append_entries(
                real_vote,
                last,
                vec![forged_entry(log_id(term + 1, leader_id, next))],
            ),
        )
        .await;
    assert_refused(
        "(d) an entry from a future term",
        answer,
        ErrorCode::BadRequest,
        &["above the leader's term"],
    );

    // (e) A snapshot chunk at a huge offset, and one that does not continue any transfer.
    let answer = learner_cert
        .send(
            follower,
            is,
            &snapshot_chunk(Vote::new_committed(term + 1, 4), last, 1 << 40, false),
        )
        .await;
    assert_refused(
        "(e) learner sends a huge offset",
        answer,
        ErrorCode::Unauthorized,
        &["\"learner-4\""],
    );
    let answer = leader_cert
        .send(
            follower,
            is,
            &snapshot_chunk(real_vote, last, 1 << 40, false),
        )
        .await;
    assert_refused(
        "(e) a huge offset under the leader's certificate",
        answer,
        ErrorCode::TooLarge,
        &["RAFT_SNAPSHOT_SIZE_MAX_BYTES"],
    );
    let answer = leader_cert
        .send(follower, is, &snapshot_chunk(real_vote, last, 4096, false))
        .await;
    assert_refused(
        "(e) a chunk out of order",
        answer,
        ErrorCode::BadRequest,
        &["starts at offset 0"],
    );

    // (f) A replica certificate whose name is no member, as itself and as a member.
    let answer = stranger.send(follower, ae, &forged(9)).await;
    assert_refused(
        "(f) stranger leads",
        answer,
        ErrorCode::Unauthorized,
        &[
            "\"stranger-9\"",
            "node 9",
            "not in this replica's current membership",
        ],
    );
    let answer = stranger
        .send(leader, vote, &candidate(follower.node_id))
        .await;
    assert_refused(
        "(f) stranger campaigns as a voter",
        answer,
        ErrorCode::Unauthorized,
        &["\"stranger-9\""],
    );

    // (g) A replica that has no membership yet judges by its configured voters.
    let answer = learner_cert
        .send(
            &fresh,
            ae,
            &append_entries(
                Vote::new_committed(term + 1, 4),
                None,
                vec![forged_entry(log_id(term + 1, 4, 0))],
            ),
        )
        .await;
    assert_refused(
        "(g) learner leads a fresh replica",
        answer,
        ErrorCode::Unauthorized,
        &["\"learner-4\"", "configured initial voters"],
    );
    assert_eq!(
        fresh.raft.metrics().borrow().last_log_index,
        None,
        "nothing reached the fresh replica's log"
    );

    // Nothing moved: same leader, same term, no entry appended or committed anywhere.
    assert_eq!(observe(&everyone), before, "the attacks changed raft state");
    let refused_after: u64 = everyone
        .iter()
        .map(|r| counter_sum("bootstorm_raft_rpcs_unauthorized_total", &r.name))
        .sum();
    assert!(
        refused_after >= refused_before + 11,
        "unauthorized RPCs are counted: {refused_before} → {refused_after}"
    );
    assert!(counter_sum("bootstorm_raft_rpcs_malformed_total", &follower.name) >= 4);

    // And the cluster keeps serving: a commit reaches every replica.
    propose_all(&leader.raft, global_commits(1, 1)).await;
    let after = wait_converged(&everyone).await;
    assert!(after > converged);
    assert_eq!(wait_leader(&refs, None).await, leader_id);
    assert_eq!(leader.raft.metrics().borrow().current_term, term);
    assert_identical(&everyone);
    let journal = format!("{:?}", learner.reader.read().journal);
    assert!(
        !journal.contains("value-666-"),
        "a forged entry reached the learner's state"
    );

    fresh.shutdown().await;
    learner.shutdown().await;
    for voter in voters {
        voter.shutdown().await;
    }
}
