//! What the Faros benchmarks share: the hub under test as a child process, the machine they
//! ran on, and summary statistics. Each benchmark is a binary (`hub-bench`,
//! `workspace-bench`, `workload-bench`, `fleet-bench`, `conn-bench`, `tunnel-bench`,
//! `merge-bench`); docs/benchmarks.md has their commands and results.

pub mod fleet;
pub mod h2;
pub mod hub;
pub mod machine;
pub mod stats;
