//! bootstorm-conf: the TOML files bootstorm reads — the replica's configuration file
//! (`bootstorm serve --config FILE`), the client cluster file (`--cluster FILE`, also what the
//! node agent reads) and the boot plane's limits ([`boot_limits`]): parsing, defaults and
//! validation.
//!
//! Must never: open a socket, read the clock, or depend on daemon code — the node agent links
//! this crate, so it stays serde + toml.
//!
//! Invariants: unknown keys are errors (a typo never silently falls back to a default); every
//! value is validated on load, and every error names the key and the file; relative paths are
//! resolved against the file's directory, so a data directory can be moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod boot_limits;

/// Whether the replica votes or only replicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Voter,
    Learner,
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid config: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

/// Listen addresses, one per plane. Each plane has its own port and ALPN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Raft plane (QUIC, mutual TLS with the cluster CA).
    pub raft: SocketAddr,
    /// Admin plane (QUIC, mutual TLS; the client cert names the commit author).
    pub admin: SocketAddr,
    /// Boot plane (QUIC, server-authenticated; client certs optional).
    pub boot: SocketAddr,
    /// Prometheus `/metrics` over plain HTTP; omit to disable.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Boot check plane (plain UDP, one signed datagram each way, `proto::check`): a rebooting
    /// node whose overlay is unchanged boots without a QUIC/TLS handshake. Signed with the boot
    /// plane's key (`tls.key`). Omit to disable; agents then always use the boot plane.
    #[serde(default)]
    pub check: Option<SocketAddr>,
}

/// PEM files of this replica's identity and the cluster CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A member of the initial voter set, used once to initialize a fresh cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub node_id: u64,
    pub name: String,
    pub raft: SocketAddr,
    pub admin: SocketAddr,
    pub boot: SocketAddr,
}

/// Raft timing and log policy. Defaults follow seed 002 (sub-second failover) and 004
/// (snapshot every 10,000 entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    /// Leader heartbeat period. openraft 0.9 also uses it as the AppendEntries timeout, which
    /// includes the follower's fsync: too small a value times out replication on a busy disk.
    pub heartbeat_interval_ms: u64,
    /// A follower starts an election after `election_timeout_max_ms` (openraft 0.9's leader
    /// lease: it also refuses votes for that long after hearing from a leader) plus a random
    /// `[min, max)` without a heartbeat. The defaults, 200–400 ms, make that 600–800 ms: six
    /// missed heartbeats before anyone campaigns, and a new leader within a second of a crash
    /// (measured in `tests/cluster_process.rs`). With 300–600 it was 0.9–1.2 s.
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_every_entries: u64,
    /// Keep this many applied entries in the log after a snapshot, for slow followers and so
    /// that a corrupt newest snapshot can fall back to the previous one plus the log (which
    /// needs a full snapshot interval of log: keep it ≥ `snapshot_every_entries`).
    pub max_in_snapshot_log_to_keep: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 200,
            election_timeout_max_ms: 400,
            snapshot_every_entries: 10_000,
            max_in_snapshot_log_to_keep: 10_000,
        }
    }
}

/// A replica's configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConf {
    /// Raft node id, unique in the cluster, > 0.
    pub node_id: u64,
    /// Human name, e.g. `voter-1`, `rack12-learner-a`.
    pub name: String,
    pub role: Role,
    /// Where the log, snapshots and state live.
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub tls: Tls,
    /// The initial voters. A voter listed here initializes the cluster on first start; a
    /// learner contacts them to be added.
    #[serde(default)]
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub raft: RaftTuning,
    #[serde(default)]
    pub boot: BootConf,
}

/// The boot plane's settings (`[boot]`): client-certificate policy and admission limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootConf {
    /// Refuse agents without a node certificate. With a certificate, an agent may fetch only
    /// for its own node id either way: its own delta and its own vCluster's base overlay.
    pub require_client_cert: bool,
    /// Admission and timeout limits (`[boot.limits]`); defaults measured on this machine.
    pub limits: crate::boot_limits::BootLimits,
    /// Threads serving the boot and check planes (1..=`BOOT_WORKER_THREADS_MAX`); default: one
    /// per core. Replicas sharing one machine should split its cores between them, as
    /// `bootstorm dev` does: measured with 3 voters + 2 learners on 2 cores, one thread each
    /// instead of two cut server CPU per cold boot by 13 % (fewer threads contending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
}

