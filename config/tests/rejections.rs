//! Every way `config::apply` refuses a command: one or more cases per `Rejected` variant, limits
//! tested at their edge (exactly at the limit accepted, one byte/item over refused), and each
//! rejection checked to leave the state byte-identical (postcard) to what it was before.

mod common;

use std::collections::BTreeSet;

use common::*;
use config::limits::{
    DELTA_ITEMS_MAX, ENTRY_DELTA_SIZE_MAX_BYTES, NAME_LEN_MAX_BYTES, NODE_CONFIG_SIZE_MAX_BYTES,
    OVERLAY_SIZE_MAX_BYTES, PATH_LEN_MAX_BYTES, TEXT_LEN_MAX_BYTES, VCLUSTER_CONFIG_SIZE_MAX_BYTES,
};
use config::{
    EntryType, JournalCommand, JournalState, OperationKind, Rejected, StateDelta, VClusterPolicy,
};

/// A vCluster `compute` with node `n1`: the setup most cases start from.
fn site() -> Vec<JournalCommand> {
    vec![policy("compute"), register("n1", "compute")]
}

fn with(mut setup: Vec<JournalCommand>, more: Vec<JournalCommand>) -> Vec<JournalCommand> {
    setup.extend(more);
    setup
}

/// Applies `commands`, requiring every one to be accepted.
fn accepted(commands: Vec<JournalCommand>) -> JournalState {
    let mut state = JournalState::new();
    for (i, command) in commands.into_iter().enumerate() {
        if let Err(rejected) = apply_checked(&mut state, command) {
            panic!("command {i} was rejected: {rejected}");
        }
    }
    state
}

fn x(len: usize) -> String {
    "x".repeat(len)
}

/// A delta of exactly `size_bytes` (per `StateDelta::size_bytes`): one file `/f`.
fn delta_of_size(size_bytes: usize) -> StateDelta {
    let content = vec![b'x'; size_bytes - 2];
    let delta = d().file_mode("/f", 0o644, &content);
    assert_eq!(delta.size_bytes(), size_bytes);
    delta
}

/// The variant's name; the match has no wildcard so a new variant fails to compile here until
/// it is added, and `every_variant_is_covered` then fails until it has a case.
fn variant(rejected: &Rejected) -> &'static str {
    match rejected {
        Rejected::WrongParent { .. } => "WrongParent",
        Rejected::UnknownVCluster(_) => "UnknownVCluster",
        Rejected::UnknownNode(_) => "UnknownNode",
        Rejected::InvalidName { .. } => "InvalidName",
        Rejected::InvalidPath { .. } => "InvalidPath",
        Rejected::InvalidMode { .. } => "InvalidMode",
        Rejected::TextTooLong { .. } => "TextTooLong",
        Rejected::TooManyItems { .. } => "TooManyItems",
        Rejected::EntryTooLarge { .. } => "EntryTooLarge",
        Rejected::ScopeConfigTooLarge { .. } => "ScopeConfigTooLarge",
        Rejected::DeltaNotAllowed { .. } => "DeltaNotAllowed",
        Rejected::EmergencyWithoutReason => "EmergencyWithoutReason",
        Rejected::NoActiveEmergency(_) => "NoActiveEmergency",
        Rejected::RollbackWithoutTarget => "RollbackWithoutTarget",
        Rejected::RollbackTargetNotAllowed { .. } => "RollbackTargetNotAllowed",
        Rejected::RollbackTargetMissing { .. } => "RollbackTargetMissing",
        Rejected::RollbackTargetOutOfScope { .. } => "RollbackTargetOutOfScope",
        Rejected::RollbackWithDelta => "RollbackWithDelta",
        Rejected::OverlayOutdated { .. } => "OverlayOutdated",
        Rejected::OverlayFromFuture { .. } => "OverlayFromFuture",
        Rejected::OverlayTooLarge { .. } => "OverlayTooLarge",
        Rejected::NothingExpired { .. } => "NothingExpired",
        Rejected::SetIdWithoutOwner { .. } => "SetIdWithoutOwner",
        Rejected::InvalidSymlink { .. } => "InvalidSymlink",
        Rejected::RevocationEntryNotAllowed => "RevocationEntryNotAllowed",
        Rejected::InvalidCertificate { .. } => "InvalidCertificate",
        Rejected::AlreadyRevoked { .. } => "AlreadyRevoked",
        Rejected::TooManyRevocations { .. } => "TooManyRevocations",
    }
}

