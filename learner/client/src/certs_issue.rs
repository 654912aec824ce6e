//! `bootstorm certs issue | renew`: certificates for replicas, admins, monitors and nodes from the
//! cluster CA already in a certificate directory — a handful of replicas or a site's 100,000
//! nodes in one run (`--nodes-file`), with a progress bar on a terminal.
//!
//! Invariants: every name, the validity and the existing files are checked before the first
//! write, so bad input writes nothing (`net::ClusterCa::issue_many`); node ids are read from
//! the file with their line numbers, so an error names the line; keys are written 0600.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use net::certs::{
    self, ClusterCa, Existing, IssuedMany, LEAF_VALIDITY_DAYS, NODE_CERT_VALIDITY_DAYS_DEFAULT,
};
use net::Role;
use serde::Serialize;

/// Below this many certificates no progress bar is drawn: the run is over before it would show.
pub const PROGRESS_BAR_CERTS_MIN: usize = 1_000;

/// Who `certs issue` / `certs renew` issues certificates for.
#[derive(Args, Debug, Clone)]
pub struct IssueTargets {
    /// The certificate directory holding the cluster CA (`ca.crt`, `ca.key`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// A replica (voter or learner) name; repeat for more.
    #[arg(long = "replica", value_name = "NAME")]
    pub replicas: Vec<String>,
    /// An admin identity (the author of its commits); repeat for more.
    #[arg(long = "admin", value_name = "NAME")]
    pub admins: Vec<String>,
    /// A read-only monitor identity (admin plane: status and log only); repeat for more.
    #[arg(long = "monitor", value_name = "NAME")]
    pub monitors: Vec<String>,
    /// A node id (bound into the certificate's CN); repeat for more.
    #[arg(long = "node", value_name = "ID")]
    pub nodes: Vec<String>,
    /// A file of node ids, one per line (blank lines and `#` comments ignored).
    #[arg(long, value_name = "FILE")]
    pub nodes_file: Option<PathBuf>,
    /// Validity in days [default: 90 for nodes, 825 for replicas, admins and monitors].
    #[arg(long, value_name = "DAYS")]
    pub days: Option<i64>,
    /// Print one JSON object instead of the readable report.
    #[arg(long)]
    pub json: bool,
}

/// One certificate of the report.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedView {
    pub role: String,
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `certs issue|renew --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct IssueReport {
    pub ca_cert: PathBuf,
    /// Validity of the node certificates written, in days (absent when none were asked for).
    pub node_days: Option<i64>,
    /// Validity of the replica, admin and monitor certificates written, in days.
    pub cluster_days: Option<i64>,
    pub written: Vec<IssuedView>,
    pub skipped: Vec<IssuedView>,
    pub elapsed_s: f64,
}

/// Reads node ids from `path`: one per line, blank lines and `#` comments ignored; an invalid
/// id is an error naming its line.
pub fn read_nodes_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the nodes file {}", path.display()))?;
    let mut ids = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let id = line.split('#').next().unwrap_or_default().trim();
        if id.is_empty() {
            continue;
        }
        certs::validate_name(id)
            .with_context(|| format!("{} line {}: bad node id", path.display(), number + 1))?;
        ids.push(id.to_owned());
    }
    Ok(ids)
}

/// Issues (or renews) what `targets` names; nothing is written when any check fails.
pub fn run(targets: &IssueTargets, existing: Existing) -> Result<IssueReport> {
    let started = Instant::now();
    let mut nodes = targets.nodes.clone();
    if let Some(file) = &targets.nodes_file {
        nodes.extend(read_nodes_file(file)?);
    }
    let cluster: Vec<(Role, String)> = targets
        .replicas
        .iter()
        .map(|name| (Role::Replica, name.clone()))
        .chain(
            targets
                .admins
                .iter()
                .map(|name| (Role::Admin, name.clone())),
        )
        .chain(
            targets
                .monitors
                .iter()
                .map(|name| (Role::Monitor, name.clone())),
        )
        .collect();
    let nodes: Vec<(Role, String)> = nodes.into_iter().map(|id| (Role::Node, id)).collect();
    if cluster.is_empty() && nodes.is_empty() {
        bail!("name at least one --replica, --admin, --monitor, --node or --nodes-file");
    }
    let ca = ClusterCa::load(&targets.dir)
        .with_context(|| format!("loading the cluster CA from {}", targets.dir.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let node_days = targets.days.unwrap_or(NODE_CERT_VALIDITY_DAYS_DEFAULT);
    let cluster_days = targets.days.unwrap_or(LEAF_VALIDITY_DAYS);
    // Both groups are checked before either is written.
    ca.check_issue(&cluster, cluster_days, existing)?;
    ca.check_issue(&nodes, node_days, existing)?;
    let bar = progress_bar(cluster.len() + nodes.len(), targets.json);
    let mut report = IssueReport {
        ca_cert: certs::ca_cert_path(&targets.dir),
        node_days: (!nodes.is_empty()).then_some(node_days),
        cluster_days: (!cluster.is_empty()).then_some(cluster_days),
        written: Vec::new(),
        skipped: Vec::new(),
        elapsed_s: 0.0,
    };
    let mut done_before = 0;
    for (group, days) in [(&cluster, cluster_days), (&nodes, node_days)] {
        if group.is_empty() {
            continue;
        }
        let progress = |n: u64| bar.set_position(done_before + n);
        let issued = ca
            .issue_many(group, days, existing, threads, &progress)
            .with_context(|| format!("issuing certificates in {}", targets.dir.display()))?;
        done_before += (issued.written.len() + issued.skipped.len()) as u64;
        add_views(&mut report, issued);
    }
    bar.finish_and_clear();
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn add_views(report: &mut IssueReport, issued: IssuedMany) {
    let view = |(role, name, paths): (Role, String, net::CertKeyPaths)| IssuedView {
        role: role.to_string(),
        name,
        cert: paths.cert,
        key: paths.key,
    };
    report.written.extend(issued.written.into_iter().map(view));
    report.skipped.extend(issued.skipped.into_iter().map(view));
}

/// A progress bar on stderr for long runs; hidden for short ones, with `--json`, and when
/// stderr is not a terminal (indicatif's default target).
fn progress_bar(total: usize, json: bool) -> indicatif::ProgressBar {
    if json || total < PROGRESS_BAR_CERTS_MIN {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} issuing certificates {pos}/{len} [{elapsed_precise}] {wide_bar} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Prints the report: JSON, or one line per certificate up to a few, then counts per role.
pub fn print(report: &IssueReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    const LINES_MAX: usize = 20;
    for view in report.written.iter().take(LINES_MAX) {
        println!(
            "{:<8} {:<16} {} (key {})",
            view.role,
            view.name,
            view.cert.display(),
            view.key.display()
        );
    }
    let count = |list: &[IssuedView], role: &str| list.iter().filter(|v| v.role == role).count();
    for role in ["replica", "admin", "monitor", "node"] {
        let (written, skipped) = (count(&report.written, role), count(&report.skipped, role));
        if written + skipped > 0 {
            println!("{role}: {written} written, {skipped} kept as they were");
        }
    }
    if let Some(days) = report.node_days {
        println!(
            "node certificates are valid for {days} days: renew them with `bootstorm certs renew`"
        );
    }
    println!("took {:.1} s", report.elapsed_s);
    Ok(())
}
