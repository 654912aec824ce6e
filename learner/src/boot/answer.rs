//! One boot request → one answer, from local state only.
//!
//! Order of checks for a request: node id sane → certificate binding (both phases: a node
//! certificate names the only node it may fetch for, see `not_bound`) →
//! `min_seq` (bounded wait, else `NotYet`) → node → vCluster (else `UnknownNode`) → for phase 1
//! the overlay (stored if current; else cache, or — single-flight per (vCluster, seq) — one
//! rebuild request to the leader, a bounded wait for its `SetOverlay`, a local build) →
//! `NotModified` if the agent holds it → a transfer permit (bounded wait, else `Overloaded`) →
//! `Base`. Phase 2 builds the node delta on the fly (~1 µs under the read lock).
//!
//! Invariants: boot reads never enter Raft (the rebuild request is the only way out: sent once
//! per (vCluster, seq), never awaited beyond the overlay's own wait, with a local build as
//! fallback); the state's read lock is never held across an await; every wait is bounded by a
//! `BootLimits` value. Each path is counted: `RebuildRequested` (+ `RebuildRequestFailures`),
//! then `BaseRebuiltByLeader` or `RebuildFailures` + `BaseBuiltLocally`.

use std::time::Duration;

use bytes::Bytes;
use config::{BootOverlay, Seq, VClusterId};
use overlay::OverlayKey;
use proto::{BootRequest, BootResponse, ErrorCode, Hash};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{BaseSource, BootContext, CachedOverlay, OverlayRebuilder, Stat};

/// An answer ready to write; `_transfer` holds the transfer permit until the write ends.
pub(super) struct Answer {
    pub response: BootResponse,
    pub payload: Bytes,
    pub _transfer: Option<OwnedSemaphorePermit>,
}

impl Answer {
    fn header(response: BootResponse) -> Self {
        Answer {
            response,
            payload: Bytes::new(),
            _transfer: None,
        }
    }
}

/// Builds the answer to `request` on a connection bound to node `bound` (client certificate),
/// and counts it.
pub(super) async fn answer(ctx: &BootContext, request: BootRequest, bound: Option<&str>) -> Answer {
    let answer = match answer_inner(ctx, request, bound).await {
        Ok(answer) => answer,
        Err((code, message)) => Answer::header(BootResponse::error(code, message)),
    };
    match &answer.response {
        BootResponse::Error { code, .. } => ctx.stats.add_error(*code),
        BootResponse::NotYet { .. } => ctx.stats.add(Stat::NotYet),
        BootResponse::Overloaded { .. } => ctx.stats.add(Stat::Overloaded),
        BootResponse::NotModified { .. } => ctx.stats.add(Stat::NotModified),
        BootResponse::Delta { .. } => ctx.stats.add(Stat::DeltaServed),
        BootResponse::Base { .. } => {} // counted by source below
    }
    answer
}

type Refusal = (ErrorCode, String);

async fn answer_inner(
    ctx: &BootContext,
    request: BootRequest,
    bound: Option<&str>,
) -> Result<Answer, Refusal> {
    let node = request.node().to_owned();
    if node.is_empty() {
        return Err((
            ErrorCode::BadRequest,
            "the node id is empty; send the node's registered id".into(),
        ));
    }
    if let Some(bound) = bound {
        if bound != node {
            return Err(not_bound(&request, bound, &node));
        }
    }
    if let Some(min_seq) = request.min_seq() {
        let wait_ms = ctx
            .limits
            .min_seq_wait_max_ms
            .min(proto::limits::MIN_SEQ_WAIT_MAX_MS);
        if let Err(applied_seq) = ctx
            .reader
            .wait_for_seq(min_seq, Duration::from_millis(wait_ms))
            .await
        {
            return Ok(Answer::header(BootResponse::NotYet { applied_seq }));
        }
    }
    match request {
        BootRequest::FetchDelta { .. } => delta(ctx, &node),
        BootRequest::FetchBase { have_hash, .. } => base(ctx, &node, have_hash).await,
    }
}

/// The refusal of a request for `node` on a connection whose certificate names `bound`.
/// Both phases are bound: a node certificate fetches only its own node's delta and its own
/// vCluster's base, through its own node id. The stricter rule (not "any node of the same
/// vCluster") because no legit flow needs more: an agent always names itself, and the loose
/// rule would still let a certificate probe which node ids exist in its vCluster.
fn not_bound(request: &BootRequest, bound: &str, node: &str) -> Refusal {
    let what = match request {
        BootRequest::FetchDelta { .. } => "delta",
        BootRequest::FetchBase { .. } => "base overlay",
    };
    (
        ErrorCode::NodeNotBound,
        format!(
            "this connection's client certificate is bound to node {bound:?}, not {node:?}; a \
             node may fetch only its own {what} (use node {node:?}'s certificate)"
        ),
    )
}