const ALL_VARIANTS: [&str; 28] = [
    "WrongParent",
    "UnknownVCluster",
    "UnknownNode",
    "InvalidName",
    "InvalidPath",
    "InvalidMode",
    "TextTooLong",
    "TooManyItems",
    "EntryTooLarge",
    "ScopeConfigTooLarge",
    "DeltaNotAllowed",
    "EmergencyWithoutReason",
    "NoActiveEmergency",
    "RollbackWithoutTarget",
    "RollbackTargetNotAllowed",
    "RollbackTargetMissing",
    "RollbackTargetOutOfScope",
    "RollbackWithDelta",
    "OverlayOutdated",
    "OverlayFromFuture",
    "OverlayTooLarge",
    "NothingExpired",
    "SetIdWithoutOwner",
    "InvalidSymlink",
    "RevocationEntryNotAllowed",
    "InvalidCertificate",
    "AlreadyRevoked",
    "TooManyRevocations",
];

/// One small case per variant (the edge cases have their own tests below).
fn one_case_per_variant() -> Vec<(Vec<JournalCommand>, JournalCommand)> {
    vec![
        (site(), entry(EntryType::CertificateRevoked, global())),
        (site(), revoke_serial("xyz", "")),
        (vec![revoke_serial("a1b", "")], revoke_serial("a1b", "")),
        (site(), commit(global(), d().set("a", "1")).parent(7)),
        (site(), commit(vc("gpu"), d().set("a", "1"))),
        (site(), commit(node("n2"), d().set("a", "1"))),
        (site(), register("bad name", "compute")),
        (site(), commit(global(), d().file("/etc/../shadow", "x"))),
        (site(), commit(global(), d().file_mode("/f", 0o10000, b"x"))),
        (
            site(),
            commit(global(), d().set("k", &x(TEXT_LEN_MAX_BYTES + 1))),
        ),
        (
            site(),
            policy_with("compute", many_settings(DELTA_ITEMS_MAX + 1)),
        ),
        (
            site(),
            commit(global(), delta_of_size(ENTRY_DELTA_SIZE_MAX_BYTES + 1)),
        ),
        (
            site(),
            commit(node("n1"), delta_of_size(NODE_CONFIG_SIZE_MAX_BYTES + 1)),
        ),
        (
            site(),
            entry(EntryType::DriftDetected, node("n1")).delta(d().set("a", "1")),
        ),
        (site(), entry(EntryType::EmergencyStart, node("n1"))),
        (site(), emergency_end(node("n1"))),
        (site(), entry(EntryType::Rollback, global())),
        (site(), commit(global(), d()).target(1)),
        (site(), rollback(global(), 99)),
        (site(), rollback(global(), 1)),
        (site(), rollback(node("n1"), 2).delta(d().set("a", "1"))),
        (
            with(site(), vec![overlay("compute", 2, b"new")]),
            overlay("compute", 1, b"old"),
        ),
        (site(), overlay("compute", 3, b"future")),
        (
            site(),
            overlay("compute", 1, &vec![0; OVERLAY_SIZE_MAX_BYTES + 1]),
        ),
        (site(), expire(u64::MAX)),
        (site(), commit(global(), d().file_mode("/f", 0o4755, b"x"))),
        (site(), commit(global(), d().link("/l", ""))),
    ]
}

fn many_settings(count: usize) -> VClusterPolicy {
    VClusterPolicy {
        settings: (0..count)
            .map(|i| (format!("k{i}"), String::new()))
            .collect(),
        ..VClusterPolicy::default()
    }
}

#[test]
fn every_variant_is_covered() {
    let mut seen = BTreeSet::new();
    for (setup, command) in one_case_per_variant() {
        seen.insert(variant(&rejection(setup, command)));
    }
    // Its setup is `REVOKED_CERTIFICATES_MAX` commands: too many for the checked helpers.
    seen.insert(variant(&too_many_revocations()));
    let all: BTreeSet<&str> = ALL_VARIANTS.into_iter().collect();
    assert_eq!(seen, all);
}

