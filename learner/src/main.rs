//! `bootstorm`: the replica daemon's command line. Thin by design: parse arguments, then call
//! into the library (`bootstorm::cli`), so tests drive the same code.

fn main() -> std::process::ExitCode {
    bootstorm::cli::main()
}
