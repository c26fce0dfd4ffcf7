//! `edge-agent join` enrols a device with the one line `kubectl faros agent generate
//! --print-join-command` prints, and `edge-agent reset` undoes it.
//!
//! Join trusts the hub the way kubeadm's nodes do: it reads the hub's CA bundle from the
//! ConfigMap `cluster-info` in `kube-public` over a connection it does not verify, keeps only
//! the certificates whose public-key hash one `--ca-cert-hash` names, and from then on talks
//! to the hub through those alone. It checks that the hub accepts the registration token
//! (refused, revoked or expired, it says so and writes nothing), then writes the bootstrap
//! kubeconfig the agent starts with. As root on a machine run by systemd it installs the
//! `edge-agent` unit and starts it; otherwise it writes a config file and says how to start
//! the agent with it. The agent itself exchanges the registration token for its own
//! credential when it first starts (see `identity`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use faros_api::edge::REGISTRATION_ACCOUNT_PREFIX;
use faros_kubeconfig::ca_pin;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The kubeconfig the agent starts with (what `--kubeconfig` names).
const BOOTSTRAP: &str = "bootstrap.kubeconfig";
/// Without systemd: the agent's flags, for `edge-agent --config`.
const CONFIG: &str = "config.yaml";
/// With systemd: the variables the unit reads (`EnvironmentFile=`).
const ENV_FILE: &str = "agent.env";
/// Where join installs the unit, and how it recognises a unit it installed.
const UNIT_PATH: &str = "/etc/systemd/system/edge-agent.service";
const UNIT_NAME: &str = "edge-agent.service";
const UNIT_MARKER: &str = "# Installed by `edge-agent join`; `edge-agent reset` removes it.";
/// The unit shipped in `config/`, as `edge-agent join` installs it.
const UNIT: &str = include_str!("../../config/edge-agent.service");
/// Where the unit expects the binary.
const UNIT_BINARY: &str = "/usr/local/bin/edge-agent";
/// Where the unit reads its files from (it loads them as credentials, so that the service's
/// dynamic user never needs to read this root-only directory).
const SYSTEM_CONFIG_DIR: &str = "/etc/faros-agent";
/// Where the hub publishes its URL and CA bundle (see the hub's `apiserver::join`).
const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
/// The most of an answer read from a hub not trusted yet.
const MAX_CLUSTER_INFO: usize = 1 << 20;
/// How long each request to a hub that does not answer may take.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args, Debug)]
pub struct JoinArgs {
    /// The URL of the agent's workspace on the hub (`https://hub.example.com:6443/clusters/root:acme`).
    #[arg(long, value_name = "URL")]
    server: String,
    /// The registration token (printed by `kubectl faros agent generate --print-join-command`;
    /// FAROS_AGENT_TOKEN keeps it off the command line).
    #[arg(long)]
    token: String,
    /// `sha256:<hex>` of the public key of the hub's CA (repeatable): the device trusts the hub
    /// only if its CA is one of these.
    #[arg(long = "ca-cert-hash", value_name = "sha256:HEX", required = true)]
    ca_cert_hashes: Vec<String>,
    /// Where to write the agent's configuration (default: /etc/faros-agent as root, else
    /// $XDG_CONFIG_HOME/faros-agent).
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Only write the configuration, even as root under systemd: do not install or start the
    /// edge-agent service.
    #[arg(long)]
    no_systemd: bool,
}

#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// The directory `join` wrote to (default: as for `join`).
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
}

/// Who the device is: `--name`, `--namespace` and `--state-dir` of the command line.
pub struct Device {
    pub name: String,
    pub namespace: String,
    pub state_dir: Option<PathBuf>,
}

/// The flags `join` writes for an agent run without systemd.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct AgentConfig {
    kubeconfig: PathBuf,
    name: String,
    namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_dir: Option<PathBuf>,
}