#[test]
fn wrong_parent() {
    let setup = with(site(), vec![commit(global(), d().set("a", "1"))]);
    assert_eq!(
        rejection(setup.clone(), commit(global(), d().set("a", "2")).parent(0)),
        Rejected::WrongParent {
            scope: global(),
            given: 0,
            newest: 3
        }
    );
    // A parent from the future is as wrong as a stale one.
    assert_eq!(
        rejection(setup.clone(), commit(global(), d().set("a", "2")).parent(4)),
        Rejected::WrongParent {
            scope: global(),
            given: 4,
            newest: 3
        }
    );
    // The newest seq of another scope is not this scope's head.
    assert_eq!(
        rejection(setup, commit(node("n1"), d().set("a", "2")).parent(3)),
        Rejected::WrongParent {
            scope: node("n1"),
            given: 3,
            newest: 2
        }
    );
    // A fresh scope's head is 0.
    assert_eq!(
        rejection(site(), commit(global(), d()).parent(1)),
        Rejected::WrongParent {
            scope: global(),
            given: 1,
            newest: 0
        }
    );
}

#[test]
fn unknown_vcluster() {
    let unknown = || Rejected::UnknownVCluster("gpu".into());
    assert_eq!(rejection(site(), commit(vc("gpu"), d())), unknown());
    assert_eq!(rejection(site(), register("n2", "gpu")), unknown());
    assert_eq!(rejection(site(), overlay("gpu", 1, b"z")), unknown());
    assert_eq!(
        rejection(site(), emergency_start(vc("gpu"), "fire")),
        unknown()
    );
    // Nodes register into existing vClusters only; an empty journal has none.
    assert_eq!(
        rejection(vec![], register("n1", "compute")),
        Rejected::UnknownVCluster("compute".into())
    );
}

#[test]
fn unknown_node() {
    let unknown = || Rejected::UnknownNode("n2".into());
    assert_eq!(rejection(site(), commit(node("n2"), d())), unknown());
    assert_eq!(
        rejection(site(), operation(OperationKind::Exec, "n2", "ls")),
        unknown()
    );
    assert_eq!(
        rejection(site(), entry(EntryType::DriftDetected, node("n2"))),
        unknown()
    );
}

#[test]
fn paths_that_could_escape_the_root() {
    let cases = [
        (
            "/etc/../shadow",
            "has a '.' or '..' component that could escape the root",
        ),
        (
            "/..",
            "has a '.' or '..' component that could escape the root",
        ),
        (
            "/etc/./motd",
            "has a '.' or '..' component that could escape the root",
        ),
        (
            "/etc/.",
            "has a '.' or '..' component that could escape the root",
        ),
        ("etc/motd", "is not absolute (must start with '/')"),
        ("", "is not absolute (must start with '/')"),
        ("./etc", "is not absolute (must start with '/')"),
        (
            "/etc//motd",
            "has an empty component ('//' or a trailing '/')",
        ),
        ("//etc", "has an empty component ('//' or a trailing '/')"),
        ("/etc/", "has an empty component ('//' or a trailing '/')"),
        ("/", "names the root itself, not a file"),
        ("/etc/mo\0td", "contains NUL or a backslash"),
        ("/etc\\..\\shadow", "contains NUL or a backslash"),
    ];
    for (path, reason) in cases {
        let expected = Rejected::InvalidPath {
            path: path.into(),
            reason,
        };
        // Written and removed paths are checked alike, in every scope.
        assert_eq!(
            rejection(site(), commit(global(), d().file(path, "x"))),
            expected,
            "{path:?} written"
        );
        assert_eq!(
            rejection(site(), commit(node("n1"), d().rm(path))),
            expected,
            "{path:?} removed"
        );
    }
    // Dots inside a name are fine.
    accepted(with(
        site(),
        vec![commit(
            global(),
            d().file("/etc/.hidden", "x")
                .file("/a..b/c.", "y")
                .rm("/...x"),
        )],
    ));
}

#[test]
fn path_length_edge() {
    let at_limit = format!("/{}", x(PATH_LEN_MAX_BYTES - 1));
    accepted(with(
        site(),
        vec![commit(global(), d().file(&at_limit, ""))],
    ));
    let over = format!("/{}", x(PATH_LEN_MAX_BYTES));
    assert_eq!(
        rejection(site(), commit(global(), d().rm(&over))),
        Rejected::InvalidPath {
            path: over,
            reason: "is longer than 4096 bytes"
        }
    );
}

