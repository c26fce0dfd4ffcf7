//! `kubectl faros <TAB>`: kubectl (1.26 and later) completes a plugin's arguments by running
//! `kubectl_complete-<plugin>` with the words after the plugin's name, the last one the word
//! being completed (empty after a space). The answer is cobra's: one candidate a line
//! (`candidate<TAB>description`), then `:<directive>`. `kubectl_complete-faros` hands the
//! words to `kubectl-faros __complete`, which answers here from the command tree itself, and
//! for names (workspaces, agents, registrations, workloads, namespaces) from the hub through
//! the current kubeconfig. Any failure to reach the hub completes nothing, quietly.

use std::time::Duration;

use clap::{Arg, Command};
use faros_api::edge::{Agent, Registration};
use faros_api::tenancy::Workspace;
use faros_api::workloads::Workload;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use crate::session::{ConfigFlags, Session};

/// The hidden first argument that asks `kubectl-faros` for completions.
pub const REQUEST: &str = "__complete";

/// cobra's ShellCompDirective: complete file names (the shell's default).
const DEFAULT: u32 = 0;
/// cobra's ShellCompDirective: offer nothing but the candidates.
const NO_FILES: u32 = 4;
/// How long the hub may take to answer before the names are left out.
const HUB_TIMEOUT: Duration = Duration::from_secs(3);

/// What a position names, when it is the name of something on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Workspaces,
    Agents,
    Registrations,
    Workloads,
    Namespaces,
}

/// What the argument at `path` (canonical subcommand names) with id `arg` names.
fn names_of(path: &[&str], arg: &str) -> Option<Names> {
    Some(match (path, arg) {
        (_, "namespace") => Names::Namespaces,
        (["workspace"], "target") | (["workspace", "use"], "target") | (["workspace", "delete"], "name") => {
            Names::Workspaces
        }
        (["agent", "cordon" | "uncordon" | "drain"], "names")
        | (["agent", "top"], "name")
        | (["logs" | "exec" | "port-forward"], "agent")
        | (["workload", "list"], "agent") => Names::Agents,
        (["agent", "revoke"], "name") => Names::Registrations,
        (["workload", "describe"], "name") | (["workload", "list"], "workload") => Names::Workloads,
        _ => return None,
    })
}

/// Where the word being completed stands.
enum Slot<'a> {
    /// The value of this flag.
    Value(&'a Arg),
    /// A subcommand of this command or its positional argument (if one is left).
    Word(&'a Command, Option<&'a Arg>),
    /// Past `--` or in arguments handed on to kubectl: nothing to offer.
    Nothing,
}

/// The words before the one being completed, read against the command tree.
struct Reading<'a> {
    path: Vec<String>,
    /// Values of the flags seen, by id (the kubeconfig, context and namespace to ask with).
    values: Vec<(String, String)>,
    slot: Slot<'a>,
}

fn read<'a>(root: &'a Command, words: &[String]) -> Reading<'a> {
    let mut command = root;
    let mut path = Vec::new();
    let mut values = Vec::new();
    let mut positionals = 0;
    let mut words = words.iter().peekable();
    while let Some(word) = words.next() {
        if word == "--" {
            return Reading {
                path,
                values,
                slot: Slot::Nothing,
            };
        }
        let flag = if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (long, None),
            };
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(name))
                .map(|a| (a, inline))
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            // `-n ns`, `-nns`, `-A`: the first flag taking a value takes the rest or the next word.
            shorts.char_indices().find_map(|(i, c)| {
                let arg = command.get_arguments().find(|a| a.get_short() == Some(c))?;
                let rest = &shorts[i + c.len_utf8()..];
                takes_value(arg).then(|| (arg, (!rest.is_empty()).then(|| rest.to_string())))
            })
        } else {
            None
        };
        if word.starts_with('-') && word.len() > 1 {
            if let Some((arg, inline)) = flag.filter(|(arg, _)| takes_value(arg)) {
                let value = match inline {
                    Some(value) => value,
                    None if value_optional(arg) => continue,
                    None => match words.next() {
                        Some(value) => value.clone(),
                        None => {
                            return Reading {
                                path,
                                values,
                                slot: Slot::Value(arg),
                            };
                        }
                    },
                };
                values.push((arg.get_id().to_string(), value));
            }
            continue;
        }
        if positionals == 0
            && let Some(sub) = command
                .get_subcommands()
                .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
        {
            command = sub;
            path.push(sub.get_name().to_string());
            continue;
        }
        match positional(command, positionals) {
            Some(arg) if arg.is_trailing_var_arg_set() => {
                return Reading {
                    path,
                    values,
                    slot: Slot::Nothing,
                };
            }
            _ => positionals += 1,
        }
    }
    let slot = match positional(command, positionals) {
        Some(arg) if arg.is_trailing_var_arg_set() => Slot::Nothing,
        next => Slot::Word(command, next),
    };
    Reading { path, values, slot }
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn value_optional(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.min_values() == 0)
}

/// The positional argument that the `index`th positional word fills (a list takes the rest).
fn positional(command: &Command, index: usize) -> Option<&Arg> {
    let all: Vec<&Arg> = command.get_positionals().collect();
    all.get(index).copied().or_else(|| {
        all.last()
            .copied()
            .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1))
    })
}