pub async fn join(args: &JoinArgs, device: &Device) -> anyhow::Result<()> {
    let dir = args.config_dir.clone().unwrap_or_else(default_config_dir);
    if dir.join(BOOTSTRAP).exists() {
        bail!(
            "this device has joined already ({} exists); run `edge-agent reset` first to join again",
            dir.join(BOOTSTRAP).display()
        );
    }
    let pins = args
        .ca_cert_hashes
        .iter()
        .map(|p| ca_pin::parse_pin(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let server: http::Uri = args
        .server
        .parse()
        .with_context(|| format!("--server {:?} is not a URL", args.server))?;
    if server.scheme_str() != Some("https") || server.authority().is_none() {
        bail!("--server must be the hub's https:// URL, not {:?}", args.server);
    }
    let base = format!("https://{}", server.authority().map(|a| a.as_str()).unwrap_or_default());

    let bundle = hub_ca_bundle(&server).await?;
    let trusted = ca_pin::pinned(&bundle, &pins).with_context(|| format!("refusing to trust the hub at {base}"))?;
    let kubeconfig = faros_kubeconfig::all_named(
        &device.name,
        &args.server,
        &trusted,
        faros_kubeconfig::Credential::Token(&args.token),
        Some(&device.namespace),
    );
    let user = check_token(&kubeconfig, &args.server).await?;
    let registration = user
        .strip_prefix(&format!(
            "system:serviceaccount:{}:{REGISTRATION_ACCOUNT_PREFIX}",
            device.namespace
        ))
        .map(str::to_string);
    if registration.is_none() {
        println!(
            "note: the token authenticates as {user:?}, not as a Registration of namespace {}: the agent will run with it as it is",
            device.namespace
        );
    }

    let systemd = !args.no_systemd && crate::running_as_root() && systemd_runs_this_machine();
    let binary = std::env::current_exe().context("finding this program's path")?;
    if systemd
        && [Path::new("/root"), Path::new("/home"), Path::new("/run/user")]
            .iter()
            .any(|d| binary.starts_with(d))
    {
        // The unit hides home directories from the service (ProtectHome=yes).
        bail!(
            "the edge-agent service could not run {}: install the binary first (e.g. `install -m 0755 {} {UNIT_BINARY}`) \
             and join with that one, or pass --no-systemd",
            binary.display(),
            binary.display()
        );
    }
    faros_kubeconfig::write(&dir.join(BOOTSTRAP), &kubeconfig)?;
    let joined = match &registration {
        Some(r) => format!(
            "agent {} (namespace {}, Registration {r})",
            device.name, device.namespace
        ),
        None => format!("agent {} (namespace {})", device.name, device.namespace),
    };
    if systemd {
        let env = format!(
            "# Written by `edge-agent join`.\nFAROS_AGENT_NAME={}\nFAROS_AGENT_NAMESPACE={}\n",
            device.name, device.namespace
        );
        faros_kubeconfig::write_private(&dir.join(ENV_FILE), env.as_bytes())?;
        install_unit(&binary, &dir)?;
        println!(
            "This device joins the hub at {} as {joined}: the edge-agent service runs it (`systemctl status edge-agent`).",
            args.server
        );
    } else {
        let config = AgentConfig {
            kubeconfig: absolute(&dir.join(BOOTSTRAP)),
            name: device.name.clone(),
            namespace: device.namespace.clone(),
            state_dir: device.state_dir.as_deref().map(absolute),
        };
        let text = format!(
            "# Written by `edge-agent join`: the flags of `edge-agent --config {}`.\n{}",
            dir.join(CONFIG).display(),
            serde_norway::to_string(&config)?
        );
        faros_kubeconfig::write_private(&dir.join(CONFIG), text.as_bytes())?;
        println!(
            "This device is ready to join the hub at {} as {joined}. Start the agent with:\n  edge-agent --config {}",
            args.server,
            dir.join(CONFIG).display()
        );
    }
    Ok(())
}

/// The CA bundle in the hub's `cluster-info`, read without trusting the hub (nothing secret
/// is sent: no credential goes with the request).
async fn hub_ca_bundle(server: &http::Uri) -> anyhow::Result<String> {
    let base = format!("https://{}", server.authority().map(|a| a.as_str()).unwrap_or_default());
    let info: ConfigMap = tokio::time::timeout(TIMEOUT, unverified_get(server, CLUSTER_INFO_PATH))
        .await
        .map_err(|_| anyhow!("the hub at {base} did not answer within {}s", TIMEOUT.as_secs()))?
        .with_context(|| format!("reading the cluster-info of the hub at {base}"))?;
    let text = info
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .ok_or_else(|| anyhow!("the hub's cluster-info has no kubeconfig"))?;
    let published = faros_kubeconfig::from_yaml(text).context("the hub's cluster-info kubeconfig does not decode")?;
    let data = published
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| anyhow!("the hub's cluster-info names no CA"))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .context("the hub's cluster-info CA is not base64")?;
    Ok(String::from_utf8_lossy(&pem).into_owned())
}

/// GETs `path` of `server` as JSON over TLS without verifying the server's certificate.
async fn unverified_get<T: serde::de::DeserializeOwned>(server: &http::Uri, path: &str) -> anyhow::Result<T> {
    use http_body_util::BodyExt as _;
    let host = server
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = server.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    // Any certificate is accepted for this one request: its answer is then checked against
    // the pin.
    let tls = crate::client::unverified_tls()?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| anyhow!("{host:?}: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(
            http::header::HOST,
            server.authority().map(|a| a.as_str()).unwrap_or(host),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_CLUSTER_INFO)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        bail!("HTTP {status}: the server is not a Faros hub, or one too old to join devices this way");
    }
    serde_json::from_slice(&body).context("the answer is not the object asked for")
}

