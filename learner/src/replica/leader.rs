//! Work only the leader does, as tasks every replica runs and that sleep unless this replica
//! leads: rebuilding stale overlays and proposing them through Raft (design decision 5). The
//! other leader task, TTL expiry with the leader's clock (design decision 4), is `ttl.rs`; it
//! shares `is_leader` and `propose` from here.
//!
//! The overlay task has two inputs: the applied journal (a change that makes a vCluster's
//! overlay stale) and *rebuild requests* ([`OverlayNudger`]): a replica whose boot plane met
//! a missing or stale overlay asks for it (through the admin plane's `RebuildOverlay`, or
//! directly when the leader's own boot plane asks).
//!
//! Invariants:
//! - overlays enter the state machine only as `SetOverlay` commands through Raft, so every
//!   replica holds the bytes the leader built (same blake3); no replica stores a local build;
//! - builds coalesce: at most one build-and-propose round runs at a time, it always builds from
//!   the newest applied state, and unasked a vCluster is rebuilt at most once per
//!   `OVERLAY_REBUILD_INTERVAL_MIN_MS` (`RebuildPacer`), so a stream of N commits costs a few
//!   rebuilds, not N, while the first change after a quiet spell is built at once. The watch
//!   channels and the request queue are the dirty flag: a change or request during a round
//!   triggers another pass;
//! - a rebuild request may pull a held vCluster's build ahead, but a vCluster is built at most
//!   once per `OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS` however many requests arrive, so a
//!   storm of requests for one vCluster (every rack's learner asking at once) costs one build
//!   — requests queued during it find the overlay current (or the vCluster just built) and are
//!   dropped. A request never builds a vCluster
//!   that is not stale on the leader; one for a seq the leader has not applied yet waits
//!   (at most `OVERLAY_REQUESTS_PENDING_MAX` of them) until it has;
//! - requests are advisory: the queue is bounded (`OVERLAY_REQUEST_QUEUE_MAX`) and a request
//!   that does not fit is refused at once (the asker falls back to its bounded wait and a
//!   local build); requests and holds are forgotten when leadership is lost;
//! - `OverlayOutdated` (a newer overlay won a race) and `NothingExpired` (the entry expired
//!   meanwhile, or the clock check raced a commit) are outcomes, not failures;
//! - a failed build is not retried for the same seq (it would fail again), not even on
//!   request; the next change affecting the vCluster retries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use config::{BootOverlay, JournalCommand, JournalState, Rejected, Seq, VClusterId};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, ServerState};
use tokio_util::sync::CancellationToken;

use crate::metrics::ReplicaMetrics;
use raftstore::{ReplicaReader, TypeConfig};

/// Author of the commands the leader proposes on its own.
pub const SYSTEM_AUTHOR: &str = "bootstorm";

/// Fewest milliseconds between two rebuilds of one vCluster's overlay that nobody asked for.
/// A change after a quiet spell is built at once; changes arriving faster are folded into one
/// build per interval. Why: every rebuild is a ~150 KB `SetOverlay` that each voter appends,
/// fsyncs and replicates, and the commits behind it on the one-AppendEntries-in-flight
/// pipeline wait. Measured, 1 client, one commit in ten touching a vCluster (3,000 commits,
/// paired runs): commit p99 2.8–3.0 ms at 100 ms, 2.25–2.28 ms at 1 s — what it is with no
/// `SetOverlay` at all (2.12 ms). Boots never wait for this pace: a boot that finds the
/// stored overlay stale asks for a rebuild, paced by `OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS`.
pub const OVERLAY_REBUILD_INTERVAL_MIN_MS: u64 = 1_000;

/// Fewest milliseconds between two rebuilds of one vCluster when replicas ask for it (their
/// boots met a stale overlay): far below `BOOT_REBUILD_WAIT_MAX_MS_DEFAULT`, the longest a
/// boot waits for the leader's build before building locally.
pub const OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS: u64 = 100;
const _: () = assert!(
    OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS * 4
        <= conf::boot_limits::BOOT_REBUILD_WAIT_MAX_MS_DEFAULT
);
const _: () = assert!(OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS <= OVERLAY_REBUILD_INTERVAL_MIN_MS);

/// Rebuild requests queued for the overlay task. Requests for one vCluster collapse into one
/// pending entry once the task drains the queue (each pass drains it whole), so this only has
/// to absorb the burst of one pass: a rack-wide boot storm sends one request per replica and
/// vCluster. Beyond it a request is refused as busy and its asker relies on its bounded wait.
pub const OVERLAY_REQUEST_QUEUE_MAX: usize = 1_024;

/// Rebuild requests the overlay task keeps for a seq it has not applied yet (a replica can
/// learn of a commit before the leader has applied it). More are dropped: the leader's own
/// rebuild after applying serves them anyway, within the pacing interval.
pub const OVERLAY_REQUESTS_PENDING_MAX: usize = 1_024;

