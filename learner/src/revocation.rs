//! Certificate revocation on this replica: the journal's revoked set (`config::JournalState::
//! revoked`), applied through Raft like every command, becomes the `net::Revocations` that
//! every plane's handshake and open connections consult.
//!
//! Invariants:
//! - the set is filled from the recovered state before any plane serves ([`seed`]), so a
//!   restarted replica refuses what was revoked before it stopped;
//! - after that it follows the applied seq ([`follow`]): a revocation is in force on this
//!   replica as soon as it is applied here, and `crate::admission` closes the open connections
//!   it names;
//! - rebuilding costs nothing on an ordinary commit: the set only grows, so its length says
//!   whether it changed.

use config::{CertificateRole, JournalState, RevokedCertificate};
use net::{Revocations, RevokedSet, Role};
use raftstore::ReplicaReader;
use tokio_util::sync::CancellationToken;

/// `net`'s role for the journal's name of it.
pub fn net_role(role: CertificateRole) -> Role {
    match role {
        CertificateRole::Replica => Role::Replica,
        CertificateRole::Admin => Role::Admin,
        CertificateRole::Node => Role::Node,
        CertificateRole::Monitor => Role::Monitor,
    }
}

/// The journal's revocations as the planes check them.
pub fn revoked_set(state: &JournalState) -> RevokedSet {
    let mut serials = Vec::new();
    let mut names = Vec::new();
    for certificate in state.revoked.keys() {
        match certificate {
            RevokedCertificate::Serial(serial) => serials.push(serial.clone()),
            RevokedCertificate::Name { role, name } => names.push((net_role(*role), name.clone())),
        }
    }
    RevokedSet::new(serials, names)
}

/// Publishes the revocations of the state `reader` holds now; returns how many there are.
pub fn seed(reader: &ReplicaReader, revocations: &Revocations) -> usize {
    let state = reader.read();
    revocations.replace(revoked_set(&state.journal));
    state.journal.revoked.len()
}

/// Keeps `revocations` equal to the applied journal's until `stop`.
pub async fn follow(reader: ReplicaReader, revocations: Revocations, stop: CancellationToken) {
    let mut seq = reader.applied_seq();
    let mut published = seed(&reader, &revocations);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = seq.changed() => if changed.is_err() { return },
        }
        let count = reader.read().journal.revoked.len();
        if count != published {
            published = seed(&reader, &revocations);
            tracing::info!(revoked = published, "certificate revocations applied");
        }
    }
}