impl ReplicaConf {
    /// Reads, parses and validates a replica config; relative paths resolve against its dir.
    pub fn load(path: &Path) -> Result<ReplicaConf, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut conf: ReplicaConf = toml::from_str(&text).map_err(|source| ConfError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        conf.data_dir = base.join(&conf.data_dir);
        conf.tls.ca = base.join(&conf.tls.ca);
        conf.tls.cert = base.join(&conf.tls.cert);
        conf.tls.key = base.join(&conf.tls.key);
        conf.validate(path)?;
        Ok(conf)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfError> {
        let invalid = |key: &'static str, problem: String| ConfError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        };
        if self.node_id == 0 {
            return Err(invalid("node_id", "must be > 0".into()));
        }
        if let Err(reason) = config::validate::name(&self.name) {
            return Err(invalid("name", reason.into()));
        }
        let ports = [self.listen.raft, self.listen.admin, self.listen.boot];
        for (i, a) in ports.iter().enumerate() {
            if a.port() != 0 && ports[i + 1..].contains(a) {
                return Err(invalid(
                    "listen",
                    format!("{a} is used by two planes; each needs its own port"),
                ));
            }
        }
        if let Some(check) = self.listen.check {
            self.validate_check(check)
                .map_err(|problem| invalid("listen.check", problem))?;
        }
        let raft = &self.raft;
        if raft.heartbeat_interval_ms == 0 {
            return Err(invalid("raft.heartbeat_interval_ms", "must be > 0".into()));
        }
        if raft.election_timeout_min_ms <= raft.heartbeat_interval_ms {
            return Err(invalid(
                "raft.election_timeout_min_ms",
                "must be greater than raft.heartbeat_interval_ms".into(),
            ));
        }
        if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
            return Err(invalid(
                "raft.election_timeout_max_ms",
                "must be greater than raft.election_timeout_min_ms".into(),
            ));
        }
        if raft.snapshot_every_entries == 0 {
            return Err(invalid("raft.snapshot_every_entries", "must be > 0".into()));
        }
        let workers_max = crate::boot_limits::BOOT_WORKER_THREADS_MAX;
        if let Some(workers) = self.boot.worker_threads {
            if workers == 0 || workers > workers_max {
                return Err(invalid(
                    "boot.worker_threads",
                    format!(
                        "{workers} is outside 1..={workers_max}; leave it out for one per core"
                    ),
                ));
            }
        }
        let mut ids: Vec<u64> = self.peers.iter().map(|p| p.node_id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("peers", "two peers share a node_id".into()));
        }
        Ok(())
    }

    /// `listen.check`'s own rules: a port of its own, and no client-certificate requirement.
    /// Checked on load, and again by the daemon for configs built in code.
    pub fn validate_check(&self, check: SocketAddr) -> Result<(), String> {
        // The QUIC planes are UDP too: the same port on an overlapping address cannot bind.
        let overlaps = |other: SocketAddr| {
            check.port() != 0
                && check.port() == other.port()
                && (check.ip() == other.ip()
                    || check.ip().is_unspecified()
                    || other.ip().is_unspecified())
        };
        for (plane, addr) in [
            ("listen.raft", self.listen.raft),
            ("listen.admin", self.listen.admin),
            ("listen.boot", self.listen.boot),
        ] {
            if overlaps(addr) {
                return Err(format!(
                    "{check} is also {plane} ({addr}); the check plane needs its own UDP port"
                ));
            }
        }
        if self.boot.require_client_cert {
            return Err(
                "is set while boot.require_client_cert = true: a check datagram carries \
                 no client identity, so with client certificates required only the QUIC boot \
                 plane may serve boots; remove listen.check or the requirement"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One replica as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterReplica {
    pub name: String,
    pub role: Role,
    pub boot: SocketAddr,
    pub admin: SocketAddr,
    /// Boot check plane (UDP), when the replica answers checks (`listen.check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<SocketAddr>,
}

/// The client file: where the replicas are and which credentials to use. Written by
/// `bootstorm dev` as `DIR/cluster.toml`; read by every client command via `--cluster FILE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// CA that signed the replicas' certificates.
    pub ca: PathBuf,
    /// Admin client certificate and key (their CN is the commit author). Both or neither: a
    /// node's agent (`bootstorm fetch`) needs only `ca` and the replicas, and an initramfs
    /// must not carry an admin key, so an agent-only file leaves them out; admin commands then
    /// refuse with a message saying so.
    #[serde(default)]
    pub admin_cert: Option<PathBuf>,
    #[serde(default)]
    pub admin_key: Option<PathBuf>,
    /// Replicas in preference order (rack-local first).
    #[serde(rename = "replica")]
    pub replicas: Vec<ClusterReplica>,
}

impl ClusterFile {
    /// Reads and validates a cluster file; relative paths resolve against its directory.
    pub fn load(path: &Path) -> Result<ClusterFile, ConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut file: ClusterFile = toml::from_str(&text).map_err(|source| ConfError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.ca = base.join(&file.ca);
        file.admin_cert = file.admin_cert.map(|cert| base.join(cert));
        file.admin_key = file.admin_key.map(|key| base.join(key));
        if file.admin_cert.is_some() != file.admin_key.is_some() {
            return Err(ConfError::Invalid {
                path: path.to_owned(),
                key: if file.admin_cert.is_some() {
                    "admin_key"
                } else {
                    "admin_cert"
                },
                problem: "admin_cert and admin_key go together: give both, or neither for an agent-only cluster file".into(),
            });
        }
        if file.replicas.is_empty() {
            return Err(ConfError::Invalid {
                path: path.to_owned(),
                key: "replica",
                problem: "lists no replica; add at least one [[replica]] table".into(),
            });
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
node_id = 1
name = "voter-1"
role = "voter"
data_dir = "voter-1"

[listen]
raft = "127.0.0.1:7001"
admin = "127.0.0.1:7002"
boot = "127.0.0.1:7003"

[tls]
ca = "certs/ca.pem"
cert = "certs/voter-1.pem"
key = "certs/voter-1.key"

[[peers]]
node_id = 1
name = "voter-1"
raft = "127.0.0.1:7001"
admin = "127.0.0.1:7002"
boot = "127.0.0.1:7003"
"#;

    fn load_text(text: &str) -> Result<ReplicaConf, ConfError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.toml");
        std::fs::write(&path, text).unwrap();
        ReplicaConf::load(&path)
    }

    #[test]
    fn good_config_loads_with_defaults_and_resolved_paths() {
        let conf = load_text(GOOD).unwrap();
        assert_eq!(conf.role, Role::Voter);
        assert_eq!(conf.raft, RaftTuning::default());
        assert!(conf.tls.ca.is_absolute());
        assert!(conf.data_dir.ends_with("voter-1"));
    }

    #[test]
    fn a_typo_is_an_error_naming_the_key_and_line() {
        let text = GOOD.replace("role = \"voter\"", "roel = \"voter\"");
        let message = load_text(&text).unwrap_err().to_string();
        assert!(message.contains("roel"), "{message}");
        assert!(message.contains("line 4"), "{message}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let cases = [
            ("node_id = 1", "node_id = 0", "node_id"),
            ("name = \"voter-1\"", "name = \"voter 1\"", "name"),
            (
                "boot = \"127.0.0.1:7003\"\n\n",
                "boot = \"127.0.0.1:7002\"\n\n",
                "listen",
            ),
        ];
        for (from, to, key) in cases {
            let text = GOOD.replacen(from, to, 1);
            let message = load_text(&text).unwrap_err().to_string();
            assert!(message.contains(key), "{key}: {message}");
        }
        let text = format!("{GOOD}\n[raft]\nheartbeat_interval_ms = 500\n");
        let message = load_text(&text).unwrap_err().to_string();
        assert!(message.contains("election_timeout_min_ms"), "{message}");
    }

    #[test]
    fn boot_worker_threads_are_bounded_at_both_edges() {
        let max = crate::boot_limits::BOOT_WORKER_THREADS_MAX;
        let with =
            |workers: usize| load_text(&format!("{GOOD}\n[boot]\nworker_threads = {workers}\n"));
        assert_eq!(load_text(GOOD).unwrap().boot.worker_threads, None);
        assert_eq!(with(1).unwrap().boot.worker_threads, Some(1));
        assert_eq!(with(max).unwrap().boot.worker_threads, Some(max));
        for bad in [0, max + 1] {
            let message = with(bad).unwrap_err().to_string();
            assert!(message.contains("boot.worker_threads"), "{bad}: {message}");
        }
    }

    #[test]
    fn a_check_port_loads_and_is_optional() {
        assert_eq!(load_text(GOOD).unwrap().listen.check, None);
        let text = GOOD.replacen(
            "boot = \"127.0.0.1:7003\"\n\n",
            "boot = \"127.0.0.1:7003\"\ncheck = \"127.0.0.1:7005\"\n\n",
            1,
        );
        let conf = load_text(&text).unwrap();
        assert_eq!(conf.listen.check, Some("127.0.0.1:7005".parse().unwrap()));
    }

    #[test]
    fn a_check_port_shared_with_a_quic_plane_is_refused_naming_both_keys() {
        for (check, plane) in [
            ("127.0.0.1:7001", "listen.raft"),
            ("127.0.0.1:7002", "listen.admin"),
            ("127.0.0.1:7003", "listen.boot"),
            ("0.0.0.0:7003", "listen.boot"),
        ] {
            let text = GOOD.replacen(
                "boot = \"127.0.0.1:7003\"\n\n",
                &format!("boot = \"127.0.0.1:7003\"\ncheck = \"{check}\"\n\n"),
                1,
            );
            let message = load_text(&text).unwrap_err().to_string();
            assert!(message.contains("`listen.check`"), "{message}");
            assert!(message.contains(plane), "{plane}: {message}");
        }
    }

    #[test]
    fn a_check_port_with_client_certificates_required_is_refused() {
        let text = GOOD.replacen(
            "boot = \"127.0.0.1:7003\"\n\n",
            "boot = \"127.0.0.1:7003\"\ncheck = \"127.0.0.1:7005\"\n\n",
            1,
        ) + "\n[boot]\nrequire_client_cert = true\n";
        let message = load_text(&text).unwrap_err().to_string();
        assert!(message.contains("`listen.check`"), "{message}");
        assert!(message.contains("no client identity"), "{message}");
        assert!(
            message.contains("remove listen.check or the requirement"),
            "{message}"
        );
    }

    fn load_cluster(text: &str) -> Result<ClusterFile, ConfError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        ClusterFile::load(&path)
    }

    const REPLICA: &str =
        "[[replica]]\nname = \"learner-1\"\nrole = \"learner\"\nboot = \"127.0.0.1:7003\"\nadmin = \"127.0.0.1:7002\"\n";

    #[test]
    fn an_agent_only_cluster_file_needs_no_admin_credentials() {
        let file =
            load_cluster(&format!("ca = \"certs/ca.crt\"\n{REPLICA}")).expect("agent-only file");
        assert_eq!(file.admin_cert, None);
        assert_eq!(file.admin_key, None);
        assert_eq!(file.replicas.len(), 1);
        let full = load_cluster(&format!(
            "ca = \"ca.crt\"\nadmin_cert = \"a.crt\"\nadmin_key = \"a.key\"\n{REPLICA}"
        ))
        .expect("admin file");
        assert!(
            full.admin_cert.unwrap().ends_with("a.crt"),
            "resolved next to the file"
        );
    }

    #[test]
    fn an_admin_certificate_without_its_key_is_refused_naming_the_missing_key() {
        let error = load_cluster(&format!(
            "ca = \"ca.crt\"\nadmin_cert = \"a.crt\"\n{REPLICA}"
        ))
        .expect_err("half a credential");
        let message = error.to_string();
        assert!(message.contains("admin_key"), "{message}");
        assert!(message.contains("give both, or neither"), "{message}");
    }
}