#[test]
fn a_path_written_and_removed_by_one_delta() {
    assert_eq!(
        rejection(site(), commit(global(), d().file("/a", "x").rm("/a"))),
        Rejected::InvalidPath {
            path: "/a".into(),
            reason: "is both written and removed"
        }
    );
}

#[test]
fn invalid_names() {
    let invalid = |what, name: &str, reason| Rejected::InvalidName {
        what,
        name: name.into(),
        reason,
    };
    assert_eq!(
        rejection(site(), register("n 1", "compute")),
        invalid("node id", "n 1", "has a character outside [A-Za-z0-9._-]")
    );
    assert_eq!(
        rejection(site(), register("-n", "compute")),
        invalid("node id", "-n", "starts with '.' or '-'")
    );
    assert_eq!(
        rejection(site(), register("", "compute")),
        invalid("node id", "", "is empty")
    );
    let long = x(NAME_LEN_MAX_BYTES + 1);
    assert_eq!(
        rejection(site(), register(&long, "compute")),
        invalid("node id", &long, "is longer than 128 bytes")
    );
    accepted(with(
        site(),
        vec![register(&x(NAME_LEN_MAX_BYTES), "compute")],
    ));
    assert_eq!(
        rejection(site(), policy(".hidden")),
        invalid("vcluster", ".hidden", "starts with '.' or '-'")
    );
    assert_eq!(
        rejection(site(), policy("a/b")),
        invalid("vcluster", "a/b", "has a character outside [A-Za-z0-9._-]")
    );
    assert_eq!(
        rejection(site(), commit(global(), d().set("ntp server", "x"))),
        invalid(
            "setting key",
            "ntp server",
            "has a character outside [A-Za-z0-9._-]"
        )
    );
    let mut policy_settings = VClusterPolicy::default();
    policy_settings.settings.insert("".into(), "x".into());
    assert_eq!(
        rejection(site(), policy_with("compute", policy_settings)),
        invalid("policy setting key", "", "is empty")
    );
    assert_eq!(
        rejection(
            site(),
            commit(global(), d().file("/f", "x").owned("/f", "root:wheel:x"))
        ),
        invalid(
            "owner",
            "root:wheel:x",
            "has a character outside [A-Za-z0-9._-]"
        )
    );
    assert_eq!(
        rejection(
            site(),
            commit(global(), d().file("/f", "x").owned("/f", ":wheel"))
        ),
        invalid("owner", ":wheel", "is empty")
    );
    // Empty authors are refused on every command that records one.
    let empty_author = || invalid("author", "", "is empty");
    assert_eq!(
        rejection(site(), commit(global(), d()).by("")),
        empty_author()
    );
    assert_eq!(
        rejection(
            site(),
            JournalCommand::ExpireTtl {
                now_ms: 0,
                author: String::new()
            }
        ),
        empty_author()
    );
    let JournalCommand::RecordOperation(mut op) = operation(OperationKind::Exec, "n1", "ls") else {
        unreachable!()
    };
    op.author.clear();
    assert_eq!(
        rejection(site(), JournalCommand::RecordOperation(op)),
        empty_author()
    );
}

#[test]
fn invalid_mode() {
    accepted(with(
        site(),
        vec![commit(
            global(),
            d().file_mode("/f", 0o7777, b"x").owned("/f", "munge:munge"),
        )],
    ));
    assert_eq!(
        rejection(site(), commit(global(), d().file_mode("/f", 0o10000, b"x"))),
        Rejected::InvalidMode {
            path: "/f".into(),
            mode: 0o10000
        }
    );
}

