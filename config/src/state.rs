//! `JournalState` and `apply`: the deterministic state machine every replica runs.
//!
//! Invariants (asserted in debug builds, tested in `tests/`):
//! - `apply` is a function of (state, command) only: no clock, I/O or randomness;
//! - a rejected command leaves the state exactly as it was (all checks run before any write);
//! - seqs are dense: `entries` holds exactly `1..=last_seq`;
//! - `scope_configs[s]` always equals the fold of `s`'s live (unexpired) config entries, so
//!   readers (overlay build, node delta) never fold the whole journal on the hot path.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::limits::{
    ENTRY_DELTA_SIZE_MAX_BYTES, NODE_CONFIG_SIZE_MAX_BYTES, OVERLAY_SIZE_MAX_BYTES,
    VCLUSTER_CONFIG_SIZE_MAX_BYTES,
};
use crate::validate;
use crate::{
    AdminOperation, BootOverlay, ConfigEntry, EntryType, JournalCommand, NewEntry, NodeId,
    NodeState, NodeStatus, OperationKind, Rejected, RevokedCertificate, Scope, Seq, StateDelta,
    VClusterId, VClusterPolicy,
};

/// Everything the journal knows. Replicated byte-for-byte by Raft: two replicas that applied
/// the same commands serialize to the same bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalState {
    /// All entries by seq (append-only).
    pub entries: BTreeMap<Seq, ConfigEntry>,
    /// Registered nodes: their vCluster and status.
    pub node_states: BTreeMap<NodeId, NodeState>,
    /// vClusters and their policies; a vCluster exists iff it has a policy.
    pub policies: BTreeMap<VClusterId, VClusterPolicy>,
    /// Latest stored overlay per vCluster (may be stale; see `overlay_is_stale`).
    pub overlays: BTreeMap<VClusterId, BootOverlay>,
    /// Exec and shell-session records.
    pub audit_log: Vec<AdminOperation>,
    /// Seq of the newest entry; 0 for an empty journal.
    pub last_seq: Seq,
    /// Newest entry seq of any type per scope: what `parent` is compared with.
    pub scope_heads: BTreeMap<Scope, Seq>,
    /// Newest seq that changed the config (or policy, or node assignment) of each scope:
    /// what overlay and node-delta staleness is measured against.
    pub scope_config_seqs: BTreeMap<Scope, Seq>,
    /// Config-changing entries of each scope in seq order: the index rollback folds over.
    pub scope_entries: BTreeMap<Scope, Vec<Seq>>,
    /// Current folded config of each scope (derived from `scope_entries` minus `expired`).
    pub scope_configs: BTreeMap<Scope, StateDelta>,
    /// Entries whose TTL has expired: they no longer count in any fold.
    pub expired: BTreeSet<Seq>,
    /// Active emergencies: scope → seq of the `EmergencyStart`.
    pub emergencies: BTreeMap<Scope, Seq>,
    /// Revoked certificates → seq of their `CertificateRevoked` entry; at most
    /// `REVOKED_CERTIFICATES_MAX`. Never shrinks (a revocation is not undone: issue a new
    /// certificate). Must stay the last field: snapshots of format 01, written before it
    /// existed, decode as the same bytes plus an empty map (`raftstore::snapshot`).
    pub revoked: BTreeMap<RevokedCertificate, Seq>,
}

/// What an applied command changed, so the caller can rebuild derived data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Seq of the entry appended, if the command appends one (all but `SetOverlay`).
    pub seq: Option<Seq>,
    /// vClusters whose overlay is now stale and should be rebuilt.
    pub stale_vclusters: Vec<VClusterId>,
    /// Nodes whose phase-2 delta changed.
    pub changed_nodes: Vec<NodeId>,
}

