//! The built-in kinds: core/v1, coordination.k8s.io/v1, rbac.authorization.k8s.io/v1 and
//! apiextensions.k8s.io/v1. Each is a table entry plus a small strategy; their wire shape is
//! checked by decoding into the k8s-openapi types.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ResourceKind, Rest, Strategy, Subresource};
use faros_machinery::status::FieldError;
use faros_machinery::table::{CellSource, PrinterColumn};
use faros_machinery::validation::NameRule;
use k8s_openapi::Metadata;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Decodes into a typed k8s-openapi value and back, reporting which fields were dropped.
struct Typed<T>(PhantomData<fn() -> T>);

/// A k8s-openapi kind with standard object metadata, as the round trip reads it.
pub(super) trait Kind: DeserializeOwned + Serialize + Metadata<Ty = ObjectMeta> + Send + Sync + 'static {}

impl<T: DeserializeOwned + Serialize + Metadata<Ty = ObjectMeta> + Send + Sync + 'static> Kind for T {}

pub(super) fn typed_roundtrip<T: Kind>(obj: &mut Value) -> Result<Vec<String>, String> {
    // Read from the tree in place, not from a copy of it. Decoding the metadata checks its
    // shape; its typed form is then dropped, not encoded back: the client's metadata moves
    // over verbatim below (k8s-openapi would lose metadata fields it does not model), and
    // encoding an object's managedFields into a tree only to drop it was most of the cost
    // of a Lease renewal's round trip.
    let mut typed = T::deserialize(&*obj).map_err(|e| e.to_string())?;
    // A body already in canonical form (a renewal, most controllers' writes) stays as it
    // is: nothing of it would be dropped or rewritten.
    if super::same_tree::serializes_to(&typed, obj, "metadata") {
        return Ok(Vec::new());
    }
    *typed.metadata_mut() = ObjectMeta::default();
    let mut back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if let (Some(meta), Some(out)) = (
        obj.as_object_mut().and_then(|o| o.remove("metadata")),
        back.as_object_mut(),
    ) {
        out.insert("metadata".into(), meta);
    }
    let mut unknown = Vec::new();
    dropped_fields(obj, &back, &mut String::new(), &mut unknown);
    *obj = back;
    Ok(unknown)
}

/// Paths present in `before` but missing from `after` (unknown fields of the typed form).
fn dropped_fields(before: &Value, after: &Value, path: &mut String, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match a.get(k) {
                    None if !v.is_null() => out.push(path.clone()),
                    Some(av) => dropped_fields(v, av, path, out),
                    None => {}
                }
                path.truncate(len);
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                dropped_fields(bv, av, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

impl<T: Kind> Strategy for Typed<T> {
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(typed_roundtrip::<T>(obj))
    }
}

fn typed<T: Kind>() -> Arc<dyn Strategy> {
    Arc::new(Typed::<T>(PhantomData))
}

struct NamespaceStrategy;
impl Strategy for NamespaceStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _env: &super::WriteEnv) {
        // Every namespace carries the `kubernetes` finalizer so that the namespace
        // controller can empty it before it goes away.
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let labels = obj["metadata"]
            .as_object_mut()
            .map(|m| m.entry("labels").or_insert_with(|| json!({})));
        if let Some(Value::Object(labels)) = labels {
            labels.insert("kubernetes.io/metadata.name".into(), name.into());
        }
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        new["spec"] = old["spec"].clone();
        let name = old["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if let Some(meta) = new["metadata"].as_object_mut() {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".into(), name.into());
            }
        }
    }
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(typed_roundtrip::<core::Namespace>(obj))
    }
    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "status.phase").then(|| obj["status"]["phase"].as_str().unwrap_or_default().to_string())
    }
    fn selectable_fields(&self) -> &[&'static str] {
        &["status.phase"]
    }
    fn prepare_for_delete(&self, obj: &mut Value) -> bool {
        let terminating = obj["status"]["phase"] == "Terminating";
        obj["status"]["phase"] = "Terminating".into();
        !terminating
    }
    fn blocks_deletion(&self, obj: &Value) -> bool {
        obj["spec"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
    }
}

