//! `kubectl faros agent ...`: generate a kubeconfig an edge agent joins with, list agents,
//! revoke registrations, cordon, uncordon and drain agents, and show a device's live state.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use faros_api::apis::{APIBinding, applied_claims};
use faros_api::edge::AGENT_LABEL;
use faros_api::edge::{Agent, Registration, RegistrationSpec};
use faros_api::workloads::{Placement, PlacementStrategy, Workload};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{Cluster, Kubeconfig};
use kube::{Client, ResourceExt};

use crate::kubeconfig::Section;
use crate::output;
use crate::paths;
use crate::session::{self, Session, is_status, is_workspace_denied};

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
    /// The namespace of the agents (default: the context's namespace, else `default`).
    #[arg(long, short = 'n', global = true, value_name = "NAMESPACE", display_order = 800)]
    pub namespace: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum AgentCommand {
    /// Register an agent and write the kubeconfig it joins with, or print its join command.
    ///
    /// Creates the Registration (named after the agent unless --registration says otherwise,
    /// admitting new agents for --ttl) in the current workspace if it is missing, waits until
    /// the hub has issued its token, and writes a kubeconfig for the agent: the current
    /// workspace's URL, the hub's CA, the namespace and the registration token (mode 0600).
    /// With --print-join-command it prints `edge-agent join ...` for the device instead.
    #[command(after_help = "Examples:\n  \
        kubectl faros agent generate agent1 --print-join-command     # then run the line on the device\n  \
        kubectl faros agent generate line-a --count 20 --print-join-command --ttl 2h\n  \
        kubectl faros agent generate agent1 -o agent1.kubeconfig\n  \
        FAROS_AGENT_NAME=agent1 KUBECONFIG=agent1.kubeconfig edge-agent\n\n  \
        kubectl faros agent generate agent2 -n plant-7 -o - > agent2.kubeconfig")]
    Generate(GenerateArgs),
    /// List the agents in the namespace.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Delete a Registration: its token, ServiceAccount, Role and RoleBinding go with it, so
    /// no new agent can join with it.
    Revoke(RevokeArgs),
    /// Mark agents unschedulable: they get no new placements; what runs there stays.
    Cordon(AgentNames),
    /// Let agents get new placements again.
    Uncordon(AgentNames),
    /// Cordon agents and move their Replicas and Singleton workloads to other agents (the
    /// scheduler places them elsewhere); All workloads stay, as DaemonSets do on a drained node.
    Drain(AgentNames),
    /// Show a device's live state, asked from the device now through its tunnel: CPU,
    /// memory, disk and network use, uptime, load and the workloads it runs.
    #[command(after_help = "Examples:\n  kubectl faros agent top dev1\n  kubectl faros agent top dev1 -o json")]
    Top(crate::top::TopArgs),
}

#[derive(clap::Args, Debug)]
pub struct AgentNames {
    /// Names of the agents.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Name of the agent (a DNS label, e.g. the device's hostname); with --count, the prefix
    /// of the agents' names.
    pub name: String,
    /// Register N agents at once, NAME-1 … NAME-N, through one Registration: one kubeconfig
    /// (or join command) each.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: Option<u32>,
    /// Print the one command that joins the device, instead of writing a kubeconfig:
    /// `edge-agent join --server URL --token TOKEN --ca-cert-hash sha256:HEX --name NAME ...`
    /// (one line per agent). The device trusts the hub only if the hub's CA matches the hash.
    #[arg(long)]
    pub print_join_command: bool,
    /// Where to write the kubeconfig (default: NAME.kubeconfig); `-` writes it to standard
    /// output. With --count, a directory for the NAME-i.kubeconfig files (default: here).
    #[arg(long, short = 'o', value_name = "FILE|DIR|-")]
    pub output: Option<String>,
    /// The Registration to use or create (default: the agent's name, or NAME with --count).
    #[arg(long, value_name = "NAME")]
    pub registration: Option<String>,
    /// How long a Registration created now admits new agents (`24h`, `30m`; `0`: no end).
    /// Agents that joined keep working after it. An existing Registration keeps its own.
    #[arg(long, default_value = "24h", value_parser = faros_machinery::duration::parse, value_name = "DURATION")]
    pub ttl: Duration,
    /// How long to wait for the Registration to become Ready.
    #[arg(long, default_value = "1m", value_parser = faros_machinery::duration::parse, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// List agents in all namespaces.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// Name of the Registration (by default named after the agent it was generated for).
    pub name: String,
}

