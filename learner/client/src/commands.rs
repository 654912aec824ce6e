//! The admin CLI commands (`bootstorm commit | rollback | log | status | members | certs |
//! policy | node`): their clap arguments, the requests they send, and their two outputs — a
//! readable report by default, one JSON object with `--json`.
//!
//! Each command is split into `run_*` (async, returns data; what tests drive) and a printing
//! wrapper that `cli.rs` calls. Local checks (delta file syntax and size, scope syntax) happen
//! before anything is sent, so a malformed delta never reaches the cluster.
//!
//! Invariant: no command sends an author. The server writes the admin certificate's identity
//! into every entry; the author of a commit is never the request's claim.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use config::{
    EntryType, JournalCommand, NewEntry, NodeState, NodeStatus, Scope, StateDelta, VClusterPolicy,
};
use proto::limits::LOG_ENTRIES_PER_RESPONSE_MAX;
use proto::{AdminRequest, AdminResponse};
use serde::Serialize;

use crate::admin::{AdminClient, ClusterStatus};
use crate::certs_issue::IssueTargets;

/// The exit codes of every admin command, shown under its `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 ok; 1 failed or refused (the message says why); 2 usage error; 3 cluster unreachable (no replica answered, or no leader).";
use conf::ClusterFile;

/// `bootstorm commit`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct CommitArgs {
    /// The cluster file written by `bootstorm dev` (or by hand): replicas, CA, admin cert.
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// Where the change applies: `global`, `vcluster:NAME` or `node:ID`.
    #[arg(long)]
    pub scope: Scope,
    /// The delta file (TOML: [[file]], [[remove]], [settings]); see `bootstorm check-delta`.
    #[arg(long, value_name = "FILE")]
    pub delta: PathBuf,
    /// Entry type (commit, boot-config, service-lifecycle, emergency-start, ...).
    #[arg(long = "type", default_value = "commit")]
    pub entry_type: EntryType,
    /// Optimistic concurrency: the newest seq of the scope you based this change on (0 for a
    /// scope without entries). The commit is refused if someone committed in between.
    #[arg(long, value_name = "SEQ")]
    pub parent: Option<u64>,
    /// Expire the delta this many seconds after the commit.
    #[arg(long, value_name = "SECS")]
    pub ttl: Option<u64>,
    /// Emergency reason (required for `--type emergency-start`).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Free-text reference to a policy or ticket.
    #[arg(long, value_name = "TEXT")]
    pub policy_ref: Option<String>,
    /// Print one JSON object (`{"seq":..,"log_index":..}`) instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// `bootstorm rollback`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct RollbackArgs {
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The scope to restore: `global`, `vcluster:NAME` or `node:ID`.
    #[arg(long)]
    pub scope: Scope,
    /// Restore the scope's config as of this seq (an entry of the same scope).
    #[arg(long = "to", value_name = "SEQ")]
    pub to_seq: u64,
    /// Optimistic concurrency, as for `commit`.
    #[arg(long, value_name = "SEQ")]
    pub parent: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

/// `bootstorm log`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct LogArgs {
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// Only entries of this scope.
    #[arg(long)]
    pub scope: Option<Scope>,
    /// Entries with seq >= SEQ.
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub since: u64,
    /// At most N entries (fetched in pages of up to 1000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

/// `bootstorm status`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct StatusArgs {
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// `bootstorm members`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct MembersArgs {
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: MembersAction,
}

/// A membership change. Each one restarts the leader's replication streams (openraft 0.9):
/// change members one at a time, not in a tight loop.
#[derive(Subcommand, Debug, Clone)]
pub enum MembersAction {
    /// Add a replica as a non-voting learner (it replicates and serves boots, never votes).
    AddLearner {
        #[arg(long)]
        node_id: u64,
        #[arg(long)]
        name: String,
        /// `host:port` of its raft plane.
        #[arg(long = "raft", value_name = "ADDR")]
        raft_addr: String,
        /// `host:port` of its admin plane.
        #[arg(long = "admin", value_name = "ADDR")]
        admin_addr: String,
        /// `host:port` of its boot plane.
        #[arg(long = "boot", value_name = "ADDR")]
        boot_addr: String,
    },
    /// Make a learner a voter (keeps the other voters).
    Promote {
        #[arg(long)]
        node_id: u64,
    },
    /// Remove a voter or learner from the cluster.
    Remove {
        #[arg(long)]
        node_id: u64,
    },
}

