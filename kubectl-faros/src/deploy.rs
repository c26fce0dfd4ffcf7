//! `kubectl faros deploy NAME --image IMG ...`: the one-line deploy. Builds a Workload from
//! flags and creates or updates it by server-side apply (field manager `kubectl-faros`), so
//! running it again with other flags changes what it set and leaves other managers' fields.
//!
//! A selector that matches no agent is refused unless `--allow-no-match`: with a typo in a
//! label, a deploy would otherwise "succeed" and run nowhere. Agents joining later are
//! picked up by the scheduler either way.

use anyhow::{Context, anyhow, bail};
use faros_api::edge::Agent;
use faros_api::workloads::{
    Container, ContainerPort, EnvVar, LabelSelector, LabelSelectorRequirement, PlacementPolicy, PlacementStrategy,
    Process, Protocol, Quantity, ResourceList, ResourceRequirements, RestartPolicy, SchedulingPolicy, Workload,
    WorkloadSpec, WorkloadTemplate, is_dns_label, validate_spec,
};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::agent::{check_serves, edge_error};
use crate::session::Session;

/// The field manager of everything this plugin applies.
pub(crate) const FIELD_MANAGER: &str = "kubectl-faros";

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kubectl faros deploy web --image localhost/demo:1 --port 8080 --selector site=north\n  \
    kubectl faros deploy api --image registry.example/api:2 --port 8080:80 --replicas 2 \\\n      \
    --scheduling resource-aware --cpu 250m --memory 128Mi --env MODE=edge\n  \
    kubectl faros deploy probe --process /usr/local/bin/probe --all -- --interval 10s\n  \
    kubectl faros deploy web --image localhost/demo:1 --dry-run        # print the Workload, send nothing")]
pub(crate) struct DeployArgs {
    /// Name of the Workload.
    name: String,
    /// Run this container image (the podman runtime).
    #[arg(
        long,
        value_name = "IMAGE",
        required_unless_present = "process",
        conflicts_with = "process"
    )]
    image: Option<String>,
    /// Run this executable of the device as a supervised process (the process runtime).
    #[arg(long, value_name = "PATH")]
    process: Option<String>,
    /// A port to publish: PORT (the same on the device and in the container),
    /// HOST:CONTAINER, or :CONTAINER (a free device port the agent reports in the
    /// placement's endpoints), optionally with /udp (repeatable).
    #[arg(long = "port", short = 'p', value_name = "[HOST:]PORT[/udp]")]
    ports: Vec<String>,
    /// An environment variable (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Run on agents with these labels: `k=v`, `k!=v`, `k`, `!k`, comma-separated (default:
    /// every agent of the namespace).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    selector: Option<String>,
    /// Run on this many of the selected agents.
    #[arg(long, value_name = "N", group = "strategy")]
    replicas: Option<i32>,
    /// Run on every selected agent (the default).
    #[arg(long, group = "strategy")]
    all: bool,
    /// Run on exactly one of the selected agents.
    #[arg(long, group = "strategy")]
    singleton: bool,
    /// How --replicas and --singleton choose agents.
    #[arg(long, value_enum, default_value = "spread")]
    scheduling: Scheduling,
    /// cpu request, e.g. 250m or 1.
    #[arg(long, value_name = "QUANTITY")]
    cpu: Option<String>,
    /// memory request, e.g. 64Mi.
    #[arg(long, value_name = "QUANTITY")]
    memory: Option<String>,
    /// Restart policy.
    #[arg(long, value_enum, default_value = "Always")]
    restart: Restart,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Print the Workload as YAML and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Deploy even if no agent matches the selector yet.
    #[arg(long)]
    allow_no_match: bool,
    /// With --image, the command to run instead of the image's entrypoint; with --process,
    /// the arguments.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Scheduling {
    Spread,
    ResourceAware,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Restart {
    #[value(name = "Always")]
    Always,
    #[value(name = "OnFailure")]
    OnFailure,
    #[value(name = "Never")]
    Never,
}

