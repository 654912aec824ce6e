//! Syntactic checks on names, paths, modes and deltas. Pure functions; `apply` and the delta
//! parser call them so that a bad value is refused before it reaches the journal.
//!
//! Invariant: a path accepted here is absolute, normalized and cannot name anything outside the
//! node's root when joined to it (no `..`, no `.`, no empty component, no NUL, no backslash).

use crate::limits::{DELTA_ITEMS_MAX, FILE_MODE_MAX, PATH_LEN_MAX_BYTES, TEXT_LEN_MAX_BYTES};
// The identifier check lives beneath the types that parse identifiers (`Scope::from_str`).
pub use crate::names::name;
use crate::{Rejected, StateDelta};

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

/// Checks every path, mode, owner and setting of a delta, and the item count.
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
        if file.mode > FILE_MODE_MAX {
            return Err(Rejected::InvalidMode {
                path: file_path.clone(),
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