/// `bootstorm certs`.
#[derive(Args, Debug, Clone)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub action: CertsAction,
}

#[derive(Subcommand, Debug, Clone)]
pub enum CertsAction {
    /// Create a cluster CA in DIR and one certificate per replica and admin (refuses a DIR
    /// that already holds a CA).
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Replica names, comma separated (`voter-1,voter-2,voter-3`).
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<String>,
        /// Admin identities, comma separated; each becomes the author of its commits.
        #[arg(long, value_delimiter = ',', required = true)]
        admins: Vec<String>,
        /// Read-only monitor identities, comma separated (optional): they may read `status`
        /// and `log` on the admin plane and nothing else.
        #[arg(long, value_delimiter = ',')]
        monitors: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Issue certificates with the existing CA in DIR: replicas, admins and monitors as
    /// `<role>.<name>.crt|.key`, nodes as `nodes/<id>.crt|.key` (keys 0600). Every name is
    /// checked before anything is written; an existing pair is refused (see --skip-existing).
    Issue {
        #[command(flatten)]
        targets: IssueTargets,
        /// Keep pairs that already exist and issue only the missing ones.
        #[arg(long)]
        skip_existing: bool,
    },
    /// Replace existing certificates with new keys and certificates (same names, new validity).
    Renew {
        #[command(flatten)]
        targets: IssueTargets,
    },
    /// Revoke a certificate through the journal (admin certificates only): every replica
    /// refuses it at the handshake and closes its open connections once it applies the entry.
    /// `--serial` revokes one certificate (its renewal stays valid); `--name` with `--role`
    /// revokes every certificate of that role and CN, renewals included.
    Revoke(RevokeArgs),
}

/// `bootstorm certs revoke`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["serial", "name"])))]
pub struct RevokeArgs {
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The certificate's x509 serial in hex (`openssl x509 -noout -serial`; colons and a `0x`
    /// prefix are accepted).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["name", "role"])]
    pub serial: Option<String>,
    /// The certificate's subject CN: every certificate of `--role` with this CN is revoked.
    #[arg(long, value_name = "NAME", requires = "role")]
    pub name: Option<String>,
    /// The role of the certificates named by `--name`: replica, admin, monitor or node.
    #[arg(long, value_name = "ROLE", requires = "name")]
    pub role: Option<config::CertificateRole>,
    /// Why (recorded in the journal entry).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    /// Print one JSON object (`{"seq":..,"log_index":..}`) instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// `bootstorm policy`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Subcommand, Debug, Clone)]
pub enum PolicyAction {
    /// Create a vCluster or replace its policy (description, auto-converge, settings).
    Set {
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        #[arg(long)]
        vcluster: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Converge drift on this vCluster's nodes automatically (else only alert).
        #[arg(long)]
        auto_converge: bool,
        /// A policy setting `KEY=VALUE`; repeat for several.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// `bootstorm node`.
#[derive(Args, Debug, Clone)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub action: NodeAction,
}

#[derive(Subcommand, Debug, Clone)]
pub enum NodeAction {
    /// Register a node into a vCluster (or move it to another one).
    Register {
        #[arg(long, value_name = "FILE")]
        cluster: PathBuf,
        /// Node id, e.g. `node-0001`.
        #[arg(long = "node", value_name = "ID")]
        node_id: String,
        #[arg(long)]
        vcluster: String,
        #[arg(long)]
        json: bool,
    },
}

/// What a write answered: the journal seq it appended (if any) and its raft log index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Committed {
    pub seq: Option<u64>,
    pub log_index: u64,
}

/// One journal entry as `bootstorm log` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryView {
    pub seq: u64,
    #[serde(rename = "type")]
    pub entry_type: String,
    pub scope: String,
    pub author: String,
    pub timestamp_ms: u64,
    pub parent: Option<u64>,
    pub target_seq: Option<u64>,
    pub ttl_s: Option<u64>,
    pub policy_ref: Option<String>,
    pub emergency_reason: Option<String>,
    pub files: Vec<FileView>,
    pub removes: Vec<String>,
    pub settings: BTreeMap<String, String>,
}

