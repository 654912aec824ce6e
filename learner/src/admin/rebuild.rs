//! The boot plane's way to ask the leader for an overlay rebuild (design decision 5): an
//! [`OverlayRebuilder`] that sends `RebuildOverlay` to the leader's admin plane with this
//! replica's own certificate, or — when this replica leads — nudges its overlay task directly.
//!
//! Invariants:
//! - the leader is whoever this replica's raft metrics name, reached at the admin address of
//!   its membership entry (the TLS server name is its replica name, as for joining); no
//!   redirects are followed: a `NotLeader` answer is a failed request, and the boot plane's
//!   bounded wait and local build cover it;
//! - every request is bounded by `REBUILD_REQUEST_TIMEOUT_MS`, well inside the boot plane's
//!   wait, so a lost request frees its stream and connection while the boot still waits;
//! - on the leader itself nothing touches the network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config::{Seq, VClusterId};
use openraft::Raft;
use proto::{AdminRequest, AdminResponse};

use crate::boot::{BoxFuture, OverlayRebuilder};
use crate::replica::leader::OverlayNudger;
use client::admin::{AdminClient, ClientError, Target};
use net::tls::TlsMaterial;
use raftstore::TypeConfig;

/// Longest one `RebuildOverlay` request to the leader may take (handshake included). The
/// request is a few bytes and answered before any build; on a rack-to-core link that is a
/// few ms, so this bound only cuts a leader that is away or overloaded. Below the boot plane's
/// default wait, so the request never outlives the boot that made it.
pub const REBUILD_REQUEST_TIMEOUT_MS: u64 = 500;
const _: () =
    assert!(REBUILD_REQUEST_TIMEOUT_MS < conf::boot_limits::BOOT_REBUILD_WAIT_MAX_MS_DEFAULT);

/// Asks the leader for rebuilds on behalf of this replica's boot plane.
#[derive(Clone)]
pub struct LeaderRebuilder {
    inner: Arc<Inner>,
}

struct Inner {
    /// Whose metrics name the leader and its membership entry.
    raft: Raft<TypeConfig>,
    /// This replica's node id: when it leads, the request stays in process.
    node_id: u64,
    /// This replica's overlay task.
    nudger: OverlayNudger,
    /// Admin-plane client presenting this replica's certificate; connections are reused.
    client: AdminClient,
}

impl LeaderRebuilder {
    /// A rebuilder for the replica `node_id` running `raft`, authenticating with `tls` (the
    /// replica's own certificate). `peers` (the configured ones) only pick the client socket's
    /// address family; the leader is looked up per request. Must be called inside a tokio
    /// runtime.
    pub fn new(
        raft: Raft<TypeConfig>,
        node_id: u64,
        nudger: OverlayNudger,
        tls: &TlsMaterial,
        peers: Vec<Target>,
    ) -> Result<Self, ClientError> {
        let client = AdminClient::new(&tls.roots, Some(&tls.identity), peers)?;
        Ok(LeaderRebuilder {
            inner: Arc::new(Inner {
                raft,
                node_id,
                nudger,
                client,
            }),
        })
    }
}

/// Where a request goes.
enum Route {
    Local,
    Remote(Target),
}

impl Inner {
    fn route(&self) -> Result<Route, String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let Some(leader) = metrics.current_leader else {
            return Err("no leader is known (election in progress?)".to_owned());
        };
        if leader == self.node_id {
            return Ok(Route::Local);
        }
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .ok_or_else(|| format!("leader {leader} is not in this replica's membership config"))?;
        let addr: SocketAddr = node.admin_addr.parse().map_err(|e| {
            format!(
                "leader {leader}'s admin address {:?} is not host:port: {e}",
                node.admin_addr
            )
        })?;
        Ok(Route::Remote(Target {
            name: node.name.clone(),
            addr,
            role_hint: None,
            boot_addr: None,
        }))
    }

    async fn request(&self, vcluster: VClusterId, seq: Seq) -> Result<(), String> {
        let target = match self.route()? {
            Route::Local => return self.nudger.nudge(vcluster, seq).map_err(|e| e.to_string()),
            Route::Remote(target) => target,
        };
        let request = AdminRequest::RebuildOverlay { vcluster, seq };
        let timeout = Duration::from_millis(REBUILD_REQUEST_TIMEOUT_MS);
        let answer = tokio::time::timeout(timeout, self.client.request_at(&target, &request))
            .await
            .map_err(|_| format!("{target} did not answer within {REBUILD_REQUEST_TIMEOUT_MS} ms"))?
            .map_err(|e| e.to_string())?;
        match answer {
            AdminResponse::RebuildQueued { .. } => Ok(()),
            AdminResponse::NotLeader { leader } => Err(format!(
                "{target} is no longer the leader (leader: {})",
                leader.as_deref().unwrap_or("unknown")
            )),
            AdminResponse::Error { code, message } => {
                Err(format!("{target} refused ({code}): {message}"))
            }
            other => Err(format!(
                "{target} answered {} to a rebuild request",
                other.kind().as_str()
            )),
        }
    }
}

impl OverlayRebuilder for LeaderRebuilder {
    fn request_rebuild(
        &self,
        vcluster: VClusterId,
        seq: Seq,
    ) -> BoxFuture<'static, Result<(), String>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.request(vcluster, seq).await })
    }
}
