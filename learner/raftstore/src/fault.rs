//! Fault injection into the raft log, for the tests that prove a replica fails stop: the code
//! is compiled into every build (the binary under test is the binary that ships), and nothing
//! is armed unless the daemon's environment names a fault when it opens its storage.
//!
//! The knobs (read once, by [`LogFaults::from_env`], when `bootstorm serve` opens its storage):
//!
//! | variable                              | effect                                              |
//! |---------------------------------------|-----------------------------------------------------|
//! | `BOOTSTORM_FAULT_FSYNC_FAIL_AFTER=N`  | after N successful fsync rounds of the log syncer, every further round fails with EIO (the log store then refuses writes, as after a real fsync failure) |
//! | `BOOTSTORM_FAULT_APPEND_PANIC_AFTER=N` | after N log appends, the next `append` panics; openraft calls it on its core task, so this is a panic inside the raft core |
//!
//! Why environment variables and not a cargo feature: a feature would make the tested binary
//! differ from the shipped one and build the daemon twice on a small disk. Why read once and
//! not on every call: a fault cannot appear in a running replica, and the hot path pays one
//! `Option` check. An armed fault is logged at `warn` when the storage opens, so a leftover
//! variable in a unit file is visible in the first lines of the log.
//!
//! Invariant: [`LogFaults::default`] (what every caller but the daemon uses) injects nothing,
//! and a malformed value is an error at startup, never silently ignored.

/// Environment variable: fail every log fsync round after this many successful ones.
pub const FAULT_FSYNC_FAIL_AFTER_ENV: &str = "BOOTSTORM_FAULT_FSYNC_FAIL_AFTER";
/// Environment variable: panic in the log append after this many appends.
pub const FAULT_APPEND_PANIC_AFTER_ENV: &str = "BOOTSTORM_FAULT_APPEND_PANIC_AFTER";

/// Faults armed in a log store; `Default`: none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogFaults {
    /// Successful fsync rounds of the syncer before every further round fails.
    pub fsync_fail_after: Option<u64>,
    /// `append` calls that succeed before the next one panics.
    pub append_panic_after: Option<u64>,
}

impl LogFaults {
    /// The faults the process environment arms ([`FAULT_FSYNC_FAIL_AFTER_ENV`],
    /// [`FAULT_APPEND_PANIC_AFTER_ENV`]); an unset or empty variable arms nothing.
    pub fn from_env() -> Result<LogFaults, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`LogFaults::from_env`] over any variable lookup (tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<LogFaults, String> {
        let count = |name: &str| -> Result<Option<u64>, String> {
            match lookup(name).as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
                    format!("{name}={text:?} is not a count (a fault-injection knob for tests; unset it)")
                }),
            }
        };
        Ok(LogFaults {
            fsync_fail_after: count(FAULT_FSYNC_FAIL_AFTER_ENV)?,
            append_panic_after: count(FAULT_APPEND_PANIC_AFTER_ENV)?,
        })
    }

    /// Whether any fault is armed.
    pub fn is_armed(&self) -> bool {
        *self != LogFaults::default()
    }

    /// Whether the fsync round after `rounds_done` successful ones must fail.
    pub(crate) fn fsync_fails(&self, rounds_done: u64) -> bool {
        self.fsync_fail_after.is_some_and(|n| rounds_done >= n)
    }

    /// Whether the append after `appends_done` earlier ones must panic.
    pub(crate) fn append_panics(&self, appends_done: u64) -> bool {
        self.append_panic_after.is_some_and(|n| appends_done >= n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<LogFaults, String> {
        LogFaults::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn nothing_is_armed_unless_a_variable_names_a_count() {
        assert_eq!(parse(&[]), Ok(LogFaults::default()));
        assert_eq!(
            parse(&[(FAULT_FSYNC_FAIL_AFTER_ENV, "")]),
            Ok(LogFaults::default())
        );
        assert!(!LogFaults::default().is_armed());
        let armed = parse(&[
            (FAULT_FSYNC_FAIL_AFTER_ENV, "3"),
            (FAULT_APPEND_PANIC_AFTER_ENV, " 0 "),
        ])
        .unwrap();
        assert_eq!(armed.fsync_fail_after, Some(3));
        assert_eq!(armed.append_panic_after, Some(0));
        assert!(armed.is_armed());
        assert!(!armed.fsync_fails(2) && armed.fsync_fails(3) && armed.fsync_fails(4));
        assert!(armed.append_panics(0));
        let error = parse(&[(FAULT_APPEND_PANIC_AFTER_ENV, "soon")]).unwrap_err();
        assert!(error.contains(FAULT_APPEND_PANIC_AFTER_ENV), "{error}");
    }
}
