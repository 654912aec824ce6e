//! Property tests of the crate's central promise: builders are pure. The same journal state —
//! however it was reached or transported — gives byte-identical overlays and node deltas, and
//! decoding what was built gives back exactly the built document.

use std::collections::BTreeMap;

use bytes::Bytes;
use config::{
    apply, FileSpec, JournalCommand, JournalState, NewEntry, NodeState, NodeStatus, Scope,
    StateDelta, VClusterPolicy,
};
use overlay::{
    build_node_delta, build_overlay, decode_boot_overlay, decode_node_delta, node_delta_doc,
    overlay_doc,
};
use proptest::prelude::*;

const VCLUSTERS: [&str; 2] = ["compute", "gpu"];
const NODES: [&str; 3] = ["node-0001", "node-0002", "node-0003"];
const PATHS: [&str; 5] = [
    "/etc/hosts",
    "/etc/motd",
    "/etc/ssh/sshd_config",
    "/opt/x/y",
    "/usr/bin/tool",
];
const KEYS: [&str; 3] = ["cpu.governor", "site.name", "k"];

fn file_spec() -> impl Strategy<Value = FileSpec> {
    (
        0u32..=0o7777,
        prop::option::of(prop::sample::select(vec!["root", "root:wheel", "nobody"])),
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(mode, owner, content)| FileSpec {
            mode,
            owner: owner.map(str::to_owned),
            content: Bytes::from(content),
        })
}

fn delta() -> impl Strategy<Value = StateDelta> {
    (
        prop::collection::btree_map(prop::sample::select(PATHS.to_vec()), file_spec(), 0..4),
        prop::collection::btree_set(prop::sample::select(PATHS.to_vec()), 0..2),
        prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), "[a-z0-9 ]{0,12}", 0..3),
    )
        .prop_map(|(files, removes, settings)| StateDelta {
            files: files.into_iter().map(|(p, f)| (p.to_owned(), f)).collect(),
            removes: removes.into_iter().map(str::to_owned).collect(),
            settings: settings
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        })
        .prop_map(|mut delta| {
            // A path is never both written and removed by one delta (config refuses it).
            let written = delta.files.clone();
            delta.removes.retain(|p| !written.contains_key(p));
            delta
        })
}

fn non_empty_delta() -> impl Strategy<Value = StateDelta> {
    delta().prop_filter("a commit that changes config", |delta| !delta.is_empty())
}

#[derive(Clone, Debug)]
enum Op {
    Global(StateDelta),
    VCluster(usize, StateDelta),
    Node(usize, StateDelta),
    Policy(usize, bool, String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        delta().prop_map(Op::Global),
        (0..2usize, delta()).prop_map(|(v, d)| Op::VCluster(v, d)),
        (0..3usize, delta()).prop_map(|(n, d)| Op::Node(n, d)),
        (0..2usize, any::<bool>(), "[a-z ]{0,16}").prop_map(|(v, a, s)| Op::Policy(v, a, s)),
    ]
}

fn policy(vcluster: &str, auto_converge: bool, description: String) -> JournalCommand {
    JournalCommand::SetPolicy {
        vcluster_id: vcluster.to_owned(),
        policy: VClusterPolicy {
            description,
            auto_converge,
            settings: BTreeMap::from([("image".to_owned(), format!("{vcluster}-img"))]),
        },
        author: "prop".into(),
        timestamp_ms: 1,
    }
}

fn commit(scope: Scope, delta: StateDelta) -> JournalCommand {
    JournalCommand::AppendEntry(NewEntry::commit(scope, "prop", 2, delta))
}

/// Policies and nodes first, then `ops`; rejected commands are skipped (as a leader would).
fn state_from(ops: &[Op]) -> JournalState {
    let mut commands: Vec<JournalCommand> = VCLUSTERS
        .iter()
        .map(|v| policy(v, false, format!("{v} partition")))
        .collect();
    for (index, node) in NODES.iter().enumerate() {
        commands.push(JournalCommand::UpdateNodeState {
            node_id: (*node).to_owned(),
            state: NodeState {
                vcluster: VCLUSTERS[index % 2].to_owned(),
                status: NodeStatus::Committed,
            },
            author: "prop".into(),
            timestamp_ms: 1,
        });
    }
    commands.extend(ops.iter().cloned().map(|op| match op {
        Op::Global(d) => commit(Scope::Global, d),
        Op::VCluster(v, d) => commit(Scope::VCluster(VCLUSTERS[v].into()), d),
        Op::Node(n, d) => commit(Scope::Node(NODES[n].into()), d),
        Op::Policy(v, a, s) => policy(VCLUSTERS[v], a, s),
    }));
    let mut state = JournalState::new();
    for command in commands {
        let _ = apply(&mut state, command);
    }
    state
}

