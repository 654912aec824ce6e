//! Shared test helpers for the config crate: small constructors so command lists read like
//! specs, a deterministic text rendering of `JournalState`, and the checks every applied
//! command must pass (rejections leave the state byte-identical; the per-scope fold cache
//! equals a refold of the journal).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;

use bytes::Bytes;
use config::{
    apply, AdminOperation, Applied, BootOverlay, EntryType, FileSpec, JournalCommand, JournalState,
    NewEntry, NodeState, NodeStatus, OperationKind, Rejected, Scope, Seq, StateDelta,
    VClusterPolicy,
};

/// The author of every helper-built command unless a test says otherwise.
pub const ADMIN: &str = "alice";

pub fn global() -> Scope {
    Scope::Global
}

pub fn vc(name: &str) -> Scope {
    Scope::VCluster(name.to_owned())
}

pub fn node(id: &str) -> Scope {
    Scope::Node(id.to_owned())
}

/// An empty delta to build on: `d().file("/etc/motd", "hi").rm("/etc/old").set("k", "v")`.
pub fn d() -> StateDelta {
    StateDelta::default()
}

/// Builder methods on `StateDelta`, so deltas read like the TOML an admin writes.
pub trait DeltaExt {
    fn file(self, path: &str, content: &str) -> Self;
    fn file_mode(self, path: &str, mode: u32, content: &[u8]) -> Self;
    fn owned(self, path: &str, owner: &str) -> Self;
    fn rm(self, path: &str) -> Self;
    fn link(self, path: &str, target: &str) -> Self;
    fn set(self, key: &str, value: &str) -> Self;
}

impl DeltaExt for StateDelta {
    fn file(self, path: &str, content: &str) -> Self {
        self.file_mode(path, 0o644, content.as_bytes())
    }

    fn file_mode(mut self, path: &str, mode: u32, content: &[u8]) -> Self {
        self.files.insert(
            path.to_owned(),
            FileSpec {
                mode,
                owner: None,
                content: Bytes::copy_from_slice(content),
            },
        );
        self
    }

    fn owned(mut self, path: &str, owner: &str) -> Self {
        self.files
            .get_mut(path)
            .expect("owned() after file()")
            .owner = Some(owner.to_owned());
        self
    }

    fn link(mut self, path: &str, target: &str) -> Self {
        self.files.insert(path.into(), FileSpec::symlink(target));
        self
    }

    fn rm(mut self, path: &str) -> Self {
        self.removes.insert(path.to_owned());
        self
    }

    fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// `SetPolicy` creating (or updating) vCluster `name` with an empty policy.
pub fn policy(name: &str) -> JournalCommand {
    policy_with(name, VClusterPolicy::default())
}

pub fn policy_with(name: &str, policy: VClusterPolicy) -> JournalCommand {
    JournalCommand::SetPolicy {
        vcluster_id: name.to_owned(),
        policy,
        author: ADMIN.to_owned(),
        timestamp_ms: 0,
    }
}

/// `UpdateNodeState` registering `id` into `vcluster` with status committed.
pub fn register(id: &str, vcluster: &str) -> JournalCommand {
    node_state(id, vcluster, NodeStatus::Committed)
}

pub fn node_state(id: &str, vcluster: &str, status: NodeStatus) -> JournalCommand {
    JournalCommand::UpdateNodeState {
        node_id: id.to_owned(),
        state: NodeState {
            vcluster: vcluster.to_owned(),
            status,
        },
        author: ADMIN.to_owned(),
        timestamp_ms: 0,
    }
}

/// An entry of any type with no delta; refine with the `EntryExt` methods.
pub fn entry(entry_type: EntryType, scope: Scope) -> JournalCommand {
    let mut new = NewEntry::commit(scope, ADMIN, 0, StateDelta::default());
    new.entry_type = entry_type;
    JournalCommand::AppendEntry(new)
}

pub fn commit(scope: Scope, delta: StateDelta) -> JournalCommand {
    JournalCommand::AppendEntry(NewEntry::commit(scope, ADMIN, 0, delta))
}

pub fn rollback(scope: Scope, target: Seq) -> JournalCommand {
    entry(EntryType::Rollback, scope).target(target)
}

pub fn emergency_start(scope: Scope, reason: &str) -> JournalCommand {
    entry(EntryType::EmergencyStart, scope).reason(reason)
}

pub fn emergency_end(scope: Scope) -> JournalCommand {
    entry(EntryType::EmergencyEnd, scope)
}

pub fn expire(now_ms: u64) -> JournalCommand {
    JournalCommand::ExpireTtl {
        now_ms,
        author: "bootstorm".to_owned(),
    }
}

/// `RevokeCertificate` of one serial (given as an operator would type it).
pub fn revoke_serial(serial: &str, reason: &str) -> JournalCommand {
    let certificate = config::RevokedCertificate::serial_from_hex(serial)
        .unwrap_or_else(|_| config::RevokedCertificate::Serial(serial.to_owned()));
    revoke(certificate, reason)
}

/// `RevokeCertificate` of every certificate of `role` named `name`.
pub fn revoke_name(role: config::CertificateRole, name: &str, reason: &str) -> JournalCommand {
    revoke(
        config::RevokedCertificate::Name {
            role,
            name: name.to_owned(),
        },
        reason,
    )
}

pub fn revoke(certificate: config::RevokedCertificate, reason: &str) -> JournalCommand {
    JournalCommand::RevokeCertificate {
        certificate,
        reason: reason.to_owned(),
        author: ADMIN.to_owned(),
        timestamp_ms: 0,
    }
}

pub fn operation(kind: OperationKind, node: &str, detail: &str) -> JournalCommand {
    JournalCommand::RecordOperation(AdminOperation {
        timestamp_ms: 0,
        kind,
        node: node.to_owned(),
        author: ADMIN.to_owned(),
        detail: detail.to_owned(),
        exit_code: None,
    })
}

/// `SetOverlay` for `vcluster` claiming `seq`; the hash is derived from `compressed` so a
/// rendering shows which overlay is stored.
pub fn overlay(vcluster: &str, seq: Seq, compressed: &[u8]) -> JournalCommand {
    let mut hash = [0u8; 32];
    for (i, byte) in compressed.iter().enumerate() {
        hash[i % 32] ^= byte.wrapping_add(i as u8);
    }
    hash[0] = hash[0].wrapping_add(seq as u8);
    JournalCommand::SetOverlay {
        vcluster_id: vcluster.to_owned(),
        overlay: BootOverlay {
            seq,
            hash,
            raw_len: compressed.len() as u64 * 4,
            compressed: Bytes::copy_from_slice(compressed),
        },
    }
}

/// Refinements of an `AppendEntry` command.
pub trait EntryExt {
    fn parent(self, seq: Seq) -> Self;
    fn ttl(self, ttl_s: u64) -> Self;
    fn at(self, timestamp_ms: u64) -> Self;
    fn reason(self, reason: &str) -> Self;
    fn target(self, seq: Seq) -> Self;
    fn delta(self, delta: StateDelta) -> Self;
    fn by(self, author: &str) -> Self;
}

fn new_entry(command: &mut JournalCommand) -> &mut NewEntry {
    match command {
        JournalCommand::AppendEntry(new) => new,
        other => panic!("not an AppendEntry: {other:?}"),
    }
}

impl EntryExt for JournalCommand {
    fn parent(mut self, seq: Seq) -> Self {
        new_entry(&mut self).parent = Some(seq);
        self
    }
    fn ttl(mut self, ttl_s: u64) -> Self {
        new_entry(&mut self).ttl_s = Some(ttl_s);
        self
    }
    fn at(mut self, timestamp_ms: u64) -> Self {
        new_entry(&mut self).timestamp_ms = timestamp_ms;
        self
    }
    fn reason(mut self, reason: &str) -> Self {
        new_entry(&mut self).emergency_reason = Some(reason.to_owned());
        self
    }
    fn target(mut self, seq: Seq) -> Self {
        new_entry(&mut self).target_seq = Some(seq);
        self
    }
    fn delta(mut self, delta: StateDelta) -> Self {
        new_entry(&mut self).delta = delta;
        self
    }
    fn by(mut self, author: &str) -> Self {
        new_entry(&mut self).author = author.to_owned();
        self
    }
}

pub fn bytes_of(state: &JournalState) -> Vec<u8> {
    postcard::to_allocvec(state).expect("a journal state serializes")
}

/// Every scope the state knows anything about.
pub fn known_scopes(state: &JournalState) -> BTreeSet<Scope> {
    let mut scopes: BTreeSet<Scope> = state.scope_entries.keys().cloned().collect();
    scopes.extend(state.scope_configs.keys().cloned());
    scopes.extend(state.scope_heads.keys().cloned());
    scopes.insert(Scope::Global);
    scopes
}

/// The invariants that hold after any command: dense seqs, and every cached fold equals a
/// refold of the journal.
pub fn check_invariants(state: &JournalState) {
    let seqs: Vec<Seq> = state.entries.keys().copied().collect();
    let dense: Vec<Seq> = (1..=state.last_seq).collect();
    assert_eq!(seqs, dense, "seqs are dense from 1");
    for scope in known_scopes(state) {
        assert_eq!(
            state.scope_config(&scope),
            &state.scope_config_at(&scope, state.last_seq),
            "the cached fold of {scope} equals a refold of the journal"
        );
    }
}

/// Applies one command, asserting that a rejection leaves the state byte-identical and that
/// the invariants hold afterwards either way.
pub fn apply_checked(
    state: &mut JournalState,
    command: JournalCommand,
) -> Result<Applied, Rejected> {
    let before = bytes_of(state);
    let result = apply(state, command);
    if result.is_err() {
        assert_eq!(
            before,
            bytes_of(state),
            "a rejected command leaves the state unchanged"
        );
    }
    check_invariants(state);
    result
}

/// Applies `setup` (every command must be accepted), then `command`, which must be rejected
/// without changing the state. Returns the rejection.
pub fn rejection(setup: Vec<JournalCommand>, command: JournalCommand) -> Rejected {
    let mut state = JournalState::new();
    for (i, cmd) in setup.into_iter().enumerate() {
        if let Err(rejected) = apply_checked(&mut state, cmd) {
            panic!("setup command {i} was rejected: {rejected}");
        }
    }
    let before = bytes_of(&state);
    let rejected = apply_checked(&mut state, command).expect_err("the command must be rejected");
    assert_eq!(before, bytes_of(&state), "state unchanged by the rejection");
    rejected
}

/// Applies all commands (accepted or not) to a fresh state.
pub fn state_after(commands: Vec<JournalCommand>) -> JournalState {
    let mut state = JournalState::new();
    for command in commands {
        let _ = apply_checked(&mut state, command);
    }
    state
}

/// Applies `commands` to a fresh state and renders each outcome plus the final state.
pub fn run(commands: Vec<JournalCommand>) -> String {
    let mut state = JournalState::new();
    let mut out = String::from("results:\n");
    for (i, command) in commands.into_iter().enumerate() {
        match apply_checked(&mut state, command) {
            Ok(applied) => {
                let _ = write!(out, "  #{i} ok");
                if let Some(seq) = applied.seq {
                    let _ = write!(out, " seq={seq}");
                }
                if !applied.stale_vclusters.is_empty() {
                    let _ = write!(out, " stale={}", applied.stale_vclusters.join(","));
                }
                if !applied.changed_nodes.is_empty() {
                    let _ = write!(out, " nodes={}", applied.changed_nodes.join(","));
                }
                out.push('\n');
            }
            Err(rejected) => {
                let _ = writeln!(out, "  #{i} rejected: {rejected}");
            }
        }
    }
    out.push_str(&render(&state));
    out
}

fn opt<T: std::fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn content(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.len() <= 24 => format!("{text:?}"),
        _ => format!("<{} bytes>", bytes.len()),
    }
}

