//! The commit journal: what makes an apply all-or-nothing across a crash.
//!
//! Apply stages every new file and symlink under a temporary name in its target directory
//! (fsynced, directories fsynced), then writes this journal — the root, and the list of
//! operations: renames `(directory, temp, final)` and removals `(directory, name)` — to the
//! agent's state directory (0600 file, fsynced, renamed into place), performs the operations,
//! fsyncs the directories, and removes the journal.
//!
//! Recovery **rolls forward**: a journal exists only once every temp file in it is complete
//! and durable, so finishing its operations gives exactly the new set. Rolling back would
//! need a durable copy of every old file (twice the space and writes, on every boot) to
//! restore a state that is being replaced anyway. Each operation is idempotent — a rename
//! whose temp is gone was done, a removal whose name is gone was done — so a crash during
//! recovery is recovered the same way. [`complete_interrupted_apply`] runs first on every
//! apply (and the agent runs it before fetching).
//!
//! Invariants: every operation resolves its directory beneath the root (`beneath::Root`) and
//! compares it with the directory identity staged into; a mismatch (swapped for a symlink,
//! moved) stops the commit with an error and keeps the journal, never renames elsewhere.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::apply::beneath::{identity, Root};
use crate::apply::error::ApplyError;
use crate::apply::statedir::StateDir;
use crate::apply::sys;

/// The journal's name in the state directory.
pub const APPLY_JOURNAL_NAME: &str = "apply-journal";

/// Largest journal read back: a bounded read of a file only this agent writes (an overlay's
/// operations take well under 1 MiB).
const JOURNAL_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Format version of the journal file.
const JOURNAL_FORMAT_VERSION: u64 = 1;

/// One operation of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Rename `temp` over `name` in directory `dir` (relative to the root, `""` = the root),
    /// whose identity `(st_dev, st_ino)` was `id` when the temp was staged.
    Rename {
        dir: String,
        id: (u64, u64),
        temp: String,
        name: String,
    },
    /// Remove `name` (a file or symlink) from `dir`.
    Remove { dir: String, name: String },
}

impl Op {
    /// The root-relative path the operation changes, as documents name it.
    pub(crate) fn path(&self) -> String {
        let (dir, name) = match self {
            Op::Rename { dir, name, .. } | Op::Remove { dir, name } => (dir, name),
        };
        if dir.is_empty() {
            format!("/{name}")
        } else {
            format!("/{dir}/{name}")
        }
    }

    fn dir(&self) -> &str {
        match self {
            Op::Rename { dir, .. } | Op::Remove { dir, .. } => dir,
        }
    }
}

pub(crate) fn encode(root: &Path, ops: &[Op]) -> Result<Vec<u8>, String> {
    let root = root
        .to_str()
        .ok_or_else(|| format!("root {root:?} is not UTF-8"))?;
    let ops: Vec<serde_json::Value> = ops
        .iter()
        .map(|op| match op {
            Op::Rename {
                dir,
                id,
                temp,
                name,
            } => serde_json::json!({"rename": {"dir": dir, "dev": id.0, "ino": id.1, "temp": temp, "name": name}}),
            Op::Remove { dir, name } => serde_json::json!({"remove": {"dir": dir, "name": name}}),
        })
        .collect();
    let document =
        serde_json::json!({"format_version": JOURNAL_FORMAT_VERSION, "root": root, "ops": ops});
    Ok(serde_json::to_vec(&document).expect("JSON of strings and numbers"))
}

fn decode(bytes: &[u8]) -> Result<(PathBuf, Vec<Op>), String> {
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
    if document["format_version"].as_u64() != Some(JOURNAL_FORMAT_VERSION) {
        return Err("unknown format_version".into());
    }
    let root = document["root"].as_str().ok_or("no root")?;
    let text = |value: &serde_json::Value, key: &str| -> Result<String, String> {
        let text = value[key].as_str().ok_or(format!("an op without {key}"))?;
        // Names are single components; dirs are relative paths without '.' or '..'.
        let bad = text.split('/').any(|c| c == ".." || c == ".") || text.starts_with('/');
        if bad || (key != "dir" && (text.is_empty() || text.contains('/'))) {
            return Err(format!("{key} {text:?} is not a plain relative name"));
        }
        Ok(text.to_owned())
    };
    let mut ops = Vec::new();
    for op in document["ops"].as_array().ok_or("no ops")? {
        if let Some(rename) = op.get("rename") {
            let id = (
                rename["dev"].as_u64().ok_or("no dev")?,
                rename["ino"].as_u64().ok_or("no ino")?,
            );
            ops.push(Op::Rename {
                dir: text(rename, "dir")?,
                id,
                temp: text(rename, "temp")?,
                name: text(rename, "name")?,
            });
        } else if let Some(remove) = op.get("remove") {
            ops.push(Op::Remove {
                dir: text(remove, "dir")?,
                name: text(remove, "name")?,
            });
        } else {
            return Err("an op that is neither rename nor remove".into());
        }
    }
    Ok((PathBuf::from(root), ops))
}

