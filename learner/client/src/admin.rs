//! The admin plane client library: what `bootstorm commit/rollback/log/status/members/…` and a
//! joining learner use to talk to the cluster.
//!
//! Owns: finding a replica that answers (in the configured order), following `NotLeader`
//! redirects to the leader (at most `CLIENT_LEADER_HOPS_MAX` hops), bounding the total time of
//! a request, and reporting clearly what every replica answered when nothing worked.
//! `status_all` asks every replica for its own status directly and merges the answers.
//!
//! Invariants:
//! - a write whose request may have reached a replica is never retried on another one: if the
//!   connection dies after the request was sent, the outcome is unknown and the error says to
//!   check the journal ([`ClientError::OutcomeUnknown`]); reads (`Status`, `Log`) fail over;
//! - a TLS refusal (wrong CA, no or wrong client certificate) stops at once with the server's
//!   reason: every replica would refuse the same credentials;
//! - every wait is bounded (`limits.rs`): handshake, one exchange, the whole request.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use proto::{
    AdminRequest, AdminResponse, AdminResponseKind, EncodedFrame, ReplicaRole, StatusReport,
};
use rustls::RootCertStore;
use serde::Serialize;
use tokio::time::Instant;

use crate::limits::{
    CLIENT_CONNECT_TIMEOUT_MS, CLIENT_LEADER_HOPS_MAX, CLIENT_NO_LEADER_RETRY_MS,
    CLIENT_NO_LEADER_ROUNDS_MAX, CLIENT_REQUEST_TIMEOUT_MS, CLIENT_STATUS_TIMEOUT_MS,
    CLIENT_TOTAL_TIMEOUT_MS,
};
use conf::{self, ClusterFile};
use net::quic::{self, QuicError, SocketConfig, TransportLimits};
use net::rpc::{self, RpcError};
use net::tls::{self, Identity, TlsError, TlsFiles, TlsMaterial};
use net::{CertExpiry, CertRole, Plane};

/// Why an admin request failed on the client side. Answers the server sent (including its
/// `Error` answers) are not client errors: they come back as `Ok(AdminResponse)`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("loading the admin credentials failed: {0}")]
    Credentials(#[from] TlsError),
    #[error("the cluster file names no admin_cert and admin_key: admin commands need an admin certificate (an agent-only cluster file leaves them out; use the admin's cluster file)")]
    NoAdminCredentials,
    #[error("setting up the QUIC client failed: {0}")]
    Quic(QuicError),
    #[error("the request cannot be sent: {0}")]
    Encode(#[from] proto::EncodeError),
    #[error("{replica} refused this client: {detail}")]
    Refused { replica: String, detail: String },
    #[error("no replica could be reached:\n{}", attempts.join("\n"))]
    Unreachable { attempts: Vec<String> },
    #[error("no leader could be found (election in progress or no quorum?):\n{}", attempts.join("\n"))]
    NoLeader { attempts: Vec<String> },
    #[error("gave up after {total_ms} ms:\n{}", attempts.join("\n"))]
    TimedOut {
        total_ms: u64,
        attempts: Vec<String>,
    },
    #[error("the connection to {replica} failed after the request was sent ({detail}); the outcome is unknown: check `bootstorm log` before retrying")]
    OutcomeUnknown { replica: String, detail: String },
    #[error("{replica} sent an invalid answer: {detail}")]
    Protocol { replica: String, detail: String },
}

impl ClientError {
    /// Whether the failure means the cluster could not be reached at all (CLI exit code 3),
    /// as opposed to a request that reached it and failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::NoLeader { .. }
                | ClientError::TimedOut { .. }
        )
    }
}

/// One replica's admin plane as the client dials it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The replica's name: the TLS server name (replica certificates carry it as a SAN).
    pub name: String,
    /// Its admin plane address.
    pub addr: SocketAddr,
    /// Role and boot address from the cluster file, shown for replicas that do not answer.
    pub role_hint: Option<conf::Role>,
    pub boot_addr: Option<SocketAddr>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.addr)
    }
}

/// What went wrong in one exchange with one replica.
enum Failure {
    /// Not reached, or lost before the request left: safe to try another replica.
    Unreachable(String),
    /// The TLS handshake or the server refused our credentials.
    Refused(String),
    /// Lost after the request may have been delivered.
    AfterSend(String),
    /// The answer did not decode.
    Protocol(String),
}

