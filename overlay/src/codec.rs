//! The canonical binary encoding shared by overlay and node-delta documents: a writer that
//! cannot produce two encodings of one value, and a strict reader that accepts exactly what the
//! writer produces.
//!
//! Encoding (all integers little-endian, fixed width, so there is no choice to make):
//! - `u8`, `u32`, `u64`: 1, 4, 8 bytes;
//! - `str`: `u32` byte length + UTF-8 bytes; `bytes`: `u32` length + raw bytes;
//! - `opt-str`: `u8` 0, or `u8` 1 + `str`; `bool`: `u8` 0 or 1;
//! - `map` (settings): `u32` count + count × (`str` key, `str` value), keys strictly ascending;
//! - `files`: `u32` count + count × (`str` path, `u32` mode, `opt-str` owner, `bytes` content),
//!   paths strictly ascending; a symlink is a file with mode `config::limits::SYMLINK_MODE`,
//!   no owner and its target as content, allowed only in documents of format version 2
//!   (writers use version 2 exactly when a document holds a symlink, so a document without
//!   links reads as before on older agents and one with links is refused by them by version);
//! - `set` (removes): `u32` count + count × `str`, strictly ascending.
//!
//! Invariants:
//! - the reader never panics and never allocates more than the input it was given: every length
//!   is checked against the bytes that remain before it is used;
//! - the reader refuses anything the writer could not have produced from a valid config
//!   (unsorted or duplicate keys, a bool other than 0/1, invalid UTF-8, trailing bytes) and
//!   re-checks paths, modes, owners and names with `config::validate`, because the bytes may come
//!   from a peer that bypassed config's validation;
//! - file contents are zero-copy slices of the decoded buffer.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use config::limits::{FILE_MODE_MAX, SYMLINK_MODE, TEXT_LEN_MAX_BYTES};
use config::FileSpec;

/// Why a canonical document could not be parsed. Decoding reads bytes from the network, so
/// every failure is an error, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("not a bootstorm {expected} document (bad magic bytes); check that the peer serves this protocol")]
    BadMagic { expected: &'static str },
    #[error("{what} format version {found} is not supported (this build reads version {supported}); upgrade the agent or the server")]
    UnsupportedVersion {
        what: &'static str,
        found: u16,
        supported: u16,
    },
    #[error("malformed document at byte {offset}: {field} {reason}; the document is corrupt or was not built by bootstorm")]
    Malformed {
        offset: usize,
        field: &'static str,
        reason: String,
    },
}

/// Appends canonical encodings to a buffer.
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity_bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity_bytes),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// Callers bound total sizes before encoding, so a length always fits a `u32`.
    fn len(&mut self, len: usize) {
        let len = u32::try_from(len).expect("sizes are bounded below u32::MAX before encoding");
        self.u32(len);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.raw(bytes);
    }

    pub(crate) fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub(crate) fn map(&mut self, map: &BTreeMap<String, String>) {
        self.len(map.len());
        for (key, value) in map {
            self.str(key);
            self.str(value);
        }
    }

    pub(crate) fn set(&mut self, set: &BTreeSet<String>) {
        self.len(set.len());
        for value in set {
            self.str(value);
        }
    }

    pub(crate) fn files(&mut self, files: &BTreeMap<String, FileSpec>) {
        self.len(files.len());
        for (path, file) in files {
            self.str(path);
            self.u32(file.mode);
            match &file.owner {
                None => self.u8(0),
                Some(owner) => {
                    self.u8(1);
                    self.str(owner);
                }
            }
            self.bytes(&file.content);
        }
    }
}

/// Exact encoded sizes, so builders can check limits before encoding and allocate once.
pub(crate) mod size {
    use super::*;

    pub(crate) fn str(value: &str) -> usize {
        4 + value.len()
    }

    pub(crate) fn map(map: &BTreeMap<String, String>) -> usize {
        4 + map.iter().map(|(k, v)| str(k) + str(v)).sum::<usize>()
    }

    pub(crate) fn set(set: &BTreeSet<String>) -> usize {
        4 + set.iter().map(|v| str(v)).sum::<usize>()
    }

    pub(crate) fn files(files: &BTreeMap<String, FileSpec>) -> usize {
        4 + files
            .iter()
            .map(|(path, file)| {
                str(path) + 4 + 1 + file.owner.as_deref().map_or(0, str) + 4 + file.content.len()
            })
            .sum::<usize>()
    }
}

/// Reads canonical encodings from a buffer, strictly.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

