//! The cluster a workload runs against: either one this process spawns (`bootstorm dev`'s
//! `DevCluster` in a temporary directory, loopback only, a free port range, the `bootstorm`
//! binary next to ours) or a running cluster named by its client file.
//!
//! Invariants: a spawned cluster is stopped by PID (`DevCluster::stop`) on every path out of
//! a run — success, error and Ctrl-C; dropping it without `stop` still kills its replicas
//! (`kill_on_drop`). Its data directory is deleted unless `--keep-data`, or kept (and named)
//! when the run failed, so the replica logs can be read.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use conf::{ClusterFile, Role};
use dev::{DevCluster, DevOptions};

use crate::args::TargetPlan;
use crate::interrupt::Interrupt;

/// The `bootstorm` binary to spawn replicas with: `explicit` (`--bootstorm-exe`,
/// `$BOOTSTORM_EXE`), else the one next to the running binary.
pub fn bootstorm_exe(explicit: Option<&Path>) -> Result<PathBuf> {
    let exe = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("locating the running binary")?
            .with_file_name("bootstorm"),
    };
    if !exe.is_file() {
        bail!(
            "the bootstorm binary was not found at {}: build it first with `cargo build --release -p bootstorm` (it must sit next to bootstorm-loadtest), or pass --bootstorm-exe PATH",
            exe.display()
        );
    }
    Ok(exe)
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`; `None` if
/// it is gone or unreadable.
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    proc_stat(pid).map(|stat| stat.cpu_s)
}

/// One reading of `/proc/PID/stat`: CPU used so far and when the process started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcStat {
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// Start time in clock ticks after boot: with the PID it names the process, so a PID the
    /// kernel reused for another process after ours died is not read as ours.
    pub start_ticks: u64,
}

/// Parses a `/proc/PID/stat` line with `ticks_per_s` clock ticks per second.
pub fn parse_proc_stat(stat: &str, ticks_per_s: f64) -> Option<ProcStat> {
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime, stime and starttime are fields 14, 15 and 22 of the line: 12, 13 and 20 after
    // the name (the first field after it is field 3).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    (ticks_per_s > 0.0).then(|| ProcStat {
        cpu_s: (utime + stime) as f64 / ticks_per_s,
        start_ticks,
    })
}

/// `/proc/PID/stat` of a process; `None` if it is gone or unreadable.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_proc_stat(&stat, ticks_per_s as f64)
}

/// Resident memory of a process from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryKib {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the highest resident size since the process started.
    pub rss_peak_kib: u64,
}

/// Parses the `VmRSS` and `VmHWM` lines of a `/proc/PID/status` text.
pub fn parse_proc_status_memory(status: &str) -> Option<MemoryKib> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(MemoryKib {
        rss_kib: field("VmRSS:")?,
        rss_peak_kib: field("VmHWM:")?,
    })
}

/// Resident memory of a process; `None` if it is gone or unreadable.
pub fn proc_memory(pid: u32) -> Option<MemoryKib> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_proc_status_memory(&status)
}

/// CPU seconds this process (the load generator) has used so far.
pub fn own_cpu_s() -> f64 {
    process_cpu_s(std::process::id()).unwrap_or(0.0)
}

/// One replica of a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetReplica {
    pub name: String,
    pub role: Role,
    /// Known when this process started it (`--spawn`) and it still runs.
    pub pid: Option<u32>,
}

/// A cluster a workload runs against.
pub enum Target {
    Spawned {
        cluster: DevCluster,
        /// The temporary data directory (deleted on drop unless persisted).
        data: tempfile::TempDir,
        keep_data: bool,
        description: String,
    },
    Existing {
        file: PathBuf,
    },
}

impl Target {
    /// Starts (`--spawn`) or names (`--cluster`) the target. A Ctrl-C during start abandons
    /// it: the replicas started so far are killed when the start future is dropped.
    pub async fn open(plan: &TargetPlan, interrupt: &Interrupt) -> Result<Target> {
        match plan {
            TargetPlan::Cluster { file } => {
                if !file.is_file() {
                    bail!("--cluster {}: no such file", file.display());
                }
                Ok(Target::Existing { file: file.clone() })
            }
            TargetPlan::Spawn {
                voters,
                learners,
                base_port,
                nodes,
                bootstorm_exe: exe,
                keep_data,
            } => {
                let exe = bootstorm_exe(exe.as_deref())?;
                let replicas = voters + learners;
                let base_port = match base_port {
                    Some(port) => *port,
                    None => dev::free_base_port(replicas).context(
                        "no free port range found for the spawned cluster; pass --base-port",
                    )?,
                };
                let data = tempfile::Builder::new()
                    .prefix("bootstorm-loadtest.")
                    .tempdir()
                    .context("creating the spawned cluster's data directory")?;
                let options = DevOptions {
                    data_dir: data.path().to_path_buf(),
                    voters: *voters,
                    learners: *learners,
                    base_port,
                    nodes: *nodes,
                    json: true,
                    exe,
                };
                eprintln!(
                    "starting a local cluster ({voters} voters, {learners} learners, {nodes} demo nodes) in {} on 127.0.0.1:{}..",
                    data.path().display(),
                    base_port
                );
                let started = tokio::select! {
                    started = DevCluster::start(&options) => started,
                    _ = interrupt.wait() => bail!("interrupted while the cluster was starting"),
                };
                let cluster = match started {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let kept = data.keep();
                        return Err(error.context(format!(
                            "starting the local cluster (replica logs kept in {})",
                            kept.display()
                        )));
                    }
                };
                Ok(Target::Spawned {
                    cluster,
                    data,
                    keep_data: *keep_data,
                    description: format!("spawned: {voters} voters, {learners} learners"),
                })
            }
        }
    }

    /// PIDs of the replicas this process started (none for `--cluster`), for CPU accounting.
    pub fn replica_pids(&mut self) -> Vec<u32> {
        match self {
            Target::Spawned { cluster, .. } => {
                let names: Vec<String> = cluster
                    .planned
                    .iter()
                    .map(|p| p.conf.name.clone())
                    .collect();
                names.iter().filter_map(|name| cluster.pid(name)).collect()
            }
            Target::Existing { .. } => Vec::new(),
        }
    }

    /// Every replica of the target with its PID when this process started it: the spawned
    /// cluster's replicas with PIDs, or the cluster file's replicas without (`--cluster`).
    pub fn replicas(&mut self) -> Result<Vec<TargetReplica>> {
        match self {
            Target::Spawned { cluster, .. } => {
                let planned: Vec<(String, Role)> = cluster
                    .planned
                    .iter()
                    .map(|p| (p.conf.name.clone(), p.conf.role))
                    .collect();
                Ok(planned
                    .into_iter()
                    .map(|(name, role)| TargetReplica {
                        pid: cluster.pid(&name),
                        name,
                        role,
                    })
                    .collect())
            }
            Target::Existing { file } => {
                let cluster = ClusterFile::load(file)
                    .with_context(|| format!("loading the cluster file {}", file.display()))?;
                Ok(cluster
                    .replicas
                    .into_iter()
                    .map(|r| TargetReplica {
                        name: r.name,
                        role: r.role,
                        pid: None,
                    })
                    .collect())
            }
        }
    }

    /// The cluster this process started (kills and additions need it); `None` for `--cluster`.
    pub fn dev_cluster(&mut self) -> Option<&mut DevCluster> {
        match self {
            Target::Spawned { cluster, .. } => Some(cluster),
            Target::Existing { .. } => None,
        }
    }

    /// The client file (`--cluster`) of the target.
    pub fn cluster_file(&self) -> &Path {
        match self {
            Target::Spawned { cluster, .. } => &cluster.cluster_path,
            Target::Existing { file } => file,
        }
    }

    /// `spawned: 3 voters, 0 learners` or `cluster: FILE`.
    pub fn description(&self) -> String {
        match self {
            Target::Spawned { description, .. } => description.clone(),
            Target::Existing { file } => format!("cluster: {}", file.display()),
        }
    }

    /// Stops a spawned cluster (by PID) and removes its data unless it is to be kept: asked
    /// for, or `failed` (the logs explain the failure). Nothing to do for `--cluster`.
    pub async fn close(self, failed: bool) {
        if let Target::Spawned {
            cluster,
            data,
            keep_data,
            ..
        } = self
        {
            cluster.stop().await;
            if keep_data || failed {
                let kept = data.keep();
                eprintln!(
                    "the spawned cluster's data and replica logs are kept in {}",
                    kept.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_whose_name_holds_spaces_and_parens_parses() {
        // Fields 14, 15 (utime, stime) = 250, 50 ticks; field 22 (starttime) = 123456.
        let line = "4242 (boot (storm) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 123456 1000000 2000 18446744073709551615";
        let stat = parse_proc_stat(line, 100.0).unwrap();
        assert_eq!(stat.cpu_s, 3.0);
        assert_eq!(stat.start_ticks, 123456);
        assert_eq!(parse_proc_stat("4242 (cut", 100.0), None);
    }

    #[test]
    fn status_memory_lines_parse_in_kib() {
        let status = "Name:\tbootstorm\nVmPeak:\t  900000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   70000 kB\nThreads:\t5\n";
        assert_eq!(
            parse_proc_status_memory(status),
            Some(MemoryKib {
                rss_kib: 70_000,
                rss_peak_kib: 81_234
            })
        );
        // A zombie has no memory lines.
        assert_eq!(parse_proc_status_memory("Name:\tx\nState:\tZ\n"), None);
    }

    #[test]
    fn our_own_process_reads() {
        let me = std::process::id();
        assert!(proc_stat(me).is_some_and(|s| s.start_ticks > 0));
        assert!(proc_memory(me).is_some_and(|m| m.rss_kib > 0 && m.rss_peak_kib >= m.rss_kib));
    }
}