fn render_delta(out: &mut String, delta: &StateDelta) {
    for (path, file) in &delta.files {
        let _ = write!(out, "    file {path} {:o}", file.mode);
        if let Some(owner) = &file.owner {
            let _ = write!(out, " {owner}");
        }
        let _ = writeln!(out, " {}", content(&file.content));
    }
    for path in &delta.removes {
        let _ = writeln!(out, "    remove {path}");
    }
    for (key, value) in &delta.settings {
        let _ = writeln!(out, "    set {key}={value:?}");
    }
}

/// A compact, deterministic rendering of everything in a `JournalState`.
pub fn render(state: &JournalState) -> String {
    let mut out = format!("last_seq: {}\nentries:\n", state.last_seq);
    for entry in state.entries.values() {
        let _ = write!(
            out,
            "  {} {} {} {} parent={} target={}",
            entry.seq,
            entry.entry_type,
            entry.scope,
            entry.author,
            opt(&entry.parent),
            opt(&entry.target_seq),
        );
        if let Some(ttl) = entry.ttl_s {
            let _ = write!(out, " ttl={ttl}s@{}", entry.timestamp_ms);
        }
        if let Some(reason) = &entry.emergency_reason {
            let _ = write!(out, " reason={reason:?}");
        }
        if let Some(policy_ref) = &entry.policy_ref {
            let _ = write!(out, " policy={policy_ref}");
        }
        if !entry.delta.is_empty() {
            let _ = write!(out, " items={}", entry.delta.item_count());
        }
        out.push('\n');
    }
    out.push_str("scopes:\n");
    for scope in known_scopes(state) {
        let config = state.scope_config(&scope);
        let head = state.scope_heads.get(&scope).copied().unwrap_or(0);
        let config_seq = state.scope_config_seqs.get(&scope).copied().unwrap_or(0);
        let entries = state.scope_entries.get(&scope).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {scope} head={head} config_seq={config_seq} folds={entries:?}"
        );
        render_delta(&mut out, config);
    }
    for name in state.policies.keys() {
        let _ = writeln!(
            out,
            "vcluster_config {name} (latest_seq_affecting={}):",
            state.latest_seq_affecting(name)
        );
        render_delta(&mut out, &state.vcluster_config(name));
    }
    out.push_str("nodes:\n");
    for (id, node_state) in &state.node_states {
        let _ = writeln!(
            out,
            "  {id} {} {:?}",
            node_state.vcluster, node_state.status
        );
    }
    out.push_str("policies:\n");
    for (name, policy) in &state.policies {
        let _ = writeln!(
            out,
            "  {name} auto_converge={} description={:?} settings={:?}",
            policy.auto_converge, policy.description, policy.settings
        );
    }
    out.push_str("overlays:\n");
    for (name, overlay) in &state.overlays {
        let hash: String = overlay.hash[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = writeln!(
            out,
            "  {name} seq={} hash={hash} len={} stale={}",
            overlay.seq,
            overlay.compressed.len(),
            state.overlay_is_stale(name)
        );
    }
    let emergencies: Vec<String> = state
        .emergencies
        .iter()
        .map(|(scope, seq)| format!("{scope}@{seq}"))
        .collect();
    let _ = writeln!(out, "emergencies: {emergencies:?}");
    let _ = writeln!(out, "expired: {:?}", state.expired);
    // Only when there are any, so renderings of the journal before revocations stay as written.
    if !state.revoked.is_empty() {
        out.push_str("revoked:\n");
        for (certificate, seq) in &state.revoked {
            let _ = writeln!(out, "  {certificate} @{seq}");
        }
    }
    out.push_str("audit:\n");
    for op in &state.audit_log {
        let _ = writeln!(
            out,
            "  {:?} {} by {} {:?} exit={}",
            op.kind,
            op.node,
            op.author,
            op.detail,
            opt(&op.exit_code)
        );
    }
    out
}