#[test]
fn text_too_long() {
    let too_long = |what| Rejected::TextTooLong {
        what,
        len_bytes: TEXT_LEN_MAX_BYTES + 1,
        max_bytes: TEXT_LEN_MAX_BYTES,
    };
    let at_limit = x(TEXT_LEN_MAX_BYTES);
    let over = x(TEXT_LEN_MAX_BYTES + 1);
    accepted(with(
        site(),
        vec![
            commit(global(), d().set("k", &at_limit)),
            emergency_start(node("n1"), &at_limit),
            operation(OperationKind::Exec, "n1", &at_limit),
        ],
    ));
    assert_eq!(
        rejection(site(), commit(global(), d().set("k", &over))),
        too_long("setting value")
    );
    assert_eq!(
        rejection(site(), emergency_start(node("n1"), &over)),
        too_long("emergency reason")
    );
    let JournalCommand::AppendEntry(mut new) = commit(global(), d()) else {
        unreachable!()
    };
    new.policy_ref = Some(over.clone());
    assert_eq!(
        rejection(site(), JournalCommand::AppendEntry(new)),
        too_long("policy ref")
    );
    assert_eq!(
        rejection(site(), commit(global(), d()).by(&over)),
        too_long("author")
    );
    assert_eq!(
        rejection(site(), operation(OperationKind::Exec, "n1", &over)),
        too_long("operation detail")
    );
    let description = VClusterPolicy {
        description: over.clone(),
        ..VClusterPolicy::default()
    };
    assert_eq!(
        rejection(site(), policy_with("compute", description)),
        too_long("policy description")
    );
    let mut value = VClusterPolicy::default();
    value.settings.insert("image".into(), over);
    assert_eq!(
        rejection(site(), policy_with("compute", value)),
        too_long("policy setting value")
    );
}

#[test]
fn too_many_items() {
    let settings = |count: usize| (0..count).fold(d(), |delta, i| delta.set(&format!("k{i}"), ""));
    accepted(with(
        site(),
        vec![
            commit(global(), settings(DELTA_ITEMS_MAX)),
            policy_with("compute", many_settings(DELTA_ITEMS_MAX)),
        ],
    ));
    let too_many = Rejected::TooManyItems {
        count: DELTA_ITEMS_MAX + 1,
        max: DELTA_ITEMS_MAX,
    };
    assert_eq!(
        rejection(site(), commit(global(), settings(DELTA_ITEMS_MAX + 1))),
        too_many
    );
    // Files, removals and settings count together.
    let mixed = settings(DELTA_ITEMS_MAX - 1).file("/a", "").rm("/b");
    assert_eq!(rejection(site(), commit(global(), mixed)), too_many);
    assert_eq!(
        rejection(
            site(),
            policy_with("gpu", many_settings(DELTA_ITEMS_MAX + 1))
        ),
        too_many
    );
}

#[test]
fn entry_delta_size_edge() {
    accepted(with(
        site(),
        vec![commit(global(), delta_of_size(ENTRY_DELTA_SIZE_MAX_BYTES))],
    ));
    assert_eq!(
        rejection(
            site(),
            commit(vc("compute"), delta_of_size(ENTRY_DELTA_SIZE_MAX_BYTES + 1))
        ),
        Rejected::EntryTooLarge {
            size_bytes: ENTRY_DELTA_SIZE_MAX_BYTES + 1,
            max_bytes: ENTRY_DELTA_SIZE_MAX_BYTES
        }
    );
}

#[test]
fn node_config_size_edge() {
    // Exactly at the limit in one commit.
    accepted(with(
        site(),
        vec![commit(
            node("n1"),
            delta_of_size(NODE_CONFIG_SIZE_MAX_BYTES),
        )],
    ));
    // Reaching the limit over two commits, then one byte more.
    let setup = with(
        site(),
        vec![
            commit(node("n1"), delta_of_size(NODE_CONFIG_SIZE_MAX_BYTES - 3)),
            commit(node("n1"), d().set("ab", "c")),
        ],
    );
    assert_eq!(
        rejection(setup, commit(node("n1"), d().set("z", ""))),
        Rejected::ScopeConfigTooLarge {
            scope: node("n1"),
            size_bytes: NODE_CONFIG_SIZE_MAX_BYTES + 1,
            max_bytes: NODE_CONFIG_SIZE_MAX_BYTES
        }
    );
    // Overwriting a file counts its new size only.
    accepted(with(
        site(),
        vec![
            commit(node("n1"), delta_of_size(NODE_CONFIG_SIZE_MAX_BYTES)),
            commit(node("n1"), delta_of_size(NODE_CONFIG_SIZE_MAX_BYTES)),
        ],
    ));
}

