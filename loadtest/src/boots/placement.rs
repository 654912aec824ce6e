//! Where each simulated node boots from and as whom, as a site would have it: simulated node
//! `i` (0-based) boots as registered node `node-{1 + i mod K}`, from learner `i mod L` first
//! (its rack's), then the other learners, then the voters; without learners from replica
//! `i mod R` first. In `mixed` mode a hash of `i` decides whether it holds its overlay.
//!
//! Invariants: pure and deterministic (the same index always makes the same choice, so runs
//! compare); every failover order lists every replica exactly once.

use conf::Role;

use super::plan::BootMode;

/// The registered node (1-based demo index) simulated node `boot_index` boots as.
pub fn node_index(boot_index: u64, target_nodes: u32) -> u32 {
    1 + (boot_index % u64::from(target_nodes.max(1))) as u32
}

/// Whether simulated node `boot_index` holds its overlay in `mode` (mixed: a hash of the
/// index decides, so the choice does not follow the node's vCluster, which alternates).
pub fn holds_overlay(mode: BootMode, boot_index: u64) -> bool {
    match mode {
        BootMode::Cold => false,
        BootMode::Reboot => true,
        BootMode::Mixed => splitmix64(boot_index) & 1 == 0,
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The failover orders ("racks"): one per learner, the learner first, then the other learners
/// in order after it, then the voters; without learners one per replica, rotated. Simulated
/// node `i` uses order `i mod orders.len()`. Indexes into `roles`.
pub fn failover_orders(roles: &[Role]) -> Vec<Vec<usize>> {
    let learners: Vec<usize> = (0..roles.len())
        .filter(|&i| roles[i] == Role::Learner)
        .collect();
    let voters: Vec<usize> = (0..roles.len())
        .filter(|&i| roles[i] != Role::Learner)
        .collect();
    let rotate = |list: &[usize], first: usize| -> Vec<usize> {
        (0..list.len())
            .map(|k| list[(first + k) % list.len()])
            .collect()
    };
    if learners.is_empty() {
        return (0..voters.len()).map(|r| rotate(&voters, r)).collect();
    }
    (0..learners.len())
        .map(|r| {
            let mut order = rotate(&learners, r);
            order.extend(&voters);
            order
        })
        .collect()
}
