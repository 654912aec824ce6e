//! Limits of the overlay crate, in one place, with the relations between them (and to
//! `config::limits`) checked at compile time below.
//!
//! Invariant: every size this crate accepts from the network (compressed overlay, decompressed
//! overlay, node delta) is bounded by a constant here *before* memory is allocated for it.

use config::limits::{
    NAME_LEN_MAX_BYTES, NODE_CONFIG_SIZE_MAX_BYTES, OVERLAY_SIZE_MAX_BYTES,
    VCLUSTER_CONFIG_SIZE_MAX_BYTES,
};

/// Canonical-encoding overhead allowed on top of a vCluster's folded config: the policy
/// (description, settings) and per-item framing (17 bytes per file, 8 per setting). A folded
/// config at `VCLUSTER_CONFIG_SIZE_MAX_BYTES` with ordinary files fits with room to spare;
/// a pathological one (tens of thousands of empty files) is refused by the builder instead.
pub const OVERLAY_ENCODING_SLACK_BYTES: usize = 1024 * 1024;

/// Largest canonical (uncompressed) overlay document the builder produces and the decoder
/// accepts. The decoder never allocates more than this for decompression, so a zstd bomb is
/// refused before it can grow.
pub const OVERLAY_RAW_SIZE_MAX_BYTES: usize =
    VCLUSTER_CONFIG_SIZE_MAX_BYTES + OVERLAY_ENCODING_SLACK_BYTES;

/// Largest compressed overlay: the same cap `SetOverlay` enforces in the state machine, so every
/// overlay we build can travel through Raft.
pub const OVERLAY_COMPRESSED_SIZE_MAX_BYTES: usize = OVERLAY_SIZE_MAX_BYTES;

/// zstd level for overlays: 3. Measured with the bench `build` on the 2-core dev machine
/// (compress time of the canonical bytes alone, median):
///
/// | overlay                              | level 1          | 3                | 6                | 9                | 19               |
/// |--------------------------------------|------------------|------------------|------------------|------------------|------------------|
/// | demo `compute`, 245 KB raw (blobs)   | 139.4 KB, 0.17 ms| 139.5 KB, 0.20 ms| 139.2 KB, 0.68 ms| 138.9 KB, 1.3 ms | 136.3 KB, 132 ms |
/// | 10k-node site, 1.25 MB raw (text)    | 167.9 KB, 1.6 ms | 169.6 KB, 1.3 ms | 174.6 KB, 6.4 ms | 177.5 KB, 9.2 ms | —                |
///
/// Higher levels save at most 2 % on blob-heavy overlays (firmware and libraries are already
/// dense) and on text-heavy ones do not save at all, while costing 3–600× the time. The build
/// runs on the leader after every commit and on a replica's boot path when the leader is away,
/// with a 5 ms budget; level 3 keeps a whole build (canonicalize + blake3 + zstd) at ~0.45 ms.
pub const OVERLAY_ZSTD_LEVEL: i32 = 3;

/// Fixed part of an encoded node delta: magic (8) + version (2) + node id and vCluster (4 + up to
/// `NAME_LEN_MAX_BYTES` each) + seq (8) + three item counts (4 each).
pub const NODE_DELTA_HEADER_MAX_BYTES: usize = 8 + 2 + 2 * (4 + NAME_LEN_MAX_BYTES) + 8 + 3 * 4;

/// Encoding overhead allowed on top of a node's folded config: header plus per-item framing
/// (17 bytes per file, 4 per removal, 8 per setting). Generous for real nodes (a few items);
/// a node config made of hundreds of one-byte settings can exceed it and is refused.
pub const NODE_DELTA_ENCODING_SLACK_BYTES: usize = 16 * 1024;

/// Largest encoded node delta (phase 2) built or decoded. Keeps phase 2 a single small message.
pub const NODE_DELTA_SIZE_MAX_BYTES: usize =
    NODE_CONFIG_SIZE_MAX_BYTES + NODE_DELTA_ENCODING_SLACK_BYTES;

/// What a typical node's delta (one or two small files and a few settings) is expected to
/// weigh. Not enforced (the hard cap is `NODE_DELTA_SIZE_MAX_BYTES`); tests check the demo's
/// nodes stay under it.
pub const NODE_DELTA_TYPICAL_BUDGET_BYTES: usize = 1024;

/// Default byte budget of an [`crate::OverlayCache`]: ~400 overlays of 150 KB, i.e. tens of
/// vClusters with a few seqs each. Beyond it, least-recently-used entries are evicted.
pub const OVERLAY_CACHE_BUDGET_DEFAULT_BYTES: usize = 64 * 1024 * 1024;

const _: () = assert!(OVERLAY_RAW_SIZE_MAX_BYTES >= VCLUSTER_CONFIG_SIZE_MAX_BYTES);
// Lengths inside the canonical docs are u32.
const _: () = assert!(OVERLAY_RAW_SIZE_MAX_BYTES <= u32::MAX as usize);
const _: () = assert!(OVERLAY_COMPRESSED_SIZE_MAX_BYTES <= OVERLAY_RAW_SIZE_MAX_BYTES);
const _: () = assert!(NODE_DELTA_ENCODING_SLACK_BYTES > NODE_DELTA_HEADER_MAX_BYTES);
const _: () =
    assert!(NODE_DELTA_SIZE_MAX_BYTES > NODE_CONFIG_SIZE_MAX_BYTES + NODE_DELTA_HEADER_MAX_BYTES);
const _: () = assert!(NODE_DELTA_TYPICAL_BUDGET_BYTES < NODE_DELTA_SIZE_MAX_BYTES);
const _: () = assert!(NODE_DELTA_SIZE_MAX_BYTES < OVERLAY_RAW_SIZE_MAX_BYTES);
// The cache must hold several of the largest overlays at once, or it would thrash.
const _: () = assert!(OVERLAY_CACHE_BUDGET_DEFAULT_BYTES >= 4 * OVERLAY_COMPRESSED_SIZE_MAX_BYTES);

/// Free space an apply leaves on the root's filesystem beyond the bytes it stages (each file
/// rounded up to the fragment size): room for directory blocks, inodes' metadata and the
/// services that start next, so an apply never fills a root to the last byte.
pub const APPLY_FREE_SPACE_MARGIN_BYTES: u64 = 1024 * 1024;
