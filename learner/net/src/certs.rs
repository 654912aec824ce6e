//! Cluster certificate generation: one cluster CA (ECDSA P-256) and the leaf certificates it
//! issues to replicas, admins and booting nodes. `bootstorm certs init` and `bootstorm dev` call
//! [`generate_cluster_certs`] / [`ensure_cluster_certs`]; load tests call [`ClusterCa::issue`] to
//! mint node identities in memory.
//!
//! Files in a certificate directory (all PEM; keys are PKCS#8, mode 0600, written atomically):
//!
//! | file                         | what                                                     |
//! |------------------------------|----------------------------------------------------------|
//! | `ca.crt` / `ca.key`          | the cluster CA; `ca.key` signs every certificate below    |
//! | `replica.<name>.crt` / `.key` | a voter or learner: server *and* client on every plane   |
//! | `admin.<name>.crt` / `.key`   | an admin client; `<name>` becomes the commit author      |
//! | `monitor.<name>.crt` / `.key` | a read-only admin-plane client (status and log only)     |
//! | `node.<id>.crt` / `.key`      | a booting node's client cert for the boot plane          |
//!
//! Invariants:
//! - every leaf names its role in the subject OU ([`Role::organizational_unit`]) and the verifiers
//!   in `tls` check it, so a node certificate (kept on a less trusted compute node) can never
//!   authenticate on the raft or admin planes even though the same CA signed it;
//! - only replica certificates carry the `serverAuth` EKU, so an admin or node key cannot
//!   impersonate a replica to a client;
//! - an existing CA is never overwritten: replacing it silently would invalidate every
//!   certificate already handed out.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::TlsError;
pub use crate::identity::{ca_cert_path, CertKeyPaths, Role, CA_CERT_FILE, CA_KEY_FILE};
use crate::material::Identity;

/// Subject CN prefix of a generated cluster CA (followed by 8 hex digits of its key id).
pub const CA_COMMON_NAME: &str = "bootstorm cluster CA";

/// Validity of the cluster CA. Long, because rotating the CA means re-issuing every certificate
/// in the cluster; ten years outlives the hardware it runs on.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// Validity of replica, admin and node certificates. Two years and a bit (825 days, the CA/B
/// forum's old ceiling): long enough that a dev or lab cluster does not expire under its users,
/// short enough that a leaked node key stops working eventually. Re-issue with
/// [`ensure_cluster_certs`] after deleting the old pair.
pub const LEAF_VALIDITY_DAYS: i64 = 825;
/// Default validity of a node certificate (`bootstorm certs issue --node`): short, because a
/// node's key sits on a compute node and a site renews them in bulk (`certs renew`).
pub const NODE_CERT_VALIDITY_DAYS_DEFAULT: i64 = 90;
/// Longest validity `certs issue --days` accepts for any leaf.
pub const LEAF_VALIDITY_DAYS_MAX: i64 = LEAF_VALIDITY_DAYS;
/// Subdirectory of a certificate directory holding node certificates, `nodes/<id>.crt|.key`:
/// one file pair per node, 100,000 of them at site scale, kept apart from the cluster's own.
pub const NODES_SUBDIR: &str = "nodes";
/// Node ids one `certs issue` run accepts (a site's whole fleet in one file, with headroom).
pub const CERTS_PER_RUN_MAX: usize = 1_000_000;
const _: () = assert!(NODE_CERT_VALIDITY_DAYS_DEFAULT <= LEAF_VALIDITY_DAYS_MAX);
const _: () = assert!(LEAF_VALIDITY_DAYS_MAX < CA_VALIDITY_DAYS);

/// `not_before` is back-dated by this much so a replica whose clock is slightly behind the CA
/// host's does not refuse a freshly issued certificate as "not yet valid".
pub const CLOCK_SKEW_ALLOWANCE_SECS: i64 = 3600;
/// Longest accepted replica/admin/node name: the X.509 upper bound for a CN (RFC 5280 ub-common-name).
pub const NAME_LEN_MAX: usize = 64;

