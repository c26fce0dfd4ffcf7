//! `kubectl faros bind [EXPORT-PATH:NAME]`: bind an APIExport into the current workspace.

use std::time::{Duration, Instant};

use anyhow::bail;
use faros_api::apis::{
    APIBinding, APIBindingSpec, BindingReference, CLAIM_ACCEPTED, CLAIM_REJECTED, ExportReference, PermissionClaim,
};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::output;
use crate::paths;
use crate::session::{self, Session, is_status, is_workspace_denied};

/// The Faros edge API, exported by the hub from `root:faros-system`.
pub const DEFAULT_EXPORT: &str = "root:faros-system:edge.faros.sh";

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    kubectl faros bind                                    # the Faros edge API (Agents, Registrations)\n  \
    kubectl faros bind root:faros-system:edge.faros.sh    # the same, spelled out\n  \
    kubectl faros bind root:acme:widgets.acme.io --name widgets")]
pub struct BindArgs {
    /// The APIExport to bind: the path of the workspace exporting it, a colon, and its name.
    #[arg(value_name = "EXPORT-PATH:NAME", default_value = DEFAULT_EXPORT)]
    pub export: String,
    /// Name of the APIBinding to create (default: the export's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Accept every permission claim the export makes: the exporter's controllers may then
    /// act on those resources in this workspace. On by default for the Faros edge API,
    /// whose controllers manage agent credentials and heartbeat Leases here (as
    /// config/samples/binding.yaml does); off by default for other exports.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub accept_all_permission_claims: Option<bool>,
    /// Accept one permission claim, as RESOURCE or RESOURCE.GROUP (repeatable, e.g.
    /// `configmaps`, `roles.rbac.authorization.k8s.io`); the export's other claims are
    /// rejected.
    #[arg(long = "accept-permission-claim", value_name = "RESOURCE[.GROUP]")]
    pub accept_permission_claim: Vec<String>,
    /// How long to wait for the binding to become Bound.
    #[arg(long, default_value = "30s", value_parser = faros_machinery::duration::parse, value_name = "DURATION")]
    pub timeout: Duration,
}

