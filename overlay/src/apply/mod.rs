//! Applying a verified overlay (and optionally a node delta) to a root directory, the way an
//! installer does: what an agent does at boot after phase 1 and phase 2.
//!
//! What lands where:
//! - every file and symlink of the overlay, then the node delta layered on top (the delta's
//!   entries replace the overlay's, the delta's removals are not written and are deleted from
//!   the root if present), each at `<root><path>`, with its declared mode and owner;
//! - settings in [`SETTINGS_FILE_PATH`] (`<root>/etc/bootstorm/settings.json`, mode 0600 in a
//!   0700 directory): the vCluster, seqs and blake3s applied, the policy, and the effective
//!   settings (overlay's, then the node's on top). Documents may not write or remove it.
//!
//! How (each step before the next; everything up to the journal leaves the root unchanged
//! when it fails, temp files and directories it created are removed again):
//! 1. check: documents verified by construction; paths, modes, set-id bits and link targets
//!    re-checked (`config::validate`); owners resolved to ids in the root's `/etc/passwd` and
//!    `/etc/group` ([`owners`](self) rules); every path resolved beneath the root (see
//!    `beneath`: inside symlinks followed, escaping ones refused) and what it would replace
//!    checked (no directory; a link replaces only a symlink or nothing);
//! 2. space: `statvfs` of the root must hold the staged bytes plus
//!    [`crate::limits::APPLY_FREE_SPACE_MARGIN_BYTES`];
//! 3. stage: each file created as a temp (`openat(O_CREAT | O_EXCL | O_NOFOLLOW)`) in its
//!    directory's handle, written, `fchown`, then `fchmod` (chown clears set-id bits), fsynced;
//!    each link `symlinkat` to a temp name; directories fsynced;
//! 4. commit: each directory re-resolved and compared with the one staged into (a swap is
//!    refused), the journal written to the state directory, the renames and removals done,
//!    directories fsynced, the journal removed (`journal`: a crash in between is rolled
//!    forward by the next run).
//!
//! The last component of a path is never followed: a file replaces a symlink at its path
//! (`/etc/resolv.conf -> ../run/...` becomes the declared file).
//!
//! Invariants:
//! - only verified documents can be applied: [`OverlayDoc`] and [`NodeDeltaDoc`] come from a
//!   build or from a decode that checked blake3;
//! - nothing is written outside `root`: every write goes through a directory handle resolved
//!   beneath the root handle;
//! - all or nothing: a refusal or failure before the commit journal leaves the root as it
//!   was; after it, the root holds the whole new set once the journal is completed.
//!
//! Not defended: the free-space check covers the root's filesystem only (not mounts below it);
//! temp files of a run killed *while staging* stay behind under `.bootstorm-*` names.

mod beneath;
mod error;
mod journal;
mod owners;
mod statedir;
mod sys;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use config::{FileSpec, Seq};

use crate::error::hex;
use crate::limits::APPLY_FREE_SPACE_MARGIN_BYTES;
use crate::{NodeDeltaDoc, OverlayDoc};
use beneath::{identity, Root};
use error::walk_error;
pub use error::ApplyError;
use journal::Op;
pub use journal::{complete_interrupted_apply, APPLY_JOURNAL_NAME};
pub use statedir::{StateDir, STATE_DIR_MODE, STATE_FILE_MODE};

/// Where applied settings are written, relative to the root. Reserved: no document may name it.
pub const SETTINGS_FILE_PATH: &str = "/etc/bootstorm/settings.json";

/// Mode of the settings file: it may hold secrets of the site, root reads it.
pub const SETTINGS_FILE_MODE: u32 = 0o600;

/// Mode of the settings file's directory (`/etc/bootstorm`).
pub const SETTINGS_DIR_MODE: u32 = 0o700;

/// Format version of the settings file.
pub const SETTINGS_FORMAT_VERSION: u32 = 1;

/// The agent's state directory relative to the root, when no other is given: where
/// [`apply_to_root`] keeps its commit journal.
pub const DEFAULT_STATE_DIR_IN_ROOT: &str = "var/lib/bootstorm";

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Files written (overlay + delta, after layering), not counting the settings file.
    pub files_written: usize,
    /// Symlinks written.
    pub links_written: usize,
    /// Content bytes written to those files.
    pub bytes_written: u64,
    /// Removals that deleted a file from the root.
    pub removed: Vec<String>,
    /// Removals that found nothing to delete.
    pub already_absent: Vec<String>,
    /// Applied owners by path: the declared `user` or `user:group`.
    pub owners: BTreeMap<String, String>,
    /// Absolute path of the settings file written.
    pub settings_path: PathBuf,
    pub overlay_seq: Seq,
    pub node_seq: Option<Seq>,
}

