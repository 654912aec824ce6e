//! Per-replica server load during a run: CPU seconds and resident memory of the replica
//! processes this tool started, read from `/proc` by PID. A storm's cost is not spread evenly
//! (the rack-local learners serve, the leader commits and rebuilds), so capacity planning
//! needs it per replica, not only summed.
//!
//! Invariants: reads only `/proc`; a reading is taken only while the PID still names the
//! process first seen (same start time), so a PID the kernel reused after a replica died is
//! never read as that replica; a replica without a PID (`--cluster`) reports null, never 0.

use std::collections::BTreeMap;

use conf::Role;
use serde::{Deserialize, Serialize};

use crate::figures::round3;
use crate::target::{proc_memory, proc_stat, MemoryKib, TargetReplica};

/// What is known about one replica's process.
#[derive(Clone, Debug)]
struct Watched {
    name: String,
    role: Role,
    /// `None` when unknown (`--cluster`) or no longer watched (killed, exited).
    pid: Option<u32>,
    /// The process's start time, to tell it from a later process with the same PID.
    start_ticks: Option<u64>,
    /// CPU seconds at the first reading (0 for a process started during the run: all its
    /// CPU belongs to the run).
    cpu_first_s: Option<f64>,
    /// CPU seconds at the last reading.
    cpu_last_s: Option<f64>,
    /// Memory at the last reading.
    memory: Option<MemoryKib>,
}

impl Watched {
    fn read(&mut self) {
        let Some(pid) = self.pid else { return };
        match proc_stat(pid) {
            Some(stat) if self.start_ticks.is_none_or(|t| t == stat.start_ticks) => {
                self.start_ticks = Some(stat.start_ticks);
                self.cpu_first_s.get_or_insert(stat.cpu_s);
                self.cpu_last_s = Some(stat.cpu_s);
                if let Some(memory) = proc_memory(pid) {
                    self.memory = Some(memory);
                }
            }
            // Gone (or the PID now names another process): keep the last reading.
            _ => self.pid = None,
        }
    }
}

/// The replicas' load, read at the start, periodically, before a replica is killed and at
/// the end.
#[derive(Clone, Debug, Default)]
pub struct ServerLoad {
    replicas: Vec<Watched>,
}

/// One replica's line of the report. Field names are JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub name: String,
    pub role: Role,
    /// Ok boots it served.
    pub boots: u64,
    /// CPU seconds (user + system) it used during the measured phase; null when its PID is
    /// unknown (`--cluster`).
    pub cpu_s: Option<f64>,
    /// Its CPU per boot it served; null when it served none.
    pub cpu_ms_per_boot: Option<f64>,
    /// Resident memory at the last reading (`VmRSS`), MiB.
    pub rss_mib: Option<f64>,
    /// Highest resident memory since the process started (`VmHWM`), MiB.
    pub rss_peak_mib: Option<f64>,
}

fn mib(kib: u64) -> f64 {
    round3(kib as f64 / 1024.0)
}

impl ServerLoad {
    /// Starts watching `replicas` and takes the first reading.
    pub fn start(replicas: &[TargetReplica]) -> ServerLoad {
        let mut load = ServerLoad {
            replicas: replicas
                .iter()
                .map(|r| Watched {
                    name: r.name.clone(),
                    role: r.role,
                    pid: r.pid,
                    start_ticks: None,
                    cpu_first_s: None,
                    cpu_last_s: None,
                    memory: None,
                })
                .collect(),
        };
        load.sample();
        load
    }

    /// Watches a replica started during the run: all its CPU counts.
    pub fn add_started(&mut self, name: &str, role: Role, pid: Option<u32>) {
        let mut watched = Watched {
            name: name.to_owned(),
            role,
            pid,
            start_ticks: None,
            cpu_first_s: pid.map(|_| 0.0),
            cpu_last_s: None,
            memory: None,
        };
        watched.read();
        self.replicas.retain(|r| r.name != name);
        self.replicas.push(watched);
    }

    /// Reads every watched process.
    pub fn sample(&mut self) {
        for replica in &mut self.replicas {
            replica.read();
        }
    }

    /// Takes a last reading of `name` and stops watching it (call it before killing it).
    pub fn last_reading(&mut self, name: &str) {
        if let Some(replica) = self.replicas.iter_mut().find(|r| r.name == name) {
            replica.read();
            replica.pid = None;
        }
    }

    fn cpu_s(replica: &Watched) -> Option<f64> {
        Some(replica.cpu_last_s? - replica.cpu_first_s?)
    }

