//! kcp's `apis.kcp.io/v1alpha1`: an APIExport in one workspace offers resources described by
//! APIResourceSchemas; an APIBinding in another workspace makes them appear there.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Condition;

pub const GROUP: &str = "apis.kcp.io";
/// Finalizer on an APIBinding until the objects of its bound resources have been deleted.
pub const BINDING_FINALIZER: &str = "apis.kcp.io/apibinding-finalizer";
/// Finalizer on an APIResourceSchema while an APIBinding serves it.
pub const SCHEMA_IN_USE_FINALIZER: &str = "apis.kcp.io/apiresourceschema-in-use";
/// Where export views are served: `<prefix><export cluster>/<export name>/clusters/...`.
pub const VIEW_PATH_PREFIX: &str = "/services/apiexport/";

/// Names of a resource, as in a CRD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceNames {
    pub plural: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub singular: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub list_kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// One version of an exported resource, as in a CRD version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    /// The OpenAPI v3 schema of the version (structural, like a CRD's openAPIV3Schema).
    #[schemars(schema_with = "preserve_unknown")]
    pub schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown")]
    pub subresources: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "list_of_objects")]
    pub additional_printer_columns: Option<Value>,
    /// Fields that field selectors may use, as a CRD version's `selectableFields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "list_of_objects")]
    pub selectable_fields: Option<Value>,
}

fn list_of_objects(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})
}

fn preserve_unknown(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// An immutable snapshot of one resource's definition, referenced by APIExports.
/// By convention named `<version-prefix>.<plural>.<group>`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha1",
    kind = "APIResourceSchema",
    plural = "apiresourceschemas",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct APIResourceSchemaSpec {
    pub group: String,
    pub names: ResourceNames,
    /// Namespaced or Cluster.
    pub scope: String,
    pub versions: Vec<ResourceVersion>,
}

/// A resource the export's owner may also act on in binding workspaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionClaim {
    #[serde(default)]
    pub group: String,
    pub resource: String,
    /// Identity of the export providing the resource; empty for built-in kinds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_hash: String,
    /// In a binding: Accepted or Rejected.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
}

impl PermissionClaim {
    /// Whether both claims name the same resource (state aside).
    pub fn same_resource(&self, other: &PermissionClaim) -> bool {
        self.group == other.group && self.resource == other.resource && self.identity_hash == other.identity_hash
    }

    pub fn is_accepted(&self) -> bool {
        self.state == CLAIM_ACCEPTED
    }
}

/// A binding's answer to a claim: the export's owner may act on the resource.
pub const CLAIM_ACCEPTED: &str = "Accepted";
/// A binding's answer to a claim: the export's owner may not.
pub const CLAIM_REJECTED: &str = "Rejected";

/// The claims in force in a binding workspace: those the export makes that the binding's
/// spec accepts. A claim the export no longer makes is not in force, even if accepted.
pub fn applied_claims(exported: &[PermissionClaim], binding_spec: &[PermissionClaim]) -> Vec<PermissionClaim> {
    exported
        .iter()
        .filter(|claim| binding_spec.iter().any(|a| a.is_accepted() && a.same_resource(claim)))
        .map(|claim| PermissionClaim {
            state: CLAIM_ACCEPTED.into(),
            ..claim.clone()
        })
        .collect()
}

/// Offers resources to other workspaces.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha1",
    kind = "APIExport",
    plural = "apiexports",
    status = "APIExportStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct APIExportSpec {
    /// APIResourceSchema names this export serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_resource_schemas: Vec<String>,
    /// Other resources the export's controllers need in binding workspaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_claims: Vec<PermissionClaim>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct APIExportStatus {
    /// The identity under which bound objects are stored; two exports of the same group and
    /// resource have different identities and never share objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_hash: String,
    /// Where the export's owner reaches every bound workspace at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_workspaces: Vec<VirtualWorkspace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VirtualWorkspace {
    pub url: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExportReference {
    /// Path of the workspace holding the export; empty means this workspace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BindingReference {
    pub export: ExportReference,
}

/// Binds an export's resources into this workspace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha1",
    kind = "APIBinding",
    plural = "apibindings",
    status = "APIBindingStatus",
    printcolumn = r#"{"name":"Export","type":"string","jsonPath":".spec.reference.export.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct APIBindingSpec {
    pub reference: BindingReference,
    /// The export's permission claims this workspace accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_claims: Vec<PermissionClaim>,
}

/// A resource the binding made available.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundResource {
    pub group: String,
    pub resource: String,
    /// The APIResourceSchema it came from, and the identity its objects are stored under.
    #[serde(deserialize_with = "schema_or_name")]
    pub schema: BoundSchema,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_versions: Vec<String>,
}

/// Reads `schema` as kcp records it, or as a bare schema name (how bindings recorded it
/// before; the hub then writes it anew).
fn schema_or_name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BoundSchema, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Name(String),
        Schema(BoundSchema),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::Name(name) => BoundSchema {
            name,
            ..BoundSchema::default()
        },
        Either::Schema(schema) => schema,
    })
}

/// The schema of a bound resource, as kcp records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundSchema {
    pub name: String,
    #[serde(rename = "UID", default)]
    pub uid: String,
    pub identity_hash: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct APIBindingStatus {
    /// Binding or Bound.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// The logical cluster of the export.
    #[serde(default, rename = "apiExportClusterName", skip_serializing_if = "String::is_empty")]
    pub api_export_cluster_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound_resources: Vec<BoundResource>,
    /// The claims the export makes, as recorded when binding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_permission_claims: Vec<PermissionClaim>,
    /// The claims in force: made by the export and accepted in this binding's spec. The
    /// export's owner may act on exactly these resources here (besides the bound ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_permission_claims: Vec<PermissionClaim>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_resources_read_kcp_shape_and_the_older_flat_one() {
        let kcp: BoundResource = serde_json::from_value(serde_json::json!({
            "group": "acme.io", "resource": "widgets",
            "schema": {"name": "v1.widgets.acme.io", "UID": "u-1", "identityHash": "abc"},
            "storageVersions": ["v1"],
        }))
        .unwrap();
        assert_eq!(
            kcp.schema,
            BoundSchema {
                name: "v1.widgets.acme.io".into(),
                uid: "u-1".into(),
                identity_hash: "abc".into()
            }
        );
        assert_eq!(
            serde_json::to_value(&kcp).unwrap()["schema"],
            serde_json::json!({"name": "v1.widgets.acme.io", "UID": "u-1", "identityHash": "abc"})
        );
        let flat: BoundResource = serde_json::from_value(serde_json::json!({
            "group": "acme.io", "resource": "widgets", "schema": "v1.widgets.acme.io", "identityHash": "abc",
        }))
        .unwrap();
        assert_eq!(flat.schema.name, "v1.widgets.acme.io");
        assert!(flat.schema.identity_hash.is_empty());
    }
}