/// Performs `ops` in order (each idempotent), then fsyncs every directory they touched.
/// `stop_after` (tests) returns an error after that many operations, as a crash would.
pub(crate) fn perform(
    root: &Root,
    ops: &[Op],
    journal: &Path,
    stop_after: Option<usize>,
) -> Result<(), ApplyError> {
    let commit_error = |op: &Op, source: io::Error| ApplyError::Commit {
        path: op.path(),
        journal: journal.to_owned(),
        source,
    };
    for (index, op) in ops.iter().enumerate() {
        if stop_after == Some(index) {
            let crash = io::Error::other("simulated crash (test hook)");
            return Err(commit_error(op, crash));
        }
        perform_one(root, op).map_err(|source| match source.raw_os_error() {
            Some(libc::EXDEV | libc::ELOOP | libc::ESTALE) => {
                ApplyError::Swapped { path: op.path() }
            }
            _ => commit_error(op, source),
        })?;
    }
    let dirs: BTreeSet<&str> = ops.iter().map(Op::dir).collect();
    for dir in dirs {
        let fd = match root.dir(dir) {
            // Only removals named it, and they found nothing.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => continue,
            other => other,
        };
        let fd = fd.map_err(|source| ApplyError::Io {
            op: "open for fsync",
            path: format!("/{dir}"),
            source,
        })?;
        sys::fsync(fd.as_fd()).map_err(|source| ApplyError::Io {
            op: "fsync",
            path: format!("/{dir}"),
            source,
        })?;
    }
    Ok(())
}

fn perform_one(root: &Root, op: &Op) -> io::Result<()> {
    match op {
        Op::Rename {
            dir,
            id,
            temp,
            name,
        } => {
            let fd = root.dir(dir)?;
            if identity(fd.as_fd())? != *id {
                // Not the directory the temp was staged in: never rename into it.
                return Err(io::Error::from_raw_os_error(libc::ESTALE));
            }
            let temp = sys::name(temp)?;
            match sys::lstatat(fd.as_fd(), &temp) {
                // Renamed before the interruption.
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                Err(error) => Err(error),
                Ok(_) => sys::renameat(fd.as_fd(), &temp, &sys::name(name)?),
            }
        }
        Op::Remove { dir, name } => {
            let fd = match root.dir(dir) {
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                other => other?,
            };
            let name = sys::name(name)?;
            match sys::lstatat(fd.as_fd(), &name) {
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                Err(error) => Err(error),
                Ok(stat) if sys::kind(&stat) == libc::S_IFDIR => {
                    Err(io::Error::from_raw_os_error(libc::EISDIR))
                }
                Ok(_) => sys::unlinkat(fd.as_fd(), &name, 0),
            }
        }
    }
}

/// Completes a commit an earlier run left unfinished in `state_dir` (see the module doc);
/// `Ok(None)` when there is none, `Ok(Some(n))` after performing its `n` operations.
pub fn complete_interrupted_apply(state_dir: &Path) -> Result<Option<usize>, ApplyError> {
    let state_error = |source| ApplyError::StateDir {
        path: state_dir.to_owned(),
        source,
    };
    let Some(state) = StateDir::open_existing(state_dir).map_err(state_error)? else {
        return Ok(None);
    };
    let Some(bytes) = state
        .read(APPLY_JOURNAL_NAME, JOURNAL_SIZE_MAX_BYTES)
        .map_err(state_error)?
    else {
        return Ok(None);
    };
    let journal = state_dir.join(APPLY_JOURNAL_NAME);
    let (root_path, ops) = decode(&bytes).map_err(|reason| ApplyError::Journal {
        path: journal.clone(),
        reason,
    })?;
    let root = Root::open(&root_path).map_err(|source| ApplyError::RootNotADirectory {
        root: root_path.clone(),
        source,
    })?;
    perform(&root, &ops, &journal, None)?;
    state.remove(APPLY_JOURNAL_NAME).map_err(state_error)?;
    Ok(Some(ops.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_round_trips_and_refuses_names_that_climb() {
        let ops = vec![
            Op::Rename {
                dir: "etc/ssh".into(),
                id: (1, 2),
                temp: ".bootstorm-1.tmp".into(),
                name: "sshd_config".into(),
            },
            Op::Remove {
                dir: "".into(),
                name: "old".into(),
            },
        ];
        let bytes = encode(Path::new("/mnt/root"), &ops).unwrap();
        assert_eq!(decode(&bytes).unwrap(), (PathBuf::from("/mnt/root"), ops));
        let climbing = String::from_utf8(bytes)
            .unwrap()
            .replace("etc/ssh", "../etc");
        assert!(decode(climbing.as_bytes()).is_err());
        let slash =
            r#"{"format_version":1,"root":"/r","ops":[{"remove":{"dir":"","name":"a/b"}}]}"#;
        assert!(decode(slash.as_bytes()).is_err());
    }
}