/// Longest the overlay task waits for one `SetOverlay` to commit and apply. On timeout the
/// outcome is unknown; the task re-reads the state and proposes again if still stale.
pub const OVERLAY_PROPOSE_TIMEOUT_MS: u64 = 10_000;

/// Pause before retrying a failed `SetOverlay` proposal of a vCluster.
pub const OVERLAY_RETRY_AFTER_FAILURE_MS: u64 = 200;

pub(super) fn is_leader(raft: &Raft<TypeConfig>) -> bool {
    raft.metrics().borrow().state == ServerState::Leader
}

/// Waits until this replica leads. `false` if `shutdown` came first or raft stopped.
async fn wait_for_leadership(raft: &Raft<TypeConfig>, shutdown: &CancellationToken) -> bool {
    let mut metrics = raft.metrics();
    tokio::select! {
        _ = shutdown.cancelled() => false,
        led = metrics.wait_for(|m| m.state == ServerState::Leader) => led.is_ok(),
    }
}

/// The earlier of a pending wake-up (if any) and `at`.
fn earliest(due: Option<Instant>, at: Instant) -> Instant {
    due.map_or(at, |due| due.min(at))
}

/// vClusters whose overlay is stale, each with the seq a build now would carry.
fn stale_vclusters(journal: &JournalState) -> Vec<(VClusterId, Seq)> {
    journal
        .policies
        .keys()
        .filter(|vc| journal.overlay_is_stale(vc))
        .map(|vc| (vc.clone(), journal.latest_seq_affecting(vc)))
        .collect()
}

/// What proposing a leader command came to.
pub(super) enum Proposed {
    /// Applied (or refused in a benign way).
    Done,
    /// This replica is no longer the leader.
    NotLeader,
    /// Raft stopped.
    Stopped,
    /// Timed out or failed otherwise; outcome unknown.
    Failed(String),
}

pub(super) async fn propose(
    raft: &Raft<TypeConfig>,
    command: JournalCommand,
    timeout_ms: u64,
    benign: impl Fn(&Rejected) -> bool,
) -> Proposed {
    let write = raft.client_write(command.into());
    match tokio::time::timeout(Duration::from_millis(timeout_ms), write).await {
        Err(_) => Proposed::Failed(format!("not applied within {timeout_ms} ms")),
        Ok(Ok(response)) => match response.data.single() {
            Ok(_) => Proposed::Done,
            Err(refusal) if refusal.rejected.as_ref().is_some_and(&benign) => Proposed::Done,
            Err(refusal) => Proposed::Failed(format!("refused: {}", refusal.message)),
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Proposed::NotLeader,
        Ok(Err(RaftError::APIError(error))) => Proposed::Failed(error.to_string()),
        Ok(Err(RaftError::Fatal(_))) => Proposed::Stopped,
    }
}

/// When each vCluster may next be rebuilt: a pure schedule, so the pacing is testable
/// without a cluster. Invariants: a vCluster held until `t` is not rebuilt before `t` unless
/// asked for ([`RebuildPacer::request_due`]), and never twice within the request interval it
/// was held with.
#[derive(Debug, Default)]
pub struct RebuildPacer {
    held: BTreeMap<String, Hold>,
}

#[derive(Clone, Copy, Debug)]
struct Hold {
    until: Instant,
    /// From when a request may pull a build ahead of `until`.
    requests_from: Instant,
}

impl RebuildPacer {
    /// `None` if `vcluster` may be rebuilt at `now`, else the instant it may.
    pub fn due(&self, vcluster: &str, now: Instant) -> Option<Instant> {
        self.held
            .get(vcluster)
            .map(|hold| hold.until)
            .filter(|until| *until > now)
    }

    /// Holds `vcluster` for `hold` from `now` (after a build: the rebuild interval; after a
    /// failed proposal: the retry pause); requests may pull a build ahead once
    /// `request_interval` (at most `hold`) has passed.
    pub fn hold(
        &mut self,
        vcluster: &str,
        now: Instant,
        hold: Duration,
        request_interval: Duration,
    ) {
        let held = Hold {
            until: now + hold,
            requests_from: now + request_interval.min(hold),
        };
        self.held.insert(vcluster.to_owned(), held);
    }

    /// When a rebuild request may build `vcluster`: `None` if now (not held, or held but past
    /// its request interval), else the instant it may. The build that follows sets a new hold,
    /// so however many requests arrive, a vCluster is built at most once per request interval.
    pub fn request_due(&self, vcluster: &str, now: Instant) -> Option<Instant> {
        match self.held.get(vcluster) {
            // `requests_from` ≤ `until`: before it, the hold is in force.
            Some(hold) if now < hold.requests_from => Some(hold.requests_from),
            _ => None,
        }
    }
}

/// One rebuild request: the asker holds no overlay of `vcluster` at `seq` or newer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildRequest {
    pub vcluster: VClusterId,
    pub seq: Seq,
}