/// A client of the cluster's admin plane. Connections are made on demand and reused.
pub struct AdminClient {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    /// Replicas in preference order.
    targets: Vec<Target>,
    /// Open connections by address, reused across requests.
    conns: tokio::sync::Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// The replica that last accepted a write (the leader, probably): tried first for writes.
    leader: std::sync::Mutex<Option<Target>>,
}

impl AdminClient {
    /// A client for the replicas of a cluster file, presenting its admin certificate. Connects
    /// to the first replica that answers, so bad credentials or a dead cluster show up here.
    pub async fn connect(cluster: &ClusterFile) -> Result<Self, ClientError> {
        let (Some(cert), Some(key)) = (&cluster.admin_cert, &cluster.admin_key) else {
            return Err(ClientError::NoAdminCredentials);
        };
        let material = TlsMaterial::load(&TlsFiles {
            ca_cert: cluster.ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        })?;
        let targets = cluster
            .replicas
            .iter()
            .map(|replica| Target {
                name: replica.name.clone(),
                addr: replica.admin,
                role_hint: Some(replica.role),
                boot_addr: Some(replica.boot),
            })
            .collect();
        let client = AdminClient::new(&material.roots, Some(&material.identity), targets)?;
        client.connect_any().await?;
        Ok(client)
    }

    /// A client for `targets` trusting `roots` and presenting `identity` (an admin
    /// certificate, or a replica's own when it joins; `None` only to test refusals). Makes no
    /// connection yet. Must be called inside a tokio runtime.
    pub fn new(
        roots: &Arc<RootCertStore>,
        identity: Option<&Identity>,
        targets: Vec<Target>,
    ) -> Result<Self, ClientError> {
        let tls = tls::client_tls(Plane::Admin, roots, identity)?;
        let config = quic::client_config(Plane::Admin, tls, &TransportLimits::admin())
            .map_err(ClientError::Quic)?;
        let bind: SocketAddr = match targets.first().map(|t| t.addr) {
            Some(SocketAddr::V6(_)) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            _ => (Ipv4Addr::UNSPECIFIED, 0).into(),
        };
        let endpoint =
            quic::client_endpoint(bind, &SocketConfig::default()).map_err(ClientError::Quic)?;
        Ok(AdminClient {
            endpoint,
            config,
            targets,
            conns: tokio::sync::Mutex::new(HashMap::new()),
            leader: std::sync::Mutex::new(None),
        })
    }

    /// The replicas this client knows, in preference order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Opens a connection to the first replica that completes a handshake.
    async fn connect_any(&self) -> Result<(), ClientError> {
        let mut attempts = Vec::new();
        for target in &self.targets {
            match self.connection(target).await {
                Ok(_) => return Ok(()),
                Err(Failure::Refused(detail)) => {
                    return Err(ClientError::Refused {
                        replica: target.to_string(),
                        detail,
                    })
                }
                Err(Failure::Unreachable(detail))
                | Err(Failure::AfterSend(detail))
                | Err(Failure::Protocol(detail)) => attempts.push(format!("  {target}: {detail}")),
            }
        }
        Err(ClientError::Unreachable { attempts })
    }

