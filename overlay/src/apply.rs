//! Applying a verified overlay (and optionally a node delta) to a root directory: what an agent
//! does at boot after phase 1 and phase 2.
//!
//! What lands where:
//! - every file of the overlay, then the node delta layered on top (the delta's files replace
//!   the overlay's, the delta's removals are not written and are deleted from the root if
//!   present), each at `<root><path>`;
//! - settings in [`SETTINGS_FILE_PATH`] (`<root>/etc/bootstorm/settings.json`, mode 0644): the
//!   vCluster, seqs and blake3s applied, the policy, and the effective settings (overlay's,
//!   then the node's on top). Documents may not write or remove that path themselves.
//! - owners are *not* applied: they are reported in [`ApplyReport::owners`] for the agent to
//!   `chown` (it knows the node's user database, which may live inside the root just written).
//!
//! Invariants:
//! - only verified documents can be applied: [`OverlayDoc`] and [`NodeDeltaDoc`] come from a
//!   build or from a decode that checked blake3;
//! - nothing is written outside `root`: every path is re-checked with `config::validate::path`
//!   and refused if any existing component under `root` is a symlink (or a non-directory where
//!   a directory is needed); all paths are checked before the first write, so a refused apply
//!   writes nothing;
//! - each file is replaced atomically: temp file in the same directory, write, set mode, fsync,
//!   rename; every directory touched is fsynced before `apply_to_root` returns. A crash leaves
//!   each file either old or new, never torn (the set of files may be partly applied; applying
//!   again converges).
//!
//! Not defended: another process racing to swap directories for symlinks while apply runs
//! (the agent owns the root at boot).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use config::{FileSpec, Seq};

use crate::error::hex;
use crate::{NodeDeltaDoc, OverlayDoc};

/// Where applied settings are written, relative to the root. Reserved: no document may name it.
pub const SETTINGS_FILE_PATH: &str = "/etc/bootstorm/settings.json";

/// Mode of the settings file: readable by services, writable by root.
pub const SETTINGS_FILE_MODE: u32 = 0o644;

/// Format version of the settings file.
pub const SETTINGS_FORMAT_VERSION: u32 = 1;

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Files written (overlay + delta, after layering), not counting the settings file.
    pub files_written: usize,
    /// Content bytes written to those files.
    pub bytes_written: u64,
    /// Removals that deleted a file from the root.
    pub removed: Vec<String>,
    /// Removals that found nothing to delete.
    pub already_absent: Vec<String>,
    /// Declared owners (`user` or `user:group`) by path. Not applied here: the agent chowns.
    pub owners: BTreeMap<String, String>,
    /// Absolute path of the settings file written.
    pub settings_path: PathBuf,
    pub overlay_seq: Seq,
    pub node_seq: Option<Seq>,
}

/// Why an apply was refused or failed. Refusals (all but `Io`) happen before anything is
/// written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("root {root:?} is not an existing directory; create it (or mount the target) first")]
    RootNotADirectory { root: PathBuf },
    #[error("node delta is for vcluster {delta:?} but the overlay is for {overlay:?}; fetch the overlay of the node's vcluster")]
    VClusterMismatch { overlay: String, delta: String },
    #[error("path {path:?} {reason}; refusing to apply a document that could escape the root")]
    InvalidPath { path: String, reason: &'static str },
    #[error(
        "path {path:?} is reserved for bootstorm's settings file; rename the file in the config"
    )]
    ReservedPath { path: String },
    #[error("path {path:?} is written as a file but {ancestor:?}, on its way, is written as a file too; fix the config so one is a directory")]
    PathConflict { path: String, ancestor: String },
    #[error("path {path:?} goes through symlink {symlink:?} under the root; refusing (it could point outside the root), remove the symlink or fix the config")]
    SymlinkInPath { path: String, symlink: PathBuf },
    #[error("path {path:?} needs {component:?} to be a directory but it is not; remove it from the root or fix the config")]
    NotADirectory { path: String, component: PathBuf },
    #[error("path {path:?} is a directory in the root; a file cannot replace or remove it, remove the directory or fix the config")]
    IsADirectory { path: String },
    #[error("could not {op} {path:?}: {source}; check permissions and free space of the root")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        op,
        path: path.to_owned(),
        source,
    }
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

/// What lies at a path under the root, found without following any symlink.
enum Found {
    Missing,
    File,
    Dir,
}