#[test]
fn vcluster_config_size_edge() {
    // global + compute together may reach the limit, not pass it.
    let chunk = ENTRY_DELTA_SIZE_MAX_BYTES;
    let file = |path: &str, len: usize| d().file_mode(path, 0o644, &vec![b'x'; len - path.len()]);
    let setup = with(
        site(),
        vec![
            commit(global(), file("/g1", chunk)),
            commit(global(), file("/g2", chunk)),
            commit(vc("compute"), file("/c1", chunk)),
            commit(vc("compute"), file("/c2", chunk)),
        ],
    );
    assert_eq!(
        VCLUSTER_CONFIG_SIZE_MAX_BYTES,
        4 * chunk,
        "the setup fills the limit exactly"
    );
    assert_eq!(
        rejection(setup.clone(), commit(vc("compute"), d().set("z", ""))),
        Rejected::ScopeConfigTooLarge {
            scope: vc("compute"),
            size_bytes: VCLUSTER_CONFIG_SIZE_MAX_BYTES + 1,
            max_bytes: VCLUSTER_CONFIG_SIZE_MAX_BYTES
        }
    );
    // A global change is bounded by the largest vCluster it is layered under.
    assert_eq!(
        rejection(setup.clone(), commit(global(), d().set("z", ""))),
        Rejected::ScopeConfigTooLarge {
            scope: global(),
            size_bytes: VCLUSTER_CONFIG_SIZE_MAX_BYTES + 1,
            max_bytes: VCLUSTER_CONFIG_SIZE_MAX_BYTES
        }
    );
    // Replacing a file with one of the same size keeps it at the limit.
    accepted(with(setup, vec![commit(vc("compute"), file("/c2", chunk))]));
}

#[test]
fn delta_not_allowed_on_record_types() {
    let records: Vec<EntryType> = EntryType::ALL
        .into_iter()
        .filter(|t| !t.changes_config())
        .collect();
    assert_eq!(records.len(), 8);
    for entry_type in records {
        if entry_type == EntryType::CertificateRevoked {
            continue; // refused whatever it carries: `revocation_entries_only_through_the_command`
        }
        let command = entry(entry_type, node("n1"))
            .reason("why")
            .delta(d().set("a", "1"));
        assert_eq!(
            rejection(site(), command),
            Rejected::DeltaNotAllowed { entry_type },
            "{entry_type}"
        );
    }
}

#[test]
fn emergency_without_reason() {
    assert_eq!(
        rejection(site(), entry(EntryType::EmergencyStart, global())),
        Rejected::EmergencyWithoutReason
    );
    assert_eq!(
        rejection(site(), emergency_start(node("n1"), "")),
        Rejected::EmergencyWithoutReason
    );
}

#[test]
fn emergency_end_without_active_emergency() {
    assert_eq!(
        rejection(site(), emergency_end(global())),
        Rejected::NoActiveEmergency(global())
    );
    // An emergency in another scope does not count, and an ended one is over.
    let setup = with(
        site(),
        vec![
            emergency_start(vc("compute"), "power"),
            emergency_start(node("n1"), "disk"),
            emergency_end(node("n1")),
        ],
    );
    assert_eq!(
        rejection(setup.clone(), emergency_end(global())),
        Rejected::NoActiveEmergency(global())
    );
    assert_eq!(
        rejection(setup, emergency_end(node("n1"))),
        Rejected::NoActiveEmergency(node("n1"))
    );
}

#[test]
fn rollback_rejections() {
    let setup = with(
        site(),
        vec![
            commit(global(), d().set("a", "1")),
            commit(vc("compute"), d().set("b", "1")),
        ],
    );
    assert_eq!(
        rejection(setup.clone(), entry(EntryType::Rollback, global())),
        Rejected::RollbackWithoutTarget
    );
    assert_eq!(
        rejection(setup.clone(), rollback(global(), 5)),
        Rejected::RollbackTargetMissing { seq: 5 }
    );
    assert_eq!(
        rejection(setup.clone(), rollback(global(), 0)),
        Rejected::RollbackTargetMissing { seq: 0 }
    );
    assert_eq!(
        rejection(setup.clone(), rollback(global(), 4)),
        Rejected::RollbackTargetOutOfScope {
            seq: 4,
            scope: global(),
            actual: vc("compute")
        }
    );
    assert_eq!(
        rejection(
            setup.clone(),
            rollback(global(), 3).delta(d().set("c", "1"))
        ),
        Rejected::RollbackWithDelta
    );
    for entry_type in [
        EntryType::Commit,
        EntryType::AutoConverge,
        EntryType::ExecLog,
    ] {
        assert_eq!(
            rejection(setup.clone(), entry(entry_type, global()).target(3)),
            Rejected::RollbackTargetNotAllowed { entry_type },
            "{entry_type}"
        );
    }
}