struct SecretStrategy;
impl SecretStrategy {
    /// `stringData` is write-only sugar: fold it into base64 `data`.
    fn fold_string_data(obj: &mut Value) {
        use base64::Engine;
        let Some(map) = obj.as_object_mut() else { return };
        let Some(Value::Object(string_data)) = map.remove("stringData") else {
            return;
        };
        let data = map.entry("data").or_insert_with(|| json!({}));
        if data.is_null() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                if let Some(s) = v.as_str() {
                    data.insert(k, base64::engine::general_purpose::STANDARD.encode(s).into());
                }
            }
        }
    }
}
impl Strategy for SecretStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _env: &super::WriteEnv) {
        Self::fold_string_data(obj);
        if obj.get("type").is_none_or(Value::is_null) {
            obj["type"] = "Opaque".into();
        }
    }
    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        Self::fold_string_data(new);
        if new.get("type").is_none_or(Value::is_null) {
            new["type"] = "Opaque".into();
        }
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(old) = old {
            if obj["type"] != old["type"] {
                errs.push(FieldError::invalid("type", "field is immutable"));
            }
            if old["immutable"] == Value::Bool(true) && obj["data"] != old["data"] {
                errs.push(FieldError::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        errs
    }
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(typed_roundtrip::<core::Secret>(obj))
    }
    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        (field == "type").then(|| obj["type"].as_str().unwrap_or_default().to_string())
    }
    fn selectable_fields(&self) -> &[&'static str] {
        &["type"]
    }
}

