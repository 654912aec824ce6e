//! Byte fixtures: the exact encoding of representative frames of every plane, as hex dumps.
//! Any change to the wire format shows up here in review; update deliberately with
//! `UPDATE_EXPECT=1 cargo test -p bootstorm-proto` and bump `FRAME_VERSION` if an old peer
//! would misread the new bytes (see `proto::frame`).
//!
//! Reading a dump: `prefix` is magic/version, header length (u16 BE), payload length (u32 BE);
//! the header is postcard (enum tag as a varint, then fields in order; integers are varints,
//! strings and byte strings are length-prefixed, `Option` is a 0/1 tag, hashes are 32 raw bytes).

use bytes::Bytes;
use config::{NewEntry, Scope, StateDelta};
use expect_test::{expect, Expect};
use proto::{
    AdminRequest, AdminResponse, BootRequest, BootResponse, EncodedFrame, ErrorCode, RaftRequest,
    RaftResponse, RaftRpcKind,
};

use crate::support::dump;

fn check(frame: EncodedFrame, expected: Expect) {
    expected.assert_eq(&dump(&frame));
}

#[test]
fn boot_fetch_base() {
    let request = BootRequest::FetchBase {
        node: "node-0001".into(),
        have_hash: Some([0xab; 32]),
        min_seq: Some(300),
    };
    check(
        request.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 2f 00 00 00 00
        header  00 09 6e 6f 64 65 2d 30 30 30 31 01 ab ab ab ab
        header  ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab
        header  ab ab ab ab ab ab ab ab ab ab ab ab 01 ac 02
        payload (none)
    "#]],
    );
}

#[test]
fn boot_fetch_base_first_boot() {
    let request = BootRequest::FetchBase {
        node: "node-0001".into(),
        have_hash: None,
        min_seq: None,
    };
    check(
        request.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 0d 00 00 00 00
        header  00 09 6e 6f 64 65 2d 30 30 30 31 00 00
        payload (none)
    "#]],
    );
}

#[test]
fn boot_fetch_delta() {
    let request = BootRequest::FetchDelta {
        node: "node-0001".into(),
        min_seq: Some(7),
    };
    check(
        request.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 0d 00 00 00 00
        header  01 09 6e 6f 64 65 2d 30 30 30 31 01 07
        payload (none)
    "#]],
    );
}

