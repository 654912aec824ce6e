//! Revoked certificates as every plane's handshake sees them: a set of x509 serials and of
//! (role, CN) pairs, shared between the daemon (which fills it from the journal it applied)
//! and the client-certificate verifiers and open connections of its planes (which read it).
//!
//! This crate knows nothing of the journal: the daemon translates its revocations into a
//! [`RevokedSet`] and publishes it with [`Revocations::replace`].
//!
//! Invariants:
//! - a certificate is refused when its serial is in the set, or its role and CN are;
//! - a reader never waits for a writer longer than one `Arc` clone (a `watch` channel's lock),
//!   so a handshake is never slowed by an update;
//! - subscribers are told of every change ([`Revocations::subscribe`]): open connections of a
//!   newly revoked identity are closed by whoever holds them, not only new handshakes refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio::sync::watch;

use crate::identity::Role;
use crate::material::{cert_identity, cert_serial_hex, PeerIdentity};

/// What is revoked, at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevokedSet {
    /// Canonical hex serials (lower case, no leading zeros: `material::canonical_serial_hex`).
    serials: BTreeSet<String>,
    /// Every certificate of this role with this CN.
    names: BTreeSet<(Role, String)>,
}

impl RevokedSet {
    /// The set of these serials (canonical hex) and (role, CN) pairs.
    pub fn new(
        serials: impl IntoIterator<Item = String>,
        names: impl IntoIterator<Item = (Role, String)>,
    ) -> Self {
        RevokedSet {
            serials: serials.into_iter().collect(),
            names: names.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.serials.is_empty() && self.names.is_empty()
    }

    /// Why a certificate of `identity` with `serial` is revoked, or `None` if it is not.
    pub fn refusal(&self, identity: &PeerIdentity, serial: &str) -> Option<String> {
        if self.serials.contains(serial) {
            return Some(format!(
                "the {identity} certificate with serial {serial} is revoked"
            ));
        }
        let key = (identity.role, identity.name.clone());
        self.names.contains(&key).then(|| {
            format!(
                "every {} certificate named {:?} is revoked",
                identity.role, identity.name
            )
        })
    }

    /// [`Self::refusal`] for a DER certificate; an unparsable one is refused.
    pub fn refusal_of_cert(&self, cert: &CertificateDer<'_>) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let identity = match cert_identity(cert) {
            Ok(identity) => identity,
            Err(e) => return Some(e.to_string()),
        };
        match cert_serial_hex(cert) {
            Ok(serial) => self.refusal(&identity, &serial),
            Err(e) => Some(e.to_string()),
        }
    }
}

/// The current [`RevokedSet`], shared: cheap to clone, read on every handshake, replaced by
/// the daemon when its journal's revocations change.
#[derive(Clone, Debug)]
pub struct Revocations {
    current: Arc<watch::Sender<Arc<RevokedSet>>>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            current: Arc::new(watch::Sender::new(Arc::new(RevokedSet::default()))),
        }
    }
}

impl Revocations {
    /// The set as it is now.
    pub fn current(&self) -> Arc<RevokedSet> {
        self.current.borrow().clone()
    }

    /// Publishes `set`; subscribers are woken only when it differs from the current one.
    pub fn replace(&self, set: RevokedSet) {
        self.current.send_if_modified(|current| {
            if **current == set {
                return false;
            }
            *current = Arc::new(set);
            true
        });
    }

    /// A receiver that is marked changed at every new set.
    pub fn subscribe(&self) -> watch::Receiver<Arc<RevokedSet>> {
        self.current.subscribe()
    }
}
