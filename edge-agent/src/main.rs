//! `edge-agent`: the Faros device agent (see the library for what it does).

/// With the `jemalloc` feature, for simulator builds: `edge-agent simulate` with 30,000 agents
/// spent over a third of its CPU in glibc's malloc and free, and needs about half the CPU on
/// jemalloc (docs/benchmarks.md, "Status every five minutes, slimmer renewals, and the
/// simulator on jemalloc"). Devices keep the system allocator, which keeps one agent's binary
/// and memory small.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    edge_agent::main()
}