#[test]
fn overlay_rejections() {
    let setup = with(
        site(),
        vec![
            commit(vc("compute"), d().set("a", "1")),
            overlay("compute", 3, b"z3"),
        ],
    );
    assert_eq!(
        rejection(setup.clone(), overlay("compute", 2, b"z2")),
        Rejected::OverlayOutdated { seq: 2, stored: 3 }
    );
    assert_eq!(
        rejection(setup.clone(), overlay("compute", 4, b"z4")),
        Rejected::OverlayFromFuture {
            seq: 4,
            last_seq: 3
        }
    );
    let at_limit = vec![7u8; OVERLAY_SIZE_MAX_BYTES];
    accepted(with(setup.clone(), vec![overlay("compute", 3, &at_limit)]));
    assert_eq!(
        rejection(
            setup,
            overlay("compute", 3, &vec![7u8; OVERLAY_SIZE_MAX_BYTES + 1])
        ),
        Rejected::OverlayTooLarge {
            size_bytes: OVERLAY_SIZE_MAX_BYTES + 1,
            max_bytes: OVERLAY_SIZE_MAX_BYTES
        }
    );
}

#[test]
fn nothing_expired() {
    assert_eq!(
        rejection(vec![], expire(1)),
        Rejected::NothingExpired { now_ms: 1 }
    );
    // A TTL expires at timestamp + ttl: one millisecond early is nothing.
    let setup = with(
        site(),
        vec![commit(global(), d().set("a", "1")).at(5_000).ttl(2)],
    );
    assert_eq!(
        rejection(setup.clone(), expire(6_999)),
        Rejected::NothingExpired { now_ms: 6_999 }
    );
    // Once expired, the entry is not expired again.
    let expired_once = with(setup, vec![expire(7_000)]);
    assert_eq!(
        rejection(expired_once, expire(1_000_000)),
        Rejected::NothingExpired { now_ms: 1_000_000 }
    );
    // TTLs on records do not expire anything (records carry no config).
    let record = with(
        site(),
        vec![entry(EntryType::CapabilityChange, global()).ttl(1)],
    );
    assert_eq!(
        rejection(record, expire(1_000_000)),
        Rejected::NothingExpired { now_ms: 1_000_000 }
    );
}

#[test]
fn a_rollback_may_restore_a_scope_larger_than_one_delta() {
    // A scope's fold can name more items than one delta may (it is built from many deltas);
    // rolling back to (or re-asserting) such a state must still be possible.
    let settings = |prefix: &str| {
        (0..DELTA_ITEMS_MAX).fold(d(), |delta, i| delta.set(&format!("{prefix}{i}"), ""))
    };
    let mut state = accepted(with(
        site(),
        vec![
            commit(global(), settings("a")),
            commit(global(), settings("b")),
            commit(global(), d().set("c", "1")),
        ],
    ));
    apply_checked(&mut state, rollback(global(), 4)).expect("rollback of a large scope");
    assert_eq!(
        state.scope_config(&global()).item_count(),
        2 * DELTA_ITEMS_MAX
    );
}

#[test]
fn set_id_bits_need_an_explicit_owner() {
    // setuid needs an owner, setgid an owner with a group: else the bit would land on a
    // root-owned file (the agent creates files as root), the opposite of what was meant.
    let setuid = rejection(site(), commit(global(), d().file_mode("/f", 0o4755, b"x")));
    assert_eq!(variant(&setuid), "SetIdWithoutOwner");
    assert!(setuid.to_string().contains("setuid"), "{setuid}");
    let setgid = d().file_mode("/f", 0o2755, b"x").owned("/f", "munge");
    let setgid = rejection(site(), commit(global(), setgid));
    assert!(setgid.to_string().contains("group"), "{setgid}");
    accepted(with(
        site(),
        vec![commit(
            global(),
            d().file_mode("/u", 0o4755, b"x")
                .owned("/u", "munge")
                .file_mode("/g", 0o2755, b"x")
                .owned("/g", "0:993")
                .file_mode("/plain", 0o755, b"x"),
        )],
    ));
}