/// Why a rebuild request was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NudgeError {
    #[error("the leader's overlay task has {OVERLAY_REQUEST_QUEUE_MAX} rebuild requests queued; try again shortly")]
    Busy,
    #[error("the overlay task has stopped (the replica is shutting down)")]
    Stopped,
}

/// The sending side of the overlay task's request queue: what the admin plane (requests from
/// other replicas) and the leader's own boot plane use to ask for a rebuild now. Cheap to
/// clone; never blocks.
#[derive(Clone, Debug)]
pub struct OverlayNudger {
    tx: mpsc::Sender<RebuildRequest>,
}

/// The receiving side, handed to [`run_overlay_task`].
#[derive(Debug)]
pub struct OverlayRequests {
    rx: mpsc::Receiver<RebuildRequest>,
}

/// A bounded (`OVERLAY_REQUEST_QUEUE_MAX`) request queue into the overlay task.
pub fn overlay_request_queue() -> (OverlayNudger, OverlayRequests) {
    let (tx, rx) = mpsc::channel(OVERLAY_REQUEST_QUEUE_MAX);
    (OverlayNudger { tx }, OverlayRequests { rx })
}

impl OverlayNudger {
    /// Queues a request to rebuild `vcluster` (stale below `seq`) without waiting. Whether it
    /// leads to a build is the task's decision (module invariants).
    pub fn nudge(&self, vcluster: VClusterId, seq: Seq) -> Result<(), NudgeError> {
        self.tx
            .try_send(RebuildRequest { vcluster, seq })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => NudgeError::Busy,
                mpsc::error::TrySendError::Closed(_) => NudgeError::Stopped,
            })
    }
}

/// Requests the overlay task holds between passes: vCluster → newest seq asked for.
#[derive(Debug, Default)]
struct PendingRequests(BTreeMap<VClusterId, Seq>);

impl PendingRequests {
    fn add(&mut self, request: RebuildRequest) {
        if let Some(seq) = self.0.get_mut(&request.vcluster) {
            *seq = (*seq).max(request.seq);
        } else if self.0.len() < OVERLAY_REQUESTS_PENDING_MAX {
            self.0.insert(request.vcluster, request.seq);
        }
    }

    /// Whether a request asks for `vcluster` at a seq the leader has applied (`applied_seq`),
    /// so a build now satisfies it. A request for a later seq waits for that apply, so it does
    /// not spend the hold's bypass on a build that would not satisfy it.
    fn wants(&self, vcluster: &str, applied_seq: Seq) -> bool {
        self.0.get(vcluster).is_some_and(|seq| *seq <= applied_seq)
    }

    /// After a pass: keeps requests for a seq the leader has not applied yet (the next pass,
    /// woken by that apply, serves them) and those `deferred` to their vCluster's request
    /// interval (the pass that wakes then serves them); the others were served or judged.
    fn settle(&mut self, applied_seq: Seq, deferred: &BTreeSet<VClusterId>) {
        self.0
            .retain(|vcluster, seq| *seq > applied_seq || deferred.contains(vcluster));
    }
}

/// Knobs of the overlay task; `Default` is what `bootstorm serve` uses.
#[derive(Clone, Copy, Debug)]
pub struct OverlayTaskOptions {
    /// Fewest ms between two rebuilds of a vCluster; see [`OVERLAY_REBUILD_INTERVAL_MIN_MS`].
    /// Tests raise it so that only a request can pull a build ahead.
    pub rebuild_interval_min_ms: u64,
}

impl Default for OverlayTaskOptions {
    fn default() -> Self {
        OverlayTaskOptions {
            rebuild_interval_min_ms: OVERLAY_REBUILD_INTERVAL_MIN_MS,
        }
    }
}

/// Why the overlay task builds a vCluster in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RebuildTrigger {
    /// Stale and not held: the first change after a quiet spell, or its hold ran out.
    Changed,
    /// Held, but a replica asked for a seq the leader has applied and the vCluster was built
    /// at least a request interval ago: the request pulls the build ahead of its hold.
    Requested,
}

/// What one pass of the overlay task does, decided by [`plan_rebuilds`] before any I/O.
/// Invariants: a vCluster appears at most once in `build` and never both in `build` and
/// `deferred`; `wake_at`, if any, is after the `now` the plan was made at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RebuildPlan {
    /// vClusters to build from the newest applied state and propose now, in this order.
    build: Vec<(VClusterId, RebuildTrigger)>,
    /// When to look again if no change or request comes first: the soonest instant a held
    /// vCluster, or a deferred request, comes due. `None`: nothing stale is held back.
    wake_at: Option<Instant>,
    /// vClusters whose request is kept past this pass: asked for, but built less than a
    /// request interval ago (the pass at `wake_at` serves them).
    deferred: BTreeSet<VClusterId>,
}

