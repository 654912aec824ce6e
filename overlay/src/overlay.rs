//! Phase 1: a vCluster's base overlay as a canonical document, hashed with blake3 and
//! compressed with zstd; and its strict, bounded, verify-first decoder.
//!
//! Canonical overlay document, format version 1, or 2 exactly when it holds a symlink (encoding
//! of each field in [`crate::codec`]; the version is a function of the content, so builds stay
//! deterministic, and version 1 documents are what they always were):
//!
//! ```text
//! magic "BSOVRLAY" (8 bytes) | version u16 = 1 | 2
//! vcluster str | seq u64
//! policy.description str | policy.auto_converge bool | policy.settings map
//! files (path, mode, owner, content), paths ascending   -- state.vcluster_config(vc).files
//! settings map, keys ascending                           -- state.vcluster_config(vc).settings
//! ```
//!
//! Invariants:
//! - pure: the same journal state gives the same canonical bytes and the same blake3 on every
//!   machine (no clock, no map-order effects: every collection is a sorted `BTreeMap`);
//! - the hash covers the canonical (uncompressed) bytes, so it does not depend on the zstd
//!   version; the compressed bytes are deterministic for the zstd pinned in Cargo.lock;
//! - an [`OverlayDoc`] exists only if it was built from a state or decoded from bytes whose
//!   blake3 matched the expected hash: it has no public constructor and no `Deserialize`;
//! - decoding never allocates more than [`OVERLAY_RAW_SIZE_MAX_BYTES`] and hashes before it
//!   parses.

use std::collections::BTreeMap;

use bytes::Bytes;
use config::{BootOverlay, FileSpec, JournalState, Seq, StateDelta, VClusterId, VClusterPolicy};

use crate::codec::{size, DocError, Reader, Writer};
use crate::error::{hex, BuildError, DecodeError};
use crate::limits::{
    OVERLAY_COMPRESSED_SIZE_MAX_BYTES, OVERLAY_RAW_SIZE_MAX_BYTES, OVERLAY_ZSTD_LEVEL,
};

/// First bytes of every canonical overlay document.
pub const OVERLAY_MAGIC: [u8; 8] = *b"BSOVRLAY";

/// The newest canonical overlay format this build writes and reads: 2, the first with
/// symlinks. Documents without symlinks are written as version 1.
pub const OVERLAY_FORMAT_VERSION: u16 = 2;

/// The format version a document with these files is written as: 2 if it holds a symlink.
pub(crate) fn format_version(files: &BTreeMap<String, FileSpec>) -> u16 {
    if files.values().any(FileSpec::is_symlink) {
        2
    } else {
        1
    }
}

/// Refuses a version-2 document without symlinks: writers would have written version 1, and
/// a format has one encoding per value.
pub(crate) fn check_version_matches(
    version: u16,
    files: &BTreeMap<String, FileSpec>,
    offset: usize,
) -> Result<(), DocError> {
    if version != format_version(files) {
        return Err(DocError::Malformed {
            offset,
            field: "format version",
            reason: format!("is {version} but the document holds no symlink (writers use 1)"),
        });
    }
    Ok(())
}

/// A vCluster's base overlay, verified: built from a local state or decoded from bytes whose
/// blake3 matched. The only input [`crate::apply_to_root`] accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayDoc {
    vcluster: VClusterId,
    seq: Seq,
    policy: VClusterPolicy,
    files: BTreeMap<String, FileSpec>,
    settings: BTreeMap<String, String>,
    /// blake3 of the canonical bytes this document was built as or decoded from.
    hash: [u8; 32],
}

impl OverlayDoc {
    pub fn vcluster(&self) -> &str {
        &self.vcluster
    }

