//! `bootstorm`: the replica daemon's command line. Thin by design: parse arguments, then call
//! into the library (`bootstorm::cli`), so tests drive the same code.

/// mimalloc, not glibc malloc: see `memory` for why.
#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

fn main() -> std::process::ExitCode {
    memory::disable_transparent_huge_pages();
    bootstorm::cli::main()
}