/// A test hook called with the root path (and, for `before_stage`, the entry index).
type RootHook = Box<dyn Fn(&Path)>;
type IndexHook = Box<dyn Fn(usize, &Path)>;

/// Test hooks: points where tests inject a crash, a failure or a concurrent change. Inert by
/// default; only this crate's tests set them.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Called before staging the entry at this index (settings last), with the root path.
    pub(crate) before_stage: Option<IndexHook>,
    /// Staging the entry at this index fails with `ENOSPC` after writing half its bytes.
    pub(crate) fail_write_at: Option<usize>,
    /// Called after staging, before the commit checks, with the root path.
    pub(crate) after_staging: Option<RootHook>,
    /// The commit stops after this many operations, as if the agent were killed.
    pub(crate) stop_after_ops: Option<usize>,
    /// Resolve with the openat walk instead of openat2.
    pub(crate) walk_only: bool,
}

/// One entry to stage: a file, a symlink or the settings file.
struct Entry<'a> {
    path: &'a str,
    spec: std::borrow::Cow<'a, FileSpec>,
    /// Resolved owner, if declared.
    ids: Option<(u32, u32)>,
}

/// The layered result of overlay + delta, validated, before any write.
struct Plan<'a> {
    files: BTreeMap<&'a str, &'a FileSpec>,
    removes: BTreeSet<&'a str>,
}

fn plan<'a>(
    overlay: &'a OverlayDoc,
    delta: Option<&'a NodeDeltaDoc>,
) -> Result<Plan<'a>, ApplyError> {
    let mut files: BTreeMap<&str, &FileSpec> = overlay
        .files()
        .iter()
        .map(|(path, file)| (path.as_str(), file))
        .collect();
    let mut removes = BTreeSet::new();
    if let Some(delta) = delta {
        if delta.vcluster() != overlay.vcluster() {
            return Err(ApplyError::VClusterMismatch {
                overlay: overlay.vcluster().to_owned(),
                delta: delta.vcluster().to_owned(),
            });
        }
        for path in delta.removes() {
            files.remove(path.as_str());
            removes.insert(path.as_str());
        }
        for (path, file) in delta.files() {
            files.insert(path.as_str(), file);
        }
    }
    for path in files.keys().chain(removes.iter()) {
        config::validate::path(path).map_err(|reason| ApplyError::InvalidPath {
            path: (*path).to_owned(),
            reason,
        })?;
        if *path == SETTINGS_FILE_PATH {
            return Err(ApplyError::ReservedPath {
                path: (*path).to_owned(),
            });
        }
    }
    for (path, file) in &files {
        config::validate::file(path, file).map_err(|rejected| ApplyError::InvalidFile {
            path: (*path).to_owned(),
            reason: rejected.to_string(),
        })?;
    }
    // A file cannot sit where another file needs a directory (the settings file included).
    for path in files.keys().copied().chain([SETTINGS_FILE_PATH]) {
        for (index, _) in path.match_indices('/').skip(1) {
            let ancestor = &path[..index];
            if files.contains_key(ancestor) {
                return Err(ApplyError::PathConflict {
                    path: path.to_owned(),
                    ancestor: ancestor.to_owned(),
                });
            }
        }
    }
    Ok(Plan { files, removes })
}

