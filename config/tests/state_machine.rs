//! Data-driven tests of the journal state machine (`config::apply`): each case is a list of
//! commands and the expected rendering of every outcome and of the resulting state, so the
//! semantics (layering, rollback, TTL expiry, emergencies, drift, audit, overlays, staleness)
//! read like a spec. Run with `UPDATE_EXPECT=1` to refresh a rendering after a deliberate change.

mod common;

use common::*;
use config::{apply, EntryType, JournalState, NodeStatus, OperationKind, Scope};
use expect_test::expect;

#[test]
fn commit_to_each_scope() {
    let actual = run(vec![
        policy("compute"),
        register("n1", "compute"),
        commit(
            global(),
            d().file("/etc/motd", "welcome\n").set("ntp", "10.0.0.1"),
        ),
        commit(
            vc("compute"),
            d().file("/etc/slurm.conf", "partition=compute"),
        ),
        commit(node("n1"), d().set("hostname", "n1")),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 nodes=n1
          #2 ok seq=3 stale=compute
          #3 ok seq=4 stale=compute
          #4 ok seq=5 nodes=n1
        last_seq: 5
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 commit global alice parent=- target=- items=2
          4 commit vcluster:compute alice parent=- target=- items=1
          5 commit node:n1 alice parent=- target=- items=1
        scopes:
          global head=3 config_seq=3 folds=[3]
            file /etc/motd 644 "welcome\n"
            set ntp="10.0.0.1"
          vcluster:compute head=4 config_seq=4 folds=[4]
            file /etc/slurm.conf 644 "partition=compute"
          node:n1 head=5 config_seq=5 folds=[5]
            set hostname="n1"
        vcluster_config compute (latest_seq_affecting=4):
            file /etc/motd 644 "welcome\n"
            file /etc/slurm.conf 644 "partition=compute"
            set ntp="10.0.0.1"
        nodes:
          n1 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn layering_vcluster_over_global_and_node_removes_recorded() {
    let actual = run(vec![
        policy("compute"),
        policy("gpu"),
        register("n1", "compute"),
        commit(
            global(),
            d().file("/etc/motd", "global")
                .file("/etc/issue", "global")
                .set("ntp", "global"),
        ),
        // compute overrides one file and a setting, and deletes a global file.
        commit(
            vc("compute"),
            d().file("/etc/motd", "compute")
                .rm("/etc/issue")
                .set("ntp", "compute"),
        ),
        // A later global change does not beat the vCluster's override.
        commit(global(), d().file("/etc/motd", "global v2")),
        // A node's removal is remembered in its fold, so phase 2 can delete a base file.
        commit(
            node("n1"),
            d().rm("/etc/motd")
                .file_mode("/etc/node-id", 0o600, b"n1")
                .owned("/etc/node-id", "root:root"),
        ),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 stale=gpu
          #2 ok seq=3 nodes=n1
          #3 ok seq=4 stale=compute,gpu
          #4 ok seq=5 stale=compute
          #5 ok seq=6 stale=compute,gpu
          #6 ok seq=7 nodes=n1
        last_seq: 7
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 policy-update vcluster:gpu alice parent=- target=- policy=gpu
          3 boot-config node:n1 alice parent=- target=-
          4 commit global alice parent=- target=- items=3
          5 commit vcluster:compute alice parent=- target=- items=3
          6 commit global alice parent=- target=- items=1
          7 commit node:n1 alice parent=- target=- items=2
        scopes:
          global head=6 config_seq=6 folds=[4, 6]
            file /etc/issue 644 "global"
            file /etc/motd 644 "global v2"
            set ntp="global"
          vcluster:compute head=5 config_seq=5 folds=[5]
            file /etc/motd 644 "compute"
            remove /etc/issue
            set ntp="compute"
          vcluster:gpu head=2 config_seq=2 folds=[]
          node:n1 head=7 config_seq=7 folds=[7]
            file /etc/node-id 600 root:root "n1"
            remove /etc/motd
        vcluster_config compute (latest_seq_affecting=6):
            file /etc/motd 644 "compute"
            set ntp="compute"
        vcluster_config gpu (latest_seq_affecting=6):
            file /etc/issue 644 "global"
            file /etc/motd 644 "global v2"
            set ntp="global"
        nodes:
          n1 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
          gpu auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn a_write_after_a_removal_in_the_same_scope_clears_the_removal() {
    let actual = run(vec![
        commit(global(), d().file("/a", "1")),
        commit(global(), d().rm("/a")),
        commit(global(), d().file("/a", "2")),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1
          #1 ok seq=2
          #2 ok seq=3
        last_seq: 3
        entries:
          1 commit global alice parent=- target=- items=1
          2 commit global alice parent=- target=- items=1
          3 commit global alice parent=- target=- items=1
        scopes:
          global head=3 config_seq=3 folds=[1, 2, 3]
            file /a 644 "2"
        nodes:
        policies:
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn rollback_restores_an_earlier_state_and_history_stays() {
    let actual = run(vec![
        commit(global(), d().file("/etc/motd", "A").set("k", "A")),
        commit(
            global(),
            d().file("/etc/motd", "B")
                .file("/etc/new", "B")
                .rm("/etc/x"),
        ),
        rollback(global(), 1),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1
          #1 ok seq=2
          #2 ok seq=3
        last_seq: 3
        entries:
          1 commit global alice parent=- target=- items=2
          2 commit global alice parent=- target=- items=3
          3 rollback global alice parent=- target=1 items=2
        scopes:
          global head=3 config_seq=3 folds=[1, 2, 3]
            file /etc/motd 644 "A"
            set k="A"
        nodes:
        policies:
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn rollback_of_a_rollback() {
    let mut state = state_after(vec![
        commit(global(), d().set("v", "A")),
        commit(global(), d().set("v", "B")),
        rollback(global(), 1),
    ]);
    let before_rollbacks = state.scope_config_at(&global(), 2);
    let at_rollback = state.scope_config(&global()).clone();
    // Rolling back to the entry before the rollback undoes it (back to B) ...
    apply_checked(&mut state, rollback(global(), 2)).unwrap();
    assert_eq!(state.scope_config(&global()), &before_rollbacks);
    // ... and rolling back to the rollback entry itself restores A again.
    apply_checked(&mut state, rollback(global(), 3)).unwrap();
    assert_eq!(state.scope_config(&global()), &at_rollback);
    expect![[r#"
        last_seq: 5
        entries:
          1 commit global alice parent=- target=- items=1
          2 commit global alice parent=- target=- items=1
          3 rollback global alice parent=- target=1 items=1
          4 rollback global alice parent=- target=2 items=1
          5 rollback global alice parent=- target=3 items=1
        scopes:
          global head=5 config_seq=5 folds=[1, 2, 3, 4, 5]
            set v="A"
        nodes:
        policies:
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&render(&state));
}

#[test]
fn rollback_is_per_scope() {
    let actual = run(vec![
        policy("compute"),
        commit(global(), d().set("g", "1")),
        commit(vc("compute"), d().set("c", "1")),
        commit(global(), d().set("g", "2")),
        commit(vc("compute"), d().set("c", "2")),
        // Restores compute as of seq 3; global keeps g=2.
        rollback(vc("compute"), 3).parent(5),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 stale=compute
          #2 ok seq=3 stale=compute
          #3 ok seq=4 stale=compute
          #4 ok seq=5 stale=compute
          #5 ok seq=6 stale=compute
        last_seq: 6
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 commit global alice parent=- target=- items=1
          3 commit vcluster:compute alice parent=- target=- items=1
          4 commit global alice parent=- target=- items=1
          5 commit vcluster:compute alice parent=- target=- items=1
          6 rollback vcluster:compute alice parent=5 target=3 items=1
        scopes:
          global head=4 config_seq=4 folds=[2, 4]
            set g="2"
          vcluster:compute head=6 config_seq=6 folds=[3, 5, 6]
            set c="1"
        vcluster_config compute (latest_seq_affecting=6):
            set c="1"
            set g="2"
        nodes:
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn ttl_expiry_removes_the_delta_and_appends_auto_converge() {
    let actual = run(vec![
        policy("compute"),
        register("n1", "compute"),
        commit(global(), d().set("base", "1")).at(1_000),
        commit(global(), d().set("debug", "on")).at(1_000).ttl(60),
        commit(node("n1"), d().file("/etc/tmp-fix", "x"))
            .at(2_000)
            .ttl(10),
        commit(vc("compute"), d().set("forever", "1")).at(2_000),
        // Nothing due before 12 s.
        expire(11_999),
        // The node change expires at 12 s.
        expire(12_000),
        // Both remaining TTLs are past; only the global one is still live.
        expire(100_000),
        expire(200_000),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 nodes=n1
          #2 ok seq=3 stale=compute
          #3 ok seq=4 stale=compute
          #4 ok seq=5 nodes=n1
          #5 ok seq=6 stale=compute
          #6 rejected: no entry has an expired TTL at 11999 ms
          #7 ok seq=7 nodes=n1
          #8 ok seq=8 stale=compute
          #9 rejected: no entry has an expired TTL at 200000 ms
        last_seq: 8
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 commit global alice parent=- target=- items=1
          4 commit global alice parent=- target=- ttl=60s@1000 items=1
          5 commit node:n1 alice parent=- target=- ttl=10s@2000 items=1
          6 commit vcluster:compute alice parent=- target=- items=1
          7 auto-converge node:n1 bootstorm parent=- target=5
          8 auto-converge global bootstorm parent=- target=4
        scopes:
          global head=8 config_seq=8 folds=[3, 4]
            set base="1"
          vcluster:compute head=6 config_seq=6 folds=[6]
            set forever="1"
          node:n1 head=7 config_seq=7 folds=[5]
        vcluster_config compute (latest_seq_affecting=8):
            set base="1"
            set forever="1"
        nodes:
          n1 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {4, 5}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn emergency_start_and_end_set_node_status() {
    let during = state_after(vec![
        policy("compute"),
        register("n1", "compute"),
        register("n2", "compute"),
        emergency_start(node("n1"), "disk failing"),
        emergency_start(vc("compute"), "rack 12 power"),
    ]);
    let status = |id: &str| during.node_states[id].status;
    assert_eq!(status("n1"), NodeStatus::Emergency);
    // A vCluster-wide emergency is recorded for the scope; node statuses are per node.
    assert_eq!(status("n2"), NodeStatus::Committed);
    assert_eq!(
        during.emergencies,
        [(node("n1"), 4), (vc("compute"), 5)].into_iter().collect()
    );

    let actual = run(vec![
        policy("compute"),
        register("n1", "compute"),
        register("n2", "compute"),
        emergency_start(node("n1"), "disk failing"),
        emergency_start(vc("compute"), "rack 12 power"),
        emergency_end(node("n1")),
        emergency_end(node("n1")),
        emergency_end(vc("compute")),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 nodes=n1
          #2 ok seq=3 nodes=n2
          #3 ok seq=4
          #4 ok seq=5
          #5 ok seq=6
          #6 rejected: no emergency is active for node:n1
          #7 ok seq=7
        last_seq: 7
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 boot-config node:n2 alice parent=- target=-
          4 emergency-start node:n1 alice parent=- target=- reason="disk failing"
          5 emergency-start vcluster:compute alice parent=- target=- reason="rack 12 power"
          6 emergency-end node:n1 alice parent=- target=-
          7 emergency-end vcluster:compute alice parent=- target=-
        scopes:
          global head=0 config_seq=0 folds=[]
          vcluster:compute head=7 config_seq=1 folds=[]
          node:n1 head=6 config_seq=2 folds=[]
          node:n2 head=3 config_seq=3 folds=[]
        vcluster_config compute (latest_seq_affecting=1):
        nodes:
          n1 compute Committed
          n2 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn drift_and_auto_converge_statuses() {
    let actual = run(vec![
        policy_with(
            "compute",
            config::VClusterPolicy {
                description: "cpu".into(),
                auto_converge: true,
                settings: [("image".to_owned(), "rocky9".to_owned())].into(),
            },
        ),
        register("n1", "compute"),
        register("n2", "compute"),
        entry(EntryType::DriftDetected, node("n1")),
        entry(EntryType::DriftDetected, node("n2")),
        entry(EntryType::AutoConverge, node("n1")),
        // An auto-converge may carry the converging delta.
        entry(EntryType::AutoConverge, node("n2")).delta(d().file("/etc/fixed", "y")),
        // The node state can also be set directly.
        node_state("n1", "compute", NodeStatus::Drifted),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 nodes=n1
          #2 ok seq=3 nodes=n2
          #3 ok seq=4
          #4 ok seq=5
          #5 ok seq=6
          #6 ok seq=7 nodes=n2
          #7 ok seq=8
        last_seq: 8
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 boot-config node:n2 alice parent=- target=-
          4 drift-detected node:n1 alice parent=- target=-
          5 drift-detected node:n2 alice parent=- target=-
          6 auto-converge node:n1 alice parent=- target=-
          7 auto-converge node:n2 alice parent=- target=- items=1
          8 boot-config node:n1 alice parent=- target=-
        scopes:
          global head=0 config_seq=0 folds=[]
          vcluster:compute head=1 config_seq=1 folds=[]
          node:n1 head=8 config_seq=2 folds=[]
          node:n2 head=7 config_seq=7 folds=[7]
            file /etc/fixed 644 "y"
        vcluster_config compute (latest_seq_affecting=1):
        nodes:
          n1 compute Drifted
          n2 compute Committed
        policies:
          compute auto_converge=true description="cpu" settings={"image": "rocky9"}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn record_operation_writes_the_audit_log_and_the_journal() {
    let actual = run(vec![
        policy("compute"),
        register("n1", "compute"),
        operation(OperationKind::Exec, "n1", "systemctl restart sshd"),
        operation(OperationKind::ShellStart, "n1", "session-42"),
        operation(OperationKind::ShellEnd, "n1", "session-42"),
        operation(OperationKind::Exec, "n9", "reboot"),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 nodes=n1
          #2 ok seq=3
          #3 ok seq=4
          #4 ok seq=5
          #5 rejected: unknown node "n9": register it first (UpdateNodeState)
        last_seq: 5
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 exec-log node:n1 alice parent=- target=-
          4 shell-session node:n1 alice parent=- target=-
          5 shell-session node:n1 alice parent=- target=-
        scopes:
          global head=0 config_seq=0 folds=[]
          vcluster:compute head=1 config_seq=1 folds=[]
          node:n1 head=5 config_seq=2 folds=[]
        vcluster_config compute (latest_seq_affecting=1):
        nodes:
          n1 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
          Exec n1 by alice "systemctl restart sshd" exit=-
          ShellStart n1 by alice "session-42" exit=-
          ShellEnd n1 by alice "session-42" exit=-
    "#]]
    .assert_eq(&actual);
}

#[test]
fn set_overlay_and_staleness() {
    let mut state = state_after(vec![
        policy("compute"),
        register("n1", "compute"),
        commit(vc("compute"), d().set("c", "1")),
    ]);
    assert!(
        state.overlay_is_stale("compute"),
        "a missing overlay is stale"
    );
    assert_eq!(state.latest_seq_affecting("compute"), 3);
    let applied = apply_checked(&mut state, overlay("compute", 3, b"zstd")).unwrap();
    assert_eq!(
        applied,
        config::Applied::default(),
        "SetOverlay appends nothing"
    );
    assert_eq!(state.last_seq, 3);
    assert!(!state.overlay_is_stale("compute"));

    // A node-scoped commit does not affect the vCluster's overlay.
    apply_checked(&mut state, commit(node("n1"), d().set("n", "1"))).unwrap();
    assert!(!state.overlay_is_stale("compute"));
    assert_eq!(state.latest_seq_affecting("compute"), 3);
    assert_eq!(state.node_seq("n1"), 4);

    // A global commit does.
    apply_checked(&mut state, commit(global(), d().set("g", "1"))).unwrap();
    assert!(state.overlay_is_stale("compute"));
    assert_eq!(state.latest_seq_affecting("compute"), 5);

    // Re-storing for the same seq is accepted (an idempotent rebuild); newer replaces.
    apply_checked(&mut state, overlay("compute", 3, b"zstd")).unwrap();
    apply_checked(&mut state, overlay("compute", 5, b"zstd v2")).unwrap();
    assert!(!state.overlay_is_stale("compute"));
    expect![[r#"
        last_seq: 5
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 commit vcluster:compute alice parent=- target=- items=1
          4 commit node:n1 alice parent=- target=- items=1
          5 commit global alice parent=- target=- items=1
        scopes:
          global head=5 config_seq=5 folds=[5]
            set g="1"
          vcluster:compute head=3 config_seq=3 folds=[3]
            set c="1"
          node:n1 head=4 config_seq=4 folds=[4]
            set n="1"
        vcluster_config compute (latest_seq_affecting=5):
            set c="1"
            set g="1"
        nodes:
          n1 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
          compute seq=5 hash=7f747667 len=7 stale=false
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&render(&state));
}

#[test]
fn latest_seq_affecting_global_vs_vcluster_commits() {
    let mut state = state_after(vec![policy("compute"), policy("gpu")]);
    assert_eq!(state.latest_seq_affecting("compute"), 1, "the policy entry");
    assert_eq!(state.latest_seq_affecting("gpu"), 2);
    assert_eq!(state.latest_seq_affecting("unknown"), 0);

    apply_checked(&mut state, commit(vc("compute"), d().set("c", "1"))).unwrap();
    assert_eq!(state.latest_seq_affecting("compute"), 3);
    assert_eq!(
        state.latest_seq_affecting("gpu"),
        2,
        "compute's commit is not gpu's"
    );

    apply_checked(&mut state, commit(global(), d().set("g", "1"))).unwrap();
    assert_eq!(state.latest_seq_affecting("compute"), 4);
    assert_eq!(state.latest_seq_affecting("gpu"), 4);

    // Records and empty commits do not change config.
    apply_checked(&mut state, entry(EntryType::CapabilityChange, global())).unwrap();
    apply_checked(&mut state, commit(vc("gpu"), d())).unwrap();
    assert_eq!(state.latest_seq_affecting("gpu"), 4);
    assert_eq!(state.last_seq, 6);

    // A policy update does.
    apply_checked(&mut state, policy("gpu")).unwrap();
    assert_eq!(state.latest_seq_affecting("gpu"), 7);
    assert_eq!(state.latest_seq_affecting("compute"), 4);
}

#[test]
fn applied_reports_stale_vclusters_and_changed_nodes() {
    let actual = run(vec![
        policy("compute"),
        policy("gpu"),
        register("n1", "compute"),
        register("n2", "gpu"),
        // Status-only update: nothing to rebuild.
        node_state("n2", "gpu", NodeStatus::Drifted),
        // Moving a node changes its phase-2 delta.
        register("n2", "compute"),
        commit(global(), d().set("g", "1")),
        commit(vc("gpu"), d().set("v", "1")),
        commit(node("n1"), d().set("n", "1")),
        rollback(global(), 7),
        entry(EntryType::DriftDetected, node("n1")),
        commit(global(), d().set("short", "1")).ttl(1),
        commit(node("n2"), d().set("short", "1")).ttl(1),
        expire(1_000),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 stale=gpu
          #2 ok seq=3 nodes=n1
          #3 ok seq=4 nodes=n2
          #4 ok seq=5
          #5 ok seq=6 nodes=n2
          #6 ok seq=7 stale=compute,gpu
          #7 ok seq=8 stale=gpu
          #8 ok seq=9 nodes=n1
          #9 ok seq=10 stale=compute,gpu
          #10 ok seq=11
          #11 ok seq=12 stale=compute,gpu
          #12 ok seq=13 nodes=n2
          #13 ok seq=15 stale=compute,gpu nodes=n2
        last_seq: 15
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 policy-update vcluster:gpu alice parent=- target=- policy=gpu
          3 boot-config node:n1 alice parent=- target=-
          4 boot-config node:n2 alice parent=- target=-
          5 boot-config node:n2 alice parent=- target=-
          6 boot-config node:n2 alice parent=- target=-
          7 commit global alice parent=- target=- items=1
          8 commit vcluster:gpu alice parent=- target=- items=1
          9 commit node:n1 alice parent=- target=- items=1
          10 rollback global alice parent=- target=7 items=1
          11 drift-detected node:n1 alice parent=- target=-
          12 commit global alice parent=- target=- ttl=1s@0 items=1
          13 commit node:n2 alice parent=- target=- ttl=1s@0 items=1
          14 auto-converge global bootstorm parent=- target=12
          15 auto-converge node:n2 bootstorm parent=- target=13
        scopes:
          global head=14 config_seq=14 folds=[7, 10, 12]
            set g="1"
          vcluster:compute head=1 config_seq=1 folds=[]
          vcluster:gpu head=8 config_seq=8 folds=[8]
            set v="1"
          node:n1 head=11 config_seq=9 folds=[9]
            set n="1"
          node:n2 head=15 config_seq=15 folds=[13]
        vcluster_config compute (latest_seq_affecting=14):
            set g="1"
        vcluster_config gpu (latest_seq_affecting=14):
            set g="1"
            set v="1"
        nodes:
          n1 compute Drifted
          n2 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
          gpu auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {12, 13}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn parent_is_optimistic_concurrency_per_scope() {
    let actual = run(vec![
        policy("compute"),
        commit(global(), d().set("a", "1")).parent(0),
        // Another scope's entries do not move global's head.
        commit(vc("compute"), d().set("b", "1")).parent(1),
        commit(global(), d().set("a", "2")).parent(2),
        // Stale parent: someone committed in between.
        commit(global(), d().set("a", "3")).parent(2),
        // Any entry type moves the head, records included.
        entry(EntryType::CapabilityChange, global()).parent(4),
        commit(global(), d().set("a", "3")).parent(4),
        commit(global(), d().set("a", "3")).parent(5),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 stale=compute
          #2 ok seq=3 stale=compute
          #3 ok seq=4 stale=compute
          #4 rejected: parent seq 2 is not the newest entry of global (newest is 4); re-read the journal and retry
          #5 ok seq=5
          #6 rejected: parent seq 4 is not the newest entry of global (newest is 5); re-read the journal and retry
          #7 ok seq=6 stale=compute
        last_seq: 6
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 commit global alice parent=0 target=- items=1
          3 commit vcluster:compute alice parent=1 target=- items=1
          4 commit global alice parent=2 target=- items=1
          5 capability-change global alice parent=4 target=-
          6 commit global alice parent=5 target=- items=1
        scopes:
          global head=6 config_seq=6 folds=[2, 4, 6]
            set a="3"
          vcluster:compute head=3 config_seq=3 folds=[3]
            set b="1"
        vcluster_config compute (latest_seq_affecting=6):
            set a="3"
            set b="1"
        nodes:
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn records_of_every_type_append_an_entry() {
    let mut commands = vec![policy("compute"), register("n1", "compute")];
    for entry_type in EntryType::ALL {
        let command = match entry_type {
            // Written by `RevokeCertificate` only (tested in `revocations_*`).
            EntryType::CertificateRevoked => continue,
            EntryType::Rollback => rollback(node("n1"), 2),
            EntryType::EmergencyStart => emergency_start(node("n1"), "why"),
            _ => entry(entry_type, node("n1")),
        };
        commands.push(command);
    }
    let actual = run(commands);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2 nodes=n1
          #2 ok seq=3
          #3 ok seq=4 nodes=n1
          #4 ok seq=5
          #5 ok seq=6
          #6 ok seq=7
          #7 ok seq=8
          #8 ok seq=9
          #9 ok seq=10
          #10 ok seq=11
          #11 ok seq=12
          #12 ok seq=13
          #13 ok seq=14
        last_seq: 14
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 boot-config node:n1 alice parent=- target=-
          3 commit node:n1 alice parent=- target=-
          4 rollback node:n1 alice parent=- target=2
          5 auto-converge node:n1 alice parent=- target=-
          6 drift-detected node:n1 alice parent=- target=-
          7 capability-change node:n1 alice parent=- target=-
          8 policy-update node:n1 alice parent=- target=-
          9 boot-config node:n1 alice parent=- target=-
          10 emergency-start node:n1 alice parent=- target=- reason="why"
          11 emergency-end node:n1 alice parent=- target=-
          12 exec-log node:n1 alice parent=- target=-
          13 shell-session node:n1 alice parent=- target=-
          14 service-lifecycle node:n1 alice parent=- target=-
        scopes:
          global head=0 config_seq=0 folds=[]
          vcluster:compute head=1 config_seq=1 folds=[]
          node:n1 head=14 config_seq=4 folds=[4]
        vcluster_config compute (latest_seq_affecting=1):
        nodes:
          n1 compute Committed
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn the_same_commands_give_the_same_bytes() {
    let commands = || {
        vec![
            policy("compute"),
            register("n1", "compute"),
            commit(global(), d().file("/etc/motd", "hi").set("a", "b")),
            commit(node("n1"), d().rm("/etc/motd")).ttl(5),
            rollback(global(), 3),
            expire(10_000),
        ]
    };
    let a = state_after(commands());
    let b = state_after(commands());
    assert_eq!(bytes_of(&a), bytes_of(&b));
    let decoded: JournalState = postcard::from_bytes(&bytes_of(&a)).unwrap();
    assert_eq!(decoded, a, "the state round-trips through postcard");
}

#[test]
fn log_filters_by_scope_and_seq() {
    let state = state_after(vec![
        policy("compute"),
        commit(global(), d().set("a", "1")),
        commit(vc("compute"), d().set("a", "1")),
        commit(global(), d().set("a", "2")),
    ]);
    let seqs = |scope: Option<&Scope>, since| -> Vec<u64> {
        state.log(scope, since).map(|entry| entry.seq).collect()
    };
    assert_eq!(seqs(None, 0), [1, 2, 3, 4]);
    assert_eq!(seqs(None, 2), [3, 4]);
    assert_eq!(seqs(Some(&global()), 0), [2, 4]);
    assert_eq!(seqs(Some(&vc("compute")), 1), [1, 3][1..]);
    assert_eq!(seqs(None, u64::MAX), Vec::<u64>::new());
}

#[test]
fn apply_without_checks_matches_apply_checked() {
    // `apply_checked` is the helper the other cases use; make sure it adds no behaviour.
    let mut plain = JournalState::new();
    let mut checked = JournalState::new();
    for command in [
        policy("compute"),
        commit(global(), d().set("a", "1")),
        commit(global(), d().set("a", "1")).parent(9),
    ] {
        let a = apply(&mut plain, command.clone());
        let b = apply_checked(&mut checked, command);
        assert_eq!(a, b);
    }
    assert_eq!(plain, checked);
}

#[test]
fn revocations_by_serial_and_by_name_are_entries_and_a_set() {
    use config::CertificateRole::{Admin, Node};
    let actual = run(vec![
        policy("compute"),
        revoke_serial("00:0A:1B", "key of node-0007 leaked"),
        revoke_name(Node, "node-0009", "decommissioned"),
        revoke_name(Admin, "bob", ""),
        // Another serial and the same name under another role are other certificates.
        revoke_serial("0x0a1c", ""),
        revoke_name(Admin, "node-0009", ""),
    ]);
    expect![[r#"
        results:
          #0 ok seq=1 stale=compute
          #1 ok seq=2
          #2 ok seq=3
          #3 ok seq=4
          #4 ok seq=5
          #5 ok seq=6
        last_seq: 6
        entries:
          1 policy-update vcluster:compute alice parent=- target=- policy=compute
          2 certificate-revoked global alice parent=- target=- reason="key of node-0007 leaked" policy=serial a1b
          3 certificate-revoked global alice parent=- target=- reason="decommissioned" policy=node node-0009
          4 certificate-revoked global alice parent=- target=- reason="" policy=admin bob
          5 certificate-revoked global alice parent=- target=- reason="" policy=serial a1c
          6 certificate-revoked global alice parent=- target=- reason="" policy=admin node-0009
        scopes:
          global head=6 config_seq=0 folds=[]
          vcluster:compute head=1 config_seq=1 folds=[]
        vcluster_config compute (latest_seq_affecting=1):
        nodes:
        policies:
          compute auto_converge=false description="" settings={}
        overlays:
        emergencies: []
        expired: {}
        revoked:
          serial a1b @2
          serial a1c @5
          admin bob @4
          admin node-0009 @6
          node node-0009 @3
        audit:
    "#]]
    .assert_eq(&actual);
}

#[test]
fn a_revocation_is_looked_up_by_serial_or_by_role_and_name() {
    use config::CertificateRole::{Admin, Node};
    let state = state_after(vec![
        revoke_serial("a1b", "leak"),
        revoke_name(Node, "node-0009", "gone"),
    ]);
    assert_eq!(state.revocation_of(Node, "node-0001", "a1b"), Some(1));
    assert_eq!(state.revocation_of(Node, "node-0009", "ffff"), Some(2));
    assert_eq!(state.revocation_of(Admin, "node-0009", "ffff"), None);
    assert_eq!(state.revocation_of(Node, "node-0001", "a1c"), None);
}
