//! Why an apply was refused or failed, each with what to do about it.
//!
//! Invariant: every variant but `Io` and `Commit` is returned before the first rename into the
//! root (staged temporary files are removed again), so the root is unchanged; `Commit` means a
//! commit journal exists and the next run completes it.

use std::io;
use std::path::PathBuf;

/// Why an apply was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("root {root:?} is not an existing directory ({source}); create it (or mount the target) first")]
    RootNotADirectory {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("node delta is for vcluster {delta:?} but the overlay is for {overlay:?}; fetch the overlay of the node's vcluster")]
    VClusterMismatch { overlay: String, delta: String },
    #[error("path {path:?} {reason}; refusing to apply a document that could escape the root")]
    InvalidPath { path: String, reason: &'static str },
    #[error("{path:?}: {reason}; refusing to apply it (fix the config)")]
    InvalidFile { path: String, reason: String },
    #[error(
        "path {path:?} is reserved for bootstorm's settings file; rename the file in the config"
    )]
    ReservedPath { path: String },
    #[error("path {path:?} is written as a file but {ancestor:?}, on its way, is written as a file too; fix the config so one is a directory")]
    PathConflict { path: String, ancestor: String },
    #[error("path {path:?} goes through a symlink that leads outside the root (an absolute target, or '..' past the root); refusing, make the link relative and inside the root or fix the config")]
    EscapesRoot { path: String },
    #[error("path {path:?} needs a directory on its way but finds a file (or a dangling symlink); remove it from the root or fix the config")]
    NotADirectory { path: String },
    #[error("path {path:?} is a directory in the root; a file or symlink cannot replace or remove it, remove the directory or fix the config")]
    IsADirectory { path: String },
    #[error("symlink {path:?} would replace a file in the root; a [[link]] replaces only a symlink or nothing, remove the file from the root first")]
    LinkOverFile { path: String },
    #[error("owner {owner:?} of {path:?} cannot be resolved: {reason}; add the account to the root's user database (or the overlay's /etc/passwd, /etc/group) or use numeric ids")]
    UnknownOwner {
        path: String,
        owner: String,
        reason: String,
    },
    #[error("the root's user database is not usable: {reason}; fix the file")]
    UserDatabase { reason: String },
    #[error("the root's filesystem has {free_bytes} bytes free but the apply stages {needed_bytes} (with its safety margin); free space or grow the root, nothing was written")]
    NoSpace { needed_bytes: u64, free_bytes: u64 },
    #[error("the directory of {path:?} changed between staging and commit (moved, or swapped for a symlink); refusing to commit, nothing was renamed into the root")]
    Swapped { path: String },
    #[error("state directory {path:?}: {source}; check --state-file")]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("commit journal {path:?} is not readable as one ({reason}); it was written atomically, so it was damaged or altered: inspect the root, then remove the journal")]
    Journal { path: PathBuf, reason: String },
    #[error("commit into the root stopped at {path:?}: {source}; the commit journal in {journal:?} completes it on the next run")]
    Commit {
        path: String,
        journal: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not {op} {path:?}: {source}; check permissions and free space of the root")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Maps an error of resolving a directory beneath the root to what it means for `path`.
pub(crate) fn walk_error(op: &'static str, path: &str, error: io::Error) -> ApplyError {
    match error.raw_os_error() {
        Some(libc::EXDEV | libc::ELOOP) => ApplyError::EscapesRoot {
            path: path.to_owned(),
        },
        Some(libc::ENOTDIR | libc::ENOENT) => ApplyError::NotADirectory {
            path: path.to_owned(),
        },
        _ => ApplyError::Io {
            op,
            path: path.to_owned(),
            source: error,
        },
    }
}
