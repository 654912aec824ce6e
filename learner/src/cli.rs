//! Command-line interface: argument parsing and the commands that exist today.
//!
//! Every command prints a readable report by default and one JSON object with `--json`, so
//! scripts never parse prose. Errors go to stderr with the chain of causes; the exit code is
//! 0 on success, 1 on a failure the message explains, 2 on bad usage (clap), 3 when the
//! cluster could not be reached (admin commands, see `client::commands::exit_code`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use config::demo::{self, DemoSpec};
use config::StateDelta;

/// bootstorm: serve node configuration to a site-wide boot storm from Raft-replicated learners.
#[derive(Parser, Debug)]
#[command(
    name = "bootstorm",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 ok; 1 failed or refused (the message says why); 2 usage error; 3 cluster unreachable (no replica answered, or no leader)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a complete local cluster: generated certificates, voters and learners as separate
    /// processes, the demo journal committed through Raft; runs until Ctrl-C.
    ///
    /// Writes DIR/cluster.toml (the client file for --cluster) and DIR/<replica>.toml (each
    /// replica's config, so one killed by hand restarts with `bootstorm serve --config`).
    /// Running it again on the same DIR restarts the same cluster with its data.
    Dev {
        /// Where certificates, configs, logs and replica data live.
        #[arg(long = "data", default_value = "bootstorm-dev")]
        data_dir: PathBuf,
        /// Number of voters (odd: 1, 3 or 5).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=7))]
        voters: u16,
        /// Number of learners (read replicas serving boots).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=16))]
        learners: u16,
        /// First port: replica i listens on base+10i+1 (raft), +2 (admin), +3 (boot), +4 (metrics).
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// Number of demo nodes committed into a new cluster (node-0001 …; odd → compute, even → gpu).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        nodes: u32,
        /// Print one JSON `ready` object instead of the readable report.
        #[arg(long)]
        json: bool,
    },
    /// Build the demo journal and its overlays in memory and report them (sizes, hashes, build
    /// times); no cluster, no network.
    Demo {
        /// Number of demo nodes (node-0001 …; odd → compute, even → gpu).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        nodes: u32,
        /// Print one JSON object instead of the readable report.
        #[arg(long)]
        json: bool,
    },
    /// Check a delta file (the TOML an admin commits) and print what it contains.
    CheckDelta {
        /// Path of the delta file.
        file: PathBuf,
        /// Print one JSON object instead of the readable report.
        #[arg(long)]
        json: bool,
    },
    /// Run a replica (voter or learner) from its config file until SIGINT/SIGTERM.
    ///
    /// Prints one readiness line on stdout once every plane is bound (`--json`: one JSON
    /// object with the bound addresses); logs go to stderr (`RUST_LOG`, default `info`).
    ///
    /// Exit codes: 0 stopped by SIGINT/SIGTERM; 1 could not start (the message says why);
    /// 70 the raft core stopped on a fatal error (a failed fsync, a full disk, a panic in the
    /// core): the log names the cause at error level, every plane was closed at once so no
    /// boot is served from the frozen state, and the service manager should restart it.
    Serve {
        /// The replica config (TOML: node_id, name, role, data_dir, listen, tls, peers, raft).
        #[arg(long)]
        config: PathBuf,
        /// Print the readiness line as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Commit a delta file to a scope through the leader; prints the journal seq.
    Commit(client::commands::CommitArgs),
    /// Restore a scope's config as of an earlier seq (appends a rollback entry).
    Rollback(client::commands::RollbackArgs),
    /// Read journal entries (paged), optionally of one scope.
    Log(client::commands::LogArgs),
    /// Every replica's own status: role, applied index and seq, lag, state digest, overlays.
    Status(client::commands::StatusArgs),
    /// Change the raft membership: add a learner, promote it to voter, remove a member.
    Members(client::commands::MembersArgs),
    /// Generate cluster certificates (CA, replicas, admins).
    Certs(client::commands::CertsArgs),
    /// Create a vCluster or replace its policy.
    Policy(client::commands::PolicyArgs),
    /// Register a node into a vCluster.
    Node(client::commands::NodeArgs),
    /// Boot agent: fetch a node's overlay and delta (failing over across the cluster file's
    /// replicas), verify them, apply them to --root, remember the overlay for the next boot.
    ///
    /// Exit codes: 0 applied (or verified, without --root); 1 refused or failed (unknown
    /// node, certificate of another node, verification or apply failure); 2 usage error;
    /// 3 no replica served the fetch in time (each attempt is listed).
    Fetch(agent::fetch::FetchArgs),
}

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(
                crate::daemon::exit_code(&error)
                    .or_else(|| agent::fetch::exit_code(&error))
                    .unwrap_or_else(|| client::commands::exit_code(&error)),
            )
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dev {
            data_dir,
            voters,
            learners,
            base_port,
            nodes,
            json,
        } => {
            let options = dev::DevOptions {
                data_dir,
                voters,
                learners,
                base_port,
                nodes,
                json,
                exe: std::env::current_exe().context("finding the bootstorm binary")?,
            };
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(dev::run(options))
        }
        Command::Demo { nodes, json } => demo(nodes, json),
        Command::CheckDelta { file, json } => check_delta(&file, json),
        Command::Serve { config, json } => crate::daemon::main(
            &config,
            if json {
                crate::daemon::ReadyFormat::Json
            } else {
                crate::daemon::ReadyFormat::Text
            },
        ),
        Command::Commit(args) => client::commands::commit(args),
        Command::Rollback(args) => client::commands::rollback(args),
        Command::Log(args) => client::commands::log(args),
        Command::Status(args) => client::commands::status(args),
        Command::Members(args) => client::commands::members(args),
        Command::Certs(args) => client::commands::certs(args),
        Command::Policy(args) => client::commands::policy(args),
        Command::Node(args) => client::commands::node(args),
        Command::Fetch(args) => agent::fetch::run(args),
    }
}

