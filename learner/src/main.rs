//! `bootstorm`: the replica daemon's command line. Thin by design: parse arguments, then call
//! into the library (`bootstorm::cli`), so tests drive the same code.

/// mimalloc, not glibc malloc: QUIC serving allocates per packet and frame; see the workspace
/// Cargo.toml for the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bootstorm::memory::disable_transparent_huge_pages();
    bootstorm::cli::main()
}