    /// The latest seq affecting the vCluster when this overlay was built.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    pub fn policy(&self) -> &VClusterPolicy {
        &self.policy
    }

    /// Layered global + vCluster files, by absolute path.
    pub fn files(&self) -> &BTreeMap<String, FileSpec> {
        &self.files
    }

    /// Layered global + vCluster settings.
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// blake3 of [`Self::canonical_bytes`].
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The canonical encoding of this document (what the hash covers).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        encode(
            &self.vcluster,
            self.seq,
            &self.policy,
            &self.files,
            &self.settings,
        )
    }

    /// Test-only constructor: lets this crate's tests hand `apply_to_root` a document that
    /// decode would have refused, to check that apply refuses it too.
    #[cfg(test)]
    pub(crate) fn unchecked_for_tests(
        vcluster: &str,
        seq: Seq,
        files: BTreeMap<String, FileSpec>,
        settings: BTreeMap<String, String>,
    ) -> Self {
        let mut doc = OverlayDoc {
            vcluster: vcluster.to_owned(),
            seq,
            policy: VClusterPolicy::default(),
            files,
            settings,
            hash: [0; 32],
        };
        doc.hash = *blake3::hash(&doc.canonical_bytes()).as_bytes();
        doc
    }
}

/// Key of a built overlay: which vCluster, as of which seq. What the cache is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OverlayKey {
    pub vcluster: VClusterId,
    pub seq: Seq,
}

impl OverlayKey {
    /// The key of `vcluster`'s current overlay in `state`: `(vcluster, latest_seq_affecting)`.
    pub fn current(state: &JournalState, vcluster: &str) -> Self {
        OverlayKey {
            vcluster: vcluster.to_owned(),
            seq: state.latest_seq_affecting(vcluster),
        }
    }
}

/// Whether an overlay built at `overlay_seq` is stale for `vcluster` in `state`: some commit
/// after it changed global or vCluster config or the policy. Same rule as
/// `JournalState::overlay_is_stale`, for overlays held outside the state (cache, agent).
pub fn overlay_seq_is_stale(state: &JournalState, vcluster: &str, overlay_seq: Seq) -> bool {
    overlay_seq < state.latest_seq_affecting(vcluster)
}

fn encoded_len(
    vcluster: &str,
    policy: &VClusterPolicy,
    files: &BTreeMap<String, FileSpec>,
    settings: &BTreeMap<String, String>,
) -> usize {
    OVERLAY_MAGIC.len()
        + 2
        + size::str(vcluster)
        + 8
        + size::str(&policy.description)
        + 1
        + size::map(&policy.settings)
        + size::files(files)
        + size::map(settings)
}

fn encode(
    vcluster: &str,
    seq: Seq,
    policy: &VClusterPolicy,
    files: &BTreeMap<String, FileSpec>,
    settings: &BTreeMap<String, String>,
) -> Vec<u8> {
    let len_bytes = encoded_len(vcluster, policy, files, settings);
    let mut writer = Writer::with_capacity(len_bytes);
    writer.raw(&OVERLAY_MAGIC);
    writer.u16(format_version(files));
    writer.str(vcluster);
    writer.u64(seq);
    writer.str(&policy.description);
    writer.bool(policy.auto_converge);
    writer.map(&policy.settings);
    writer.files(files);
    writer.map(settings);
    let raw = writer.finish();
    debug_assert_eq!(raw.len(), len_bytes, "encoded_len is exact");
    raw
}

/// What both builders share: the parts of the document, read from the state, size-checked.
struct Parts<'a> {
    vcluster: &'a str,
    seq: Seq,
    policy: &'a VClusterPolicy,
    config: StateDelta,
}

fn parts<'a>(state: &'a JournalState, vcluster: &'a str) -> Result<Parts<'a>, BuildError> {
    let policy = state
        .policies
        .get(vcluster)
        .ok_or_else(|| BuildError::UnknownVCluster(vcluster.to_owned()))?;
    let seq = state.latest_seq_affecting(vcluster);
    let config = state.vcluster_config(vcluster);
    let raw_len_bytes = encoded_len(vcluster, policy, &config.files, &config.settings);
    if raw_len_bytes > OVERLAY_RAW_SIZE_MAX_BYTES {
        return Err(BuildError::OverlayTooLarge {
            vcluster: vcluster.to_owned(),
            seq,
            raw_len_bytes,
            max_bytes: OVERLAY_RAW_SIZE_MAX_BYTES,
        });
    }
    Ok(Parts {
        vcluster,
        seq,
        policy,
        config,
    })
}

