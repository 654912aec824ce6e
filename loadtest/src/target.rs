//! The cluster a workload runs against: either one this process spawns (`bootstorm dev`'s
//! `DevCluster` in a temporary directory, loopback only, a free port range, the `bootstorm`
//! binary next to ours) or a running cluster named by its client file.
//!
//! Invariants: a spawned cluster is stopped by PID (`DevCluster::stop`) on every path out of
//! a run — success, error and Ctrl-C; dropping it without `stop` still kills its replicas
//! (`kill_on_drop`). Its data directory is deleted unless `--keep-data`, or kept (and named)
//! when the run failed, so the replica logs can be read.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bootstorm::dev::{DevCluster, DevOptions, PORTS_PER_REPLICA_STRIDE};

use crate::cli::TargetPlan;
use crate::Interrupt;

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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks_per_s > 0).then(|| (utime + stime) as f64 / ticks_per_s as f64)
}

/// CPU seconds this process (the load generator) has used so far.
pub fn own_cpu_s() -> f64 {
    process_cpu_s(std::process::id()).unwrap_or(0.0)
}

/// Whether every port a cluster of `replicas` needs at `base` is free now (QUIC planes are UDP,
/// metrics is TCP: both are probed).
pub fn ports_free(base: u16, replicas: u16) -> bool {
    (0..replicas).all(|index| {
        (1..=4u16).all(|offset| {
            let Some(port) = index
                .checked_mul(PORTS_PER_REPLICA_STRIDE)
                .and_then(|p| p.checked_add(base))
                .and_then(|p| p.checked_add(offset))
            else {
                return false;
            };
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
                && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        })
    })
}

/// A base port whose whole range is free now, searched from a per-process offset so two load
/// tests started together do not race for the same range.
pub fn free_base_port(replicas: u16) -> Result<u16> {
    let seed = std::process::id() as u16;
    (0..300u16)
        .map(|attempt| 30_000 + (seed.wrapping_mul(13).wrapping_add(attempt * 61) % 300) * 100)
        .find(|base| ports_free(*base, replicas))
        .context("no free port range found for the spawned cluster; pass --base-port")
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
                    None => free_base_port(replicas)?,
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