/// Decides one pass of the overlay task: which stale vClusters to build now (and why), and
/// which to leave for later and until when. Pure — state, requests, pacing and time are
/// values — so the pacing rules of the module doc are a table test, not a cluster test.
///
/// `stale` holds each stale vCluster with the seq a build now would carry (see
/// [`stale_vclusters`]); `failed` the seq each vCluster's last build failed at;
/// `applied_seq` the newest seq the leader has applied, which a request must not exceed to
/// pull a build ahead (a build now would not satisfy it).
fn plan_rebuilds(
    stale: &[(VClusterId, Seq)],
    failed: &BTreeMap<VClusterId, Seq>,
    applied_seq: Seq,
    pending: &PendingRequests,
    pacer: &RebuildPacer,
    now: Instant,
) -> RebuildPlan {
    let mut plan = RebuildPlan::default();
    for (vc, seq) in stale {
        // It would fail again; the next change affecting the vCluster retries.
        if failed.get(vc) == Some(seq) {
            continue;
        }
        let Some(held_until) = pacer.due(vc, now) else {
            plan.build.push((vc.clone(), RebuildTrigger::Changed));
            continue;
        };
        if !pending.wants(vc, applied_seq) {
            plan.wake_at = Some(earliest(plan.wake_at, held_until));
            continue;
        }
        match pacer.request_due(vc, now) {
            None => plan.build.push((vc.clone(), RebuildTrigger::Requested)),
            // Asked for, but built less than a request interval ago: keep the request and
            // wake then.
            Some(requests_from) => {
                plan.wake_at = Some(earliest(plan.wake_at, requests_from.min(held_until)));
                plan.deferred.insert(vc.clone());
            }
        }
    }
    let built: BTreeSet<&VClusterId> = plan.build.iter().map(|(vc, _)| vc).collect();
    assert_eq!(
        built.len(),
        plan.build.len(),
        "a vCluster is built once a pass"
    );
    assert!(plan.deferred.iter().all(|vc| !built.contains(vc)));
    assert!(
        plan.wake_at.is_none_or(|at| at > now),
        "a wake-up is in the future"
    );
    plan
}

/// The overlay task's pacing, as durations: the knobs of [`OverlayTaskOptions`] and the
/// request and retry constants, read once.
#[derive(Clone, Copy, Debug)]
struct RebuildPacing {
    /// Hold after a build, unasked; see [`OVERLAY_REBUILD_INTERVAL_MIN_MS`].
    interval: Duration,
    /// Hold after a build against requests; see [`OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS`].
    request_interval: Duration,
    /// Hold after a failed proposal; see [`OVERLAY_RETRY_AFTER_FAILURE_MS`].
    retry_after: Duration,
}

impl RebuildPacing {
    fn new(options: OverlayTaskOptions) -> Self {
        RebuildPacing {
            interval: Duration::from_millis(options.rebuild_interval_min_ms),
            request_interval: Duration::from_millis(OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS),
            retry_after: Duration::from_millis(OVERLAY_RETRY_AFTER_FAILURE_MS),
        }
    }
}

/// What building one vCluster's overlay from the newest applied state came to.
enum Built {
    Overlay(BootOverlay),
    /// A proposal since the plan made it current: nothing to do.
    NotStale,
    /// The build failed at `seq`; it is not retried until a newer change.
    Failed {
        seq: Seq,
        error: overlay::BuildError,
    },
    /// The runtime is shutting down.
    RuntimeStopping,
}

/// How executing one planned build ended, as the pass that runs the plan needs to know.
enum BuildStep {
    /// Proposed, or judged (not stale any more, or a failed build recorded): go on.
    Next,
    /// The proposal failed; the vCluster is held for the retry pause until this instant.
    RetryAt(Instant),
    /// This replica no longer leads: drop the pass.
    NotLeader,
    /// Raft or the runtime stopped: end the task.
    Stop,
}

/// How executing a pass's plan ended.
enum PassEnd {
    /// Every planned build ran: sleep until a change, a request, or `wake_at`.
    Sleep { wake_at: Option<Instant> },
    /// This replica no longer leads: wait to lead again.
    NotLeader,
    /// Raft, the runtime or the task stopped.
    Stop,
}

/// The overlay task's I/O: reading the state, building off the async workers, proposing
/// through Raft. It executes what [`plan_rebuilds`] decided and decides nothing itself
/// beyond reading each outcome.
struct OverlayShell<'a> {
    raft: &'a Raft<TypeConfig>,
    reader: &'a ReplicaReader,
    metrics: &'a ReplicaMetrics,
    pacing: RebuildPacing,
}

