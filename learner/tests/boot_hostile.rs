//! The boot plane under hostile traffic (threat model property 4), against a real boot server
//! on loopback: spoofed Initials get a Retry and hold no permit, one source is capped, a
//! connection without streams is closed, and a connection has a maximum lifetime — while a
//! legit agent from another address is served. Floods come from `bootstorm_loadtest::flood`
//! (real client Initials from quinn-proto, sources in 127.0.0.0/8), bounded in count and time.

mod boot_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use boot_support::{test_limits, Harness, Options, REPLICA, WAIT};
use bootstorm::admission::close_code;
use bootstorm::boot::{BootLimits, Stat};
use bootstorm_loadtest::flood;
use proto::BootRequest;

fn closed_with(error: &quinn::ConnectionError, code: u32) -> bool {
    matches!(error, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == code.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_stream_is_closed_past_the_limit_and_its_permit_returns() {
    let h = Harness::start(Options {
        limits: BootLimits {
            connections_max: 2,
            transfers_max: 2,
            connection_streamless_max_ms: 300,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    // A client that completes its handshake and opens nothing (quinn keeps it alive).
    let started = Instant::now();
    let idle = h.raw_connection(None).await;
    assert_eq!(
        h.ctx.connections_available(),
        1,
        "it holds a permit while open"
    );
    let closed = tokio::time::timeout(WAIT, idle.closed()).await.unwrap();
    let after = started.elapsed();
    assert!(closed_with(&closed, close_code::STREAMLESS), "{closed:?}");
    assert!(
        after >= Duration::from_millis(300),
        "not before the limit: {after:?}"
    );
    assert!(
        after < Duration::from_millis(2_000),
        "soon after it: {after:?}"
    );
    // A connection that was served and then idles is closed the same way.
    let used = h.raw_connection(None).await;
    let delta = BootRequest::FetchDelta {
        node: "node-0001".into(),
        min_seq: None,
    };
    Harness::exchange(&used, &delta).await;
    let closed = tokio::time::timeout(WAIT, used.closed()).await.unwrap();
    assert!(closed_with(&closed, close_code::STREAMLESS), "{closed:?}");
    assert_eq!(h.ctx.stats.get(Stat::ConnectionsStreamless), 2);
    let deadline = Instant::now() + WAIT;
    while h.ctx.connections_available() < 2 {
        assert!(Instant::now() < deadline, "both permits return");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_keeps_asking_is_closed_at_its_lifetime() {
    let limits = BootLimits {
        handshake_timeout_ms: 200,
        request_read_timeout_ms: 300,
        min_seq_wait_max_ms: 0,
        rebuild_wait_max_ms: 1,
        transfer_wait_max_ms: 1,
        response_write_timeout_ms: 300,
        connection_lifetime_max_ms: 802,
        ..test_limits()
    };
    assert_eq!(
        limits.legit_connection_max_ms(),
        802,
        "the lifetime at its edge"
    );
    let h = Harness::start(Options {
        limits,
        ..Options::default()
    })
    .await;
    let conn = h.raw_connection(None).await;
    let started = Instant::now();
    let delta = BootRequest::FetchDelta {
        node: "node-0001".into(),
        min_seq: None,
    };
    // Small requests, each well within every timeout, 250 ms apart (under the per-connection
    // request limit of 8): only the lifetime can end this connection.
    for _ in 0..6 {
        let call = net::rpc::call::<proto::BootResponse>(&conn, delta.encode().unwrap(), WAIT);
        if call.await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let closed = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    let after = started.elapsed();
    assert!(closed_with(&closed, close_code::LIFETIME), "{closed:?}");
    assert!(after < Duration::from_millis(1_500), "{after:?}");
    assert_eq!(h.ctx.stats.get(Stat::ConnectionsLifetime), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_handshakes_from_one_source_are_capped_and_another_source_is_served() {
    const PER_SOURCE: usize = 4;
    const HANDSHAKES: usize = 1_000;
    let h = Harness::start(Options {
        limits: BootLimits {
            connections_max: 16,
            transfers_max: 16,
            connections_per_source_max: PER_SOURCE,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    // One endpoint on 127.0.0.9 opens 1,000 connections at once and keeps what it gets.
    let tls = h.client_tls(None);
    let config = proto::client::quinn_client_config(&tls, &Default::default()).unwrap();
    let endpoint = proto::client::client_endpoint("127.0.0.9:0".parse().unwrap(), 4 << 20).unwrap();
    let attempts: Vec<_> = (0..HANDSHAKES)
        .map(|_| {
            let connecting = endpoint
                .connect_with(config.clone(), h.addr, REPLICA)
                .unwrap();
            tokio::spawn(async move { tokio::time::timeout(WAIT, connecting).await })
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap().expect("every attempt ends in time") {
            Ok(conn) => held.push(conn),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(held.len(), PER_SOURCE, "the cap, exactly");
    assert_eq!(refused, HANDSHAKES - PER_SOURCE);
    assert!(h.ctx.stats.get(Stat::ConnectionsRefusedPerSource) >= (HANDSHAKES - PER_SOURCE) as u64);
    assert_eq!(h.ctx.connections_available(), 16 - PER_SOURCE);
    assert_eq!(h.ctx.connection_sources(), 1);
    // Meanwhile an agent from another address boots at once, first try.
    let mut config = h.client_config(None);
    config.bind = Some("127.0.0.10:0".parse().unwrap());
    let started = Instant::now();
    let outcome = proto::client::BootClient::new(config)
        .unwrap()
        .fetch("node-0001", None, None)
        .await
        .expect("another source is served");
    assert!(
        outcome.failed_attempts.is_empty(),
        "{:?}",
        outcome.failed_attempts
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unvalidated_flood_holds_no_permit_and_a_legit_boot_is_served_quickly() {
    const CONNECTIONS: usize = 2;
    let h = Harness::start(Options {
        limits: BootLimits {
            connections_max: CONNECTIONS,
            transfers_max: CONNECTIONS,
            connection_queue_max: 0,
            ..test_limits()
        },
        ..Options::default()
    })
    .await;
    // Real client Initials (boot ALPN, fresh connection ids), from 256 loopback addresses that
    // never answer: before this shell, each took a permit for the whole handshake timeout.
    let initials = flood::craft_initials(256, h.addr, REPLICA, &h.client_tls(None)).unwrap();
    let until = Instant::now() + Duration::from_millis(2_500);
    let flood = tokio::spawn(flood::spoofed_initials(
        h.addr,
        Arc::new(initials),
        2_000,
        256,
        until,
    ));
    // For a second of flood, no permit is ever taken.
    let watch_until = Instant::now() + Duration::from_millis(1_000);
    while Instant::now() < watch_until {
        assert_eq!(
            h.ctx.connections_available(),
            CONNECTIONS,
            "a spoofed Initial holds a permit"
        );
        assert_eq!(h.ctx.connection_sources(), 0);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A legit boot during the flood: first try, quickly (it pays one Retry round trip).
    let started = Instant::now();
    let outcome = h
        .client(None)
        .fetch("node-0001", None, None)
        .await
        .expect("served");
    let took = started.elapsed();
    assert!(
        outcome.failed_attempts.is_empty(),
        "{:?}",
        outcome.failed_attempts
    );
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    let (sent, _dropped) = flood.await.unwrap().unwrap();
    assert!(sent >= 2_000, "the flood ran: {sent}");
    let retried = h.ctx.stats.get(Stat::ConnectionsRetried);
    eprintln!("flood: {sent} spoofed Initials sent, {retried} Retries; legit boot in {took:?}");
    assert!(
        retried >= sent / 2,
        "Initials answered with a Retry: {retried} of {sent}"
    );
    assert_eq!(h.ctx.stats.get(Stat::ConnectionsRefused), 0);
    assert_eq!(h.ctx.stats.get(Stat::HandshakeTimeouts), 0);
}
