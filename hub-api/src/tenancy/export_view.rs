//! An APIExport's view: what the export's owner reaches through
//! `/services/apiexport/<workspace>/<export>/clusters/<cluster|*>/...`.
//!
//! Binding an export is the binding workspace's consent; no RBAC of its own is involved. In a
//! workspace that binds the export, the owner may use the REST verbs on
//! - the exported resources the workspace serves (stored under the export's identity), and
//! - the resources named by the export's permission claims that the binding accepted.
//!
//! Nothing else of the workspace is visible. Across all workspaces (`*`) the owner may list
//! and watch, in the workspaces that share the resource at the time: bound, for an exported
//! resource; accepting the claim, for a claimed one.

use std::collections::HashSet;
use std::sync::Arc;

use faros_api::apis::{PermissionClaim, applied_claims};

use crate::auth::rbac::Rule;
use crate::registry::{BindingFields, Catalog, Memo, ResourceKind};
use faros_storage::{Cache, Key, Object, Prefix};

/// What the owner may do with a shared resource: the REST verbs, never `escalate`, `bind`
/// or `impersonate`, so RBAC written through the view cannot reach beyond it.
const VIEW_VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// One export, as its owner sees the binding workspaces.
pub struct ExportView {
    /// The export's logical cluster.
    pub cluster: String,
    pub name: String,
    claims: Vec<PermissionClaim>,
    /// Every kind reachable through the view, with the claim granting it (None: exported).
    kinds: Vec<(Arc<ResourceKind>, Option<PermissionClaim>)>,
    /// The catalog's reading of bindings: each request through the view reads those of its
    /// workspace, and they change far less often.
    bindings: Arc<Memo<BindingFields>>,
}

impl ExportView {
    /// The view of APIExport `name` in logical cluster `cluster`; None when there is no such
    /// export or it has no identity yet.
    pub fn load(catalog: &Catalog, cluster: &str, name: &str) -> Option<ExportView> {
        let export = catalog.cache().get(
            &Prefix::resource("apis.kcp.io", "apiexports")
                .cluster(cluster)
                .name(name),
        )?;
        let export = catalog.export_fields(&export);
        if export.identity().is_empty() {
            return None;
        }
        let exported = catalog.export_kinds(&export);
        let claims = export.permission_claims().to_vec();
        let mut kinds: Vec<(Arc<ResourceKind>, Option<PermissionClaim>)> =
            exported.into_iter().map(|k| (k, None)).collect();
        for claim in &claims {
            // A claim on one of the export's own resources adds nothing.
            if kinds
                .iter()
                .any(|(k, _)| k.group == claim.group && k.resource == claim.resource)
            {
                continue;
            }
            for kind in catalog.claimed_kinds(&claim.group, &claim.resource, &claim.identity_hash) {
                kinds.push((kind, Some(claim.clone())));
            }
        }
        Some(ExportView {
            cluster: cluster.to_string(),
            name: name.to_string(),
            claims,
            kinds,
            bindings: catalog.binding_fields(),
        })
    }