#[test]
fn boot_base() {
    let response = BootResponse::Base {
        vcluster: "compute".into(),
        seq: 42,
        hash: [0x11; 32],
        raw_len: 524_288,
    };
    // A zstd frame starts with 28 b5 2f fd.
    let payload = Bytes::from_static(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x01, 0x02]);
    check(
        response.encode(payload).unwrap(),
        expect![[r#"
        prefix  b1 00 2d 00 00 00 08
        header  00 07 63 6f 6d 70 75 74 65 2a 11 11 11 11 11 11
        header  11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11
        header  11 11 11 11 11 11 11 11 11 11 80 80 20
        payload 8 bytes:
                28 b5 2f fd 00 58 01 02
    "#]],
    );
}

#[test]
fn boot_not_modified() {
    let response = BootResponse::NotModified {
        vcluster: "compute".into(),
        seq: 42,
        hash: [0x11; 32],
    };
    check(
        response.encode(Bytes::new()).unwrap(),
        expect![[r#"
        prefix  b1 00 2a 00 00 00 00
        header  01 07 63 6f 6d 70 75 74 65 2a 11 11 11 11 11 11
        header  11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11
        header  11 11 11 11 11 11 11 11 11 11
        payload (none)
    "#]],
    );
}

#[test]
fn boot_delta() {
    let response = BootResponse::Delta {
        node: "node-0001".into(),
        vcluster: "compute".into(),
        seq: 43,
        hash: [0x22; 32],
    };
    let payload = Bytes::from_static(b"node delta bytes");
    check(
        response.encode(payload).unwrap(),
        expect![[r#"
        prefix  b1 00 34 00 00 00 10
        header  02 09 6e 6f 64 65 2d 30 30 30 31 07 63 6f 6d 70
        header  75 74 65 2b 22 22 22 22 22 22 22 22 22 22 22 22
        header  22 22 22 22 22 22 22 22 22 22 22 22 22 22 22 22
        header  22 22 22 22
        payload 16 bytes:
                6e 6f 64 65 20 64 65 6c 74 61 20 62 79 74 65 73
    "#]],
    );
}

#[test]
fn boot_not_yet_overloaded_error() {
    let not_yet = BootResponse::NotYet { applied_seq: 41 };
    check(
        not_yet.encode(Bytes::new()).unwrap(),
        expect![[r#"
        prefix  b1 00 02 00 00 00 00
        header  03 29
        payload (none)
    "#]],
    );
    let overloaded = BootResponse::Overloaded {
        retry_after_ms: 250,
    };
    check(
        overloaded.encode(Bytes::new()).unwrap(),
        expect![[r#"
        prefix  b1 00 03 00 00 00 00
        header  04 fa 01
        payload (none)
    "#]],
    );
    let error = BootResponse::error(ErrorCode::NodeNotBound, "cert is node-0002");
    check(
        error.encode(Bytes::new()).unwrap(),
        expect![[r#"
        prefix  b1 00 14 00 00 00 00
        header  05 05 11 63 65 72 74 20 69 73 20 6e 6f 64 65 2d
        header  30 30 30 32
        payload (none)
    "#]],
    );
}

#[test]
fn admin_commit() {
    let mut delta = StateDelta::default();
    delta.settings.insert("ntp".into(), "10.0.0.1".into());
    let request = AdminRequest::Commit {
        entry: NewEntry::commit(
            Scope::VCluster("gpu".into()),
            "alice",
            1_700_000_000_000,
            delta,
        ),
    };
    check(
        request.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 01 00 00 00 28
        header  00
        payload 40 bytes:
                00 80 d0 95 ff bc 31 00 01 03 67 70 75 05 61 6c
                69 63 65 00 00 00 01 03 6e 74 70 08 31 30 2e 30
                2e 30 2e 31 00 00 00 00
    "#]],
    );
}

#[test]
fn admin_status_and_answers() {
    check(
        AdminRequest::Status.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 01 00 00 00 01
        header  03
        payload 1 bytes:
                03
    "#]],
    );
    let committed = AdminResponse::Committed {
        seq: Some(43),
        log_index: 120,
    };
    check(
        committed.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 01 00 00 00 04
        header  01
        payload 4 bytes:
                01 01 2b 78
    "#]],
    );
    let not_leader = AdminResponse::NotLeader {
        leader: Some("10.0.0.2:7003".into()),
    };
    check(
        not_leader.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 01 00 00 00 10
        header  04
        payload 16 bytes:
                04 01 0d 31 30 2e 30 2e 30 2e 32 3a 37 30 30 33
    "#]],
    );
}

#[test]
fn admin_rebuild_overlay_and_answer() {
    // New kinds take the next enum tags (8 and 6), so every older frame keeps its bytes.
    let request = AdminRequest::RebuildOverlay {
        vcluster: "gpu".into(),
        seq: 300,
    };
    check(
        request.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 01 00 00 00 07
        header  08
        payload 7 bytes:
                08 03 67 70 75 ac 02
    "#]],
    );
    let queued = AdminResponse::RebuildQueued { queued: true };
    check(
        queued.encode().unwrap(),
        expect![[r#"
        prefix  b1 00 01 00 00 00 02
        header  06
        payload 2 bytes:
                06 01
    "#]],
    );
}

#[test]
fn raft_vote_and_error() {
    let request = RaftRequest::Rpc {
        kind: RaftRpcKind::Vote,
        target: 2,
    };
    check(
        request.encode(Bytes::from_static(b"vote")).unwrap(),
        expect![[r#"
            prefix  b1 00 03 00 00 00 04
            header  00 01 02
            payload 4 bytes:
                    76 6f 74 65
        "#]],
    );
    let error = RaftResponse::error(ErrorCode::Unavailable, "shutting down");
    check(
        error.encode(Bytes::new()).unwrap(),
        expect![[r#"
        prefix  b1 00 10 00 00 00 00
        header  01 0a 0d 73 68 75 74 74 69 6e 67 20 64 6f 77 6e
        payload (none)
    "#]],
    );
}

#[test]
fn error_code_numbers_are_stable() {
    let table: String = ErrorCode::ALL
        .iter()
        .map(|code| format!("{:>2} {}\n", code.as_u16(), code))
        .collect();
    expect![[r#"
         1 bad-request
         2 too-large
         3 unsupported-version
         4 unknown-node
         5 node-not-bound
         6 unauthorized
         7 rejected
         8 not-leader
         9 timeout
        10 unavailable
        11 internal
    "#]]
    .assert_eq(&table);
}

#[test]
fn alpn_ids() {
    let ids: Vec<_> = proto::ALPN_ALL
        .iter()
        .map(|id| String::from_utf8_lossy(id).into_owned())
        .collect();
    expect![[r#"
        [
            "bootstorm-boot/1",
            "bootstorm-raft/1",
            "bootstorm-admin/1",
        ]
    "#]]
    .assert_debug_eq(&ids);
}

fn status_report(cert_not_after_unix_s: Option<u64>) -> proto::StatusReport {
    proto::StatusReport {
        replica: 1,
        leader: Some(1),
        term: 2,
        commit_index: 9,
        replicas: vec![proto::ReplicaStatus {
            node_id: 1,
            name: "v1".into(),
            role: proto::ReplicaRole::Voter,
            reachable: true,
            boot_addr: "a:1".into(),
            admin_addr: "a:2".into(),
            applied_index: 9,
            applied_seq: 3,
            lag: 0,
            state_digest: "ab".into(),
            overlays: vec![("gpu".into(), 3)],
            cert_not_after_unix_s,
        }],
    }
}

#[test]
fn admin_status_v1_bytes_stay_and_v2_adds_the_certificate_expiry() {
    // `Status` keeps its v1 bytes whatever the report holds, so clients that predate
    // `StatusV2` decode it; the expiry travels only in `StatusV2` (tags 9 and 7).
    let v1 = AdminResponse::Status(status_report(Some(1_893_456_000)));
    let v1_plain = AdminResponse::Status(status_report(None));
    assert_eq!(
        dump(&v1.encode().unwrap()),
        dump(&v1_plain.encode().unwrap())
    );
    check(
        v1.encode().unwrap(),
        expect![[r#"
            prefix  b1 00 01 00 00 00 21
            header  02
            payload 33 bytes:
                    02 01 01 01 02 09 01 01 02 76 31 00 01 03 61 3a
                    31 03 61 3a 32 09 03 00 02 61 62 01 03 67 70 75
                    03
        "#]],
    );
    let decoded = AdminResponse::decode(v1.encode().unwrap().to_bytes()).unwrap();
    assert_eq!(decoded, v1_plain, "a v1 answer decodes with no expiry");
    check(
        AdminRequest::StatusV2.encode().unwrap(),
        expect![[r#"
            prefix  b1 00 01 00 00 00 01
            header  09
            payload 1 bytes:
                    09
        "#]],
    );
    check(
        AdminResponse::StatusV2(status_report(Some(1_893_456_000)))
            .encode()
            .unwrap(),
        expect![[r#"
            prefix  b1 00 01 00 00 00 27
            header  07
            payload 39 bytes:
                    07 01 01 01 02 09 01 01 02 76 31 00 01 03 61 3a
                    31 03 61 3a 32 09 03 00 02 61 62 01 03 67 70 75
                    03 01 80 b1 ef 86 07
        "#]],
    );
}