    /// Sends `request` to the cluster and returns the answer. Writes go to the leader: the
    /// client starts with the last replica that accepted a write, then the configured order,
    /// and follows `NotLeader` redirects. Reads are answered by the first replica reached.
    pub async fn request(&self, request: AdminRequest) -> Result<AdminResponse, ClientError> {
        let frame = request.encode()?;
        let read_only = matches!(
            request,
            AdminRequest::Status | AdminRequest::StatusV2 | AdminRequest::Log { .. }
        );
        let deadline = Instant::now() + Duration::from_millis(CLIENT_TOTAL_TIMEOUT_MS);
        let mut attempts = Vec::new();
        let mut hops = 0usize;
        let mut saw_not_leader = false;
        for round in 0..=CLIENT_NO_LEADER_ROUNDS_MAX {
            if round > 0 {
                if !saw_not_leader {
                    break;
                }
                // Every replica said "not leader, leader unknown": an election is likely in
                // progress. Give it a moment, bounded by the rounds limit and the deadline.
                let pause = Duration::from_millis(CLIENT_NO_LEADER_RETRY_MS);
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            let mut queue = self.initial_queue(read_only);
            while let Some(target) = queue.pop_front() {
                let exchange = tokio::time::timeout_at(deadline, self.exchange(&target, &frame));
                let Ok(outcome) = exchange.await else {
                    return Err(ClientError::TimedOut {
                        total_ms: CLIENT_TOTAL_TIMEOUT_MS,
                        attempts,
                    });
                };
                if matches!(
                    outcome,
                    Err(Failure::Unreachable(_) | Failure::AfterSend(_))
                ) {
                    // The replica we thought led may be dead: do not start the next request
                    // there, or every later write pays its connect timeout again.
                    self.forget_leader(&target);
                }
                match outcome {
                    Err(Failure::Refused(detail)) => {
                        return Err(ClientError::Refused {
                            replica: target.to_string(),
                            detail,
                        })
                    }
                    Err(Failure::Protocol(detail)) => {
                        return Err(ClientError::Protocol {
                            replica: target.to_string(),
                            detail,
                        })
                    }
                    Err(Failure::Unreachable(detail)) => {
                        attempts.push(format!("  {target}: {detail}"));
                    }
                    Err(Failure::AfterSend(detail)) if read_only => {
                        attempts.push(format!("  {target}: {detail}"));
                    }
                    Err(Failure::AfterSend(detail)) => {
                        return Err(ClientError::OutcomeUnknown {
                            replica: target.to_string(),
                            detail,
                        })
                    }
                    Ok(AdminResponse::NotLeader { leader }) => {
                        saw_not_leader = true;
                        attempts.push(format!(
                            "  {target}: not the leader (leader: {})",
                            leader.as_deref().unwrap_or("unknown")
                        ));
                        if let Some(next) = leader.as_deref().and_then(|a| self.target_for(a)) {
                            hops += 1;
                            if hops > CLIENT_LEADER_HOPS_MAX {
                                return Err(ClientError::NoLeader { attempts });
                            }
                            queue.retain(|t| t.addr != next.addr);
                            queue.push_front(next);
                        }
                    }
                    Ok(response) => {
                        if !read_only {
                            *self.leader.lock().expect("leader lock") = Some(target);
                        }
                        return Ok(response);
                    }
                }
            }
        }
        if saw_not_leader {
            Err(ClientError::NoLeader { attempts })
        } else {
            Err(ClientError::Unreachable { attempts })
        }
    }

    fn forget_leader(&self, target: &Target) {
        let mut leader = self.leader.lock().expect("leader lock");
        if leader.as_ref().is_some_and(|l| l.addr == target.addr) {
            *leader = None;
        }
    }

    /// Sends `request` to one replica only (no failover, no redirects).
    pub async fn request_at(
        &self,
        target: &Target,
        request: &AdminRequest,
    ) -> Result<AdminResponse, ClientError> {
        let frame = request.encode()?;
        let total = Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS);
        match tokio::time::timeout(total, self.exchange(target, &frame)).await {
            Err(_) => Err(ClientError::TimedOut {
                total_ms: CLIENT_REQUEST_TIMEOUT_MS,
                attempts: vec![format!("  {target}: no answer")],
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(Failure::Refused(detail))) => Err(ClientError::Refused {
                replica: target.to_string(),
                detail,
            }),
            Ok(Err(Failure::Protocol(detail))) => Err(ClientError::Protocol {
                replica: target.to_string(),
                detail,
            }),
            Ok(Err(Failure::Unreachable(detail))) => Err(ClientError::Unreachable {
                attempts: vec![format!("  {target}: {detail}")],
            }),
            Ok(Err(Failure::AfterSend(detail))) => Err(ClientError::OutcomeUnknown {
                replica: target.to_string(),
                detail,
            }),
        }
    }

    /// Asks every replica (the configured ones, then any other member they report) for its
    /// own status, concurrently, and merges the answers. Replicas that do not answer within
    /// `CLIENT_STATUS_TIMEOUT_MS` are listed with `reachable: false` and the reason.
    pub async fn status_all(&self) -> ClusterStatus {
        let mut results = self.query_status(self.targets.clone()).await;
        // Members the cluster file does not list (learners added later) are asked too.
        let known: Vec<SocketAddr> = results.iter().map(|(t, _)| t.addr).collect();
        let mut extra = Vec::new();
        for (_, result) in &results {
            let Ok(report) = result else { continue };
            for row in &report.replicas {
                let Ok(addr) = row.admin_addr.parse::<SocketAddr>() else {
                    continue;
                };
                if !known.contains(&addr) && !extra.iter().any(|t: &Target| t.addr == addr) {
                    extra.push(Target {
                        name: row.name.clone(),
                        addr,
                        role_hint: None,
                        boot_addr: row.boot_addr.parse().ok(),
                    });
                }
            }
        }
        if !extra.is_empty() {
            results.extend(self.query_status(extra).await);
        }
        let mut status = merge_status(results);
        status.set_cert_expiry_days(unix_now_s());
        status
    }

    /// Asks each target `StatusV2`; a replica that predates it (it refuses the unknown kind as
    /// a bad request) is asked `Status`, and its row has no certificate expiry.
    async fn query_status(
        &self,
        targets: Vec<Target>,
    ) -> Vec<(Target, Result<StatusReport, String>)> {
        let frames = AdminRequest::StatusV2
            .encode()
            .and_then(|v2| Ok((v2, AdminRequest::Status.encode()?)));
        let (frame_v2, frame_v1) = match frames {
            Ok(frames) => frames,
            Err(error) => {
                return targets
                    .into_iter()
                    .map(|t| (t, Err(error.to_string())))
                    .collect()
            }
        };
        let timeout = Duration::from_millis(CLIENT_STATUS_TIMEOUT_MS);
        let queries = targets.iter().map(|target| {
            let (frame_v2, frame_v1) = (frame_v2.clone(), frame_v1.clone());
            async move {
                let ask = async {
                    match self.exchange(target, &frame_v2).await {
                        Ok(AdminResponse::Error {
                            code: proto::ErrorCode::BadRequest,
                            ..
                        }) => self.exchange(target, &frame_v1).await,
                        answer => answer,
                    }
                };
                match tokio::time::timeout(timeout, ask).await {
                    Err(_) => Err(format!("no answer within {CLIENT_STATUS_TIMEOUT_MS} ms")),
                    Ok(Ok(AdminResponse::Status(report) | AdminResponse::StatusV2(report))) => {
                        Ok(report)
                    }
                    Ok(Ok(AdminResponse::Error { code, message })) => {
                        Err(format!("{code}: {message}"))
                    }
                    Ok(Ok(other)) => Err(format!(
                        "answered {} to a status request",
                        other.kind().as_str()
                    )),
                    Ok(Err(
                        Failure::Unreachable(detail)
                        | Failure::Refused(detail)
                        | Failure::AfterSend(detail)
                        | Failure::Protocol(detail),
                    )) => Err(detail),
                }
            }
        });
        let answers = join_all(queries).await;
        targets.into_iter().zip(answers).collect()
    }

    /// Redirect targets first (the last leader for writes), then the configured order.
    fn initial_queue(&self, read_only: bool) -> VecDeque<Target> {
        let mut queue: VecDeque<Target> = self.targets.iter().cloned().collect();
        if !read_only {
            if let Some(leader) = self.leader.lock().expect("leader lock").clone() {
                queue.retain(|t| t.addr != leader.addr);
                queue.push_front(leader);
            }
        }
        queue
    }

    /// The target for an admin address named in a `NotLeader` answer: a configured replica if
    /// one has that address (its name is the TLS server name), else the address itself (its IP
    /// must then be in the leader certificate's SANs).
    fn target_for(&self, admin_addr: &str) -> Option<Target> {
        let addr: SocketAddr = admin_addr.parse().ok()?;
        if let Some(known) = self.targets.iter().find(|t| t.addr == addr) {
            return Some(known.clone());
        }
        Some(Target {
            name: addr.ip().to_string(),
            addr,
            role_hint: None,
            boot_addr: None,
        })
    }

    /// A live connection to `target`, reused or newly made.
    async fn connection(&self, target: &Target) -> Result<quinn::Connection, Failure> {
        let mut conns = self.conns.lock().await;
        if let Some(conn) = conns.get(&target.addr) {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
            conns.remove(&target.addr);
        }
        let connect = quic::connect(
            &self.endpoint,
            Plane::Admin,
            self.config.clone(),
            target.addr,
            &target.name,
        );
        let timeout = Duration::from_millis(CLIENT_CONNECT_TIMEOUT_MS);
        let conn = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                return Err(Failure::Unreachable(format!(
                "no QUIC handshake within {CLIENT_CONNECT_TIMEOUT_MS} ms (down, or wrong address?)"
            )))
            }
            Ok(Err(error)) => return Err(quic_failure(error)),
            Ok(Ok(conn)) => conn,
        };
        conns.insert(target.addr, conn.clone());
        Ok(conn)
    }

    /// One request/answer exchange with `target`.
    async fn exchange(
        &self,
        target: &Target,
        frame: &EncodedFrame,
    ) -> Result<AdminResponse, Failure> {
        let conn = self.connection(target).await?;
        let timeout = Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS);
        let deadline = Instant::now() + timeout;
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(stream) => stream,
            Err(error) => {
                self.forget(target).await;
                return Err(connection_failure(target, error, false));
            }
        };
        if let Err(error) = rpc::write_frame(&mut send, frame.clone(), timeout).await {
            self.forget(target).await;
            return Err(rpc_failure(target, error));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let answer = match rpc::read_frame::<AdminResponseKind>(&mut recv, remaining).await {
            Ok(answer) => answer,
            Err(RpcError::Decode(error)) => return Err(Failure::Protocol(error.to_string())),
            Err(error) => {
                self.forget(target).await;
                return Err(rpc_failure(target, error));
            }
        };
        AdminResponse::from_frame(&answer).map_err(|error| Failure::Protocol(error.to_string()))
    }

    async fn forget(&self, target: &Target) {
        self.conns.lock().await.remove(&target.addr);
    }
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Drop for AdminClient {
    fn drop(&mut self) {
        // Tell the servers we are gone instead of letting them wait for the idle timeout.
        self.endpoint.close(0u32.into(), b"client done");
    }
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

fn quic_failure(error: QuicError) -> Failure {
    match error {
        QuicError::RefusedByPeer { .. } | QuicError::RejectedPeer { .. } => {
            Failure::Refused(error.to_string())
        }
        other => Failure::Unreachable(other.to_string()),
    }
}

/// Classifies a lost connection: a TLS refusal or a server close with a reason is `Refused`;
/// anything else is unreachable (before send) or unknown (after).
fn connection_failure(target: &Target, error: quinn::ConnectionError, sent: bool) -> Failure {
    if let quinn::ConnectionError::ApplicationClosed(close) = &error {
        if close.error_code != 0u32.into() {
            return Failure::Refused(format!(
                "the server closed the connection: {}",
                String::from_utf8_lossy(&close.reason)
            ));
        }
    }
    match quic::explain_connection_error(Plane::Admin, target.addr, error) {
        refused @ (QuicError::RefusedByPeer { .. } | QuicError::RejectedPeer { .. }) => {
            Failure::Refused(refused.to_string())
        }
        other if sent => Failure::AfterSend(other.to_string()),
        other => Failure::Unreachable(other.to_string()),
    }
}

fn rpc_failure(target: &Target, error: RpcError) -> Failure {
    use quinn::{ReadError, ReadExactError, WriteError};
    match error {
        RpcError::Connection(e)
        | RpcError::Write(WriteError::ConnectionLost(e))
        | RpcError::Read(ReadExactError::ReadError(ReadError::ConnectionLost(e))) => {
            connection_failure(target, e, true)
        }
        RpcError::Encode(e) => Failure::Protocol(e.to_string()),
        RpcError::Decode(e) => Failure::Protocol(e.to_string()),
        other => Failure::AfterSend(other.to_string()),
    }
}

/// The cluster as `bootstorm status` shows it: one row per replica, each from that replica's
/// own answer (lag from the leader's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// Name of the leader, if any replica knows one.
    pub leader: Option<String>,
    pub leader_id: Option<u64>,
    /// The highest term any replica reported.
    pub term: u64,
    /// The leader's commit index (or the highest reported, when the leader did not answer).
    pub commit_index: u64,
    pub replicas: Vec<ReplicaView>,
}

