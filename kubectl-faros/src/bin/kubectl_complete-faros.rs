//! `kubectl_complete-faros`: kubectl (1.26 and later) runs it, found on `PATH`, to complete
//! `kubectl faros ...`. It hands the words to `kubectl-faros __complete` (the plugin beside it,
//! else the one on `PATH`), which knows the commands and asks the hub for names.

use std::os::unix::process::CommandExt;
use std::process::Command;

fn main() {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("kubectl-faros")))
        .filter(|plugin| plugin.is_file());
    let plugin = beside.unwrap_or_else(|| "kubectl-faros".into());
    let error = Command::new(plugin)
        .arg("__complete")
        .args(std::env::args_os().skip(1))
        .exec();
    // Without the plugin there is nothing to offer, and no file names either.
    eprintln!("kubectl_complete-faros: running kubectl-faros: {error}");
    println!(":4");
}