/// Mode of private key files: readable by the daemon's user only.
const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files: public material.
const CERT_FILE_MODE: u32 = 0o644;
/// Mode of a certificate directory we create: it holds the CA key.
const CERT_DIR_MODE: u32 = 0o700;

/// What [`generate_cluster_certs`] / [`ensure_cluster_certs`] left in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterCertFiles {
    /// The cluster CA certificate every plane trusts.
    pub ca_cert: PathBuf,
    /// The cluster CA key (needed only to issue more certificates).
    pub ca_key: PathBuf,
    /// One pair per replica name.
    pub replicas: BTreeMap<String, CertKeyPaths>,
    /// One pair per admin identity.
    pub admins: BTreeMap<String, CertKeyPaths>,
    /// One pair per monitor (read-only) identity.
    pub monitors: BTreeMap<String, CertKeyPaths>,
}

/// A freshly issued certificate and key, in memory.
pub struct IssuedCert {
    /// The leaf certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl IssuedCert {
    /// The certificate and key as a TLS identity (chain = the leaf only: peers already hold
    /// the CA, so sending it would only make every handshake bigger).
    pub fn identity(&self) -> Identity {
        Identity {
            cert_chain: vec![self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(self.key_der.clone_key()),
        }
    }
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// The cluster CA, able to issue certificates.
pub struct ClusterCa {
    /// Where `ca.crt` / `ca.key` live and where [`ClusterCa::write`] puts new pairs.
    dir: PathBuf,
    /// The CA certificate, DER (the trust anchor handed to TLS configs).
    cert_der: CertificateDer<'static>,
    /// Subject, key identifier method and signing key of the CA.
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Generates a new CA and writes `ca.crt` / `ca.key` into `dir` (created with mode 0700 if
    /// missing). Refuses if either file exists, since replacing a CA invalidates every
    /// certificate it issued.
    pub fn create(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(TlsError::AlreadyExists { path: path.clone() });
            }
        }
        create_dir(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            TlsError::Generate {
                what: "the cluster CA key".into(),
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        // A per-cluster suffix: webpki finds an issuer by name, so two clusters' CAs with the
        // same name would report a foreign certificate as "bad signature" instead of "unknown
        // issuer", and operators could not tell the CA files of two clusters apart.
        let key_id = params.key_identifier(&key);
        let cn = format!("{CA_COMMON_NAME} {}", hex::encode(&key_id[..4]));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(|source| TlsError::Generate {
                what: "the cluster CA certificate".into(),
                source,
            })?;
        // Key first: a crash between the two writes leaves a key without a certificate, which
        // `load` reports, rather than a certificate whose key is lost forever.
        write_atomic(&key_path, key.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
        write_atomic(&cert_path, cert.pem().as_bytes(), CERT_FILE_MODE)?;
        Ok(ClusterCa {
            dir: dir.to_path_buf(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `ca.crt` / `ca.key` from `dir`, to issue more certificates.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_der = crate::material::load_cert_chain(&cert_path)?
            .into_iter()
            .next()
            .expect("load_cert_chain returns at least one certificate");
        let key_pem = read_text(&key_path, "CA private key")?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::BadKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
        if key.subject_public_key_info() != spki_of(&cert_der, &cert_path)? {
            return Err(TlsError::KeyMismatch {
                cert: cert_path,
                key: key_path,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| TlsError::BadCert {
            path: cert_path.clone(),
            reason: format!("not usable as a CA certificate: {e}"),
        })?;
        Ok(ClusterCa {
            dir: dir.to_path_buf(),
            cert_der,
            issuer,
        })
    }

    /// The CA certificate (DER), to build a root store without touching the disk.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The directory holding this CA.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a certificate for `name` with `role`, in memory (nothing is written).
    ///
    /// Replica certificates get SANs for `name` (as a DNS name or IP, when it is one),
    /// `localhost`, 127.0.0.1 and ::1, plus `extra_sans` (host names or IPs), and both the
    /// `serverAuth` and `clientAuth` EKUs. Admin and node certificates get `clientAuth` only and
    /// no SANs; `extra_sans` must be empty for them.
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        extra_sans: &[&str],
    ) -> Result<IssuedCert, TlsError> {
        self.issue_for_days(role, name, extra_sans, LEAF_VALIDITY_DAYS)
    }

    /// [`ClusterCa::issue`] with an explicit validity (`1..=LEAF_VALIDITY_DAYS_MAX` days).
    pub fn issue_for_days(
        &self,
        role: Role,
        name: &str,
        extra_sans: &[&str],
        validity_days: i64,
    ) -> Result<IssuedCert, TlsError> {
        validate_validity_days(validity_days)?;
        let now = time::OffsetDateTime::now_utc();
        let not_before = now - time::Duration::seconds(CLOCK_SKEW_ALLOWANCE_SECS);
        let not_after = now + time::Duration::days(validity_days);
        self.issue_between(role, name, extra_sans, not_before, not_after)
    }

    /// [`ClusterCa::issue`] valid exactly from `not_before` to `not_after`, unchecked against
    /// the clock: for tests and fixtures that need a certificate already expired (or one that
    /// expires at a known second). `certs issue` never calls it.
    pub fn issue_between(
        &self,
        role: Role,
        name: &str,
        extra_sans: &[&str],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<IssuedCert, TlsError> {
        validate_name(name)?;
        if role != Role::Replica && !extra_sans.is_empty() {
            return Err(TlsError::InvalidName {
                name: name.into(),
                reason: format!("only replica certificates carry SANs, not {role} certificates"),
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            TlsError::Generate {
                what: format!("the key for {role} {name}"),
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role.organizational_unit());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = match role {
            Role::Replica => {
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ]
            }
            Role::Admin | Role::Node | Role::Monitor => {
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
        };
        if role == Role::Replica {
            params.subject_alt_names = replica_sans(name, extra_sans)?;
        }
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| TlsError::Generate {
                what: format!("the certificate for {role} {name}"),
                source,
            })?;
        Ok(IssuedCert {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// Issues a certificate (see [`ClusterCa::issue`]) and writes it into the CA's directory as
    /// `<role>.<name>.crt` / `.key`, replacing an existing pair.
    pub fn write(
        &self,
        role: Role,
        name: &str,
        extra_sans: &[&str],
    ) -> Result<CertKeyPaths, TlsError> {
        let issued = self.issue(role, name, extra_sans)?;
        let paths = CertKeyPaths::in_dir(&self.dir, role, name);
        write_atomic(&paths.key, issued.key_pem.as_bytes(), KEY_FILE_MODE)?;
        write_atomic(&paths.cert, issued.cert_pem.as_bytes(), CERT_FILE_MODE)?;
        Ok(paths)
    }
}

/// What a bulk issue does with a certificate whose files already exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// `certs issue`: refuse the whole run before anything is written, naming the first one.
    Refuse,
    /// `certs issue --skip-existing`: keep it, issue only the missing ones.
    Skip,
    /// `certs renew`: replace it with a new key and certificate; every pair must exist.
    Replace,
}

/// Where `role`'s certificate for `name` lives inside a certificate directory: nodes under
/// `nodes/<id>.crt|.key` ([`NODES_SUBDIR`]), replicas and admins as `<role>.<name>.crt|.key`.
pub fn issued_paths(dir: &Path, role: Role, name: &str) -> CertKeyPaths {
    match role {
        Role::Node => {
            let nodes = dir.join(NODES_SUBDIR);
            CertKeyPaths {
                cert: nodes.join(format!("{name}.crt")),
                key: nodes.join(format!("{name}.key")),
            }
        }
        Role::Replica | Role::Admin | Role::Monitor => CertKeyPaths::in_dir(dir, role, name),
    }
}

/// What [`ClusterCa::issue_many`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuedMany {
    /// Pairs written by this run, in request order.
    pub written: Vec<(Role, String, CertKeyPaths)>,
    /// Pairs left as they were ([`Existing::Skip`]).
    pub skipped: Vec<(Role, String, CertKeyPaths)>,
}

impl ClusterCa {
    /// Issues and writes many certificates at once (`bootstorm certs issue|renew`): every name is
    /// validated and the existing files checked before the first write, so bad input writes
    /// nothing; keys and certificates are generated on `threads` threads; each file is written
    /// with its final mode through a temporary file and a rename, and the file system is synced
    /// once at the end (one fsync per file made 100,000 node certificates take minutes).
    /// `progress` is called with the number of certificates written so far.
    pub fn issue_many(
        &self,
        requests: &[(Role, String)],
        validity_days: i64,
        existing: Existing,
        threads: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<IssuedMany, TlsError> {
        let todo = self.check_issue(requests, validity_days, existing)?;
        for dir in todo
            .written
            .iter()
            .filter_map(|(_, _, paths)| paths.cert.parent())
            .collect::<std::collections::BTreeSet<_>>()
        {
            create_dir(dir)?;
        }
        let written = std::sync::atomic::AtomicU64::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let chunk = todo.written.len().div_ceil(threads.max(1)).max(1);
        let results: Vec<Result<(), TlsError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = todo
                .written
                .chunks(chunk)
                .map(|part| {
                    let (written, failed) = (&written, &failed);
                    scope.spawn(move || {
                        for (role, name, paths) in part {
                            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                            let result = self
                                .issue_for_days(*role, name, &[], validity_days)
                                .and_then(|issued| write_pair(paths, &issued, false));
                            if let Err(error) = result {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                return Err(error);
                            }
                            let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            progress(n + 1);
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a certificate worker panicked"))
                .collect()
        });
        results.into_iter().collect::<Result<(), TlsError>>()?;
        sync_file_system(&self.dir)?;
        Ok(todo)
    }

    /// The checks of [`ClusterCa::issue_many`], without writing anything: names, duplicates,
    /// validity, count, and existing files against `existing`. Returns what would be written
    /// and what kept; call it for several groups before issuing any of them.
    pub fn check_issue(
        &self,
        requests: &[(Role, String)],
        validity_days: i64,
        existing: Existing,
    ) -> Result<IssuedMany, TlsError> {
        validate_validity_days(validity_days)?;
        if requests.len() > CERTS_PER_RUN_MAX {
            return Err(TlsError::TooMany {
                count: requests.len(),
                max: CERTS_PER_RUN_MAX,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut plan = IssuedMany::default();
        for (role, name) in requests {
            validate_name(name)?;
            if !seen.insert((*role, name.as_str())) {
                return Err(TlsError::InvalidName {
                    name: name.clone(),
                    reason: format!("the {role} is listed twice"),
                });
            }
            let paths = issued_paths(&self.dir, *role, name);
            let exists = paths.cert.exists() || paths.key.exists();
            match (existing, exists) {
                (Existing::Refuse, true) => return Err(TlsError::PairExists { path: paths.cert }),
                (Existing::Replace, false) => {
                    return Err(TlsError::NothingToRenew { path: paths.cert })
                }
                (Existing::Skip, true) => plan.skipped.push((*role, name.clone(), paths)),
                _ => plan.written.push((*role, name.clone(), paths)),
            }
        }
        Ok(plan)
    }
}

/// Refuses a validity outside `1..=LEAF_VALIDITY_DAYS_MAX`.
fn validate_validity_days(days: i64) -> Result<(), TlsError> {
    if (1..=LEAF_VALIDITY_DAYS_MAX).contains(&days) {
        return Ok(());
    }
    Err(TlsError::Validity {
        days,
        max: LEAF_VALIDITY_DAYS_MAX,
    })
}

/// Writes an issued pair, key first (a crash between the two leaves a key without a
/// certificate, which loading reports, rather than a certificate whose key is lost).
fn write_pair(paths: &CertKeyPaths, issued: &IssuedCert, fsync: bool) -> Result<(), TlsError> {
    write_file(&paths.key, issued.key_pem.as_bytes(), KEY_FILE_MODE, fsync)?;
    write_file(
        &paths.cert,
        issued.cert_pem.as_bytes(),
        CERT_FILE_MODE,
        fsync,
    )
}

/// Flushes everything written to the file system holding `dir` (one `syncfs` instead of an
/// fsync per file), then the directory itself.
fn sync_file_system(dir: &Path) -> Result<(), TlsError> {
    use std::os::fd::AsRawFd;
    let io_err = |source| TlsError::Io {
        path: dir.to_path_buf(),
        action: "sync the file system of",
        source,
    };
    let handle = fs::File::open(dir).map_err(io_err)?;
    // SAFETY: syncfs reads only the file descriptor, which `handle` keeps open.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(io_err(std::io::Error::last_os_error()));
    }
    handle.sync_all().map_err(io_err)
}

/// A new cluster CA in `dir` and one certificate per replica and admin. Fails with
/// [`TlsError::AlreadyExists`] if `dir` already holds a CA.
pub fn generate_cluster_certs(
    dir: &Path,
    replica_names: &[&str],
    admin_names: &[&str],
) -> Result<ClusterCertFiles, TlsError> {
    generate_cluster_certs_with_monitors(dir, replica_names, admin_names, &[])
}

/// `bootstorm certs init`: [`generate_cluster_certs`] plus one read-only monitor certificate
/// per name in `monitor_names`. Every name is checked before the CA is created.
pub fn generate_cluster_certs_with_monitors(
    dir: &Path,
    replica_names: &[&str],
    admin_names: &[&str],
    monitor_names: &[&str],
) -> Result<ClusterCertFiles, TlsError> {
    validate_all(replica_names, admin_names)?;
    monitor_names
        .iter()
        .try_for_each(|name| validate_name(name))?;
    let ca = ClusterCa::create(dir)?;
    let mut files = issue_missing(&ca, replica_names, admin_names)?;
    for name in monitor_names {
        let paths = ca.write(Role::Monitor, name, &[])?;
        files.monitors.insert((*name).to_owned(), paths);
    }
    Ok(files)
}

/// `bootstorm dev`: like [`generate_cluster_certs`] but idempotent: reuses the CA in `dir` if
/// there is one and issues only the replica/admin pairs whose files are missing.
pub fn ensure_cluster_certs(
    dir: &Path,
    replica_names: &[&str],
    admin_names: &[&str],
) -> Result<ClusterCertFiles, TlsError> {
    validate_all(replica_names, admin_names)?;
    let ca = if dir.join(CA_CERT_FILE).exists() || dir.join(CA_KEY_FILE).exists() {
        ClusterCa::load(dir)?
    } else {
        ClusterCa::create(dir)?
    };
    issue_missing(&ca, replica_names, admin_names)
}

/// Issues a node client certificate (CN = `node_id`, e.g. `node-0001`) with the CA in `dir`,
/// written as `node.<node_id>.crt` / `.key` in `dir`. A booting node presenting it on the boot
/// plane is bound to that node id.
pub fn issue_node_cert(dir: &Path, node_id: &str) -> Result<CertKeyPaths, TlsError> {
    ClusterCa::load(dir)?.write(Role::Node, node_id, &[])
}

fn issue_missing(
    ca: &ClusterCa,
    replica_names: &[&str],
    admin_names: &[&str],
) -> Result<ClusterCertFiles, TlsError> {
    let mut files = ClusterCertFiles {
        ca_cert: ca.dir.join(CA_CERT_FILE),
        ca_key: ca.dir.join(CA_KEY_FILE),
        replicas: BTreeMap::new(),
        admins: BTreeMap::new(),
        monitors: BTreeMap::new(),
    };
    for (role, names) in [(Role::Replica, replica_names), (Role::Admin, admin_names)] {
        for name in names {
            let paths = CertKeyPaths::in_dir(&ca.dir, role, name);
            let paths = if paths.cert.exists() && paths.key.exists() {
                paths
            } else {
                ca.write(role, name, &[])?
            };
            let map = if role == Role::Replica {
                &mut files.replicas
            } else {
                &mut files.admins
            };
            map.insert((*name).to_owned(), paths);
        }
    }
    Ok(files)
}

fn validate_all(replica_names: &[&str], admin_names: &[&str]) -> Result<(), TlsError> {
    replica_names
        .iter()
        .chain(admin_names)
        .try_for_each(|name| validate_name(name))
}

/// A name becomes a CN, a file name and (for replicas) a DNS SAN, so it is restricted to
/// ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), TlsError> {
    let invalid = |reason: &str| TlsError::InvalidName {
        name: name.into(),
        reason: reason.into(),
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > NAME_LEN_MAX {
        return Err(invalid(&format!("it is longer than {NAME_LEN_MAX} bytes")));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("it must start with a letter or digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(invalid(&format!(
            "it contains {c:?}; use letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

fn replica_sans(name: &str, extra: &[&str]) -> Result<Vec<SanType>, TlsError> {
    let mut sans: Vec<SanType> = Vec::new();
    let mut push = |san: SanType| {
        if !sans.contains(&san) {
            sans.push(san);
        }
    };
    for host in std::iter::once(&name).chain(extra).chain(&["localhost"]) {
        match host.parse::<IpAddr>() {
            Ok(ip) => push(SanType::IpAddress(ip)),
            // A name that is not a valid DNS name (e.g. with '_') is still a fine CN; it just
            // cannot be used as a TLS server name, so it gets no DNS SAN.
            Err(_) => match rustls_pki_types::DnsName::try_from(*host) {
                Ok(_) => push(SanType::DnsName((*host).try_into().map_err(
                    |e: rcgen::Error| TlsError::InvalidName {
                        name: (*host).into(),
                        reason: e.to_string(),
                    },
                )?)),
                Err(_) if *host == name => {}
                Err(_) => {
                    return Err(TlsError::InvalidName {
                        name: (*host).into(),
                        reason: "not a DNS name or IP address, so it cannot be a SAN".into(),
                    })
                }
            },
        }
    }
    push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    Ok(sans)
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(CLOCK_SKEW_ALLOWANCE_SECS);
    params.not_after = now + time::Duration::days(days);
}

/// The SubjectPublicKeyInfo of a DER certificate, to check a key belongs to it.
fn spki_of(cert: &CertificateDer<'_>, path: &Path) -> Result<Vec<u8>, TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::BadCert {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

fn read_text(path: &Path, what: &'static str) -> Result<String, TlsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TlsError::Missing {
            path: path.to_path_buf(),
            what,
        }),
        Err(source) => Err(TlsError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        }),
    }
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(CERT_DIR_MODE)
        .create(dir)
        .map_err(|source| TlsError::Io {
            path: dir.to_path_buf(),
            action: "create directory",
            source,
        })
}

/// Writes `bytes` to `path` so that a reader sees either the old file or the complete new one:
/// a temporary file in the same directory, created with `mode` (never briefly world-readable),
/// fsynced, renamed over `path`, then the directory fsynced so the rename survives a crash.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    write_file(path, bytes, mode, true)
}

/// [`write_atomic`], with the two fsyncs only when `fsync` (bulk writers sync once at the end).
fn write_file(path: &Path, bytes: &[u8], mode: u32, fsync: bool) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if fsync {
        create_dir(dir)?;
    }
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("cert");
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let io_err = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| TlsError::Io {
            path: p,
            action,
            source,
        }
    };
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        if fsync {
            file.sync_all().map_err(io_err("fsync", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
        if !fsync {
            return Ok(());
        }
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
