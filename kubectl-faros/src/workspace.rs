//! `kubectl faros workspace ...`: create, use, current, list, tree and delete workspaces.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use faros_api::tenancy::{Workspace, WorkspaceSpec, WorkspaceTypeReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};

use crate::kubeconfig;
use crate::output;
use crate::paths::{self, ROOT, ServerUrl};
use crate::session::{self, Session, is_status, is_workspace_denied};

#[derive(clap::Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
        kubectl faros workspace create acme --type faros --enter\n  \
        kubectl faros ws use root:acme      # absolute path\n  \
        kubectl faros ws plant-7            # shorthand for `ws use plant-7`, relative to the current workspace\n  \
        kubectl faros ws ..                 # the parent workspace\n  \
        kubectl faros ws -                  # back to the previous workspace\n  \
        kubectl faros ws tree"
)]
pub struct WorkspaceArgs {
    #[command(subcommand)]
    pub command: Option<WorkspaceCommand>,
    /// Shorthand for `workspace use TARGET`; without it, prints the current workspace.
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum WorkspaceCommand {
    /// Create a child workspace of the current workspace and wait until it is ready.
    #[command(after_help = "Examples:\n  \
        kubectl faros workspace create acme                 # type from the parent's default (universal)\n  \
        kubectl faros workspace create acme --type faros    # comes with the Faros edge API bound\n  \
        kubectl faros workspace create acme --enter         # and switch to it")]
    Create(CreateArgs),
    /// Switch the kubeconfig to another workspace: NAME (a child), a PATH (`root:a:b`),
    /// `..` (the parent), `-` (the previous workspace) or `~` (root).
    Use(UseArgs),
    /// Print the current workspace.
    Current(CurrentArgs),
    /// List the child workspaces of the current workspace.
    #[command(visible_alias = "ls")]
    List,
    /// Show the current workspace and all workspaces below it as a tree.
    Tree(TreeArgs),
    /// Delete a workspace and everything inside it, child workspaces included.
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Name of the new workspace (lowercase letters, digits and '-').
    pub name: String,
    /// The workspace type: NAME (looked up in this workspace, its ancestors, then root) or
    /// PATH:NAME, e.g. `faros` or `root:faros`. Defaults to the parent type's default child
    /// type.
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// Switch to the workspace once it is ready.
    #[arg(long)]
    pub enter: bool,
    /// Succeed if the workspace already exists (with the same type).
    #[arg(long)]
    pub ignore_existing: bool,
    /// How long to wait for the workspace to become ready.
    #[arg(long, default_value = "1m", value_parser = faros_machinery::duration::parse, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct UseArgs {
    /// NAME, PATH (`root:a:b` or `:root:a:b`), `..`, `-` or `~`.
    #[arg(value_name = "NAME|PATH|..|-|~")]
    pub target: String,
    /// Print only the workspace path.
    #[arg(long)]
    pub short: bool,
}

#[derive(clap::Args, Debug)]
pub struct CurrentArgs {
    /// Print only the workspace path (for shell prompts).
    #[arg(long)]
    pub short: bool,
}

#[derive(clap::Args, Debug)]
pub struct TreeArgs {
    /// Show full workspace paths instead of names.
    #[arg(long, short = 'f')]
    pub full: bool,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Name of a child of the current workspace, or a workspace path.
    pub name: String,
    /// Wait until the workspace and its contents are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub wait: bool,
    /// How long to wait for the deletion to finish.
    #[arg(long, default_value = "2m", value_parser = faros_machinery::duration::parse, value_name = "DURATION")]
    pub timeout: Duration,
}

pub async fn run(session: &mut Session, args: WorkspaceArgs) -> anyhow::Result<()> {
    match (args.command, args.target) {
        (Some(WorkspaceCommand::Create(a)), _) => create(session, a).await,
        (Some(WorkspaceCommand::Use(a)), _) => use_workspace(session, &a.target, a.short).await,
        (Some(WorkspaceCommand::Current(a)), _) => {
            print_current(&session.server, a.short, None);
            Ok(())
        }
        (Some(WorkspaceCommand::List), _) => list(session).await,
        (Some(WorkspaceCommand::Tree(a)), _) => tree(session, a.full).await,
        (Some(WorkspaceCommand::Delete(a)), _) => delete(session, a).await,
        (None, Some(target)) if target == "." => {
            print_current(&session.server, false, None);
            Ok(())
        }
        (None, Some(target)) => use_workspace(session, &target, false).await,
        (None, None) => {
            print_current(&session.server, false, None);
            Ok(())
        }
    }
}

/// `Current workspace is 'root:a' (type root:universal).`
fn print_current(server: &str, short: bool, type_: Option<&str>) {
    let path = ServerUrl::parse(server).path.unwrap_or_else(|| ROOT.to_string());
    if short {
        println!("{path}");
        return;
    }
    match type_ {
        Some(t) => println!("Current workspace is '{path}' (type {t})."),
        None => println!("Current workspace is '{path}'."),
    }
}

fn type_string(type_: Option<&WorkspaceTypeReference>) -> String {
    match type_ {
        Some(t) if t.path.is_empty() => format!("{ROOT}:{}", t.name),
        Some(t) => format!("{}:{}", t.path, t.name),
        None => "unknown".into(),
    }
}

fn workspaces(client: Client) -> Api<Workspace> {
    Api::all(client)
}

/// Error for a request into a workspace that answered 403 "workspace access not permitted".
fn denied(path: &str) -> anyhow::Error {
    anyhow!("workspace {path:?} does not exist or you may not access it")
}

pub async fn use_workspace(session: &mut Session, target: &str, short: bool) -> anyhow::Result<()> {
    if target == "-" {
        let server = kubeconfig::swap_previous(&mut session.configs, &session.context)?;
        session.configs.save()?;
        print_current(&server, short, None);
        return Ok(());
    }
    let path = paths::resolve(&session.current_path(), target)?;
    let type_ = check_enterable(session, &path).await?;
    let url = session.url.for_path(&path);
    kubeconfig::switch_server(&mut session.configs, &session.context, &url)?;
    session.configs.save()?;
    print_current(&url, short, type_.as_deref());
    Ok(())
}

/// Checks that `path` exists and may be entered; returns its type for display. Like kcp's
/// plugin, a Workspace the parent does not show is "not found", and a workspace that
/// refuses requests is "denied"; without access to the parent only the latter can be told.
async fn check_enterable(session: &Session, path: &str) -> anyhow::Result<Option<String>> {
    let mut type_ = None;
    let mut not_found = false;
    if path == ROOT {
        type_ = Some(ROOT.to_string());
    } else if let Some((parent, name)) = paths::split_parent(path) {
        match workspaces(session.client_for(parent)?).get_opt(name).await {
            Ok(Some(ws)) => {
                let phase = ws.status.as_ref().map(|s| s.phase.as_str()).unwrap_or_default();
                if ws.metadata.deletion_timestamp.is_some() {
                    eprintln!("Note: workspace {path:?} is being deleted.");
                } else if phase != "Ready" {
                    eprintln!(
                        "Note: workspace {path:?} is not ready yet (phase {}).",
                        if phase.is_empty() { "unknown" } else { phase }
                    );
                }
                type_ = Some(type_string(ws.spec.type_.as_ref()));
            }
            Ok(None) => not_found = true,
            Err(e) if is_status(&e, 403) => {}
            Err(e) => {
                return Err(session::api_error(
                    e,
                    &format!("looking up workspace {path:?}"),
                    session.base(),
                ));
            }
        }
    }
    match session.client_for(path)?.apiserver_version().await {
        Ok(_) => Ok(type_),
        Err(e) if is_status(&e, 403) && not_found => bail!("workspace {path:?} not found"),
        Err(e) if is_workspace_denied(&e) && type_.is_some() => bail!("access to workspace {path:?} denied"),
        Err(e) if is_workspace_denied(&e) => Err(denied(path)),
        Err(e) if is_status(&e, 401) => bail!(
            "the hub at {} rejected the credentials of context {:?} (HTTP 401)",
            session.base(),
            session.context
        ),
        Err(e) => Err(session::api_error(
            e,
            &format!("entering workspace {path:?}"),
            session.base(),
        )),
    }
}

fn parse_type(text: &str) -> anyhow::Result<WorkspaceTypeReference> {
    let text = text.trim().to_lowercase();
    let (path, name) = match text.rsplit_once(':') {
        Some((path, name)) => (path.to_string(), name.to_string()),
        None => (String::new(), text.clone()),
    };
    if !paths::is_valid_name(&name) {
        bail!("{text:?} is not a workspace type: use NAME or PATH:NAME, e.g. faros or root:faros");
    }
    Ok(WorkspaceTypeReference { name, path })
}

async fn create(session: &mut Session, args: CreateArgs) -> anyhow::Result<()> {
    paths::check_name(&args.name)?;
    let parent = session.current_path();
    // The hub resolves the type (a bare NAME in this workspace, its ancestors, then root)
    // and says why one cannot be used.
    let type_ = args.type_.as_deref().map(parse_type).transpose()?;
    let api = workspaces(session.client()?);
    let object = Workspace::new(
        &args.name,
        WorkspaceSpec {
            type_: type_.clone(),
            ..Default::default()
        },
    );
    let what = format!("creating workspace {:?} in {parent}", args.name);
    let (mut ws, existed) = match api.create(&PostParams::default(), &object).await {
        Ok(ws) => (ws, false),
        Err(e) if is_status(&e, 409) && args.ignore_existing => {
            let ws = api
                .get(&args.name)
                .await
                .map_err(|e| session::api_error(e, &what, session.base()))?;
            (ws, true)
        }
        Err(e) if is_status(&e, 409) => bail!(
            "workspace {:?} already exists in {parent} (use `kubectl faros workspace use {}` to enter it, or --ignore-existing)",
            args.name,
            args.name
        ),
        Err(e) if is_workspace_denied(&e) => return Err(denied(&parent)),
        Err(e) if is_status(&e, 403) => bail!(
            "you may not create workspaces in {parent}: {}",
            session::describe(&e, session.base())
        ),
        Err(e) if is_status(&e, 422) => bail!(
            "cannot create workspace {:?} in {parent}: {} (built-in types: universal, faros)",
            args.name,
            session::describe(&e, session.base())
        ),
        Err(e) if is_status(&e, 404) => bail!(
            "the server at {} does not serve tenancy.kcp.io/v1alpha1 Workspaces; is it a Faros hub? ({})",
            session.base(),
            session::describe(&e, session.base())
        ),
        Err(e) => return Err(session::api_error(e, &what, session.base())),
    };
    let reference = format!(
        "Workspace {:?} (type {})",
        args.name,
        type_string(ws.spec.type_.as_ref())
    );
    if existed {
        if let Some(wanted) = &type_ {
            let have = ws.spec.type_.clone().unwrap_or_default();
            let wanted_path = if wanted.path.is_empty() {
                ROOT
            } else {
                wanted.path.as_str()
            };
            if have.name != wanted.name || (!have.path.is_empty() && have.path != wanted_path) {
                bail!(
                    "workspace {:?} already exists with type {}, not {wanted_path}:{}",
                    args.name,
                    type_string(Some(&have)),
                    wanted.name
                );
            }
        }
        println!("{reference} already exists.");
    }
    let phase = |ws: &Workspace| ws.status.as_ref().map(|s| s.phase.clone()).unwrap_or_default();
    if phase(&ws) != "Ready" {
        if !existed {
            println!("{reference} created. Waiting for it to be ready...");
        }
        let deadline = Instant::now() + args.timeout;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ws = match api.get(&args.name).await {
                Ok(ws) => ws,
                Err(e) if is_status(&e, 404) => bail!("workspace {:?} disappeared while waiting for it", args.name),
                Err(e) => {
                    return Err(session::api_error(
                        e,
                        &format!("waiting for workspace {:?}", args.name),
                        session.base(),
                    ));
                }
            };
            if phase(&ws) == "Ready" {
                break;
            }
            if ws.metadata.deletion_timestamp.is_some() {
                bail!(
                    "workspace {:?} in {parent} is being deleted; create it again once it is gone",
                    args.name
                );
            }
            let conditions = ws.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
            // Waiting does not help these: the type is missing, or its APIs may not be bound.
            let blocked = conditions.iter().find(|c| {
                c.status == "False" && matches!(c.reason.as_str(), "WorkspaceTypeNotFound" | "APIBindingForbidden")
            });
            if let Some(c) = blocked {
                bail!(
                    "workspace {:?} cannot initialize: {}\nDelete it with `kubectl faros workspace delete {}`.",
                    args.name,
                    c.message,
                    args.name
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {} waiting for workspace {:?} to become ready (phase {}). Conditions:\n{}",
                    faros_machinery::duration::show(args.timeout),
                    args.name,
                    if phase(&ws).is_empty() {
                        "unknown".into()
                    } else {
                        phase(&ws)
                    },
                    output::conditions(&conditions).trim_end()
                );
            }
        }
    }
    println!("{reference} is ready to use.");
    if args.enter {
        let path = format!("{parent}:{}", ws.name_any());
        return use_workspace(session, &format!(":{path}"), false).await;
    }
    Ok(())
}

