//! `kubectl faros workload list|describe`: what runs where, one row per (workload, device).
//!
//! Both read Placements by label (`edge.faros.sh/agent=A`, `edge.faros.sh/workload=W`), so
//! the hub selects the rows: one paged list, never a request per device or per workload.

use anyhow::bail;
use faros_api::edge::AGENT_LABEL;
use faros_api::workloads::{Placement, PlacementStrategy, ResourceRequirements, WORKLOAD_LABEL, Workload};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::agent::{check_serves, edge_error};
use crate::output;
use crate::session::{Session, is_status};

#[derive(clap::Args, Debug)]
pub(crate) struct WorkloadArgs {
    #[command(subcommand)]
    command: WorkloadCommand,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(long, short = 'n', global = true, value_name = "NAMESPACE", display_order = 800)]
    namespace: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum WorkloadCommand {
    /// What runs on which device: one row per placement.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  \
            kubectl faros workload list --agent dev1       # what runs on one device\n  \
            kubectl faros workload list -A -o wide\n  \
            kubectl faros workload list --workload web -o yaml"
    )]
    List(ListArgs),
    /// A workload, its conditions and how it runs on each device.
    Describe(DescribeArgs),
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Only the placements of this agent.
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,
    /// Only the placements of this workload.
    #[arg(long, value_name = "WORKLOAD")]
    workload: Option<String>,
    /// List placements in all namespaces.
    #[arg(long, short = 'A')]
    all_namespaces: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum)]
    output: Option<Format>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Wide,
    Json,
    Yaml,
    Name,
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// Name of the Workload.
    name: String,
}

pub(crate) async fn run(session: &Session, args: WorkloadArgs) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| session.context_namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let workspace = session.current_path();
    let client = session.client()?;
    check_serves(session, &client, &workspace, "placements").await?;
    match args.command {
        WorkloadCommand::List(a) => list(session, client, &workspace, &namespace, a).await,
        WorkloadCommand::Describe(a) => describe(session, client, &workspace, &namespace, a).await,
    }
}

/// Every placement `selector` picks, in pages so that a list of thousands never has to come
/// back in one response.
pub(crate) async fn placements(api: &Api<Placement>, selector: &str) -> Result<Vec<Placement>, kube::Error> {
    let mut params = ListParams::default().limit(500);
    if !selector.is_empty() {
        params = params.labels(selector);
    }
    let mut out = Vec::new();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

async fn list(
    session: &Session,
    client: Client,
    workspace: &str,
    namespace: &str,
    args: ListArgs,
) -> anyhow::Result<()> {
    let api: Api<Placement> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, namespace)
    };
    let mut selector = Vec::new();
    if let Some(agent) = &args.agent {
        selector.push(format!("{AGENT_LABEL}={agent}"));
    }
    if let Some(workload) = &args.workload {
        selector.push(format!("{WORKLOAD_LABEL}={workload}"));
    }
    let mut items = placements(&api, &selector.join(","))
        .await
        .map_err(|e| edge_error(session, e, "list Placements", namespace, workspace))?;
    items.sort_by_key(|p| (p.namespace(), p.spec.workload.clone(), p.spec.agent.clone()));
    match args.output {
        Some(Format::Json | Format::Yaml) => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items});
            if args.output == Some(Format::Json) {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", serde_norway::to_string(&list)?);
            }
            return Ok(());
        }
        Some(Format::Name) => {
            for p in &items {
                println!("placement.edge.faros.sh/{}", p.name_any());
            }
            return Ok(());
        }
        _ => {}
    }
    if items.is_empty() {
        let scope = if args.all_namespaces {
            format!("workspace {workspace}")
        } else {
            format!("namespace {namespace} of workspace {workspace}")
        };
        match &args.agent {
            Some(agent) => eprintln!("Nothing is placed on agent {agent} in {scope}."),
            None => eprintln!("No workloads are placed in {scope}."),
        }
        return Ok(());
    }
    let wide = args.output == Some(Format::Wide);
    let mut header = vec!["WORKLOAD", "AGENT", "PHASE", "READY", "RESTARTS", "ENDPOINTS", "AGE"];
    if wide {
        header.extend(["UP-TO-DATE", "PLACEMENT", "MESSAGE"]);
    }
    if args.all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|p| {
            let mut row = vec![p.spec.workload.clone(), p.spec.agent.clone()];
            row.extend(cells(p));
            if wide {
                row.extend([up_to_date(p), p.name_any(), message(p)]);
            }
            if args.all_namespaces {
                row.insert(0, p.namespace().unwrap_or_default());
            }
            row
        })
        .collect();
    print!("{}", output::table(&header, &rows));
    Ok(())
}