type Result<T> = std::result::Result<T, DocError>;

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far (for error positions).
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    fn malformed(&self, field: &'static str, reason: impl Into<String>) -> DocError {
        DocError::Malformed {
            offset: self.pos,
            field,
            reason: reason.into(),
        }
    }

    fn take(&mut self, field: &'static str, len: usize) -> Result<std::ops::Range<usize>> {
        let remaining = self.buf.len() - self.pos;
        if len > remaining {
            return Err(self.malformed(
                field,
                format!("needs {len} bytes but only {remaining} remain (truncated)"),
            ));
        }
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let range = self.take(field, N)?;
        Ok(self.buf[range].try_into().expect("range has length N"))
    }

    /// Reads the 8-byte magic and the `u16` version; refuses a version outside
    /// `versions`, returns the one found.
    pub(crate) fn header(
        &mut self,
        what: &'static str,
        magic: &[u8; 8],
        versions: std::ops::RangeInclusive<u16>,
    ) -> Result<u16> {
        if self.buf.len() < magic.len() || &self.buf[..magic.len()] != magic {
            return Err(DocError::BadMagic { expected: what });
        }
        self.pos = magic.len();
        let found = self.u16("format version")?;
        if !versions.contains(&found) {
            return Err(DocError::UnsupportedVersion {
                what,
                found,
                supported: *versions.end(),
            });
        }
        Ok(found)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => {
                self.pos -= 1;
                Err(self.malformed(field, format!("is {other}, not 0 or 1")))
            }
        }
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes> {
        let len = self.u32(field)? as usize;
        let range = self.take(field, len)?;
        Ok(self.buf.slice(range))
    }

    pub(crate) fn str(&mut self, field: &'static str) -> Result<String> {
        let start = self.pos;
        let bytes = self.bytes(field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DocError::Malformed {
            offset: start,
            field,
            reason: "is not valid UTF-8".into(),
        })
    }

    /// A name (vCluster, node id, setting key) as `config::validate::name` accepts it.
    pub(crate) fn name(&mut self, field: &'static str) -> Result<String> {
        let start = self.pos;
        let value = self.str(field)?;
        config::validate::name(&value).map_err(|reason| DocError::Malformed {
            offset: start,
            field,
            reason: format!("{value:?} {reason}"),
        })?;
        Ok(value)
    }

    /// Free text (description, setting value), at most `TEXT_LEN_MAX_BYTES`.
    pub(crate) fn text(&mut self, field: &'static str) -> Result<String> {
        let start = self.pos;
        let value = self.str(field)?;
        if value.len() > TEXT_LEN_MAX_BYTES {
            return Err(DocError::Malformed {
                offset: start,
                field,
                reason: format!("is {} bytes, more than {TEXT_LEN_MAX_BYTES}", value.len()),
            });
        }
        Ok(value)
    }

    fn path(&mut self, field: &'static str) -> Result<String> {
        let start = self.pos;
        let value = self.str(field)?;
        config::validate::path(&value).map_err(|reason| DocError::Malformed {
            offset: start,
            field,
            reason: format!("{value:?} {reason}"),
        })?;
        Ok(value)
    }

    fn count(&mut self, field: &'static str) -> Result<usize> {
        Ok(self.u32(field)? as usize)
    }

    /// Refuses a key that does not sort strictly after the previous one: one canonical order,
    /// no duplicates.
    fn check_ascending(
        &self,
        start: usize,
        field: &'static str,
        previous: Option<&String>,
        key: &str,
    ) -> Result<()> {
        if previous.is_some_and(|previous| previous.as_str() >= key) {
            return Err(DocError::Malformed {
                offset: start,
                field,
                reason: format!(
                    "{key:?} is not strictly after the previous key (unsorted or duplicate)"
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn map(&mut self, field: &'static str) -> Result<BTreeMap<String, String>> {
        let count = self.count(field)?;
        let mut map = BTreeMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let start = self.pos;
            let key = self.name(field)?;
            self.check_ascending(start, field, previous.as_ref(), &key)?;
            let value = self.text(field)?;
            map.insert(key.clone(), value);
            previous = Some(key);
        }
        Ok(map)
    }

    pub(crate) fn set(&mut self, field: &'static str) -> Result<BTreeSet<String>> {
        let count = self.count(field)?;
        let mut set = BTreeSet::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let start = self.pos;
            let path = self.path(field)?;
            self.check_ascending(start, field, previous.as_ref(), &path)?;
            set.insert(path.clone());
            previous = Some(path);
        }
        Ok(set)
    }

    /// Files (and, with `links_allowed`, symlinks), each re-checked with
    /// `config::validate::file` (mode, owner, set-id bits, symlink target).
    pub(crate) fn files(
        &mut self,
        field: &'static str,
        links_allowed: bool,
    ) -> Result<BTreeMap<String, FileSpec>> {
        let count = self.count(field)?;
        let mut files = BTreeMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let start = self.pos;
            let path = self.path(field)?;
            self.check_ascending(start, field, previous.as_ref(), &path)?;
            let mode_at = self.pos;
            let mode = self.u32("file mode")?;
            if mode > FILE_MODE_MAX && !(links_allowed && mode == SYMLINK_MODE) {
                return Err(DocError::Malformed {
                    offset: mode_at,
                    field: "file mode",
                    reason: format!("{mode:#o} is above {FILE_MODE_MAX:#o}"),
                });
            }
            let owner = if self.bool("file owner tag")? {
                let owner_at = self.pos;
                let owner = self.str("file owner")?;
                config::validate::owner(&owner).map_err(|reason| DocError::Malformed {
                    offset: owner_at,
                    field: "file owner",
                    reason: format!("{owner:?} {reason}"),
                })?;
                Some(owner)
            } else {
                None
            };
            let content = self.bytes("file content")?;
            let file = FileSpec {
                mode,
                owner,
                content,
            };
            config::validate::file(&path, &file).map_err(|rejected| DocError::Malformed {
                offset: start,
                field,
                reason: rejected.to_string(),
            })?;
            files.insert(path.clone(), file);
            previous = Some(path);
        }
        Ok(files)
    }

    /// Refuses trailing bytes: a canonical document ends where its last field ends.
    pub(crate) fn finish(self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(self.malformed(
                "end of document",
                format!(
                    "is followed by {} trailing bytes",
                    self.buf.len() - self.pos
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32, owner: Option<&str>, content: &'static [u8]) -> FileSpec {
        FileSpec {
            mode,
            owner: owner.map(str::to_owned),
            content: Bytes::from_static(content),
        }
    }

    #[test]
    fn files_round_trip_and_size_is_exact() {
        let files: BTreeMap<String, FileSpec> = [
            ("/a".to_owned(), file(0o644, None, b"x")),
            ("/b/c".to_owned(), file(0o6755, Some("root:wheel"), b"")),
        ]
        .into();
        let mut writer = Writer::with_capacity(0);
        writer.files(&files);
        let encoded = writer.finish();
        assert_eq!(encoded.len(), size::files(&files));
        let mut reader = Reader::new(Bytes::from(encoded));
        assert_eq!(reader.files("files", false).unwrap(), files);
        reader.finish().unwrap();
    }

    #[test]
    fn unsorted_or_duplicate_keys_are_refused() {
        for keys in [["b", "a"], ["a", "a"]] {
            let mut writer = Writer::with_capacity(0);
            writer.u32(2);
            for key in keys {
                writer.str(key);
                writer.str("v");
            }
            let error = Reader::new(Bytes::from(writer.finish()))
                .map("settings")
                .unwrap_err();
            assert!(error.to_string().contains("not strictly after"), "{error}");
        }
    }

    #[test]
    fn a_path_config_would_refuse_is_refused() {
        for bad in ["relative", "/a/../b", "/a//b", "/"] {
            let mut writer = Writer::with_capacity(0);
            writer.set(&[bad.to_owned()].into());
            let error = Reader::new(Bytes::from(writer.finish()))
                .set("removes")
                .unwrap_err();
            assert!(
                matches!(error, DocError::Malformed { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn bad_bool_mode_truncation_and_trailing_bytes_are_refused() {
        let mut reader = Reader::new(Bytes::from_static(&[2]));
        assert!(reader.bool("flag").is_err());

        let mut writer = Writer::with_capacity(0);
        writer.u32(1);
        writer.str("/a");
        writer.u32(0o10000);
        let error = Reader::new(Bytes::from(writer.finish()))
            .files("files", false)
            .unwrap_err();
        assert!(error.to_string().contains("file mode"), "{error}");

        let mut reader = Reader::new(Bytes::from_static(&[5, 0, 0, 0, b'a']));
        assert!(reader
            .str("name")
            .unwrap_err()
            .to_string()
            .contains("truncated"));

        let mut reader = Reader::new(Bytes::from_static(&[1, 0]));
        reader.u8("x").unwrap();
        assert!(reader.finish().is_err());
    }

    #[test]
    fn huge_counts_fail_on_truncation_without_allocating() {
        let mut reader = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert!(reader.files("files", true).is_err());
    }

    #[test]
    fn symlinks_only_where_allowed_and_set_id_bits_only_with_owners() {
        let link: BTreeMap<String, FileSpec> =
            [("/bin".to_owned(), FileSpec::symlink("usr/bin"))].into();
        let mut writer = Writer::with_capacity(0);
        writer.files(&link);
        let encoded = Bytes::from(writer.finish());
        assert!(Reader::new(encoded.clone()).files("files", false).is_err());
        assert_eq!(Reader::new(encoded).files("files", true).unwrap(), link);

        // Bytes from a peer that skipped config's validation are refused by the decoder too.
        for bad in [file(0o4755, None, b""), file(0o2755, Some("munge"), b"")] {
            let mut writer = Writer::with_capacity(0);
            writer.files(&[("/f".to_owned(), bad)].into());
            let error = Reader::new(Bytes::from(writer.finish()))
                .files("files", true)
                .unwrap_err();
            assert!(error.to_string().contains("set"), "{error}");
        }
    }
}
