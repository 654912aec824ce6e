//! `bootstorm-agent fetch` (and `bootstorm fetch`, the same code): the boot agent as a command. Fetches phase 1 + phase 2 for a node from
//! the replicas of a cluster file (with failover), verifies both, applies them to a root
//! directory, and remembers the applied overlay so the next boot can fetch conditionally.
//!
//! State kept between boots (default `ROOT/var/lib/bootstorm/last-overlay`):
//! - `last-overlay`: one JSON object `{vcluster, seq, hash, raw_len, replica_certs}` of the
//!   last applied overlay; `replica_certs` are the replica certificates seen in verified TLS
//!   handshakes (server name, DER hex), so the next boot can verify a boot check answer (one
//!   signed datagram instead of a QUIC connection, `proto::check`); they are re-verified
//!   against the CA before use;
//! - `last-overlay.zst`: that overlay's compressed bytes, so a `NotModified` answer (a reboot
//!   with unchanged config) re-applies it without downloading 150 KB.
//!
//! Both are written only after a successful apply, through `overlay::StateDir`: the
//! directory is created 0700 (an existing one made 0700, a shared one like `/tmp` refused) and
//! opened without following a symlink, each file created 0600 under a temp name
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`), fsynced and renamed within the directory handle — the
//! overlay holds the site's secrets. The same directory holds the apply's commit journal
//! (`overlay::APPLY_JOURNAL_NAME`): with `--root`, an interrupted commit of an earlier run is
//! completed before anything else, the network included. A saved overlay is re-verified
//! (blake3) before it is offered or used; one that fails is ignored and the overlay fetched in
//! full.
//!
//! Invariant: **the agent never applies unverified bytes** — `proto::client` verifies what it
//! receives, the saved overlay is verified on load, and nothing is written to the root when
//! either check fails.
//!
//! Exit codes: 0 applied (or fetched, without `--root`); 1 refused or failed (unknown node,
//! certificate bound to another node, verification or apply failure — the message says why);
//! 2 usage error; 3 no replica served the fetch in time (the message lists each attempt).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use overlay::{OverlayDoc, SETTINGS_FILE_PATH};
use proto::client::{
    BaseOutcome, BootClient, CheckStatus, ClientConfig, ClientTls, FetchError, Replica,
};
use proto::Hash;
use serde::{Deserialize, Serialize};

use conf::ClusterFile;

/// Where the last applied overlay is remembered, relative to the root.
pub const STATE_FILE_IN_ROOT: &str = "var/lib/bootstorm/last-overlay";

/// Suffix of the saved compressed overlay next to the state file.
pub const SAVED_OVERLAY_SUFFIX: &str = ".zst";

/// How long the agent waits, after fetching, for its close frames to reach the replica.
pub const AGENT_CLOSE_WAIT_MS: u64 = 200;

/// Arguments of `bootstorm fetch`.
#[derive(clap::Args, Debug, Clone)]
pub struct FetchArgs {
    /// The cluster file (`[[replica]]` boot addresses, `ca`); replicas are tried in its order.
    #[arg(long)]
    pub cluster: PathBuf,
    /// The node to fetch for (its registered id).
    #[arg(long)]
    pub node: String,
    /// Fetch only from this replica (by name) instead of failing over across all.
    #[arg(long)]
    pub replica: Option<String>,
    /// Apply the overlay and the node delta under this directory. Without it the fetch is
    /// verified and reported, nothing is written.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Don't accept state older than this journal seq (read-your-writes after a commit).
    #[arg(long)]
    pub min_seq: Option<u64>,
    /// blake3 (hex) of the overlay already held; overrides the one in the state file.
    #[arg(long)]
    pub have_hash: Option<String>,
    /// Where to remember the applied overlay [default: ROOT/var/lib/bootstorm/last-overlay].
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Node client certificate (PEM); binds the connection to the node id in its CN.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Key of --cert (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Give up after this long (all replicas, all retries) [default: 300000].
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

/// The state file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOverlayMeta {
    pub vcluster: String,
    pub seq: u64,
    /// blake3 of the uncompressed overlay, hex.
    pub hash: String,
    pub raw_len: u64,
    /// Replica certificates for boot checks (absent in state files of older agents).
    #[serde(default)]
    pub replica_certs: Vec<SavedReplicaCert>,
}

/// A replica's leaf certificate, as saved in the state file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SavedReplicaCert {
    pub server_name: String,
    /// DER, hex.
    pub der: String,
}

/// What `fetch` did, as printed with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct FetchReport {
    pub node: String,
    pub vcluster: String,
    /// Seq of the overlay.
    pub seq: u64,
    pub base_hash: String,
    /// Phase-1 payload bytes received (0 when not modified).
    pub base_bytes: usize,
    pub not_modified: bool,
    /// Served by a signed boot check datagram: no QUIC connection was made.
    pub checked: bool,
    /// Why boot checks that were sent did not serve the boot (the QUIC fetch followed).
    pub check_fallbacks: Vec<String>,
    pub delta_seq: u64,
    pub delta_hash: String,
    pub delta_bytes: usize,
    /// The replica that served the fetch.
    pub replica: String,
    pub latency_ms: f64,
    /// Attempts that failed before the successful one (replica: answer).
    pub failed_attempts: Vec<String>,
    /// Root the documents were applied to, if any.
    pub root: Option<PathBuf>,
    pub files_written: usize,
    pub files_removed: usize,
}

/// The CLI exit code for a fetch error: `Some(3)` when no replica served the fetch in time.
pub fn exit_code(error: &anyhow::Error) -> Option<u8> {
    error
        .chain()
        .any(|cause| {
            cause
                .downcast_ref::<FetchError>()
                .is_some_and(FetchError::is_unreachable)
        })
        .then_some(3)
}

/// Entry point of `bootstorm fetch`.
pub fn run(args: FetchArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(fetch_and_apply(&args))?;
    print_report(&report, args.json)
}

fn print_report(report: &FetchReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let base = if report.checked {
        "not modified (boot check answer; reused the saved overlay)".to_owned()
    } else if report.not_modified {
        "not modified (reused the saved overlay)".to_owned()
    } else {
        format!("{} bytes", report.base_bytes)
    };
    println!(
        "node {} (vcluster {}) from {} in {:.1} ms: overlay seq {} {} [{}], delta seq {} {} bytes",
        report.node,
        report.vcluster,
        report.replica,
        report.latency_ms,
        report.seq,
        &report.base_hash[..16],
        base,
        report.delta_seq,
        report.delta_bytes,
    );
    for fallback in &report.check_fallbacks {
        println!("  boot check did not serve: {fallback}");
    }
    for attempt in &report.failed_attempts {
        println!("  failed attempt: {attempt}");
    }
    match &report.root {
        Some(root) => println!(
            "applied to {}: {} files written, {} removed",
            root.display(),
            report.files_written,
            report.files_removed
        ),
        None => println!("verified; nothing applied (no --root)"),
    }
    Ok(())
}

/// The replicas and TLS of the agent from a cluster file.
pub fn client_config(args: &FetchArgs) -> Result<ClientConfig> {
    let cluster = ClusterFile::load(&args.cluster)?;
    let ca_pem = std::fs::read(&cluster.ca)
        .with_context(|| format!("reading the cluster CA {}", cluster.ca.display()))?;
    let node_pem = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some((
            std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        )),
        _ => None,
    };
    let tls = ClientTls::from_pem(
        &ca_pem,
        node_pem
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
    )?;
    let replicas: Vec<Replica> = cluster
        .replicas
        .iter()
        .filter(|replica| {
            args.replica
                .as_ref()
                .is_none_or(|name| *name == replica.name)
        })
        .map(|replica| Replica {
            name: replica.name.clone(),
            addr: replica.boot,
            server_name: replica.name.clone(),
            check_addr: replica.check,
        })
        .collect();
    if replicas.is_empty() {
        let names: Vec<_> = cluster.replicas.iter().map(|r| r.name.as_str()).collect();
        bail!(
            "replica {:?} is not in {} (it lists: {}); check --replica",
            args.replica.as_deref().unwrap_or(""),
            args.cluster.display(),
            names.join(", ")
        );
    }
    let mut config = ClientConfig::new(replicas, tls);
    if let Some(ms) = args.timeout_ms {
        config.timeouts.total_ms = ms;
    }
    Ok(config)
}

/// The state a previous fetch saved, as this fetch uses it.
type Saved = (SavedOverlayMeta, OverlayDoc);

/// Hands the replica certificates a previous fetch saved to `client`, so its boot checks
/// (which verify against them) work before any full fetch of this run. A certificate that
/// does not load is skipped with a warning: checks with that replica stay off.
fn remember_saved_certs(client: &BootClient, saved: Option<&Saved>) {
    let saved_certs = saved.map_or(&[][..], |(meta, _)| &meta.replica_certs);
    for cert in saved_certs {
        let remembered = hex::decode(&cert.der)
            .map_err(|e| format!("not hex: {e}"))
            .and_then(|der| client.remember_replica_cert(&cert.server_name, der));
        if let Err(reason) = remembered {
            tracing::warn!(server_name = %cert.server_name, %reason, "ignoring a saved replica certificate; boot checks with that replica are off until the next full fetch");
        }
    }
}

/// The replica certificates `client` knows after a fetch, as the state file saves them.
fn replica_certs_to_save(client: &BootClient) -> Vec<SavedReplicaCert> {
    client
        .replica_certs()
        .into_iter()
        .map(|(server_name, der)| SavedReplicaCert {
            server_name,
            der: hex::encode(der),
        })
        .collect()
}

/// The overlay a fetch leaves to apply: the one fetched, or the saved one when the replica
/// said it is current.
struct OverlayToApply {
    /// `None`: the replica answered NotModified for a `--have-hash` that no saved overlay
    /// matches, so there is nothing to apply from.
    doc: Option<Arc<OverlayDoc>>,
    /// The compressed bytes when they are new (to save); `None` when the saved ones stand.
    compressed: Option<bytes::Bytes>,
    raw_len: u64,
}

fn overlay_to_apply(base: &BaseOutcome, saved: Option<&Saved>) -> OverlayToApply {
    match base {
        BaseOutcome::Fetched(base) => OverlayToApply {
            doc: Some(base.doc.clone()),
            compressed: Some(base.compressed.clone()),
            raw_len: base.raw_len,
        },
        BaseOutcome::NotModified { hash, .. } => match saved {
            Some((meta, doc)) if doc.hash() == hash => OverlayToApply {
                doc: Some(Arc::new(doc.clone())),
                compressed: None,
                raw_len: meta.raw_len,
            },
            _ => OverlayToApply {
                doc: None,
                compressed: None,
                raw_len: 0,
            },
        },
    }
}

/// What a fetch found, before anything is applied (`files_*` are zero until then).
fn fetch_report(outcome: &proto::client::FetchOutcome, root: Option<PathBuf>) -> FetchReport {
    FetchReport {
        node: outcome.node.clone(),
        vcluster: outcome.base.vcluster().to_owned(),
        seq: outcome.base.seq(),
        base_hash: hex::encode(outcome.base.hash()),
        base_bytes: outcome.base.payload_bytes(),
        not_modified: matches!(outcome.base, BaseOutcome::NotModified { .. }),
        checked: outcome.check == CheckStatus::Current,
        check_fallbacks: match &outcome.check {
            CheckStatus::FellBack { answers } => answers.clone(),
            CheckStatus::NotTried | CheckStatus::Current => Vec::new(),
        },
        delta_seq: outcome.delta.seq,
        delta_hash: hex::encode(outcome.delta.hash),
        delta_bytes: outcome.delta.bytes.len(),
        replica: outcome.replica.clone(),
        latency_ms: outcome.latency.as_secs_f64() * 1e3,
        failed_attempts: outcome
            .failed_attempts
            .iter()
            .map(ToString::to_string)
            .collect(),
        root,
        files_written: 0,
        files_removed: 0,
    }
}

/// Saves what was applied to `path`: the overlay when it is new, else only its metadata, and
/// that only when it changed (new replica certificates, a newer seq of the same overlay).
fn save_applied(
    path: &Path,
    meta: &SavedOverlayMeta,
    compressed: Option<&[u8]>,
    saved: Option<&Saved>,
) -> Result<()> {
    match compressed {
        Some(compressed) => save_state(path, meta, compressed),
        None if saved.is_none_or(|(old, _)| old != meta) => save_meta(path, meta),
        None => Ok(()),
    }
    .with_context(|| format!("saving the applied overlay to {}", path.display()))
}

/// Fetches, verifies and (with `--root`) applies; saves the state after a successful apply.
pub async fn fetch_and_apply(args: &FetchArgs) -> Result<FetchReport> {
    let config = client_config(args)?;
    let state_file = args
        .state_file
        .clone()
        .or_else(|| args.root.as_ref().map(|root| root.join(STATE_FILE_IN_ROOT)));
    let state_dir = state_file.as_deref().map(state_dir_of);
    if let (Some(_), Some(state_dir)) = (&args.root, &state_dir) {
        // An earlier run killed mid-commit: finish its commit before anything else.
        let completed = overlay::complete_interrupted_apply(state_dir)
            .context("completing the interrupted apply of an earlier run")?;
        if let Some(operations) = completed {
            tracing::warn!(operations, state_dir = %state_dir.display(), "completed the commit an earlier run left unfinished");
        }
    }
    let saved = match &state_file {
        Some(path) => load_saved(path),
        None => None,
    };
    let have_hash: Option<Hash> = match &args.have_hash {
        Some(hex) => Some(parse_hash(hex)?),
        None => saved.as_ref().map(|(meta, _)| {
            parse_hash(&meta.hash).expect("a loaded state file holds a valid hash")
        }),
    };
    let client = BootClient::new(config)?;
    remember_saved_certs(&client, saved.as_ref());
    let outcome = client.fetch(&args.node, have_hash, args.min_seq).await;
    let replica_certs = replica_certs_to_save(&client);
    client
        .shutdown(Duration::from_millis(AGENT_CLOSE_WAIT_MS))
        .await;
    let outcome = outcome?;

    let to_apply = overlay_to_apply(&outcome.base, saved.as_ref());
    let mut report = fetch_report(&outcome, args.root.clone());
    let Some(root) = &args.root else {
        return Ok(report);
    };
    let Some(overlay_doc) = to_apply.doc else {
        bail!(
            "the replica answered NotModified for --have-hash, but no saved overlay with that \
             hash exists to apply; run again without --have-hash to download it"
        );
    };
    let delta_doc = outcome.delta.doc.clone();
    let root_owned = root.clone();
    let journal_dir = state_dir.unwrap_or_else(|| root.join(overlay::DEFAULT_STATE_DIR_IN_ROOT));
    let applied = tokio::task::spawn_blocking(move || {
        overlay::apply_to_root_with_state(&overlay_doc, Some(&delta_doc), &root_owned, &journal_dir)
    })
    .await
    .context("the apply task failed")?
    .with_context(|| format!("applying the overlay to {}", root.display()))?;
    report.files_written = applied.files_written;
    report.files_removed = applied.removed.len();
    if let Some(path) = &state_file {
        let meta = SavedOverlayMeta {
            vcluster: report.vcluster.clone(),
            seq: report.seq,
            hash: report.base_hash.clone(),
            raw_len: to_apply.raw_len,
            replica_certs,
        };
        save_applied(path, &meta, to_apply.compressed.as_deref(), saved.as_ref())?;
    }
    Ok(report)
}

fn parse_hash(hex_text: &str) -> Result<Hash> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|e| anyhow!("hash {hex_text:?} is not hex: {e}; pass 64 hex digits"))?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| anyhow!("hash has {} bytes, a blake3 hash has 32", bytes.len()))
}

/// Path of the saved compressed overlay next to `state_file`.
pub fn saved_overlay_path(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(SAVED_OVERLAY_SUFFIX);
    PathBuf::from(name)
}

/// The saved overlay, verified; `None` (with a log line) if absent, unreadable or not
/// matching its recorded hash — the fetch then downloads it in full.
pub fn load_saved(state_file: &Path) -> Option<(SavedOverlayMeta, OverlayDoc)> {
    let meta_text = std::fs::read_to_string(state_file).ok()?;
    let loaded = (|| -> Result<(SavedOverlayMeta, OverlayDoc)> {
        let meta: SavedOverlayMeta = serde_json::from_str(&meta_text)?;
        let hash = parse_hash(&meta.hash)?;
        let compressed = std::fs::read(saved_overlay_path(state_file))?;
        let doc = overlay::decode_overlay(&compressed, &hash, meta.raw_len)?;
        Ok((meta, doc))
    })();
    match loaded {
        Ok(saved) => Some(saved),
        Err(error) => {
            tracing::warn!(state_file = %state_file.display(), %error, "ignoring the saved overlay; fetching in full");
            None
        }
    }
}

/// The directory of the state file: the agent's state directory.
fn state_dir_of(state_file: &Path) -> PathBuf {
    state_file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned()
}

/// Writes the blob, then the state file, each 0600 via a temp file + rename (+ fsync) in the
/// 0700 state directory, so a crash leaves either the old pair or a state file whose blob
/// verifies.
fn save_state(state_file: &Path, meta: &SavedOverlayMeta, compressed: &[u8]) -> Result<()> {
    write_state_file(&saved_overlay_path(state_file), compressed)?;
    save_meta(state_file, meta)
}

/// Rewrites the state file alone (its blob is unchanged).
fn save_meta(state_file: &Path, meta: &SavedOverlayMeta) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(meta)?;
    json.push(b'\n');
    write_state_file(state_file, &json)
}

/// Writes `path` (0600) in its directory (0700), neither reached through a symlink.
fn write_state_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("state file {} has no UTF-8 file name", path.display()))?;
    overlay::StateDir::open(&state_dir_of(path))
        .and_then(|dir| dir.write(name, bytes))
        .with_context(|| format!("writing {}", path.display()))
}

/// The settings file `apply_to_root` writes, relative to a root (for reports and tests).
pub fn settings_path(root: &Path) -> PathBuf {
    root.join(SETTINGS_FILE_PATH.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn meta() -> SavedOverlayMeta {
        SavedOverlayMeta {
            vcluster: "compute".into(),
            seq: 7,
            hash: "00".repeat(32),
            raw_len: 3,
            replica_certs: Vec::new(),
        }
    }

    #[test]
    fn state_files_are_0600_in_a_0700_directory() {
        let root = tempfile::tempdir().unwrap();
        let state_file = root.path().join(STATE_FILE_IN_ROOT);
        save_state(&state_file, &meta(), b"zst").unwrap();
        assert_eq!(
            mode_of(state_file.parent().unwrap()),
            overlay::STATE_DIR_MODE
        );
        assert_eq!(mode_of(&state_file), overlay::STATE_FILE_MODE);
        assert_eq!(
            mode_of(&saved_overlay_path(&state_file)),
            overlay::STATE_FILE_MODE
        );
        assert_eq!(
            std::fs::read(saved_overlay_path(&state_file)).unwrap(),
            b"zst"
        );

        // An existing, looser directory is tightened; rewriting keeps 0600.
        std::fs::set_permissions(
            state_file.parent().unwrap(),
            PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        save_meta(&state_file, &meta()).unwrap();
        assert_eq!(
            mode_of(state_file.parent().unwrap()),
            overlay::STATE_DIR_MODE
        );
        assert_eq!(mode_of(&state_file), overlay::STATE_FILE_MODE);
    }

    #[test]
    fn a_symlinked_or_shared_state_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        symlink(elsewhere.path(), root.path().join("state")).unwrap();
        let error =
            save_state(&root.path().join("state/last-overlay"), &meta(), b"zst").unwrap_err();
        assert!(format!("{error:#}").contains("symlink"), "{error:#}");
        assert!(std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none());

        std::fs::create_dir(root.path().join("shared")).unwrap();
        std::fs::set_permissions(
            root.path().join("shared"),
            PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let error = save_meta(&root.path().join("shared/last-overlay"), &meta()).unwrap_err();
        assert!(format!("{error:#}").contains("shared"), "{error:#}");
    }
}