/// Applies one command. Deterministic; on `Err` the state is unchanged.
pub fn apply(state: &mut JournalState, command: JournalCommand) -> Result<Applied, Rejected> {
    let last_seq_before = state.last_seq;
    let result = match command {
        JournalCommand::AppendEntry(new) => state.append_entry(new),
        JournalCommand::UpdateNodeState {
            node_id,
            state: node_state,
            author,
            timestamp_ms,
        } => state.update_node_state(node_id, node_state, author, timestamp_ms),
        JournalCommand::SetPolicy {
            vcluster_id,
            policy,
            author,
            timestamp_ms,
        } => state.set_policy(vcluster_id, policy, author, timestamp_ms),
        JournalCommand::SetOverlay {
            vcluster_id,
            overlay,
        } => state.set_overlay(vcluster_id, overlay),
        JournalCommand::RecordOperation(operation) => state.record_operation(operation),
        JournalCommand::ExpireTtl { now_ms, author } => state.expire_ttl(now_ms, author),
        JournalCommand::RevokeCertificate {
            certificate,
            reason,
            author,
            timestamp_ms,
        } => state.revoke_certificate(certificate, reason, author, timestamp_ms),
    };
    debug_assert!(state.last_seq >= last_seq_before, "seq never goes back");
    debug_assert_eq!(state.entries.len() as u64, state.last_seq, "seqs are dense");
    debug_assert!(
        result.is_ok() || state.last_seq == last_seq_before,
        "a rejected command appends nothing"
    );
    result
}

impl JournalState {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Newest seq that affects `vcluster`'s overlay: its own config/policy or global config.
    pub fn latest_seq_affecting(&self, vcluster: &str) -> Seq {
        let global = self.config_seq(&Scope::Global);
        let own = self.config_seq(&Scope::VCluster(vcluster.to_owned()));
        global.max(own)
    }

    /// Newest seq that changed `node`'s phase-2 delta (its config or its assignment).
    pub fn node_seq(&self, node: &str) -> Seq {
        self.config_seq(&Scope::Node(node.to_owned()))
    }

    /// An overlay is stale when it was built before the newest seq affecting its vCluster.
    /// A missing overlay is stale too.
    pub fn overlay_is_stale(&self, vcluster: &str) -> bool {
        match self.overlays.get(vcluster) {
            Some(overlay) => overlay.seq < self.latest_seq_affecting(vcluster),
            None => true,
        }
    }

    /// The folded config of one scope as it is now (empty if the scope has none).
    pub fn scope_config(&self, scope: &Scope) -> &StateDelta {
        static EMPTY: std::sync::OnceLock<StateDelta> = std::sync::OnceLock::new();
        self.scope_configs
            .get(scope)
            .unwrap_or_else(|| EMPTY.get_or_init(StateDelta::default))
    }

    /// A vCluster's effective base config: global config with the vCluster's layered on top
    /// (the vCluster wins on conflicts; its removals delete global files). Only `files` and
    /// `settings` are meaningful; `removes` is empty.
    pub fn vcluster_config(&self, vcluster: &str) -> StateDelta {
        let mut layered = self.scope_config(&Scope::Global).clone();
        merge(
            &mut layered,
            self.scope_config(&Scope::VCluster(vcluster.to_owned())),
        );
        layered.removes.clear();
        layered
    }

    /// The folded config of `scope` as of `up_to` (inclusive), from the journal itself.
    /// Entries expired by now stay excluded: expiry is not undone by looking back.
    pub fn scope_config_at(&self, scope: &Scope, up_to: Seq) -> StateDelta {
        let mut folded = StateDelta::default();
        let Some(seqs) = self.scope_entries.get(scope) else {
            return folded;
        };
        for seq in seqs.iter().take_while(|seq| **seq <= up_to) {
            if self.expired.contains(seq) {
                continue;
            }
            let entry = &self.entries[seq];
            if entry.entry_type == EntryType::Rollback {
                folded = entry.delta.clone();
            } else {
                merge(&mut folded, &entry.delta);
            }
        }
        folded
    }

