//! Property tests of the journal state machine over random command sequences (valid and
//! invalid mixed): determinism (same commands → same results and same postcard bytes), the
//! per-scope fold invariant (`scope_configs[s] == scope_config_at(s, last_seq)`), rejected
//! commands leaving the state byte-identical, and the rollback round trip (rolling back to k
//! restores the fold as of k; re-applying the later deltas restores the fold before).

mod common;

use common::*;
use config::{
    apply, EntryType, JournalCommand, JournalState, NodeStatus, OperationKind, Scope, Seq,
    StateDelta,
};
use proptest::prelude::*;

/// vClusters a policy may name; the last is invalid and always refused.
const VCLUSTERS: [&str; 3] = ["a", "b", "bad name"];
/// Nodes that may be registered; `n9` never is.
const NODES: [&str; 4] = ["n1", "n2", "n3", "n9"];
/// Paths a delta may name; the last escapes the root and is always refused.
const PATHS: [&str; 5] = ["/a", "/b", "/etc/c", "/etc/d/e", "/x/../y"];
const KEYS: [&str; 3] = ["k1", "k2", "bad key"];

fn scope_of(index: u8) -> Scope {
    match index % 7 {
        0 => Scope::Global,
        1 => vc("a"),
        2 => vc("b"),
        3 => vc("c"),
        n => node(NODES[usize::from(n - 4)]),
    }
}

/// How an entry's `parent` is chosen when the command is built against the current state.
#[derive(Clone, Debug)]
enum Parent {
    None,
    Head,
    Exact(Seq),
}

/// An abstract command, turned into a `JournalCommand` against the current state (so rollback
/// targets and parents hit real seqs often enough to be accepted).
#[derive(Clone, Debug)]
enum Op {
    Policy {
        vcluster: usize,
        auto_converge: bool,
    },
    Register {
        node: usize,
        vcluster: usize,
        status: u8,
    },
    Entry {
        scope: u8,
        entry_type: usize,
        delta: StateDelta,
        parent: Parent,
        ttl_s: Option<u64>,
        reason: Option<String>,
    },
    Rollback {
        scope: u8,
        /// Index into the scope's config entries, or a raw seq when the scope has none.
        target: usize,
        parent: Parent,
    },
    Overlay {
        vcluster: usize,
        /// Seq relative to the vCluster's latest affecting seq.
        offset: i8,
    },
    Operation {
        node: usize,
        kind: u8,
    },
    Expire {
        advance_ms: u64,
    },
}

fn valid_delta() -> impl Strategy<Value = StateDelta> {
    delta_from(0..4, 0..2).prop_map(|mut delta| {
        let written = delta.files.clone();
        delta.removes.retain(|path| !written.contains_key(path));
        delta
    })
}

fn any_delta() -> impl Strategy<Value = StateDelta> {
    delta_from(0..PATHS.len(), 0..KEYS.len())
}

fn delta_from(
    paths: std::ops::Range<usize>,
    keys: std::ops::Range<usize>,
) -> impl Strategy<Value = StateDelta> {
    (
        prop::collection::vec((index(paths.clone()), 0u8..4, any::<bool>()), 0..3),
        prop::collection::vec(index(paths), 0..2),
        prop::collection::vec((index(keys), 0u8..3), 0..3),
    )
        .prop_map(|(files, removes, settings)| {
            let mut delta = d();
            for (path, content, executable) in files {
                let mode = if executable { 0o755 } else { 0o644 };
                delta = delta.file_mode(PATHS[path], mode, &[b'0' + content]);
            }
            for path in removes {
                // A path both written and removed is refused; keep some such deltas.
                delta = delta.rm(PATHS[path]);
            }
            for (key, value) in settings {
                delta = delta.set(KEYS[key], &value.to_string());
            }
            delta
        })
}

/// An index in `range`, mostly below its last value (the invalid one, when there is one), so
/// most generated deltas are valid and reach the state machine's deeper checks.
fn index(range: std::ops::Range<usize>) -> impl Strategy<Value = usize> {
    let last = range.end - 1;
    prop_oneof![12 => range.start..last.max(range.start + 1), 1 => Just(last)]
}

/// A scope index for `scope_of`: mostly scopes that exist after the prelude.
fn scope_index() -> impl Strategy<Value = u8> {
    prop_oneof![6 => prop_oneof![Just(0u8), Just(1), Just(2), Just(4), Just(5), Just(6)], 1 => Just(3)]
}