impl OverlayShell<'_> {
    /// Builds `vc`'s overlay from the newest applied state. The inputs are read under the
    /// state lock (what makes the overlay match the seq it claims); the build runs after it is
    /// released, off the async workers, so neither the state machine's apply nor this
    /// replica's other tasks wait the ~0.3 ms of encoding and compression (the commit path
    /// felt it in its p99).
    async fn build_from_newest_state(&self, vc: &VClusterId) -> Built {
        let inputs = {
            let state = self.reader.read();
            if !state.journal.overlay_is_stale(vc) {
                return Built::NotStale;
            }
            match overlay::OverlayInputs::from_state(&state.journal, vc) {
                Ok(inputs) => inputs,
                Err(error) => {
                    let seq = state.journal.latest_seq_affecting(vc);
                    return Built::Failed { seq, error };
                }
            }
        };
        let seq = inputs.seq();
        match tokio::task::spawn_blocking(move || inputs.build()).await {
            Ok(Ok(overlay)) => Built::Overlay(overlay),
            Ok(Err(error)) => Built::Failed { seq, error },
            Err(_) => Built::RuntimeStopping,
        }
    }

    /// Executes `plan`'s builds in order, ending early when leadership is lost or the task
    /// stops. Wakes at the plan's `wake_at`, or sooner for a failed proposal to retry.
    async fn execute(
        &self,
        plan: &RebuildPlan,
        pacer: &mut RebuildPacer,
        failed: &mut BTreeMap<VClusterId, Seq>,
        shutdown: &CancellationToken,
    ) -> PassEnd {
        let mut wake_at = plan.wake_at;
        for (vc, trigger) in &plan.build {
            if shutdown.is_cancelled() {
                return PassEnd::Stop;
            }
            match self.rebuild_and_propose(vc, *trigger, pacer, failed).await {
                BuildStep::Next => {}
                BuildStep::RetryAt(at) => wake_at = Some(earliest(wake_at, at)),
                BuildStep::NotLeader => return PassEnd::NotLeader,
                BuildStep::Stop => return PassEnd::Stop,
            }
        }
        PassEnd::Sleep { wake_at }
    }

    /// Builds and proposes `vc`'s overlay, recording a failed build in `failed` and holding
    /// `vc` in `pacer`: for the rebuild interval once built, for the retry pause after a
    /// failed proposal.
    async fn rebuild_and_propose(
        &self,
        vc: &VClusterId,
        trigger: RebuildTrigger,
        pacer: &mut RebuildPacer,
        failed: &mut BTreeMap<VClusterId, Seq>,
    ) -> BuildStep {
        let overlay = match self.build_from_newest_state(vc).await {
            Built::Overlay(overlay) => overlay,
            Built::NotStale => return BuildStep::Next,
            Built::Failed { seq, error } => {
                self.metrics.overlay_rebuild_failures.increment(1);
                tracing::error!(vcluster = %vc, seq, %error,
                    "cannot build the overlay; boots of this vCluster get the previous \
                     one until a commit fixes its config");
                failed.insert(vc.clone(), seq);
                return BuildStep::Next;
            }
            Built::RuntimeStopping => return BuildStep::Stop,
        };
        let on_request = trigger == RebuildTrigger::Requested;
        if on_request {
            self.metrics.overlay_rebuilds_on_request.increment(1);
        }
        let RebuildPacing {
            interval,
            request_interval,
            retry_after,
        } = self.pacing;
        pacer.hold(vc, Instant::now(), interval, request_interval);
        let seq = overlay.seq;
        tracing::debug!(vcluster = %vc, seq, on_request, compressed_bytes = overlay.compressed.len(),
            "proposing a rebuilt overlay");
        let command = JournalCommand::SetOverlay {
            vcluster_id: vc.clone(),
            overlay,
        };
        let outcome = propose(self.raft, command, OVERLAY_PROPOSE_TIMEOUT_MS, |r| {
            matches!(r, Rejected::OverlayOutdated { .. })
        })
        .await;
        match outcome {
            Proposed::Done => {
                self.metrics.overlay_rebuilds.increment(1);
                failed.remove(vc);
                BuildStep::Next
            }
            Proposed::NotLeader => BuildStep::NotLeader,
            Proposed::Stopped => BuildStep::Stop,
            Proposed::Failed(error) => {
                self.metrics.overlay_rebuild_failures.increment(1);
                tracing::warn!(vcluster = %vc, seq, %error, "overlay proposal failed; will retry");
                let now = Instant::now();
                pacer.hold(vc, now, retry_after, request_interval);
                BuildStep::RetryAt(now + retry_after)
            }
        }
    }
}

/// The receiver of raft's metrics: the overlay task watches it for leadership changes.
type RaftMetricsRx = tokio::sync::watch::Receiver<
    openraft::RaftMetrics<raftstore::RaftNodeId, raftstore::ReplicaNode>,
>;