/// A file of an entry's delta (its content is not printed: only its size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileView {
    pub path: String,
    /// Octal, e.g. `0644`.
    pub mode: String,
    pub owner: Option<String>,
    pub size_bytes: usize,
}

impl From<&config::ConfigEntry> for EntryView {
    fn from(entry: &config::ConfigEntry) -> Self {
        EntryView {
            seq: entry.seq,
            entry_type: entry.entry_type.as_str().to_owned(),
            scope: entry.scope.to_string(),
            author: entry.author.clone(),
            timestamp_ms: entry.timestamp_ms,
            parent: entry.parent,
            target_seq: entry.target_seq,
            ttl_s: entry.ttl_s,
            policy_ref: entry.policy_ref.clone(),
            emergency_reason: entry.emergency_reason.clone(),
            files: entry
                .delta
                .files
                .iter()
                .map(|(path, file)| FileView {
                    path: path.clone(),
                    mode: format!("{:04o}", file.mode),
                    owner: file.owner.clone(),
                    size_bytes: file.content.len(),
                })
                .collect(),
            removes: entry.delta.removes.iter().cloned().collect(),
            settings: entry.delta.settings.clone(),
        }
    }
}

/// `bootstorm log --json`: the entries and where the next page starts (`null` at the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogPage {
    pub entries: Vec<EntryView>,
    pub next_since: Option<u64>,
}

/// Runs an async command on a fresh single-threaded runtime (the CLI is sync).
fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Loads the cluster file and connects to its admin plane.
pub async fn connect(cluster: &Path) -> Result<AdminClient> {
    let file = ClusterFile::load(cluster)
        .with_context(|| format!("loading cluster file {}", cluster.display()))?;
    AdminClient::connect(&file)
        .await
        .with_context(|| format!("connecting to the cluster of {}", cluster.display()))
}

/// Sends a write and turns every answer but `Committed` into an error that says why.
async fn write(client: &AdminClient, what: &str, request: AdminRequest) -> Result<Committed> {
    let answer = client
        .request(request)
        .await
        .with_context(|| format!("sending the {what}"))?;
    match answer {
        AdminResponse::Committed { seq, log_index } => Ok(Committed { seq, log_index }),
        other => Err(refusal(what, other)),
    }
}

/// The error for an answer that is not the expected success.
fn refusal(what: &str, answer: AdminResponse) -> anyhow::Error {
    match answer {
        AdminResponse::Error { code, message } => anyhow!("{what} refused ({code}): {message}"),
        AdminResponse::NotLeader { leader } => anyhow!(
            "{what} failed: no leader accepted it (last answer: not the leader, leader {})",
            leader.as_deref().unwrap_or("unknown")
        ),
        other => anyhow!(
            "{what} failed: the server answered {} (unexpected)",
            other.kind().as_str()
        ),
    }
}

/// Reads and checks a delta file locally: a malformed file is refused here, naming the line.
pub fn load_delta(path: &Path) -> Result<StateDelta> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading delta file {}", path.display()))?;
    let delta = StateDelta::from_toml(&text)
        .with_context(|| format!("delta file {} is not valid", path.display()))?;
    let max_bytes = config::limits::ENTRY_DELTA_SIZE_MAX_BYTES;
    if delta.size_bytes() > max_bytes {
        bail!(
            "delta file {} weighs {} bytes, more than the limit of {max_bytes} for one entry; split it into several commits",
            path.display(),
            delta.size_bytes()
        );
    }
    Ok(delta)
}