/// Builds `vcluster`'s overlay from `state`: canonical bytes → blake3 → zstd. Pure: the same
/// state gives byte-identical output. The result is what the leader proposes as `SetOverlay`.
pub fn build_overlay(state: &JournalState, vcluster: &str) -> Result<BootOverlay, BuildError> {
    OverlayInputs::from_state(state, vcluster)?.build()
}

/// Everything an overlay is built from, copied out of the state in one read. The copy is
/// cheap (file contents are shared `Bytes`; tens of µs for the demo's vClusters); encoding,
/// hashing and compressing are not (~0.3 ms for 1 MB), so a replica takes the inputs under
/// its state lock and builds after releasing it: the state machine is never held up by a
/// build, and the overlay still matches exactly the seq it claims.
/// `OverlayInputs::from_state(s, vc)?.build()` is [`build_overlay`]`(s, vc)`, byte for byte.
#[derive(Clone, Debug)]
pub struct OverlayInputs {
    vcluster: String,
    seq: Seq,
    policy: VClusterPolicy,
    config: StateDelta,
}

impl OverlayInputs {
    /// The inputs of `vcluster`'s overlay as `state` is now, size-checked.
    pub fn from_state(state: &JournalState, vcluster: &str) -> Result<Self, BuildError> {
        let parts = parts(state, vcluster)?;
        Ok(OverlayInputs {
            vcluster: parts.vcluster.to_owned(),
            seq: parts.seq,
            policy: parts.policy.clone(),
            config: parts.config,
        })
    }

    /// The seq the overlay will claim (the newest seq affecting its vCluster).
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Encodes, hashes and compresses. Pure.
    pub fn build(&self) -> Result<BootOverlay, BuildError> {
        let raw = encode(
            &self.vcluster,
            self.seq,
            &self.policy,
            &self.config.files,
            &self.config.settings,
        );
        let hash = *blake3::hash(&raw).as_bytes();
        let compressed =
            zstd::bulk::compress(&raw, OVERLAY_ZSTD_LEVEL).map_err(BuildError::Compress)?;
        if compressed.len() > OVERLAY_COMPRESSED_SIZE_MAX_BYTES {
            return Err(BuildError::OverlayCompressedTooLarge {
                vcluster: self.vcluster.clone(),
                seq: self.seq,
                compressed_len_bytes: compressed.len(),
                max_bytes: OVERLAY_COMPRESSED_SIZE_MAX_BYTES,
            });
        }
        Ok(BootOverlay {
            seq: self.seq,
            hash,
            raw_len: raw.len() as u64,
            compressed: Bytes::from(compressed),
        })
    }
}

/// Builds `vcluster`'s overlay document from `state` without compressing it (e.g. to apply it
/// locally). Equal to what [`decode_overlay`] returns for [`build_overlay`]'s output.
pub fn overlay_doc(state: &JournalState, vcluster: &str) -> Result<OverlayDoc, BuildError> {
    let parts = parts(state, vcluster)?;
    let mut doc = OverlayDoc {
        vcluster: parts.vcluster.to_owned(),
        seq: parts.seq,
        policy: parts.policy.clone(),
        files: parts.config.files,
        settings: parts.config.settings,
        hash: [0; 32],
    };
    doc.hash = *blake3::hash(&doc.canonical_bytes()).as_bytes();
    Ok(doc)
}

