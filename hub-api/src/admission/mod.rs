//! Admission: the checks and defaults a write passes after it is decoded, validated against
//! its kind's schema and before it is stored, as one ordered list of plugins (Kubernetes'
//! and kcp's admission chains). Each plugin is one module, says which writes it looks at,
//! and sees a write only through [`Context`]: never the HTTP request.
//!
//! Mutation runs before validation, so every validating plugin judges the final object.

mod bind_permission;
mod crd_names;
mod rbac_escalation;
mod schema_in_use;
mod workloads;
mod workspace_types;

use serde_json::Value;

use crate::auth::rbac::Rule;
use crate::auth::{Authorizer, User};
use crate::registry::ResourceKind;
use faros_machinery::status::ApiError;
use faros_storage::Cache;

/// The plugins, in the order they run.
const PLUGINS: &[&dyn Plugin] = &[
    &workspace_types::WorkspaceTypes,
    &rbac_escalation::RbacEscalation,
    &bind_permission::BindPermission,
    &crd_names::CrdNames,
    &schema_in_use::SchemaInUse,
    &workloads::Workloads,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
}

/// What admission knows of one write.
pub(crate) struct Context<'a> {
    pub operation: Operation,
    /// The logical cluster written to, and its workspace path.
    pub cluster: &'a str,
    pub cluster_path: &'a str,
    pub kind: &'a ResourceKind,
    pub subresource: Option<&'a str>,
    pub user: &'a User,
    /// Through an APIExport's view: what the binding workspace shares with the export's owner,
    /// which bounds what the owner may grant there.
    pub view_rules: Option<&'a [Rule]>,
    pub cache: &'a Cache,
    pub authorizer: &'a Authorizer,
}

impl Context<'_> {
    /// Whether the write is to `resource` of `group`.
    fn is(&self, group: &str, resource: &str) -> bool {
        self.kind.group == group && self.kind.resource == resource
    }
}

/// One admission plugin. Both steps default to doing nothing.
trait Plugin: Sync {
    /// Sets defaults that depend on other objects.
    fn mutate(&self, _ctx: &Context<'_>, _obj: &mut Value) {}

    /// Refuses writes that other objects make invalid; `old` is the stored object of an update.
    fn validate(&self, _ctx: &Context<'_>, _obj: &Value, _old: Option<&Value>) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Runs every plugin's defaults over `obj`.
pub(crate) fn mutate(ctx: &Context<'_>, obj: &mut Value) {
    for plugin in PLUGINS {
        plugin.mutate(ctx, obj);
    }
}

/// Runs every plugin's checks; the first refusal wins.
pub(crate) fn validate(ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    PLUGINS.iter().try_for_each(|plugin| plugin.validate(ctx, obj, old))
}
