//! File primitives of the raft data directory: atomic replace, directory fsync, and small
//! checksummed metadata files (vote, committed, purged).
//!
//! Invariants: `write_atomic` returns only after the new content and its directory entry are
//! durable (temp + fsync + rename + directory fsync), so a crash leaves either the old or the new
//! file, never a mix; a metadata file whose checksum does not match is an error naming the file,
//! never read as "absent".

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StoreError;
use crate::limits::META_FILE_SIZE_MAX_BYTES;

/// First bytes of every metadata file; the last two digits are the format version.
const META_MAGIC: [u8; 8] = *b"BSMETA01";
/// Suffix of a file being written by `write_atomic`; leftovers are deleted on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Makes the directory entries of `dir` (creates, renames, deletes) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Creates `dir` (and parents) and makes its entry durable in its parent.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = tmp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("fsync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StoreError::io("rename into place", path, e))?;
    fsync_dir(path.parent().expect("data files live in a directory"))
}

/// Deletes `*.tmp` leftovers of writes a crash interrupted (they were never renamed into place,
/// so nothing refers to them).
pub(crate) fn remove_tmp_files(dir: &Path) -> Result<(), StoreError> {
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| StoreError::io("list", dir, e))?.path();
        if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            tracing::warn!(path = %path.display(), "removing a temp file left by an interrupted write");
            fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        }
    }
    Ok(())
}

/// Writes a small metadata value: magic, payload length, postcard payload, blake3 of payload.
pub(crate) fn write_meta<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let payload = postcard::to_stdvec(value).map_err(|source| StoreError::Encode {
        what: "metadata",
        source,
    })?;
    let mut bytes = Vec::with_capacity(META_MAGIC.len() + 4 + payload.len() + 32);
    bytes.extend_from_slice(&META_MAGIC);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(blake3::hash(&payload).as_bytes());
    write_atomic(path, &bytes)
}

/// Reads a metadata value written by `write_meta`; `None` if the file does not exist.
pub(crate) fn read_meta<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(META_FILE_SIZE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io("read", path, e))?;
    if bytes.len() as u64 > META_FILE_SIZE_MAX_BYTES {
        return Err(StoreError::corrupt(path, "larger than any metadata file"));
    }
    let header_len = META_MAGIC.len() + 4;
    if bytes.len() < header_len + 32 || bytes[..META_MAGIC.len()] != META_MAGIC {
        return Err(StoreError::corrupt(path, "bad magic or too short"));
    }
    let len = u32::from_le_bytes(bytes[META_MAGIC.len()..header_len].try_into().unwrap()) as usize;
    if bytes.len() != header_len + len + 32 {
        return Err(StoreError::corrupt(
            path,
            "length field does not match file size",
        ));
    }
    let payload = &bytes[header_len..header_len + len];
    if blake3::hash(payload).as_bytes() != &bytes[header_len + len..] {
        return Err(StoreError::corrupt(path, "blake3 checksum mismatch"));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|e| StoreError::corrupt(path, format!("undecodable: {e}")))
}
