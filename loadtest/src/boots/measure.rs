//! One storm's measured part: load the cluster file, make the agents and let them learn what
//! a node would hold (`agents`), then the storm itself (`storm::drive`) beside a progress
//! ticker that also samples the replicas' load, and the scenarios; stopped by the boot count,
//! `--max-seconds` or Ctrl-C; then the numbers are collected into `BootStats` and a
//! `Measurement`.
//!
//! Invariants: the scenarios and the ticker run only while the storm runs (they are dropped,
//! so cancelled, when it ends); boots in flight at the deadline or Ctrl-C get
//! `DEADLINE_GRACE_MS` and are then aborted and counted `cut-at-deadline`; every agent is
//! shut down before the numbers are returned; the replicas' load gets a last reading.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use client::AdminClient;
use config::demo;
use dev::DevCluster;
use proto::client::{BootClient, VerifiedBases};

use super::agents::{
    agent_sources, learn_replica_certs, load_cluster, prefetch, AgentMaker, Prefetched,
};
use super::hostile::flood_scenario;
use super::plan::{BootMode, BootsPlan, Load};
use super::report::Measurement;
use super::stats::BootStats;
use super::storm::{drive, Storm};
use crate::admin::connect;
use crate::failures::CUT_AT_DEADLINE;
use crate::figures::StoppedBy;
use crate::interrupt::Interrupt;
use crate::limits::{
    DEADLINE_GRACE_MS, OPEN_LOOP_IN_FLIGHT_MAX, PROGRESS_TICK_MS, SERVER_LOAD_SAMPLE_TICKS,
};
use crate::progress::Progress;
use crate::scenario::{chaos, commit_loop};
use crate::server_load::ServerLoad;
use crate::target::{own_cpu_s, Target};

/// Prefetch, then the measured phase. Returns the stats, the other numbers and the
/// prefetched overlays' bytes (the file the nginx baseline serves).
pub async fn measure(
    plan: &BootsPlan,
    target: &mut Target,
    interrupt: &Interrupt,
) -> Result<(BootStats, Measurement, BTreeMap<String, Bytes>)> {
    let replicas = target.replicas()?;
    let cluster_path = target.cluster_file().to_path_buf();
    let (cluster_file, ca_pem) = load_cluster(&cluster_path)?;
    let verified = (!plan.verify_every_boot).then(|| Arc::new(VerifiedBases::new()));
    let in_flight = match plan.load {
        Load::Closed { concurrency } => concurrency,
        Load::Open { .. } => OPEN_LOOP_IN_FLIGHT_MAX,
    };
    let sources = agent_sources(&cluster_file.replicas, in_flight);
    let maker = AgentMaker::new(
        ca_pem,
        cluster_file.replicas.clone(),
        plan.boot_check,
        verified,
        sources,
    );
    let first_agents = maker.agents()?;
    let admin = if plan.scenarios.needs_admin() {
        Some(
            connect(&cluster_file)
                .await
                .context("connecting to the admin plane for the scenarios")?,
        )
    } else {
        None
    };
    let Prefetched { hashes, compressed } = prepare(plan, &first_agents, interrupt).await?;
    let storm = Arc::new(Storm::new(plan, first_agents, hashes));
    let progress = Progress::new(plan.boots, "boots", plan.progress);
    let server_load = Mutex::new(ServerLoad::start(&replicas));
    let client_cpu_before = own_cpu_s();
    let running = Running {
        plan,
        storm: &storm,
        progress: &progress,
        server_load: &server_load,
        maker: &maker,
        admin: admin.as_ref(),
    };
    let stopped_by = running.run(target.dev_cluster(), interrupt).await;
    let wall_s = storm.t0.elapsed().as_secs_f64();
    storm.show(&progress);
    progress.finish();
    let server_load = {
        let mut load = server_load.into_inner().expect("the server load lock");
        load.sample();
        load
    };
    let client_cpu_s = own_cpu_s() - client_cpu_before;
    let (stats, measurement) = collect(plan, &storm, &server_load, stopped_by).await;
    let measurement = Measurement {
        wall_s,
        client_cpu_s,
        ..measurement
    };
    Ok((stats, measurement, compressed))
}

/// Before the measured phase: the overlays' hashes and bytes; for reboots with boot checks,
/// the replica certificates. Warns about vClusters whose hash was not learned.
async fn prepare(
    plan: &BootsPlan,
    agents: &[Arc<BootClient>],
    interrupt: &Interrupt,
) -> Result<Prefetched> {
    let prefetched = tokio::select! {
        p = prefetch(&agents[0], plan.target_nodes) => p?,
        _ = interrupt.wait() => bail!("interrupted before the measured phase"),
    };
    if plan.mode != BootMode::Cold && plan.boot_check {
        tokio::select! {
            warmed = learn_replica_certs(agents) => warmed?,
            _ = interrupt.wait() => bail!("interrupted before the measured phase"),
        }
    }
    if plan.mode != BootMode::Cold {
        let missing: Vec<&str> = demo::DEMO_VCLUSTERS
            .iter()
            .copied()
            .filter(|vc| !prefetched.hashes.contains_key(*vc))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "warning: no overlay hash learned for vCluster(s) {missing:?}; their reboots are cold"
            );
        }
    }
    Ok(prefetched)
}