/// `"/etc/ssh/sshd_config"` → `("etc/ssh", "sshd_config")`; `"/bin"` → `("", "bin")`.
fn split(path: &str) -> (&str, &str) {
    let rel = &path[1..];
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// Reads a user database file through the root handle (beneath it): the plan's new content
/// when the documents write it, else the root's; `Db::absent` when neither exists.
fn user_db(
    root: &Root,
    plan: &Plan<'_>,
    path: &str,
    fields: usize,
) -> Result<owners::Db, ApplyError> {
    let parse = |bytes: &[u8]| {
        owners::Db::parse(path, bytes, fields).map_err(|reason| ApplyError::UserDatabase { reason })
    };
    if let Some(file) = plan.files.get(path) {
        return parse(&file.content);
    }
    let (dir, name) = split(path);
    let read = (|| -> io::Result<Option<Vec<u8>>> {
        let dir = match root.dir(dir) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            other => other?,
        };
        // The file itself may be a symlink inside the root: resolve it beneath too.
        let name = sys::name(name)?;
        let fd = match sys::openat2_beneath(dir.as_fd(), &name, libc::O_RDONLY) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(error) if error.raw_os_error() == Some(libc::ENOSYS) => {
                match sys::openat(dir.as_fd(), &name, libc::O_RDONLY, 0) {
                    Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                    other => other?,
                }
            }
            other => other?,
        };
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut io::Read::take(std::fs::File::from(fd), owners::USER_DB_SIZE_MAX_BYTES + 1),
            &mut bytes,
        )?;
        if bytes.len() as u64 > owners::USER_DB_SIZE_MAX_BYTES {
            return Err(io::Error::other("larger than 32 MiB"));
        }
        Ok(Some(bytes))
    })()
    .map_err(|error| match error.raw_os_error() {
        Some(libc::EXDEV | libc::ELOOP) => ApplyError::EscapesRoot {
            path: path.to_owned(),
        },
        _ => ApplyError::UserDatabase {
            reason: format!("reading the root's {path}: {error}"),
        },
    })?;
    match read {
        Some(bytes) => parse(&bytes),
        None => Ok(owners::Db::absent()),
    }
}

/// Every entry to stage, in path order with the settings file last, owners resolved.
fn entries<'a>(
    root: &Root,
    plan: &Plan<'a>,
    settings: Bytes,
) -> Result<Vec<Entry<'a>>, ApplyError> {
    let needs_db = plan.files.values().any(|file| file.owner.is_some());
    let (passwd, group) = if needs_db {
        (
            user_db(root, plan, owners::PASSWD_PATH, 7)?,
            user_db(root, plan, owners::GROUP_PATH, 4)?,
        )
    } else {
        (owners::Db::absent(), owners::Db::absent())
    };
    let mut entries = Vec::with_capacity(plan.files.len() + 1);
    for (path, file) in &plan.files {
        let ids = match &file.owner {
            None => None,
            Some(owner) => Some(owners::resolve(owner, &passwd, &group).map_err(|reason| {
                ApplyError::UnknownOwner {
                    path: (*path).to_owned(),
                    owner: owner.clone(),
                    reason,
                }
            })?),
        };
        entries.push(Entry {
            path,
            spec: std::borrow::Cow::Borrowed(*file),
            ids,
        });
    }
    entries.push(Entry {
        path: SETTINGS_FILE_PATH,
        spec: std::borrow::Cow::Owned(FileSpec {
            mode: SETTINGS_FILE_MODE,
            owner: None,
            content: settings,
        }),
        ids: None,
    });
    Ok(entries)
}

/// What is at a path's last component now, if its directory exists.
fn what_is_at(root: &Root, path: &str) -> Result<Option<libc::mode_t>, ApplyError> {
    let (dir, name) = split(path);
    let fd = match root.dir(dir) {
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        other => other.map_err(|error| walk_error("open the directory of", path, error))?,
    };
    existing_kind(&fd, path, name)
}

fn existing_kind(fd: &OwnedFd, path: &str, name: &str) -> Result<Option<libc::mode_t>, ApplyError> {
    let io_error = |source| ApplyError::Io {
        op: "inspect",
        path: path.to_owned(),
        source,
    };
    match sys::lstatat(fd.as_fd(), &sys::name(name).map_err(io_error)?) {
        Ok(stat) => Ok(Some(sys::kind(&stat))),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(error) => Err(io_error(error)),
    }
}