/// Walks `path` under `root` component by component with `lstat`, refusing symlinks and
/// non-directories on the way. With `create_dirs`, missing parents are created (and recorded
/// in `dirs_to_sync` so their creation is made durable).
fn walk(
    root: &Path,
    path: &str,
    create_dirs: bool,
    dirs_to_sync: &mut BTreeSet<PathBuf>,
) -> Result<(PathBuf, Found), ApplyError> {
    let components: Vec<&str> = path[1..].split('/').collect();
    let mut current = root.to_path_buf();
    for (index, component) in components.iter().enumerate() {
        let last = index + 1 == components.len();
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(ApplyError::SymlinkInPath {
                    path: path.to_owned(),
                    symlink: current,
                })
            }
            Ok(metadata) if last => {
                let found = if metadata.is_dir() {
                    Found::Dir
                } else {
                    Found::File
                };
                return Ok((current, found));
            }
            Ok(metadata) if !metadata.is_dir() => {
                return Err(ApplyError::NotADirectory {
                    path: path.to_owned(),
                    component: current,
                })
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if last {
                    return Ok((current, Found::Missing));
                }
                if !create_dirs {
                    current.extend(&components[index + 1..]);
                    return Ok((current, Found::Missing));
                }
                fs::create_dir(&current).map_err(io_error("create directory", &current))?;
                dirs_to_sync.insert(current.parent().expect("under root").to_owned());
            }
            Err(error) => return Err(io_error("inspect", &current)(error)),
        }
    }
    unreachable!("a validated path has at least one component")
}