#[test]
fn symlink_targets_and_owners() {
    let too_long = x(config::limits::SYMLINK_TARGET_LEN_MAX_BYTES + 1);
    for (target, reason) in [
        ("", "empty"),
        ("a\0b", "NUL"),
        (too_long.as_str(), "longer"),
    ] {
        let error = rejection(site(), commit(global(), d().link("/l", target)));
        assert!(error.to_string().contains(reason), "{target:?}: {error}");
    }
    let owned = d().link("/l", "target").owned("/l", "root");
    assert_eq!(
        variant(&rejection(site(), commit(global(), owned))),
        "InvalidSymlink"
    );
    let at_limit = x(config::limits::SYMLINK_TARGET_LEN_MAX_BYTES);
    accepted(with(
        site(),
        vec![commit(
            global(),
            d().link("/bin", "usr/bin").link("/l", &at_limit),
        )],
    ));
}

#[test]
fn revocation_entries_only_through_the_command() {
    assert_eq!(
        rejection(site(), entry(EntryType::CertificateRevoked, global())),
        Rejected::RevocationEntryNotAllowed
    );
}

#[test]
fn revoking_twice_names_the_first_revocation() {
    use config::CertificateRole::Node;
    assert_eq!(
        rejection(
            vec![revoke_serial("0A1B", "")],
            revoke_serial("a1b", "again")
        ),
        Rejected::AlreadyRevoked {
            certificate: config::RevokedCertificate::Serial("a1b".into()),
            seq: 1
        }
    );
    let name = || revoke_name(Node, "node-0001", "");
    assert!(matches!(
        rejection(vec![name()], name()),
        Rejected::AlreadyRevoked { seq: 1, .. }
    ));
}

#[test]
fn revocations_of_malformed_certificates() {
    use config::RevokedCertificate::{Name, Serial};
    for (serial, reason) in [
        ("", "is empty"),
        ("xyz", "is not hexadecimal"),
        (
            "0A1B",
            "is not canonical (lower-case hex without leading zeros)",
        ),
        (
            "00a1b",
            "is not canonical (lower-case hex without leading zeros)",
        ),
    ] {
        assert_eq!(
            rejection(vec![], revoke(Serial(serial.into()), "")),
            Rejected::InvalidCertificate {
                what: "serial",
                value: serial.into(),
                reason
            },
            "{serial:?}"
        );
    }
    let long = "1".repeat(41);
    assert!(matches!(
        rejection(vec![], revoke(Serial(long), "")),
        Rejected::InvalidCertificate { what: "serial", .. }
    ));
    assert!(matches!(
        rejection(
            vec![],
            revoke(
                Name {
                    role: config::CertificateRole::Admin,
                    name: String::new()
                },
                ""
            )
        ),
        Rejected::InvalidCertificate { what: "name", .. }
    ));
    assert!(matches!(
        rejection(
            vec![],
            revoke_serial("a1b", &"x".repeat(TEXT_LEN_MAX_BYTES + 1))
        ),
        Rejected::TextTooLong {
            what: "revocation reason",
            ..
        }
    ));
}

/// Fills the revoked set to its limit, then revokes one more: the rejection.
fn too_many_revocations() -> Rejected {
    let max = config::limits::REVOKED_CERTIFICATES_MAX;
    // Plain `apply`: the checked helpers serialize the state around every command.
    let mut state = config::JournalState::new();
    for serial in 1..=max as u64 {
        config::apply(&mut state, revoke_serial(&format!("{serial:x}"), "")).unwrap();
    }
    assert_eq!(state.revoked.len(), max);
    let last_seq = state.last_seq;
    let next = revoke_serial(&format!("{:x}", max + 1), "");
    let rejected = config::apply(&mut state, next).unwrap_err();
    assert_eq!((state.revoked.len(), state.last_seq), (max, last_seq));
    rejected
}

#[test]
fn revocations_are_bounded() {
    let max = config::limits::REVOKED_CERTIFICATES_MAX;
    assert_eq!(too_many_revocations(), Rejected::TooManyRevocations { max });
}