#[derive(Serialize)]
struct OverlayReport {
    vcluster: String,
    seq: u64,
    hash: String,
    raw_bytes: u64,
    compressed_bytes: usize,
    files: usize,
    build_ms: f64,
}

#[derive(Serialize)]
struct NodeDeltaReport {
    node: String,
    vcluster: String,
    seq: u64,
    hash: String,
    bytes: usize,
    build_us: f64,
}

#[derive(Serialize)]
struct DevReport {
    nodes: u32,
    entries: u64,
    last_seq: u64,
    apply_ms: f64,
    overlays: Vec<OverlayReport>,
    sample_deltas: Vec<NodeDeltaReport>,
}

fn demo(nodes: u32, json: bool) -> Result<()> {
    let spec = DemoSpec {
        nodes,
        ..DemoSpec::default()
    };
    let started = Instant::now();
    let state = demo::demo_state(&spec);
    let apply_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut overlays = Vec::new();
    for vcluster in demo::DEMO_VCLUSTERS {
        let started = Instant::now();
        let built = overlay::build_overlay(&state, vcluster)
            .with_context(|| format!("building the overlay of vcluster {vcluster}"))?;
        let build_ms = started.elapsed().as_secs_f64() * 1e3;
        overlays.push(OverlayReport {
            vcluster: vcluster.to_owned(),
            seq: built.seq,
            hash: hex::encode(built.hash),
            raw_bytes: built.raw_len,
            compressed_bytes: built.compressed.len(),
            files: state.vcluster_config(vcluster).files.len(),
            build_ms,
        });
    }
    // One plain node and one with a committed manual change (every 100th node has one).
    let sample_nodes = [demo::node_name(2.min(nodes)), demo::node_name(1)];
    let mut sample_deltas = Vec::new();
    for node in sample_nodes {
        let started = Instant::now();
        let built = overlay::build_node_delta(&state, &node)
            .with_context(|| format!("building the delta of node {node}"))?;
        let build_us = started.elapsed().as_secs_f64() * 1e6;
        sample_deltas.push(NodeDeltaReport {
            node: built.node,
            vcluster: built.vcluster,
            seq: built.seq,
            hash: hex::encode(built.hash),
            bytes: built.bytes.len(),
            build_us,
        });
    }
    let report = DevReport {
        nodes,
        entries: state.entries.len() as u64,
        last_seq: state.last_seq,
        apply_ms,
        overlays,
        sample_deltas,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "demo journal: {} nodes, {} entries (last seq {}), applied in {:.1} ms",
        report.nodes, report.entries, report.last_seq, report.apply_ms
    );
    println!("\nphase 1 — base overlays (canonical → blake3 → zstd):");
    for o in &report.overlays {
        println!(
            "  {:<8} seq {:<5} {:>3} files  {:>8} B raw  {:>7} B zstd  built in {:>6.2} ms  blake3 {}…",
            o.vcluster, o.seq, o.files, o.raw_bytes, o.compressed_bytes, o.build_ms, &o.hash[..16]
        );
    }
    println!("\nphase 2 — node deltas:");
    for d in &report.sample_deltas {
        println!(
            "  {:<10} ({:<7}) seq {:<5} {:>5} B  built in {:>6.1} µs  blake3 {}…",
            d.node,
            d.vcluster,
            d.seq,
            d.bytes,
            d.build_us,
            &d.hash[..16]
        );
    }
    println!("\n`bootstorm dev` runs this journal on a local cluster; `bootstorm check-delta FILE` validates a delta file.");
    Ok(())
}

#[derive(Serialize)]
struct DeltaSummary {
    files: Vec<(String, String, usize)>,
    removes: Vec<String>,
    settings: std::collections::BTreeMap<String, String>,
    size_bytes: usize,
}

fn check_delta(file: &PathBuf, json: bool) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading delta file {}", file.display()))?;
    let delta = StateDelta::from_toml(&text)
        .with_context(|| format!("delta file {} is not valid", file.display()))?;
    let summary = DeltaSummary {
        files: delta
            .files
            .iter()
            .map(|(path, spec)| {
                (
                    path.clone(),
                    format!("{:04o}", spec.mode),
                    spec.content.len(),
                )
            })
            .collect(),
        removes: delta.removes.iter().cloned().collect(),
        settings: delta.settings.clone(),
        size_bytes: delta.size_bytes(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{}: valid delta, {} bytes",
        file.display(),
        summary.size_bytes
    );
    for (path, mode, len) in &summary.files {
        println!("  write  {path} (mode {mode}, {len} bytes)");
    }
    for path in &summary.removes {
        println!("  remove {path}");
    }
    for (key, value) in &summary.settings {
        println!("  set    {key} = {value}");
    }
    Ok(())
}