async fn list_children(session: &Session, path: &str) -> anyhow::Result<Vec<Workspace>> {
    match workspaces(session.client_for(path)?).list(&ListParams::default()).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|w| w.name_any());
            Ok(items)
        }
        Err(e) if is_workspace_denied(&e) => Err(denied(path)),
        Err(e) => Err(session::api_error(
            e,
            &format!("listing workspaces in {path:?}"),
            session.base(),
        )),
    }
}

async fn list(session: &Session) -> anyhow::Result<()> {
    let path = session.current_path();
    let items = list_children(session, &path).await?;
    if items.is_empty() {
        eprintln!("No workspaces found in {path}.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|w| {
            let phase = w.status.as_ref().map(|s| s.phase.clone()).unwrap_or_default();
            vec![
                w.name_any(),
                w.spec.type_.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                if w.metadata.deletion_timestamp.is_some() && phase != "Terminating" {
                    "Terminating".into()
                } else {
                    phase
                },
                w.spec.url.clone(),
                output::age(
                    w.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .as_deref(),
                ),
            ]
        })
        .collect();
    print!("{}", output::table(&["NAME", "TYPE", "PHASE", "URL", "AGE"], &rows));
    Ok(())
}

async fn tree(session: &Session, full: bool) -> anyhow::Result<()> {
    let path = session.current_path();
    let label = |p: &str| {
        if full {
            p.to_string()
        } else {
            paths::base_name(p).to_string()
        }
    };
    let mut out = String::from(".\n");
    out.push_str(&format!("└── {}\n", label(&path)));
    // Depth-first, children sorted by name; `prefix` is the indentation of the branch.
    let mut stack: Vec<(String, String, bool)> = Vec::new();
    let children = list_children(session, &path).await?;
    push_children(&mut stack, &path, &children, "    ");
    while let Some((child, prefix, last)) = stack.pop() {
        out.push_str(&format!(
            "{prefix}{} {}\n",
            if last { "└──" } else { "├──" },
            label(&child)
        ));
        let next_prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
        match list_children(session, &child).await {
            Ok(grandchildren) => push_children(&mut stack, &child, &grandchildren, &next_prefix),
            Err(e) => out.push_str(&format!("{next_prefix}└── ({e})\n")),
        }
    }
    print!("{out}");
    Ok(())
}