/// Decodes an overlay received from the network: bounded decompression (at most
/// `min(raw_len_max, OVERLAY_RAW_SIZE_MAX_BYTES)` bytes; a zstd bomb is refused), blake3 checked
/// against `expected_hash` *before* parsing, then a strict parse. Never panics on garbage.
pub fn decode_overlay(
    compressed: &[u8],
    expected_hash: &[u8; 32],
    raw_len_max: u64,
) -> Result<OverlayDoc, DecodeError> {
    if compressed.len() > OVERLAY_COMPRESSED_SIZE_MAX_BYTES {
        return Err(DecodeError::InputTooLarge {
            what: "compressed overlay",
            len_bytes: compressed.len(),
            max_bytes: OVERLAY_COMPRESSED_SIZE_MAX_BYTES,
        });
    }
    let max_bytes = usize::try_from(raw_len_max)
        .unwrap_or(usize::MAX)
        .min(OVERLAY_RAW_SIZE_MAX_BYTES);
    let raw = decompress_bounded(compressed, max_bytes)?;
    let actual = blake3::hash(&raw);
    if actual.as_bytes() != expected_hash {
        return Err(DecodeError::HashMismatch {
            what: "overlay",
            expected: hex(expected_hash),
            actual: actual.to_hex().to_string(),
        });
    }
    Ok(parse(Bytes::from(raw), *actual.as_bytes())?)
}

/// Decodes a [`BootOverlay`] (as stored in the state machine or received with its header),
/// bounding decompression by its `raw_len`.
pub fn decode_boot_overlay(overlay: &BootOverlay) -> Result<OverlayDoc, DecodeError> {
    decode_overlay(&overlay.compressed, &overlay.hash, overlay.raw_len)
}

fn decompress_bounded(compressed: &[u8], max_bytes: usize) -> Result<Vec<u8>, DecodeError> {
    let decompress_error = |reason: String| DecodeError::Decompress { reason, max_bytes };
    // The (first) frame header declares the content size (our encoder writes one frame and
    // always declares it): refuse a bomb before allocating anything. Further frames, or a
    // header that lies, fail below when the output would outgrow `capacity`.
    let capacity = match zstd::zstd_safe::get_frame_content_size(compressed) {
        Ok(Some(declared)) if declared > max_bytes as u64 => {
            return Err(DecodeError::RawTooLarge {
                declared_bytes: declared,
                max_bytes,
            })
        }
        Ok(Some(declared)) => declared as usize,
        Ok(None) => max_bytes,
        Err(_) => return Err(decompress_error("no valid zstd frame header".into())),
    };
    // Bulk decompression writes into a buffer of exactly `capacity` bytes and fails rather than
    // grow it, so a lying header cannot make it allocate more.
    let raw = zstd::bulk::Decompressor::new()
        .and_then(|mut decompressor| decompressor.decompress(compressed, capacity))
        .map_err(|error| decompress_error(error.to_string()))?;
    assert!(raw.len() <= max_bytes, "bulk decompression is bounded");
    Ok(raw)
}