    /// CPU seconds of every replica with readings; `None` when no replica has any.
    pub fn total_cpu_s(&self) -> Option<f64> {
        let readings: Vec<f64> = self.replicas.iter().filter_map(Self::cpu_s).collect();
        (!readings.is_empty()).then(|| readings.iter().sum())
    }

    /// One line per replica (and per replica that served boots without being watched).
    pub fn rows(&self, per_replica_boots: &BTreeMap<String, u64>) -> Vec<ReplicaReport> {
        let mut rows: Vec<ReplicaReport> = self
            .replicas
            .iter()
            .map(|r| {
                let boots = per_replica_boots.get(&r.name).copied().unwrap_or(0);
                let cpu_s = Self::cpu_s(r);
                ReplicaReport {
                    name: r.name.clone(),
                    role: r.role,
                    boots,
                    cpu_s: cpu_s.map(round3),
                    cpu_ms_per_boot: cpu_s
                        .filter(|_| boots > 0)
                        .map(|s| round3(s * 1000.0 / boots as f64)),
                    rss_mib: r.memory.map(|m| mib(m.rss_kib)),
                    rss_peak_mib: r.memory.map(|m| mib(m.rss_peak_kib)),
                }
            })
            .collect();
        for (name, boots) in per_replica_boots {
            if !rows.iter().any(|r| &r.name == name) {
                rows.push(ReplicaReport {
                    name: name.clone(),
                    role: Role::Learner,
                    boots: *boots,
                    cpu_s: None,
                    cpu_ms_per_boot: None,
                    rss_mib: None,
                    rss_peak_mib: None,
                });
            }
        }
        rows
    }
}

/// CPU of the replicas that served at least one boot, summed; `None` when none has a reading.
pub fn serving_cpu_s(rows: &[ReplicaReport]) -> Option<f64> {
    let readings: Vec<f64> = rows
        .iter()
        .filter(|r| r.boots > 0)
        .filter_map(|r| r.cpu_s)
        .collect();
    (!readings.is_empty()).then(|| readings.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, role: Role, pid: Option<u32>) -> TargetReplica {
        TargetReplica {
            name: name.to_owned(),
            role,
            pid,
        }
    }

    #[test]
    fn our_own_process_is_read_and_an_unknown_pid_reports_null() {
        let me = std::process::id();
        let mut load = ServerLoad::start(&[
            target("learner-1", Role::Learner, Some(me)),
            target("voter-1", Role::Voter, None),
        ]);
        // Burn a little CPU so the second reading is not below the first.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        load.sample();
        let boots = BTreeMap::from([("learner-1".to_owned(), 10), ("learner-9".to_owned(), 3)]);
        let rows = load.rows(&boots);
        assert_eq!(rows.len(), 3, "{rows:?}");
        let learner = &rows[0];
        assert_eq!(learner.boots, 10);
        assert!(learner.cpu_s.is_some_and(|s| s >= 0.0), "{learner:?}");
        assert!(learner.rss_mib.is_some_and(|m| m > 0.0), "{learner:?}");
        assert!(learner.rss_peak_mib >= learner.rss_mib, "{learner:?}");
        let voter = &rows[1];
        assert_eq!((voter.cpu_s, voter.rss_mib, voter.boots), (None, None, 0));
        // A replica that served boots but is not watched is still listed.
        assert_eq!(rows[2].name, "learner-9");
        assert_eq!(rows[2].cpu_s, None);
        assert!(load.total_cpu_s().is_some());
        assert_eq!(serving_cpu_s(&rows), learner.cpu_s);
    }

    #[test]
    fn a_replica_no_longer_watched_keeps_its_last_reading() {
        let me = std::process::id();
        let mut load = ServerLoad::start(&[target("learner-1", Role::Learner, Some(me))]);
        load.last_reading("learner-1");
        let before = load.rows(&BTreeMap::new())[0].clone();
        load.sample();
        assert_eq!(load.rows(&BTreeMap::new())[0], before);
    }

    #[test]
    fn a_replica_started_during_the_run_counts_all_its_cpu() {
        // Use at least a few clock ticks of CPU first.
        let burn_until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut x = 0u64;
        while std::time::Instant::now() < burn_until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        let mut load = ServerLoad::default();
        load.add_started("learner-3", Role::Learner, Some(std::process::id()));
        let rows = load.rows(&BTreeMap::new());
        // All the CPU this process used since it started counts, not only what follows.
        assert!(rows[0].cpu_s.is_some_and(|s| s > 0.0), "{rows:?}");
    }

    #[test]
    fn no_pids_no_total() {
        let load = ServerLoad::start(&[target("voter-1", Role::Voter, None)]);
        assert_eq!(load.total_cpu_s(), None);
    }
}
