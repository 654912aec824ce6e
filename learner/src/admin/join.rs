//! A learner's join loop: ask the configured peers' admin planes, with this replica's own
//! certificate, to add it as a non-voting learner; follow `NotLeader`; back off and retry until
//! it is a member or the daemon shuts down.
//!
//! Invariants:
//! - the request names this replica exactly as its config does (id, name, advertised plane
//!   addresses); the server only lets a replica certificate add *itself* (name = its CN);
//! - joining is idempotent: a replica that is already a member with the same addresses is
//!   answered `Ok`, so a restart re-runs the loop harmlessly;
//! - permanent refusals (credentials, an id taken by another replica) end the loop with the
//!   server's reason instead of retrying forever; transient ones are retried with jittered
//!   exponential backoff (`JOIN_BACKOFF_*`).

use std::time::Duration;

use anyhow::{bail, Context};
use proto::{AdminRequest, AdminResponse, ErrorCode};
use tokio_util::sync::CancellationToken;

use super::limits::{JOIN_BACKOFF_INITIAL_MS, JOIN_BACKOFF_MAX_MS};
use client::admin::{AdminClient, ClientError, Target};
use conf::ReplicaConf;
use net::tls::{TlsFiles, TlsMaterial};

/// Asks the peers' admin planes (`conf.peers`, using this replica's own certificate) to add
/// this replica as a learner; follows `NotLeader`; retries with backoff until added (or already
/// a member). Returns `Ok(())` once added, and also when `shutdown` fires first (there is
/// nothing left to join for); an error only for a refusal that retrying cannot fix.
pub async fn join_as_learner(
    conf: &ReplicaConf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let request = join_request(conf)?;
    let material = TlsMaterial::load(&TlsFiles {
        ca_cert: conf.tls.ca.clone(),
        cert: conf.tls.cert.clone(),
        key: conf.tls.key.clone(),
    })
    .context("loading this replica's certificate to join the cluster")?;
    let targets: Vec<Target> = conf
        .peers
        .iter()
        .filter(|peer| peer.node_id != conf.node_id)
        .map(|peer| Target {
            name: peer.name.clone(),
            addr: peer.admin,
            role_hint: None,
            boot_addr: Some(peer.boot),
        })
        .collect();
    if targets.is_empty() {
        bail!(
            "replica {} has no peers to join through: list the voters under [[peers]] in its config",
            conf.name
        );
    }
    let client = AdminClient::new(&material.roots, Some(&material.identity), targets)
        .context("setting up the admin client to join the cluster")?;
    let mut backoff_ms = JOIN_BACKOFF_INITIAL_MS;
    for attempt in 1u64.. {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            outcome = client.request(request.clone()) => outcome,
        };
        match outcome {
            Ok(AdminResponse::Ok) => {
                tracing::info!(node_id = conf.node_id, name = %conf.name, attempt, "joined the cluster as a learner");
                return Ok(());
            }
            Ok(AdminResponse::Error { code, message })
                if matches!(
                    code,
                    ErrorCode::Unauthorized | ErrorCode::Rejected | ErrorCode::BadRequest
                ) =>
            {
                bail!(
                    "the cluster refused to add {} as a learner ({code}): {message}",
                    conf.name
                )
            }
            Err(error @ ClientError::Refused { .. }) | Err(error @ ClientError::Credentials(_)) => {
                return Err(error).context("joining the cluster as a learner");
            }
            Ok(other) => {
                tracing::warn!(attempt, answer = ?other, "join not accepted yet; retrying");
            }
            Err(error) => {
                tracing::warn!(attempt, %error, "join attempt failed; retrying");
            }
        }
        let pause = Duration::from_millis(backoff_ms + jitter_ms(backoff_ms / 2));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
        backoff_ms = (backoff_ms * 2).min(JOIN_BACKOFF_MAX_MS);
    }
    unreachable!("the attempt counter does not run out")
}

/// The `AddLearner` request describing this replica. Refuses wildcard listen addresses: the
/// membership config hands these addresses to peers and agents, so they must be dialable.
pub fn join_request(conf: &ReplicaConf) -> anyhow::Result<AdminRequest> {
    let listen = &conf.listen;
    for (plane, addr) in [
        ("raft", listen.raft),
        ("admin", listen.admin),
        ("boot", listen.boot),
    ] {
        if addr.ip().is_unspecified() || addr.port() == 0 {
            bail!(
                "listen.{plane} = {addr} cannot be advertised to the cluster: a joining learner needs a concrete IP and port for every plane"
            );
        }
    }
    Ok(AdminRequest::AddLearner {
        node_id: conf.node_id,
        name: conf.name.clone(),
        raft_addr: listen.raft.to_string(),
        boot_addr: listen.boot.to_string(),
        admin_addr: listen.admin.to_string(),
    })
}

/// A pseudo-random pause in `0..=max_ms` (clock nanoseconds; no RNG needed for jitter).
fn jitter_ms(max_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    nanos % (max_ms + 1)
}
