//! The commits the `commits` workload sends: valid deltas, the node/vCluster mix, small and
//! deterministic, and bounded folded size however many commits hit one scope.

use bootstorm_loadtest::workload::{CommitWorkload, NODE_FILE_PATH, SETTING_KEY};
use config::Scope;

#[test]
fn mix_of_node_and_vcluster_scopes() {
    let workload = CommitWorkload {
        nodes: 40,
        vcluster_every: 10,
    };
    let scopes: Vec<Scope> = (0..100).map(|i| workload.scope(i)).collect();
    let vclusters = scopes
        .iter()
        .filter(|s| matches!(s, Scope::VCluster(_)))
        .count();
    assert_eq!(vclusters, 10);
    assert!(scopes.contains(&Scope::VCluster("compute".into())));
    assert!(scopes.contains(&Scope::VCluster("gpu".into())));
    assert!(scopes.contains(&Scope::Node("node-0001".into())));
    assert!(scopes.contains(&Scope::Node("node-0040".into())));
    assert!(
        !scopes.contains(&Scope::Node("node-0041".into())),
        "only registered nodes"
    );
    let node_only = CommitWorkload {
        nodes: 3,
        vcluster_every: 0,
    };
    assert!((0..50).all(|i| matches!(node_only.scope(i), Scope::Node(_))));
}

#[test]
fn entries_are_small_valid_and_deterministic() {
    let workload = CommitWorkload {
        nodes: 1000,
        vcluster_every: 10,
    };
    for index in [0u64, 9, 19, 12_345, 99_999] {
        let entry = workload.entry(index);
        config::validate::delta(&entry.delta).expect("a valid delta");
        assert!(
            entry.delta.size_bytes() < 512,
            "small: {}",
            entry.delta.size_bytes()
        );
        assert_eq!(entry.delta.item_count(), 2, "one file and one setting");
        assert_eq!(entry.delta.settings[SETTING_KEY], index.to_string());
        assert_eq!(entry, workload.entry(index), "the index decides everything");
    }
    // Repeated commits to a node rewrite the same path: its folded config does not grow.
    assert!(workload.entry(0).delta.files.contains_key(NODE_FILE_PATH));
    assert_eq!(
        workload.entry(1).delta.files.keys().collect::<Vec<_>>(),
        workload.entry(1001).delta.files.keys().collect::<Vec<_>>()
    );
}