pub async fn run(session: &Session, args: AgentArgs) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| session.context_namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    match args.command {
        AgentCommand::Generate(a) => generate(session, &namespace, a).await,
        AgentCommand::List(a) => list(session, &namespace, a).await,
        AgentCommand::Revoke(a) => revoke(session, &namespace, a).await,
        AgentCommand::Cordon(a) => cordon(session, &namespace, &a.names, true).await.map(drop),
        AgentCommand::Uncordon(a) => cordon(session, &namespace, &a.names, false).await.map(drop),
        AgentCommand::Drain(a) => drain(session, &namespace, &a.names).await,
        AgentCommand::Top(a) => crate::top::top(session, &namespace, a).await,
    }
}

/// The current workspace, which must be named by the server URL: an agent's kubeconfig has
/// to point at its workspace explicitly.
fn workspace_of(session: &Session) -> anyhow::Result<String> {
    session.url.path.clone().ok_or_else(|| {
        anyhow!(
            "the current context {:?} does not point at a workspace: its server URL {} has no /clusters/<path>.\n\
             Switch to the workspace the agent belongs to first, e.g. `kubectl faros workspace use root:tenant1` \
             (or create one: `kubectl faros workspace create tenant1 --type faros --enter`).",
            session.context,
            session.server
        )
    })
}

/// Checks that the edge API is served in the workspace (bound), with a clear error if not.
pub(crate) async fn check_bound(session: &Session, client: &Client, workspace: &str) -> anyhow::Result<()> {
    check_serves(session, client, workspace, "registrations").await
}

/// Checks that the edge API is bound in the workspace and serves `resource`.
pub(crate) async fn check_serves(
    session: &Session,
    client: &Client,
    workspace: &str,
    resource: &str,
) -> anyhow::Result<()> {
    let version = format!("{}/{}", faros_api::EDGE_GROUP, faros_api::EDGE_VERSION);
    match client.list_api_group_resources(&version).await {
        Ok(list) if list.resources.iter().any(|r| r.name == resource) => Ok(()),
        Ok(list) if list.resources.is_empty() => Err(not_bound(workspace)),
        Ok(_) => bail!(
            "the Faros edge API bound in workspace {workspace} does not serve {resource}: the hub's edge export \
             is older than this plugin; upgrade the hub"
        ),
        Err(e) if is_status(&e, 404) => Err(not_bound(workspace)),
        Err(e) if is_workspace_denied(&e) => {
            bail!("workspace {workspace:?} does not exist or you may not access it")
        }
        Err(e) if is_status(&e, 401) => bail!(
            "the hub at {} rejected the credentials of context {:?} (HTTP 401)",
            session.base(),
            session.context
        ),
        Err(e) => Err(session::api_error(
            e,
            &format!("discovering {version} in workspace {workspace}"),
            session.base(),
        )),
    }
}

pub(crate) fn not_bound(workspace: &str) -> anyhow::Error {
    anyhow!(
        "the Faros edge API is not bound in workspace {workspace}; run `kubectl faros bind` there first \
         (workspaces created with `--type faros` have it bound already)"
    )
}

/// Maps an error on `what` in `namespace` of `workspace` to a message for humans.
pub(crate) fn edge_error(
    session: &Session,
    e: kube::Error,
    what: &str,
    namespace: &str,
    workspace: &str,
) -> anyhow::Error {
    if is_workspace_denied(&e) {
        return anyhow!("workspace {workspace:?} does not exist or you may not access it");
    }
    if is_status(&e, 403) {
        return anyhow!(
            "you are not allowed to {what} in namespace {namespace} of workspace {workspace}: {}\n\
             Ask an administrator of the workspace for access.",
            session::describe(&e, session.base())
        );
    }
    session::api_error(
        e,
        &format!("{what} in namespace {namespace} of workspace {workspace}"),
        session.base(),
    )
}

