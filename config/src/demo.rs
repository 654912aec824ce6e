//! A deterministic demo journal: what `bootstorm dev`, the tests, the benches and the docs use.
//!
//! Two vClusters, `compute` and `gpu`; nodes `node-0001` … `node-NNNN` (odd → compute,
//! even → gpu); realistic files (hosts, sshd, chrony, systemd units, slurm-like configs) plus a
//! few binary blobs (firmware, a tuning library) so each vCluster's overlay is 100–200 KB after
//! zstd, as in seed 001. Every 100th node carries a committed manual change (phase 2).
//!
//! Invariant: the same `DemoSpec` yields the same commands, byte for byte (the blobs come from a
//! fixed-seed generator, never from the OS), so every replica and test sees the same journal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;

use crate::{
    apply, FileSpec, JournalCommand, JournalState, NewEntry, NodeState, NodeStatus, Scope,
    StateDelta, VClusterPolicy,
};

/// The author recorded on demo entries.
pub const DEMO_AUTHOR: &str = "bootstorm-demo";

/// The demo's vClusters: odd nodes boot into the first, even nodes into the second.
pub const DEMO_VCLUSTERS: [&str; 2] = ["compute", "gpu"];

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoSpec {
    /// Number of nodes, `node-0001` … (at least 1).
    pub nodes: u32,
    /// Timestamp of the first entry; each later command is 1 ms later.
    pub timestamp_ms: u64,
}

impl Default for DemoSpec {
    fn default() -> Self {
        DemoSpec {
            nodes: 1000,
            // 2026-01-01T00:00:00Z: fixed so the demo journal is reproducible.
            timestamp_ms: 1_767_225_600_000,
        }
    }
}

/// The name of demo node `index` (1-based): `node-0001`.
pub fn node_name(index: u32) -> String {
    format!("node-{index:04}")
}

/// The vCluster demo node `index` (1-based) boots into.
pub fn vcluster_of(index: u32) -> &'static str {
    DEMO_VCLUSTERS[((index + 1) % 2) as usize]
}

/// The demo journal as commands, in proposal order.
pub fn demo_commands(spec: &DemoSpec) -> Vec<JournalCommand> {
    assert!(spec.nodes >= 1, "the demo needs at least one node");
    let mut clock = spec.timestamp_ms;
    let mut tick = || {
        clock += 1;
        clock
    };
    let mut commands = Vec::new();

    commands.push(JournalCommand::SetPolicy {
        vcluster_id: "compute".into(),
        policy: VClusterPolicy {
            description: "CPU partition: dense 2-socket nodes".into(),
            auto_converge: true,
            settings: settings(&[
                ("image", "rocky9-compute-2026.11"),
                ("slurm.partition", "compute"),
            ]),
        },
        author: DEMO_AUTHOR.into(),
        timestamp_ms: tick(),
    });
    commands.push(JournalCommand::SetPolicy {
        vcluster_id: "gpu".into(),
        policy: VClusterPolicy {
            description: "GPU partition: 4 accelerators per node".into(),
            auto_converge: false,
            settings: settings(&[("image", "rocky9-gpu-2026.11"), ("slurm.partition", "gpu")]),
        },
        author: DEMO_AUTHOR.into(),
        timestamp_ms: tick(),
    });
    for index in 1..=spec.nodes {
        commands.push(JournalCommand::UpdateNodeState {
            node_id: node_name(index),
            state: NodeState {
                vcluster: vcluster_of(index).into(),
                status: NodeStatus::Committed,
            },
            author: DEMO_AUTHOR.into(),
            timestamp_ms: tick(),
        });
    }

    let commit = |scope: Scope, timestamp_ms: u64, delta: StateDelta| {
        JournalCommand::AppendEntry(NewEntry::commit(scope, DEMO_AUTHOR, timestamp_ms, delta))
    };
    commands.push(commit(Scope::Global, tick(), global_base(spec.nodes)));
    commands.push(commit(Scope::Global, tick(), global_firmware()));
    commands.push(commit(
        Scope::VCluster("compute".into()),
        tick(),
        compute_delta(spec.nodes),
    ));
    commands.push(commit(
        Scope::VCluster("gpu".into()),
        tick(),
        gpu_delta(spec.nodes),
    ));
    for index in (1..=spec.nodes).filter(|index| index % 100 == 1) {
        commands.push(commit(
            Scope::Node(node_name(index)),
            tick(),
            node_manual_change(index),
        ));
    }
    commands
}

