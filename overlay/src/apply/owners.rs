//! Owners as numeric ids: `user` or `user:group` resolved in the *target root's* user
//! database (`/etc/passwd`, `/etc/group`), never the agent's own (the initramfs has none, and
//! ids differ between images).
//!
//! Rules:
//! - a part made only of digits is a numeric id, used as is;
//! - a name is looked up in the root's file; when the documents being applied write
//!   `/etc/passwd` or `/etc/group`, that new content is used (the owner must exist after the
//!   apply). A root without the file resolves only `root` (id 0); any other name is an error;
//! - `user` alone gets the user's primary group from passwd (`user:` semantics of chown);
//!   a numeric user alone gets group 0 (the agent creates files as root:root);
//! - parsing is strict: a line is `name:pw:uid:gid:gecos:home:shell` (7 fields) or
//!   `name:pw:gid:members` (4), ids decimal; empty lines and `#` comments are skipped; any
//!   other line (NIS `+`/`-` entries included) is an error naming the file and line.
//!
//! Invariant: resolution happens before anything is written; an unknown name is an error.

use std::collections::BTreeMap;

/// Where the user database lives, relative to a root.
pub(crate) const PASSWD_PATH: &str = "/etc/passwd";
pub(crate) const GROUP_PATH: &str = "/etc/group";

/// Largest passwd or group file read from a root: bounds what a corrupt root can make the
/// agent allocate (a site with 100k accounts is ~10 MB).
pub(crate) const USER_DB_SIZE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// One user database file, parsed: name → (id, primary gid for passwd).
#[derive(Debug, Default)]
pub(crate) struct Db {
    /// `None`: the root has no such file.
    entries: Option<BTreeMap<String, (u32, u32)>>,
}

fn parse_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Db {
    /// The root has no such file.
    pub(crate) fn absent() -> Db {
        Db { entries: None }
    }

    /// Parses passwd (`fields` 7, primary gid in field 3) or group (`fields` 4).
    pub(crate) fn parse(file: &str, text: &[u8], fields: usize) -> Result<Db, String> {
        let text = std::str::from_utf8(text).map_err(|_| format!("{file} is not UTF-8"))?;
        let mut entries = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split(':').collect();
            let bad = || {
                format!(
                    "{file} line {}: expected {fields} ':'-separated fields with decimal ids",
                    index + 1
                )
            };
            if parts.len() != fields || parts[0].is_empty() {
                return Err(bad());
            }
            let id = parse_id(parts[2]).ok_or_else(bad)?;
            let gid = if fields == 7 {
                parse_id(parts[3]).ok_or_else(bad)?
            } else {
                id
            };
            // The first entry of a name wins, as in getpwnam.
            entries.entry(parts[0].to_owned()).or_insert((id, gid));
        }
        Ok(Db {
            entries: Some(entries),
        })
    }

    fn lookup(&self, name: &str) -> Option<(u32, u32)> {
        match &self.entries {
            Some(entries) => entries.get(name).copied(),
            None => (name == "root").then_some((0, 0)),
        }
    }
}

/// Resolves `owner` (`user` or `user:group`) to `(uid, gid)`; the error names what is missing.
pub(crate) fn resolve(owner: &str, passwd: &Db, group: &Db) -> Result<(u32, u32), String> {
    let (user, group_name) = match owner.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (owner, None),
    };
    let (uid, primary_gid) = match parse_id(user) {
        Some(uid) => (uid, 0),
        None => passwd
            .lookup(user)
            .ok_or_else(|| format!("user {user:?} is not in the root's {PASSWD_PATH}"))?,
    };
    let gid = match group_name {
        None => primary_gid,
        Some(name) => match parse_id(name) {
            Some(gid) => gid,
            None => group
                .lookup(name)
                .map(|(gid, _)| gid)
                .ok_or_else(|| format!("group {name:?} is not in the root's {GROUP_PATH}"))?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n# comment\n\n\
        munge:x:991:989:MUNGE:/run/munge:/sbin/nologin\n";
    const GROUP: &[u8] = b"root:x:0:\nmunge:x:989:\nwheel:x:10:alice,bob\n";

    #[test]
    fn names_numbers_and_primary_groups_resolve() {
        let passwd = Db::parse("passwd", PASSWD, 7).unwrap();
        let group = Db::parse("group", GROUP, 4).unwrap();
        assert_eq!(resolve("munge:munge", &passwd, &group), Ok((991, 989)));
        assert_eq!(resolve("munge", &passwd, &group), Ok((991, 989)));
        assert_eq!(resolve("munge:wheel", &passwd, &group), Ok((991, 10)));
        assert_eq!(resolve("1000:1000", &passwd, &group), Ok((1000, 1000)));
        assert_eq!(resolve("1000", &passwd, &group), Ok((1000, 0)));
        let error = resolve("slurm:munge", &passwd, &group).unwrap_err();
        assert!(
            error.contains("\"slurm\"") && error.contains("/etc/passwd"),
            "{error}"
        );
        assert!(resolve("munge:slurm", &passwd, &group).is_err());
    }

    #[test]
    fn a_root_without_a_user_database_knows_only_root() {
        let (passwd, group) = (Db::absent(), Db::absent());
        assert_eq!(resolve("root:root", &passwd, &group), Ok((0, 0)));
        assert!(resolve("munge", &passwd, &group).is_err());
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line() {
        for bad in [
            &b"root:x:0:0:root:/root\n"[..],
            b"+@nis::::::\n",
            b"root:x:zero:0:r:/:/bin/sh\n",
            b"root:x:-1:0:r:/:/bin/sh\n",
            b"\xff\n",
        ] {
            assert!(Db::parse("passwd", bad, 7).is_err(), "{bad:?}");
        }
        let error = Db::parse("group", b"root:x:0:\nbad\n", 4).unwrap_err();
        assert!(error.contains("line 2"), "{error}");
    }
}
