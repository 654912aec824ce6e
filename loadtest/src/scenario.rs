//! What happens to the cluster during a boot storm, each a flag of `boots`:
//! - `--commit-every-ms MS`: config commits through the admin plane at that interval (the
//!   `commits` workload's small node- and vCluster-scoped changes, one in flight); every boot
//!   that starts after a commit was acknowledged fetches with `min_seq` = that commit's seq,
//!   and its answer must reflect every acknowledged commit to its node and its vCluster
//!   (read-your-writes: the node delta's seq and the overlay's seq at least those commits');
//! - `--kill-learner-at S`: SIGKILL the first learner (its rack's nodes must fail over);
//! - `--kill-leader-at S`: SIGKILL the Raft leader, found through the admin status (learners
//!   keep serving from local state while the voters elect another);
//! - `--add-learner-at S`: start a new learner process, join it (`DevCluster::add_learner`),
//!   wait until it caught up, then boots that start afterwards list it (it becomes the rack-
//!   local replica of its share of the nodes).
//!
//! Invariants: kills and additions only on a cluster this process started (`--spawn`), by PID
//! (`DevCluster`); every wait is bounded (`COMMIT_TIMEOUT_MS`, `CATCH_UP_TIMEOUT_MS`), and the
//! whole sequence is dropped (cancelled) when the storm ends, so a scenario never extends a
//! run; a scenario that did not happen before the storm ended is reported as not reached.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use client::AdminClient;
use conf::{ClusterReplica, Role};
use config::{demo, Scope};
use dev::DevCluster;
use proto::{AdminRequest, AdminResponse};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::admin::failure_kind;
use crate::args::TargetPlan;
use crate::figures::round3;
use crate::limits::{
    CATCH_UP_POLL_MS, CATCH_UP_TIMEOUT_MS, COMMIT_EVERY_MS_MAX, COMMIT_EVERY_MS_MIN,
    COMMIT_TIMEOUT_MS, COMMIT_VCLUSTER_EVERY, EVENTS_MAX, FAILURE_EXAMPLE_MAX_CHARS,
};
use crate::server_load::ServerLoad;
use crate::timeline::Event;
use crate::workload::CommitWorkload;

/// The scenario flags, validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScenarioPlan {
    pub commit_every_ms: Option<u64>,
    pub kill_learner_at_s: Option<f64>,
    pub kill_leader_at_s: Option<f64>,
    pub add_learner_at_s: Option<f64>,
    /// `--flood-at S`: hostile traffic beside the storm (`boots::hostile`).
    pub flood: Option<FloodPlan>,
}

/// The `--flood-*` flags: from `at_s` into the storm, for `seconds`, against the first
/// learner (else the first replica): spoofed Initials, idle holders, check-port garbage.
#[derive(Clone, Debug, PartialEq)]
pub struct FloodPlan {
    pub at_s: f64,
    pub seconds: f64,
    pub initials_per_s: u32,
    pub holders: u32,
    pub garbage_per_s: u32,
}