/// Asks the hub, now trusted through the pinned CA alone, who the token is: the user name, or
/// an error that says why the hub refuses it.
async fn check_token(kubeconfig: &Kubeconfig, server: &str) -> anyhow::Result<String> {
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
        .await
        .context("loading the join kubeconfig")?;
    config.connect_timeout = Some(TIMEOUT);
    config.read_timeout = Some(TIMEOUT);
    let client = crate::client::client(&config).context("building an HTTPS client")?;
    let review = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await;
    match review {
        Ok(answer) => Ok(answer
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .unwrap_or_default()),
        Err(kube::Error::Api(s)) if s.code == 401 => bail!(
            "the hub at {server} does not accept the token (401 Unauthorized): its Registration was revoked, or the token is not from this hub"
        ),
        Err(kube::Error::Api(s)) if s.code == 403 => bail!("the hub at {server} refuses the token: {}", s.message),
        Err(e) => bail!(
            "cannot reach the hub at {server} through the pinned CA: {}",
            innermost(&e)
        ),
    }
}

/// The innermost cause of an error ("Connection refused", "invalid peer certificate: ...").
fn innermost(e: &kube::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

pub fn reset(args: &ResetArgs, state_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = args.config_dir.clone().unwrap_or_else(default_config_dir);
    let config: Option<AgentConfig> = std::fs::read_to_string(dir.join(CONFIG))
        .ok()
        .and_then(|text| serde_norway::from_str(&text).ok());
    let mut done = Vec::new();
    if installed_unit() {
        if !crate::running_as_root() {
            bail!("the edge-agent service was installed by `edge-agent join`: run `edge-agent reset` as root");
        }
        systemctl(&["disable", "--now", UNIT_NAME])?;
        std::fs::remove_file(UNIT_PATH).with_context(|| format!("removing {UNIT_PATH}"))?;
        systemctl(&["daemon-reload"])?;
        done.push(format!(
            "stopped, disabled and removed the edge-agent service ({UNIT_PATH})"
        ));
    }
    let state = state_dir
        .or_else(|| config.as_ref().and_then(|c| c.state_dir.clone()))
        .unwrap_or_else(crate::default_state_dir);
    if remove_tree(&state)? {
        done.push(format!(
            "removed the agent's state and credential ({})",
            state.display()
        ));
    }
    for file in [BOOTSTRAP, CONFIG, ENV_FILE] {
        let path = dir.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => done.push(format!("removed {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    // Only if nothing else was put there.
    let _ = std::fs::remove_dir(&dir);
    if done.is_empty() {
        println!(
            "Nothing to reset: this device has not joined (nothing in {} or {}).",
            dir.display(),
            state.display()
        );
        return Ok(());
    }
    for line in &done {
        println!("{line}");
    }
    let agent = config.map(|c| (c.name, c.namespace));
    match agent {
        Some((name, namespace)) => {
            println!("The Agent stays on the hub until it is deleted there: kubectl delete agent {name} -n {namespace}")
        }
        None => println!("The Agent stays on the hub until it is deleted there (kubectl delete agent NAME)."),
    }
    Ok(())
}

/// Removes `path` and what is in it; a symbolic link (systemd's StateDirectory of a dynamic
/// user is one) goes with what it points to. Whether there was anything.
fn remove_tree(path: &Path) -> anyhow::Result<bool> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if meta.file_type().is_symlink() {
        if let Ok(target) = std::fs::canonicalize(path) {
            std::fs::remove_dir_all(&target).with_context(|| format!("removing {}", target.display()))?;
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    } else {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(true)
}

fn default_config_dir() -> PathBuf {
    if crate::running_as_root() {
        return PathBuf::from(SYSTEM_CONFIG_DIR);
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("faros-agent")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether systemd manages this machine (as `sd_booted()` tells) and `systemctl` is here.
fn systemd_runs_this_machine() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && Command::new("systemctl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Installs the unit running `binary` with its files in `dir`, then enables and starts it.
fn install_unit(binary: &Path, dir: &Path) -> anyhow::Result<()> {
    let text = unit(binary, dir);
    std::fs::write(UNIT_PATH, text).with_context(|| format!("writing {UNIT_PATH}"))?;
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", UNIT_NAME])
}

/// The shipped unit, marked as installed by join, running `binary` with its files in `dir`.
fn unit(binary: &Path, dir: &Path) -> String {
    let text = UNIT
        .replace(
            &format!("ExecStart={UNIT_BINARY}"),
            &format!("ExecStart={}", binary.display()),
        )
        .replace(&format!("{SYSTEM_CONFIG_DIR}/"), &format!("{}/", dir.display()));
    format!("{UNIT_MARKER}\n{text}")
}

fn installed_unit() -> bool {
    std::fs::read_to_string(UNIT_PATH).is_ok_and(|text| text.starts_with(UNIT_MARKER))
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("systemctl")
        .args(args)
        .status()
        .with_context(|| format!("running systemctl {}", args.join(" ")))?;
    if !status.success() {
        bail!("systemctl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_unit_runs_this_binary_with_the_files_join_wrote() {
        let text = unit(Path::new("/opt/faros/edge-agent"), Path::new("/srv/agent"));
        assert!(text.starts_with(UNIT_MARKER));
        assert!(text.contains("\nExecStart=/opt/faros/edge-agent\n"), "{text}");
        assert!(
            text.contains("LoadCredential=bootstrap.kubeconfig:/srv/agent/bootstrap.kubeconfig"),
            "{text}"
        );
        assert!(text.contains("EnvironmentFile=-/srv/agent/agent.env"), "{text}");
        // The shipped unit names the files join writes, where it writes them by default.
        let shipped = unit(Path::new(UNIT_BINARY), Path::new(SYSTEM_CONFIG_DIR));
        assert_eq!(shipped, format!("{UNIT_MARKER}\n{UNIT}"));
        for file in [BOOTSTRAP, ENV_FILE] {
            assert!(UNIT.contains(&format!("{SYSTEM_CONFIG_DIR}/{file}")), "{file}");
        }
    }

    #[test]
    fn a_state_directory_behind_a_link_goes_with_the_link() {
        let base = std::env::temp_dir().join(format!("edge-agent-reset-{}", std::process::id()));
        let target = base.join("private/faros-agent");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("token"), "t").unwrap();
        let link = base.join("faros-agent");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(remove_tree(&link).unwrap());
        assert!(!link.exists() && !target.exists());
        assert!(!remove_tree(&link).unwrap());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