fn unknown_node(node: &str, applied_seq: Seq) -> Refusal {
    (
        ErrorCode::UnknownNode,
        format!(
            "node {node:?} is not registered in this replica's journal (applied seq \
             {applied_seq}); register it (`bootstorm node`) or check the id — if it was just \
             registered, fetch with --min-seq"
        ),
    )
}

fn delta(ctx: &BootContext, node: &str) -> Result<Answer, Refusal> {
    let state = ctx.reader.read();
    let journal = &state.journal;
    if !journal.node_states.contains_key(node) {
        return Err(unknown_node(node, journal.last_seq));
    }
    let built = overlay::build_node_delta(journal, node).map_err(|e| {
        (
            ErrorCode::TooLarge,
            format!("cannot build the node delta: {e}"),
        )
    })?;
    drop(state);
    Ok(Answer {
        response: BootResponse::Delta {
            node: built.node,
            vcluster: built.vcluster,
            seq: built.seq,
            hash: built.hash,
        },
        payload: built.bytes,
        _transfer: None,
    })
}

async fn base(ctx: &BootContext, node: &str, have_hash: Option<Hash>) -> Result<Answer, Refusal> {
    // Read what we need, then release the lock before any await.
    let (vcluster, key, stored) = {
        let state = ctx.reader.read();
        let journal = &state.journal;
        let Some(node_state) = journal.node_states.get(node) else {
            return Err(unknown_node(node, journal.last_seq));
        };
        let vcluster = node_state.vcluster.clone();
        let (key, stored) = stored_if_current(journal, &vcluster);
        (vcluster, key, stored.cloned())
    };
    let (overlay, source) = match stored {
        Some(overlay) => (overlay, BaseSource::Stored),
        None => missing_or_stale(ctx, &vcluster, key).await?,
    };
    if have_hash == Some(overlay.hash) {
        return Ok(Answer::header(BootResponse::NotModified {
            vcluster,
            seq: overlay.seq,
            hash: overlay.hash,
        }));
    }
    let wait = Duration::from_millis(ctx.limits.transfer_wait_max_ms);
    let permit = match tokio::time::timeout(wait, ctx.transfers.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        // Timed out, or the semaphore was closed (shutting down): same answer.
        _ => {
            return Ok(Answer::header(BootResponse::Overloaded {
                retry_after_ms: retry_after_ms(ctx),
            }))
        }
    };
    ctx.stats.add(match source {
        BaseSource::Stored => Stat::BaseStored,
        BaseSource::RebuiltByLeader => Stat::BaseRebuiltByLeader,
        BaseSource::BuiltLocally => Stat::BaseBuiltLocally,
        BaseSource::Cached => Stat::BaseCached,
    });
    Ok(Answer {
        response: BootResponse::Base {
            vcluster,
            seq: overlay.seq,
            hash: overlay.hash,
            raw_len: overlay.raw_len,
        },
        payload: overlay.compressed,
        _transfer: Some(permit),
    })
}

/// The key of `vcluster`'s current overlay, and its stored (`SetOverlay`) overlay if that is
/// current. The one rule of "current" for both the QUIC boot plane and the check plane.
pub(super) fn stored_if_current<'a>(
    journal: &'a config::JournalState,
    vcluster: &str,
) -> (OverlayKey, Option<&'a BootOverlay>) {
    let key = OverlayKey::current(journal, vcluster);
    let stored = journal
        .overlays
        .get(vcluster)
        .filter(|overlay| overlay.seq >= key.seq);
    (key, stored)
}

/// The `Overloaded` hint: grows with the backlog (connections per transfer permit), jittered to
/// [½, 1½]× so the refused come back spread out.
fn retry_after_ms(ctx: &BootContext) -> u32 {
    let limits = &ctx.limits;
    let in_use = limits
        .connections_max
        .saturating_sub(ctx.connections_available());
    let backlog = 1 + in_use / limits.transfers_max.max(1);
    let base = u64::from(limits.retry_after_base_ms).saturating_mul(backlog as u64);
    let jittered = base / 2 + random_below(base + 1);
    jittered.clamp(1, u64::from(limits.retry_after_max_ms)) as u32
}

