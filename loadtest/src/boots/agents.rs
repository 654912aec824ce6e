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
use crate::limits::{AGENT_SOURCES_MAX, PREFETCH_NODES_MAX};
use conf::boot_limits::BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT;

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
    /// Loopback source addresses the agents are spread over ([`agent_sources`]).
    sources: u32,
}

/// Loopback source addresses (127.0.0.1, .2, …) the agents of a storm with `in_flight` boots
/// at once are spread over, so that no address has more boots in flight than a replica
/// admits from one source (`BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT`, with room for
/// failovers), as a site's nodes each have their own address. 1 (no binding) unless every
/// replica is on an IPv4 loopback address.
pub fn agent_sources(replicas: &[ClusterReplica], in_flight: u32) -> u32 {
    if !replicas
        .iter()
        .all(|r| r.boot.ip().is_loopback() && r.boot.is_ipv4())
    {
        return 1;
    }
    let per_source = (BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT as u32 / 2).max(1);
    in_flight.div_ceil(per_source).clamp(1, AGENT_SOURCES_MAX)
}

impl AgentMaker {
    pub fn new(
        ca_pem: Vec<u8>,
        replicas: Vec<ClusterReplica>,
        boot_check: bool,
        verified: Option<Arc<VerifiedBases>>,
        sources: u32,
    ) -> AgentMaker {
        AgentMaker {
            ca_pem,
            replicas: Mutex::new(replicas),
            boot_check,
            verified,
            sources,
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
            self.sources,
        )
    }

    /// The agents' TLS (the cluster CA, no client certificate).
    pub fn tls(&self) -> Result<ClientTls> {
        ClientTls::from_pem(&self.ca_pem, None).context("building the agent's TLS")
    }

    /// The replicas known now.
    pub fn replicas(&self) -> Vec<ClusterReplica> {
        self.replicas.lock().expect("the replicas lock").clone()
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

/// One agent per failover order and source address (each with its own UDP endpoint, shared by
/// the boots that start from that replica) over `replicas`: agent `k` has order `k mod L`
/// and binds 127.0.0.`1 + k / L` when `sources` > 1, so boot `i` (agent `i mod L·S`) still
/// starts from replica `i mod L`.
/// With `boot_check` false the agents ignore the replicas' check addresses; every agent
/// shares `verified` (see `BootsPlan::verify_every_boot`).
fn agents(
    ca_pem: &[u8],
    replicas: &[ClusterReplica],
    boot_check: bool,
    verified: Option<&Arc<VerifiedBases>>,
    sources: u32,
) -> Result<Vec<Arc<BootClient>>> {
    let roles: Vec<Role> = replicas.iter().map(|r| r.role).collect();
    let orders = failover_orders(&roles);
    if orders.is_empty() {
        bail!("the cluster file lists no replica");
    }
    let agents = orders.len() * sources as usize;
    (0..agents)
        .map(|k| {
            let order = &orders[k % orders.len()];
            let source = (k / orders.len()) as u8;
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
            if sources > 1 {
                config.bind = Some((std::net::Ipv4Addr::new(127, 0, 0, 1 + source), 0).into());
            }
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