impl ScenarioPlan {
    /// Checks the flags against the target and the run's wall-clock bound.
    pub fn validate(&self, target: &TargetPlan, max_seconds: u64) -> Result<()> {
        if let Some(flood) = &self.flood {
            use crate::limits::{FLOOD_HOLDERS_MAX, FLOOD_PACKETS_PER_S_MAX};
            if !(flood.at_s >= 0.0 && flood.seconds > 0.0)
                || flood.at_s + flood.seconds >= max_seconds as f64
            {
                bail!("--flood-at + --flood-seconds must be positive and end before --max-seconds ({max_seconds})");
            }
            if flood.initials_per_s > FLOOD_PACKETS_PER_S_MAX
                || flood.garbage_per_s > FLOOD_PACKETS_PER_S_MAX
            {
                bail!("--flood-initials-per-s and --flood-garbage-per-s are at most {FLOOD_PACKETS_PER_S_MAX}");
            }
            if flood.holders > FLOOD_HOLDERS_MAX {
                bail!("--flood-holders is at most {FLOOD_HOLDERS_MAX}");
            }
        }
        if let Some(ms) = self.commit_every_ms {
            if !(COMMIT_EVERY_MS_MIN..=COMMIT_EVERY_MS_MAX).contains(&ms) {
                bail!("--commit-every-ms must be between {COMMIT_EVERY_MS_MIN} and {COMMIT_EVERY_MS_MAX}: got {ms}");
            }
        }
        for (flag, at) in [
            ("--kill-learner-at", self.kill_learner_at_s),
            ("--kill-leader-at", self.kill_leader_at_s),
            ("--add-learner-at", self.add_learner_at_s),
        ] {
            let Some(at) = at else { continue };
            if !at.is_finite() || at < 0.0 || at >= max_seconds as f64 {
                bail!("{flag} {at} must be at least 0 and below --max-seconds {max_seconds}");
            }
            match target {
                TargetPlan::Spawn { learners, .. } => {
                    if flag == "--kill-learner-at" && *learners == 0 {
                        bail!("--kill-learner-at needs a learner to kill: add --learners 2 (one per rack)");
                    }
                }
                TargetPlan::Cluster { .. } => bail!(
                    "{flag} needs --spawn: this tool kills and starts only processes it started itself"
                ),
            }
        }
        Ok(())
    }

    pub fn needs_admin(&self) -> bool {
        self.commit_every_ms.is_some()
            || self.kill_leader_at_s.is_some()
            || self.add_learner_at_s.is_some()
    }

    pub fn needs_cluster_process(&self) -> bool {
        self.kill_learner_at_s.is_some()
            || self.kill_leader_at_s.is_some()
            || self.add_learner_at_s.is_some()
    }
}

/// The newest acknowledged commit, overall and per scope: what a boot starting now must see.
#[derive(Debug, Default)]
struct Acked {
    last_seq: u64,
    by_node: HashMap<String, u64>,
    by_vcluster: HashMap<String, u64>,
}

/// What a boot must see, read when it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqFloor {
    /// `min_seq` to send (none before the first acknowledged commit).
    pub min_seq: Option<u64>,
    /// The node delta's seq must be at least this (the newest acknowledged commit to the node).
    pub node_seq: u64,
    /// The overlay's seq must be at least this (the newest one to the node's vCluster).
    pub vcluster_seq: u64,
}

/// Commits made during the storm and what the boots saw of them. Field names are JSON keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommitsDuringStorm {
    pub commit_every_ms: u64,
    /// Acknowledged (`Committed`, durable on a quorum and applied).
    pub commits_ok: u64,
    pub commits_failed: u64,
    pub commit_failures_by_kind: BTreeMap<String, u64>,
    pub commit_failure_examples: BTreeMap<String, String>,
    /// Seq of the last acknowledged commit.
    pub last_seq: Option<u64>,
    /// Boots that fetched with a `min_seq` (started after the first acknowledged commit).
    pub boots_with_min_seq: u64,
    /// Ok boots whose answer did not reflect an acknowledged commit to their node or vCluster
    /// (must be 0).
    pub min_seq_violations: u64,
    pub min_seq_violation_example: Option<String>,
}

/// One kill or addition: when it was due and what happened. Field names are JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioOutcome {
    /// `kill-learner`, `kill-leader` or `add-learner`.
    pub kind: String,
    pub planned_at_s: f64,
    /// When it was done; null when the storm ended first or it failed.
    pub done_at_s: Option<f64>,
    /// The replica killed or added.
    pub replica: Option<String>,
    /// `add-learner`: when it was a caught-up member and boots started listing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at_s: Option<f64>,
    /// What went wrong, or "not reached" when the storm ended before it was due.
    pub error: Option<String>,
}

/// State the scenarios share with the boots.
#[derive(Debug, Default)]
pub struct ScenarioState {
    acked: Mutex<Acked>,
    commits: Mutex<CommitsDuringStorm>,
    events: Mutex<Vec<Event>>,
    outcomes: Mutex<Vec<ScenarioOutcome>>,
    /// Set once the storm is over: the commit loop stops.
    done: AtomicBool,
}