/// The demo journal applied to an empty state.
pub fn demo_state(spec: &DemoSpec) -> JournalState {
    let mut state = JournalState::new();
    for command in demo_commands(spec) {
        apply(&mut state, command).expect("the demo journal is valid by construction");
    }
    state
}

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn file(mode: u32, content: impl Into<Bytes>) -> FileSpec {
    FileSpec {
        mode,
        owner: Some("root:root".into()),
        content: content.into(),
    }
}

/// Deterministic pseudo-random bytes (splitmix64): stands in for firmware and binaries, which
/// zstd cannot shrink much — that is what makes the overlays realistically sized.
fn blob(seed: u64, len_bytes: usize) -> Bytes {
    let mut state = seed;
    let mut out = Vec::with_capacity(len_bytes + 8);
    while out.len() < len_bytes {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len_bytes);
    Bytes::from(out)
}

fn hosts_file(nodes: u32) -> String {
    let mut hosts = String::from(
        "127.0.0.1   localhost\n::1         localhost\n10.0.0.1    mgmt-01\n10.0.0.2    mgmt-02\n10.0.0.3    mgmt-03\n",
    );
    for index in 1..=nodes {
        let (high, low) = (index / 250, index % 250);
        let _ = writeln!(
            hosts,
            "10.1.{high}.{low:<3} {name} {name}.{vc}.site.example",
            name = node_name(index),
            vc = vcluster_of(index),
        );
    }
    hosts
}

fn global_base(nodes: u32) -> StateDelta {
    let mut delta = StateDelta::default();
    delta
        .files
        .insert("/etc/hosts".into(), file(0o644, hosts_file(nodes)));
    delta.files.insert(
        "/etc/resolv.conf".into(),
        file(0o644, "search site.example\nnameserver 10.0.0.53\nnameserver 10.0.1.53\noptions timeout:1 attempts:2\n"),
    );
    delta.files.insert(
        "/etc/chrony.conf".into(),
        file(0o644, "server 10.0.0.1 iburst\nserver 10.0.0.2 iburst\nserver 10.0.0.3 iburst\ndriftfile /var/lib/chrony/drift\nmakestep 1.0 3\nrtcsync\nlogdir /var/log/chrony\n"),
    );
    delta.files.insert(
        "/etc/ssh/sshd_config".into(),
        file(0o600, "Port 22\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding no\nAllowAgentForwarding no\nClientAliveInterval 300\nClientAliveCountMax 2\nSubsystem sftp /usr/libexec/openssh/sftp-server\nTrustedUserCAKeys /etc/ssh/site_user_ca.pub\n"),
    );
    delta.files.insert(
        "/etc/motd".into(),
        file(0o644, "This node is managed by bootstorm. Manual changes are reverted at boot unless committed.\n"),
    );
    delta.files.insert(
        "/etc/systemd/system/node-exporter.service".into(),
        file(0o644, "[Unit]\nDescription=Prometheus node exporter\nAfter=network-online.target\n\n[Service]\nExecStart=/usr/bin/node_exporter --web.listen-address=:9100\nRestart=always\nUser=nobody\n\n[Install]\nWantedBy=multi-user.target\n"),
    );
    delta.settings = settings(&[
        ("dns.search", "site.example"),
        ("ntp.servers", "10.0.0.1,10.0.0.2,10.0.0.3"),
        ("site.name", "demo-site"),
        ("syslog.target", "10.0.0.5:514"),
    ]);
    delta
}

fn global_firmware() -> StateDelta {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/usr/lib/firmware/site/bmc-2.14.bin".into(),
        file(0o644, blob(0xB3C_0001, 96 * 1024)),
    );
    delta.files.insert(
        "/etc/ssh/site_user_ca.pub".into(),
        file(0o644, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoSiteUserCaKeyDoNotUseInProductionXYZ site-user-ca\n"),
    );
    delta
}