fn push_children(stack: &mut Vec<(String, String, bool)>, parent: &str, children: &[Workspace], prefix: &str) {
    // Pushed in reverse so the first child is printed first.
    for (i, ws) in children.iter().enumerate().rev() {
        stack.push((
            format!("{parent}:{}", ws.name_any()),
            prefix.to_string(),
            i + 1 == children.len(),
        ));
    }
}

async fn delete(session: &Session, args: DeleteArgs) -> anyhow::Result<()> {
    let current = session.current_path();
    let path = paths::resolve(&current, &args.name)?;
    let Some((parent, name)) = paths::split_parent(&path) else {
        bail!("the workspace {path:?} cannot be deleted: it has no parent");
    };
    let api = workspaces(session.client_for(parent)?);
    let what = format!("deleting workspace {path:?}");
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => bail!("workspace {name:?} not found in {parent}"),
        Err(e) if is_workspace_denied(&e) => return Err(denied(parent)),
        Err(e) if is_status(&e, 403) => bail!(
            "you may not delete workspaces in {parent}: {}",
            session::describe(&e, session.base())
        ),
        Err(e) => return Err(session::api_error(e, &what, session.base())),
    }
    if !args.wait {
        println!("Workspace {path:?} is being deleted, with everything inside it.");
    } else {
        println!("Deleting workspace {path:?} and everything inside it...");
        let deadline = Instant::now() + args.timeout;
        loop {
            match api.get_opt(name).await {
                Ok(None) => break,
                Ok(Some(ws)) if Instant::now() >= deadline => {
                    let conditions = ws.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
                    bail!(
                        "timed out after {} waiting for workspace {path:?} to be deleted; it is still {}. Conditions:\n{}",
                        faros_machinery::duration::show(args.timeout),
                        ws.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("present"),
                        output::conditions(&conditions).trim_end()
                    );
                }
                Ok(Some(_)) => {}
                Err(e) => return Err(session::api_error(e, &what, session.base())).context("waiting for the deletion"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        println!("Workspace {path:?} deleted.");
    }
    if current == path || current.starts_with(&format!("{path}:")) {
        eprintln!(
            "Note: your current workspace {current:?} was inside it; switch with `kubectl faros workspace use {parent}`."
        );
    }
    Ok(())
}