fn first_line(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string().lines().next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Answers `kubectl-faros __complete WORDS...` on standard output.
pub async fn run(mut root: Command, mut words: Vec<String>) {
    root.build();
    let current = words.pop().unwrap_or_default();
    let reading = read(&root, &words);
    let path: Vec<&str> = reading.path.iter().map(String::as_str).collect();
    let mut candidates: Vec<(String, String)> = Vec::new();
    let mut directive = NO_FILES;
    let mut wanted = None;
    match reading.slot {
        Slot::Nothing => {}
        Slot::Value(arg) => {
            candidates.extend(possible_values(arg));
            wanted = names_of(&path, arg.get_id().as_str());
            let value_name = arg.get_value_names().map(|n| n.join(" ")).unwrap_or_default();
            if candidates.is_empty() && wanted.is_none() && value_name.contains("FILE") {
                directive = DEFAULT;
            }
        }
        Slot::Word(command, _) if current.starts_with('-') => {
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    candidates.push((format!("--{long}"), first_line(arg.get_help())));
                }
            }
        }
        Slot::Word(command, next) => {
            if next.is_none_or(|a| !a.is_required_set()) {
                for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
                    candidates.push((sub.get_name().to_string(), first_line(sub.get_about())));
                }
            }
            if let Some(arg) = next {
                candidates.extend(possible_values(arg));
                wanted = names_of(&path, arg.get_id().as_str());
            }
        }
    }
    if let Some(names) = wanted {
        let value = |id: &str| {
            reading
                .values
                .iter()
                .rev()
                .find(|(k, _)| k == id)
                .map(|(_, v)| v.clone())
        };
        let flags = ConfigFlags {
            kubeconfig: value("kubeconfig").map(Into::into),
            context: value("context"),
        };
        let found = tokio::time::timeout(HUB_TIMEOUT, from_hub(&flags, value("namespace"), names)).await;
        candidates.extend(
            found
                .ok()
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .map(|n| (n, String::new())),
        );
    }
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for (candidate, description) in candidates {
        if !candidate.starts_with(&current) || !seen.insert(candidate.clone()) {
            continue;
        }
        out.push_str(&candidate);
        if !description.is_empty() {
            out.push('\t');
            out.push_str(&description);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    print!("{out}");
}

fn possible_values(arg: &Arg) -> Vec<(String, String)> {
    arg.get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| (v.get_name().to_string(), first_line(v.get_help())))
        .collect()
}

/// The names of `names` in the current workspace (agents and the like in `namespace`, else
/// the context's, else `default`); None when the hub cannot say.
async fn from_hub(flags: &ConfigFlags, namespace: Option<String>, names: Names) -> Option<Vec<String>> {
    let session = Session::load(flags).await.ok()?;
    let client = session.client().ok()?;
    let namespace = namespace
        .or_else(|| session.context_namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let (resource, namespaced) = match names {
        Names::Workspaces => (ApiResource::erase::<Workspace>(&()), false),
        Names::Namespaces => (ApiResource::erase::<Namespace>(&()), false),
        Names::Agents => (ApiResource::erase::<Agent>(&()), true),
        Names::Registrations => (ApiResource::erase::<Registration>(&()), true),
        Names::Workloads => (ApiResource::erase::<Workload>(&()), true),
    };
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client, &namespace, &resource)
    } else {
        Api::all_with(client, &resource)
    };
    let metas = api.list_metadata(&ListParams::default()).await.ok()?;
    let mut list: Vec<String> = metas.items.into_iter().filter_map(|m| m.metadata.name).collect();
    list.sort();
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn slot_of(words: &[&str]) -> (Vec<String>, String) {
        let mut root = crate::Cli::command();
        root.build();
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let reading = read(&root, &words);
        let slot = match reading.slot {
            Slot::Nothing => "nothing".to_string(),
            Slot::Value(arg) => format!("value {}", arg.get_id()),
            Slot::Word(command, next) => format!(
                "word {} {}",
                command.get_name(),
                next.map(|a| a.get_id().to_string()).unwrap_or_default()
            ),
        };
        (reading.path, slot)
    }

    #[test]
    fn positions_are_read_as_clap_would() {
        assert_eq!(slot_of(&[]).1, "word kubectl faros ");
        assert_eq!(slot_of(&["agent"]), (vec!["agent".into()], "word agent ".into()));
        assert_eq!(slot_of(&["agents", "cordon"]).1, "word cordon names");
        assert_eq!(slot_of(&["agent", "cordon", "a1"]).1, "word cordon names");
        assert_eq!(slot_of(&["agent", "-n"]).1, "value namespace");
        assert_eq!(slot_of(&["agent", "-n", "ns", "top"]).1, "word top name");
        assert_eq!(slot_of(&["--kubeconfig", "k", "ws", "use"]).1, "word use target");
        assert_eq!(slot_of(&["workload", "list", "--agent"]).1, "value agent");
        assert_eq!(slot_of(&["logs", "dev1"]).1, "nothing");
        assert_eq!(slot_of(&["logs"]).1, "word logs agent");
        assert_eq!(slot_of(&["exec", "--", "sh"]).1, "nothing");
        assert_eq!(names_of(&["agent", "revoke"], "name"), Some(Names::Registrations));
        assert_eq!(names_of(&["workspace", "create"], "name"), None);
    }
}