async fn generate(session: &Session, namespace: &str, args: GenerateArgs) -> anyhow::Result<()> {
    let names: Vec<String> = match args.count {
        Some(n) => (1..=n).map(|i| format!("{}-{i}", args.name)).collect(),
        None => vec![args.name.clone()],
    };
    for name in &names {
        paths::check_name(name).map_err(|_| {
            anyhow!("{name:?} is not a valid agent name: use lowercase letters, digits and '-' (at most 63)")
        })?;
    }
    let to_stdout = args.output.as_deref() == Some("-");
    if args.print_join_command && args.output.is_some() {
        bail!("--print-join-command prints the commands; it writes no kubeconfig for -o");
    }
    if args.count.is_some() && to_stdout {
        bail!("--count writes one kubeconfig per agent: give -o a directory, or use --print-join-command");
    }
    let workspace = workspace_of(session)?;
    let registration_name = args.registration.clone().unwrap_or_else(|| args.name.clone());
    // Progress goes to stderr when what is asked for goes to stdout.
    let quiet = to_stdout || args.print_join_command;
    let say = |text: String| {
        if quiet {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };

    let client = session.client()?;
    check_bound(session, &client, &workspace).await?;
    let registrations: Api<Registration> = Api::namespaced(client.clone(), namespace);
    let existing = registrations
        .get_opt(&registration_name)
        .await
        .map_err(|e| edge_error(session, e, "read Registrations", namespace, &workspace))?;
    match existing {
        Some(reg) => {
            let admitted = &reg.spec.agent_names;
            let refused: Vec<&str> = names
                .iter()
                .filter(|n| !admitted.is_empty() && !admitted.contains(n))
                .map(String::as_str)
                .collect();
            if !refused.is_empty() {
                bail!(
                    "Registration {registration_name:?} in namespace {namespace} does not admit agent {} (it admits {}); \
                     choose another --registration or add the agent to its spec.agentNames",
                    refused.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "),
                    admitted.join(", ")
                );
            }
            say(format!(
                "Using Registration {registration_name:?} in namespace {namespace} of workspace {workspace}{}.",
                expiry(reg.spec.expiration_time.as_deref())
            ));
        }
        None => {
            let expiration_time = (!args.ttl.is_zero()).then(|| {
                let at = jiff::Timestamp::now() + args.ttl;
                jiff::Timestamp::from_second(at.as_second()).unwrap_or(at).to_string()
            });
            let object = Registration::new(
                &registration_name,
                RegistrationSpec {
                    agent_names: names.clone(),
                    expiration_time: expiration_time.clone(),
                },
            );
            match registrations.create(&PostParams::default(), &object).await {
                Ok(_) => say(format!(
                    "Registration {registration_name:?} created in namespace {namespace} of workspace {workspace}{}. \
                     Waiting for its token...",
                    expiry(expiration_time.as_deref())
                )),
                Err(e) if is_status(&e, 409) => {}
                Err(kube::Error::Api(s)) if s.code == 404 && s.message.contains("namespaces") => bail!(
                    "namespace {namespace:?} does not exist in workspace {workspace}; create it with `kubectl create namespace {namespace}` or pass -n"
                ),
                Err(e) if is_status(&e, 404) => return Err(not_bound(&workspace)),
                Err(e) => return Err(edge_error(session, e, "create Registrations", namespace, &workspace)),
            }
        }
    }

    let token = wait_for_token(
        session,
        &client,
        namespace,
        &workspace,
        &registration_name,
        args.timeout,
    )
    .await?;
    if args.print_join_command {
        let server = paths::workspace_url(session.base(), &workspace);
        let ca = current_cluster(session)?.1.ok_or_else(|| {
            anyhow!("the current context trusts no CA of its own to pin: the device could not check the hub")
        })?;
        let pins = faros_kubeconfig::ca_pin::pins(&ca).context("the CA of the current context")?;
        let pins: String = pins.iter().map(|p| format!(" --ca-cert-hash {p}")).collect();
        say("On each device, as root (to install and start the edge-agent service) or as a user, run its line:".into());
        for name in &names {
            println!("edge-agent join --server {server} --token {token}{pins} --name {name} --namespace {namespace}");
        }
        return Ok(());
    }
    if to_stdout {
        let kubeconfig = agent_kubeconfig(session, &workspace, namespace, &args.name, &registration_name, &token)?;
        std::io::stdout().write_all(faros_kubeconfig::to_yaml(&kubeconfig)?.as_bytes())?;
        return Ok(());
    }
    for name in &names {
        let path = match (&args.output, args.count) {
            (Some(dir), Some(_)) => PathBuf::from(dir).join(format!("{name}.kubeconfig")),
            (Some(file), None) => PathBuf::from(file),
            (None, _) => PathBuf::from(format!("{name}.kubeconfig")),
        };
        let kubeconfig = agent_kubeconfig(session, &workspace, namespace, name, &registration_name, &token)?;
        // Missing directories are made as `mkdir -p` makes them: only the file is private.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        faros_kubeconfig::write_private(&path, faros_kubeconfig::to_yaml(&kubeconfig)?.as_bytes())?;
        say(format!(
            "Wrote {} for agent {name:?} (workspace {workspace}, namespace {namespace}). On the device run:\n  \
             FAROS_AGENT_NAME={name} FAROS_AGENT_NAMESPACE={namespace} KUBECONFIG={} edge-agent",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// ` (expires at <time>)`, or nothing for a Registration that does not expire.
fn expiry(expiration_time: Option<&str>) -> String {
    expiration_time
        .map(|t| format!(" (expires at {t})"))
        .unwrap_or_default()
}

/// Whether a binding of the edge API in the workspace accepts every claim of the export. Its
/// spec is what counts: the hub puts accepted claims in force shortly after they are answered,
/// and the Registration is retried then.
async fn edge_claims_accepted(client: &Client) -> bool {
    let bindings: Api<APIBinding> = Api::all(client.clone());
    let Ok(list) = bindings.list(&Default::default()).await else {
        return false;
    };
    list.items.iter().any(|b| {
        // The edge export is named after its group.
        b.spec.reference.export.name == faros_api::EDGE_GROUP
            && b.status.as_ref().is_some_and(|s| {
                !s.export_permission_claims.is_empty()
                    && applied_claims(&s.export_permission_claims, &b.spec.permission_claims).len()
                        == s.export_permission_claims.len()
            })
    })
}

/// Waits until the Registration is Ready with a token Secret whose token the hub filled in.
async fn wait_for_token(
    session: &Session,
    client: &Client,
    namespace: &str,
    workspace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let registrations: Api<Registration> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + timeout;
    let mut waiting_on = String::new();
    loop {
        let reg = registrations
            .get_opt(name)
            .await
            .map_err(|e| edge_error(session, e, "read Registrations", namespace, workspace))?
            .ok_or_else(|| anyhow!("Registration {name:?} was deleted while waiting for it"))?;
        let status = reg.status.clone().unwrap_or_default();
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.is_true());
        let secret_name = status
            .token_secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty());
        if let Some(expired) = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Expired")
        {
            bail!(
                "Registration {name:?} in namespace {namespace} of workspace {workspace} has expired ({}); \
                 use another one with --registration, or delete it with `kubectl faros agent revoke {name}`",
                if expired.message.is_empty() {
                    "past its spec.expirationTime"
                } else {
                    expired.message.as_str()
                }
            );
        }
        // The Registration says the workspace refused the edge API's claims; unless the
        // binding accepts them by now (the hub then retries shortly), say what to do.
        if let Some(refused) = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "PermissionClaimsNotAccepted")
            && !edge_claims_accepted(client).await
        {
            bail!(
                "the hub may not issue credentials in workspace {workspace}: {}\n\
                 Accept the edge API's permission claims with `kubectl faros bind --accept-all-permission-claims` \
                 (or `kubectl apply -f config/samples/binding.yaml`), then run this again.",
                refused.message
            );
        }
        if ready && let Some(secret_name) = &secret_name {
            match secrets.get_opt(secret_name).await {
                Ok(Some(secret)) => {
                    let token = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("token"))
                        .map(|t| String::from_utf8_lossy(&t.0).trim().to_string())
                        .filter(|t| !t.is_empty());
                    if let Some(token) = token {
                        return Ok(token);
                    }
                    waiting_on = format!("the hub has not filled in the token of Secret {secret_name:?} yet");
                }
                Ok(None) => waiting_on = format!("its token Secret {secret_name:?} does not exist yet"),
                Err(e) => return Err(edge_error(session, e, "read Secrets", namespace, workspace)),
            }
        }
        if Instant::now() >= deadline {
            let mut message = format!(
                "timed out after {} waiting for Registration {name:?} in namespace {namespace} of workspace {workspace} to become Ready",
                faros_machinery::duration::show(timeout)
            );
            if !waiting_on.is_empty() {
                message.push_str(&format!(" ({waiting_on})"));
            }
            if reg.status.is_none() {
                message.push_str(
                    ".\nIt has no status yet: the hub's registration controller has not processed it \
                     (it runs in `hub-api start --all-in-one`).",
                );
            } else {
                message.push_str(&format!(
                    ". Conditions:\n{}",
                    output::conditions(&status.conditions).trim_end()
                ));
            }
            bail!(message);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The agent's kubeconfig: the current workspace URL, the current cluster's TLS settings
/// (CA inlined), the registration token and the namespace.
fn agent_kubeconfig(
    session: &Session,
    workspace: &str,
    namespace: &str,
    agent: &str,
    registration: &str,
    token: &str,
) -> anyhow::Result<Kubeconfig> {
    let (current, ca_pem) = current_cluster(session)?;
    let cluster = Cluster {
        server: Some(paths::workspace_url(session.base(), workspace)),
        certificate_authority_data: ca_pem.map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
        tls_server_name: current.tls_server_name,
        proxy_url: current.proxy_url,
        insecure_skip_tls_verify: current.insecure_skip_tls_verify,
        ..Default::default()
    };
    let context = kube::config::Context {
        cluster: "faros".into(),
        user: Some(format!("registration-{registration}")),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    Ok(faros_kubeconfig::one_context(
        agent,
        context,
        cluster,
        Some(faros_kubeconfig::Credential::Token(token).into()),
    ))
}

/// The current context's cluster, and the CA bundle (PEM) it trusts if it names one (inline
/// or in a file: the agent runs elsewhere, so it is always handed on inline).
fn current_cluster(session: &Session) -> anyhow::Result<(Cluster, Option<String>)> {
    let context = session
        .configs
        .get(Section::Contexts, &session.context)
        .ok_or_else(|| anyhow!("context {:?} vanished from the kubeconfig", session.context))?;
    let cluster_name = context.body.get("cluster").and_then(|c| c.as_str()).unwrap_or_default();
    let found = session
        .configs
        .get(Section::Clusters, cluster_name)
        .ok_or_else(|| anyhow!("cluster {cluster_name:?} is not defined in the kubeconfig"))?;
    let current: Cluster = serde_norway::from_value(found.body.clone())
        .with_context(|| format!("cluster {cluster_name:?} of the kubeconfig does not decode"))?;
    let ca_pem = match (
        current.certificate_authority_data.clone().filter(|v| !v.is_empty()),
        current.certificate_authority.clone().filter(|v| !v.is_empty()),
    ) {
        (Some(data), _) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .with_context(|| format!("the certificate-authority-data of cluster {cluster_name:?} is not base64"))?;
            Some(String::from_utf8_lossy(&pem).into_owned())
        }
        (None, Some(file)) => {
            let file = if std::path::Path::new(&file).is_absolute() {
                PathBuf::from(file)
            } else {
                session
                    .configs
                    .path(found.file)
                    .parent()
                    .map(|d| d.join(&file))
                    .unwrap_or_else(|| PathBuf::from(file))
            };
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("reading the hub CA from {}", file.display()))?;
            Some(pem)
        }
        (None, None) => None,
    };
    Ok((current, ca_pem))
}

async fn list(session: &Session, namespace: &str, args: ListArgs) -> anyhow::Result<()> {
    let workspace = session.current_path();
    let client = session.client()?;
    check_bound(session, &client, &workspace).await?;
    let api: Api<Agent> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, namespace)
    };
    let mut agents = api
        .list(&ListParams::default())
        .await
        .map_err(|e| edge_error(session, e, "list Agents", namespace, &workspace))?
        .items;
    agents.sort_by_key(|a| (a.namespace().unwrap_or_default(), a.name_any()));
    if agents.is_empty() {
        if args.all_namespaces {
            eprintln!("No agents found in workspace {workspace}.");
        } else {
            eprintln!("No agents found in namespace {namespace} of workspace {workspace}.");
        }
        return Ok(());
    }
    let mut header = vec!["NAME", "READY", "VERSION", "LAST-HEARTBEAT", "AGE"];
    if args.all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            let status = a.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status.clone())
                .unwrap_or_else(|| "Unknown".into());
            let version = status
                .device
                .as_ref()
                .map(|d| d.agent_version.clone())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "<none>".into());
            let heartbeat = match status.last_heartbeat_time.as_deref() {
                Some(t) => output::age(Some(t)),
                None => "<never>".into(),
            };
            let created = a.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
            let mut row = vec![a.name_any(), ready, version, heartbeat, output::age(created.as_deref())];
            if args.all_namespaces {
                row.insert(0, a.namespace().unwrap_or_default());
            }
            row
        })
        .collect();
    print!("{}", output::table(&header, &rows));
    Ok(())
}