/// PHASE, READY, RESTARTS, ENDPOINTS, AGE of a placement.
fn cells(p: &Placement) -> [String; 5] {
    let status = p.status.clone().unwrap_or_default();
    let total = p
        .spec
        .template
        .containers
        .len()
        .max(usize::from(p.spec.template.process.is_some()));
    let ready = if status.containers.is_empty() {
        if status.ready { total } else { 0 }
    } else {
        status.containers.iter().filter(|c| c.ready).count()
    };
    let endpoints: Vec<&str> = status
        .endpoints
        .iter()
        .map(|e| e.url.as_str())
        .filter(|u| !u.is_empty())
        .collect();
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
    [
        if p.status.is_some() {
            format!("{:?}", status.phase)
        } else {
            "Pending".into()
        },
        format!("{ready}/{total}"),
        status.restart_count.to_string(),
        if endpoints.is_empty() {
            "<none>".into()
        } else {
            endpoints.join(",")
        },
        output::age(created.as_deref()),
    ]
}

/// Whether the device reports running the placement's current template.
fn up_to_date(p: &Placement) -> String {
    let current = p
        .status
        .as_ref()
        .is_some_and(|s| s.template_hash == p.spec.template_hash);
    if current { "true" } else { "false" }.into()
}

fn message(p: &Placement) -> String {
    let s = p.status.clone().unwrap_or_default();
    match (s.reason.is_empty(), s.message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => s.reason,
        (true, false) => s.message,
        (false, false) => format!("{}: {}", s.reason, s.message),
    }
}

async fn describe(
    session: &Session,
    client: Client,
    workspace: &str,
    namespace: &str,
    args: DescribeArgs,
) -> anyhow::Result<()> {
    let workloads: Api<Workload> = Api::namespaced(client.clone(), namespace);
    let workload = match workloads.get(&args.name).await {
        Ok(w) => w,
        Err(e) if is_status(&e, 404) => bail!(
            "there is no Workload {:?} in namespace {namespace} of workspace {workspace} (see `kubectl get workloads -n {namespace}`)",
            args.name
        ),
        Err(e) => return Err(edge_error(session, e, "read Workloads", namespace, workspace)),
    };
    let api: Api<Placement> = Api::namespaced(client, namespace);
    let mut items = placements(&api, &format!("{WORKLOAD_LABEL}={}", args.name))
        .await
        .map_err(|e| edge_error(session, e, "list Placements", namespace, workspace))?;
    items.sort_by(|a, b| a.spec.agent.cmp(&b.spec.agent));
    print!("{}", describe_text(&workload, &items));
    Ok(())
}

/// ` requests cpu=250m memory=64Mi`, or nothing.
fn requests(resources: Option<&ResourceRequirements>) -> String {
    let Some(r) = resources.map(|r| &r.requests).filter(|r| !r.is_empty()) else {
        return String::new();
    };
    let mut out = String::from(" requests");
    if let Some(cpu) = &r.cpu {
        out.push_str(&format!(" cpu={cpu}"));
    }
    if let Some(memory) = &r.memory {
        out.push_str(&format!(" memory={memory}"));
    }
    out
}

