//! Parsing of the admin's delta file (TOML) into a [`StateDelta`].
//!
//! Format (documented in the README):
//! ```toml
//! [[file]]
//! path = "/etc/motd"        # absolute inside the node's root
//! mode = "0644"             # octal string
//! owner = "root:root"       # optional
//! content = "hello\n"       # or content_base64 = "..."
//!
//! [[link]]                # a symlink; replaces a symlink or nothing, never a file
//! path = "/etc/systemd/system/multi-user.target.wants/foo.service"
//! target = "/usr/lib/systemd/system/foo.service"   # any string up to 4096 bytes, no NUL
//!
//! [[remove]]
//! path = "/etc/old.conf"
//!
//! [settings]
//! "ntp.server" = "10.0.0.1"
//! ```
//! Unknown keys are errors; every error names the line (from the TOML parser) or the path.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use crate::{validate, FileSpec, Rejected, StateDelta};

/// Why a delta file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeltaParseError {
    #[error("delta file is not valid: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("file {path:?}: mode {mode:?} is not an octal string like \"0644\" (at most 7777)")]
    Mode { path: String, mode: String },
    #[error("file {path:?}: give exactly one of `content` and `content_base64`")]
    Content { path: String },
    #[error("file {path:?}: content_base64 is not valid base64: {source}")]
    Base64 {
        path: String,
        source: base64::DecodeError,
    },
    #[error("path {path:?} appears twice in the delta")]
    Duplicate { path: String },
    #[error("{0}")]
    Invalid(#[from] Rejected),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaFile {
    #[serde(default)]
    file: Vec<FileTable>,
    #[serde(default)]
    link: Vec<LinkTable>,
    #[serde(default)]
    remove: Vec<RemoveTable>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    path: String,
    mode: String,
    owner: Option<String>,
    content: Option<String>,
    content_base64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkTable {
    path: String,
    target: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveTable {
    path: String,
}

/// Parses an octal mode string ("0644", "755", "0o600").
pub fn parse_mode(mode: &str) -> Option<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    // Digits only: `from_str_radix` alone would also take a sign ("+644").
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    let value = u32::from_str_radix(digits, 8).ok()?;
    (value <= crate::limits::FILE_MODE_MAX).then_some(value)
}

impl StateDelta {
    /// Parses and validates a delta file. The result passes `validate::delta`.
    pub fn from_toml(text: &str) -> Result<StateDelta, DeltaParseError> {
        let parsed: DeltaFile = toml::from_str(text)?;
        let mut delta = StateDelta {
            settings: parsed.settings,
            ..StateDelta::default()
        };
        for table in parsed.file {
            let mode = parse_mode(&table.mode).ok_or_else(|| DeltaParseError::Mode {
                path: table.path.clone(),
                mode: table.mode.clone(),
            })?;
            let content = match (table.content, table.content_base64) {
                (Some(text), None) => Bytes::from(text.into_bytes()),
                (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map(Bytes::from)
                    .map_err(|source| DeltaParseError::Base64 {
                        path: table.path.clone(),
                        source,
                    })?,
                _ => return Err(DeltaParseError::Content { path: table.path }),
            };
            let spec = FileSpec {
                mode,
                owner: table.owner,
                content,
            };
            if delta.files.insert(table.path.clone(), spec).is_some() {
                return Err(DeltaParseError::Duplicate { path: table.path });
            }
        }
        for table in parsed.link {
            let spec = FileSpec::symlink(&table.target);
            if delta.files.insert(table.path.clone(), spec).is_some() {
                return Err(DeltaParseError::Duplicate { path: table.path });
            }
        }
        for table in parsed.remove {
            if !delta.removes.insert(table.path.clone()) {
                return Err(DeltaParseError::Duplicate { path: table.path });
            }
        }
        validate::delta(&delta)?;
        Ok(delta)
    }
}
