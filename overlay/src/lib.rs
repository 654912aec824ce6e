//! bootstorm's overlays: the documents a booting node fetches and applies.
//!
//! Owns: building a vCluster's base overlay (phase 1: canonical bytes → blake3 → zstd) and a
//! node's delta (phase 2: canonical bytes → blake3) from a `config::JournalState`; decoding them
//! from untrusted bytes (bounded, hash-verified before parsing, strict); applying them to a root
//! directory; and the cache of built overlays with single-flight building that replicas serve
//! boots from.
//!
//! Must never: read the clock, talk to the network, or use randomness. Builders are pure: the
//! same state gives the same bytes and the same blake3 on every replica. Only `apply` touches
//! the disk: beneath the root it is given, and in the state directory it is given.
//!
//! Code map:
//! - [`limits`]: every size bound, related to `config::limits` at compile time;
//! - `codec`: the canonical binary encoding and its strict reader;
//! - `overlay`: phase 1 build/decode, [`OverlayKey`], staleness;
//! - `delta`: phase 2 build/decode;
//! - `apply`: writing documents to a root like an installer: owners resolved in the root's
//!   user database, every write through directory handles beneath the root, all or nothing
//!   across a crash (staging + commit journal); `apply::statedir`, the agent's 0700 state
//!   directory;
//! - `cache`: [`OverlayCache`], byte budget + LRU eviction + single-flight.
//!
//! zstd level: see [`limits::OVERLAY_ZSTD_LEVEL`] for the measurement behind the choice.

mod apply;
mod cache;
mod codec;
mod delta;
mod error;
pub mod limits;
mod overlay;
#[cfg(test)]
mod test_support;

pub use apply::{
    apply_to_root, apply_to_root_with_state, complete_interrupted_apply, ApplyError, ApplyReport,
    StateDir, APPLY_JOURNAL_NAME, DEFAULT_STATE_DIR_IN_ROOT, SETTINGS_DIR_MODE, SETTINGS_FILE_MODE,
    SETTINGS_FILE_PATH, SETTINGS_FORMAT_VERSION, STATE_DIR_MODE, STATE_FILE_MODE,
};
pub use cache::{OverlayCache, Weigh};
pub use codec::DocError;
pub use delta::{
    build_node_delta, decode_node_delta, node_delta_doc, node_delta_seq_is_stale, BuiltNodeDelta,
    NodeDeltaDoc, NODE_DELTA_FORMAT_VERSION, NODE_DELTA_MAGIC,
};
pub use error::{BuildError, DecodeError};
pub use overlay::{
    build_overlay, decode_boot_overlay, decode_overlay, overlay_doc, overlay_seq_is_stale,
    OverlayDoc, OverlayInputs, OverlayKey, OVERLAY_FORMAT_VERSION, OVERLAY_MAGIC,
};

/// A built overlay: exactly what the state machine stores and `SetOverlay` carries.
pub type BuiltOverlay = config::BootOverlay;
