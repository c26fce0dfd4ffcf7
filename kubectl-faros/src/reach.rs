//! `kubectl faros logs|exec|port-forward AGENT [WORKLOAD] [ARGS...]`: reach what runs on a
//! device by the device's name. The instance is found among the agent's placements (each
//! is served as the Pod of the same name), then kubectl itself does the rest with its own
//! streaming protocols, so every flag of `kubectl logs`, `exec` and `port-forward` works as
//! documented there.

use std::process::Command;

use anyhow::{Context, bail};
use faros_api::edge::AGENT_LABEL;
use faros_api::workloads::Placement;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::session::{ConfigFlags, Session};

/// Which kubectl command to hand over to.
#[derive(Clone, Copy, Debug)]
pub enum Verb {
    Logs,
    Exec,
    PortForward,
}

impl Verb {
    fn kubectl(self) -> &'static str {
        match self {
            Verb::Logs => "logs",
            Verb::Exec => "exec",
            Verb::PortForward => "port-forward",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ReachArgs {
    /// The agent (device) the workload runs on.
    agent: String,
    /// The namespace of the agent (default: the context's, else `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// `[WORKLOAD]` then anything `kubectl logs|exec|port-forward` takes after the pod
    /// (`-f --tail 20`, `-c web -it -- sh`, `8080:80`). The workload may be left out when
    /// only one runs on the agent.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "[WORKLOAD] ARGS")]
    rest: Vec<String>,
}

pub async fn run(session: &Session, config: &ConfigFlags, verb: Verb, args: ReachArgs) -> anyhow::Result<()> {
    let namespace = args
        .namespace
        .clone()
        .or_else(|| session.context_namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let placements: Api<Placement> = Api::namespaced(session.client()?, &namespace);
    let selected = ListParams::default().labels(&format!("{AGENT_LABEL}={}", args.agent));
    let on_agent = placements
        .list(&selected)
        .await
        .map_err(|e| crate::session::api_error(e, "list Placements", session.base()))?
        .items;
    let (pod, rest) = choose(&args.agent, &namespace, &on_agent, args.rest)?;

    let kubectl = std::env::var_os("KUBECTL_PLUGINS_CALLER").unwrap_or_else(|| "kubectl".into());
    let mut command = Command::new(&kubectl);
    command.arg(verb.kubectl()).arg(&pod).arg("-n").arg(&namespace);
    if let Some(path) = &config.kubeconfig {
        command.arg("--kubeconfig").arg(path);
    }
    if let Some(context) = &config.context {
        command.arg("--context").arg(context);
    }
    command.args(rest);
    let status = command
        .status()
        .with_context(|| format!("running {}", kubectl.to_string_lossy()))?;
    std::process::exit(status.code().unwrap_or(1));
}

/// The pod (the placement's name) to reach, and the arguments left for kubectl.
fn choose(
    agent: &str,
    namespace: &str,
    on_agent: &[Placement],
    mut rest: Vec<String>,
) -> anyhow::Result<(String, Vec<String>)> {
    let named = rest
        .first()
        .filter(|first| !first.starts_with('-'))
        .and_then(|first| on_agent.iter().find(|p| p.spec.workload == *first))
        .cloned();
    let placement = match named {
        Some(p) => {
            rest.remove(0);
            p
        }
        None => match on_agent {
            [] => bail!(
                "nothing runs on agent {agent:?} in namespace {namespace:?} (kubectl faros workload list --agent {agent})"
            ),
            [only] => only.clone(),
            many => {
                let mut workloads: Vec<&str> = many.iter().map(|p| p.spec.workload.as_str()).collect();
                workloads.sort_unstable();
                let given = rest
                    .first()
                    .filter(|first| !first.starts_with('-'))
                    .map(|w| format!("{w:?} does not run there; "))
                    .unwrap_or_default();
                bail!(
                    "{given}agent {agent:?} runs {} workloads: name one of {}",
                    many.len(),
                    workloads.join(", ")
                )
            }
        },
    };
    Ok((placement.name_any(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::workloads::PlacementSpec;

    fn placement(workload: &str) -> Placement {
        let mut p = Placement::new(
            &faros_api::workloads::placement_name(workload, "dev1"),
            PlacementSpec {
                workload: workload.into(),
                agent: "dev1".into(),
                ..Default::default()
            },
        );
        p.metadata.namespace = Some("default".into());
        p
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_workload_is_optional_when_only_one_runs() {
        let one = [placement("web")];
        let (pod, rest) = choose("dev1", "default", &one, args(&["-f", "--tail", "5"])).unwrap();
        assert!(pod.starts_with("web-dev1-"));
        assert_eq!(rest, ["-f", "--tail", "5"]);
        let (_, rest) = choose("dev1", "default", &one, args(&["web", "-f"])).unwrap();
        assert_eq!(rest, ["-f"]);
        // Not a workload of this agent: left for kubectl (a port mapping, say).
        let (_, rest) = choose("dev1", "default", &one, args(&["8080:80"])).unwrap();
        assert_eq!(rest, ["8080:80"]);
    }

    #[test]
    fn several_need_a_name() {
        let two = [placement("web"), placement("db")];
        let (pod, _) = choose("dev1", "default", &two, args(&["db"])).unwrap();
        assert!(pod.starts_with("db-dev1-"));
        let err = choose("dev1", "default", &two, args(&["cache"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"cache\" does not run there") && err.contains("db, web"),
            "{err}"
        );
        let err = choose("dev1", "default", &[], args(&[])).unwrap_err().to_string();
        assert!(err.contains("nothing runs on agent \"dev1\""), "{err}");
    }
}