/// The entry `bootstorm commit` sends. Author and timestamp are left empty: the server sets
/// them (certificate identity, leader clock).
pub fn commit_entry(args: &CommitArgs, delta: StateDelta) -> NewEntry {
    NewEntry {
        timestamp_ms: 0,
        entry_type: args.entry_type,
        scope: args.scope.clone(),
        author: String::new(),
        parent: args.parent,
        delta,
        policy_ref: args.policy_ref.clone(),
        ttl_s: args.ttl,
        emergency_reason: args.reason.clone(),
        target_seq: None,
    }
}

pub async fn run_commit(args: &CommitArgs) -> Result<Committed> {
    let delta = load_delta(&args.delta)?;
    let entry = commit_entry(args, delta);
    let client = connect(&args.cluster).await?;
    write(&client, "commit", AdminRequest::Commit { entry }).await
}

pub fn commit(args: CommitArgs) -> Result<()> {
    let committed = block_on(run_commit(&args))?;
    print_committed(&committed, args.json, "committed")
}

fn print_committed(committed: &Committed, json: bool, verb: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(committed)?);
    } else {
        match committed.seq {
            Some(seq) => println!("{verb}: seq {seq} (raft log index {})", committed.log_index),
            None => println!("{verb} (raft log index {})", committed.log_index),
        }
    }
    Ok(())
}

pub async fn run_rollback(args: &RollbackArgs) -> Result<Committed> {
    let client = connect(&args.cluster).await?;
    let request = AdminRequest::Rollback {
        scope: args.scope.clone(),
        to_seq: args.to_seq,
        parent: args.parent,
    };
    write(&client, "rollback", request).await
}

pub fn rollback(args: RollbackArgs) -> Result<()> {
    let committed = block_on(run_rollback(&args))?;
    print_committed(&committed, args.json, "rolled back")
}

/// Reads up to `limit` entries from `since`, page by page.
pub async fn read_log(
    client: &AdminClient,
    scope: Option<Scope>,
    since: u64,
    limit: u32,
) -> Result<LogPage> {
    let mut entries = Vec::new();
    let mut since = since;
    let mut next_since = Some(since);
    while (entries.len() as u64) < u64::from(limit) {
        let remaining = limit - entries.len() as u32;
        let request = AdminRequest::Log {
            scope: scope.clone(),
            since,
            limit: remaining.min(LOG_ENTRIES_PER_RESPONSE_MAX),
        };
        match client
            .request(request)
            .await
            .context("reading the journal")?
        {
            AdminResponse::Log {
                entries: page,
                next_since: next,
            } => {
                entries.extend(page.iter().map(EntryView::from));
                next_since = next;
                match next {
                    Some(next) if !page.is_empty() => since = next,
                    _ => break,
                }
            }
            other => return Err(refusal("log read", other)),
        }
    }
    Ok(LogPage {
        entries,
        next_since,
    })
}

pub async fn run_log(args: &LogArgs) -> Result<LogPage> {
    let client = connect(&args.cluster).await?;
    read_log(&client, args.scope.clone(), args.since, args.limit).await
}