fn parse(raw: Bytes, hash: [u8; 32]) -> Result<OverlayDoc, DocError> {
    let mut reader = Reader::new(raw);
    let version = reader.header("overlay", &OVERLAY_MAGIC, 1..=OVERLAY_FORMAT_VERSION)?;
    let vcluster = reader.name("vcluster")?;
    let seq = reader.u64("seq")?;
    let description = reader.text("policy description")?;
    let auto_converge = reader.bool("policy auto_converge")?;
    let policy_settings = reader.map("policy settings")?;
    let files = reader.files("files", version >= 2)?;
    check_version_matches(version, &files, 8)?;
    let settings = reader.map("settings")?;
    reader.finish()?;
    Ok(OverlayDoc {
        vcluster,
        seq,
        policy: VClusterPolicy {
            description,
            auto_converge,
            settings: policy_settings,
        },
        files,
        settings,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{file, small_state};
    use proptest::prelude::*;

    #[test]
    fn inputs_taken_then_built_later_equal_a_build_from_the_state() {
        let mut state = small_state();
        let inputs = OverlayInputs::from_state(&state, "compute").unwrap();
        let direct = build_overlay(&state, "compute").unwrap();
        assert_eq!(inputs.seq(), direct.seq);
        // The state moves on after the inputs were taken: the build still reflects their seq.
        state.overlays.clear();
        state.policies.clear();
        assert_eq!(inputs.build().unwrap(), direct);
        assert!(matches!(
            OverlayInputs::from_state(&state, "compute"),
            Err(BuildError::UnknownVCluster(_))
        ));
    }

    #[test]
    fn build_then_decode_gives_the_built_document() {
        let state = small_state();
        let built = build_overlay(&state, "compute").unwrap();
        let doc = decode_boot_overlay(&built).unwrap();
        assert_eq!(doc, overlay_doc(&state, "compute").unwrap());
        assert_eq!(doc.seq(), state.latest_seq_affecting("compute"));
        assert_eq!(doc.hash(), &built.hash);
        assert_eq!(doc.canonical_bytes().len() as u64, built.raw_len);
        // vCluster layered over global.
        assert_eq!(&doc.files()["/etc/motd"].content[..], b"compute motd\n");
        assert_eq!(
            &doc.files()["/etc/hosts"].content[..],
            b"127.0.0.1 localhost\n"
        );
        assert_eq!(doc.settings()["site"], "demo");
        assert!(doc.policy().auto_converge);
    }

    #[test]
    fn canonical_bytes_start_with_magic_and_version() {
        let doc = overlay_doc(&small_state(), "compute").unwrap();
        let raw = doc.canonical_bytes();
        assert_eq!(&raw[..8], b"BSOVRLAY");
        assert_eq!(&raw[8..10], &[1, 0]);
    }

    #[test]
    fn a_document_with_a_symlink_is_version_2_and_round_trips() {
        let mut state = small_state();
        let mut delta = StateDelta::default();
        delta
            .files
            .insert("/bin".into(), FileSpec::symlink("usr/bin"));
        crate::test_support::commit(&mut state, config::Scope::Global, delta);
        let built = build_overlay(&state, "compute").unwrap();
        let doc = decode_boot_overlay(&built).unwrap();
        assert_eq!(&doc.canonical_bytes()[8..10], &[2, 0]);
        assert!(doc.files()["/bin"].is_symlink());
        assert_eq!(doc, overlay_doc(&state, "compute").unwrap());
        // A version-1 document may not carry one (an older writer could not have made it).
        let mut raw = doc.canonical_bytes();
        raw[8] = 1;
        assert!(decode_raw(&raw).unwrap_err().to_string().contains("mode"));
    }

    #[test]
    fn unknown_vcluster_is_a_typed_error() {
        let error = build_overlay(&small_state(), "nope").unwrap_err();
        assert!(matches!(error, BuildError::UnknownVCluster(name) if name == "nope"));
    }

    #[test]
    fn hash_mismatch_is_refused_before_parsing() {
        let built = build_overlay(&small_state(), "compute").unwrap();
        let mut wrong = built.hash;
        wrong[0] ^= 1;
        let error = decode_overlay(&built.compressed, &wrong, built.raw_len).unwrap_err();
        assert!(matches!(error, DecodeError::HashMismatch { .. }), "{error}");
    }

    #[test]
    fn raw_len_max_below_the_real_size_is_refused() {
        let built = build_overlay(&small_state(), "compute").unwrap();
        let error = decode_overlay(&built.compressed, &built.hash, built.raw_len - 1).unwrap_err();
        assert!(matches!(error, DecodeError::RawTooLarge { .. }), "{error}");
    }

    #[test]
    fn a_zstd_bomb_is_refused_without_decompressing() {
        // 64 MiB of zeros compresses to a few KB; its header declares the real size.
        let zeros = vec![0u8; 64 * 1024 * 1024];
        let bomb = zstd::bulk::compress(&zeros, 1).unwrap();
        let hash = *blake3::hash(&zeros).as_bytes();
        let error = decode_overlay(&bomb, &hash, u64::MAX).unwrap_err();
        assert!(
            matches!(error, DecodeError::RawTooLarge { max_bytes, .. } if max_bytes == OVERLAY_RAW_SIZE_MAX_BYTES),
            "{error}"
        );
    }

    #[test]
    fn a_zstd_bomb_without_declared_size_is_refused_at_the_bound() {
        // A streaming frame does not declare its size: decompression stops at the bound.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, &vec![0u8; 16 * 1024 * 1024]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&bomb),
            Ok(None)
        ));
        let error = decode_overlay(&bomb, &[0; 32], u64::MAX).unwrap_err();
        assert!(matches!(error, DecodeError::Decompress { .. }), "{error}");
    }

    #[test]
    fn oversized_compressed_input_is_refused() {
        let input = vec![0u8; OVERLAY_COMPRESSED_SIZE_MAX_BYTES + 1];
        let error = decode_overlay(&input, &[0; 32], u64::MAX).unwrap_err();
        assert!(
            matches!(error, DecodeError::InputTooLarge { .. }),
            "{error}"
        );
    }

    /// Compresses `raw` and hashes it honestly, so decode gets past verification and the
    /// strict parser is what is tested.
    fn decode_raw(raw: &[u8]) -> Result<OverlayDoc, DecodeError> {
        let compressed = zstd::bulk::compress(raw, 1).unwrap();
        decode_overlay(&compressed, blake3::hash(raw).as_bytes(), u64::MAX)
    }

    #[test]
    fn a_verified_document_with_a_path_config_would_refuse_is_refused() {
        // A peer that bypasses config validation hashes its own crafted bytes: verification
        // passes, the strict parser must still refuse the path.
        let files = [("/etc/../../escape".to_owned(), file(0o644, b"x"))].into();
        let raw = encode(
            "compute",
            1,
            &VClusterPolicy::default(),
            &files,
            &BTreeMap::new(),
        );
        let error = decode_raw(&raw).unwrap_err();
        assert!(error.to_string().contains("escape"), "{error}");
    }

    #[test]
    fn wrong_magic_version_and_trailing_bytes_are_refused() {
        let mut raw = overlay_doc(&small_state(), "compute")
            .unwrap()
            .canonical_bytes();
        raw.push(0);
        assert!(decode_raw(&raw)
            .unwrap_err()
            .to_string()
            .contains("trailing"));
        raw.pop();
        raw[8] = 3;
        assert!(matches!(
            decode_raw(&raw).unwrap_err(),
            DecodeError::Doc(DocError::UnsupportedVersion { found: 3, .. })
        ));
        // Version 2 without a symlink is not canonical (writers use 1 for it).
        raw[8] = 2;
        assert!(decode_raw(&raw)
            .unwrap_err()
            .to_string()
            .contains("no symlink"));
        raw[0] = b'X';
        assert!(matches!(
            decode_raw(&raw).unwrap_err(),
            DecodeError::Doc(DocError::BadMagic { .. })
        ));
    }

    #[test]
    fn staleness_follows_latest_seq_affecting() {
        let state = small_state();
        let key = OverlayKey::current(&state, "compute");
        assert!(!overlay_seq_is_stale(&state, "compute", key.seq));
        assert!(overlay_seq_is_stale(&state, "compute", key.seq - 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Garbage from the network never panics the decoder.
        #[test]
        fn garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_raw(&raw);
            let _ = decode_overlay(&raw, &[0; 32], 1 << 20);
        }

        /// Every single-byte corruption of a valid document is refused or parsed, never panics;
        /// if it parses, it re-encodes to exactly the corrupted bytes (the format is canonical).
        #[test]
        fn corrupted_documents_never_panic(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut raw = overlay_doc(&small_state(), "compute").unwrap().canonical_bytes();
            let at = index.index(raw.len());
            raw[at] = byte;
            if let Ok(doc) = decode_raw(&raw) {
                prop_assert_eq!(doc.canonical_bytes(), raw);
            }
        }
    }
}