async fn revoke(session: &Session, namespace: &str, args: RevokeArgs) -> anyhow::Result<()> {
    let workspace = workspace_of(session)?;
    let client = session.client()?;
    check_bound(session, &client, &workspace).await?;
    let api: Api<Registration> = Api::namespaced(client, namespace);
    match api.delete(&args.name, &DeleteParams::background()).await {
        Ok(_) => {
            // The hub revokes the token before it lets the Registration go (a finalizer):
            // once it is gone, the token no longer works.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match api.get_opt(&args.name).await {
                    Ok(None) => break,
                    Ok(Some(_)) if Instant::now() >= deadline => {
                        println!(
                            "Registration {:?} in namespace {namespace} of workspace {workspace} is being deleted; \
                             the hub revokes its token before it is gone (check with `kubectl get registration {} -n {namespace}`).",
                            args.name, args.name
                        );
                        return Ok(());
                    }
                    Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(e) => return Err(edge_error(session, e, "read Registrations", namespace, &workspace)),
                }
            }
            println!(
                "Registration {:?} deleted from namespace {namespace} of workspace {workspace}: its token, ServiceAccount, \
                 Role and RoleBinding are revoked with it, so no new agent can join with it.",
                args.name
            );
            Ok(())
        }
        Err(e) if is_status(&e, 404) => bail!(
            "there is no Registration {:?} in namespace {namespace} of workspace {workspace} (see `kubectl get registrations -n {namespace}`)",
            args.name
        ),
        Err(e) => Err(edge_error(session, e, "delete Registrations", namespace, &workspace)),
    }
}

