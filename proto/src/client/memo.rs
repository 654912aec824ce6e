//! Phase-1 verification shared by the fetches of one process: opt-in through
//! [`super::ClientConfig::verified_bases`], for a load tester that runs thousands of agents
//! in one process. A real agent boots once and leaves it unset.
//!
//! Why: every agent of a vCluster receives the same compressed overlay, and proving it again
//! (zstd-decompress ~1 MB, blake3 it, parse it) was 15–20 % of the load tester's CPU per boot
//! (perf, one replica, c=64) — CPU taken from the replica under test when both share a
//! machine. A payload byte-identical to one that already decoded to `hash` decodes to the
//! same document, so comparing the bytes (a memcmp) proves as much as decoding again.
//!
//! Invariants:
//! - an entry is inserted only after `overlay::decode_overlay` verified it (the blake3 of the
//!   decompressed overlay equals the entry's key) and its document agreed with the header;
//! - a hit needs the whole compressed payload and `raw_len` equal to the entry's: one byte
//!   different anywhere is a miss, and the payload goes through full verification;
//! - at most [`VERIFIED_BASES_MAX`] entries (memory stays bounded whatever the replicas send):
//!   once full, further overlays are still verified, just not remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use overlay::OverlayDoc;

use crate::boot::Hash;

/// Overlays remembered at most. A storm sees one current overlay per vCluster, plus the
/// previous one for a while after a commit; 256 covers hundreds of vClusters at ~1–2 MB
/// each (compressed bytes + document) in the worst case.
pub const VERIFIED_BASES_MAX: usize = 256;

/// Overlays this process has verified, by overlay hash. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub struct VerifiedBases {
    entries: Mutex<HashMap<Hash, Arc<VerifiedBase>>>,
}

#[derive(Debug)]
struct VerifiedBase {
    compressed: Bytes,
    raw_len: u64,
    doc: Arc<OverlayDoc>,
}

impl VerifiedBases {
    pub fn new() -> Self {
        Self::default()
    }

    /// The verified document of `hash` if `compressed` and `raw_len` are exactly the bytes that
    /// were verified for it; `None` means: verify in full.
    pub fn get(&self, hash: &Hash, compressed: &[u8], raw_len: u64) -> Option<Arc<OverlayDoc>> {
        let entry = self.lock().get(hash).cloned()?;
        (entry.raw_len == raw_len && entry.compressed[..] == *compressed).then(|| entry.doc.clone())
    }

    /// Remembers a payload that `decode_overlay` verified to `hash` (the caller's duty).
    /// Ignored when full or when `hash` is already known.
    pub fn insert_verified(
        &self,
        hash: Hash,
        compressed: Bytes,
        raw_len: u64,
        doc: Arc<OverlayDoc>,
    ) {
        let mut entries = self.lock();
        if entries.len() >= VERIFIED_BASES_MAX {
            return;
        }
        entries.entry(hash).or_insert_with(|| {
            Arc::new(VerifiedBase {
                compressed,
                raw_len,
                doc,
            })
        });
        debug_assert!(entries.len() <= VERIFIED_BASES_MAX);
    }

    /// Overlays remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Arc<VerifiedBase>>> {
        // A panic while holding the lock cannot leave the map half-updated (one insert).
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