impl ScenarioState {
    pub fn new(plan: &ScenarioPlan) -> ScenarioState {
        let state = ScenarioState::default();
        let mut outcomes = Vec::new();
        for (kind, at) in [
            ("kill-learner", plan.kill_learner_at_s),
            ("kill-leader", plan.kill_leader_at_s),
            ("add-learner", plan.add_learner_at_s),
        ] {
            if let Some(at) = at {
                outcomes.push(ScenarioOutcome {
                    kind: kind.to_owned(),
                    planned_at_s: at,
                    done_at_s: None,
                    replica: None,
                    ready_at_s: None,
                    error: Some("not reached: the storm ended first".to_owned()),
                });
            }
        }
        *state.outcomes.lock().expect("the outcomes lock") = outcomes;
        if let Some(ms) = plan.commit_every_ms {
            state
                .commits
                .lock()
                .expect("the commits lock")
                .commit_every_ms = ms;
        }
        state
    }

    /// What a boot of `node` (in `vcluster`) starting now must see.
    pub fn floor(&self, node: &str, vcluster: &str) -> SeqFloor {
        let acked = self.acked.lock().expect("the acked lock");
        SeqFloor {
            min_seq: (acked.last_seq > 0).then_some(acked.last_seq),
            node_seq: acked.by_node.get(node).copied().unwrap_or(0),
            vcluster_seq: acked.by_vcluster.get(vcluster).copied().unwrap_or(0),
        }
    }

    /// Checks an ok boot's answer against the floor it started with.
    pub fn check(&self, node: &str, floor: &SeqFloor, delta_seq: u64, overlay_seq: u64) {
        let Some(min_seq) = floor.min_seq else {
            return;
        };
        let mut commits = self.commits.lock().expect("the commits lock");
        commits.boots_with_min_seq += 1;
        if delta_seq < floor.node_seq || overlay_seq < floor.vcluster_seq {
            commits.min_seq_violations += 1;
            commits.min_seq_violation_example.get_or_insert_with(|| {
                format!(
                    "{node} fetched with min_seq {min_seq}: node delta at seq {delta_seq} (its newest acknowledged commit: {}), overlay at seq {overlay_seq} (its vCluster's: {})",
                    floor.node_seq, floor.vcluster_seq
                )
            });
        }
    }

    /// A boot with `min_seq` that failed still counts as one that fetched with it.
    pub fn count_failed(&self, floor: &SeqFloor) {
        if floor.min_seq.is_some() {
            self.commits
                .lock()
                .expect("the commits lock")
                .boots_with_min_seq += 1;
        }
    }

    pub fn event(&self, at: Duration, label: impl Into<String>) {
        let mut events = self.events.lock().expect("the events lock");
        if events.len() < EVENTS_MAX {
            events.push(Event::new(at, label));
        }
    }

    fn outcome(&self, kind: &str, update: impl FnOnce(&mut ScenarioOutcome)) {
        let mut outcomes = self.outcomes.lock().expect("the outcomes lock");
        if let Some(outcome) = outcomes.iter_mut().find(|o| o.kind == kind) {
            update(outcome);
        }
    }

    /// Ends the commit loop.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("the events lock").clone()
    }

    pub fn outcomes(&self) -> Vec<ScenarioOutcome> {
        self.outcomes.lock().expect("the outcomes lock").clone()
    }

    pub fn commits(&self) -> CommitsDuringStorm {
        self.commits.lock().expect("the commits lock").clone()
    }

    fn commit_acked(&self, scope: &Scope, seq: u64) {
        let mut acked = self.acked.lock().expect("the acked lock");
        acked.last_seq = acked.last_seq.max(seq);
        match scope {
            Scope::Node(node) => {
                let floor = acked.by_node.entry(node.clone()).or_default();
                *floor = (*floor).max(seq);
            }
            Scope::VCluster(vcluster) => {
                let floor = acked.by_vcluster.entry(vcluster.clone()).or_default();
                *floor = (*floor).max(seq);
            }
            // The storm commits only node and vCluster changes.
            _ => {}
        }
        drop(acked);
        let mut commits = self.commits.lock().expect("the commits lock");
        commits.commits_ok += 1;
        commits.last_seq = Some(seq);
    }

    fn commit_failed(&self, kind: String, example: String) {
        let mut commits = self.commits.lock().expect("the commits lock");
        commits.commits_failed += 1;
        *commits
            .commit_failures_by_kind
            .entry(kind.clone())
            .or_default() += 1;
        let example: String = example.chars().take(FAILURE_EXAMPLE_MAX_CHARS).collect();
        commits
            .commit_failure_examples
            .entry(kind)
            .or_insert(example);
    }
}

