//! The command line of the real `hub-api` binary: where a flag's value comes from (flag, then
//! `FAROS_HUB_*`, then the `--config` file, then the default), build information in
//! `--version` and `/version`, and the bash completion script run by a real bash.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const HUB_API: &str = env!("CARGO_BIN_EXE_hub-api");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faros-cli-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `hub-api start ARGS` with `env`, until it serves; then stopped. Returns the data
/// directory's admin kubeconfig's server URL and the serving certificate's DNS names.
fn start(args: &[&str], env: &[(&str, &str)], data_dir: &Path) -> (String, Vec<String>) {
    let mut command = Command::new(HUB_API);
    command
        .arg("start")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("FAROS_HUB_CONFIG")
        .env_remove("FAROS_HUB_EXTERNAL_HOSTNAME")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start hub-api");
    let serving = wait_serving(&mut child);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(serving, "hub-api start {args:?} with {env:?} did not serve");
    let kubeconfig = kube::config::Kubeconfig::read_from(data_dir.join("admin.kubeconfig")).unwrap();
    let server = kubeconfig.clusters[0].cluster.as_ref().unwrap().server.clone().unwrap();
    let pem = std::fs::read(data_dir.join("pki/serving.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let names = cert
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (server, names)
}

/// Whether the hub printed its "serving on" line before it exited.
fn wait_serving(child: &mut Child) -> bool {
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("serving on"))
}

fn host_of(url: &str) -> &str {
    url.trim_start_matches("https://").rsplit_once(':').unwrap().0
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_config_file() {
    let dir = temp_dir("precedence");
    let data = dir.join("data");
    let config = dir.join("hub.yaml");
    std::fs::write(
        &config,
        format!(
            "# keys are flag names\ndata-dir: {}\nsecure-port: 0\nexternal-hostname: file.example\ntls-san:\n  - san-a.example\n  - san-b.example\n",
            data.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // The file alone: its data directory, port, host name and list of names are used.
    let (server, names) = start(&["--config", config], &[], &data);
    assert_eq!(host_of(&server), "file.example");
    for name in ["san-a.example", "san-b.example", "file.example"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    // The environment over the file (the file itself named by FAROS_HUB_CONFIG).
    let env = [
        ("FAROS_HUB_CONFIG", config),
        ("FAROS_HUB_EXTERNAL_HOSTNAME", "env.example"),
    ];
    let (server, _) = start(&[], &env, &data);
    assert_eq!(host_of(&server), "env.example");
    // The flag over both.
    let (server, _) = start(&["--external-hostname", "flag.example"], &env, &data);
    assert_eq!(host_of(&server), "flag.example");
    // Neither: the default (the bind address).
    let (server, _) = start(
        &["--data-dir", data.to_str().unwrap(), "--secure-port", "0"],
        &[],
        &data,
    );
    assert_eq!(host_of(&server), "127.0.0.1");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_by_name() {
    let dir = temp_dir("unknown");
    let config = dir.join("hub.yaml");
    std::fs::write(&config, "secure-port: 0\nsecure-prot: 7443\n").unwrap();
    let out = Command::new(HUB_API)
        .args(["start", "--config", config.to_str().unwrap()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown key \"secure-prot\": `hub-api start` has no flag --secure-prot"),
        "{stderr}"
    );
    assert!(!dir.join("data").exists(), "nothing may be started or written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn version_names_the_commit_and_build_date_in_both_places() {
    let out = Command::new(HUB_API).arg("--version").output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    // hub-api 0.1.0 (commit <sha>, built <date>)
    let commit = line
        .split("(commit ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let date = line
        .split("built ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .to_string();
    assert!(
        line.starts_with(&format!("hub-api {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(
        commit == "unknown" || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
    date.parse::<jiff::Timestamp>().unwrap();

    let hub = crate::common::TestHub::start_with(crate::common::HUB, false);
    let version = hub.anonymous_client().await.apiserver_version().await.unwrap();
    assert_eq!(version.git_commit, commit);
    assert_eq!(version.build_date, date);
    // What kubectl dispatchers choose a client by stays the Kubernetes level served.
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "32"));
    assert_eq!(
        version.git_version,
        format!("v1.32.0+faros-{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bash_completes_subcommands_and_flags_with_the_generated_script() {
    let script = Command::new(HUB_API).args(["completion", "bash"]).output().unwrap();
    assert!(script.status.success());
    let dir = temp_dir("completion");
    let file = dir.join("hub-api.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let complete = |words: &[&str]| faros_testkit::bash_complete(&file, words);
    assert_eq!(complete(&["hub-api", "sta"]), ["start"]);
    let flags = complete(&["hub-api", "start", "--secure"]);
    assert_eq!(flags, ["--secure-port"]);
    assert!(complete(&["hub-api", "start", "--con"]).contains(&"--config".to_string()));
    std::fs::remove_dir_all(&dir).unwrap();
}
