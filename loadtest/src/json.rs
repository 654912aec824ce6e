//! Writing a report as JSON: pretty-printed, one trailing newline, the file named in the
//! error. The key names are the report structs' field names, part of the tool's interface.
//!
//! Invariants: a report always serializes (its types hold no maps with non-string keys and
//! no non-finite floats are written as anything but `null`), so `pretty` does not fail.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// The report as pretty JSON.
pub fn pretty<T: Serialize>(report: &T) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

/// Writes the report's pretty JSON and a newline to `path`.
pub fn write<T: Serialize>(report: &T, path: &Path) -> Result<()> {
    std::fs::write(path, pretty(report) + "\n")
        .with_context(|| format!("writing the JSON report to {}", path.display()))
}