pub async fn run(session: &Session, args: BindArgs) -> anyhow::Result<()> {
    let Some((export_path, export_name)) = args.export.rsplit_once(':') else {
        bail!(
            "{:?} is not an export reference: use EXPORT-PATH:NAME, e.g. {DEFAULT_EXPORT}",
            args.export
        );
    };
    if export_name.is_empty() || paths::resolve(paths::ROOT, &format!(":{export_path}")).is_err() {
        bail!(
            "{:?} is not an export reference: use EXPORT-PATH:NAME with an absolute workspace path, e.g. {DEFAULT_EXPORT}",
            args.export
        );
    }
    let here = session.current_path();
    let binding_name = args.name.clone().unwrap_or_else(|| export_name.to_string());

    let answer = if args.accept_all_permission_claims == Some(true) {
        if !args.accept_permission_claim.is_empty() {
            bail!("use either --accept-all-permission-claims or --accept-permission-claim, not both");
        }
        ClaimAnswer::AcceptAll
    } else if !args.accept_permission_claim.is_empty() {
        ClaimAnswer::AcceptOnly(args.accept_permission_claim.clone())
    } else if args.accept_all_permission_claims.is_none() && args.export == DEFAULT_EXPORT {
        ClaimAnswer::AcceptAll
    } else {
        ClaimAnswer::Leave
    };

    let api: Api<APIBinding> = Api::all(session.client()?);
    let object = APIBinding::new(
        &binding_name,
        APIBindingSpec {
            reference: BindingReference {
                export: ExportReference {
                    path: export_path.to_string(),
                    name: export_name.to_string(),
                },
            },
            permission_claims: Vec::new(),
        },
    );
    let what = format!("creating APIBinding {binding_name:?} in {here}");
    let mut created = false;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {
            created = true;
            println!("APIBinding {binding_name:?} created in {here}. Waiting for it to bind...");
        }
        Err(e) if is_status(&e, 409) => {
            let existing = api
                .get(&binding_name)
                .await
                .map_err(|e| session::api_error(e, &what, session.base()))?;
            let reference = &existing.spec.reference.export;
            if reference.name != export_name || (!reference.path.is_empty() && reference.path != export_path) {
                bail!(
                    "an APIBinding {binding_name:?} already exists in {here} for {}:{}; choose another name with --name",
                    reference.path,
                    reference.name
                );
            }
            println!("APIBinding {binding_name:?} already exists in {here}.");
        }
        Err(e) if is_workspace_denied(&e) => {
            bail!("workspace {here:?} does not exist or you may not access it")
        }
        Err(e) if is_status(&e, 403) => bail!(
            "you may not bind {export_path}:{export_name} in workspace {here}: {}",
            session::describe(&e, session.base())
        ),
        Err(e) if is_status(&e, 404) => bail!(
            "the server at {} does not serve apis.kcp.io/v1alpha1 APIBindings; is it a Faros hub? ({})",
            session.base(),
            session::describe(&e, session.base())
        ),
        Err(e) => return Err(session::api_error(e, &what, session.base())),
    }

    let deadline = Instant::now() + args.timeout;
    loop {
        let binding = api
            .get(&binding_name)
            .await
            .map_err(|e| session::api_error(e, &format!("waiting for APIBinding {binding_name:?}"), session.base()))?;
        let status = binding.status.clone().unwrap_or_default();
        if status.phase == "Bound" {
            let mut resources: Vec<String> = status
                .bound_resources
                .iter()
                .map(|r| format!("{}.{}", r.resource, r.group))
                .collect();
            resources.sort();
            println!(
                "APIBinding {binding_name:?} is bound: {} now served in {here}.",
                if resources.is_empty() {
                    "no resources".into()
                } else {
                    resources.join(", ")
                }
            );
            let answered = answer_permission_claims(session, &api, &binding, &here, &answer, deadline).await;
            if let Err(e) = answered {
                // A binding made by this command that could not be answered as asked is
                // taken back, so that running it again with the right flags starts afresh.
                if created && api.delete(&binding_name, &Default::default()).await.is_ok() {
                    // Its finalizer goes within moments, as it served no objects yet.
                    while Instant::now() < deadline && matches!(api.get_opt(&binding_name).await, Ok(Some(_))) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    bail!("{e:#} (APIBinding {binding_name:?} removed again)");
                }
                return Err(e);
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "APIBinding {binding_name:?} in {here} did not become Bound within {} (phase {}). Conditions:\n{}",
                faros_machinery::duration::show(args.timeout),
                if status.phase.is_empty() {
                    "unknown"
                } else {
                    status.phase.as_str()
                },
                output::conditions(&status.conditions).trim_end()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How `bind` answers the export's permission claims.
enum ClaimAnswer {
    AcceptAll,
    /// Accept these (RESOURCE or RESOURCE.GROUP), reject the others.
    AcceptOnly(Vec<String>),
    /// Leave them unanswered, and say so.
    Leave,
}

fn claim_name(claim: &PermissionClaim) -> String {
    if claim.group.is_empty() {
        claim.resource.clone()
    } else {
        format!("{}.{}", claim.resource, claim.group)
    }
}

/// Whether `wanted` (RESOURCE, RESOURCE.GROUP, or RESOURCE.core for the core group) names `claim`.
fn names_claim(wanted: &str, claim: &PermissionClaim) -> bool {
    wanted == claim_name(claim) || (claim.group.is_empty() && wanted == format!("{}.core", claim.resource))
}

/// Answers, in the binding's spec, the claims the export makes (as the binding's status
/// reports them once bound), waits until the hub has put the answer in force, and says what
/// was answered.
async fn answer_permission_claims(
    session: &Session,
    api: &Api<APIBinding>,
    binding: &APIBinding,
    here: &str,
    answer: &ClaimAnswer,
    deadline: Instant,
) -> anyhow::Result<()> {
    let exported = binding
        .status
        .as_ref()
        .map(|s| s.export_permission_claims.clone())
        .unwrap_or_default();
    if let ClaimAnswer::AcceptOnly(wanted) = answer {
        let unknown: Vec<&String> = wanted
            .iter()
            .filter(|w| !exported.iter().any(|c| names_claim(w, c)))
            .collect();
        if !unknown.is_empty() {
            let offered: Vec<String> = exported.iter().map(claim_name).collect();
            bail!(
                "the export makes no permission claim on {}; it claims: {}",
                unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(", ")
                }
            );
        }
    }
    if exported.is_empty() {
        return Ok(());
    }
    let state = |claim: &PermissionClaim| match answer {
        ClaimAnswer::AcceptAll => Some(CLAIM_ACCEPTED),
        ClaimAnswer::AcceptOnly(wanted) if wanted.iter().any(|w| names_claim(w, claim)) => Some(CLAIM_ACCEPTED),
        ClaimAnswer::AcceptOnly(_) => Some(CLAIM_REJECTED),
        ClaimAnswer::Leave => None,
    };
    let answered: Vec<PermissionClaim> = exported
        .iter()
        .filter_map(|c| {
            state(c).map(|state| PermissionClaim {
                state: state.into(),
                ..c.clone()
            })
        })
        .collect();
    let name = binding.metadata.name.clone().unwrap_or_default();
    if answered.is_empty() {
        let pending: Vec<String> = exported
            .iter()
            .filter(|c| !binding.spec.permission_claims.iter().any(|a| a.same_resource(c)))
            .map(claim_name)
            .collect();
        if !pending.is_empty() {
            println!(
                "The export also claims {}: its owner may act on them here only once accepted \
                 (--accept-permission-claim, or spec.permissionClaims of APIBinding {name:?}).",
                pending.join(", ")
            );
        }
        return Ok(());
    }
    if binding.spec.permission_claims != answered {
        let patch = serde_json::json!({"spec": {"permissionClaims": answered}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                session::api_error(
                    e,
                    &format!("answering the permission claims of APIBinding {name:?} in {here}"),
                    session.base(),
                )
            })?;
    }
    wait_for_claims_in_force(session, api, &name, here, &answered, deadline).await?;
    let list = |state: &str| {
        let mut names: Vec<String> = answered.iter().filter(|c| c.state == state).map(claim_name).collect();
        names.sort();
        names
    };
    let accepted = list(CLAIM_ACCEPTED);
    if !accepted.is_empty() {
        println!(
            "Accepted the export's permission claims on {}: its owner may manage them in {here}.",
            accepted.join(", ")
        );
    }
    let rejected = list(CLAIM_REJECTED);
    if !rejected.is_empty() {
        println!("Rejected the export's permission claims on {}.", rejected.join(", "));
    }
    Ok(())
}

/// Waits until the binding's status shows exactly the accepted claims of `answered` in force,
/// so that whatever runs after `bind` (the exporter's controllers, `agent generate`) sees them.
async fn wait_for_claims_in_force(
    session: &Session,
    api: &Api<APIBinding>,
    name: &str,
    here: &str,
    answered: &[PermissionClaim],
    deadline: Instant,
) -> anyhow::Result<()> {
    let wanted: Vec<&PermissionClaim> = answered.iter().filter(|c| c.is_accepted()).collect();
    loop {
        let binding = api.get(name).await.map_err(|e| {
            session::api_error(e, &format!("waiting for APIBinding {name:?} in {here}"), session.base())
        })?;
        let applied = binding
            .status
            .as_ref()
            .map(|s| s.applied_permission_claims.as_slice())
            .unwrap_or_default();
        let in_force =
            applied.len() == wanted.len() && wanted.iter().all(|w| applied.iter().any(|a| a.same_resource(w)));
        if in_force {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the hub did not put the answered permission claims of APIBinding {name:?} in {here} in force in time \
                 (status.appliedPermissionClaims lists {})",
                if applied.is_empty() {
                    "none".into()
                } else {
                    applied.iter().map(claim_name).collect::<Vec<_>>().join(", ")
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
