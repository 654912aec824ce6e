//! Certificate expiry: when a certificate this process holds stops being valid (its X.509
//! `notAfter`), and how much time is left at a moment the caller names.
//!
//! Invariants:
//! - pure: nothing here reads a clock or a file; `now` is always a parameter, so a table of
//!   fixed certificates and times pins the behaviour (daemon: `bootstorm::metrics` samples it);
//! - `notAfter` is the last valid second (RFC 5280 §4.1.2.5: inclusive): at `now ==
//!   not_after` a certificate is still valid, one second later it is expired.

use rustls_pki_types::CertificateDer;

use crate::error::TlsError;
use crate::identity::Role;

/// A certificate expiring within this many days (inclusive) is warned about: by the daemon
/// at startup and once a day, and by `bootstorm status` next to the replica.
pub const CERT_EXPIRY_WARNING_DAYS: i64 = 30;

const SECONDS_PER_DAY: i64 = 86_400;

/// What a held certificate is to the process holding it (the metric's `cert` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// The cluster CA every peer is checked against.
    Ca,
    /// The process's own certificate, with the role its OU names.
    Own(Role),
}

impl CertRole {
    /// `ca`, or the role's name (`replica`, `admin`, …).
    pub fn label(self) -> &'static str {
        match self {
            CertRole::Ca => "ca",
            CertRole::Own(role) => role.file_prefix(),
        }
    }
}

/// Where one certificate stands at some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryState {
    /// More than [`CERT_EXPIRY_WARNING_DAYS`] left.
    Valid,
    /// Still valid, but within [`CERT_EXPIRY_WARNING_DAYS`] of its `notAfter` (inclusive).
    ExpiresSoon,
    /// Past its `notAfter`.
    Expired,
}

/// The expiry of one identity: a certificate's subject CN, what it is, and its `notAfter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertExpiry {
    /// The subject CN (replica name, admin name, or the CA's name).
    pub name: String,
    pub role: CertRole,
    /// `notAfter`, seconds since the Unix epoch (negative before 1970, never in practice).
    pub not_after_unix_s: i64,
}

impl CertExpiry {
    /// Reads CN and `notAfter` off a DER certificate held as `role`.
    pub fn of_cert(cert: &CertificateDer<'_>, role: CertRole) -> Result<Self, TlsError> {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::PeerCert {
                reason: format!("cannot parse the certificate: {e}"),
            })?;
        let name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok(CertExpiry {
            name,
            role,
            not_after_unix_s: parsed.validity().not_after.timestamp(),
        })
    }

    /// Seconds from `now_unix_s` to `notAfter`: negative once expired.
    pub fn seconds_left(&self, now_unix_s: i64) -> i64 {
        self.not_after_unix_s.saturating_sub(now_unix_s)
    }

    /// Whole days left (rounded down; `-1` for a certificate expired less than a day ago).
    pub fn days_left(&self, now_unix_s: i64) -> i64 {
        self.seconds_left(now_unix_s).div_euclid(SECONDS_PER_DAY)
    }

    /// Valid, expiring within [`CERT_EXPIRY_WARNING_DAYS`], or expired, at `now_unix_s`.
    pub fn state(&self, now_unix_s: i64) -> ExpiryState {
        expiry_state(self.seconds_left(now_unix_s))
    }

    /// `notAfter` as an RFC 3339 UTC date, for messages.
    pub fn not_after_rfc3339(&self) -> String {
        rfc3339(self.not_after_unix_s)
    }
}

/// The state of a certificate with `seconds_left` until its `notAfter`.
pub fn expiry_state(seconds_left: i64) -> ExpiryState {
    if seconds_left < 0 {
        ExpiryState::Expired
    } else if seconds_left <= CERT_EXPIRY_WARNING_DAYS * SECONDS_PER_DAY {
        ExpiryState::ExpiresSoon
    } else {
        ExpiryState::Valid
    }
}

/// `unix_s` as `YYYY-MM-DDTHH:MM:SSZ` (the raw number if out of range).
pub fn rfc3339(unix_s: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_s) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix_s} (unix seconds)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    /// 2030-01-01T00:00:00Z.
    const NOT_AFTER: i64 = 1_893_456_000;
    const DAY: i64 = SECONDS_PER_DAY;

    fn cert_with_not_after(not_after_unix_s: i64) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "voter-1");
        params.not_before = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after_unix_s).unwrap();
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn not_after_is_read_from_the_certificate() {
        let cert = cert_with_not_after(NOT_AFTER);
        let expiry = CertExpiry::of_cert(&cert, CertRole::Own(Role::Replica)).unwrap();
        assert_eq!(expiry.name, "voter-1");
        assert_eq!(expiry.role.label(), "replica");
        assert_eq!(expiry.not_after_unix_s, NOT_AFTER);
        assert_eq!(expiry.not_after_rfc3339(), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn seconds_days_and_state_at_fixed_times() {
        let expiry = CertExpiry::of_cert(&cert_with_not_after(NOT_AFTER), CertRole::Ca).unwrap();
        use ExpiryState::*;
        // (now, seconds left, days left, state)
        let table = [
            (NOT_AFTER - 365 * DAY, 365 * DAY, 365, Valid),
            (NOT_AFTER - 30 * DAY - 1, 30 * DAY + 1, 30, Valid),
            (NOT_AFTER - 30 * DAY, 30 * DAY, 30, ExpiresSoon), // exactly 30 days: warned
            (NOT_AFTER - 10 * DAY, 10 * DAY, 10, ExpiresSoon),
            (NOT_AFTER - 1, 1, 0, ExpiresSoon),
            (NOT_AFTER, 0, 0, ExpiresSoon), // notAfter itself is still valid
            (NOT_AFTER + 1, -1, -1, Expired),
            (NOT_AFTER + 40 * DAY, -40 * DAY, -40, Expired),
        ];
        for (now, seconds, days, state) in table {
            let at = now - NOT_AFTER;
            assert_eq!(expiry.seconds_left(now), seconds, "seconds left at {at:+}");
            assert_eq!(expiry.days_left(now), days, "days left at {at:+}");
            assert_eq!(expiry.state(now), state, "state at {at:+}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01]);
        assert!(CertExpiry::of_cert(&garbage, CertRole::Ca).is_err());
    }
}