fn parent() -> impl Strategy<Value = Parent> {
    prop_oneof![
        3 => Just(Parent::None),
        2 => Just(Parent::Head),
        1 => (0u64..6).prop_map(Parent::Exact),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (index(0..VCLUSTERS.len()), any::<bool>())
            .prop_map(|(vcluster, auto_converge)| Op::Policy { vcluster, auto_converge }),
        3 => (index(0..NODES.len()), index(0..VCLUSTERS.len()), 0u8..3)
            .prop_map(|(node, vcluster, status)| Op::Register { node, vcluster, status }),
        8 => (
            scope_index(),
            prop_oneof![4 => Just(0usize), 1 => 0..EntryType::ALL.len()],
            any_delta(),
            parent(),
            prop::option::weighted(0.3, 1u64..4),
            prop::option::weighted(0.5, prop_oneof![Just(String::new()), Just("why".to_owned())]),
        )
            .prop_map(|(scope, entry_type, delta, parent, ttl_s, reason)| Op::Entry {
                scope,
                entry_type,
                delta,
                parent,
                ttl_s,
                reason,
            }),
        2 => (scope_index(), 0usize..8, parent())
            .prop_map(|(scope, target, parent)| Op::Rollback { scope, target, parent }),
        1 => (0..VCLUSTERS.len(), -2i8..3)
            .prop_map(|(vcluster, offset)| Op::Overlay { vcluster, offset }),
        1 => (0..NODES.len(), 0u8..3).prop_map(|(node, kind)| Op::Operation { node, kind }),
        1 => (0u64..5_000).prop_map(|advance_ms| Op::Expire { advance_ms }),
    ]
}

fn resolve_parent(state: &JournalState, scope: &Scope, parent: &Parent) -> Option<Seq> {
    match parent {
        Parent::None => None,
        Parent::Head => Some(state.scope_heads.get(scope).copied().unwrap_or(0)),
        Parent::Exact(seq) => Some(*seq),
    }
}

/// Builds the concrete command for `op` against `state`; `clock_ms` is the proposer's clock.
fn build(state: &JournalState, op: &Op, clock_ms: u64) -> JournalCommand {
    let with_parent = |command: JournalCommand, scope: &Scope, parent: &Parent| match resolve_parent(
        state, scope, parent,
    ) {
        Some(seq) => command.parent(seq),
        None => command,
    };
    match op {
        Op::Policy {
            vcluster,
            auto_converge,
        } => policy_with(
            VCLUSTERS[*vcluster],
            config::VClusterPolicy {
                auto_converge: *auto_converge,
                ..Default::default()
            },
        ),
        Op::Register {
            node,
            vcluster,
            status,
        } => {
            let status = [
                NodeStatus::Committed,
                NodeStatus::Drifted,
                NodeStatus::Emergency,
            ][usize::from(*status)];
            node_state(NODES[*node], VCLUSTERS[*vcluster], status)
        }
        Op::Entry {
            scope,
            entry_type,
            delta,
            parent,
            ttl_s,
            reason,
        } => {
            let scope = scope_of(*scope);
            let mut command = entry(EntryType::ALL[*entry_type], scope.clone())
                .delta(delta.clone())
                .at(clock_ms);
            if let Some(ttl_s) = ttl_s {
                command = command.ttl(*ttl_s);
            }
            if let Some(reason) = reason {
                command = command.reason(reason);
            }
            with_parent(command, &scope, parent)
        }
        Op::Rollback {
            scope,
            target,
            parent,
        } => {
            let scope = scope_of(*scope);
            let target = match state.scope_entries.get(&scope) {
                Some(seqs) if !seqs.is_empty() => seqs[target % seqs.len()],
                _ => *target as Seq,
            };
            with_parent(rollback(scope.clone(), target).at(clock_ms), &scope, parent)
        }
        Op::Overlay { vcluster, offset } => {
            let name = VCLUSTERS[*vcluster];
            let seq = state
                .latest_seq_affecting(name)
                .saturating_add_signed(i64::from(*offset));
            overlay(name, seq, &seq.to_le_bytes())
        }
        Op::Operation { node, kind } => {
            let kind = [
                OperationKind::Exec,
                OperationKind::ShellStart,
                OperationKind::ShellEnd,
            ][usize::from(*kind)];
            operation(NODES[*node], kind, "uptime")
        }
        Op::Expire { .. } => expire(clock_ms),
    }
}

fn operation(node: &str, kind: OperationKind, detail: &str) -> JournalCommand {
    common::operation(kind, node, detail)
}

/// Commands every generated sequence starts with: two vClusters and three nodes.
fn prelude() -> Vec<JournalCommand> {
    vec![
        policy("a"),
        policy("b"),
        register("n1", "a"),
        register("n2", "a"),
        register("n3", "b"),
    ]
}