pub(crate) async fn run(session: &Session, args: DeployArgs) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| session.context_namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let mut workload = Workload::new(&args.name, workload_spec(&args)?);
    workload.metadata.namespace = Some(namespace.clone());
    // What admission would refuse, refused here with the same field paths.
    let problems = validate_spec(&workload.spec);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {}: {}", p.path, p.detail)).collect();
        bail!("the Workload would be invalid:\n{}", lines.join("\n"));
    }
    if args.dry_run {
        print!("{}", serde_norway::to_string(&workload)?);
        return Ok(());
    }

    let workspace = session.current_path();
    let client = session.client()?;
    check_serves(session, &client, &workspace, "workloads").await?;
    let selector = workload.spec.selector.clone().unwrap_or_default();
    let agents: Api<Agent> = Api::namespaced(client.clone(), &namespace);
    let matching = agents
        .list(&ListParams::default().labels(&selector_query(&selector)))
        .await
        .map_err(|e| edge_error(session, e, "list Agents", &namespace, &workspace))?
        .items;
    let runtime = workload.spec.template.runtime();
    if matching.is_empty() && !args.allow_no_match {
        bail!(
            "no agent in namespace {namespace} of workspace {workspace} matches the selector {selector}, so the \
             workload would run nowhere.\nLabel agents first (`kubectl label agent DEVICE KEY=VALUE`, see \
             `kubectl get agents --show-labels`), or pass --allow-no-match to deploy for agents that join later."
        );
    }

    let workloads: Api<Workload> = Api::namespaced(client, &namespace);
    let before = workloads
        .get_opt(&args.name)
        .await
        .map_err(|e| edge_error(session, e, "read Workloads", &namespace, &workspace))?
        .map(|w| w.metadata.generation);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = workloads
        .patch(&args.name, &params, &Patch::Apply(&workload))
        .await
        .map_err(|e| edge_error(session, e, "apply Workloads", &namespace, &workspace))?;
    let verb = match before {
        None => "created",
        Some(generation) if generation == applied.metadata.generation => "unchanged",
        Some(_) => "configured",
    };
    println!("workload.edge.faros.sh/{} {verb}", applied.name_any());

    let names: Vec<String> = matching.iter().map(|a| a.name_any()).collect();
    let with_runtime = matching
        .iter()
        .filter(|a| {
            a.status
                .as_ref()
                .is_some_and(|s| s.runtimes.iter().any(|r| r == runtime))
        })
        .count();
    if matching.is_empty() {
        eprintln!("Warning: no agent matches the selector {selector} yet; it runs once agents with those labels join.");
    } else if with_runtime == 0 {
        eprintln!(
            "Warning: {} agent(s) match the selector {selector} ({}), but none reports the {runtime} runtime: \
             it runs nowhere until one does (see `kubectl faros workload describe {}`).",
            names.len(),
            names.join(", "),
            args.name
        );
    } else {
        println!(
            "{} agent(s) match the selector {selector}: {}. Follow it with `kubectl get workload {}` or \
             `kubectl faros workload describe {}`.",
            names.len(),
            names.join(", "),
            args.name,
            args.name
        );
    }
    Ok(())
}

