//! Black-box tests of the boot plane: the real boot server (`bootstorm::boot::serve`) on
//! 127.0.0.1:0, fed by the real state machine with the demo journal applied, talked to by the
//! real agent (`proto::client::BootClient`, `bootstorm fetch`) or by hand-made streams. Every
//! wait is bounded (`boot_support::WAIT`); no sleeps stand in for readiness.

mod boot_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::fetch::{self, FetchArgs};
use boot_support::{tree, Harness, Options, WAIT};
use bootstorm::boot::{BootLimits, OverlayRebuilder, Stat};
use config::{JournalCommand, NewEntry, Scope, StateDelta};
use proto::client::{BaseOutcome, BootClient, CheckStatus, FetchError};
use proto::{BootRequest, BootResponse, ErrorCode};

fn fetch_args(h: &Harness, node: &str, root: &std::path::Path) -> FetchArgs {
    FetchArgs {
        cluster: h.cluster_file(),
        node: node.into(),
        replica: None,
        root: Some(root.to_owned()),
        min_seq: None,
        have_hash: None,
        state_file: None,
        cert: None,
        key: None,
        timeout_ms: Some(20_000),
        json: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_applies_the_same_files_as_the_overlay_built_from_the_journal() {
    let h = Harness::start(Options::default()).await;
    let state = h.journal.state();
    for node in ["node-0001", "node-0002"] {
        let outcome = h.client(None).fetch(node, None, None).await.expect("fetch");
        let vc = &state.node_states[node].vcluster;
        let BaseOutcome::Fetched(base) = &outcome.base else {
            panic!("no have_hash sent, got NotModified")
        };
        // Byte-identical to the stored SetOverlay and to a fresh build from the journal.
        assert_eq!(base.compressed, state.overlays[vc].compressed);
        assert_eq!(base.hash, overlay::build_overlay(&state, vc).unwrap().hash);
        assert!(
            (130_000..200_000).contains(&base.compressed.len()),
            "{}",
            base.compressed.len()
        );

        let fetched_root = tempfile::tempdir().unwrap();
        overlay::apply_to_root(&base.doc, Some(&outcome.delta.doc), fetched_root.path()).unwrap();
        let expected_root = tempfile::tempdir().unwrap();
        overlay::apply_to_root(
            &overlay::overlay_doc(&state, vc).unwrap(),
            Some(&overlay::node_delta_doc(&state, node).unwrap()),
            expected_root.path(),
        )
        .unwrap();
        let fetched = tree(fetched_root.path());
        assert!(fetched.len() > 10, "the demo overlay has many files");
        assert_eq!(fetched, tree(expected_root.path()));
    }
    assert_eq!(h.ctx.stats.get(Stat::BaseStored), 2);
    assert_eq!(h.ctx.stats.get(Stat::DeltaServed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_change_in_phase_2_survives_a_reboot_with_not_modified() {
    let h = Harness::start(Options::default()).await;
    let state = h.journal.state();
    // Every 100th demo node (node-0001, node-0101, …) carries a committed manual change.
    let delta = overlay::node_delta_doc(&state, "node-0001").unwrap();
    let (manual_path, manual_file) = delta.files().iter().next().expect("a manual change");
    let root = tempfile::tempdir().unwrap();
    let args = fetch_args(&h, "node-0001", root.path());

    let first = fetch::fetch_and_apply(&args).await.expect("first boot");
    assert!(!first.not_modified);
    assert!(first.base_bytes > 100_000);
    assert!(first.files_written > 10);
    let on_disk = root.path().join(manual_path.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(&on_disk).unwrap(),
        manual_file.content.as_ref()
    );
    let first_tree = tree(root.path());

    // "Reboot": the overlay's files are lost (tmpfs root), the state file survives.
    std::fs::remove_file(&on_disk).unwrap();
    let second = fetch::fetch_and_apply(&args).await.expect("second boot");
    assert!(second.not_modified, "same overlay: answered NotModified");
    assert_eq!(second.base_bytes, 0);
    assert_eq!(second.base_hash, first.base_hash);
    assert_eq!(
        std::fs::read(&on_disk).unwrap(),
        manual_file.content.as_ref()
    );
    assert_eq!(
        tree(root.path()),
        first_tree,
        "re-applied from the saved overlay"
    );
    assert_eq!(h.ctx.stats.get(Stat::NotModified), 1);

    // A corrupt saved overlay is never applied: it is ignored and fetched in full.
    let state_file = root.path().join(fetch::STATE_FILE_IN_ROOT);
    let blob = fetch::saved_overlay_path(&state_file);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let third = fetch::fetch_and_apply(&args).await.expect("third boot");
    assert!(!third.not_modified);
    assert!(
        fetch::load_saved(&state_file).is_some(),
        "rewritten after the apply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_seq_beyond_applied_answers_not_yet_after_the_bounded_wait_then_is_served() {
    let h = Harness::start(Options::default()).await;
    let applied = h.journal.state().last_seq;
    let conn = h.raw_connection(None).await;
    let ask = BootRequest::FetchBase {
        node: "node-0003".into(),
        have_hash: None,
        min_seq: Some(applied + 1),
    };
    let started = Instant::now();
    let answer = Harness::exchange(&conn, &ask).await;
    let waited = started.elapsed();
    assert_eq!(
        answer.header,
        BootResponse::NotYet {
            applied_seq: applied
        }
    );
    assert!(
        waited >= Duration::from_millis(300),
        "waited the bound: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "and not much longer: {waited:?}"
    );

    // While a request waits, the entry arrives: it is answered from the newer state.
    let waiting = {
        let conn = conn.clone();
        let ask = ask.clone();
        tokio::spawn(async move { Harness::exchange(&conn, &ask).await })
    };
    let mut applied_seq = h.ctx.reader.applied_seq();
    h.journal.apply(vec![commit(
        Scope::Node("node-0003".into()),
        "/etc/motd",
        "hi",
    )]);
    applied_seq.wait_for(|seq| *seq > applied).await.unwrap();
    let answer = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(
        matches!(answer.header, BootResponse::Base { .. }),
        "{:?}",
        answer.header
    );

    // The agent with min_seq: served, and its delta reflects the new entry.
    let outcome = h
        .client(None)
        .fetch("node-0003", None, Some(applied + 1))
        .await
        .unwrap();
    assert_eq!(outcome.delta.seq, applied + 1);
    assert!(outcome.delta.doc.files().contains_key("/etc/motd"));
    assert_eq!(h.ctx.stats.get(Stat::NotYet), 1);
}

fn commit(scope: Scope, path: &str, content: &str) -> JournalCommand {
    let mut delta = StateDelta::default();
    delta.files.insert(
        path.into(),
        config::FileSpec {
            mode: 0o644,
            owner: None,
            content: bytes::Bytes::copy_from_slice(content.as_bytes()),
        },
    );
    JournalCommand::AppendEntry(NewEntry::commit(scope, "test", 1_800_000_000_000, delta))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_node_is_refused_with_a_message_and_no_retry() {
    let h = Harness::start(Options::default()).await;
    let started = Instant::now();
    let error = h
        .client(None)
        .fetch("node-9999", None, None)
        .await
        .unwrap_err();
    let FetchError::Refused { code, message, .. } = &error else {
        panic!("expected a refusal, got {error}")
    };
    assert_eq!(*code, ErrorCode::UnknownNode);
    assert!(
        message.contains("node-9999") && message.contains("not registered"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no failover loop on a definite no"
    );
    assert!(!error.is_unreachable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_node_certificate_cannot_fetch_another_nodes_delta() {
    let h = Harness::start(Options::default()).await;
    // node-0001's certificate asking for node-0002: refused.
    let error = h
        .client(Some("node-0001"))
        .fetch("node-0002", None, None)
        .await
        .unwrap_err();
    let FetchError::Refused { code, message, .. } = &error else {
        panic!("expected a refusal, got {error}")
    };
    assert_eq!(*code, ErrorCode::NodeNotBound);
    assert!(message.contains("node-0001"), "{message}");
    // Its own fetch works.
    h.client(Some("node-0001"))
        .fetch("node-0001", None, None)
        .await
        .unwrap();
    // Both phases are refused (the agent may ask for them at once); the delta by itself too:
    let conn = h.raw_connection(Some("node-0001")).await;
    let delta = BootRequest::FetchDelta {
        node: "node-0002".into(),
        min_seq: None,
    };
    let refused = Harness::exchange(&conn, &delta).await.header;
    assert_not_bound(&refused, "node-0001", "node-0002");
    assert!(h.ctx.stats.errors(ErrorCode::NodeNotBound) >= 2);
}

/// A request for `node`'s base overlay on `conn`.
async fn fetch_base(conn: &quinn::Connection, node: &str) -> BootResponse {
    let request = BootRequest::FetchBase {
        node: node.into(),
        have_hash: None,
        min_seq: None,
    };
    Harness::exchange(conn, &request).await.header
}

fn assert_not_bound(answer: &BootResponse, bound: &str, asked: &str) {
    let BootResponse::Error { code, message } = answer else {
        panic!("expected a refusal, got {answer:?}")
    };
    assert_eq!(*code, ErrorCode::NodeNotBound, "{message}");
    assert!(
        message.contains(bound) && message.contains(asked),
        "the refusal names both node ids: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_node_certificate_fetches_only_its_own_base_overlay() {
    let h = Harness::start(Options::default()).await;
    let state = h.journal.state();
    let vcluster = |node: &str| state.node_states[node].vcluster.clone();
    assert_ne!(
        vcluster("node-0001"),
        vcluster("node-0002"),
        "another vCluster"
    );
    assert_eq!(
        vcluster("node-0001"),
        vcluster("node-0003"),
        "the same vCluster"
    );
    let conn = h.raw_connection(Some("node-0001")).await;
    // Another vCluster's base through another node's id: refused, naming both.
    assert_not_bound(
        &fetch_base(&conn, "node-0002").await,
        "node-0001",
        "node-0002",
    );
    // The same vCluster through another node's id: refused too (the strict rule: a node names
    // only itself; see `boot::answer::not_bound`).
    assert_not_bound(
        &fetch_base(&conn, "node-0003").await,
        "node-0001",
        "node-0003",
    );
    // An id no node has: the binding answers first, before existence is looked up.
    assert_not_bound(
        &fetch_base(&conn, "node-9999").await,
        "node-0001",
        "node-9999",
    );
    // Its own: served, on the same connection (a refusal does not end it).
    let own = fetch_base(&conn, "node-0001").await;
    assert!(
        matches!(&own, BootResponse::Base { vcluster: vc, .. } if *vc == vcluster("node-0001")),
        "{own:?}"
    );
    assert_eq!(h.ctx.stats.errors(ErrorCode::NodeNotBound), 3);
    // Without a certificate (require_client_cert off): any registered node, as before; an
    // unknown one is refused as before.
    let anonymous = h.raw_connection(None).await;
    for node in ["node-0002", "node-0003"] {
        let answer = fetch_base(&anonymous, node).await;
        assert!(matches!(answer, BootResponse::Base { .. }), "{answer:?}");
    }
    let unknown = fetch_base(&anonymous, "node-9999").await;
    assert!(
        matches!(
            &unknown,
            BootResponse::Error {
                code: ErrorCode::UnknownNode,
                ..
            }
        ),
        "{unknown:?}"
    );
    // The agent's whole fetch with the other node's certificate fails as a refusal, no retry.
    let error = h
        .client(Some("node-0002"))
        .fetch("node-0001", None, None)
        .await
        .unwrap_err();
    let FetchError::Refused { code, message, .. } = &error else {
        panic!("expected a refusal, got {error}")
    };
    assert_eq!(*code, ErrorCode::NodeNotBound);
    assert!(
        message.contains("node-0002") && message.contains("node-0001"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_errors_and_the_server_keeps_serving() {
    let h = Harness::start(Options::default()).await;
    let conn = h.raw_connection(None).await;
    let valid = BootRequest::FetchDelta {
        node: "node-0001".into(),
        min_seq: None,
    }
    .encode()
    .unwrap()
    .to_bytes();

    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "garbage",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            ErrorCode::BadRequest,
        ),
        (
            "truncated",
            valid[..valid.len() - 3].to_vec(),
            ErrorCode::BadRequest,
        ),
        (
            "oversize header",
            {
                // header_len = 0xffff > FRAME_HEADER_SIZE_MAX_BYTES
                let mut bytes = valid.to_vec();
                bytes[1] = 0xff;
                bytes[2] = 0xff;
                bytes
            },
            ErrorCode::TooLarge,
        ),
        (
            "payload on a request",
            {
                let mut bytes = valid.to_vec();
                bytes[6] = 1; // payload_len = 1; boot requests carry none
                bytes.push(0);
                bytes
            },
            ErrorCode::TooLarge,
        ),
    ];
    for (what, bytes, expected) in cases {
        let answer = Harness::raw_exchange(&conn, &bytes).await;
        let BootResponse::Error { code, message } = &answer.header else {
            panic!("{what}: expected an error, got {:?}", answer.header)
        };
        assert_eq!(*code, expected, "{what}: {message}");
        assert!(message.len() > 20, "{what}: says why: {message}");
    }
    // Same connection (up to its request limit) and new connections are still served.
    h.client(None).fetch("node-0001", None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_is_cut_by_the_read_timeout_and_others_are_served() {
    let h = Harness::start(Options::default()).await;
    let stalled = h.raw_connection(None).await;
    let (mut send, _recv) = stalled.open_bi().await.unwrap();
    // One byte of a prefix, then nothing: the stream exists for the server but never completes.
    send.write_all(&[proto::FRAME_MAGIC_VERSION]).await.unwrap();
    let others = tokio::spawn({
        let client = h.client(None);
        async move { client.fetch("node-0002", None, None).await }
    });
    let closed = tokio::time::timeout(WAIT, stalled.closed())
        .await
        .expect("cut in time");
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == 2u32.into()),
        "{closed:?}"
    );
    others.await.unwrap().expect("others are served meanwhile");
    assert_eq!(h.ctx.stats.get(Stat::StreamTimeouts), 1);
    // Every permit comes back once the server has seen both connections end.
    let deadline = Instant::now() + WAIT;
    while h.ctx.connections_available() != h.ctx.limits.connections_max {
        assert!(Instant::now() < deadline, "permits returned");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_overlay_with_a_leader_that_times_out_is_built_locally_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let rebuild: Arc<dyn OverlayRebuilder> = {
        let calls = calls.clone();
        Arc::new(move |_vc: String, _seq: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), String>>()
        })
    };
    let h = Harness::start(Options {
        stored_overlays: false,
        rebuild: Some(rebuild),
        ..Options::default()
    })
    .await;
    let state = h.journal.state();
    assert!(state.overlays.is_empty());
    // Ten concurrent boots of one vCluster: one leader request, one local build.
    let fetches: Vec<_> = (0..10)
        .map(|i| {
            let client = h.client(None);
            let node = config::demo::node_name(2 * i + 1); // odd → compute
            tokio::spawn(async move { client.fetch(&node, None, None).await })
        })
        .collect();
    for fetch in fetches {
        let outcome = fetch.await.unwrap().expect("served from a local build");
        assert_eq!(
            *outcome.base.hash(),
            overlay::build_overlay(&state, "compute").unwrap().hash
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "single-flight per vCluster"
    );
    assert_eq!(h.ctx.stats.get(Stat::RebuildRequested), 1);
    assert_eq!(h.ctx.stats.get(Stat::RebuildFailures), 1);
    assert_eq!(
        h.ctx.stats.get(Stat::BaseBuiltLocally) + h.ctx.stats.get(Stat::BaseCached),
        10
    );
    assert!(h.ctx.stats.get(Stat::BaseBuiltLocally) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_overlay_rebuilt_by_the_leader_is_served_from_the_replicated_state() {
    // The "leader" applies a SetOverlay through the same state machine, as raft would.
    let journal_slot: Arc<std::sync::OnceLock<Arc<boot_support::Journal>>> = Default::default();
    let rebuild: Arc<dyn OverlayRebuilder> = {
        let slot = journal_slot.clone();
        Arc::new(move |vc: String, _seq: u64| {
            let journal = slot.get().expect("set before any boot").clone();
            async move {
                let overlay =
                    overlay::build_overlay(&journal.state(), &vc).map_err(|e| e.to_string())?;
                journal.apply(vec![JournalCommand::SetOverlay {
                    vcluster_id: vc,
                    overlay,
                }]);
                Ok(())
            }
        })
    };
    let h = Harness::start(Options {
        rebuild: Some(rebuild),
        ..Options::default()
    })
    .await;
    journal_slot.set(h.journal.clone()).ok().unwrap();
    // A vCluster commit makes the stored gpu overlay stale.
    h.journal.apply(vec![commit(
        Scope::VCluster("gpu".into()),
        "/etc/gpu-new",
        "x",
    )]);
    let state = h.journal.state();
    assert!(state.overlay_is_stale("gpu"));
    let outcome = h.client(None).fetch("node-0002", None, None).await.unwrap();
    let after = h.journal.state();
    assert!(!after.overlay_is_stale("gpu"));
    assert_eq!(*outcome.base.hash(), after.overlays["gpu"].hash);
    assert_eq!(h.ctx.stats.get(Stat::RebuildRequested), 1);
    assert_eq!(h.ctx.stats.get(Stat::BaseRebuiltByLeader), 1);
    // The next boot reads the stored one.
    h.client(None).fetch("node-0004", None, None).await.unwrap();
    assert_eq!(h.ctx.stats.get(Stat::BaseStored), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fails_over_from_a_dead_replica_to_a_live_one() {
    let h = Harness::start(Options::default()).await;
    // A port that was bound and closed: nothing answers there.
    let dead = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let mut config = h.client_config(None);
    config.timeouts.connect_ms = 300;
    config.replicas.insert(
        0,
        proto::client::Replica {
            name: "dead".into(),
            addr: dead,
            server_name: boot_support::REPLICA.into(),
            check_addr: None,
        },
    );
    let client = proto::client::BootClient::new(config).unwrap();
    let outcome = client.fetch("node-0005", None, None).await.unwrap();
    assert_eq!(outcome.replica, boot_support::REPLICA);
    assert_eq!(outcome.failed_attempts.len(), 1);
    assert_eq!(outcome.failed_attempts[0].replica, "dead");
    assert!(
        outcome.failed_attempts[0].answer.contains("no handshake"),
        "{}",
        outcome.failed_attempts[0]
    );

    // With only dead replicas the error lists every attempt and counts as unreachable.
    let mut config = h.client_config(None);
    config.replicas = vec![proto::client::Replica {
        name: "dead".into(),
        addr: dead,
        server_name: boot_support::REPLICA.into(),
        check_addr: None,
    }];
    config.timeouts = proto::client::Timeouts {
        connect_ms: 100,
        response_ms: 1_000,
        total_ms: 700,
        ..proto::client::Timeouts::default()
    };
    let error = proto::client::BootClient::new(config)
        .unwrap()
        .fetch("node-0005", None, None)
        .await
        .unwrap_err();
    assert!(error.is_unreachable(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("dead (127.0.0.1:") && text.contains("no handshake"),
        "{text}"
    );
}

#[test]
fn boot_limits_defaults_hold_together() {
    BootLimits::default().validate().unwrap();
}

/// `bootstorm fetch` as a process: `--json` keys, and the documented exit codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetch_command_prints_json_and_exits_with_the_documented_codes() {
    let h = Harness::start(Options::default()).await;
    let cluster = h.cluster_file();
    let root = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_bootstorm"))
                .args(args)
                .output()
                .expect("run bootstorm")
        })
    };
    let base = |node: &str| -> Vec<String> {
        vec![
            "fetch".into(),
            "--cluster".into(),
            cluster.display().to_string(),
            "--node".into(),
            node.into(),
            "--timeout-ms".into(),
            "3000".into(),
        ]
    };
    let mut ok_args = base("node-0001");
    ok_args.extend([
        "--root".into(),
        root.path().display().to_string(),
        "--json".into(),
    ]);
    let ok = tokio::time::timeout(WAIT, run(ok_args.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("one JSON object");
    for key in [
        "node",
        "vcluster",
        "seq",
        "base_hash",
        "base_bytes",
        "not_modified",
        "delta_bytes",
        "replica",
        "latency_ms",
    ] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["not_modified"], false);
    // The reboot: the saved overlay's hash is sent, the answer is NotModified.
    let again = tokio::time::timeout(WAIT, run(ok_args))
        .await
        .unwrap()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (json["not_modified"].clone(), json["base_bytes"].clone()),
        (true.into(), 0.into())
    );

    let unknown = tokio::time::timeout(WAIT, run(base("node-9999")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown-node"));

    h.shutdown.cancel();
    let dead = tokio::time::timeout(WAIT, run(base("node-0001")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dead.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&dead.stderr)
    );
    assert!(String::from_utf8_lossy(&dead.stderr).contains("no replica served"));

    let usage = tokio::time::timeout(WAIT, run(vec!["fetch".into()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

/// A stand-in for a replica's check plane that answers every check `Current`, with the node's
/// real delta but a signature no replica made (a spoofer on the path), or never answers.
fn fake_check_plane(
    socket: tokio::net::UdpSocket,
    delta: overlay::BuiltNodeDelta,
    seq: u64,
    answer: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
            let Ok(request) = proto::CheckRequest::decode(&buffer[..len]) else {
                continue;
            };
            if !answer {
                continue;
            }
            let forged = proto::CheckResponse::Current {
                nonce: request.nonce,
                current: proto::CheckCurrent {
                    vcluster: delta.vcluster.clone(),
                    seq,
                    delta_seq: delta.seq,
                    delta_hash: delta.hash,
                },
                delta: delta.bytes.clone(),
                scheme: 0x0403,
                signature: bytes::Bytes::from(vec![0x30u8; 70]),
            };
            let _ = socket.send_to(&forged.encode().unwrap(), from).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_lost_check_answer_is_never_used_and_the_quic_fetch_serves_the_reboot() {
    let h = Harness::start(Options::default()).await;
    let state = h.journal.state();
    let node = "node-0005";
    let delta = overlay::build_node_delta(&state, node).unwrap();
    let seq = state.overlays[&delta.vcluster].seq;
    for answer in [true, false] {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut config = h.client_config(None);
        config.replicas[0].check_addr = Some(socket.local_addr().unwrap());
        let fake = fake_check_plane(socket, delta.clone(), seq, answer);
        let client = BootClient::new(config).unwrap();
        // The first boot holds nothing: QUIC, and the replica's certificate is learned.
        let first = client.fetch(node, None, None).await.unwrap();
        assert_eq!(first.check, CheckStatus::NotTried);
        let not_modified_before = h.ctx.stats.get(Stat::NotModified);
        let reboot = client
            .fetch(node, Some(*first.base.hash()), None)
            .await
            .expect("a bad check never fails a boot");
        let CheckStatus::FellBack { answers } = &reboot.check else {
            panic!("the check must not serve: {:?}", reboot.check);
        };
        let expected = if answer {
            "signature"
        } else {
            "no check answer"
        };
        assert!(answers[0].contains(expected), "{answers:?}");
        assert!(matches!(reboot.base, BaseOutcome::NotModified { .. }));
        assert_eq!(reboot.delta.hash, delta.hash);
        assert_eq!(
            h.ctx.stats.get(Stat::NotModified),
            not_modified_before + 1,
            "served by the QUIC path"
        );
        fake.abort();
    }
}