/// Sleeps until there may be work for the overlay task: the journal moves, a request
/// arrives (added to `pending`), leadership may have changed, or `wake_at` (a held
/// vCluster or deferred request comes due). `false` when the task should stop instead.
async fn wait_for_work(
    applied: &mut tokio::sync::watch::Receiver<Seq>,
    raft_metrics: &mut RaftMetricsRx,
    requests: &mut OverlayRequests,
    pending: &mut PendingRequests,
    metrics: &ReplicaMetrics,
    wake_at: Option<Instant>,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        changed = applied.changed() => changed.is_ok(),
        request = requests.rx.recv() => match request {
            Some(request) => {
                metrics.overlay_rebuild_requests.increment(1);
                pending.add(request);
                true
            }
            // Every nudger is gone: the replica is stopping.
            None => false,
        },
        changed = raft_metrics.changed() => changed.is_ok(),
        _ = tokio::time::sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => true,
    }
}

/// Rebuilds and proposes stale overlays while this replica leads, until `shutdown`: on its
/// own after a change (paced), and at once on request (`requests`, once per hold). Each pass
/// reads the state, lets [`plan_rebuilds`] decide, executes the plan, then sleeps.
pub async fn run_overlay_task(
    raft: Raft<TypeConfig>,
    reader: ReplicaReader,
    metrics: Arc<ReplicaMetrics>,
    mut requests: OverlayRequests,
    options: OverlayTaskOptions,
    shutdown: CancellationToken,
) {
    let shell = OverlayShell {
        raft: &raft,
        reader: &reader,
        metrics: &metrics,
        pacing: RebuildPacing::new(options),
    };
    // vCluster → seq whose build failed: skipped while its latest seq stays there, retried once
    // a newer change affects it, forgotten after a successful proposal.
    let mut failed: BTreeMap<VClusterId, Seq> = BTreeMap::new();
    'leading: loop {
        if !wait_for_leadership(&raft, &shutdown).await {
            return;
        }
        let mut applied = reader.applied_seq();
        let mut raft_metrics = raft.metrics();
        // A new leader builds whatever is stale at once, so requests made to an earlier
        // term (or queued while following) have nothing left to pull ahead.
        let mut pacer = RebuildPacer::default();
        let mut pending = PendingRequests::default();
        while requests.rx.try_recv().is_ok() {}
        loop {
            // Seen from here on: a change applied during this pass wakes the next one.
            applied.mark_unchanged();
            while let Ok(request) = requests.rx.try_recv() {
                metrics.overlay_rebuild_requests.increment(1);
                pending.add(request);
            }
            let (stale, applied_seq) = {
                let state = reader.read();
                (stale_vclusters(&state.journal), state.journal.last_seq)
            };
            let now = Instant::now();
            let plan = plan_rebuilds(&stale, &failed, applied_seq, &pending, &pacer, now);
            let wake_at = match shell
                .execute(&plan, &mut pacer, &mut failed, &shutdown)
                .await
            {
                PassEnd::Sleep { wake_at } => wake_at,
                PassEnd::NotLeader => continue 'leading,
                PassEnd::Stop => return,
            };
            // Settled against the seq the plan judged by: a request for a seq applied during
            // the pass was not judged, and the pass that apply wakes serves it.
            pending.settle(applied_seq, &plan.deferred);
            let woken = wait_for_work(
                &mut applied,
                &mut raft_metrics,
                &mut requests,
                &mut pending,
                &metrics,
                wake_at,
                &shutdown,
            );
            if !woken.await {
                return;
            }
            if !is_leader(&raft) {
                continue 'leading;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row of the overlay task's pass spec: its state when a pass starts, and what the
    /// pass should do. Times are ms after an arbitrary start; every hold lets requests pull
    /// a build ahead after `OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS` (100), or at its end
    /// if it is shorter, as a build sets it.
    struct PassCase {
        name: &'static str,
        /// Stale vClusters, each with the seq a build now would carry.
        stale: &'static [(&'static str, Seq)],
        /// vCluster → seq its last build failed at.
        failed: &'static [(&'static str, Seq)],
        /// (vCluster, held from ms, for ms): 1000 after a build, 200 after a failed proposal.
        holds: &'static [(&'static str, u64, u64)],
        /// Rebuild requests: (vCluster, seq asked for).
        requests: &'static [(&'static str, Seq)],
        applied_seq: Seq,
        now_ms: u64,
        /// Expected: what to build now, in order, and why.
        build: &'static [(&'static str, RebuildTrigger)],
        /// Expected: when to look again without a change or request.
        wake_at_ms: Option<u64>,
        /// Expected: requests kept for their vCluster's request interval.
        deferred: &'static [&'static str],
    }

    use RebuildTrigger::{Changed, Requested};

    const PASS_SPEC: &[PassCase] = &[
        PassCase {
            name: "nothing stale: nothing to build, nothing to wake for",
            stale: &[],
            failed: &[],
            holds: &[],
            requests: &[("compute", 7)],
            applied_seq: 7,
            now_ms: 0,
            build: &[],
            wake_at_ms: None,
            deferred: &[],
        },
        PassCase {
            name: "the first change after a quiet spell is built at once",
            stale: &[("compute", 7)],
            failed: &[],
            holds: &[],
            requests: &[],
            applied_seq: 7,
            now_ms: 0,
            build: &[("compute", Changed)],
            wake_at_ms: None,
            deferred: &[],
        },
        PassCase {
            name: "a change within the rebuild interval waits out the hold",
            stale: &[("compute", 8)],
            failed: &[],
            holds: &[("compute", 0, 1_000)],
            requests: &[],
            applied_seq: 8,
            now_ms: 300,
            build: &[],
            wake_at_ms: Some(1_000),
            deferred: &[],
        },
        PassCase {
            name: "the hold ends: built at its edge",
            stale: &[("compute", 8)],
            failed: &[],
            holds: &[("compute", 0, 1_000)],
            requests: &[],
            applied_seq: 8,
            now_ms: 1_000,
            build: &[("compute", Changed)],
            wake_at_ms: None,
            deferred: &[],
        },
        PassCase {
            name: "a request for an applied seq pulls a held build ahead",
            stale: &[("compute", 8)],
            failed: &[],
            holds: &[("compute", 0, 1_000)],
            requests: &[("compute", 8)],
            applied_seq: 8,
            now_ms: 300,
            build: &[("compute", Requested)],
            wake_at_ms: None,
            deferred: &[],
        },
        PassCase {
            name: "a request within the request interval is kept and woken for, not built",
            stale: &[("compute", 8)],
            failed: &[],
            holds: &[("compute", 0, 1_000)],
            requests: &[("compute", 8)],
            applied_seq: 8,
            now_ms: 50,
            build: &[],
            wake_at_ms: Some(100),
            deferred: &["compute"],
        },
        PassCase {
            name: "a request for a seq not applied yet does not spend the bypass: it waits",
            stale: &[("compute", 8)],
            failed: &[],
            holds: &[("compute", 0, 1_000)],
            requests: &[("compute", 9)],
            applied_seq: 8,
            now_ms: 300,
            build: &[],
            wake_at_ms: Some(1_000),
            deferred: &[],
        },
        PassCase {
            name: "a failed proposal waits out the retry pause",
            stale: &[("compute", 8)],
            failed: &[],
            holds: &[("compute", 0, 200)],
            requests: &[],
            applied_seq: 8,
            now_ms: 150,
            build: &[],
            wake_at_ms: Some(200),
            deferred: &[],
        },
        PassCase {
            name: "a build that failed is not retried at the same seq, not even on request",
            stale: &[("compute", 7)],
            failed: &[("compute", 7)],
            holds: &[],
            requests: &[("compute", 7)],
            applied_seq: 7,
            now_ms: 0,
            build: &[],
            wake_at_ms: None,
            deferred: &[],
        },
        PassCase {
            name: "a newer change retries a failed build",
            stale: &[("compute", 8)],
            failed: &[("compute", 7)],
            holds: &[],
            requests: &[],
            applied_seq: 8,
            now_ms: 0,
            build: &[("compute", Changed)],
            wake_at_ms: None,
            deferred: &[],
        },
        PassCase {
            name: "vClusters are paced apart; the pass wakes for the soonest that comes due",
            stale: &[("bigmem", 9), ("compute", 9), ("gpu", 9), ("io", 9)],
            failed: &[],
            holds: &[("compute", 0, 1_000), ("gpu", 500, 1_000), ("io", 0, 1_000)],
            requests: &[("gpu", 9), ("io", 9)],
            applied_seq: 9,
            now_ms: 550,
            build: &[("bigmem", Changed), ("io", Requested)],
            wake_at_ms: Some(600),
            deferred: &["gpu"],
        },
    ];

    #[test]
    fn each_pass_of_the_overlay_task_follows_its_spec() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let request_interval = Duration::from_millis(OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS);
        let owned = |pairs: &[(&str, Seq)]| -> Vec<(VClusterId, Seq)> {
            pairs
                .iter()
                .map(|&(vc, seq)| (vc.to_owned(), seq))
                .collect()
        };
        for case in PASS_SPEC {
            let mut pacer = RebuildPacer::default();
            for &(vc, from_ms, hold_ms) in case.holds {
                pacer.hold(
                    vc,
                    at(from_ms),
                    Duration::from_millis(hold_ms),
                    request_interval,
                );
            }
            let mut pending = PendingRequests::default();
            for (vcluster, seq) in owned(case.requests) {
                pending.add(RebuildRequest { vcluster, seq });
            }
            let failed = owned(case.failed).into_iter().collect();
            let plan = plan_rebuilds(
                &owned(case.stale),
                &failed,
                case.applied_seq,
                &pending,
                &pacer,
                at(case.now_ms),
            );
            let expected = RebuildPlan {
                build: case
                    .build
                    .iter()
                    .map(|&(vc, trigger)| (vc.to_owned(), trigger))
                    .collect(),
                wake_at: case.wake_at_ms.map(at),
                deferred: case.deferred.iter().map(|vc| (*vc).to_owned()).collect(),
            };
            assert_eq!(plan, expected, "{}", case.name);
        }
    }

    #[test]
    fn a_vcluster_is_rebuilt_at_once_then_at_most_once_per_interval() {
        let interval = Duration::from_millis(OVERLAY_REBUILD_INTERVAL_MIN_MS);
        let start = Instant::now();
        let mut pacer = RebuildPacer::default();
        assert_eq!(pacer.due("compute", start), None, "never built: build now");

        pacer.hold("compute", start, interval, interval);
        let just_before = start + interval - Duration::from_millis(1);
        assert_eq!(pacer.due("compute", just_before), Some(start + interval));
        assert_eq!(
            pacer.due("compute", start + interval),
            None,
            "due at the edge"
        );
        assert_eq!(pacer.due("gpu", start), None, "vClusters are paced apart");
    }

    #[test]
    fn requests_pull_a_held_build_ahead_at_most_once_per_request_interval() {
        let interval = Duration::from_millis(OVERLAY_REBUILD_INTERVAL_MIN_MS);
        let request_interval = Duration::from_millis(OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS);
        let start = Instant::now();
        let mut pacer = RebuildPacer::default();
        assert_eq!(
            pacer.request_due("compute", start),
            None,
            "not held: build now"
        );

        // Just built: requests wait out the request interval, not the whole hold.
        pacer.hold("compute", start, interval, request_interval);
        let soon = start + Duration::from_millis(1);
        assert_eq!(
            pacer.request_due("compute", soon),
            Some(start + request_interval)
        );
        assert!(pacer
            .request_due(
                "compute",
                start + request_interval - Duration::from_millis(1)
            )
            .is_some());
        let asked = start + request_interval;
        assert_eq!(pacer.request_due("compute", asked), None, "at the edge");
        // The requested build sets a new hold: a storm of requests right after gets nothing.
        pacer.hold("compute", asked, interval, request_interval);
        let granted = (0..100)
            .filter(|_| {
                pacer
                    .request_due("compute", asked + Duration::from_millis(1))
                    .is_none()
            })
            .count();
        assert_eq!(granted, 0, "one build per request interval");
        assert_eq!(pacer.due("compute", asked), Some(asked + interval));
        assert_eq!(
            pacer.request_due("gpu", soon),
            None,
            "vClusters are paced apart"
        );
        // A hold shorter than the request interval (a retry pause) is never bypassed early.
        let retry = Duration::from_millis(10);
        pacer.hold("gpu", start, retry, request_interval);
        assert_eq!(
            pacer.request_due("gpu", start + Duration::from_millis(5)),
            Some(start + retry)
        );
        assert_eq!(pacer.request_due("gpu", start + retry), None);
    }

    #[test]
    fn pending_requests_keep_the_newest_seq_and_only_what_is_not_applied_yet() {
        let mut pending = PendingRequests::default();
        let request = |vcluster: &str, seq| RebuildRequest {
            vcluster: vcluster.into(),
            seq,
        };
        pending.add(request("compute", 7));
        pending.add(request("compute", 5));
        pending.add(request("gpu", 9));
        assert!(pending.wants("compute", 7) && !pending.wants("compute", 6));
        assert!(
            !pending.wants("gpu", 8),
            "asks for a seq the leader has not applied"
        );
        pending.add(request("bigmem", 3));
        pending.settle(7, &BTreeSet::from(["bigmem".to_owned()]));
        assert!(!pending.wants("compute", 7), "applied: served or judged");
        assert!(pending.wants("gpu", 9), "not applied yet: kept");
        assert!(
            pending.wants("bigmem", 7),
            "deferred to its request interval: kept"
        );
        for i in 0..OVERLAY_REQUESTS_PENDING_MAX + 10 {
            pending.add(request(&format!("vc{i}"), 100));
        }
        assert_eq!(pending.0.len(), OVERLAY_REQUESTS_PENDING_MAX);
    }

    #[test]
    fn the_request_queue_refuses_beyond_its_bound() {
        let (nudger, requests) = overlay_request_queue();
        for _ in 0..OVERLAY_REQUEST_QUEUE_MAX {
            nudger.nudge("compute".into(), 1).unwrap();
        }
        assert_eq!(nudger.nudge("compute".into(), 1), Err(NudgeError::Busy));
        drop(requests);
        assert_eq!(nudger.nudge("compute".into(), 1), Err(NudgeError::Stopped));
    }

    #[test]
    fn a_failed_proposal_holds_its_vcluster_for_the_retry_pause() {
        let retry = Duration::from_millis(OVERLAY_RETRY_AFTER_FAILURE_MS);
        let start = Instant::now();
        let mut pacer = RebuildPacer::default();
        let request_interval = Duration::from_millis(OVERLAY_REQUESTED_REBUILD_INTERVAL_MIN_MS);
        pacer.hold("compute", start, retry, request_interval);
        assert_eq!(pacer.due("compute", start), Some(start + retry));
        assert_eq!(pacer.due("compute", start + retry), None);
    }
}
