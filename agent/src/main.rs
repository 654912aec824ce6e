//! `bootstorm-agent`: the node agent binary. Thin by design: parse arguments, then call into
//! the library (`agent::main`), so `bootstorm fetch` and tests drive the same code.

fn main() -> std::process::ExitCode {
    agent::main(<agent::AgentCli as clap::Parser>::parse())
}
