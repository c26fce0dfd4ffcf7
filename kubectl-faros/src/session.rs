//! What every command starts from: the kubeconfig in effect, the current context, the hub's
//! base URL and the current workspace, and kube clients for any workspace on that hub.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use kube::Client;

use crate::kubeconfig::{Kubeconfigs, Section};
use crate::paths::{self, ServerUrl};

/// Flags every command accepts, as kubectl spells them.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigFlags {
    /// Path to the kubeconfig file to use (instead of $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE", display_order = 900)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of the current context.
    #[arg(long, global = true, value_name = "NAME", display_order = 901)]
    pub context: Option<String>,
}

pub struct Session {
    pub configs: Kubeconfigs,
    /// The context in use (`--context` or `current-context`).
    pub context: String,
    /// The current context's server URL, as written in the kubeconfig.
    pub server: String,
    pub url: ServerUrl,
    /// The namespace of the context, if it sets one.
    pub context_namespace: Option<String>,
    config: kube::Config,
}

impl Session {
    pub async fn load(flags: &ConfigFlags) -> anyhow::Result<Session> {
        let configs = Kubeconfigs::load(flags.kubeconfig.as_deref())?;
        let context = match &flags.context {
            Some(c) => c.clone(),
            None if !configs.any_exists() => bail!(
                "no kubeconfig found (looked for {}); set KUBECONFIG or pass --kubeconfig",
                configs.describe_paths()
            ),
            None => configs.current_context().ok_or_else(|| {
                anyhow!(
                    "the kubeconfig sets no current context ({}); pass --context or run `kubectl config use-context NAME`",
                    configs.describe_paths()
                )
            })?,
        };
        let kubeconfig = configs.kube_config_for(&context)?;
        let server = kubeconfig
            .clusters
            .first()
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| anyhow!("the cluster of context {context:?} has no server URL"))?;
        let context_namespace = configs
            .get(Section::Contexts, &context)
            .and_then(|c| c.body.get("namespace").and_then(|n| n.as_str()).map(str::to_string))
            .filter(|n| !n.is_empty());
        let options = kube::config::KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("loading context {context:?} from the kubeconfig"))?;
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(60));
        let url = ServerUrl::parse(&server);
        Ok(Session {
            configs,
            context,
            server,
            url,
            context_namespace,
            config,
        })
    }

    /// The current workspace path. A server URL without `/clusters/` is served as `root`
    /// by the hub.
    pub fn current_path(&self) -> String {
        self.url.path.clone().unwrap_or_else(|| paths::ROOT.to_string())
    }

    /// A client for the workspace at `path` on this hub, with the current credentials.
    pub fn client_for(&self, path: &str) -> anyhow::Result<Client> {
        let mut config = self.config.clone();
        let url = self.url.for_path(path);
        config.cluster_url = url.parse().with_context(|| format!("{url:?} is not a valid URL"))?;
        Client::try_from(config).context("building an API client")
    }

    /// A client for the current workspace.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_for(&self.current_path())
    }

    /// The base URL of the hub.
    pub fn base(&self) -> &str {
        &self.url.base
    }
}

/// The HTTP status of an API error, if the hub answered.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub fn is_status(err: &kube::Error, code: u16) -> bool {
    status_code(err) == Some(code)
}

/// The hub's answer for a workspace that does not exist or may not be entered.
pub fn is_workspace_denied(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 403 && s.message.contains("workspace access not permitted"))
}

/// Describes an error for humans: the hub's message for API errors, the cause chain for
/// connection failures.
pub fn describe(err: &kube::Error, server: &str) -> String {
    match err {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            };
            format!("{message} (HTTP {})", status.code)
        }
        other => {
            // The innermost cause says what went wrong ("Connection refused", "invalid peer
            // certificate: UnknownIssuer"); the layers above it are plumbing.
            let mut innermost: &dyn std::error::Error = other;
            while let Some(cause) = innermost.source() {
                innermost = cause;
            }
            format!("cannot reach the hub at {server}: {innermost}")
        }
    }
}

/// Turns a kube error into an anyhow error with `what` (e.g. "creating workspace x") and a
/// readable description.
pub fn api_error(err: kube::Error, what: &str, server: &str) -> anyhow::Error {
    anyhow!("{what}: {}", describe(&err, server))
}
