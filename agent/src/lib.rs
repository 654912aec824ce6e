//! bootstorm-agent: the node side of bootstorm — fetch a node's phase 1 (its vCluster's base
//! overlay) and phase 2 (its node delta) from the replicas of a cluster file with failover,
//! verify them, apply them to a root directory, and keep the state file that makes the next
//! boot conditional. The static `bootstorm-agent` binary goes into an initramfs; the daemon's
//! `bootstorm fetch` calls the same library.
//!
//! Must never: apply bytes it did not verify, or link daemon code — its dependency tree holds no
//! openraft, rcgen, metrics or mimalloc (CI checks `cargo tree -p bootstorm-agent -e normal`),
//! so the binary stays small enough for every node's initramfs.

pub mod fetch;

/// The `bootstorm-agent` command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "bootstorm-agent",
    version,
    about = "bootstorm's node agent: fetch, verify and apply a node's configuration."
)]
pub struct AgentCli {
    #[command(subcommand)]
    pub command: AgentCommand,
}

/// The agent's commands.
#[derive(clap::Subcommand, Debug)]
pub enum AgentCommand {
    /// Fetch a node's overlay and delta (failing over across the cluster file's replicas),
    /// verify them, apply them to --root, remember the overlay for the next boot.
    ///
    /// Exit codes: 0 applied (or verified, without --root); 1 refused or failed (unknown
    /// node, certificate of another node, verification or apply failure); 2 usage error;
    /// 3 no replica served the fetch in time (each attempt is listed).
    Fetch(fetch::FetchArgs),
}

/// Runs the parsed command line and maps its outcome to the documented exit code.
pub fn main(cli: AgentCli) -> std::process::ExitCode {
    let outcome = match cli.command {
        AgentCommand::Fetch(args) => fetch::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(fetch::exit_code(&error).unwrap_or(1))
        }
    }
}