/// Whether `spec` may replace what is at `path` (`kind`, `None` = nothing).
fn may_replace(path: &str, spec: &FileSpec, kind: Option<libc::mode_t>) -> Result<(), ApplyError> {
    match kind {
        Some(libc::S_IFDIR) => Err(ApplyError::IsADirectory {
            path: path.to_owned(),
        }),
        Some(kind) if spec.is_symlink() && kind != libc::S_IFLNK => Err(ApplyError::LinkOverFile {
            path: path.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Refuses what cannot be applied before anything is written; returns the removals that
/// will delete something and those that find nothing.
fn preflight(
    root: &Root,
    entries: &[Entry<'_>],
    removes: &BTreeSet<&str>,
) -> Result<(Vec<String>, Vec<String>), ApplyError> {
    for entry in entries {
        may_replace(entry.path, &entry.spec, what_is_at(root, entry.path)?)?;
    }
    let (mut removed, mut absent) = (Vec::new(), Vec::new());
    for path in removes {
        match what_is_at(root, path)? {
            Some(libc::S_IFDIR) => {
                return Err(ApplyError::IsADirectory {
                    path: (*path).to_owned(),
                })
            }
            Some(_) => removed.push((*path).to_owned()),
            None => absent.push((*path).to_owned()),
        }
    }
    Ok((removed, absent))
}

fn check_free_space(root: &Root, entries: &[Entry<'_>]) -> Result<(), ApplyError> {
    let (free_bytes, fragment) = sys::free_bytes(root.fd()).map_err(|source| ApplyError::Io {
        op: "statvfs",
        path: "/".into(),
        source,
    })?;
    let staged: u64 = entries
        .iter()
        .map(|entry| (entry.spec.content.len() as u64).div_ceil(fragment).max(1) * fragment)
        .sum();
    let needed_bytes = staged + APPLY_FREE_SPACE_MARGIN_BYTES;
    if needed_bytes > free_bytes {
        return Err(ApplyError::NoSpace {
            needed_bytes,
            free_bytes,
        });
    }
    Ok(())
}

/// What staging produced, for the commit or for cleaning up.
#[derive(Default)]
struct Staging {
    renames: Vec<Op>,
    /// Directories created, outermost first.
    created: Vec<String>,
}

impl Staging {
    /// Removes staged temps and created directories again (best effort: each is looked up
    /// beneath the root, temps only in the directory they were staged in).
    fn clean_up(&self, root: &Root) {
        for op in &self.renames {
            if let Op::Rename { dir, id, temp, .. } = op {
                if let Ok(fd) = root.dir(dir) {
                    if identity(fd.as_fd()).ok() == Some(*id) {
                        if let Ok(temp) = sys::name(temp) {
                            let _ = sys::unlinkat(fd.as_fd(), &temp, 0);
                        }
                    }
                }
            }
        }
        for created in self.created.iter().rev() {
            let (dir, name) = created.rsplit_once('/').unwrap_or(("", created));
            if let (Ok(fd), Ok(name)) = (root.dir(dir), sys::name(name)) {
                let _ = sys::unlinkat(fd.as_fd(), &name, libc::AT_REMOVEDIR);
            }
        }
    }
}

/// Stages one entry as a temp in its directory; returns its rename.
fn stage_one(
    root: &Root,
    entry: &Entry<'_>,
    index: usize,
    staging: &mut Staging,
    hooks: &Hooks,
) -> Result<Op, ApplyError> {
    let path = entry.path;
    let (dir, name) = split(path);
    let fd = root
        .dir_create(dir, &mut staging.created)
        .map_err(|error| walk_error("create the directories of", path, error))?;
    if path == SETTINGS_FILE_PATH {
        // bootstorm's own directory is never reached through a symlink.
        let dir_path = format!("/{dir}");
        let (parent, leaf) = split(&dir_path);
        let parent = root.dir(parent).map_err(|e| walk_error("open", path, e))?;
        if existing_kind(&parent, path, leaf)? != Some(libc::S_IFDIR) {
            return Err(ApplyError::NotADirectory {
                path: path.to_owned(),
            });
        }
    }
    // Checked again in the handle staged into: the root may have changed since the preflight.
    may_replace(path, &entry.spec, existing_kind(&fd, path, name)?)?;
    let io_error = |op| {
        move |source| ApplyError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    let id = identity(fd.as_fd()).map_err(io_error("inspect the directory of"))?;
    let mut attempt = 0u32;
    let temp = loop {
        let temp = format!(".bootstorm-{}-{index}-{attempt}.tmp", std::process::id());
        let temp_c = sys::name(&temp).map_err(io_error("name a temp file for"))?;
        let created = if entry.spec.is_symlink() {
            sys::symlinkat(&entry.spec.content, fd.as_fd(), &temp_c)
        } else {
            sys::openat(
                fd.as_fd(),
                &temp_c,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                0o600,
            )
            .and_then(|file| {
                staging.renames.push(Op::Rename {
                    dir: dir.to_owned(),
                    id,
                    temp: temp.clone(),
                    name: name.to_owned(),
                });
                write_staged(&file, entry, index, hooks)
            })
        };
        match created {
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) && attempt < 16 => {
                attempt += 1;
            }
            Err(error) => return Err(io_error("stage")(error)),
            Ok(()) => break temp,
        }
    };
    if entry.spec.is_symlink() {
        staging.renames.push(Op::Rename {
            dir: dir.to_owned(),
            id,
            temp: temp.clone(),
            name: name.to_owned(),
        });
    }
    Ok(staging.renames.last().expect("just pushed").clone())
}

/// Content, owner, mode (after the owner: chown clears set-id bits), fsync.
fn write_staged(file: &OwnedFd, entry: &Entry<'_>, index: usize, hooks: &Hooks) -> io::Result<()> {
    let content = &entry.spec.content;
    if hooks.fail_write_at == Some(index) {
        sys::write_all(file.as_fd(), &content[..content.len() / 2])?;
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    sys::write_all(file.as_fd(), content)?;
    if let Some((uid, gid)) = entry.ids {
        sys::fchown(file.as_fd(), uid, gid)?;
    }
    sys::fchmod(file.as_fd(), entry.spec.mode)?;
    sys::fsync(file.as_fd())
}

/// Stages every entry, then fsyncs the directories that hold temps or new directories.
fn stage(
    root: &Root,
    entries: &[Entry<'_>],
    hooks: &Hooks,
) -> Result<Staging, (Staging, ApplyError)> {
    let mut staging = Staging::default();
    for (index, entry) in entries.iter().enumerate() {
        if let Some(hook) = &hooks.before_stage {
            hook(index, root.path());
        }
        if let Err(error) = stage_one(root, entry, index, &mut staging, hooks) {
            return Err((staging, error));
        }
    }
    let mut dirs: BTreeSet<String> = staging
        .renames
        .iter()
        .map(|op| split(&op.path()).0.to_owned())
        .collect();
    for created in &staging.created {
        dirs.insert(
            created
                .rsplit_once('/')
                .map_or("", |(parent, _)| parent)
                .to_owned(),
        );
    }
    for dir in &dirs {
        let synced = root.dir(dir).and_then(|fd| sys::fsync(fd.as_fd()));
        if let Err(source) = synced {
            let error = ApplyError::Io {
                op: "fsync the directory",
                path: format!("/{dir}"),
                source,
            };
            return Err((staging, error));
        }
    }
    Ok(staging)
}

/// Every staged temp is still where it was staged, in the same directory.
fn check_unswapped(root: &Root, staging: &Staging) -> Result<(), ApplyError> {
    for op in &staging.renames {
        let Op::Rename { dir, id, temp, .. } = op else {
            continue;
        };
        let swapped = || ApplyError::Swapped { path: op.path() };
        let fd = root.dir(dir).map_err(|_| swapped())?;
        let same = identity(fd.as_fd()).is_ok_and(|found| found == *id)
            && sys::name(temp).is_ok_and(|temp| sys::lstatat(fd.as_fd(), &temp).is_ok());
        if !same {
            return Err(swapped());
        }
    }
    Ok(())
}

fn settings_json(overlay: &OverlayDoc, delta: Option<&NodeDeltaDoc>) -> Vec<u8> {
    let mut settings = overlay.settings().clone();
    if let Some(delta) = delta {
        settings.extend(
            delta
                .settings()
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
    }
    let policy = overlay.policy();
    let document = serde_json::json!({
        "format_version": SETTINGS_FORMAT_VERSION,
        "vcluster": overlay.vcluster(),
        "overlay_seq": overlay.seq(),
        "overlay_blake3": hex(overlay.hash()),
        "node": delta.map(NodeDeltaDoc::node),
        "node_seq": delta.map(NodeDeltaDoc::seq),
        "node_delta_blake3": delta.map(|delta| hex(delta.hash())),
        "policy": {
            "description": policy.description,
            "auto_converge": policy.auto_converge,
            "settings": policy.settings,
        },
        "settings": settings,
    });
    let mut json = serde_json::to_vec_pretty(&document).expect("JSON of strings and numbers");
    json.push(b'\n');
    json
}

/// Writes `overlay` (then `delta` on top) under `root_dir`, keeping the commit journal in
/// `<root_dir>/`[`DEFAULT_STATE_DIR_IN_ROOT`]. See [`apply_to_root_with_state`].
pub fn apply_to_root(
    overlay: &OverlayDoc,
    delta: Option<&NodeDeltaDoc>,
    root_dir: &Path,
) -> Result<ApplyReport, ApplyError> {
    let state_dir = root_dir.join(DEFAULT_STATE_DIR_IN_ROOT);
    apply_to_root_with_state(overlay, delta, root_dir, &state_dir)
}

/// Writes `overlay` (then `delta` on top) under `root_dir`, all or nothing, with the commit
/// journal in `state_dir` (created 0700 when first needed). An interrupted commit found there
/// is completed first. See the module doc for what lands where and what is refused.
pub fn apply_to_root_with_state(
    overlay: &OverlayDoc,
    delta: Option<&NodeDeltaDoc>,
    root_dir: &Path,
    state_dir: &Path,
) -> Result<ApplyReport, ApplyError> {
    apply_with_hooks(overlay, delta, root_dir, state_dir, &Hooks::default())
}

pub(crate) fn apply_with_hooks(
    overlay: &OverlayDoc,
    delta: Option<&NodeDeltaDoc>,
    root_dir: &Path,
    state_dir: &Path,
    hooks: &Hooks,
) -> Result<ApplyReport, ApplyError> {
    complete_interrupted_apply(state_dir)?;
    let root = Root::open(root_dir).map_err(|source| ApplyError::RootNotADirectory {
        root: root_dir.to_owned(),
        source,
    })?;
    if hooks.walk_only {
        #[cfg(test)]
        root.force_walk();
    }
    let plan = plan(overlay, delta)?;
    let entries = entries(&root, &plan, Bytes::from(settings_json(overlay, delta)))?;
    let (removed, already_absent) = preflight(&root, &entries, &plan.removes)?;
    check_free_space(&root, &entries)?;

    let staging = stage(&root, &entries, hooks).map_err(|(staging, error)| {
        staging.clean_up(&root);
        error
    })?;
    if let Some(hook) = &hooks.after_staging {
        hook(root.path());
    }
    let journal_ops: Vec<Op> = plan
        .removes
        .iter()
        .map(|path| {
            let (dir, name) = split(path);
            Op::Remove {
                dir: dir.to_owned(),
                name: name.to_owned(),
            }
        })
        .chain(staging.renames.iter().cloned())
        .collect();
    let write_journal = || -> Result<StateDir, ApplyError> {
        check_unswapped(&root, &staging)?;
        let state_error = |source| ApplyError::StateDir {
            path: state_dir.to_owned(),
            source,
        };
        let state = StateDir::open(state_dir).map_err(state_error)?;
        let bytes =
            journal::encode(root.path(), &journal_ops).map_err(|reason| ApplyError::Journal {
                path: state_dir.join(APPLY_JOURNAL_NAME),
                reason,
            })?;
        state
            .write(APPLY_JOURNAL_NAME, &bytes)
            .map_err(state_error)?;
        Ok(state)
    };
    let state = write_journal().inspect_err(|_| staging.clean_up(&root))?;

    let journal_path = state_dir.join(APPLY_JOURNAL_NAME);
    journal::perform(&root, &journal_ops, &journal_path, hooks.stop_after_ops)?;
    tighten_settings_dir(&root)?;
    state
        .remove(APPLY_JOURNAL_NAME)
        .map_err(|source| ApplyError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;

    let files = entries.iter().filter(|e| e.path != SETTINGS_FILE_PATH);
    Ok(ApplyReport {
        files_written: files.clone().filter(|e| !e.spec.is_symlink()).count(),
        links_written: files.clone().filter(|e| e.spec.is_symlink()).count(),
        bytes_written: files
            .clone()
            .filter(|e| !e.spec.is_symlink())
            .map(|e| e.spec.content.len() as u64)
            .sum(),
        removed,
        already_absent,
        owners: files
            .filter_map(|e| Some((e.path.to_owned(), e.spec.owner.clone()?)))
            .collect(),
        settings_path: root_dir.join(&SETTINGS_FILE_PATH[1..]),
        overlay_seq: overlay.seq(),
        node_seq: delta.map(NodeDeltaDoc::seq),
    })
}

/// `/etc/bootstorm` is made 0700 (it may predate this apply with another mode).
fn tighten_settings_dir(root: &Root) -> Result<(), ApplyError> {
    let (dir, _) = split(SETTINGS_FILE_PATH);
    let dir_path = format!("/{dir}");
    let (parent, leaf) = split(&dir_path);
    let tightened = root.dir(parent).and_then(|parent| {
        let fd = sys::openat(
            parent.as_fd(),
            &sys::name(leaf)?,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        sys::fchmod(fd.as_fd(), SETTINGS_DIR_MODE)
    });
    tightened.map_err(|source| ApplyError::Io {
        op: "set the mode of",
        path: format!("/{dir}"),
        source,
    })
}
