//! One harness for every crate's integration tests: the real hub in a child process
//! ([`Hub`]), the real kubectl binaries ([`kubectl`]), etcd on loopback ([`etcd`]) and haproxy
//! in front of hub replicas ([`haproxy`]) and Prometheus ([`prometheus`]).
//!
//! The hub's own tests run the `hub-api` binary. The other crates' tests cannot (Cargo builds
//! no binary of another package for them), so a test binary starts itself again with only its ignored `hub_process` test selected and an
//! environment variable naming the hub's data directory; that test calls [`child_main`],
//! which runs `hub_api::start::run` exactly as `hub-api start --all-in-one` does. So
//! `cargo test -p <crate>` works on a fresh clone without a prebuilt `hub-api` binary
//! (binaries of other packages are not built for a package's tests), and every test gets its
//! own hub process, killed with the test.

pub mod etcd;
mod files;
pub mod haproxy;
pub mod http;
#[cfg(feature = "hub")]
mod hub;
pub mod kubectl;
pub mod podman;
pub mod prometheus;
pub mod relay;
#[cfg(feature = "hub")]
pub mod tls;

pub use files::TestDir;
#[cfg(feature = "hub")]
pub use hub::{Hub, Launcher};
pub use kubectl::eventually;

use std::path::Path;
use std::process::Output;
#[cfg(feature = "hub")]
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

#[cfg(feature = "hub")]
/// The body of a test binary's `hub_process` test. When `dir_env` names a data directory,
/// runs the hub (`--all-in-one --data-dir DIR` plus the words of `args_env`) until it is
/// stopped or its parent goes away, then exits the process; otherwise returns at once.
pub fn child_main(dir_env: &str, args_env: &str) {
    use clap::Parser;
    let Some(dir) = std::env::var_os(dir_env) else {
        return;
    };
    #[derive(Parser)]
    struct Start {
        #[command(flatten)]
        opts: hub_api::start::StartOptions,
    }
    let mut args: Vec<String> = vec!["hub-api".into(), "--all-in-one".into(), "--data-dir".into()];
    args.push(dir.to_string_lossy().into_owned());
    args.extend(
        std::env::var(args_env)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string),
    );
    let start = Start::parse_from(args);
    // As `hub-api` logs (RUST_LOG sets the filter).
    faros_cli::logging::init(faros_cli::logging::LogFormat::Text);
    // Never outlive the test that started us, even if it was killed.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    if let Err(e) = runtime.block_on(hub_api::start::run(start.opts)) {
        eprintln!("hub-api failed: {e:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

#[cfg(feature = "hub")]
/// `hub-api init --pki-dir DIR --tls-san ...`: the identity every replica of one hub shares,
/// made in this process (the other crates' tests have no `hub-api` binary to run).
pub fn init_pki(dir: &Path, tls_sans: &[&str]) {
    hub_api::init::run(hub_api::init::InitOptions {
        pki_dir: dir.to_path_buf(),
        tls_sans: tls_sans.iter().map(|s| s.to_string()).collect(),
        service_account_issuer: None,
    })
    .expect("hub-api init");
}

#[cfg(feature = "hub")]
/// A hub started by [`spawn`].
pub(crate) struct ChildHub {
    pub(crate) child: Child,
    /// `https://127.0.0.1:<port>`, from the hub's "serving on" line.
    pub(crate) url: String,
}

#[cfg(feature = "hub")]
/// Starts this test binary again as a hub on `data_dir` (see [`child_main`]), with the extra
/// hub arguments `args`, its log (RUST_LOG from `HUB_LOG`, default `warn`) going to `log`,
/// and waits until it serves.
pub(crate) fn spawn(dir_env: &str, args_env: &str, data_dir: &Path, args: &str, log: Stdio) -> ChildHub {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args([
            "--exact",
            "hub_process",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(dir_env, data_dir)
        .env(args_env, args)
        .stderr(log);
    start(command)
}

#[cfg(feature = "hub")]
/// Runs `command` (a hub: `hub-api start ...` or a test binary re-run by [`spawn`]) with its
/// log level from `HUB_LOG` (default `warn`), and waits until it serves.
pub(crate) fn start(mut command: Command) -> ChildHub {
    command
        .env("RUST_LOG", std::env::var("HUB_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("start the hub process");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        assert!(Instant::now() < deadline, "the hub did not start in time");
        match lines.next() {
            Some(Ok(line)) if line.contains("serving on") => break line,
            Some(Ok(_)) => continue,
            _ => panic!("the hub exited before serving"),
        }
    };
    // Keep draining stdout so the hub never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .expect("the serving line names the URL")
        .trim_end_matches(';')
        .to_string();
    ChildHub { child, url }
}

/// Asserts that a command (`what`, for the message) succeeded and returns its stdout.
pub fn succeeded(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// A binary of another package of this workspace (`kubectl-faros`, `edge-agent`, ...), taken
/// from beside the running test binary (`target/<profile>/<name>`). Cargo builds other
/// packages' binaries for a package's tests only under `cargo test --workspace` or after
/// `cargo build --workspace`, which the test command runs first; otherwise this says so.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.is_file(),
        "{} is not built; run `cargo build --workspace` (the test command does) before this test",
        binary.display()
    );
    binary
}

/// What a real bash offers for the last of `words` (a command line, the command first; the
/// last word is the one being completed, possibly empty) with the completion script `script`
/// loaded, calling the function the script registered for the command as bash itself does.
pub fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    let program = format!(
        r#"source {script}
words=({words})
function=$(complete -p {command} | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_WORDS=("${{words[@]}}")
COMP_CWORD=$(( ${{#words[@]}} - 1 ))
COMP_LINE="${{words[*]}}"
COMP_POINT=${{#COMP_LINE}}
prev=""
(( COMP_CWORD > 0 )) && prev="${{words[COMP_CWORD-1]}}"
"$function" {command} "${{words[COMP_CWORD]}}" "$prev"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = script.display(),
        words = quoted.join(" "),
        command = words[0],
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash completion of {words:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