proptest! {
    // No regression files: this is an integration test (proptest looks for them beside lib.rs);
    // a failure prints its minimal input.
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Built twice, or built by a replica that received the state as a snapshot: same bytes.
    /// And decode(build(state)) is exactly the document built from the state.
    #[test]
    fn same_state_gives_same_bytes_and_round_trips(ops in prop::collection::vec(op(), 0..12)) {
        let state = state_from(&ops);
        let snapshot: JournalState =
            postcard::from_bytes(&postcard::to_allocvec(&state).unwrap()).unwrap();
        let replayed = state_from(&ops);
        for vcluster in VCLUSTERS {
            let built = build_overlay(&state, vcluster).unwrap();
            prop_assert_eq!(&built, &build_overlay(&state, vcluster).unwrap());
            prop_assert_eq!(&built, &build_overlay(&snapshot, vcluster).unwrap());
            prop_assert_eq!(&built, &build_overlay(&replayed, vcluster).unwrap());
            let doc = decode_boot_overlay(&built).unwrap();
            prop_assert_eq!(&doc, &overlay_doc(&state, vcluster).unwrap());
            prop_assert_eq!(doc.canonical_bytes().len() as u64, built.raw_len);
            prop_assert_eq!(doc.files(), &state.vcluster_config(vcluster).files);
        }
        for node in NODES {
            let built = build_node_delta(&state, node).unwrap();
            prop_assert_eq!(&built, &build_node_delta(&snapshot, node).unwrap());
            let doc = decode_node_delta(&built.bytes, &built.hash).unwrap();
            prop_assert_eq!(&doc, &node_delta_doc(&state, node).unwrap());
            prop_assert_eq!(doc.canonical_bytes(), built.bytes.to_vec());
            prop_assert_eq!(doc.removes(), &state.scope_config(&Scope::Node(node.into())).removes);
        }
    }

    /// Different but equivalent command orders: global and vCluster commits interleaved in two
    /// different ways (each scope's own order kept) fold to the same config, and the newest seq
    /// affecting the vCluster is the last entry either way — so the overlays are byte-identical.
    /// (Deltas are non-empty: an empty commit changes no config and so moves no config seq.)
    #[test]
    fn interleaving_global_and_vcluster_commits_gives_same_bytes(
        global in prop::collection::vec(non_empty_delta(), 1..5),
        own in prop::collection::vec(non_empty_delta(), 1..5),
        order_a in prop::collection::vec(any::<bool>(), 10),
        order_b in prop::collection::vec(any::<bool>(), 10),
    ) {
        let interleave = |order: &[bool]| {
            let (mut g, mut v) = (global.iter(), own.iter());
            let mut ops = Vec::new();
            for take_global in order.iter().copied().chain(std::iter::repeat(true)) {
                let next = if take_global { g.next().map(|d| Op::Global(d.clone())) }
                           else { v.next().map(|d| Op::VCluster(0, d.clone())) };
                match next {
                    Some(op) => ops.push(op),
                    None => {
                        ops.extend(g.by_ref().map(|d| Op::Global(d.clone())));
                        ops.extend(v.by_ref().map(|d| Op::VCluster(0, d.clone())));
                        break;
                    }
                }
            }
            state_from(&ops)
        };
        let (a, b) = (interleave(&order_a), interleave(&order_b));
        prop_assert_eq!(a.latest_seq_affecting("compute"), b.latest_seq_affecting("compute"));
        prop_assert_eq!(build_overlay(&a, "compute").unwrap(), build_overlay(&b, "compute").unwrap());
    }
}

/// The demo journal (seed 001 sizes): overlays of 100–200 KB compressed, node deltas under the
/// 1 KB typical budget, everything round-tripping.
#[test]
fn demo_journal_sizes_and_round_trip() {
    let state = config::demo::demo_state(&config::demo::DemoSpec::default());
    for vcluster in config::demo::DEMO_VCLUSTERS {
        let built = build_overlay(&state, vcluster).unwrap();
        let compressed_len = built.compressed.len();
        assert!(
            (100_000..=200_000).contains(&compressed_len),
            "{vcluster}: {compressed_len} bytes compressed"
        );
        assert_eq!(
            decode_boot_overlay(&built).unwrap(),
            overlay_doc(&state, vcluster).unwrap()
        );
    }
    for node in ["node-0001", "node-0101", "node-0002"] {
        let built = build_node_delta(&state, node).unwrap();
        assert!(
            built.bytes.len() < overlay::limits::NODE_DELTA_TYPICAL_BUDGET_BYTES,
            "{node}: {} bytes",
            built.bytes.len()
        );
        decode_node_delta(&built.bytes, &built.hash).unwrap();
    }
}