/// Commits one change every `every`, one at a time, until the storm is over.
pub async fn commit_loop(
    state: &ScenarioState,
    client: &AdminClient,
    every: Duration,
    target_nodes: u32,
    t0: Instant,
) {
    let workload = CommitWorkload {
        nodes: target_nodes,
        vcluster_every: COMMIT_VCLUSTER_EVERY,
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut announced = false;
    for index in 0u64.. {
        interval.tick().await;
        if state.done.load(Ordering::Relaxed) {
            return;
        }
        let entry = workload.entry(index);
        let scope = entry.scope.clone();
        let request = client.request(AdminRequest::Commit { entry });
        let outcome = tokio::time::timeout(Duration::from_millis(COMMIT_TIMEOUT_MS), request).await;
        match outcome {
            Ok(Ok(AdminResponse::Committed { seq: Some(seq), .. })) => {
                state.commit_acked(&scope, seq);
                if !announced {
                    announced = true;
                    state.event(
                        t0.elapsed(),
                        format!("commits every {} ms", every.as_millis()),
                    );
                }
            }
            Err(_) => state.commit_failed(
                "commit-timeout".to_owned(),
                format!("no answer within {COMMIT_TIMEOUT_MS} ms (outcome unknown)"),
            ),
            Ok(result) => {
                let (kind, example) = failure_kind(&result)
                    .unwrap_or_else(|| ("committed-without-seq".to_owned(), String::new()));
                state.commit_failed(kind, example);
            }
        }
    }
}

/// The kills and the addition, in time order, on the cluster this process started.
/// `learner_ready` is called with an added learner once it caught up (the storm then lists
/// it for boots starting afterwards); `load` gets a last reading of a replica before it is
/// killed and starts watching an added one.
pub async fn chaos(
    plan: &ScenarioPlan,
    state: &ScenarioState,
    cluster: &mut DevCluster,
    client: Option<&AdminClient>,
    load: &Mutex<ServerLoad>,
    t0: Instant,
    learner_ready: &(dyn Fn(ClusterReplica) -> Result<()> + Sync),
) {
    let mut steps: Vec<(f64, &str)> = [
        (plan.kill_learner_at_s, "kill-learner"),
        (plan.kill_leader_at_s, "kill-leader"),
        (plan.add_learner_at_s, "add-learner"),
    ]
    .into_iter()
    .filter_map(|(at, kind)| Some((at?, kind)))
    .collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut chaos = Chaos {
        state,
        cluster,
        client,
        load,
        t0,
    };
    for (at_s, kind) in steps {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(at_s)).await;
        let result = match kind {
            "kill-learner" => chaos.kill_learner().await,
            "kill-leader" => chaos.kill_leader().await,
            _ => chaos.add_learner(learner_ready).await,
        };
        match result {
            Ok(()) => state.outcome(kind, |o| o.error = None),
            Err(error) => {
                eprintln!("error: scenario {kind} failed: {error:#}");
                state.outcome(kind, |o| o.error = Some(format!("{error:#}")));
            }
        }
    }
}

/// What a kill or an addition acts on and reports to.
struct Chaos<'a> {
    state: &'a ScenarioState,
    /// The cluster this process started: kills and additions go by its PIDs.
    cluster: &'a mut DevCluster,
    client: Option<&'a AdminClient>,
    /// Gets a last reading of a replica before it is killed, and watches an added one.
    load: &'a Mutex<ServerLoad>,
    /// Start of the measured phase: the events' zero.
    t0: Instant,
}