fn slurm_conf(nodes: u32, partition: &str) -> String {
    let mut conf = format!(
        "ClusterName=demo\nSlurmctldHost=mgmt-01\nSlurmctldHost=mgmt-02\nAuthType=auth/munge\nProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup,task/affinity\nSchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\nPartitionName={partition} Default=YES MaxTime=INFINITE State=UP\n"
    );
    for index in (1..=nodes).filter(|index| vcluster_of(*index) == partition) {
        let _ = writeln!(
            conf,
            "NodeName={} CPUs=128 Boards=1 SocketsPerBoard=2 CoresPerSocket=32 ThreadsPerCore=2 RealMemory=515000 State=UNKNOWN",
            node_name(index)
        );
    }
    conf
}

fn compute_delta(nodes: u32) -> StateDelta {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/slurm/slurm.conf".into(),
        file(0o644, slurm_conf(nodes, "compute")),
    );
    delta.files.insert(
        "/etc/systemd/system/slurmd.service".into(),
        file(0o644, "[Unit]\nDescription=Slurm node daemon\nAfter=munge.service network-online.target\n\n[Service]\nType=notify\nExecStart=/usr/sbin/slurmd --systemd\nLimitMEMLOCK=infinity\nLimitSTACK=infinity\n\n[Install]\nWantedBy=multi-user.target\n"),
    );
    delta.files.insert(
        "/etc/sysctl.d/90-hpc.conf".into(),
        file(0o644, "vm.swappiness = 1\nvm.zone_reclaim_mode = 0\nkernel.numa_balancing = 0\nnet.core.rmem_max = 16777216\nnet.core.wmem_max = 16777216\n"),
    );
    delta.files.insert(
        "/opt/site/lib/libcompute-tune.so".into(),
        file(0o755, blob(0xC0_4E07, 32 * 1024)),
    );
    delta.settings = settings(&[("cpu.governor", "performance"), ("hugepages.2m", "0")]);
    delta
}

fn gpu_delta(nodes: u32) -> StateDelta {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/slurm/slurm.conf".into(),
        file(0o644, slurm_conf(nodes, "gpu")),
    );
    delta.files.insert(
        "/etc/slurm/gres.conf".into(),
        file(
            0o644,
            "AutoDetect=nvml\nName=gpu Type=h100 File=/dev/nvidia[0-3]\n",
        ),
    );
    delta.files.insert(
        "/etc/systemd/system/nvidia-persistenced.service".into(),
        file(0o644, "[Unit]\nDescription=NVIDIA persistence daemon\n\n[Service]\nType=forking\nExecStart=/usr/bin/nvidia-persistenced --user root\nExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced\n\n[Install]\nWantedBy=multi-user.target\n"),
    );
    delta.files.insert(
        "/usr/lib/firmware/nvidia/gsp-550.bin".into(),
        file(0o644, blob(0x6B5_0550, 64 * 1024)),
    );
    delta.settings = settings(&[
        ("cpu.governor", "performance"),
        ("hugepages.2m", "4096"),
        ("gpu.mig", "disabled"),
    ]);
    delta
}

fn node_manual_change(index: u32) -> StateDelta {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/motd.d/50-maintenance".into(),
        file(
            0o644,
            format!(
                "{}: DIMM B3 replaced 2026-10-12, watch for ECC errors\n",
                node_name(index)
            ),
        ),
    );
    delta.settings = settings(&[("kernel.cmdline.extra", "edac_core.edac_mc_panic_on_ue=1")]);
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_is_deterministic_and_valid() {
        let spec = DemoSpec::default();
        assert_eq!(demo_commands(&spec), demo_commands(&spec));
        let state = demo_state(&spec);
        assert_eq!(state.node_states.len(), 1000);
        assert_eq!(state.policies.len(), 2);
        assert_eq!(state.node_states["node-0001"].vcluster, "compute");
        assert_eq!(state.node_states["node-0002"].vcluster, "gpu");
        let manual = state.scope_config(&Scope::Node("node-0101".into()));
        assert!(manual.files.contains_key("/etc/motd.d/50-maintenance"));
        for vcluster in DEMO_VCLUSTERS {
            let config = state.vcluster_config(vcluster);
            assert!(config.files.contains_key("/etc/hosts"));
            assert!(config.files.contains_key("/etc/slurm/slurm.conf"));
        }
    }
}
