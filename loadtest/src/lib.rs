//! `bootstorm-loadtest` as a library: the workloads (`commits`, `propagation` and `boots`, the
//! boot-storm simulator, with its nginx baseline in `nginx`), the cluster they run against (`target`: a
//! spawned local `bootstorm dev` cluster or a cluster file), the report (`report`: hdrhistogram
//! percentiles, readable table, JSON) and same-run peer baselines (`baseline`).
//!
//! Invariants: every run is bounded (a count *and* a wall-clock limit); a spawned cluster
//! listens on loopback only and is stopped by PID afterwards, also on error and on Ctrl-C;
//! peers run one after the other, never at the same time, so they do not share the CPU.

pub mod baseline;
pub mod boots;
pub mod cli;
pub mod commits;
pub mod nginx;
pub mod plot;
pub mod progress;
pub mod propagation;
pub mod report;
pub mod rounds;
pub mod scenario;
pub mod server_load;
pub mod target;
pub mod timeline;
pub mod workload;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

/// Exit code when the run completed but some operations failed.
pub const EXIT_FAILURES: u8 = 1;
/// Exit code when the run could not be made (bad arguments, cluster not started, …).
pub const EXIT_ERROR: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The exit code of a finished run, the same for every workload: interrupted beats a failed
/// baseline, which beats failed operations.
pub fn run_exit_code(interrupted: bool, baseline_failed: bool, operations_failed: u64) -> ExitCode {
    if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if baseline_failed {
        ExitCode::from(EXIT_ERROR)
    } else if operations_failed > 0 {
        ExitCode::from(EXIT_FAILURES)
    } else {
        ExitCode::SUCCESS
    }
}

/// Set by Ctrl-C (or SIGTERM): workloads stop claiming work, report what they measured and
/// the spawned cluster is stopped.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Resolves once the flag is set (polled: the flag has no waker and 50 ms is well within
    /// what a person pressing Ctrl-C notices).
    pub async fn wait(&self) {
        while !self.is_set() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

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