fn describe_text(w: &Workload, items: &[Placement]) -> String {
    let spec = &w.spec;
    let status = w.status.clone().unwrap_or_default();
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{:<14}{value}\n", format!("{name}:")));
    field("Name", w.name_any());
    field("Namespace", w.namespace().unwrap_or_default());
    field("Selector", spec.selector.clone().unwrap_or_default().to_string());
    let p = &spec.placement;
    field(
        "Placement",
        match p.strategy {
            PlacementStrategy::All => "All (every selected agent)".to_string(),
            PlacementStrategy::Replicas => {
                format!("Replicas {} ({:?})", p.replicas.unwrap_or_default(), p.scheduling)
            }
            PlacementStrategy::Singleton => format!("Singleton ({:?})", p.scheduling),
        },
    );
    field("Runtime", spec.template.runtime().to_string());
    for c in &spec.template.containers {
        let mut line = format!("{} {}", c.name, c.image);
        for port in &c.ports {
            line.push_str(&format!(
                " {}->{}/{}",
                port.host_port.map(|h| h.to_string()).unwrap_or_else(|| "*".into()),
                port.container_port,
                port.protocol.as_str()
            ));
        }
        line.push_str(&requests(c.resources.as_ref()));
        field("Container", line);
    }
    if let Some(process) = &spec.template.process {
        let line = format!("{} {}", process.path, process.args.join(" "));
        field(
            "Process",
            format!("{}{}", line.trim_end(), requests(process.resources.as_ref())),
        );
    }
    field("Template", spec.template.hash());
    field(
        "Placements",
        format!(
            "{} desired, {} scheduled, {} ready, {} up to date",
            status.desired, status.scheduled, status.ready, status.updated
        ),
    );
    if status.observed_generation != w.metadata.generation {
        field(
            "Observed",
            format!(
                "generation {} of {} (the scheduler has not caught up yet)",
                status.observed_generation.unwrap_or_default(),
                w.metadata.generation.unwrap_or_default()
            ),
        );
    }
    out.push_str("Conditions:\n");
    out.push_str(&output::conditions(&status.conditions));
    out.push_str("Devices:\n");
    if items.is_empty() {
        out.push_str("  (placed on no agent)\n");
        return out;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|p| {
            let [phase, ready, restarts, endpoints, age] = cells(p);
            vec![
                p.spec.agent.clone(),
                phase,
                ready,
                restarts,
                up_to_date(p),
                endpoints,
                age,
                message(p),
            ]
        })
        .collect();
    let table = output::table(
        &[
            "AGENT",
            "PHASE",
            "READY",
            "RESTARTS",
            "UP-TO-DATE",
            "ENDPOINTS",
            "AGE",
            "MESSAGE",
        ],
        &rows,
    );
    for line in table.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::workloads::{
        Container, ContainerStatus, Endpoint, PlacementPhase, PlacementSpec, PlacementStatus, WorkloadSpec,
        WorkloadTemplate,
    };

    fn placement(status: Option<PlacementStatus>) -> Placement {
        let template = WorkloadTemplate {
            containers: vec![
                Container {
                    name: "web".into(),
                    image: "localhost/demo:1".into(),
                    ..Default::default()
                },
                Container {
                    name: "sidecar".into(),
                    image: "localhost/side:1".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut p = Placement::new(
            "web-dev1-000000",
            PlacementSpec {
                workload: "web".into(),
                agent: "dev1".into(),
                template_hash: template.hash(),
                template,
            },
        );
        p.status = status;
        p
    }

    #[test]
    fn rows_count_ready_containers_and_show_endpoints() {
        let [phase, ready, restarts, endpoints, _] = cells(&placement(None));
        assert_eq!([phase, ready, restarts, endpoints], ["Pending", "0/2", "0", "<none>"]);
        let p = placement(Some(PlacementStatus {
            phase: PlacementPhase::Running,
            restart_count: 3,
            containers: vec![
                ContainerStatus {
                    name: "web".into(),
                    ready: true,
                    ..Default::default()
                },
                ContainerStatus {
                    name: "sidecar".into(),
                    ..Default::default()
                },
            ],
            endpoints: vec![Endpoint {
                url: "tcp://10.0.0.7:8080".into(),
                ..Default::default()
            }],
            reason: "Restarting".into(),
            ..Default::default()
        }));
        let [phase, ready, restarts, endpoints, _] = cells(&p);
        assert_eq!(
            [phase, ready, restarts, endpoints],
            ["Running", "1/2", "3", "tcp://10.0.0.7:8080"]
        );
        assert_eq!(up_to_date(&p), "false");
        assert_eq!(message(&p), "Restarting");
    }

    #[test]
    fn describe_shows_the_spec_conditions_and_devices() {
        let mut w = Workload::new(
            "web",
            WorkloadSpec {
                template: placement(None).spec.template,
                ..Default::default()
            },
        );
        w.metadata.namespace = Some("default".into());
        let text = describe_text(&w, &[placement(None)]);
        assert!(
            text.starts_with("Name:         web\nNamespace:    default\nSelector:     <all agents>\n"),
            "{text}"
        );
        assert!(text.contains("Placement:    All (every selected agent)\n"), "{text}");
        assert!(text.contains("Container:    web localhost/demo:1\n"), "{text}");
        assert!(
            text.contains("Conditions:\n  (no conditions reported yet)\nDevices:\n  AGENT"),
            "{text}"
        );
        assert!(
            text.contains("\n  dev1    Pending   0/2     0          false"),
            "{text}"
        );
    }
}