impl Chaos<'_> {
    /// SIGKILLs replica `name` (after a last reading of its load) and records it as `kind`.
    async fn kill(&mut self, kind: &str, name: &str) -> Result<()> {
        if self.cluster.pid(name).is_none() {
            bail!("{name} is not running");
        }
        self.load
            .lock()
            .expect("the server load lock")
            .last_reading(name);
        self.cluster.kill(name).await?;
        let at = self.t0.elapsed();
        let label = match kind {
            "kill-leader" => format!("kill -9 leader {name}"),
            _ => format!("kill -9 {name}"),
        };
        eprintln!("{label} at {:.2} s", at.as_secs_f64());
        self.state.event(at, label);
        self.state.outcome(kind, |o| {
            o.done_at_s = Some(round3(at.as_secs_f64()));
            o.replica = Some(name.to_owned());
        });
        Ok(())
    }

    async fn kill_learner(&mut self) -> Result<()> {
        // The first running learner: the rack-local replica of its share of the nodes.
        let names: Vec<String> = self
            .cluster
            .planned
            .iter()
            .filter(|p| p.conf.role == Role::Learner)
            .map(|p| p.conf.name.clone())
            .collect();
        let name = names
            .into_iter()
            .find(|name| self.cluster.pid(name).is_some())
            .context("no learner is running")?;
        self.kill("kill-learner", &name).await
    }

    async fn kill_leader(&mut self) -> Result<()> {
        let client = self.client.context("no admin client")?;
        let status = client.status_all().await;
        let leader = status
            .leader
            .context("no replica knows a leader (an election is under way)")?;
        self.kill("kill-leader", &leader).await
    }

    /// Starts and joins a learner, waits for it to catch up, then `learner_ready` lists it.
    async fn add_learner(
        &mut self,
        learner_ready: &(dyn Fn(ClusterReplica) -> Result<()> + Sync),
    ) -> Result<()> {
        let client = self.client.context("no admin client")?;
        let started = self.t0.elapsed();
        self.state.outcome("add-learner", |o| {
            o.error = Some("the storm ended before the learner had joined".to_owned())
        });
        let added = self.cluster.add_learner().await?;
        let name = added.conf.name.clone();
        let joined = self.t0.elapsed();
        self.state.event(started, format!("start {name}"));
        self.state.outcome("add-learner", |o| {
            o.done_at_s = Some(round3(joined.as_secs_f64()));
            o.replica = Some(name.clone());
            o.error = Some("the storm ended before the learner had caught up".to_owned());
        });
        self.load.lock().expect("the server load lock").add_started(
            &name,
            Role::Learner,
            self.cluster.pid(&name),
        );
        eprintln!(
            "{name} started at {:.2} s and joined at {:.2} s; waiting for it to catch up",
            started.as_secs_f64(),
            joined.as_secs_f64()
        );
        wait_caught_up(client, &name).await?;
        learner_ready(ClusterReplica {
            name: name.clone(),
            role: Role::Learner,
            boot: added.conf.listen.boot,
            admin: added.conf.listen.admin,
            check: added.conf.listen.check,
        })?;
        let ready = self.t0.elapsed();
        eprintln!("{name} caught up at {:.2} s", ready.as_secs_f64());
        self.state.event(ready, format!("{name} ready"));
        self.state.outcome("add-learner", |o| {
            o.ready_at_s = Some(round3(ready.as_secs_f64()))
        });
        Ok(())
    }
}