/// A uniformly random value in `0..bound`: a per-thread xorshift64* seeded from the process's
/// random hash keys. Good enough to spread retries; not for anything secret.
fn random_below(bound: u64) -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
        );
    }
    if bound == 0 {
        return 0;
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    })
}

/// The stored overlay of `vcluster` is missing or older than `key.seq`: serve from the cache,
/// or (single-flight per key) ask the leader, or build locally.
async fn missing_or_stale(
    ctx: &BootContext,
    vcluster: &VClusterId,
    key: OverlayKey,
) -> Result<(BootOverlay, BaseSource), Refusal> {
    if let Some(cached) = ctx.cache.get(&key) {
        return Ok((cached.overlay, BaseSource::Cached));
    }
    let built = ctx
        .cache
        .get_or_build(key.clone(), || rebuild_or_build(ctx, vcluster.clone(), key.clone()))
        .await
        .map_err(|e| {
            (
                ErrorCode::Unavailable,
                format!("the overlay of vcluster {vcluster:?} could not be built here: {e}; try another replica"),
            )
        })?;
    // Older keys of this vCluster will never be asked for again.
    ctx.cache.remove_stale(vcluster, key.seq);
    Ok((built.overlay, built.source))
}

/// The single-flight builder: ask the leader (fire-and-forget), wait (bounded) for its
/// `SetOverlay` to be applied here, else build locally.
async fn rebuild_or_build(
    ctx: &BootContext,
    vcluster: VClusterId,
    key: OverlayKey,
) -> Result<CachedOverlay, String> {
    if let Some(rebuilder) = &ctx.rebuild {
        let deadline = Instant::now() + Duration::from_millis(ctx.limits.rebuild_wait_max_ms);
        let ask = ask_leader(ctx, rebuilder.as_ref(), &vcluster, key.seq);
        tokio::pin!(ask);
        let mut asked = false;
        let stored = wait_stored(ctx, &vcluster, &key, deadline);
        tokio::pin!(stored);
        // The request runs alongside the wait and is dropped with it: its answer only counts.
        let stored = loop {
            tokio::select! {
                stored = &mut stored => break stored,
                () = &mut ask, if !asked => asked = true,
            }
        };
        if let Some(overlay) = stored {
            return Ok(CachedOverlay {
                overlay,
                source: BaseSource::RebuiltByLeader,
            });
        }
        ctx.stats.add(Stat::RebuildFailures);
        tracing::warn!(%vcluster, seq = key.seq, wait_ms = ctx.limits.rebuild_wait_max_ms,
            "the leader's SetOverlay for a missing/stale overlay did not arrive in time; building it locally");
    }
    // Inputs under the read lock, the build after it is released (the state machine never
    // waits for a build).
    let inputs = overlay::OverlayInputs::from_state(&ctx.reader.read().journal, &vcluster)
        .map_err(|e| e.to_string())?;
    let built = tokio::task::spawn_blocking(move || inputs.build())
        .await
        .map_err(|e| format!("the local build task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    Ok(CachedOverlay {
        overlay: built,
        source: BaseSource::BuiltLocally,
    })
}

/// Sends the rebuild request for (`vcluster`, `seq`) unless one already went out for that seq
/// or a newer one; counts it and its failure.
async fn ask_leader(
    ctx: &BootContext,
    rebuilder: &dyn OverlayRebuilder,
    vcluster: &VClusterId,
    seq: Seq,
) {
    {
        let mut requested = ctx
            .rebuild_requested
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match requested.get_mut(vcluster) {
            Some(done) if *done >= seq => return,
            Some(done) => *done = seq,
            None => {
                requested.insert(vcluster.clone(), seq);
            }
        }
    }
    ctx.stats.add(Stat::RebuildRequested);
    if let Err(reason) = rebuilder.request_rebuild(vcluster.clone(), seq).await {
        ctx.stats.add(Stat::RebuildRequestFailures);
        tracing::info!(%vcluster, seq, %reason,
            "could not ask the leader to rebuild a missing/stale overlay; waiting for its own rebuild");
    }
}

/// Waits until the state holds an overlay of `vcluster` at `key.seq` or newer, until
/// `deadline`.
async fn wait_stored(
    ctx: &BootContext,
    vcluster: &str,
    key: &OverlayKey,
    deadline: Instant,
) -> Option<BootOverlay> {
    let mut applied = ctx.reader.applied_index();
    loop {
        {
            let state = ctx.reader.read();
            if let Some(overlay) = state.journal.overlays.get(vcluster) {
                if overlay.seq >= key.seq {
                    return Some(overlay.clone());
                }
            }
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => continue,
            _ => return None,
        }
    }
}
