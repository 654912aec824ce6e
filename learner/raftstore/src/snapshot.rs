//! Snapshot files: the journal state, postcard-encoded, zstd-compressed, in a checksummed
//! container, written atomically into `<data>/raft/snapshots/snap-{term}-{index}.bin`.
//!
//! File layout: magic `BSSNAP02` (8 bytes, last two = format version) · header length (u32 LE)
//! · header (postcard `SnapshotHeader`: snapshot meta incl. last log id and membership, state
//! and body lengths, blake3 of the body) · blake3 of the header (32 bytes) · body (zstd of
//! postcard `JournalState`). Format 01 (before `JournalState::revoked`) is still read: its
//! body is format 02's with the trailing field missing, which decodes as an empty set.
//!
//! Invariants:
//! - a snapshot file is visible under its final name only once complete and fsynced (temp +
//!   fsync + rename + directory fsync);
//! - a file is used only after both checksums match; a file that fails is reported
//!   (`tracing::error!` with its path, and in `SnapshotStore::corrupt_reports`), renamed to
//!   `*.corrupt` for the operator, and the next older one is tried — never silently used;
//! - at most `keep` (3) snapshot files remain after a new one is durable; the newest is never
//!   deleted.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use config::JournalState;

use crate::error::StoreError;
use crate::fsutil::{create_dir_durable, fsync_dir, remove_tmp_files, write_atomic};
use crate::limits::{
    SNAPSHOT_FILE_SIZE_MAX_BYTES, SNAPSHOT_HEADER_SIZE_MAX_BYTES, SNAPSHOT_STATE_SIZE_MAX_BYTES,
    SNAPSHOT_ZSTD_LEVEL,
};
use crate::types::{LogId, SnapshotMeta, StoredMembership};

/// First bytes of a snapshot file; the last two digits are the format version.
const SNAPSHOT_MAGIC: [u8; 8] = *b"BSSNAP02";
/// Format 01: `JournalState` without its last field, `revoked` (still read, never written).
const SNAPSHOT_MAGIC_V01: [u8; 8] = *b"BSSNAP01";
/// The postcard encoding of an empty map: what a format-01 body lacks at its end.
const EMPTY_REVOKED_V01: [u8; 1] = [0];
const CORRUPT_SUFFIX: &str = ".corrupt";

/// What precedes the body, checksummed on its own so a damaged header is caught before its
/// lengths are trusted.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMeta,
    /// Length of the postcard-encoded state (the decompressed body).
    state_bytes: u64,
    /// Length of the zstd body that follows the header.
    body_bytes: u64,
    body_blake3: [u8; 32],
}

/// A snapshot file that failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptSnapshot {
    /// The file as it was found.
    pub path: PathBuf,
    /// Where it was moved so it is not tried again (`None` if the rename failed too).
    pub quarantined_as: Option<PathBuf>,
    pub reason: String,
}

/// A verified snapshot image: the exact bytes of a snapshot file.
pub(crate) struct Image {
    pub(crate) meta: SnapshotMeta,
    pub(crate) bytes: Vec<u8>,
}