/// Waits until the added learner `name` caught up: it applied what the most advanced
/// replica had applied when it joined, and holds every demo vCluster's overlay. Bounded by
/// `CATCH_UP_TIMEOUT_MS`, polled every `CATCH_UP_POLL_MS`.
async fn wait_caught_up(client: &AdminClient, name: &str) -> Result<()> {
    let status = client.status_all().await;
    let target_seq = status
        .replicas
        .iter()
        .filter(|r| r.reachable)
        .map(|r| r.applied_seq)
        .max()
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_millis(CATCH_UP_TIMEOUT_MS);
    loop {
        let status = client.status_all().await;
        let caught_up = status.replicas.iter().any(|r| {
            r.name == name
                && r.reachable
                && r.applied_seq >= target_seq
                && demo::DEMO_VCLUSTERS
                    .iter()
                    .all(|vc| r.overlays.iter().any(|o| o.vcluster == *vc))
        });
        if caught_up {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{name} did not catch up to seq {target_seq} within {CATCH_UP_TIMEOUT_MS} ms");
        }
        tokio::time::sleep(Duration::from_millis(CATCH_UP_POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_must_see_the_commits_to_its_node_and_vcluster() {
        let state = ScenarioState::new(&ScenarioPlan::default());
        assert_eq!(state.floor("node-0001", "gpu"), SeqFloor::default());
        state.commit_acked(&Scope::Node("node-0001".into()), 120);
        state.commit_acked(&Scope::VCluster("gpu".into()), 121);
        state.commit_acked(&Scope::Node("node-0002".into()), 122);
        let floor = state.floor("node-0001", "gpu");
        assert_eq!(
            floor,
            SeqFloor {
                min_seq: Some(122),
                node_seq: 120,
                vcluster_seq: 121
            }
        );
        state.check("node-0001", &floor, 120, 121);
        assert_eq!(state.commits().min_seq_violations, 0);
        // An overlay older than the vCluster's acknowledged commit is a violation.
        state.check("node-0001", &floor, 120, 100);
        let commits = state.commits();
        assert_eq!(
            (commits.boots_with_min_seq, commits.min_seq_violations),
            (2, 1)
        );
        assert!(commits
            .min_seq_violation_example
            .unwrap()
            .contains("overlay at seq 100"));
        assert_eq!((commits.commits_ok, commits.last_seq), (3, Some(122)));
        // Other nodes and vClusters are not held to those commits.
        assert_eq!(state.floor("node-0003", "cpu").node_seq, 0);
        assert_eq!(state.floor("node-0003", "cpu").vcluster_seq, 0);
    }

    #[test]
    fn boots_before_any_commit_send_no_min_seq_and_are_not_counted() {
        let state = ScenarioState::new(&ScenarioPlan::default());
        let floor = state.floor("node-0001", "gpu");
        state.check("node-0001", &floor, 1, 1);
        state.count_failed(&floor);
        assert_eq!(state.commits().boots_with_min_seq, 0);
    }

    #[test]
    fn scenarios_not_reached_say_so() {
        let plan = ScenarioPlan {
            kill_learner_at_s: Some(1.0),
            add_learner_at_s: Some(2.0),
            ..ScenarioPlan::default()
        };
        let outcomes = ScenarioState::new(&plan).outcomes();
        assert_eq!(outcomes.len(), 2);
        assert!(outcomes
            .iter()
            .all(|o| o.done_at_s.is_none() && o.error.as_deref().unwrap().contains("not reached")));
    }

    fn spawn(learners: u16) -> TargetPlan {
        TargetPlan::Spawn {
            voters: 3,
            learners,
            base_port: None,
            nodes: 100,
            bootstorm_exe: None,
            keep_data: false,
        }
    }

    #[test]
    fn validation() {
        let kill = ScenarioPlan {
            kill_learner_at_s: Some(1.0),
            ..ScenarioPlan::default()
        };
        assert!(kill.validate(&spawn(2), 60).is_ok());
        let error = kill.validate(&spawn(0), 60).unwrap_err().to_string();
        assert!(error.contains("--learners"), "{error}");
        let cluster = TargetPlan::Cluster {
            file: "cluster.toml".into(),
        };
        let error = kill.validate(&cluster, 60).unwrap_err().to_string();
        assert!(error.contains("needs --spawn"), "{error}");
        let late = ScenarioPlan {
            kill_leader_at_s: Some(60.0),
            ..ScenarioPlan::default()
        };
        assert!(late.validate(&spawn(2), 60).is_err());
        let commits = ScenarioPlan {
            commit_every_ms: Some(200),
            ..ScenarioPlan::default()
        };
        assert!(
            commits.validate(&cluster, 60).is_ok(),
            "commits work on --cluster"
        );
        let too_fast = ScenarioPlan {
            commit_every_ms: Some(1),
            ..ScenarioPlan::default()
        };
        assert!(too_fast.validate(&cluster, 60).is_err());
    }
}
