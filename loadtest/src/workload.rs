//! What the `commits` workload commits: small, realistic admin changes, deterministic in the
//! commit index. Most are node-scoped (one sysctl drop-in plus a setting on one node, the
//! typical hand-made change); every K-th is vCluster-scoped (a motd note plus a setting on a
//! demo vCluster, which makes the leader rebuild and re-propose that vCluster's overlay).
//!
//! Invariants: pure (no clock, no randomness: the index decides everything, the server sets
//! author and timestamp); repeated commits to one scope rewrite the same path and setting
//! key, so the folded per-node and per-vCluster config stays the same size however long the
//! run (the node config limit is 16 KiB).

use bytes::Bytes;
use config::{demo, FileSpec, NewEntry, Scope, StateDelta};

/// The file a node-scoped commit writes.
pub const NODE_FILE_PATH: &str = "/etc/sysctl.d/90-bootstorm-loadtest.conf";
/// The file a vCluster-scoped commit writes.
pub const VCLUSTER_FILE_PATH: &str = "/etc/motd.d/50-bootstorm-loadtest";
/// The setting every commit sets (to its index).
pub const SETTING_KEY: &str = "loadtest.revision";

/// Generates the entries of a `commits` run.
#[derive(Clone, Debug)]
pub struct CommitWorkload {
    /// Node-scoped commits go round-robin over node-0001 … node-`nodes`.
    pub nodes: u32,
    /// Every `vcluster_every`-th commit is vCluster-scoped; 0 for none.
    pub vcluster_every: u32,
}

impl CommitWorkload {
    /// The scope of commit `index`.
    pub fn scope(&self, index: u64) -> Scope {
        let every = u64::from(self.vcluster_every);
        if every > 0 && index % every == every - 1 {
            let vclusters = demo::DEMO_VCLUSTERS.len() as u64;
            let vcluster = demo::DEMO_VCLUSTERS[((index / every) % vclusters) as usize];
            return Scope::VCluster(vcluster.to_owned());
        }
        // Count node-scoped commits only, so the vCluster slots do not skip the same nodes
        // on every round (with 40 nodes and every 10th commit vCluster-scoped, node-0040
        // would never get a commit).
        let vcluster_commits_so_far = (index + 1).checked_div(every).unwrap_or(0);
        let node_ordinal = index - vcluster_commits_so_far;
        let nodes = u64::from(self.nodes.max(1));
        let node = 1 + (node_ordinal % nodes) as u32;
        Scope::Node(demo::node_name(node))
    }

    /// The entry commit `index` sends. Author and timestamp are placeholders: the server
    /// overwrites both (the certificate's identity, the leader's clock).
    pub fn entry(&self, index: u64) -> NewEntry {
        let scope = self.scope(index);
        let (path, content) = match &scope {
            Scope::VCluster(vcluster) => (
                VCLUSTER_FILE_PATH,
                format!(
                    "Maintenance note {index} for vCluster {vcluster}: scratch is purged on Sundays.\n"
                ),
            ),
            _ => (
                NODE_FILE_PATH,
                format!(
                    "# bootstorm-loadtest change {index}\nvm.swappiness = {}\nkernel.numa_balancing = 0\nnet.core.somaxconn = 4096\n",
                    index % 100
                ),
            ),
        };
        let mut delta = StateDelta::default();
        delta.files.insert(
            path.to_owned(),
            FileSpec {
                mode: 0o644,
                owner: None,
                content: Bytes::from(content),
            },
        );
        delta
            .settings
            .insert(SETTING_KEY.to_owned(), index.to_string());
        NewEntry::commit(scope, "bootstorm-loadtest", 0, delta)
    }
}