    /// Every kind served through the view (for discovery and OpenAPI).
    pub fn kinds(&self) -> Vec<Arc<ResourceKind>> {
        self.kinds.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The kind at `/apis/<group>/<version>/<resource>` in the view, with the claim granting it.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<(Arc<ResourceKind>, Option<PermissionClaim>)> {
        self.kinds
            .iter()
            .find(|(k, _)| k.group == group && k.version == version && k.resource == resource)
            .cloned()
    }

    /// Whether `binding` is a Bound binding of this export. A binding being deleted still
    /// shares until it is gone: its objects are deleted first, and the export's controllers
    /// must be able to finalize them.
    fn binds(&self, binding: &BindingFields) -> bool {
        binding.phase() == Some("Bound")
            && binding.export_cluster() == Some(self.cluster.as_str())
            && binding.export_name() == Some(self.name.as_str())
    }

    /// What a binding of this export shares with the owner.
    fn shared_by(&self, binding: &BindingFields) -> Access {
        Access {
            claims: applied_claims(&self.claims, binding.permission_claims()),
            bound: binding
                .bound_resources()
                .map(|(group, resource)| (group.to_string(), resource.to_string()))
                .collect(),
        }
    }

    /// This export's bindings in `cluster`, now or as of `revision`.
    fn bindings_in(&self, cache: &Cache, cluster: &str, revision: Option<u64>) -> Vec<Arc<BindingFields>> {
        let prefix = bindings_prefix().cluster(cluster);
        bindings_at(cache, &prefix, revision)
            .iter()
            .map(|o| self.bindings.read(o))
            .filter(|b| self.binds(b))
            .collect()
    }

    /// What the owner may reach in `cluster` (as of `revision`, if given): None when the
    /// cluster does not bind the export.
    pub fn access_in(&self, cache: &Cache, cluster: &str, revision: Option<u64>) -> Option<Access> {
        let bindings = self.bindings_in(cache, cluster, revision);
        if bindings.is_empty() {
            return None;
        }
        let mut access = Access::default();
        for binding in &bindings {
            let shared = self.shared_by(binding);
            access.claims.extend(shared.claims);
            access.bound.extend(shared.bound);
        }
        Some(access)
    }

    /// Every logical cluster where the owner may reach `kind` (granted by `claim`, or
    /// exported when None), as of `revision` if given.
    pub fn clusters_sharing(
        &self,
        cache: &Cache,
        kind: &ResourceKind,
        claim: Option<&PermissionClaim>,
        revision: Option<u64>,
    ) -> HashSet<String> {
        let sharing = |o: &Object| {
            let binding = self.bindings.read(o);
            self.binds(&binding) && self.shared_by(&binding).allows(kind, claim)
        };
        bindings_at(cache, &bindings_prefix(), revision)
            .iter()
            .filter(|o| sharing(o))
            .filter_map(|o| Key::parse(&o.key).map(|k| k.cluster.to_string()))
            .collect()
    }

    /// The kinds of the view the owner may reach where `access` holds.
    pub fn kinds_shared(&self, access: &Access) -> Vec<Arc<ResourceKind>> {
        self.kinds
            .iter()
            .filter(|(k, claim)| access.allows(k, claim.as_ref()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// What the owner holds where `access` holds, as RBAC rules: the REST verbs on the
    /// shared resources, with their subresources. Roles the owner writes there may grant no
    /// more than this.
    pub fn rules(&self, access: &Access) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for kind in self.kinds_shared(access) {
            if !seen.insert((kind.group.clone(), kind.resource.clone())) {
                continue;
            }
            let mut resources = vec![kind.resource.clone()];
            resources.extend(
                kind.subresources
                    .iter()
                    .map(|sub| format!("{}/{}", kind.resource, sub.name)),
            );
            rules.push(Rule {
                verbs: VIEW_VERBS.iter().map(|v| v.to_string()).collect(),
                api_groups: vec![kind.group.clone()],
                resources,
                ..Rule::default()
            });
        }
        rules
    }
}

/// What one binding workspace shares with an export's owner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    /// The export's claims the workspace accepted.
    pub claims: Vec<PermissionClaim>,
    /// (group, resource) of the exported resources the workspace serves.
    pub bound: Vec<(String, String)>,
}

impl Access {
    /// Whether `kind`, granted by `claim` (or exported when None), is shared.
    pub fn allows(&self, kind: &ResourceKind, claim: Option<&PermissionClaim>) -> bool {
        match claim {
            Some(claim) => self.claims.iter().any(|c| c.same_resource(claim)),
            None => self
                .bound
                .iter()
                .any(|(group, resource)| *group == kind.group && *resource == kind.resource),
        }
    }
}

/// Where every APIBinding is stored, across logical clusters.
pub fn bindings_prefix() -> Prefix {
    Prefix::resource("apis.kcp.io", "apibindings")
}

/// The bindings under `prefix`, now or as of `revision` (now when the event window no longer
/// reaches back to it). They are decoded after the cache's lock is let go.
fn bindings_at(cache: &Cache, prefix: &Prefix, revision: Option<u64>) -> Vec<Arc<Object>> {
    let all = |_: &Object| true;
    let listed = match revision {
        Some(rv) => cache.list_at(prefix.as_str(), None, 0, rv, all).ok(),
        None => None,
    };
    listed.unwrap_or_else(|| cache.list(prefix.as_str(), None, 0, all)).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::fields_of;
    use faros_storage::KeyValue;

    fn stored(value: serde_json::Value) -> Object {
        Object::from_stored(&KeyValue {
            key: "/apis.kcp.io/apibindings/c1/edge".into(),
            value: serde_json::to_vec(&value).unwrap().into(),
            create_revision: 3,
            mod_revision: 7,
        })
        .unwrap()
    }

    fn view() -> ExportView {
        ExportView {
            cluster: "root".into(),
            name: "edge.faros.sh".into(),
            claims: vec![PermissionClaim {
                group: String::new(),
                resource: "secrets".into(),
                identity_hash: String::new(),
                state: String::new(),
            }],
            kinds: Vec::new(),
            bindings: Arc::new(Memo::new()),
        }
    }

    #[test]
    fn a_binding_shares_what_its_own_fields_say() {
        let binding = stored(serde_json::json!({
            "apiVersion": "apis.kcp.io/v1alpha1",
            "kind": "APIBinding",
            "metadata": {"name": "edge", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "reference": {"export": {"path": "root", "name": "edge.faros.sh"}},
                "permissionClaims": [
                    {"resource": "secrets", "state": "Accepted", "all": true},
                    {"resource": "configmaps", "state": "Accepted"},
                ],
            },
            "status": {
                "phase": "Bound",
                "apiExportClusterName": "root",
                "boundResources": [
                    {"group": "edge.faros.sh", "resource": "agents", "schema": {"name": "v1.agents", "identityHash": "x"}},
                ],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }));
        let view = view();
        let fields: BindingFields = fields_of(&binding);
        assert!(view.binds(&fields));
        let access = view.shared_by(&fields);
        // Only the export's own claim counts, however many the binding accepts.
        assert_eq!(access.claims.len(), 1);
        assert_eq!(access.claims[0].resource, "secrets");
        assert_eq!(access.bound, vec![("edge.faros.sh".to_string(), "agents".to_string())]);
    }

    #[test]
    fn a_binding_of_another_export_unbound_or_malformed_shares_nothing() {
        let view = view();
        let of = |value| view.binds(&fields_of(&stored(value)));
        let reference = serde_json::json!({"export": {"name": "edge.faros.sh"}});
        assert!(!of(serde_json::json!({
            "spec": {"reference": {"export": {"name": "other"}}},
            "status": {"phase": "Bound", "apiExportClusterName": "root"},
        })));
        assert!(!of(serde_json::json!({
            "spec": {"reference": reference},
            "status": {"phase": "Binding", "apiExportClusterName": "root"},
        })));
        assert!(!of(serde_json::json!({
            "spec": {"reference": reference},
            "status": {"phase": "Bound", "apiExportClusterName": "elsewhere"},
        })));
        // Explicit nulls read as absent rather than failing.
        assert!(!of(serde_json::json!({"spec": null, "status": {"phase": null}})));
        // A field of the wrong type: the binding does not decode, and shares nothing.
        assert!(!of(serde_json::json!({
            "spec": {"reference": reference},
            "status": {"phase": "Bound", "apiExportClusterName": "root", "boundResources": "agents"},
        })));
        assert!(of(serde_json::json!({
            "spec": {"reference": reference, "permissionClaims": null},
            "status": {"phase": "Bound", "apiExportClusterName": "root", "boundResources": null},
        })));
    }

    #[test]
    fn only_accepted_claims_the_export_makes_apply() {
        let claim = |resource: &str, state: &str| PermissionClaim {
            group: String::new(),
            resource: resource.into(),
            identity_hash: String::new(),
            state: state.into(),
        };
        let exported = vec![claim("configmaps", ""), claim("secrets", "")];
        let spec = vec![
            claim("configmaps", "Accepted"),
            claim("secrets", "Rejected"),
            claim("pods", "Accepted"),
        ];
        let applied = applied_claims(&exported, &spec);
        assert_eq!(applied, vec![claim("configmaps", "Accepted")]);
    }
}