/// What runs beside the boots while the storm lasts.
struct Running<'a> {
    plan: &'a BootsPlan,
    storm: &'a Arc<Storm>,
    progress: &'a Progress,
    server_load: &'a Mutex<ServerLoad>,
    /// Makes the agents again when a learner is added mid-storm.
    maker: &'a AgentMaker,
    admin: Option<&'a AdminClient>,
}

impl Running<'_> {
    /// Runs the storm until every boot finished, `--max-seconds` ran out or Ctrl-C; then
    /// gives the boots in flight their grace and aborts the rest.
    async fn run(&self, dev_cluster: Option<&mut DevCluster>, interrupt: &Interrupt) -> StoppedBy {
        let deadline = self.storm.t0 + Duration::from_secs(self.plan.max_seconds);
        // Boxed, not pinned on the stack: dropping it must drop (abort) the boots still running.
        let mut run = Box::pin(drive(self.storm.clone()));
        let stopped_by = tokio::select! {
            _ = &mut run => StoppedBy::Count,
            _ = tokio::time::sleep_until(deadline) => StoppedBy::MaxSeconds,
            _ = interrupt.wait() => StoppedBy::Interrupted,
            _ = self.ticker() => unreachable!("the progress ticker never ends"),
            _ = self.scenarios(dev_cluster) => unreachable!("the scenarios wait for the storm to end"),
        };
        self.storm.scenario.finish();
        if stopped_by != StoppedBy::Count {
            self.storm
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tokio::time::timeout(Duration::from_millis(DEADLINE_GRACE_MS), &mut run).await;
        }
        // Dropping the drive aborts boots still running after the grace period.
        drop(run);
        stopped_by
    }

    /// Shows progress every tick and reads the replicas' load every
    /// `SERVER_LOAD_SAMPLE_TICKS` ticks; never ends.
    async fn ticker(&self) {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
            self.storm.show(self.progress);
            ticks += 1;
            if ticks.is_multiple_of(SERVER_LOAD_SAMPLE_TICKS) {
                self.server_load
                    .lock()
                    .expect("the server load lock")
                    .sample();
            }
        }
    }

    /// The commits, kills and addition the plan asks for, beside the boots; then waits for
    /// the storm to end (the caller drops this future).
    async fn scenarios(&self, dev_cluster: Option<&mut DevCluster>) {
        let (plan, storm) = (self.plan, self.storm);
        let commits = async {
            if let (Some(ms), Some(client)) = (plan.scenarios.commit_every_ms, self.admin) {
                let every = Duration::from_millis(ms);
                commit_loop(&storm.scenario, client, every, plan.target_nodes, storm.t0).await;
            }
        };
        let kills = async {
            let Some(cluster) = dev_cluster else { return };
            // A learner added mid-storm joins the failover lists of boots that start once it
            // is ready: new agents over the cluster file's replicas and the added ones.
            let learner_ready = |replica| {
                storm.replace_agents(self.maker.with_added(replica)?);
                Ok(())
            };
            chaos(
                &plan.scenarios,
                &storm.scenario,
                cluster,
                self.admin,
                self.server_load,
                storm.t0,
                &learner_ready,
            )
            .await;
        };
        let flood = async {
            if let Some(flood) = &plan.scenarios.flood {
                match self.maker.tls() {
                    Ok(tls) => flood_scenario(flood, storm, &self.maker.replicas(), tls).await,
                    Err(error) => eprintln!("error: the flood scenario's TLS: {error:#}"),
                }
            }
        };
        tokio::join!(commits, kills, flood);
        std::future::pending::<()>().await
    }
}

/// After the storm: the stats with the boots cut at the deadline, the per-replica load and
/// what the scenarios did. Shuts every agent down. `wall_s` and `client_cpu_s` are left 0:
/// the caller read them before this waits for the agents.
async fn collect(
    plan: &BootsPlan,
    storm: &Storm,
    server_load: &ServerLoad,
    stopped_by: StoppedBy,
) -> (BootStats, Measurement) {
    use std::sync::atomic::Ordering;
    let mut stats = std::mem::take(&mut *storm.stats.lock().expect("the stats lock"));
    let replicas = server_load.rows(&stats.per_replica_boots);
    let started = storm.started.load(Ordering::Relaxed);
    let cut = started - storm.finished.load(Ordering::Relaxed);
    stats.fail(
        CUT_AT_DEADLINE,
        &format!("still in flight {DEADLINE_GRACE_MS} ms after the run was stopped"),
        cut,
    );
    if stopped_by == StoppedBy::MaxSeconds {
        let not_started = plan.boots - started;
        if not_started > 0 {
            eprintln!(
                "--max-seconds {} ran out: {not_started} boots were not started",
                plan.max_seconds
            );
        }
    }
    storm.shut_agents().await;
    let measurement = Measurement {
        wall_s: 0.0,
        cluster_cpu_s: server_load.total_cpu_s(),
        client_cpu_s: 0.0,
        stopped_by,
        replicas,
        events: storm.scenario.events(),
        commits_during_storm: plan
            .scenarios
            .commit_every_ms
            .map(|_| storm.scenario.commits()),
        scenarios: storm.scenario.outcomes(),
    };
    (stats, measurement)
}
