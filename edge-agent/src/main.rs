//! `edge-agent`: the Faros device agent (see the library for what it does).

fn main() -> std::process::ExitCode {
    edge_agent::main()
}
