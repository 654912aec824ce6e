//! Storm behaviour of the boot plane (design decision 8): far more concurrent boots than the
//! server admits all complete — some after a refused connection or an `Overloaded` answer and
//! the agent's jittered backoff — none fail, within a bounded time. Plus the edge of each
//! admission limit.

mod boot_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use boot_support::{test_limits, Harness, Options};
use bootstorm::boot::{BootLimits, Stat};
use proto::{BootRequest, BootResponse};

/// Concurrent fetches of the storm test.
const STORM_FETCHES: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_2000_fetches_against_8_transfers_all_complete() {
    let h = Harness::start(Options {
        limits: BootLimits {
            connections_max: 256,
            transfers_max: 8,
            transfer_wait_max_ms: 5,
            retry_after_base_ms: 10,
            retry_after_max_ms: 1_000,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    let mut config = h.client_config(None);
    config.timeouts.total_ms = 60_000;
    // One agent endpoint for the whole storm, as a load tester would run it.
    let client = Arc::new(proto::client::BootClient::new(config).unwrap());
    let started = Instant::now();
    let fetches: Vec<_> = (0..STORM_FETCHES)
        .map(|i| {
            let client = client.clone();
            let node = config::demo::node_name(1 + (i as u32 % boot_support::NODES));
            tokio::spawn(async move { client.fetch(&node, None, None).await })
        })
        .collect();
    let mut retried = 0;
    for fetch in fetches {
        let outcome = fetch.await.unwrap().expect("every boot completes");
        retried += usize::from(!outcome.failed_attempts.is_empty());
    }
    let elapsed = started.elapsed();
    let stats = &h.ctx.stats;
    eprintln!(
        "storm: {STORM_FETCHES} boots in {elapsed:?}; {retried} retried; overloaded {} refused connections {}",
        stats.get(Stat::Overloaded),
        stats.get(Stat::ConnectionsRefused)
    );
    // At least one served base per boot (an attempt that timed out on the agent's side after
    // the replica answered is served again on the retry).
    assert!(stats.get(Stat::BaseStored) as usize >= STORM_FETCHES);
    assert!(
        stats.get(Stat::Overloaded) + stats.get(Stat::ConnectionsRefused) > 0,
        "the limits were reached"
    );
    assert!(retried > 0);
    assert_eq!(
        h.ctx.transfers_available(),
        8,
        "every transfer permit returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_transfer_limit_a_base_request_is_answered_overloaded_with_a_bounded_hint() {
    let h = Harness::start(Options {
        limits: BootLimits {
            transfers_max: 1,
            transfer_wait_max_ms: 20,
            retry_after_base_ms: 100,
            retry_after_max_ms: 400,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    // Take the only transfer permit, as an in-flight transfer would.
    let held = h.ctx.try_hold_transfer_permit().expect("a free permit");
    let conn = h.raw_connection(None).await;
    let base = BootRequest::FetchBase {
        node: "node-0001".into(),
        have_hash: None,
        min_seq: None,
    };
    let answer = Harness::exchange(&conn, &base).await;
    let BootResponse::Overloaded { retry_after_ms } = answer.header else {
        panic!("expected Overloaded, got {:?}", answer.header)
    };
    assert!((1..=400).contains(&retry_after_ms), "{retry_after_ms}");
    // Small answers take no transfer permit: the delta and NotModified are still served.
    let delta = Harness::exchange(
        &conn,
        &BootRequest::FetchDelta {
            node: "node-0001".into(),
            min_seq: None,
        },
    )
    .await;
    assert!(matches!(delta.header, BootResponse::Delta { .. }));
    let hash = h.journal.state().overlays["compute"].hash;
    let not_modified = Harness::exchange(
        &conn,
        &BootRequest::FetchBase {
            node: "node-0001".into(),
            have_hash: Some(hash),
            min_seq: None,
        },
    )
    .await;
    assert!(matches!(
        not_modified.header,
        BootResponse::NotModified { .. }
    ));
    // With the permit back, the same request is served.
    drop(held);
    let served = Harness::exchange(&conn, &base).await;
    assert!(matches!(served.header, BootResponse::Base { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_new_connections_are_refused_before_the_handshake() {
    let h = Harness::start(Options {
        limits: BootLimits {
            connections_max: 1,
            transfers_max: 1,
            connection_queue_max: 0,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    let first = h.raw_connection(None).await; // holds the only permit while open
    let mut config = h.client_config(None);
    config.timeouts.total_ms = 600;
    let error = proto::client::BootClient::new(config)
        .unwrap()
        .fetch("node-0001", None, None)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("refused the connection"),
        "{error}"
    );
    assert!(h.ctx.stats.get(Stat::ConnectionsRefused) >= 1);
    // Closing the first connection frees the permit.
    first.close(0u32.into(), b"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.ctx.connections_available() == 0 {
        assert!(Instant::now() < deadline, "permit returned after close");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.client(None).fetch("node-0001", None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_per_connection_request_limit_the_connection_is_closed() {
    let h = Harness::start(Options {
        limits: BootLimits {
            requests_per_connection_max: 2,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    let conn = h.raw_connection(None).await;
    let delta = BootRequest::FetchDelta {
        node: "node-0001".into(),
        min_seq: None,
    };
    for _ in 0..2 {
        Harness::exchange(&conn, &delta).await;
    }
    let third =
        net::rpc::call::<BootResponse>(&conn, delta.encode().unwrap(), boot_support::WAIT).await;
    assert!(third.is_err(), "third request on one connection: {third:?}");
    let closed = conn.closed().await;
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == 1u32.into()),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_a_queued_connection_is_admitted_when_a_permit_frees() {
    let h = Harness::start(Options {
        limits: BootLimits {
            connections_max: 1,
            transfers_max: 1,
            connection_queue_max: 1,
            connection_queue_wait_max_ms: 1_500,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    let first = h.raw_connection(None).await;
    let queued = tokio::spawn({
        let client = h.client(None);
        async move { client.fetch("node-0001", None, None).await }
    });
    // The queued handshake is waiting (not refused): free the permit, and it is served.
    let deadline = Instant::now() + boot_support::WAIT;
    while h.ctx.connections_queued() == 0 {
        assert!(
            Instant::now() < deadline,
            "the second connection reaches the queue"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.close(0u32.into(), b"");
    let outcome = tokio::time::timeout(boot_support::WAIT, queued)
        .await
        .unwrap()
        .unwrap()
        .expect("admitted from the queue");
    assert!(
        outcome.failed_attempts.is_empty(),
        "{:?}",
        outcome.failed_attempts
    );
    assert_eq!(h.ctx.stats.get(Stat::ConnectionsRefused), 0);
}