struct ConfigMapStrategy;
impl Strategy for ConfigMapStrategy {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for field in ["data", "binaryData"] {
            if let Some(map) = obj[field].as_object() {
                for key in map.keys() {
                    if !is_config_key(key) {
                        errs.push(FieldError::invalid(
                            format!("{field}[{key}]"),
                            format!(
                                "{key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(old) = old
            && old["immutable"] == Value::Bool(true)
            && (obj["data"] != old["data"] || obj["binaryData"] != old["binaryData"])
        {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        errs
    }
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(typed_roundtrip::<core::ConfigMap>(obj))
    }
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub(super) struct EventStrategy;
impl Strategy for EventStrategy {
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(typed_roundtrip::<core::Event>(obj))
    }
    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        let v = match field {
            "involvedObject.kind" => &obj["involvedObject"]["kind"],
            "involvedObject.namespace" => &obj["involvedObject"]["namespace"],
            "involvedObject.name" => &obj["involvedObject"]["name"],
            "involvedObject.uid" => &obj["involvedObject"]["uid"],
            "involvedObject.apiVersion" => &obj["involvedObject"]["apiVersion"],
            "involvedObject.resourceVersion" => &obj["involvedObject"]["resourceVersion"],
            "involvedObject.fieldPath" => &obj["involvedObject"]["fieldPath"],
            "reason" => &obj["reason"],
            "reportingComponent" => &obj["reportingComponent"],
            "source" => &obj["source"]["component"],
            "type" => &obj["type"],
            _ => return None,
        };
        Some(v.as_str().unwrap_or_default().to_string())
    }
    fn selectable_fields(&self) -> &[&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }
}

struct RbacStrategy<T>(PhantomData<fn() -> T>);
impl<T: Kind> Strategy for RbacStrategy<T> {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(rules) = obj["rules"].as_array() {
            for (i, rule) in rules.iter().enumerate() {
                let empty = |f: &str| rule[f].as_array().is_none_or(|a| a.is_empty());
                if empty("verbs") {
                    errs.push(FieldError::required(
                        format!("rules[{i}].verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                if !empty("nonResourceURLs") {
                    if !empty("resources") || !empty("apiGroups") {
                        errs.push(FieldError::invalid(
                            format!("rules[{i}].nonResourceURLs"),
                            "rules cannot apply to both regular resources and non-resource URLs",
                        ));
                    }
                } else if empty("resources") {
                    errs.push(FieldError::required(
                        format!("rules[{i}].resources"),
                        "resource rules must supply at least one resource",
                    ));
                } else if rule.get("apiGroups").is_none_or(|g| !g.is_array()) {
                    errs.push(FieldError::required(
                        format!("rules[{i}].apiGroups"),
                        "resource rules must supply at least one api group",
                    ));
                }
            }
        }
        if let Some(role_ref) = obj.get("roleRef") {
            for field in ["kind", "name"] {
                if role_ref[field].as_str().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(format!("roleRef.{field}"), ""));
                }
            }
            let kind = role_ref["kind"].as_str().unwrap_or_default();
            if !kind.is_empty() && kind != "Role" && kind != "ClusterRole" {
                errs.push(FieldError::not_supported(
                    "roleRef.kind",
                    format!("{kind:?}: supported values: \"ClusterRole\", \"Role\""),
                ));
            }
            if let Some(old) = old
                && old["roleRef"] != *role_ref
            {
                errs.push(FieldError::invalid("roleRef", "cannot change roleRef"));
            }
            if let Some(subjects) = obj["subjects"].as_array() {
                for (i, s) in subjects.iter().enumerate() {
                    let kind = s["kind"].as_str().unwrap_or_default();
                    if !matches!(kind, "User" | "Group" | "ServiceAccount") {
                        errs.push(FieldError::not_supported(
                            format!("subjects[{i}].kind"),
                            format!("{kind:?}: supported values: \"Group\", \"ServiceAccount\", \"User\""),
                        ));
                    }
                    if s["name"].as_str().is_none_or(str::is_empty) {
                        errs.push(FieldError::required(format!("subjects[{i}].name"), ""));
                    }
                }
            }
        }
        errs
    }
    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(typed_roundtrip::<T>(obj))
    }
}

fn rbac<T: Kind>() -> Arc<dyn Strategy> {
    Arc::new(RbacStrategy::<T>(PhantomData))
}

#[allow(clippy::too_many_arguments)]
fn name_column() -> PrinterColumn {
    PrinterColumn {
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        ..PrinterColumn::path("Name", "string", ".metadata.name", 0)
    }
}

fn count(name: &str, paths: Vec<Vec<&'static str>>) -> PrinterColumn {
    PrinterColumn {
        source: CellSource::CountAll(paths),
        ..PrinterColumn::path(name, "integer", "", 0)
    }
}

pub fn kinds() -> Vec<Arc<ResourceKind>> {
    let age = PrinterColumn::age;
    let legacy = |resource: &str, kind: &str| ResourceKind::builder("", "v1", resource, kind);
    let rbac_kind = |resource: &str, kind: &str| {
        // RBAC objects are path-segment named in Kubernetes (e.g. `system:admin`).
        ResourceKind::builder(RBAC_GROUP, "v1", resource, kind).names(NameRule::PathSegment)
    };
    let binding_columns = || {
        vec![
            name_column(),
            PrinterColumn::path("Role", "string", ".roleRef.name", 0),
            age(),
            PrinterColumn::path("Users", "string", ".subjects[?(@.kind==\"User\")].name", 1),
            PrinterColumn::path("Groups", "string", ".subjects[?(@.kind==\"Group\")].name", 1),
            PrinterColumn::path(
                "ServiceAccounts",
                "string",
                ".subjects[?(@.kind==\"ServiceAccount\")].name",
                1,
            ),
        ]
    };
    let created_at = || {
        vec![
            name_column(),
            PrinterColumn::path("Created At", "string", ".metadata.creationTimestamp", 0),
        ]
    };
    vec![
        legacy("namespaces", "Namespace")
            .short_names(&["ns"])
            .subresource(Subresource::STATUS)
            .subresource(Subresource {
                name: "finalize",
                verbs: &["update"],
                rest: None,
            })
            .names(NameRule::Dns1123Label)
            .columns(vec![
                name_column(),
                PrinterColumn::path("Status", "string", ".status.phase", 0),
                age(),
            ])
            .strategy(Arc::new(NamespaceStrategy))
            .build(),
        legacy("configmaps", "ConfigMap")
            .namespaced()
            .short_names(&["cm"])
            .columns(vec![
                name_column(),
                count("Data", vec![vec!["data"], vec!["binaryData"]]),
                age(),
            ])
            .strategy(Arc::new(ConfigMapStrategy))
            .build(),
        legacy("secrets", "Secret")
            .namespaced()
            .columns(vec![
                name_column(),
                PrinterColumn::path("Type", "string", ".type", 0),
                count("Data", vec![vec!["data"]]),
                age(),
            ])
            .strategy(Arc::new(SecretStrategy))
            .build(),
        legacy("serviceaccounts", "ServiceAccount")
            .namespaced()
            .short_names(&["sa"])
            .subresource(Subresource {
                name: "token",
                verbs: &["create"],
                rest: Some(Rest::TokenRequest),
            })
            .columns(vec![name_column(), count("Secrets", vec![vec!["secrets"]]), age()])
            .strategy(typed::<core::ServiceAccount>())
            .build(),
        legacy("events", "Event")
            .namespaced()
            .short_names(&["ev"])
            .columns(vec![
                PrinterColumn::path("Last Seen", "date", ".lastTimestamp", 0),
                PrinterColumn::path("Type", "string", ".type", 0),
                PrinterColumn::path("Reason", "string", ".reason", 0),
                PrinterColumn::path("Object", "string", ".involvedObject.name", 0),
                PrinterColumn::path("Message", "string", ".message", 0),
            ])
            .strategy(Arc::new(EventStrategy))
            .build(),
        ResourceKind::builder("coordination.k8s.io", "v1", "leases", "Lease")
            .namespaced()
            .columns(vec![
                name_column(),
                PrinterColumn::path("Holder", "string", ".spec.holderIdentity", 0),
                age(),
            ])
            .strategy(typed::<coordination::Lease>())
            .build(),
        rbac_kind("roles", "Role")
            .namespaced()
            .columns(created_at())
            .strategy(rbac::<rbac::Role>())
            .build(),
        rbac_kind("rolebindings", "RoleBinding")
            .namespaced()
            .columns(binding_columns())
            .strategy(rbac::<rbac::RoleBinding>())
            .build(),
        rbac_kind("clusterroles", "ClusterRole")
            .columns(created_at())
            .strategy(rbac::<rbac::ClusterRole>())
            .build(),
        rbac_kind("clusterrolebindings", "ClusterRoleBinding")
            .columns(binding_columns())
            .strategy(rbac::<rbac::ClusterRoleBinding>())
            .build(),
        ResourceKind::builder(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
        )
        .short_names(&["crd", "crds"])
        .subresource(Subresource::STATUS)
        .columns(created_at())
        .tracks_generation()
        .strategy(Arc::new(super::crd::CrdStrategy))
        .build(),
        // Reviews: answered from the requester's own identity and permissions, never stored.
        ResourceKind::builder(
            AUTHORIZATION,
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
        )
        .rest(Rest::SelfSubjectAccessReview)
        .build(),
        // Reviews for another identity, asked by webhook authenticators and authorizers.
        ResourceKind::builder(AUTHENTICATION, "v1", "tokenreviews", "TokenReview")
            .rest(Rest::TokenReview)
            .build(),
        ResourceKind::builder(AUTHORIZATION, "v1", "subjectaccessreviews", "SubjectAccessReview")
            .rest(Rest::SubjectAccessReview)
            .build(),
        ResourceKind::builder(
            AUTHORIZATION,
            "v1",
            "localsubjectaccessreviews",
            "LocalSubjectAccessReview",
        )
        .namespaced()
        .rest(Rest::LocalSubjectAccessReview)
        .build(),
        ResourceKind::builder(AUTHORIZATION, "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview")
            .rest(Rest::SelfSubjectRulesReview)
            .build(),
        ResourceKind::builder(AUTHENTICATION, "v1", "selfsubjectreviews", "SelfSubjectReview")
            .rest(Rest::SelfSubjectReview)
            .build(),
        ResourceKind::builder(AUTHENTICATION, "v1beta1", "selfsubjectreviews", "SelfSubjectReview")
            .rest(Rest::SelfSubjectReview)
            .build(),
    ]
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// Typed round trip for CRDs, shared with the CRD strategy.
pub(crate) fn normalize_crd(obj: &mut Value) -> Result<Vec<String>, String> {
    typed_roundtrip::<apiextensions::CustomResourceDefinition>(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_roundtrip_reports_unknown_fields_and_type_errors() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
            "data": {"k": "v"}, "bogus": 1});
        let mut back = cm.clone();
        let unknown = typed_roundtrip::<core::ConfigMap>(&mut back).unwrap();
        assert_eq!(unknown, vec!["bogus".to_string()]);
        assert!(back.get("bogus").is_none());
        assert_eq!(back["metadata"], cm["metadata"]);
        assert_eq!(back["data"], cm["data"]);
        let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 5}});
        assert!(typed_roundtrip::<core::ConfigMap>(&mut bad.clone()).is_err());
    }

