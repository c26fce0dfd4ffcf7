//! An APIExport's view: what the export's owner reaches through
//! `/services/apiexport/<workspace>/<export>/clusters/<cluster|*>/...`.
//!
//! Binding an export is the binding workspace's consent; no RBAC of its own is involved. In a
//! workspace that binds the export, the owner may use every verb on
//! - the exported resources (stored under the export's identity), and
//! - the resources named by the export's permission claims that the binding accepted.
//!
//! Nothing else of the workspace is visible. Across all workspaces (`*`) the owner may list
//! and watch: an exported resource in every workspace that stores it, a claimed resource only
//! in the workspaces whose binding accepts the claim.

use std::collections::HashSet;
use std::sync::Arc;

use faros_api::apis::{PermissionClaim, applied_claims};
use serde_json::Value;

use crate::auth::rbac::Rule;
use crate::registry::{Catalog, ResourceKind};
use crate::storage::cache::{Cache, Object};

/// Where export views are served.
pub const PATH_PREFIX: &str = "/services/apiexport/";
/// Storage prefix of every APIBinding in every logical cluster.
pub const BINDINGS_PREFIX: &str = "/apis.kcp.io/apibindings/";

/// One export, as its owner sees the binding workspaces.
pub struct ExportView {
    /// The export's logical cluster.
    pub cluster: String,
    pub name: String,
    claims: Vec<PermissionClaim>,
    /// Every kind reachable through the view, with the claim granting it (None: exported).
    kinds: Vec<(Arc<ResourceKind>, Option<PermissionClaim>)>,
}

impl ExportView {
    /// The view of APIExport `name` in logical cluster `cluster`; None when there is no such
    /// export or it has no identity yet.
    pub fn load(catalog: &Catalog, cluster: &str, name: &str) -> Option<ExportView> {
        let export = catalog
            .cache()
            .get(&format!("/apis.kcp.io/apiexports/{cluster}/{name}"))?;
        export.value["status"]["identityHash"]
            .as_str()
            .filter(|id| !id.is_empty())?;
        let exported = catalog.export_kinds(&export);
        let claims: Vec<PermissionClaim> =
            serde_json::from_value(export.value["spec"]["permissionClaims"].clone()).unwrap_or_default();
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

    /// Whether `binding` is a Bound binding of this export.
    fn binds(&self, binding: &Value) -> bool {
        binding["status"]["phase"] == "Bound"
            && binding["status"]["apiExportClusterName"] == self.cluster.as_str()
            && binding["spec"]["reference"]["export"]["name"] == self.name.as_str()
    }

    /// The claims a binding workspace has put in force for this export.
    fn applied(&self, binding: &Value) -> Vec<PermissionClaim> {
        let accepted: Vec<PermissionClaim> =
            serde_json::from_value(binding["spec"]["permissionClaims"].clone()).unwrap_or_default();
        applied_claims(&self.claims, &accepted)
    }

    /// This export's bindings in `cluster`, now or as of `revision`.
    fn bindings_in(&self, cache: &Cache, cluster: &str, revision: Option<u64>) -> Vec<Arc<Object>> {
        let prefix = format!("{BINDINGS_PREFIX}{cluster}/");
        let listed = match revision {
            Some(rv) => cache.list_at(&prefix, None, 0, rv, |o| self.binds(&o.value)).ok(),
            None => None,
        };
        listed
            .unwrap_or_else(|| cache.list(&prefix, None, 0, |o| self.binds(&o.value)))
            .0
    }

    /// What the owner may do in `cluster`: None when the cluster does not bind the export,
    /// else the claims in force there.
    pub fn access_in(&self, cache: &Cache, cluster: &str) -> Option<Vec<PermissionClaim>> {
        let bindings = self.bindings_in(cache, cluster, None);
        if bindings.is_empty() {
            return None;
        }
        Some(bindings.iter().flat_map(|b| self.applied(&b.value)).collect())
    }

    /// Whether `claim` is in force in `cluster` (as of `revision`, if given).
    pub fn claim_in_force(&self, cache: &Cache, cluster: &str, claim: &PermissionClaim, revision: Option<u64>) -> bool {
        self.bindings_in(cache, cluster, revision)
            .iter()
            .any(|b| self.applied(&b.value).iter().any(|c| c.same_resource(claim)))
    }

    /// Every logical cluster where `claim` is in force (as of `revision`, if given).
    pub fn clusters_with_claim(
        &self,
        cache: &Cache,
        claim: &PermissionClaim,
        revision: Option<u64>,
    ) -> HashSet<String> {
        let accepting =
            |o: &Object| self.binds(&o.value) && self.applied(&o.value).iter().any(|c| c.same_resource(claim));
        let listed = match revision {
            Some(rv) => cache.list_at(BINDINGS_PREFIX, None, 0, rv, accepting).ok(),
            None => None,
        };
        listed
            .unwrap_or_else(|| cache.list(BINDINGS_PREFIX, None, 0, accepting))
            .0
            .iter()
            .map(|o| cluster_of_key(&o.key, BINDINGS_PREFIX).to_string())
            .collect()
    }

    /// What the owner holds in a binding workspace with `applied` claims in force, as RBAC
    /// rules: every verb on the exported resources and the claimed ones, with their
    /// subresources. Roles the owner writes there may grant no more than this.
    pub fn rules(&self, applied: &[PermissionClaim]) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for (kind, claim) in &self.kinds {
            let granted = match claim {
                None => true,
                Some(claim) => applied.iter().any(|a| a.same_resource(claim)),
            };
            if !granted || !seen.insert((kind.group.clone(), kind.resource.clone())) {
                continue;
            }
            let mut resources = vec![kind.resource.clone()];
            resources.extend(
                kind.subresources()
                    .iter()
                    .map(|(sub, _)| format!("{}/{sub}", kind.resource)),
            );
            rules.push(Rule {
                verbs: vec!["*".into()],
                api_groups: vec![kind.group.clone()],
                resources,
                ..Rule::default()
            });
        }
        rules
    }
}

/// The logical cluster segment of a storage key under a cross-cluster `prefix`
/// (`/<group>/<resource>/`).
pub fn cluster_of_key<'a>(key: &'a str, prefix: &str) -> &'a str {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_segment_of_keys() {
        assert_eq!(
            cluster_of_key("/core/configmaps/abc/default/x", "/core/configmaps/"),
            "abc"
        );
        assert_eq!(
            cluster_of_key("/apis.kcp.io/apibindings/c1/edge", BINDINGS_PREFIX),
            "c1"
        );
        assert_eq!(cluster_of_key("/other/x", "/core/configmaps/"), "");
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
