//! `<binary> completion bash|zsh|fish|...`: the shell's completion script for a binary.

use clap::Command;
use clap_complete::Shell;

#[derive(clap::Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionArgs {
    /// Prints the script completing `command`, invoked as `bin_name`, to standard output.
    pub fn print(&self, command: Command, bin_name: &str) {
        print!("{}", script(self.shell, command, bin_name));
    }
}

/// The completion script of `command` for `shell`.
fn script(shell: Shell, mut command: Command, bin_name: &str) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, bin_name, &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    match shell {
        // clap_complete's bash script names a subcommand's state with the binary's '-'
        // spelt one way where it is set and another where it is matched, so nothing after
        // a subcommand of `hub-api` or `edge-agent` would complete (clap-rs/clap#6421):
        // spell it the first way everywhere.
        Shell::Bash if bin_name.contains('-') => {
            script.replace(&bin_name.replace('-', "__subcmd__"), &bin_name.replace('-', "__"))
        }
        _ => script,
    }
}