/// Applies the prelude, then `ops` with the invariant checks of `apply_checked`; returns the
/// concrete commands, their results and the final state.
fn play(
    ops: &[Op],
) -> (
    Vec<JournalCommand>,
    Vec<Result<config::Applied, config::Rejected>>,
    JournalState,
) {
    let mut state = JournalState::new();
    let mut clock_ms = 1_000;
    let mut commands = Vec::new();
    let mut results = Vec::new();
    for command in prelude() {
        commands.push(command.clone());
        results.push(apply_checked(&mut state, command));
    }
    for op in ops {
        clock_ms += match op {
            Op::Expire { advance_ms } => *advance_ms,
            _ => 100,
        };
        let command = build(&state, op, clock_ms);
        commands.push(command.clone());
        results.push(apply_checked(&mut state, command));
    }
    (commands, results, state)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Same commands, same results, same bytes; the state survives a postcard round trip. The
    /// fold invariant and "rejections change nothing" are checked after every command.
    #[test]
    fn apply_is_deterministic(ops in prop::collection::vec(op(), 1..48)) {
        let (commands, results, state) = play(&ops);
        let mut replay = JournalState::new();
        for (command, expected) in commands.into_iter().zip(&results) {
            let result = apply(&mut replay, command);
            prop_assert_eq!(&result, expected);
        }
        let bytes = bytes_of(&state);
        prop_assert_eq!(&bytes, &bytes_of(&replay));
        let decoded: JournalState = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &state);
        // Appended seqs are exactly those reported by accepted commands.
        let reported = results
            .iter()
            .filter_map(|result| result.as_ref().ok().and_then(|applied| applied.seq))
            .max()
            .unwrap_or(0);
        prop_assert_eq!(reported, state.last_seq);
    }

    /// A rejected command leaves the state byte-identical, whatever came before it.
    #[test]
    fn rejections_change_nothing(ops in prop::collection::vec(op(), 1..48)) {
        let mut state = state_after(prelude());
        for (i, op) in ops.iter().enumerate() {
            let command = build(&state, op, 1_000 + 100 * i as u64);
            let before = bytes_of(&state);
            if apply(&mut state, command).is_err() {
                prop_assert_eq!(&before, &bytes_of(&state));
            }
        }
    }

    /// Every scope's cached fold equals a refold of the journal, and any earlier prefix of the
    /// journal folds the same way after more commands were applied (history is append-only:
    /// later commands never change what an earlier seq meant, except through expiry).
    #[test]
    fn folds_match_the_journal(ops in prop::collection::vec(op(), 1..48)) {
        let (_, _, state) = play(&ops);
        check_invariants(&state);
        for scope in known_scopes(&state) {
            let seqs = state.scope_entries.get(&scope).cloned().unwrap_or_default();
            for seq in &seqs {
                prop_assert_eq!(&state.entries[seq].scope, &scope);
            }
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "scope entries in seq order");
        }
        for seq in &state.expired {
            prop_assert!(state.entries[seq].ttl_s.is_some(), "only TTL entries expire");
        }
    }

    /// Rolling a scope back to seq k makes its fold equal the fold as of k; re-applying the
    /// deltas committed after k reproduces the fold from before the rollback. The old entries
    /// are still in the journal, unchanged.
    #[test]
    fn rollback_round_trip(
        on_vcluster in any::<bool>(),
        commits in prop::collection::vec((valid_delta(), any::<bool>()), 1..16),
        pick in any::<prop::sample::Index>(),
    ) {
        let scope = if on_vcluster { vc("a") } else { Scope::Global };
        let mut state = state_after(vec![policy("a"), policy("b")]);
        // Interleave commits to another scope, which the rollback must not touch.
        let mut own = Vec::new();
        for (delta, elsewhere) in commits {
            if elsewhere {
                apply_checked(&mut state, commit(vc("b"), delta.clone())).unwrap();
            }
            let seq = apply_checked(&mut state, commit(scope.clone(), delta.clone()))
                .unwrap()
                .seq
                .unwrap();
            own.push((seq, delta));
        }
        let (k, _) = own[pick.index(own.len())];
        let before = state.scope_config(&scope).clone();
        let other_before = state.scope_config(&vc("b")).clone();
        let expected = state.scope_config_at(&scope, k);
        let entries_before = state.entries.clone();

        let head = state.scope_heads[&scope];
        apply_checked(&mut state, rollback(scope.clone(), k).parent(head)).unwrap();
        prop_assert_eq!(state.scope_config(&scope), &expected);
        prop_assert_eq!(state.scope_config(&vc("b")), &other_before);
        prop_assert!(state.entries.iter().take(entries_before.len()).eq(entries_before.iter()));

        for (_, delta) in own.iter().filter(|(seq, _)| *seq > k) {
            apply_checked(&mut state, commit(scope.clone(), delta.clone())).unwrap();
        }
        prop_assert_eq!(state.scope_config(&scope), &before);
    }
}
