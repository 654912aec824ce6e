//! The simulated agents of a storm and what they learn before it: one `BootClient` per
//! failover order (its own UDP endpoint, shared by the boots that start from that rack's
//! replica), the overlays' hashes and bytes (one cold fetch per demo vCluster), and the
//! replica certificates a rebooting node keeps in its state file. [`AgentMaker`] makes them
//! again when a learner joins mid-storm.
//!
//! Invariants: every agent verifies what it fetches (blake3, or a byte comparison against an
//! overlay already verified in this run, `VerifiedBases`); agents are only added, never
//! dropped before the storm ends (boots in flight keep theirs); failover orders come from
//! `placement`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use conf::{ClusterFile, ClusterReplica, Role};
use config::demo;
use proto::client::{BootClient, ClientConfig, ClientTls, Replica, VerifiedBases};
use proto::Hash;

use super::placement::failover_orders;
use crate::limits::PREFETCH_NODES_MAX;

/// Loads the cluster file at `path` and the CA it names: the replicas and the trust the
/// agents are made from.
pub fn load_cluster(path: &Path) -> Result<(ClusterFile, Vec<u8>)> {
    let cluster_file = ClusterFile::load(path)
        .with_context(|| format!("loading the cluster file {}", path.display()))?;
    let ca_pem = std::fs::read(&cluster_file.ca)
        .with_context(|| format!("reading the cluster CA {}", cluster_file.ca.display()))?;
    Ok((cluster_file, ca_pem))
}

/// Makes the storm's agents: over the cluster file's replicas at the start, and over them and
/// every learner added since when one joins.
pub struct AgentMaker {
    ca_pem: Vec<u8>,
    /// The cluster file's replicas, then the learners added mid-storm, in order.
    replicas: Mutex<Vec<ClusterReplica>>,
    boot_check: bool,
    verified: Option<Arc<VerifiedBases>>,
}

impl AgentMaker {
    pub fn new(
        ca_pem: Vec<u8>,
        replicas: Vec<ClusterReplica>,
        boot_check: bool,
        verified: Option<Arc<VerifiedBases>>,
    ) -> AgentMaker {
        AgentMaker {
            ca_pem,
            replicas: Mutex::new(replicas),
            boot_check,
            verified,
        }
    }

    /// One agent per failover order over the replicas known now.
    pub fn agents(&self) -> Result<Vec<Arc<BootClient>>> {
        let replicas = self.replicas.lock().expect("the replicas lock");
        agents(
            &self.ca_pem,
            &replicas,
            self.boot_check,
            self.verified.as_ref(),
        )
    }

    /// Adds a learner that joined and makes the agents that list it.
    pub fn with_added(&self, replica: ClusterReplica) -> Result<Vec<Arc<BootClient>>> {
        self.replicas
            .lock()
            .expect("the replicas lock")
            .push(replica);
        self.agents()
    }
}

/// One agent per failover order (each with its own UDP endpoint, shared by the boots that
/// start from that replica) over `replicas`.
/// With `boot_check` false the agents ignore the replicas' check addresses; every agent
/// shares `verified` (see `BootsPlan::verify_every_boot`).
fn agents(
    ca_pem: &[u8],
    replicas: &[ClusterReplica],
    boot_check: bool,
    verified: Option<&Arc<VerifiedBases>>,
) -> Result<Vec<Arc<BootClient>>> {
    let roles: Vec<Role> = replicas.iter().map(|r| r.role).collect();
    let orders = failover_orders(&roles);
    if orders.is_empty() {
        bail!("the cluster file lists no replica");
    }
    orders
        .iter()
        .map(|order| {
            let replicas = order
                .iter()
                .map(|&i| {
                    let r = &replicas[i];
                    Replica {
                        name: r.name.clone(),
                        addr: r.boot,
                        server_name: r.name.clone(),
                        check_addr: r.check.filter(|_| boot_check),
                    }
                })
                .collect();
            let tls = ClientTls::from_pem(ca_pem, None).context("building the agent's TLS")?;
            let mut config = ClientConfig::new(replicas, tls);
            config.verified_bases = verified.cloned();
            let client = BootClient::new(config).context("creating a boot agent")?;
            Ok(Arc::new(client))
        })
        .collect()
}

/// Overlays learned before the measured phase: hash and compressed bytes per vCluster.
pub struct Prefetched {
    pub hashes: BTreeMap<String, Hash>,
    pub compressed: BTreeMap<String, Bytes>,
}

pub async fn prefetch(agent: &BootClient, target_nodes: u32) -> Result<Prefetched> {
    let mut hashes = BTreeMap::new();
    let mut compressed = BTreeMap::new();
    for index in 1..=target_nodes.min(PREFETCH_NODES_MAX) {
        if demo::DEMO_VCLUSTERS
            .iter()
            .all(|vc| hashes.contains_key(*vc))
        {
            break;
        }
        let node = demo::node_name(index);
        let outcome = agent.fetch(&node, None, None).await.with_context(|| {
            format!("the first boot (of {node}, before the measured phase) failed")
        })?;
        if let proto::client::BaseOutcome::Fetched(base) = &outcome.base {
            hashes.insert(base.vcluster.clone(), base.hash);
            compressed.insert(base.vcluster.clone(), base.compressed.clone());
        }
    }
    Ok(Prefetched { hashes, compressed })
}

/// A rebooting node holds, from its previous boot, its overlay's hash (the prefetch) and the
/// certificates of the replicas it booted from (its state file), which boot checks are
/// verified with. Gives every agent that: one full fetch through each agent (its rack-local
/// replica's certificate, verified in the TLS handshake), then every certificate learned to
/// every agent (each verified against the CA again).
pub async fn learn_replica_certs(agents: &[Arc<BootClient>]) -> Result<()> {
    let node = demo::node_name(1);
    for agent in agents {
        agent.fetch(&node, None, None).await.with_context(|| {
            format!("the certificate-learning boot of {node} (before the measured phase) failed")
        })?;
    }
    let learned: Vec<(String, Vec<u8>)> = agents.iter().flat_map(|a| a.replica_certs()).collect();
    for agent in agents {
        for (server_name, der) in &learned {
            agent
                .remember_replica_cert(server_name, der.clone())
                .map_err(|reason| anyhow::anyhow!("sharing replica certificates: {reason}"))?;
        }
    }
    Ok(())
}