    /// A body already in canonical form is kept as sent; one that is not is still rewritten,
    /// a Lease's time to its six decimals.
    #[test]
    fn typed_roundtrip_keeps_canonical_bodies_and_rewrites_the_rest() {
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "a", "managedFields": [{"manager": "m", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"holderIdentity": "a", "renewTime": "2026-12-07T08:00:00.123456Z"}});
        let mut back = lease.clone();
        assert!(typed_roundtrip::<coordination::Lease>(&mut back).unwrap().is_empty());
        assert_eq!(back, lease);
        let mut short = lease.clone();
        short["spec"]["renewTime"] = "2026-12-07T08:00:00Z".into();
        assert!(typed_roundtrip::<coordination::Lease>(&mut short).unwrap().is_empty());
        assert_eq!(short["spec"]["renewTime"], "2026-12-07T08:00:00.000000Z");
        assert_eq!(short["metadata"], lease["metadata"]);
        let mut null = lease.clone();
        null["spec"]["acquireTime"] = Value::Null;
        assert!(typed_roundtrip::<coordination::Lease>(&mut null).unwrap().is_empty());
        assert_eq!(null, lease);
    }

    #[test]
    fn secret_string_data_is_folded_into_data() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"user": "admin"}});
        let user = crate::auth::User {
            name: "u".into(),
            ..Default::default()
        };
        let env = super::super::WriteEnv {
            cluster: "root",
            path: "root",
            external_url: "",
            user: &user,
        };
        SecretStrategy.prepare_for_create(&mut s, &env);
        assert_eq!(s["data"]["user"], "YWRtaW4=");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
    }
}