    /// Entries of `scope` (or all when `None`) with seq > `since`, oldest first.
    pub fn log<'a>(
        &'a self,
        scope: Option<&'a Scope>,
        since: Seq,
    ) -> impl Iterator<Item = &'a ConfigEntry> + 'a {
        self.entries
            .range(since.saturating_add(1)..)
            .map(|(_, entry)| entry)
            .filter(move |entry| scope.is_none_or(|s| &entry.scope == s))
    }

    fn config_seq(&self, scope: &Scope) -> Seq {
        self.scope_config_seqs.get(scope).copied().unwrap_or(0)
    }

    fn check_scope_exists(&self, scope: &Scope) -> Result<(), Rejected> {
        match scope {
            Scope::Global => Ok(()),
            Scope::VCluster(name) if self.policies.contains_key(name) => Ok(()),
            Scope::VCluster(name) => Err(Rejected::UnknownVCluster(name.clone())),
            Scope::Node(id) if self.node_states.contains_key(id) => Ok(()),
            Scope::Node(id) => Err(Rejected::UnknownNode(id.clone())),
        }
    }

    /// Checks the size limit a scope's folded config must respect after a change;
    /// `folded_size_bytes` is the `size_bytes` the scope's fold would have.
    fn check_scope_size(&self, scope: &Scope, folded_size_bytes: usize) -> Result<(), Rejected> {
        let size_bytes = match scope {
            Scope::Node(_) => folded_size_bytes,
            // An overlay layers global under one vCluster: bound the largest such pair.
            Scope::Global => {
                let largest_vcluster = self
                    .policies
                    .keys()
                    .map(|name| {
                        self.scope_config(&Scope::VCluster(name.clone()))
                            .size_bytes()
                    })
                    .max()
                    .unwrap_or(0);
                folded_size_bytes + largest_vcluster
            }
            Scope::VCluster(_) => {
                folded_size_bytes + self.scope_config(&Scope::Global).size_bytes()
            }
        };
        let max_bytes = match scope {
            Scope::Node(_) => NODE_CONFIG_SIZE_MAX_BYTES,
            Scope::Global | Scope::VCluster(_) => VCLUSTER_CONFIG_SIZE_MAX_BYTES,
        };
        if size_bytes > max_bytes {
            return Err(Rejected::ScopeConfigTooLarge {
                scope: scope.clone(),
                size_bytes,
                max_bytes,
            });
        }
        Ok(())
    }

    fn check_author(author: &str) -> Result<(), Rejected> {
        if author.is_empty() {
            return Err(Rejected::InvalidName {
                what: "author",
                name: String::new(),
                reason: "is empty",
            });
        }
        validate::text("author", author)
    }

    /// Checks of a new entry's own fields against the state: author, scope, parent (the
    /// optimistic concurrency check), free texts, and which fields its type allows.
    fn check_entry_fields(&self, new: &NewEntry) -> Result<(), Rejected> {
        Self::check_author(&new.author)?;
        self.check_scope_exists(&new.scope)?;
        if let Some(given) = new.parent {
            let newest = self.scope_heads.get(&new.scope).copied().unwrap_or(0);
            if given != newest {
                return Err(Rejected::WrongParent {
                    scope: new.scope.clone(),
                    given,
                    newest,
                });
            }
        }
        if let Some(reason) = &new.emergency_reason {
            validate::text("emergency reason", reason)?;
        }
        if let Some(policy_ref) = &new.policy_ref {
            validate::text("policy ref", policy_ref)?;
        }
        let entry_type = new.entry_type;
        if entry_type == EntryType::CertificateRevoked {
            return Err(Rejected::RevocationEntryNotAllowed);
        }
        if !entry_type.changes_config() && !new.delta.is_empty() {
            return Err(Rejected::DeltaNotAllowed { entry_type });
        }
        if entry_type != EntryType::Rollback && new.target_seq.is_some() {
            return Err(Rejected::RollbackTargetNotAllowed { entry_type });
        }
        Ok(())
    }

    /// The checks particular to an entry's type. A rollback gets its delta here: the scope's
    /// fold as of its target, which the entry then replaces the scope's fold with.
    fn check_entry_type(&self, new: &mut NewEntry) -> Result<(), Rejected> {
        match new.entry_type {
            EntryType::Rollback => {
                let target = new.target_seq.ok_or(Rejected::RollbackWithoutTarget)?;
                if !new.delta.is_empty() {
                    return Err(Rejected::RollbackWithDelta);
                }
                let target_entry = self
                    .entries
                    .get(&target)
                    .ok_or(Rejected::RollbackTargetMissing { seq: target })?;
                if target_entry.scope != new.scope {
                    return Err(Rejected::RollbackTargetOutOfScope {
                        seq: target,
                        scope: new.scope.clone(),
                        actual: target_entry.scope.clone(),
                    });
                }
                new.delta = self.scope_config_at(&new.scope, target);
            }
            EntryType::EmergencyStart
                if new.emergency_reason.as_deref().is_none_or(str::is_empty) =>
            {
                return Err(Rejected::EmergencyWithoutReason);
            }
            EntryType::EmergencyEnd if !self.emergencies.contains_key(&new.scope) => {
                return Err(Rejected::NoActiveEmergency(new.scope.clone()));
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the entry's delta and the size its scope's fold would have with it; returns
    /// that size if the entry changes the scope's config, `None` if it does not.
    fn check_delta_and_fold_size(&self, new: &NewEntry) -> Result<Option<usize>, Rejected> {
        let entry_type = new.entry_type;
        // A rollback's delta is the scope's reconstructed fold, built from deltas that each
        // passed these checks; the fold may name more items or bytes than one delta may (it is
        // bounded by the scope limits below instead), so it must not be refused here.
        if entry_type != EntryType::Rollback {
            validate::delta(&new.delta)?;
            let size_bytes = new.delta.size_bytes();
            if size_bytes > ENTRY_DELTA_SIZE_MAX_BYTES {
                return Err(Rejected::EntryTooLarge {
                    size_bytes,
                    max_bytes: ENTRY_DELTA_SIZE_MAX_BYTES,
                });
            }
        }
        let changes_config = entry_type == EntryType::Rollback
            || (entry_type.changes_config() && !new.delta.is_empty());
        // The fold's new size is computed without building the new fold: cloning a scope's
        // whole config on every commit made apply O(scope config) instead of O(delta).
        let folded_size_bytes = if !changes_config {
            None
        } else if entry_type == EntryType::Rollback {
            Some(new.delta.size_bytes())
        } else {
            Some(merged_size_bytes(self.scope_config(&new.scope), &new.delta))
        };
        if let Some(size_bytes) = folded_size_bytes {
            self.check_scope_size(&new.scope, size_bytes)?;
        }
        Ok(folded_size_bytes)
    }

    /// Appends a checked entry: folds its delta into its scope's config (when
    /// `folded_size_bytes` says it changes it; the size is asserted exact), records it, and
    /// updates the emergency and node status its type implies.
    fn write_entry(&mut self, new: NewEntry, folded_size_bytes: Option<usize>) -> Applied {
        let entry_type = new.entry_type;
        let scope = new.scope.clone();
        if let Some(size_bytes) = folded_size_bytes {
            let folded = self.scope_configs.entry(scope.clone()).or_default();
            if entry_type == EntryType::Rollback {
                *folded = new.delta.clone();
            } else {
                merge(folded, &new.delta);
            }
            debug_assert_eq!(
                folded.size_bytes(),
                size_bytes,
                "merged_size_bytes is exact"
            );
        }
        let seq = self.push_entry(ConfigEntry::from_new(self.last_seq + 1, new));
        let mut applied = Applied {
            seq: Some(seq),
            ..Applied::default()
        };
        if folded_size_bytes.is_some() {
            self.scope_entries
                .entry(scope.clone())
                .or_default()
                .push(seq);
            self.mark_config_changed(&scope, seq, &mut applied);
        }
        let node_status = match entry_type {
            EntryType::DriftDetected => Some(NodeStatus::Drifted),
            EntryType::AutoConverge => Some(NodeStatus::Committed),
            EntryType::EmergencyStart => {
                self.emergencies.insert(scope.clone(), seq);
                Some(NodeStatus::Emergency)
            }
            EntryType::EmergencyEnd => {
                self.emergencies.remove(&scope);
                Some(NodeStatus::Committed)
            }
            _ => None,
        };
        if let (Some(status), Scope::Node(node)) = (node_status, &scope) {
            if let Some(node_state) = self.node_states.get_mut(node) {
                node_state.status = status;
            }
        }
        applied
    }

    /// Appends `new` if every check passes. The checks take `&self`, so a refused entry
    /// leaves the state exactly as it was.
    fn append_entry(&mut self, mut new: NewEntry) -> Result<Applied, Rejected> {
        self.check_entry_fields(&new)?;
        self.check_entry_type(&mut new)?;
        let folded_size_bytes = self.check_delta_and_fold_size(&new)?;
        Ok(self.write_entry(new, folded_size_bytes))
    }

    fn update_node_state(
        &mut self,
        node_id: NodeId,
        node_state: NodeState,
        author: String,
        timestamp_ms: u64,
    ) -> Result<Applied, Rejected> {
        validate::checked_name("node id", &node_id)?;
        Self::check_author(&author)?;
        if !self.policies.contains_key(&node_state.vcluster) {
            return Err(Rejected::UnknownVCluster(node_state.vcluster.clone()));
        }
        let scope = Scope::Node(node_id.clone());
        let assignment_changed = self
            .node_states
            .get(&node_id)
            .is_none_or(|old| old.vcluster != node_state.vcluster);
        let seq = self.push_entry(system_entry(
            self.last_seq + 1,
            EntryType::BootConfig,
            scope.clone(),
            author,
            timestamp_ms,
        ));
        self.node_states.insert(node_id, node_state);
        let mut applied = Applied {
            seq: Some(seq),
            ..Applied::default()
        };
        if assignment_changed {
            self.mark_config_changed(&scope, seq, &mut applied);
        }
        Ok(applied)
    }

    fn set_policy(
        &mut self,
        vcluster_id: VClusterId,
        policy: VClusterPolicy,
        author: String,
        timestamp_ms: u64,
    ) -> Result<Applied, Rejected> {
        validate::checked_name("vcluster", &vcluster_id)?;
        Self::check_author(&author)?;
        validate::text("policy description", &policy.description)?;
        for (key, value) in &policy.settings {
            validate::checked_name("policy setting key", key)?;
            validate::text("policy setting value", value)?;
        }
        let count = policy.settings.len();
        if count > crate::limits::DELTA_ITEMS_MAX {
            return Err(Rejected::TooManyItems {
                count,
                max: crate::limits::DELTA_ITEMS_MAX,
            });
        }
        let scope = Scope::VCluster(vcluster_id.clone());
        let mut entry = system_entry(
            self.last_seq + 1,
            EntryType::PolicyUpdate,
            scope.clone(),
            author,
            timestamp_ms,
        );
        entry.policy_ref = Some(vcluster_id.clone());
        let seq = self.push_entry(entry);
        self.policies.insert(vcluster_id, policy);
        let mut applied = Applied {
            seq: Some(seq),
            ..Applied::default()
        };
        self.mark_config_changed(&scope, seq, &mut applied);
        Ok(applied)
    }

    fn set_overlay(
        &mut self,
        vcluster_id: VClusterId,
        overlay: BootOverlay,
    ) -> Result<Applied, Rejected> {
        if !self.policies.contains_key(&vcluster_id) {
            return Err(Rejected::UnknownVCluster(vcluster_id));
        }
        if overlay.seq > self.last_seq {
            return Err(Rejected::OverlayFromFuture {
                seq: overlay.seq,
                last_seq: self.last_seq,
            });
        }
        if let Some(stored) = self.overlays.get(&vcluster_id) {
            if overlay.seq < stored.seq {
                return Err(Rejected::OverlayOutdated {
                    seq: overlay.seq,
                    stored: stored.seq,
                });
            }
        }
        if overlay.compressed.len() > OVERLAY_SIZE_MAX_BYTES {
            return Err(Rejected::OverlayTooLarge {
                size_bytes: overlay.compressed.len(),
                max_bytes: OVERLAY_SIZE_MAX_BYTES,
            });
        }
        self.overlays.insert(vcluster_id, overlay);
        Ok(Applied::default())
    }

    fn record_operation(&mut self, operation: AdminOperation) -> Result<Applied, Rejected> {
        Self::check_author(&operation.author)?;
        validate::text("operation detail", &operation.detail)?;
        let scope = Scope::Node(operation.node.clone());
        self.check_scope_exists(&scope)?;
        let entry_type = match operation.kind {
            OperationKind::Exec => EntryType::ExecLog,
            OperationKind::ShellStart | OperationKind::ShellEnd => EntryType::ShellSession,
        };
        let seq = self.push_entry(system_entry(
            self.last_seq + 1,
            entry_type,
            scope,
            operation.author.clone(),
            operation.timestamp_ms,
        ));
        self.audit_log.push(operation);
        Ok(Applied {
            seq: Some(seq),
            ..Applied::default()
        })
    }

    fn expire_ttl(&mut self, now_ms: u64, author: String) -> Result<Applied, Rejected> {
        Self::check_author(&author)?;
        let due: Vec<(Seq, Scope)> = self
            .scope_entries
            .values()
            .flatten()
            .filter(|seq| !self.expired.contains(seq))
            .filter_map(|seq| {
                let entry = &self.entries[seq];
                let ttl_s = entry.ttl_s?;
                let expires_at_ms = entry
                    .timestamp_ms
                    .saturating_add(ttl_s.saturating_mul(1000));
                (expires_at_ms <= now_ms).then(|| (*seq, entry.scope.clone()))
            })
            .collect();
        if due.is_empty() {
            return Err(Rejected::NothingExpired { now_ms });
        }
        let mut applied = Applied::default();
        // Scope → seq of its last AutoConverge in this batch: the seq at which its config
        // changed (not the batch's last seq, which may belong to another scope).
        let mut scopes: BTreeMap<Scope, Seq> = BTreeMap::new();
        let mut due = due;
        due.sort();
        for (expired_seq, scope) in due {
            self.expired.insert(expired_seq);
            let mut entry = system_entry(
                self.last_seq + 1,
                EntryType::AutoConverge,
                scope.clone(),
                author.clone(),
                now_ms,
            );
            entry.target_seq = Some(expired_seq);
            let seq = self.push_entry(entry);
            applied.seq = Some(seq);
            scopes.insert(scope, seq);
        }
        for (scope, seq) in scopes {
            let folded = self.scope_config_at(&scope, self.last_seq);
            self.scope_configs.insert(scope.clone(), folded);
            self.mark_config_changed(&scope, seq, &mut applied);
        }
        Ok(applied)
    }

    /// The seq that revoked a certificate with this serial, or of this role and CN: `None`
    /// when it is not revoked. `serial` in canonical hex (`RevokedCertificate::serial_from_hex`).
    pub fn revocation_of(
        &self,
        role: crate::CertificateRole,
        name: &str,
        serial: &str,
    ) -> Option<Seq> {
        let by_serial = RevokedCertificate::Serial(serial.to_owned());
        let by_name = RevokedCertificate::Name {
            role,
            name: name.to_owned(),
        };
        self.revoked
            .get(&by_serial)
            .or_else(|| self.revoked.get(&by_name))
            .copied()
    }

    fn revoke_certificate(
        &mut self,
        certificate: RevokedCertificate,
        reason: String,
        author: String,
        timestamp_ms: u64,
    ) -> Result<Applied, Rejected> {
        Self::check_author(&author)?;
        validate::text("revocation reason", &reason)?;
        match &certificate {
            RevokedCertificate::Serial(serial) => {
                let canonical = RevokedCertificate::serial_from_hex(serial).map_err(|reason| {
                    Rejected::InvalidCertificate {
                        what: "serial",
                        value: serial.clone(),
                        reason,
                    }
                })?;
                if canonical != certificate {
                    return Err(Rejected::InvalidCertificate {
                        what: "serial",
                        value: serial.clone(),
                        reason: "is not canonical (lower-case hex without leading zeros)",
                    });
                }
            }
            RevokedCertificate::Name { name, .. } => {
                if name.is_empty() {
                    return Err(Rejected::InvalidCertificate {
                        what: "name",
                        value: name.clone(),
                        reason: "is empty",
                    });
                }
                validate::text("certificate name", name)?;
            }
        }
        if let Some(seq) = self.revoked.get(&certificate) {
            return Err(Rejected::AlreadyRevoked {
                certificate,
                seq: *seq,
            });
        }
        let max = crate::limits::REVOKED_CERTIFICATES_MAX;
        if self.revoked.len() >= max {
            return Err(Rejected::TooManyRevocations { max });
        }
        let mut entry = system_entry(
            self.last_seq + 1,
            EntryType::CertificateRevoked,
            Scope::Global,
            author,
            timestamp_ms,
        );
        entry.policy_ref = Some(certificate.to_string());
        entry.emergency_reason = Some(reason);
        let seq = self.push_entry(entry);
        self.revoked.insert(certificate, seq);
        Ok(Applied {
            seq: Some(seq),
            ..Applied::default()
        })
    }

    /// Appends an entry at `last_seq + 1` and moves the scope head; returns its seq.
    fn push_entry(&mut self, entry: ConfigEntry) -> Seq {
        assert_eq!(entry.seq, self.last_seq + 1, "entries are appended densely");
        let seq = entry.seq;
        self.scope_heads.insert(entry.scope.clone(), seq);
        self.entries.insert(seq, entry);
        self.last_seq = seq;
        seq
    }

    /// Records that `scope`'s config changed at `seq` and reports what went stale.
    fn mark_config_changed(&mut self, scope: &Scope, seq: Seq, applied: &mut Applied) {
        self.scope_config_seqs.insert(scope.clone(), seq);
        match scope {
            Scope::Global => {
                for name in self.policies.keys() {
                    push_unique(&mut applied.stale_vclusters, name);
                }
            }
            Scope::VCluster(name) => push_unique(&mut applied.stale_vclusters, name),
            Scope::Node(node) => push_unique(&mut applied.changed_nodes, node),
        }
    }
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|existing| existing == value) {
        list.push(value.to_owned());
    }
}

/// An entry the state machine writes on behalf of a command (no delta, no parent check).
fn system_entry(
    seq: Seq,
    entry_type: EntryType,
    scope: Scope,
    author: String,
    timestamp_ms: u64,
) -> ConfigEntry {
    ConfigEntry {
        seq,
        timestamp_ms,
        entry_type,
        scope,
        author,
        parent: None,
        delta: StateDelta::default(),
        policy_ref: None,
        ttl_s: None,
        emergency_reason: None,
        target_seq: None,
    }
}

/// The `size_bytes` of `folded` after `merge(folded, delta)`, without building the merge.
/// Follows `merge` step by step (files, then removals, then settings), so it is exact for any
/// delta, even one that writes and removes the same path.
fn merged_size_bytes(folded: &StateDelta, delta: &StateDelta) -> usize {
    let file_weight = |path: &str, file: &crate::FileSpec| {
        path.len() + file.content.len() + file.owner.as_ref().map_or(0, String::len)
    };
    let mut added = 0;
    let mut dropped = 0;
    for (path, file) in &delta.files {
        if folded.removes.contains(path) {
            dropped += path.len();
        }
        if let Some(old) = folded.files.get(path) {
            dropped += file_weight(path, old);
        }
        added += file_weight(path, file);
    }
    for path in &delta.removes {
        if let Some(written) = delta.files.get(path) {
            // Written by this delta (so no longer in `removes`), then removed again.
            dropped += file_weight(path, written);
            added += path.len();
        } else {
            if let Some(old) = folded.files.get(path) {
                dropped += file_weight(path, old);
            }
            if !folded.removes.contains(path) {
                added += path.len();
            }
        }
    }
    for (key, value) in &delta.settings {
        if let Some(old) = folded.settings.get(key) {
            dropped += key.len() + old.len();
        }
        added += key.len() + value.len();
    }
    folded.size_bytes() + added - dropped
}

/// Layers `delta` onto `folded`: written files replace, removals delete (and are remembered so
/// a node delta can remove files of the base overlay), settings replace.
pub fn merge(folded: &mut StateDelta, delta: &StateDelta) {
    for (path, file) in &delta.files {
        folded.removes.remove(path);
        folded.files.insert(path.clone(), file.clone());
    }
    for path in &delta.removes {
        folded.files.remove(path);
        folded.removes.insert(path.clone());
    }
    for (key, value) in &delta.settings {
        folded.settings.insert(key.clone(), value.clone());
    }
}