fn workload_spec(args: &DeployArgs) -> anyhow::Result<WorkloadSpec> {
    let ports = args
        .ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let env = args
        .env
        .iter()
        .map(|e| {
            e.split_once('=')
                .map(|(name, value)| EnvVar {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .ok_or_else(|| anyhow!("--env {e:?}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let requests = ResourceList {
        cpu: args.cpu.clone().map(Quantity),
        memory: args.memory.clone().map(Quantity),
    };
    let resources = (!requests.is_empty()).then(|| ResourceRequirements {
        requests,
        ..Default::default()
    });
    let restart_policy = match args.restart {
        Restart::Always => RestartPolicy::Always,
        Restart::OnFailure => RestartPolicy::OnFailure,
        Restart::Never => RestartPolicy::Never,
    };
    let template = match (&args.image, &args.process) {
        (Some(image), None) => WorkloadTemplate {
            containers: vec![Container {
                // The container is named after the workload when that makes a DNS label.
                name: if is_dns_label(&args.name) {
                    args.name.clone()
                } else {
                    "main".into()
                },
                image: image.clone(),
                command: args.command.clone(),
                env,
                ports,
                resources,
                ..Default::default()
            }],
            restart_policy,
            ..Default::default()
        },
        (None, Some(path)) => WorkloadTemplate {
            process: Some(Process {
                path: path.clone(),
                args: args.command.clone(),
                env,
                ports,
                resources,
                ..Default::default()
            }),
            restart_policy,
            ..Default::default()
        },
        _ => bail!("give either --image or --process"),
    };
    let strategy = if args.replicas.is_some() {
        PlacementStrategy::Replicas
    } else if args.singleton {
        PlacementStrategy::Singleton
    } else {
        PlacementStrategy::All
    };
    Ok(WorkloadSpec {
        selector: args.selector.as_deref().map(parse_selector).transpose()?,
        placement: PlacementPolicy {
            strategy,
            replicas: args.replicas,
            scheduling: match args.scheduling {
                Scheduling::Spread => SchedulingPolicy::Spread,
                Scheduling::ResourceAware => SchedulingPolicy::ResourceAware,
            },
        },
        template,
    })
}

/// `8080` (the same port on the device and in the container), `8080:80` (device:container),
/// `:80` (a device port the agent picks), each with an optional `/udp` or `/tcp`.
fn parse_port(text: &str) -> anyhow::Result<ContainerPort> {
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((ports, proto)) if proto.eq_ignore_ascii_case("udp") => (ports, Protocol::Udp),
        Some((ports, proto)) if proto.eq_ignore_ascii_case("tcp") => (ports, Protocol::Tcp),
        Some(_) => bail!("--port {text:?}: the protocol is tcp or udp"),
        None => (text, Protocol::Tcp),
    };
    let number = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .map(i32::from)
            .with_context(|| format!("--port {text:?}: {p:?} is not a port number (1-65535)"))
    };
    let (host, container) = match ports.split_once(':') {
        Some(("", container)) => (None, number(container)?),
        Some((host, container)) => (Some(number(host)?), number(container)?),
        None => (Some(number(ports)?), number(ports)?),
    };
    Ok(ContainerPort {
        container_port: container,
        host_port: host,
        protocol,
        ..Default::default()
    })
}

/// `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated, as `kubectl -l` reads them.
fn parse_selector(text: &str) -> anyhow::Result<LabelSelector> {
    let mut selector = LabelSelector::default();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let requirement = |key: &str, operator: &str, values: Vec<String>| LabelSelectorRequirement {
            key: key.trim().to_string(),
            operator: operator.to_string(),
            values,
        };
        if let Some((key, value)) = term.split_once("!=") {
            selector
                .match_expressions
                .push(requirement(key, "NotIn", vec![value.trim().to_string()]));
        } else if let Some((key, value)) = term.split_once('=') {
            let value = value.strip_prefix('=').unwrap_or(value);
            selector
                .match_labels
                .insert(key.trim().to_string(), value.trim().to_string());
        } else if let Some(key) = term.strip_prefix('!') {
            selector
                .match_expressions
                .push(requirement(key, "DoesNotExist", vec![]));
        } else {
            selector.match_expressions.push(requirement(term, "Exists", vec![]));
        }
    }
    if selector
        .match_labels
        .keys()
        .chain(selector.match_expressions.iter().map(|r| &r.key))
        .any(|k| k.is_empty() || k.contains(char::is_whitespace))
    {
        bail!("--selector {text:?}: expected k=v, k!=v, k or !k, comma-separated");
    }
    Ok(selector)
}

/// The selector as a `labelSelector` query (the server picks the matching agents).
fn selector_query(selector: &LabelSelector) -> String {
    let mut terms: Vec<String> = selector.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for r in &selector.match_expressions {
        terms.push(match r.operator.as_str() {
            "NotIn" => format!("{} notin ({})", r.key, r.values.join(",")),
            "In" => format!("{} in ({})", r.key, r.values.join(",")),
            "DoesNotExist" => format!("!{}", r.key),
            _ => r.key.clone(),
        });
    }
    terms.join(",")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn ports() {
        let p = parse_port("8080").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (Some(8080), 8080, Protocol::Tcp)
        );
        let p = parse_port("8080:80/udp").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (Some(8080), 80, Protocol::Udp)
        );
        let p = parse_port(":80").unwrap();
        assert_eq!((p.host_port, p.container_port), (None, 80));
        for bad in ["0", "70000", "x", "80/sctp", "80:", ":", ":0"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors() {
        let s = parse_selector("site=north, tier==edge,zone!=b,gpu,!old").unwrap();
        assert_eq!(s.to_string(), "site=north,tier=edge,zone notin (b),gpu,!old");
        assert_eq!(selector_query(&s), "site=north,tier=edge,zone notin (b),gpu,!old");
        let labels: BTreeMap<String, String> = [("site", "north"), ("tier", "edge"), ("gpu", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(s.matches(&labels));
        assert!(parse_selector("=x").is_err());
    }
}