pub fn log(args: LogArgs) -> Result<()> {
    let page = block_on(run_log(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    if page.entries.is_empty() {
        println!("no entries with seq >= {}", args.since);
    }
    for e in &page.entries {
        let mut details = Vec::new();
        if let Some(parent) = e.parent {
            details.push(format!("parent {parent}"));
        }
        if let Some(target) = e.target_seq {
            details.push(format!("target {target}"));
        }
        if let Some(ttl) = e.ttl_s {
            details.push(format!("ttl {ttl}s"));
        }
        if e.entry_type == EntryType::CertificateRevoked.as_str() {
            if let Some(certificate) = &e.policy_ref {
                details.push(format!("certificate {certificate}"));
            }
        }
        if let Some(reason) = &e.emergency_reason {
            details.push(format!("reason {reason:?}"));
        }
        println!(
            "seq {:<6} {:<18} {:<22} by {:<12} at {} ms{}{}",
            e.seq,
            e.entry_type,
            e.scope,
            e.author,
            e.timestamp_ms,
            if details.is_empty() { "" } else { "  " },
            details.join(", ")
        );
        for f in &e.files {
            println!(
                "    write  {} (mode {}, {} bytes)",
                f.path, f.mode, f.size_bytes
            );
        }
        for path in &e.removes {
            println!("    remove {path}");
        }
        for (key, value) in &e.settings {
            println!("    set    {key} = {value}");
        }
    }
    if let Some(next) = page.next_since {
        println!("(more entries: --since {next})");
    }
    Ok(())
}

pub async fn run_status(args: &StatusArgs) -> Result<ClusterStatus> {
    let file = ClusterFile::load(&args.cluster)
        .with_context(|| format!("loading cluster file {}", args.cluster.display()))?;
    // Status reports unreachable replicas instead of failing, so it does not insist on a
    // first connection; credentials problems still surface per replica.
    let client = AdminClient::connect(&file).await;
    let client = match client {
        Ok(client) => client,
        Err(error) if error.is_unreachable() => {
            return Err(error).context("no replica of the cluster answered")
        }
        Err(error) => return Err(error).context("connecting to the cluster"),
    };
    Ok(client.status_all().await)
}

pub fn status(args: StatusArgs) -> Result<()> {
    let status = block_on(run_status(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    match (&status.leader, status.leader_id) {
        (Some(name), Some(id)) => print!("leader {name} (node {id})"),
        (None, Some(id)) => print!("leader node {id}"),
        _ => print!("no leader known"),
    }
    println!(
        ", term {}, commit index {}",
        status.term, status.commit_index
    );
    println!(
        "{:<16} {:>4} {:<8} {:<5} {:>8} {:>7} {:>6} {:<13} {:<14} OVERLAYS",
        "NAME", "ID", "ROLE", "UP", "APPLIED", "SEQ", "LAG", "DIGEST", "CERT EXPIRES"
    );
    let now = crate::admin::unix_now_s();
    for r in &status.replicas {
        let id = r.node_id.map_or("-".to_owned(), |id| id.to_string());
        let digest: String = r.state_digest.chars().take(12).collect();
        let overlays: Vec<String> = r
            .overlays
            .iter()
            .map(|o| format!("{}@{}", o.vcluster, o.seq))
            .collect();
        println!(
            "{:<16} {:>4} {:<8} {:<5} {:>8} {:>7} {:>6} {:<13} {:<14} {}",
            r.name,
            id,
            r.role,
            if r.reachable { "yes" } else { "no" },
            r.applied_index,
            r.applied_seq,
            r.lag,
            if digest.is_empty() {
                "-".to_owned()
            } else {
                digest
            },
            cert_expiry_cell(r, now),
            overlays.join(" ")
        );
        if let Some(error) = &r.error {
            println!("{:<16} unreachable: {error}", "");
        }
        if let Some(expiry) = r.cert_expiry() {
            let days = expiry.days_left(now);
            match expiry.state(now) {
                net::ExpiryState::Valid => {}
                net::ExpiryState::ExpiresSoon => println!(
                    "{:<16} ! certificate expires in {days} days: `bootstorm certs renew --replica {}`, then restart it",
                    "", r.name
                ),
                net::ExpiryState::Expired => println!(
                    "{:<16} ! certificate expired: `bootstorm certs renew --replica {}`, then restart it",
                    "", r.name
                ),
            }
        }
    }
    Ok(())
}

/// The `CERT EXPIRES` cell of a status row: the date, `!` and the days left when within
/// `CERT_EXPIRY_WARNING_DAYS`, `EXPIRED` past it, `-` when the replica did not say.
pub fn cert_expiry_cell(row: &crate::admin::ReplicaView, now_unix_s: i64) -> String {
    let Some(expiry) = row.cert_expiry() else {
        return "-".to_owned();
    };
    let date: String = expiry.not_after_rfc3339().chars().take(10).collect();
    match expiry.state(now_unix_s) {
        net::ExpiryState::Valid => date,
        net::ExpiryState::ExpiresSoon => format!("{date} !{}d", expiry.days_left(now_unix_s)),
        net::ExpiryState::Expired => format!("{date} EXPIRED"),
    }
}

/// The request of a membership change.
pub fn members_request(action: &MembersAction) -> AdminRequest {
    match action.clone() {
        MembersAction::AddLearner {
            node_id,
            name,
            raft_addr,
            admin_addr,
            boot_addr,
        } => AdminRequest::AddLearner {
            node_id,
            name,
            raft_addr,
            boot_addr,
            admin_addr,
        },
        MembersAction::Promote { node_id } => AdminRequest::Promote { node_id },
        MembersAction::Remove { node_id } => AdminRequest::Remove { node_id },
    }
}

pub async fn run_members(args: &MembersArgs) -> Result<()> {
    let what = match &args.action {
        MembersAction::AddLearner { .. } => "add-learner",
        MembersAction::Promote { .. } => "promote",
        MembersAction::Remove { .. } => "remove",
    };
    let client = connect(&args.cluster).await?;
    match client
        .request(members_request(&args.action))
        .await
        .with_context(|| format!("sending {what}"))?
    {
        AdminResponse::Ok => Ok(()),
        other => Err(refusal(what, other)),
    }
}

pub fn members(args: MembersArgs) -> Result<()> {
    block_on(run_members(&args))?;
    let (action, node_id) = match &args.action {
        MembersAction::AddLearner { node_id, .. } => ("add-learner", node_id),
        MembersAction::Promote { node_id } => ("promote", node_id),
        MembersAction::Remove { node_id } => ("remove", node_id),
    };
    if args.json {
        let out = serde_json::json!({ "ok": true, "action": action, "node_id": node_id });
        println!("{out}");
    } else {
        println!("{action} node {node_id}: done");
    }
    Ok(())
}

/// `bootstorm certs init` output.
#[derive(Clone, Debug, Serialize)]
pub struct CertsReport {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub replicas: BTreeMap<String, (PathBuf, PathBuf)>,
    pub admins: BTreeMap<String, (PathBuf, PathBuf)>,
    pub monitors: BTreeMap<String, (PathBuf, PathBuf)>,
}

/// Who `certs init` issues certificates for, beside the new CA.
#[derive(Clone, Debug, Default)]
pub struct InitNames {
    pub replicas: Vec<String>,
    pub admins: Vec<String>,
    /// Read-only identities (may be empty).
    pub monitors: Vec<String>,
}

pub fn run_certs_init(dir: &Path, names: &InitNames) -> Result<CertsReport> {
    fn refs(names: &[String]) -> Vec<&str> {
        names.iter().map(String::as_str).collect()
    }
    let files = net::generate_cluster_certs_with_monitors(
        dir,
        &refs(&names.replicas),
        &refs(&names.admins),
        &refs(&names.monitors),
    )
    .with_context(|| format!("generating cluster certificates in {}", dir.display()))?;
    let pairs = |map: BTreeMap<String, net::CertKeyPaths>| {
        map.into_iter()
            .map(|(name, paths)| (name, (paths.cert, paths.key)))
            .collect()
    };
    Ok(CertsReport {
        ca_cert: files.ca_cert,
        ca_key: files.ca_key,
        replicas: pairs(files.replicas),
        admins: pairs(files.admins),
        monitors: pairs(files.monitors),
    })
}

/// What `certs revoke` names, checked locally: a malformed serial or an empty name is refused
/// before anything is sent.
pub fn revoked_certificate(args: &RevokeArgs) -> Result<config::RevokedCertificate> {
    match (&args.serial, &args.name, args.role) {
        (Some(serial), None, None) => config::RevokedCertificate::serial_from_hex(serial)
            .map_err(|reason| anyhow!("invalid --serial {serial:?}: {reason}")),
        (None, Some(name), Some(role)) if !name.is_empty() => {
            Ok(config::RevokedCertificate::Name {
                role,
                name: name.clone(),
            })
        }
        (None, Some(_), Some(_)) => bail!("--name is empty"),
        _ => bail!("give either --serial HEX, or --name NAME with --role ROLE"),
    }
}

pub async fn run_certs_revoke(args: &RevokeArgs) -> Result<Committed> {
    let certificate = revoked_certificate(args)?;
    let client = connect(&args.cluster).await?;
    let command = JournalCommand::RevokeCertificate {
        certificate,
        reason: args.reason.clone(),
        author: String::new(),
        timestamp_ms: 0,
    };
    write(&client, "revocation", AdminRequest::Propose(command)).await
}

pub fn certs(args: CertsArgs) -> Result<()> {
    let (targets, existing) = match args.action {
        CertsAction::Revoke(revoke) => {
            let committed = block_on(run_certs_revoke(&revoke))?;
            return print_committed(&committed, revoke.json, "revoked");
        }
        CertsAction::Init {
            dir,
            replicas,
            admins,
            monitors,
            json,
        } => {
            let names = InitNames {
                replicas,
                admins,
                monitors,
            };
            return certs_init(&dir, &names, json);
        }
        CertsAction::Issue {
            targets,
            skip_existing,
        } => {
            let existing = if skip_existing {
                net::Existing::Skip
            } else {
                net::Existing::Refuse
            };
            (targets, existing)
        }
        CertsAction::Renew { targets } => (targets, net::Existing::Replace),
    };
    let report = crate::certs_issue::run(&targets, existing)?;
    crate::certs_issue::print(&report, targets.json)
}

fn certs_init(dir: &Path, names: &InitNames, json: bool) -> Result<()> {
    let report = run_certs_init(dir, names)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "cluster CA: {} (key {})",
        report.ca_cert.display(),
        report.ca_key.display()
    );
    let roles = [
        ("replica", &report.replicas),
        ("admin", &report.admins),
        ("monitor", &report.monitors),
    ];
    for (role, map) in roles {
        for (name, (cert, key)) in map {
            println!(
                "{role:<8} {name:<16} {} (key {})",
                cert.display(),
                key.display()
            );
        }
    }
    println!("keep ca.key offline once every certificate is issued; it signs every identity");
    Ok(())
}

/// Parses `KEY=VALUE` settings.
pub fn parse_settings(settings: &[String]) -> Result<BTreeMap<String, String>> {
    let mut parsed = BTreeMap::new();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| anyhow!("setting {setting:?} is not KEY=VALUE"))?;
        if parsed.insert(key.to_owned(), value.to_owned()).is_some() {
            bail!("setting {key:?} is given twice");
        }
    }
    Ok(parsed)
}

pub async fn run_policy(args: &PolicyArgs) -> Result<Committed> {
    let PolicyAction::Set {
        cluster,
        vcluster,
        description,
        auto_converge,
        settings,
        ..
    } = &args.action;
    let policy = VClusterPolicy {
        description: description.clone(),
        auto_converge: *auto_converge,
        settings: parse_settings(settings)?,
    };
    let command = JournalCommand::SetPolicy {
        vcluster_id: vcluster.clone(),
        policy,
        author: String::new(),
        timestamp_ms: 0,
    };
    let client = connect(cluster).await?;
    write(&client, "policy update", AdminRequest::Propose(command)).await
}

pub fn policy(args: PolicyArgs) -> Result<()> {
    let committed = block_on(run_policy(&args))?;
    let PolicyAction::Set { json, .. } = args.action;
    print_committed(&committed, json, "policy set")
}

pub async fn run_node(args: &NodeArgs) -> Result<Committed> {
    let NodeAction::Register {
        cluster,
        node_id,
        vcluster,
        ..
    } = &args.action;
    let command = JournalCommand::UpdateNodeState {
        node_id: node_id.clone(),
        state: NodeState {
            vcluster: vcluster.clone(),
            status: NodeStatus::Committed,
        },
        author: String::new(),
        timestamp_ms: 0,
    };
    let client = connect(cluster).await?;
    write(&client, "node registration", AdminRequest::Propose(command)).await
}

pub fn node(args: NodeArgs) -> Result<()> {
    let committed = block_on(run_node(&args))?;
    let NodeAction::Register { json, .. } = args.action;
    print_committed(&committed, json, "node registered")
}

/// The CLI exit code for a failed command: 3 when the cluster could not be reached at all,
/// 1 otherwise (the message says why).
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let unreachable = error.chain().any(|cause| {
        cause
            .downcast_ref::<crate::admin::ClientError>()
            .is_some_and(crate::admin::ClientError::is_unreachable)
    });
    if unreachable {
        3
    } else {
        1
    }
}
