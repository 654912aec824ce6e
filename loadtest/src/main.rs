//! `bootstorm-loadtest`: the load tester's command line. Thin by design: parse arguments,
//! then call into the library (`bootstorm_loadtest::run`), so tests drive the same code.
//!
//! Must never: target anything but loopback (a spawned cluster) or the cluster file the user
//! named; run unbounded (every workload stops at its count or its `--max-seconds`).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = bootstorm_loadtest::cli::Cli::parse();
    bootstorm_loadtest::main(cli)
}
