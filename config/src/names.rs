//! The identifier syntax every name in the journal shares (vCluster, node id, setting key,
//! owner part): one pure string predicate at the bottom of the crate, so the types that parse
//! identifiers (`Scope::from_str`) and the validators above them can both use it.

use crate::limits::NAME_LEN_MAX_BYTES;

/// Checks an identifier (vCluster, node id, setting key, owner part): 1..=NAME_LEN_MAX_BYTES of
/// `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn name(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.len() > NAME_LEN_MAX_BYTES {
        return Err("is longer than 128 bytes");
    }
    if value.starts_with('.') || value.starts_with('-') {
        return Err("starts with '.' or '-'");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("has a character outside [A-Za-z0-9._-]");
    }
    Ok(())
}
