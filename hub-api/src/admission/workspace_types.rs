//! New Workspaces: the type a workspace gets when it names none, and whether the type it
//! names exists, may be used here, and fits its parent; and that the logical cluster a master
//! picks is free.

use serde_json::Value;

use super::{Context, Operation, Plugin};
use crate::auth::rbac;
use crate::tenancy::{logical_cluster_key, resolve, workspaces_prefix};
use faros_api::tenancy::ROOT;
use faros_machinery::object;
use faros_machinery::status::{ApiError, FieldError};
use faros_machinery::validation::is_dns1123_label;
use faros_storage::Prefix;

pub(super) struct WorkspaceTypes;

impl WorkspaceTypes {
    fn handles(ctx: &Context<'_>) -> bool {
        ctx.operation == Operation::Create
            && ctx.subresource.is_none()
            && ctx.is(faros_api::tenancy::GROUP, "workspaces")
    }
}

impl Plugin for WorkspaceTypes {
    fn mutate(&self, ctx: &Context<'_>, obj: &mut Value) {
        if Self::handles(ctx) {
            default_type(ctx, obj);
        }
    }

    fn validate(&self, ctx: &Context<'_>, obj: &Value, _old: Option<&Value>) -> Result<(), ApiError> {
        if Self::handles(ctx) { check(ctx, obj) } else { Ok(()) }
    }
}

/// Defaults that depend on other objects, for a new Workspace: naming no type, it gets the
/// default child type of its parent's type (or of the first type that one extends that has
/// one); a type named without a path is looked for in this workspace, then in each ancestor
/// up to root, as kcp does.
fn default_type(ctx: &Context<'_>, obj: &mut Value) {
    let given = &obj["spec"]["type"];
    let names_none = given.is_null() || (given.is_object() && given["name"].as_str().is_none_or(str::is_empty));
    if names_none && let Some(parent) = parent_type(ctx) {
        let family = parent.clone().with_extended(ctx).unwrap_or_else(|_| vec![parent]);
        if let Some(default) = family.into_iter().find_map(|t| {
            let mut default = t.spec["defaultChildWorkspaceType"].clone();
            default["name"].as_str().filter(|n| !n.is_empty())?;
            // Without a path, the default is a type of the workspace defining it.
            if default["path"].as_str().is_none_or(str::is_empty) {
                default["path"] = t.path.clone().into();
            }
            Some(default)
        }) {
            if !obj["spec"].is_object() {
                obj["spec"] = serde_json::json!({});
            }
            obj["spec"]["type"] = default;
        }
    }
    let reference = &obj["spec"]["type"];
    if let Some(name) = reference["name"].as_str().filter(|n| !n.is_empty())
        && reference["path"].as_str().is_none_or(str::is_empty)
        && let Some(path) = ancestry(ctx.cluster_path)
            .find(|path| resolve(ctx.cache, path).is_some_and(|c| WorkspaceType::stored(ctx, &c.name, name).is_some()))
    {
        obj["spec"]["type"]["path"] = path.into();
    }
}

/// A workspace path and the paths of its ancestors, nearest first: `root:a:b`, `root:a`, `root`.
fn ancestry(path: &str) -> impl Iterator<Item = String> + '_ {
    let mut next = Some(path.to_string());
    std::iter::from_fn(move || {
        let current = next.take()?;
        next = current.rsplit_once(':').map(|(parent, _)| parent.to_string());
        Some(current)
    })
}