impl ClusterStatus {
    /// Fills every row's `cert_expires_in_days` as of `now_unix_s`.
    pub fn set_cert_expiry_days(&mut self, now_unix_s: i64) {
        for row in &mut self.replicas {
            row.cert_expires_in_days = row.cert_expiry().map(|e| e.days_left(now_unix_s));
        }
    }
}

impl ReplicaView {
    /// Its certificate's expiry, when it reported one.
    pub fn cert_expiry(&self) -> Option<CertExpiry> {
        let not_after = i64::try_from(self.cert_not_after_unix_s?).ok()?;
        Some(CertExpiry {
            name: self.name.clone(),
            role: CertRole::Own(net::Role::Replica),
            not_after_unix_s: not_after,
        })
    }
}

/// The wall clock in Unix seconds (0 before 1970).
pub fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One replica in [`ClusterStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaView {
    pub name: String,
    /// Raft node id; `None` for a configured replica that did not answer and is not (yet) in
    /// the membership config.
    pub node_id: Option<u64>,
    /// `voter` or `learner`: from the membership config, else the cluster file.
    pub role: String,
    /// Whether this client got the replica's own status answer.
    pub reachable: bool,
    pub boot_addr: String,
    pub admin_addr: String,
    pub applied_index: u64,
    pub applied_seq: u64,
    /// Log entries behind the leader's commit index.
    pub lag: u64,
    /// Hex blake3 of its journal state: equal on replicas at the same applied index.
    pub state_digest: String,
    pub overlays: Vec<OverlayView>,
    /// `notAfter` of its replica certificate (Unix seconds), as it reported it itself;
    /// `None` when it did not answer, or predates the field.
    pub cert_not_after_unix_s: Option<u64>,
    /// Whole days until then (negative once expired), at the moment of the query.
    pub cert_expires_in_days: Option<i64>,
    /// Why the replica is not reachable, when it is not.
    pub error: Option<String>,
}

/// A stored overlay: vCluster and the seq it was built for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OverlayView {
    pub vcluster: String,
    pub seq: u64,
}

fn role_name(role: ReplicaRole) -> &'static str {
    match role {
        ReplicaRole::Voter => "voter",
        ReplicaRole::Learner => "learner",
    }
}

/// The stored overlays of a replica's status row, as shown.
fn overlay_views(overlays: &[(config::VClusterId, config::Seq)]) -> Vec<OverlayView> {
    overlays
        .iter()
        .map(|(vcluster, seq)| OverlayView {
            vcluster: vcluster.clone(),
            seq: *seq,
        })
        .collect()
}

/// The row of a membership member: from its own answer (`own`) when it gave one, else from
/// what the leader reports of it (`from_leader`) and why it did not answer (`error`).
fn member_view(
    member: &proto::ReplicaStatus,
    own: Option<&proto::ReplicaStatus>,
    from_leader: Option<&proto::ReplicaStatus>,
    commit_index: u64,
    error: Option<String>,
) -> ReplicaView {
    match own {
        Some(own) => ReplicaView {
            name: own.name.clone(),
            node_id: Some(member.node_id),
            role: role_name(member.role).to_owned(),
            reachable: true,
            boot_addr: member.boot_addr.clone(),
            admin_addr: member.admin_addr.clone(),
            applied_index: own.applied_index,
            applied_seq: own.applied_seq,
            lag: commit_index.saturating_sub(own.applied_index),
            state_digest: own.state_digest.clone(),
            overlays: overlay_views(&own.overlays),
            cert_not_after_unix_s: own.cert_not_after_unix_s,
            cert_expires_in_days: None,
            error: None,
        },
        None => ReplicaView {
            name: member.name.clone(),
            node_id: Some(member.node_id),
            role: role_name(member.role).to_owned(),
            reachable: false,
            boot_addr: member.boot_addr.clone(),
            admin_addr: member.admin_addr.clone(),
            applied_index: from_leader.map_or(0, |r| r.applied_index),
            applied_seq: 0,
            lag: from_leader.map_or(0, |r| r.lag),
            state_digest: String::new(),
            overlays: Vec::new(),
            cert_not_after_unix_s: None,
            cert_expires_in_days: None,
            error,
        },
    }
}

/// The row of a configured replica the membership does not list (not joined yet, or nobody
/// reachable knows the membership): what it answered itself, else the cluster file's hints.
fn unlisted_view(
    target: &Target,
    result: &Result<StatusReport, String>,
    commit_index: u64,
) -> ReplicaView {
    let (reachable, error, own) = match result {
        Ok(report) => (true, None, own_row(report)),
        Err(error) => (false, Some(error.clone()), None),
    };
    let role = match (&own, target.role_hint) {
        (Some(own), _) => role_name(own.role).to_owned(),
        (None, Some(conf::Role::Voter)) => "voter".to_owned(),
        (None, _) => "learner".to_owned(),
    };
    ReplicaView {
        name: target.name.clone(),
        node_id: own.as_ref().map(|o| o.node_id),
        role,
        reachable,
        boot_addr: target.boot_addr.map(|a| a.to_string()).unwrap_or_default(),
        admin_addr: target.addr.to_string(),
        applied_index: own.as_ref().map_or(0, |o| o.applied_index),
        applied_seq: own.as_ref().map_or(0, |o| o.applied_seq),
        lag: own
            .as_ref()
            .map_or(0, |o| commit_index.saturating_sub(o.applied_index)),
        state_digest: own
            .as_ref()
            .map(|o| o.state_digest.clone())
            .unwrap_or_default(),
        overlays: own
            .as_ref()
            .map(|o| overlay_views(&o.overlays))
            .unwrap_or_default(),
        cert_not_after_unix_s: own.as_ref().and_then(|o| o.cert_not_after_unix_s),
        cert_expires_in_days: None,
        error,
    }
}

/// A replica's row about itself in its own status answer.
fn own_row(report: &StatusReport) -> Option<proto::ReplicaStatus> {
    report
        .replicas
        .iter()
        .find(|row| row.node_id == report.replica)
        .cloned()
}

/// Merges per-replica status answers into one cluster view (pure; see [`ClusterStatus`]).
pub fn merge_status(results: Vec<(Target, Result<StatusReport, String>)>) -> ClusterStatus {
    let reports: Vec<&StatusReport> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let term = reports.iter().map(|r| r.term).max().unwrap_or(0);
    let leader_id = reports
        .iter()
        .filter(|r| r.term == term)
        .find_map(|r| r.leader);
    let leader_report = leader_id.and_then(|id| reports.iter().copied().find(|r| r.replica == id));
    // The membership as the leader sees it, else as the most advanced replica sees it.
    let membership_report = leader_report.or_else(|| {
        reports
            .iter()
            .copied()
            .max_by_key(|r| (r.term, r.commit_index))
    });
    let commit_index = match leader_report {
        Some(report) => report.commit_index,
        None => reports.iter().map(|r| r.commit_index).max().unwrap_or(0),
    };
    let mut rows: BTreeMap<(u8, u64, String), ReplicaView> = BTreeMap::new();
    let mut claimed_addrs: Vec<String> = Vec::new();
    for member in membership_report.map_or(&[][..], |r| &r.replicas) {
        let own = reports
            .iter()
            .find(|r| r.replica == member.node_id)
            .and_then(|r| own_row(r));
        let error = results
            .iter()
            .find(|(t, _)| t.addr.to_string() == member.admin_addr)
            .and_then(|(_, r)| r.as_ref().err().cloned())
            .or_else(|| {
                own.is_none()
                    .then(|| "not queried (no admin address match)".to_owned())
            });
        let from_leader =
            leader_report.and_then(|l| l.replicas.iter().find(|r| r.node_id == member.node_id));
        let view = member_view(member, own.as_ref(), from_leader, commit_index, error);
        claimed_addrs.push(member.admin_addr.clone());
        rows.insert((0, member.node_id, String::new()), view);
    }
    // Configured replicas the membership does not (yet) list, or that nobody could reach.
    for (target, result) in &results {
        if claimed_addrs.contains(&target.addr.to_string()) {
            continue;
        }
        let view = unlisted_view(target, result, commit_index);
        rows.insert((1, 0, target.addr.to_string()), view);
    }
    let leader = leader_id.and_then(|id| {
        rows.values()
            .find(|row| row.node_id == Some(id))
            .map(|row| row.name.clone())
    });
    ClusterStatus {
        leader,
        leader_id,
        term,
        commit_index,
        replicas: rows.into_values().collect(),
    }
}
