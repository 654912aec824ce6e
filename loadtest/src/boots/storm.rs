//! The storm while it runs: what every boot task shares ([`Storm`]: the plan, the agents,
//! the scenario state, the counters and the stats) and the driver that starts the boots —
//! closed loop at a concurrency, or open loop at a rate with a bounded number in flight.
//!
//! Invariants: a boot index is claimed once and never beyond the plan's boot count; no boot
//! starts after `stop` is set; started − finished at the end is the number cut at the
//! deadline; the open loop counts a boot's latency from when it was due, not when it could
//! start (no coordinated omission); every boot is recorded under one lock, once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use config::demo;
use proto::client::BootClient;
use proto::Hash;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::placement::{holds_overlay, node_index};
use super::plan::{BootsPlan, Load};
use super::stats::BootStats;
use crate::limits::AGENT_CLOSE_WAIT_MS;
use crate::progress::Progress;
use crate::scenario::ScenarioState;

/// Everything a boot task needs.
pub struct Storm {
    pub plan: BootsPlan,
    /// The agents boots start with now (replaced when a learner is added).
    pub agents: RwLock<Arc<Vec<Arc<BootClient>>>>,
    /// Every agent made, to shut them all down at the end.
    pub all_agents: Mutex<Vec<Arc<BootClient>>>,
    /// Commits' floors, events and outcomes of the scenarios.
    pub scenario: ScenarioState,
    pub hashes: BTreeMap<String, Hash>,
    pub stats: Mutex<BootStats>,
    /// Boots started and finished: started − finished at the end are cut at the deadline.
    pub started: AtomicU64,
    pub finished: AtomicU64,
    pub failed: AtomicU64,
    /// Set at the deadline or on Ctrl-C: start no more boots.
    pub stop: AtomicBool,
    /// Start of the measured phase: the timeline's and the events' zero.
    pub t0: Instant,
}

impl Storm {
    /// One simulated node's boot, due at `due` (its latency counts from then): the agent
    /// of its rack, the floor of acknowledged commits it must see, recorded once.
    async fn boot(&self, index: u64, due: Instant) {
        let node_index = node_index(index, self.plan.target_nodes);
        let node = demo::node_name(node_index);
        let have_hash = if holds_overlay(self.plan.mode, index) {
            self.hashes.get(demo::vcluster_of(node_index)).copied()
        } else {
            None
        };
        let agent = {
            let agents = self.agents.read().expect("the agents lock");
            agents[(index % agents.len() as u64) as usize].clone()
        };
        let floor = self.scenario.floor(&node, demo::vcluster_of(node_index));
        let result = agent.fetch(&node, have_hash, floor.min_seq).await;
        let latency = due.elapsed();
        match &result {
            Ok(outcome) => {
                self.scenario
                    .check(&node, &floor, outcome.delta.seq, outcome.base.seq())
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.scenario.count_failed(&floor);
            }
        }
        let mut stats = self.stats.lock().expect("the stats lock");
        stats.record(&result, latency);
        stats
            .timeline
            .record(self.t0.elapsed(), result.is_ok(), latency);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// The storm over the first agents, its clock starting now.
    pub fn new(
        plan: &BootsPlan,
        agents: Vec<Arc<BootClient>>,
        hashes: BTreeMap<String, Hash>,
    ) -> Storm {
        Storm {
            plan: plan.clone(),
            agents: RwLock::new(Arc::new(agents.clone())),
            all_agents: Mutex::new(agents),
            scenario: ScenarioState::new(&plan.scenarios),
            hashes,
            stats: Mutex::new(BootStats::default()),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            t0: Instant::now(),
        }
    }

    /// Boots that start from now on use `fresh`; boots in flight keep their agent.
    pub fn replace_agents(&self, fresh: Vec<Arc<BootClient>>) {
        self.all_agents
            .lock()
            .expect("the agents lock")
            .extend(fresh.iter().cloned());
        *self.agents.write().expect("the agents lock") = Arc::new(fresh);
    }

    /// Copies the counters into the progress display.
    pub fn show(&self, progress: &Progress) {
        progress.update(
            self.finished.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
    }

    /// Closes every agent made (each gets `AGENT_CLOSE_WAIT_MS` to send its close frames).
    pub async fn shut_agents(&self) {
        let all_agents = std::mem::take(&mut *self.all_agents.lock().expect("the agents lock"));
        for agent in &all_agents {
            agent
                .shutdown(Duration::from_millis(AGENT_CLOSE_WAIT_MS))
                .await;
        }
    }

    /// Claims the next boot index, if the run goes on.
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let index = self.started.fetch_add(1, Ordering::Relaxed);
        if index >= self.plan.boots {
            self.started.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(index)
    }
}

/// Starts the boots — `concurrency` closed loops, or one every `1/rate` s with at most
/// `in_flight_max` in flight — until every boot is claimed or the storm is stopped, and
/// waits for those started. Dropping it aborts the boots still running.
pub async fn drive(storm: Arc<Storm>) {
    let mut tasks = JoinSet::new();
    match storm.plan.load {
        Load::Closed { concurrency } => {
            for _ in 0..concurrency {
                let storm = storm.clone();
                tasks.spawn(async move {
                    while let Some(index) = storm.claim() {
                        storm.boot(index, Instant::now()).await;
                    }
                });
            }
        }
        Load::Open {
            rate_per_s,
            in_flight_max,
        } => {
            let permits = Arc::new(tokio::sync::Semaphore::new(in_flight_max as usize));
            let start = Instant::now();
            let interval_ns = 1_000_000_000 / u64::from(rate_per_s);
            loop {
                let next = storm.started.load(Ordering::Relaxed);
                let due = start + Duration::from_nanos(next.saturating_mul(interval_ns));
                tokio::time::sleep_until(due).await;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let Some(index) = storm.claim() else {
                    break;
                };
                let storm = storm.clone();
                tasks.spawn(async move {
                    storm.boot(index, due).await;
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}