fn check(ctx: &Context<'_>, obj: &Value) -> Result<(), ApiError> {
    let name = object::name(obj);
    let mut errors = Vec::new();
    let type_name = obj["spec"]["type"]["name"].as_str().unwrap_or_default();
    let type_path = obj["spec"]["type"]["path"].as_str().unwrap_or(ROOT);
    // A missing path, a missing type and a type the requester may not use answer alike.
    match WorkspaceType::lookup(ctx, &obj["spec"]["type"]).filter(|t| may_use(ctx, t)) {
        None => errors.push(FieldError::invalid(
            "spec.type",
            format!("WorkspaceType {type_path}:{type_name} does not exist or may not be used here"),
        )),
        Some(_) if type_name == ROOT && type_path == ROOT => errors.push(FieldError::forbidden(
            "spec.type",
            "the root WorkspaceType is for the root workspace only",
        )),
        Some(child) => {
            if let Err(problem) = type_limits(ctx, &child) {
                errors.push(FieldError::forbidden("spec.type", problem));
            }
        }
    }
    // Only masters may choose the logical cluster (the strategy drops anyone else's choice);
    // it must be a fresh one, never another workspace's. Anyone else's was just drawn at
    // random (16 characters of 36) and is fresh by construction: it is not looked for among
    // every workspace, which made each create cost more the more workspaces there were.
    if let Some(cluster) = obj["spec"]["cluster"].as_str() {
        let problems = is_dns1123_label(cluster);
        if !problems.is_empty() {
            errors.push(FieldError::invalid("spec.cluster", problems.join("; ")));
        } else if cluster == ROOT || (ctx.user.is_master() && cluster_in_use(ctx, cluster, name)) {
            errors.push(FieldError::invalid(
                "spec.cluster",
                format!("logical cluster {cluster:?} already belongs to another workspace"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &ctx.kind.kind,
            faros_api::tenancy::GROUP,
            name,
            errors,
        ))
    }
}

/// Whether `cluster` is held by any workspace but `name` in the requester's cluster (which,
/// if it exists, makes this create an AlreadyExists), or exists with no workspace at all.
fn cluster_in_use(ctx: &Context<'_>, cluster: &str, name: &str) -> bool {
    let same = workspaces_prefix().cluster(ctx.cluster).name(name);
    let (holders, _, _) = ctx.cache.list(workspaces_prefix().as_str(), None, 0, |o| {
        o.value()["spec"]["cluster"] == cluster
    });
    if holders.iter().any(|o| o.key.as_ref() != same) {
        return true;
    }
    holders.is_empty() && ctx.cache.get(&logical_cluster_key(cluster)).is_some()
}

/// A WorkspaceType found in the cache: where it lives, its name, how to show it, its spec.
#[derive(Clone)]
struct WorkspaceType {
    cluster: String,
    /// The workspace path the type was named by: references inside it default to it.
    path: String,
    name: String,
    shown: String,
    spec: Value,
}

/// How deep `extend.with` is followed.
const MAX_EXTENSIONS: usize = 16;

impl WorkspaceType {
    /// The type a `{name, path}` reference names (path defaults to root).
    fn lookup(ctx: &Context<'_>, reference: &Value) -> Option<WorkspaceType> {
        Self::lookup_from(ctx, reference, ROOT)
    }

    /// The type a reference inside a type names: without a path, one in the same workspace.
    fn lookup_from(ctx: &Context<'_>, reference: &Value, base: &str) -> Option<WorkspaceType> {
        let name = reference["name"].as_str().filter(|n| !n.is_empty())?;
        let path = reference["path"].as_str().filter(|p| !p.is_empty()).unwrap_or(base);
        let cluster: String = resolve(ctx.cache, path)?.name.into();
        let spec = Self::stored(ctx, &cluster, name)?;
        Some(WorkspaceType {
            cluster,
            path: path.to_string(),
            name: name.to_string(),
            shown: format!("{path}:{name}"),
            spec,
        })
    }

    /// The spec of WorkspaceType `name` in logical cluster `cluster`, if there is one.
    fn stored(ctx: &Context<'_>, cluster: &str, name: &str) -> Option<Value> {
        let key = Prefix::resource("tenancy.kcp.io", "workspacetypes")
            .cluster(cluster)
            .name(name);
        ctx.cache.get(&key).map(|o| o.value()["spec"].clone())
    }

    /// This type and every type it extends, transitively; an extended type that does not
    /// exist, or a type extending itself through others, is an error.
    fn with_extended(self, ctx: &Context<'_>) -> Result<Vec<WorkspaceType>, String> {
        let mut family = Vec::new();
        self.collect(ctx, &mut Vec::new(), &mut family)?;
        Ok(family)
    }

    /// `chain` is the path of extensions from the first type here, as (cluster, name, shown).
    fn collect(
        self,
        ctx: &Context<'_>,
        chain: &mut Vec<(String, String, String)>,
        family: &mut Vec<WorkspaceType>,
    ) -> Result<(), String> {
        if chain.iter().any(|(cluster, name, _)| self.is(cluster, name)) {
            let shown: Vec<&str> = chain.iter().map(|(_, _, shown)| shown.as_str()).collect();
            return Err(format!(
                "WorkspaceType {} extends itself ({} -> {})",
                self.shown,
                shown.join(" -> "),
                self.shown
            ));
        }
        if family.iter().any(|t| t.is(&self.cluster, &self.name)) {
            return Ok(());
        }
        if family.len() >= MAX_EXTENSIONS {
            return Err(format!(
                "WorkspaceType {} extends more than {MAX_EXTENSIONS} types",
                self.shown
            ));
        }
        let extended: Vec<Value> = self.spec["extend"]["with"].as_array().cloned().unwrap_or_default();
        chain.push((self.cluster.clone(), self.name.clone(), self.shown.clone()));
        let shown = self.shown.clone();
        let family_path = self.path.clone();
        family.push(self);
        for reference in &extended {
            let Some(base) = WorkspaceType::lookup_from(ctx, reference, &family_path) else {
                return Err(format!(
                    "WorkspaceType {shown} extends WorkspaceType {}:{}, which does not exist",
                    reference["path"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .unwrap_or(&family_path),
                    reference["name"].as_str().unwrap_or_default()
                ));
            };
            base.collect(ctx, chain, family)?;
        }
        chain.pop();
        Ok(())
    }

    fn is(&self, cluster: &str, name: &str) -> bool {
        self.cluster == cluster && self.name == name
    }
}

/// Types of the workspace itself and of its ancestors may be used by whoever may create
/// workspaces here; a type anywhere else needs `use` on it in its own workspace (kcp's
/// verb), so other tenants' types can be neither used nor probed.
fn may_use(ctx: &Context<'_>, t: &WorkspaceType) -> bool {
    let inherited = ancestry(ctx.cluster_path)
        .filter_map(|path| resolve(ctx.cache, &path))
        .any(|c| c.name == t.cluster.as_str());
    inherited || {
        let attrs = rbac::Attributes::resource("use", faros_api::tenancy::GROUP, "workspacetypes", "", &t.name);
        ctx.authorizer.allows(ctx.user, &t.cluster, &attrs)
    }
}

/// Why a `{none, types}` selector refuses a set of types.
enum Refusal {
    /// `none`: it admits no type at all.
    NoType,
    /// It admits only these (as shown to users).
    OnlyTypes(String),
}

/// Whether `selector` (a field of `owner`) admits any type of `set`; references without a
/// path name types of the owner's workspace.
fn admits(ctx: &Context<'_>, owner: &WorkspaceType, selector: &Value, set: &[WorkspaceType]) -> Result<(), Refusal> {
    if selector["none"] == true {
        return Err(Refusal::NoType);
    }
    let types = selector["types"].as_array().cloned().unwrap_or_default();
    let listed: Vec<WorkspaceType> = types
        .iter()
        .filter_map(|r| WorkspaceType::lookup_from(ctx, r, &owner.path))
        .collect();
    if listed.iter().any(|l| set.iter().any(|t| t.is(&l.cluster, &l.name))) {
        return Ok(());
    }
    let shown: Vec<String> = types
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["path"].as_str().filter(|p| !p.is_empty()).unwrap_or(&owner.path),
                r["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    Err(Refusal::OnlyTypes(shown.join(", ")))
}

/// The type of the workspace a request is in: `root` for the root workspace, otherwise
/// the type its Workspace object in the parent names.
fn parent_type(ctx: &Context<'_>) -> Option<WorkspaceType> {
    let reference = if ctx.cluster == ROOT {
        serde_json::json!({"name": ROOT, "path": ROOT})
    } else {
        let marker = ctx.cache.get(&logical_cluster_key(ctx.cluster))?;
        let owner = &marker.value()["spec"]["owner"];
        let (cluster, name) = (owner["cluster"].as_str()?, owner["name"].as_str()?);
        let workspace = ctx.cache.get(&workspaces_prefix().cluster(cluster).name(name))?;
        workspace.value()["spec"]["type"].clone()
    };
    WorkspaceType::lookup(ctx, &reference)
}

/// What the parent's type allows as children and the child's type as parents (each type
/// counting as every type it extends), as kcp's `limitAllowedChildren` and
/// `limitAllowedParents`; the first refusal, if any.
fn type_limits(ctx: &Context<'_>, child: &WorkspaceType) -> Result<(), String> {
    let children = child.clone().with_extended(ctx)?;
    // The parent's type was checked when the parent was made; what it extends now is taken
    // as far as it resolves.
    let parents = parent_type(ctx)
        .map(|p| p.clone().with_extended(ctx).unwrap_or_else(|_| vec![p]))
        .unwrap_or_default();
    for parent in &parents {
        if let Some(selector) = parent.spec.get("limitAllowedChildren").filter(|s| s.is_object())
            && let Err(allowed) = admits(ctx, parent, selector, &children)
        {
            return Err(match allowed {
                Refusal::NoType => format!("workspaces of type {} may not have child workspaces", parent.shown),
                Refusal::OnlyTypes(types) => format!(
                    "workspaces of type {} only allow child workspaces of types {types}",
                    parent.shown
                ),
            });
        }
    }
    for own in &children {
        if let Some(selector) = own.spec.get("limitAllowedParents").filter(|s| s.is_object())
            && let Err(allowed) = admits(ctx, own, selector, &parents)
        {
            return Err(match allowed {
                Refusal::NoType => format!("workspaces of type {} may not be created as children", own.shown),
                Refusal::OnlyTypes(types) => format!(
                    "workspaces of type {} may only be created in workspaces of types {types}",
                    own.shown
                ),
            });
        }
    }
    Ok(())
}