/// Replaces `target` atomically: temp file beside it, write, set mode, fsync, rename.
fn write_atomically(target: &Path, content: &[u8], mode: u32) -> Result<(), ApplyError> {
    let dir = target.parent().expect("under root");
    let mut temp = tempfile::Builder::new()
        .prefix(".bootstorm-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_error("create a temporary file in", dir))?;
    temp.write_all(content)
        .map_err(io_error("write", temp.path()))?;
    temp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(io_error("set the mode of", temp.path()))?;
    temp.as_file()
        .sync_all()
        .map_err(io_error("fsync", temp.path()))?;
    temp.persist(target)
        .map_err(|error| io_error("rename a temporary file onto", target)(error.error))?;
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

/// Writes `overlay` (then `delta` on top) under `root_dir`. See the module doc for what lands
/// where and what is refused. Both documents are verified by construction.
pub fn apply_to_root(
    overlay: &OverlayDoc,
    delta: Option<&NodeDeltaDoc>,
    root_dir: &Path,
) -> Result<ApplyReport, ApplyError> {
    if !fs::metadata(root_dir).is_ok_and(|metadata| metadata.is_dir()) {
        return Err(ApplyError::RootNotADirectory {
            root: root_dir.to_owned(),
        });
    }
    let plan = plan(overlay, delta)?;

    // Check every path against the root as it is now, before the first write.
    let mut no_dirs = BTreeSet::new();
    for path in plan
        .files
        .keys()
        .chain(plan.removes.iter())
        .chain([&SETTINGS_FILE_PATH])
    {
        let (_, found) = walk(root_dir, path, false, &mut no_dirs)?;
        if matches!(found, Found::Dir) {
            return Err(ApplyError::IsADirectory {
                path: (*path).to_owned(),
            });
        }
    }

    let mut report = ApplyReport {
        overlay_seq: overlay.seq(),
        node_seq: delta.map(NodeDeltaDoc::seq),
        ..ApplyReport::default()
    };
    let mut dirs_to_sync = BTreeSet::new();
    for path in &plan.removes {
        let (target, found) = walk(root_dir, path, false, &mut dirs_to_sync)?;
        match found {
            Found::Missing => report.already_absent.push((*path).to_owned()),
            Found::File => {
                fs::remove_file(&target).map_err(io_error("remove", &target))?;
                dirs_to_sync.insert(target.parent().expect("under root").to_owned());
                report.removed.push((*path).to_owned());
            }
            Found::Dir => unreachable!("checked above"),
        }
    }
    for (path, file) in &plan.files {
        let (target, found) = walk(root_dir, path, true, &mut dirs_to_sync)?;
        if matches!(found, Found::Dir) {
            return Err(ApplyError::IsADirectory {
                path: (*path).to_owned(),
            });
        }
        write_atomically(&target, &file.content, file.mode)?;
        dirs_to_sync.insert(target.parent().expect("under root").to_owned());
        report.files_written += 1;
        report.bytes_written += file.content.len() as u64;
        if let Some(owner) = &file.owner {
            report.owners.insert((*path).to_owned(), owner.clone());
        }
    }
    let (settings_path, _) = walk(root_dir, SETTINGS_FILE_PATH, true, &mut dirs_to_sync)?;
    write_atomically(
        &settings_path,
        &settings_json(overlay, delta),
        SETTINGS_FILE_MODE,
    )?;
    dirs_to_sync.insert(settings_path.parent().expect("under root").to_owned());
    report.settings_path = settings_path;

    for dir in &dirs_to_sync {
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("fsync directory", dir))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{file, small_state};
    use crate::{decode_boot_overlay, decode_node_delta, node_delta_doc, overlay_doc};
    use config::StateDelta;
    use std::os::unix::fs::symlink;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Every file under `dir`, relative, sorted (to assert "nothing written" and "no temp files").
    fn listing(dir: &Path) -> Vec<String> {
        fn visit(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    visit(base, &path, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        visit(dir, dir, &mut out);
        out.sort();
        out
    }

    #[test]
    fn overlay_files_modes_and_settings_are_written() {
        let state = small_state();
        let overlay = overlay_doc(&state, "compute").unwrap();
        let root = tempfile::tempdir().unwrap();
        let report = apply_to_root(&overlay, None, root.path()).unwrap();

        assert_eq!(
            listing(root.path()),
            [
                "etc/bootstorm/settings.json",
                "etc/hosts",
                "etc/motd",
                "etc/ssh/sshd_config",
                "usr/bin/site-tool"
            ]
        );
        assert_eq!(
            fs::read(root.path().join("etc/motd")).unwrap(),
            b"compute motd\n"
        );
        assert_eq!(mode_of(&root.path().join("etc/ssh/sshd_config")), 0o600);
        assert_eq!(mode_of(&root.path().join("usr/bin/site-tool")), 0o755);
        assert_eq!(report.files_written, 4);
        assert_eq!(report.owners["/etc/ssh/sshd_config"], "root:root");
        assert_eq!(
            report.settings_path,
            root.path().join("etc/bootstorm/settings.json")
        );

        let settings: serde_json::Value =
            serde_json::from_slice(&fs::read(&report.settings_path).unwrap()).unwrap();
        assert_eq!(settings["vcluster"], "compute");
        assert_eq!(settings["overlay_seq"], overlay.seq());
        assert_eq!(settings["settings"]["cpu.governor"], "performance");
        assert_eq!(settings["settings"]["site"], "demo");
        assert_eq!(settings["policy"]["settings"]["image"], "compute-img");
        assert!(settings["node"].is_null());
    }

    #[test]
    fn node_delta_overrides_and_removes() {
        let state = small_state();
        let overlay = overlay_doc(&state, "compute").unwrap();
        let delta = node_delta_doc(&state, "n1").unwrap();
        let root = tempfile::tempdir().unwrap();
        // A previous boot left the file the node's delta removes.
        apply_to_root(&overlay, None, root.path()).unwrap();
        assert!(root.path().join("usr/bin/site-tool").exists());

        let report = apply_to_root(&overlay, Some(&delta), root.path()).unwrap();
        assert_eq!(
            fs::read(root.path().join("etc/motd")).unwrap(),
            b"n1: DIMM replaced\n"
        );
        assert_eq!(mode_of(&root.path().join("etc/motd")), 0o640);
        assert!(!root.path().join("usr/bin/site-tool").exists());
        assert_eq!(report.removed, ["/usr/bin/site-tool"]);
        assert_eq!(report.files_written, 3);
        assert_eq!(report.node_seq, Some(delta.seq()));

        let settings: serde_json::Value =
            serde_json::from_slice(&fs::read(&report.settings_path).unwrap()).unwrap();
        assert_eq!(settings["settings"]["cpu.governor"], "powersave");
        assert_eq!(settings["node"], "n1");

        // Applying again converges and leaves no temporary files behind.
        let again = apply_to_root(&overlay, Some(&delta), root.path()).unwrap();
        assert_eq!(again.already_absent, ["/usr/bin/site-tool"]);
        assert!(listing(root.path())
            .iter()
            .all(|p| !p.contains(".bootstorm-")));
    }

    #[test]
    fn a_symlink_in_the_root_pointing_outside_is_refused_and_nothing_is_written() {
        let overlay = overlay_doc(&small_state(), "compute").unwrap();
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("etc")).unwrap();

        let error = apply_to_root(&overlay, None, root.path()).unwrap_err();
        assert!(matches!(error, ApplyError::SymlinkInPath { .. }), "{error}");
        assert!(listing(outside.path()).is_empty());
        assert_eq!(listing(root.path()), ["etc"], "only the planted symlink");
    }

    #[test]
    fn an_absolute_symlink_as_the_final_component_is_refused() {
        let overlay = overlay_doc(&small_state(), "compute").unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        symlink("/etc/hosts", root.path().join("etc/hosts")).unwrap();
        let error = apply_to_root(&overlay, None, root.path()).unwrap_err();
        assert!(matches!(error, ApplyError::SymlinkInPath { .. }), "{error}");
    }

    #[test]
    fn a_crafted_document_with_an_escaping_path_is_refused() {
        // decode refuses such bytes; apply refuses the document too (defence in depth).
        let root = tempfile::tempdir().unwrap();
        for bad in ["/../escape", "relative", "/a//b", "/a/./b"] {
            let doc = OverlayDoc::unchecked_for_tests(
                "compute",
                1,
                [(bad.to_owned(), file(0o644, b"x"))].into(),
                BTreeMap::new(),
            );
            let error = apply_to_root(&doc, None, root.path()).unwrap_err();
            assert!(
                matches!(error, ApplyError::InvalidPath { .. }),
                "{bad}: {error}"
            );
        }
        let mut config = StateDelta::default();
        config.removes.insert("/../../etc/passwd".into());
        let delta = NodeDeltaDoc::unchecked_for_tests("n1", "compute", config);
        let overlay = overlay_doc(&small_state(), "compute").unwrap();
        let error = apply_to_root(&overlay, Some(&delta), root.path()).unwrap_err();
        assert!(matches!(error, ApplyError::InvalidPath { .. }), "{error}");
        assert!(listing(root.path()).is_empty());
    }

    #[test]
    fn reserved_path_conflicts_and_vcluster_mismatch_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let reserved = OverlayDoc::unchecked_for_tests(
            "compute",
            1,
            [(SETTINGS_FILE_PATH.to_owned(), file(0o644, b"{}"))].into(),
            BTreeMap::new(),
        );
        assert!(matches!(
            apply_to_root(&reserved, None, root.path()).unwrap_err(),
            ApplyError::ReservedPath { .. }
        ));
        let conflict = OverlayDoc::unchecked_for_tests(
            "compute",
            1,
            [
                ("/etc".to_owned(), file(0o644, b"")),
                ("/etc/hosts".to_owned(), file(0o644, b"")),
            ]
            .into(),
            BTreeMap::new(),
        );
        assert!(matches!(
            apply_to_root(&conflict, None, root.path()).unwrap_err(),
            ApplyError::PathConflict { .. }
        ));
        let state = small_state();
        let gpu = overlay_doc(&state, "gpu").unwrap();
        let n1 = node_delta_doc(&state, "n1").unwrap();
        assert!(matches!(
            apply_to_root(&gpu, Some(&n1), root.path()).unwrap_err(),
            ApplyError::VClusterMismatch { .. }
        ));
        assert!(listing(root.path()).is_empty());
    }

    #[test]
    fn a_directory_where_a_file_goes_is_refused_before_writing() {
        let overlay = overlay_doc(&small_state(), "compute").unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("usr/bin/site-tool")).unwrap();
        let error = apply_to_root(&overlay, None, root.path()).unwrap_err();
        assert!(matches!(error, ApplyError::IsADirectory { .. }), "{error}");
        assert!(!root.path().join("etc").exists());
    }

    #[test]
    fn unverified_bytes_never_reach_apply() {
        // The only way from bytes to a document is a decode that checks blake3: a mismatch
        // yields no document, so there is nothing to apply and the root stays empty.
        let state = small_state();
        let built = crate::build_overlay(&state, "compute").unwrap();
        let mut tampered = built.clone();
        tampered.hash[0] ^= 1;
        assert!(decode_boot_overlay(&tampered).is_err());
        let delta = crate::build_node_delta(&state, "n1").unwrap();
        assert!(decode_node_delta(&delta.bytes, &tampered.hash).is_err());
        let root = tempfile::tempdir().unwrap();
        assert!(listing(root.path()).is_empty());
        // The verified path works end to end.
        let overlay = decode_boot_overlay(&built).unwrap();
        let delta = decode_node_delta(&delta.bytes, &delta.hash).unwrap();
        apply_to_root(&overlay, Some(&delta), root.path()).unwrap();
        assert!(root.path().join("etc/motd").exists());
    }

    #[test]
    fn a_missing_root_is_refused() {
        let overlay = overlay_doc(&small_state(), "compute").unwrap();
        let error = apply_to_root(&overlay, None, Path::new("/nonexistent/bootstorm-root"));
        assert!(matches!(error, Err(ApplyError::RootNotADirectory { .. })));
    }
}
