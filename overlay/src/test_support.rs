//! Small journal states shared by this crate's unit tests (compiled only for tests).
//!
//! Invariant: built only through `config::apply`, so every state here is one a replica could
//! really hold.

use std::collections::BTreeMap;

use bytes::Bytes;
use config::{
    apply, FileSpec, JournalCommand, JournalState, NewEntry, NodeState, NodeStatus, Scope,
    StateDelta, VClusterPolicy,
};

pub(crate) fn file(mode: u32, content: &[u8]) -> FileSpec {
    FileSpec {
        mode,
        owner: None,
        content: Bytes::copy_from_slice(content),
    }
}

pub(crate) fn commit(state: &mut JournalState, scope: Scope, delta: StateDelta) {
    let timestamp_ms = 1_000 + state.last_seq;
    apply(
        state,
        JournalCommand::AppendEntry(NewEntry::commit(scope, "tester", timestamp_ms, delta)),
    )
    .expect("test commits are valid");
}

/// Global config, two vClusters (`compute`, `gpu`), nodes `n1` (compute, with a manual
/// change: one file, one removal, one setting) and `n2` (gpu, no change).
pub(crate) fn small_state() -> JournalState {
    let mut state = JournalState::new();
    for (name, auto_converge) in [("compute", true), ("gpu", false)] {
        apply(
            &mut state,
            JournalCommand::SetPolicy {
                vcluster_id: name.into(),
                policy: VClusterPolicy {
                    description: format!("{name} partition"),
                    auto_converge,
                    settings: BTreeMap::from([("image".into(), format!("{name}-img"))]),
                },
                author: "tester".into(),
                timestamp_ms: 1,
            },
        )
        .unwrap();
    }
    for (node, vcluster) in [("n1", "compute"), ("n2", "gpu")] {
        apply(
            &mut state,
            JournalCommand::UpdateNodeState {
                node_id: node.into(),
                state: NodeState {
                    vcluster: vcluster.into(),
                    status: NodeStatus::Committed,
                },
                author: "tester".into(),
                timestamp_ms: 2,
            },
        )
        .unwrap();
    }
    let mut global = StateDelta::default();
    global
        .files
        .insert("/etc/hosts".into(), file(0o644, b"127.0.0.1 localhost\n"));
    global
        .files
        .insert("/etc/motd".into(), file(0o644, b"global motd\n"));
    global
        .files
        .insert("/usr/bin/site-tool".into(), file(0o755, b"#!/bin/sh\n"));
    global.settings.insert("site".into(), "demo".into());
    commit(&mut state, Scope::Global, global);

    let mut compute = StateDelta::default();
    compute
        .files
        .insert("/etc/motd".into(), file(0o644, b"compute motd\n"));
    compute.files.insert(
        "/etc/ssh/sshd_config".into(),
        FileSpec {
            mode: 0o600,
            owner: Some("root:root".into()),
            content: Bytes::from_static(b"PermitRootLogin no\n"),
        },
    );
    compute
        .settings
        .insert("cpu.governor".into(), "performance".into());
    commit(&mut state, Scope::VCluster("compute".into()), compute);

    let mut node = StateDelta::default();
    node.files
        .insert("/etc/motd".into(), file(0o640, b"n1: DIMM replaced\n"));
    node.removes.insert("/usr/bin/site-tool".into());
    node.settings
        .insert("cpu.governor".into(), "powersave".into());
    commit(&mut state, Scope::Node("n1".into()), node);
    state
}
