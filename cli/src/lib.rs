//! What the Faros command lines share: every flag settable from the environment and from a
//! YAML `--config` file ([`parse`]), the build's version, commit and date ([`build`]), shell
//! completion scripts ([`CompletionArgs`]) and the log output ([`logging`]).

pub mod build;
mod completion;
mod config;
pub mod logging;

pub use completion::CompletionArgs;
pub use config::{command, parse, try_parse_from};
