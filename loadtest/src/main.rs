//! `bootstorm-loadtest`: the load tester's command line. Thin by design: parse arguments,
//! then call into the library (`bootstorm_loadtest::run`), so tests drive the same code.
//!
//! Must never: target anything but loopback (a spawned cluster) or the cluster file the user
//! named; run unbounded (every workload stops at its count or its `--max-seconds`).

use clap::Parser as _;

/// mimalloc, not glibc malloc: see `memory` for why.
#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

fn main() -> std::process::ExitCode {
    // Before any thread starts; see the module doc for why.
    memory::disable_transparent_huge_pages();
    let cli = bootstorm_loadtest::cli::Cli::parse();
    bootstorm_loadtest::main(cli)
}