/// The snapshot id openraft reports: last log id and a prefix of the body checksum, so two
/// snapshots with the same last log id but different bytes are told apart.
fn snapshot_id(last_log_id: Option<LogId>, body_blake3: &blake3::Hash) -> String {
    let hash = &body_blake3.to_hex()[..16];
    match last_log_id {
        Some(id) => format!(
            "{}-{}-{}-{hash}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => format!("none-{hash}"),
    }
}

/// Encodes `state` as a complete snapshot file image.
pub(crate) fn encode_image(
    state: &JournalState,
    last_log_id: Option<LogId>,
    last_membership: StoredMembership,
) -> Result<Image, StoreError> {
    let raw = postcard::to_stdvec(state).map_err(|source| StoreError::Encode {
        what: "journal state",
        source,
    })?;
    encode_raw(SNAPSHOT_MAGIC, &raw, last_log_id, last_membership)
}

/// A snapshot file image of `magic`'s format around the postcard-encoded state `raw`.
fn encode_raw(
    magic: [u8; 8],
    raw: &[u8],
    last_log_id: Option<LogId>,
    last_membership: StoredMembership,
) -> Result<Image, StoreError> {
    let body = zstd::encode_all(raw, SNAPSHOT_ZSTD_LEVEL).map_err(|e| StoreError::Io {
        action: "zstd-compress",
        path: PathBuf::from("<snapshot in memory>"),
        source: e,
    })?;
    let body_blake3 = blake3::hash(&body);
    let meta = SnapshotMeta {
        last_log_id,
        last_membership,
        snapshot_id: snapshot_id(last_log_id, &body_blake3),
    };
    let header = SnapshotHeader {
        meta: meta.clone(),
        state_bytes: raw.len() as u64,
        body_bytes: body.len() as u64,
        body_blake3: *body_blake3.as_bytes(),
    };
    let header = postcard::to_stdvec(&header).map_err(|source| StoreError::Encode {
        what: "snapshot header",
        source,
    })?;
    let mut bytes = Vec::with_capacity(8 + 4 + header.len() + 32 + body.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(blake3::hash(&header).as_bytes());
    bytes.extend_from_slice(&body);
    Ok(Image { meta, bytes })
}

/// Checks magic, both checksums and lengths; returns the header and the body. The reason
/// string names what did not match.
fn verify_image(bytes: &[u8]) -> Result<(SnapshotHeader, &[u8]), String> {
    if bytes.len() as u64 > SNAPSHOT_FILE_SIZE_MAX_BYTES {
        return Err(format!(
            "{} bytes, more than the snapshot limit {SNAPSHOT_FILE_SIZE_MAX_BYTES}",
            bytes.len()
        ));
    }
    if bytes.len() < 12 || (bytes[..8] != SNAPSHOT_MAGIC && bytes[..8] != SNAPSHOT_MAGIC_V01) {
        return Err("bad magic or too short (not a bootstorm snapshot, or a newer format)".into());
    }
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    if header_len > SNAPSHOT_HEADER_SIZE_MAX_BYTES || bytes.len() < 12 + header_len + 32 {
        return Err(format!("header length {header_len} does not fit the file"));
    }
    let header_bytes = &bytes[12..12 + header_len];
    let header_sum = &bytes[12 + header_len..12 + header_len + 32];
    if blake3::hash(header_bytes).as_bytes() != header_sum {
        return Err("header blake3 checksum mismatch".into());
    }
    let header: SnapshotHeader = postcard::from_bytes(header_bytes)
        .map_err(|e| format!("header checksum ok but undecodable: {e}"))?;
    let body = &bytes[12 + header_len + 32..];
    if body.len() as u64 != header.body_bytes {
        return Err(format!(
            "body is {} bytes, header says {} (truncated file?)",
            body.len(),
            header.body_bytes
        ));
    }
    if blake3::hash(body).as_bytes() != &header.body_blake3 {
        return Err("body blake3 checksum mismatch".into());
    }
    if header.state_bytes > SNAPSHOT_STATE_SIZE_MAX_BYTES {
        return Err(format!(
            "state of {} bytes exceeds the limit {SNAPSHOT_STATE_SIZE_MAX_BYTES}",
            header.state_bytes
        ));
    }
    Ok((header, body))
}

/// Verifies and decodes an image into its meta and journal state.
pub(crate) fn decode_image(bytes: &[u8]) -> Result<(SnapshotMeta, JournalState), String> {
    let (header, body) = verify_image(bytes)?;
    let mut raw = Vec::with_capacity(header.state_bytes as usize);
    zstd::stream::read::Decoder::new(body)
        .map_err(|e| format!("zstd: {e}"))?
        .take(header.state_bytes + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("zstd: {e}"))?;
    if raw.len() as u64 != header.state_bytes {
        return Err(format!(
            "body decompresses to {} bytes, header says {}",
            raw.len(),
            header.state_bytes
        ));
    }
    if bytes[..8] == SNAPSHOT_MAGIC_V01 {
        // postcard is positional: the state as format 01 wrote it, plus an empty last field.
        raw.extend_from_slice(&EMPTY_REVOKED_V01);
    }
    let state = postcard::from_bytes(&raw)
        .map_err(|e| format!("state checksum ok but undecodable: {e}"))?;
    Ok((header.meta, state))
}

/// Sort key of a snapshot file: `None` (empty state) first, then by index, then term.
type SnapshotKey = Option<(u64, u64)>;

fn file_name(last_log_id: Option<LogId>) -> String {
    match last_log_id {
        Some(id) => format!("snap-{}-{}.bin", id.leader_id.term, id.index),
        None => "snap-none.bin".to_owned(),
    }
}

fn parse_file_name(name: &str) -> Option<SnapshotKey> {
    let stem = name.strip_prefix("snap-")?.strip_suffix(".bin")?;
    if stem == "none" {
        return Some(None);
    }
    let (term, index) = stem.split_once('-')?;
    Some(Some((index.parse().ok()?, term.parse().ok()?)))
}

/// The snapshot directory: writes, rotation, recovery, and the current snapshot.
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
    /// The newest durable snapshot: what `get_current_snapshot` returns.
    current: Mutex<Option<(SnapshotMeta, PathBuf)>>,
    /// Every file that failed verification since open (for tests, metrics and `status`).
    corrupt: Mutex<Vec<CorruptSnapshot>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
        .expect("snapshot store lock poisoned by an earlier panic")
}

impl SnapshotStore {
    /// Opens (creating) the snapshot directory and removes leftovers of interrupted writes.
    pub(crate) fn open(dir: &Path, keep: usize) -> Result<SnapshotStore, StoreError> {
        assert!(
            keep >= 1,
            "keeping zero snapshots would delete the one just written"
        );
        create_dir_durable(dir)?;
        remove_tmp_files(dir)?;
        Ok(SnapshotStore {
            dir: dir.to_owned(),
            keep,
            current: Mutex::new(None),
            corrupt: Mutex::new(Vec::new()),
        })
    }

    /// Snapshot files, newest first.
    fn list(&self) -> Result<Vec<(SnapshotKey, PathBuf)>, StoreError> {
        let mut files = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io("list", &self.dir, e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| StoreError::io("list", &self.dir, e))?
                .path();
            let key = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_file_name);
            if let Some(key) = key {
                files.push((key, path));
            }
        }
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(files)
    }

    /// Loads the newest snapshot that verifies, reporting and quarantining every newer one
    /// that does not. Sets it as the current snapshot.
    pub(crate) fn load_newest_valid(
        &self,
    ) -> Result<Option<(SnapshotMeta, JournalState)>, StoreError> {
        for (_, path) in self.list()? {
            let result = fs::read(&path)
                .map_err(|e| format!("unreadable: {e}"))
                .and_then(|bytes| decode_image(&bytes));
            match result {
                Ok((meta, state)) => {
                    tracing::info!(path = %path.display(), last_log_id = ?meta.last_log_id, "restored state machine from snapshot");
                    *lock(&self.current) = Some((meta.clone(), path));
                    return Ok(Some((meta, state)));
                }
                Err(reason) => self.report_corrupt(&path, reason),
            }
        }
        Ok(None)
    }

    fn report_corrupt(&self, path: &Path, reason: String) {
        let mut quarantine = path.as_os_str().to_owned();
        quarantine.push(CORRUPT_SUFFIX);
        let quarantine = PathBuf::from(quarantine);
        let quarantined_as = match fs::rename(path, &quarantine) {
            Ok(()) => Some(quarantine),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot move a corrupt snapshot aside");
                None
            }
        };
        tracing::error!(
            path = %path.display(),
            %reason,
            quarantined_as = ?quarantined_as,
            "snapshot file failed verification and is NOT used; trying the next older one"
        );
        lock(&self.corrupt).push(CorruptSnapshot {
            path: path.to_owned(),
            quarantined_as,
            reason,
        });
    }

    /// Every snapshot file that failed verification since open.
    pub fn corrupt_reports(&self) -> Vec<CorruptSnapshot> {
        lock(&self.corrupt).clone()
    }

    /// Writes a verified image durably, makes it current if it is the newest, and deletes
    /// snapshots beyond the newest `keep`. Blocking.
    pub(crate) fn write(&self, image: &Image) -> Result<PathBuf, StoreError> {
        let path = self.dir.join(file_name(image.meta.last_log_id));
        write_atomic(&path, &image.bytes)?;
        {
            let mut current = lock(&self.current);
            let index = |id: Option<LogId>| id.map(|id| id.index);
            let newer = match &*current {
                None => true,
                Some((meta, _)) => index(meta.last_log_id) <= index(image.meta.last_log_id),
            };
            if newer {
                *current = Some((image.meta.clone(), path.clone()));
            }
        }
        self.prune()?;
        Ok(path)
    }

    /// Deletes all but the newest `keep` snapshot files.
    fn prune(&self) -> Result<(), StoreError> {
        let files = self.list()?;
        if files.len() <= self.keep {
            return Ok(());
        }
        for (_, path) in &files[self.keep..] {
            fs::remove_file(path).map_err(|e| StoreError::io("remove old snapshot", path, e))?;
            tracing::debug!(path = %path.display(), "removed old snapshot");
        }
        fsync_dir(&self.dir)
    }

    /// The current snapshot's meta and file bytes, verified. Blocking.
    pub(crate) fn current(&self) -> Result<Option<Image>, StoreError> {
        let Some((meta, path)) = lock(&self.current).clone() else {
            return Ok(None);
        };
        let bytes = fs::read(&path).map_err(|e| StoreError::io("read snapshot", &path, e))?;
        if let Err(reason) = verify_image(&bytes) {
            self.report_corrupt(&path, reason.clone());
            return Err(StoreError::corrupt(&path, reason));
        }
        Ok(Some(Image { meta, bytes }))
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_revocation() -> JournalState {
        let mut state = config::demo::demo_state(&config::demo::DemoSpec {
            nodes: 4,
            ..Default::default()
        });
        let revoke = config::JournalCommand::RevokeCertificate {
            certificate: config::RevokedCertificate::Serial("a1b".into()),
            reason: "leak".into(),
            author: "alice".into(),
            timestamp_ms: 1,
        };
        config::apply(&mut state, revoke).unwrap();
        state
    }

    #[test]
    fn the_revoked_set_survives_a_snapshot() {
        let state = state_with_revocation();
        let image = encode_image(&state, None, StoredMembership::default()).unwrap();
        let (_, decoded) = decode_image(&image.bytes).unwrap();
        assert_eq!(decoded, state);
        assert_eq!(decoded.revoked.len(), 1);
    }

    /// A format-01 file (written before `revoked` existed) is the same state, no revocations.
    #[test]
    fn a_format_01_snapshot_decodes_with_nothing_revoked() {
        let mut state = state_with_revocation();
        state.revoked.clear();
        let mut raw = postcard::to_stdvec(&state).unwrap();
        assert_eq!(
            raw.pop(),
            Some(EMPTY_REVOKED_V01[0]),
            "revoked is the last field"
        );
        let image =
            encode_raw(SNAPSHOT_MAGIC_V01, &raw, None, StoredMembership::default()).unwrap();
        let (_, decoded) = decode_image(&image.bytes).unwrap();
        assert_eq!(decoded, state);
    }
}
