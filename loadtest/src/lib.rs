//! `bootstorm-loadtest` as a library: the workloads (`commits`, `propagation` and `boots`, the
//! boot-storm simulator, with its nginx baseline in `nginx`), the cluster they run against (`target`: a
//! spawned local `bootstorm dev` cluster or a cluster file), the report (`report`: hdrhistogram
//! percentiles, readable table, JSON) and same-run peer baselines (`baseline`).
//!
//! Layers, each importing only from those below it: the command line and the commands on
//! top (`cli`; `commits`, `boots`, `propagation`); the parts the commands share under them
//! (`scenario`, `nginx` and `baseline` peers, `rounds` driver, `target`, `server_load`,
//! `timeline`, `plot`, the commits `report`); at the bottom the pieces with no workload in
//! them (`args`, `admin`, `figures`, `flood`, `table`, `failures`, `json`, `progress`, `workload`,
//! `interrupt`, `limits`). No two files import each other, directly or round a circle.
//!
//! Invariants: every run is bounded (a count *and* a wall-clock limit); a spawned cluster
//! listens on loopback only and is stopped by PID afterwards, also on error and on Ctrl-C;
//! peers run one after the other, never at the same time, so they do not share the CPU.

pub mod admin;
pub mod args;
pub mod baseline;
pub mod boots;
pub mod cli;
pub mod commits;
pub mod failures;
pub mod figures;
pub mod flood;
pub mod interrupt;
pub mod json;
pub mod limits;
pub mod nginx;
pub mod plot;
pub mod progress;
pub mod propagation;
pub mod report;
pub mod rounds;
pub mod scenario;
pub mod server_load;
pub mod table;
pub mod target;
pub mod timeline;
pub mod workload;

use std::process::ExitCode;

use anyhow::{Context, Result};

pub use interrupt::{run_exit_code, Interrupt, EXIT_ERROR, EXIT_FAILURES, EXIT_INTERRUPTED};

/// Runs the parsed command line and maps the outcome to an exit code, printing errors.
pub fn main(cli: cli::Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Runs one subcommand. Installs the Ctrl-C/SIGTERM handler first.
pub async fn run(cli: cli::Cli) -> Result<ExitCode> {
    let interrupt = Interrupt::default();
    {
        let interrupt = interrupt.clone();
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            eprintln!(
                "interrupted: stopping (finishing commits in flight, then stopping the cluster)"
            );
            interrupt.set();
        });
    }
    match cli.command {
        cli::Command::Commits(args) => {
            let plan = args.plan()?;
            commits::main(&plan, &interrupt).await
        }
        cli::Command::Propagation(args) => propagation::main(&args, &interrupt).await,
        cli::Command::Boots(args) => {
            let plan = args.plan()?;
            boots::main(&plan, &interrupt).await
        }
    }
}
