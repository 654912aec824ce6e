//! Syntactic checks on names, paths, modes and deltas. Pure functions; `apply` and the delta
//! parser call them so that a bad value is refused before it reaches the journal.
//!
//! Invariants:
//! - a path accepted here is absolute, normalized and cannot name anything outside the node's
//!   root when joined to it (no `..`, no `.`, no empty component, no NUL, no backslash);
//! - a file accepted here ([`file`]) has a mode of at most 0o7777, or is a symlink (mode
//!   `SYMLINK_MODE`, no owner, a target of 1..=4096 bytes without NUL); a setuid mode has an
//!   owner and a setgid mode an owner with a group, so no set-id bit can land on a root-owned
//!   file by omission. Commits are refused here; decoders and apply check again.

use crate::limits::{
    DELTA_ITEMS_MAX, FILE_MODE_MAX, PATH_LEN_MAX_BYTES, SYMLINK_TARGET_LEN_MAX_BYTES,
    TEXT_LEN_MAX_BYTES,
};
// The identifier check lives beneath the types that parse identifiers (`Scope::from_str`).
pub use crate::names::name;
use crate::{FileSpec, Rejected, StateDelta};

pub(crate) fn checked_name(what: &'static str, value: &str) -> Result<(), Rejected> {
    name(value).map_err(|reason| Rejected::InvalidName {
        what,
        name: value.to_owned(),
        reason,
    })
}

/// Checks a file path: absolute, normalized, no component that could leave the root.
pub fn path(value: &str) -> Result<(), &'static str> {
    if value.len() > PATH_LEN_MAX_BYTES {
        return Err("is longer than 4096 bytes");
    }
    let Some(rest) = value.strip_prefix('/') else {
        return Err("is not absolute (must start with '/')");
    };
    if rest.is_empty() {
        return Err("names the root itself, not a file");
    }
    if value.contains('\0') || value.contains('\\') {
        return Err("contains NUL or a backslash");
    }
    for component in rest.split('/') {
        match component {
            "" => return Err("has an empty component ('//' or a trailing '/')"),
            "." | ".." => return Err("has a '.' or '..' component that could escape the root"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks an owner: `user` or `user:group`, each a valid name.
pub fn owner(value: &str) -> Result<(), &'static str> {
    let mut parts = value.splitn(2, ':');
    let user = parts.next().unwrap_or_default();
    name(user)?;
    if let Some(group) = parts.next() {
        name(group)?;
    }
    Ok(())
}

/// Checks a symlink target: 1..=`SYMLINK_TARGET_LEN_MAX_BYTES` bytes, no NUL. Any other
/// string is allowed (relative or absolute); where it may point is the applier's business.
pub fn symlink_target(target: &[u8]) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("has an empty target");
    }
    if target.len() > SYMLINK_TARGET_LEN_MAX_BYTES {
        return Err("target is longer than 4096 bytes");
    }
    if target.contains(&0) {
        return Err("target contains NUL");
    }
    Ok(())
}

/// Checks a set-id mode against its owner: setuid (0o4000) needs an owner, setgid (0o2000) an
/// owner naming a group (`user:group`). Returns the bit and what it needs when refused.
pub fn set_id(mode: u32, owner: Option<&str>) -> Result<(), (&'static str, &'static str)> {
    if mode & 0o4000 != 0 && owner.is_none() {
        return Err(("setuid (0o4000)", "no owner is declared"));
    }
    if mode & 0o2000 != 0 && !owner.is_some_and(|owner| owner.contains(':')) {
        return Err((
            "setgid (0o2000)",
            "no owner group is declared (`user:group`)",
        ));
    }
    Ok(())
}

/// Checks one declared file or symlink at `file_path` (a valid path): mode, owner, set-id
/// bits, symlink target.
pub fn file(file_path: &str, file: &FileSpec) -> Result<(), Rejected> {
    if file.is_symlink() {
        let invalid = |reason| Rejected::InvalidSymlink {
            path: file_path.to_owned(),
            reason,
        };
        if file.owner.is_some() {
            return Err(invalid(
                "declares an owner; a symlink's owner is not applied",
            ));
        }
        return symlink_target(&file.content).map_err(invalid);
    }
    if file.mode > FILE_MODE_MAX {
        return Err(Rejected::InvalidMode {
            path: file_path.to_owned(),
            mode: file.mode,
        });
    }
    if let Some(file_owner) = &file.owner {
        owner(file_owner).map_err(|reason| Rejected::InvalidName {
            what: "owner",
            name: file_owner.clone(),
            reason,
        })?;
    }
    set_id(file.mode, file.owner.as_deref()).map_err(|(bit, needs)| Rejected::SetIdWithoutOwner {
        path: file_path.to_owned(),
        mode: file.mode,
        bit,
        needs,
    })
}

pub(crate) fn text(what: &'static str, value: &str) -> Result<(), Rejected> {
    if value.len() > TEXT_LEN_MAX_BYTES {
        return Err(Rejected::TextTooLong {
            what,
            len_bytes: value.len(),
            max_bytes: TEXT_LEN_MAX_BYTES,
        });
    }
    Ok(())
}

/// Checks every path, file (mode, owner, set-id bits, symlink target) and setting of a delta,
/// and the item count.
pub fn delta(delta: &StateDelta) -> Result<(), Rejected> {
    if delta.item_count() > DELTA_ITEMS_MAX {
        return Err(Rejected::TooManyItems {
            count: delta.item_count(),
            max: DELTA_ITEMS_MAX,
        });
    }
    let invalid_path = |path: &str, reason: &'static str| Rejected::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    for (file_path, file) in &delta.files {
        path(file_path).map_err(|reason| invalid_path(file_path, reason))?;
        self::file(file_path, file)?;
        if delta.removes.contains(file_path) {
            return Err(invalid_path(file_path, "is both written and removed"));
        }
    }
    for removed in &delta.removes {
        path(removed).map_err(|reason| invalid_path(removed, reason))?;
    }
    for (key, value) in &delta.settings {
        checked_name("setting key", key)?;
        text("setting value", value)?;
    }
    Ok(())
}
