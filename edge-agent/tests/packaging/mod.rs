//! The agent's Debian package, built by `scripts/package-deb.sh` and installed by dpkg into a
//! scratch root: its files, its maintainer scripts, its dependencies (checked against the
//! versions this machine has), its unit, and the installed binary running.

use std::path::{Path, PathBuf};
use std::process::Command;

use faros_testkit::succeeded;

use crate::AGENT;

const PACKAGE: &str = "faros-edge-agent";

fn run_ok(what: &str, command: &mut Command) -> String {
    succeeded(what, &command.output().unwrap_or_else(|e| panic!("{what}: {e}")))
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    // Maintainer scripts run outside the root (no chroot, so no privileges needed) with
    // DPKG_ROOT naming it; the package's scripts then leave the running system alone.
    run_ok(
        &format!("dpkg {args:?}"),
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(["--force-not-root", "--force-script-chrootless", "--log=/dev/null"])
            .args(args),
    )
}

#[test]
fn debian_package_installs_the_agent_and_its_unit() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("faros-deb-{}-{}", std::process::id(), crate::nanos()));
    let printed = run_ok(
        "package-deb.sh",
        Command::new(repo.join("scripts/package-deb.sh"))
            .arg(AGENT)
            .arg(dir.join("out"))
            // The test binary is unoptimized and large: xz would take half a minute on it.
            .env("DEB_COMPRESSION", "none"),
    );
    let deb = PathBuf::from(printed.trim());
    let field = |name: &str| {
        run_ok(
            "dpkg-deb --field",
            Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name),
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), PACKAGE);
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    let depends = field("Depends");
    assert!(depends.contains("libc6 (>= "), "{depends}");

    // A root whose dpkg database holds this machine's entries for the package's
    // dependencies, so that dpkg checks them as on a device of this Debian release.
    let root = dir.join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).expect("create the dpkg database");
    }
    let mut status = String::new();
    for dependency in depends.split(',') {
        let name = dependency.split_whitespace().next().expect("a package name");
        status.push_str(&run_ok(
            "dpkg-query -s",
            Command::new("dpkg-query").args(["--status", name]),
        ));
        status.push('\n');
    }
    std::fs::write(root.join("var/lib/dpkg/status"), status).expect("write the dpkg status");

    dpkg(&root, &["--install", deb.to_str().expect("a UTF-8 path")]);
    let installed = dpkg(&root, &["--status", PACKAGE]);
    assert!(installed.contains("Status: install ok installed"), "{installed}");
    let version = run_ok(
        "edge-agent --version",
        Command::new(root.join("usr/bin/edge-agent")).arg("--version"),
    );
    // `edge-agent 0.1.0 (commit ..., built ...)`: the installed binary is the one just built.
    let built = run_ok("edge-agent --version", Command::new(AGENT).arg("--version"));
    assert!(
        version.starts_with(&format!("edge-agent {} ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert_eq!(version, built);
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/edge-agent.service")).expect("the unit");
    assert!(
        unit.contains("\nExecStart=/usr/bin/edge-agent\n"),
        "the unit starts the packaged binary"
    );
    assert!(root.join(format!("usr/share/doc/{PACKAGE}/copyright")).exists());

    // Removing keeps the device's identity; purging forgets it.
    let state = root.join("var/lib/faros-agent");
    std::fs::create_dir_all(&state).expect("create a state directory");
    std::fs::write(state.join("agent.kubeconfig"), "").expect("write a credential");
    dpkg(&root, &["--remove", PACKAGE]);
    assert!(!root.join("usr/bin/edge-agent").exists());
    assert!(state.join("agent.kubeconfig").exists());
    dpkg(&root, &["--purge", PACKAGE]);
    assert!(!state.exists(), "purge removes the agent's state");
    let _ = std::fs::remove_dir_all(&dir);
}