/// Sets or clears `spec.unschedulable` on each agent; returns a client for the workspace.
async fn cordon(session: &Session, namespace: &str, names: &[String], on: bool) -> anyhow::Result<Client> {
    let workspace = session.current_path();
    let client = session.client()?;
    check_serves(session, &client, &workspace, "agents").await?;
    let api: Api<Agent> = Api::namespaced(client.clone(), namespace);
    for name in names {
        let agent = match api.get_opt(name).await {
            Ok(Some(agent)) => agent,
            Ok(None) => bail!(
                "there is no agent {name:?} in namespace {namespace} of workspace {workspace} (see `kubectl get agents -n {namespace}`)"
            ),
            Err(e) => return Err(edge_error(session, e, "read Agents", namespace, &workspace)),
        };
        let verb = if on { "cordoned" } else { "uncordoned" };
        if agent.spec.unschedulable == on {
            println!("agent/{name} already {verb}");
            continue;
        }
        // null removes the field: an uncordoned agent looks like one never cordoned.
        let value = if on {
            serde_json::Value::Bool(true)
        } else {
            serde_json::Value::Null
        };
        let patch = serde_json::json!({"spec": {"unschedulable": value}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| edge_error(session, e, "patch Agents", namespace, &workspace))?;
        println!("agent/{name} {verb}");
    }
    Ok(client)
}

/// Cordons the agents, then deletes their placements of Replicas and Singleton workloads;
/// the scheduler makes new ones on other agents (not these: they are cordoned now).
async fn drain(session: &Session, namespace: &str, names: &[String]) -> anyhow::Result<()> {
    let workspace = session.current_path();
    let client = cordon(session, namespace, names, true).await?;
    let workloads: Api<Workload> = Api::namespaced(client.clone(), namespace);
    let strategies: std::collections::BTreeMap<String, PlacementStrategy> = workloads
        .list(&ListParams::default())
        .await
        .map_err(|e| edge_error(session, e, "list Workloads", namespace, &workspace))?
        .items
        .into_iter()
        .map(|w| (w.name_any(), w.spec.placement.strategy))
        .collect();
    let placements: Api<Placement> = Api::namespaced(client, namespace);
    for name in names {
        let selector = format!("{AGENT_LABEL}={name}");
        let on_agent = crate::workload::placements(&placements, &selector)
            .await
            .map_err(|e| edge_error(session, e, "list Placements", namespace, &workspace))?;
        let mut moved = 0;
        for p in on_agent {
            let workload = &p.spec.workload;
            match strategies.get(workload) {
                Some(PlacementStrategy::Replicas | PlacementStrategy::Singleton) => {}
                Some(PlacementStrategy::All) => {
                    println!("agent/{name}: workload {workload} stays (strategy All runs on every selected agent)");
                    continue;
                }
                // Its workload is gone: the garbage collector removes it.
                None => continue,
            }
            match placements.delete(&p.name_any(), &DeleteParams::background()).await {
                Ok(_) => {
                    moved += 1;
                    println!(
                        "agent/{name}: workload {workload} moved (placement {} deleted; the scheduler places it elsewhere)",
                        p.name_any()
                    );
                }
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(edge_error(session, e, "delete Placements", namespace, &workspace)),
            }
        }
        println!("agent/{name} drained ({moved} placement(s) moved)");
    }
    Ok(())
}
