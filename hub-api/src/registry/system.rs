//! The system kinds served in every logical cluster — workspaces, workspace types, logical
//! clusters, API exports, schemas and bindings — from the CRDs `faros-api` generates, with
//! their strategies; and the kinds an APIResourceSchema makes of a bound resource.

use std::sync::Arc;

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::crd::{CrdKinds, CrdStrategy};
use super::{ResourceKind, Strategy, WriteEnv};
use faros_api::apis::{BINDING_FINALIZER, SCHEMA_IN_USE_FINALIZER};
use faros_api::tenancy::{ROOT, WORKSPACE_FINALIZER};
use faros_machinery::object;
use faros_machinery::status::FieldError;
use faros_machinery::validation::is_dns1123_label;

/// The tenancy and apis kinds, served in every logical cluster.
pub fn system_kinds() -> Vec<Arc<ResourceKind>> {
    use faros_api::apis::{APIBinding, APIExport, APIResourceSchema};
    use faros_api::tenancy::{LogicalCluster, Workspace, WorkspaceType};
    let crds: Vec<(Value, Option<Arc<dyn Strategy>>)> = vec![
        (crd_json(Workspace::crd()), Some(Arc::new(WorkspaceStrategy))),
        (crd_json(WorkspaceType::crd()), None),
        (crd_json(LogicalCluster::crd()), None),
        (crd_json(APIResourceSchema::crd()), Some(Arc::new(SchemaStrategy))),
        (crd_json(APIExport::crd()), Some(Arc::new(APIExportStrategy))),
        (crd_json(APIBinding::crd()), Some(Arc::new(APIBindingStrategy))),
    ];
    let mut kinds = Vec::new();
    for (crd, strategy) in crds {
        let decoded = CrdKinds::from_crd(&crd).expect("generated CRDs are valid");
        for kind in decoded.served {
            let mut kind = Arc::try_unwrap(kind).unwrap_or_else(|_| unreachable!("fresh kind"));
            if let Some(strategy) = &strategy {
                kind.strategy = strategy.clone();
            }
            kinds.push(Arc::new(kind));
        }
    }
    kinds
}

/// A generated CRD as JSON, marked established (it is served from the start).
pub fn crd_json(crd: impl serde::Serialize) -> Value {
    let mut value = serde_json::to_value(crd).expect("CRDs serialise");
    value["status"] = json!({"conditions": [{"type": "Established", "status": "True"}]});
    value
}

/// The CustomResourceDefinition an APIResourceSchema amounts to: the same group, names,
/// scope and versions, with each version's schema under `openAPIV3Schema`.
fn schema_as_crd(schema: &Value) -> Value {
    let spec = &schema["spec"];
    let versions: Vec<Value> = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let mut version = v.clone();
            version["schema"] = json!({"openAPIV3Schema": v["schema"]});
            version
        })
        .collect();
    json!({
        "metadata": {"name": format!("{}.{}", spec["names"]["plural"].as_str().unwrap_or_default(), spec["group"].as_str().unwrap_or_default())},
        "spec": {"group": spec["group"], "names": spec["names"], "scope": spec["scope"], "versions": versions},
        "status": {"conditions": [{"type": "Established", "status": "True"}]},
    })
}

/// ResourceKinds for an APIResourceSchema stored under `identity`.
pub fn kinds_from_schema(schema: &Value, identity: &str) -> Vec<Arc<ResourceKind>> {
    match CrdKinds::from_crd(&schema_as_crd(schema)) {
        Ok(decoded) => decoded
            .served
            .into_iter()
            .map(|kind| {
                let mut kind = Arc::try_unwrap(kind).unwrap_or_else(|_| unreachable!("fresh kind"));
                kind.storage_resource = format!("{}:{identity}", kind.resource);
                Arc::new(kind)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "skipping an APIResourceSchema that does not decode");
            Vec::new()
        }
    }
}

/// A short random identifier for logical clusters and identities (lowercase base36).
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().into_bytes() {
            if out.len() == len {
                break;
            }
            // 252 = 7 * 36: reject the tail so every character is equally likely.
            if b < 252 {
                out.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    out
}

struct WorkspaceStrategy;

impl Strategy for WorkspaceStrategy {
    fn prepare_for_create(&self, obj: &mut Value, env: &WriteEnv) {
        let name = object::name(obj).to_string();
        // Only privileged clients may pick the logical cluster (used for system workspaces).
        let preset = obj["spec"]["cluster"]
            .as_str()
            .filter(|c| !c.is_empty() && env.user.is_master());
        let cluster = preset.map(str::to_string).unwrap_or_else(|| random_id(16));
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        obj["spec"]["cluster"] = cluster.into();
        obj["spec"]["URL"] = format!("{}/clusters/{}:{name}", env.external_url, env.path).into();
        // Anything but an object (or nothing) is left for validation to refuse.
        let given = &obj["spec"]["type"];
        if given.is_null() || (given.is_object() && given["name"].as_str().is_none_or(str::is_empty)) {
            obj["spec"]["type"] = json!({"name": "universal", "path": ROOT});
        } else if given.is_object() && given["path"].as_str().is_none_or(str::is_empty) {
            obj["spec"]["type"]["path"] = ROOT.into();
        }
        obj["status"] = json!({"phase": "Scheduling"});
        object::add_finalizer(obj, WORKSPACE_FINALIZER);
        let meta = object::meta_mut(obj);
        // The creator becomes the new workspace's admin; clients cannot choose who that is.
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        annotations[faros_api::tenancy::OWNER_ANNOTATION] = env.user.owner_annotation().into();
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // The hub owns where a workspace lives and how it is reached.
        for field in ["cluster", "URL"] {
            new["spec"][field] = old["spec"][field].clone();
        }
        // ... and who created it.
        let owner = &old["metadata"]["annotations"][faros_api::tenancy::OWNER_ANNOTATION];
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(map) = annotations.as_object_mut() {
                match owner {
                    Value::String(_) => map.insert(faros_api::tenancy::OWNER_ANNOTATION.into(), owner.clone()),
                    _ => map.remove(faros_api::tenancy::OWNER_ANNOTATION),
                };
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = object::name(obj);
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid("metadata.name", format!("{name:?}: {msg}")));
        }
        let type_name = obj["spec"]["type"]["name"].as_str().unwrap_or_default();
        for msg in is_dns1123_label(type_name) {
            errs.push(FieldError::invalid("spec.type.name", format!("{type_name:?}: {msg}")));
        }
        if let Some(old) = old
            && old["spec"]["type"] != obj["spec"]["type"]
        {
            errs.push(FieldError::invalid("spec.type", "field is immutable"));
        }
        errs
    }
}

/// APIResourceSchemas are snapshots: their spec never changes once created. It must make a
/// valid CRD, and the name says which (`<prefix>.<plural>.<group>`, as in kcp).
struct SchemaStrategy;

impl Strategy for SchemaStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _env: &WriteEnv) {
        object::add_finalizer(obj, SCHEMA_IN_USE_FINALIZER);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        if let Some(old) = old {
            return if old["spec"] != obj["spec"] {
                vec![FieldError::invalid("spec", "field is immutable")]
            } else {
                Vec::new()
            };
        }
        let crd = schema_as_crd(obj);
        let mut errs: Vec<FieldError> = CrdStrategy
            .validate(&crd, None)
            .into_iter()
            .filter(|e| e.field != "metadata.name")
            .map(|mut e| {
                e.field = e.field.replace(".schema.openAPIV3Schema", ".schema");
                e
            })
            .collect();
        let name = object::name(obj);
        let suffix = format!(".{}", crd["metadata"]["name"].as_str().unwrap_or_default());
        if name.strip_suffix(&suffix).is_none_or(str::is_empty) {
            errs.push(FieldError::invalid(
                "metadata.name",
                format!("{name:?}: must be <prefix>.<spec.names.plural>.<spec.group>, e.g. v1{suffix}"),
            ));
        }
        errs
    }
}

struct APIExportStrategy;

/// The identity an export's objects are stored under: the SHA-256 of where the export lives
/// and its name, so an export deleted and created again finds its bindings' objects (kcp
/// keeps the identity Secret for the same reason). Clients never choose it, so no other
/// export can take it.
pub fn export_identity(cluster: &str, name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{cluster}:{name}").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Strategy for APIExportStrategy {
    fn prepare_for_create(&self, obj: &mut Value, env: &WriteEnv) {
        // Bound objects are stored under this identity; the export's owner reaches every
        // binding workspace through the export's view.
        let view = format!(
            "{}{}{}/{}",
            env.external_url,
            faros_api::apis::VIEW_PATH_PREFIX,
            env.cluster,
            object::name(obj)
        );
        let identity = export_identity(env.cluster, object::name(obj));
        obj["status"] = json!({"identityHash": identity, "virtualWorkspaces": [{"url": view}]});
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = duplicate_claims(obj);
        if let Some(old) = old
            && old["status"]["identityHash"] != obj["status"]["identityHash"]
        {
            errs.push(FieldError::invalid("status.identityHash", "field is immutable"));
        }
        errs
    }
}

struct APIBindingStrategy;

/// Claims naming the same resource twice (in an export, or answered twice in a binding).
fn duplicate_claims(obj: &Value) -> Vec<FieldError> {
    let claims = obj["spec"]["permissionClaims"].as_array().cloned().unwrap_or_default();
    let key = |c: &Value| (c["group"].clone(), c["resource"].clone(), c["identityHash"].clone());
    claims
        .iter()
        .enumerate()
        .filter(|(i, c)| claims[..*i].iter().any(|earlier| key(earlier) == key(c)))
        .map(|(i, c)| {
            FieldError::duplicate(
                format!("spec.permissionClaims[{i}]"),
                format!(
                    "{}.{} is claimed more than once",
                    c["resource"].as_str().unwrap_or_default(),
                    c["group"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect()
}

impl Strategy for APIBindingStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _env: &WriteEnv) {
        obj["status"] = json!({"phase": "Binding"});
        object::add_finalizer(obj, BINDING_FINALIZER);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if obj["spec"]["reference"]["export"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required("spec.reference.export.name", ""));
        }
        if let Some(old) = old
            && old["spec"]["reference"] != obj["spec"]["reference"]
        {
            errs.push(FieldError::invalid("spec.reference", "field is immutable"));
        }
        for (i, claim) in obj["spec"]["permissionClaims"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let state = claim["state"].as_str().unwrap_or_default();
            if state != faros_api::apis::CLAIM_ACCEPTED && state != faros_api::apis::CLAIM_REJECTED {
                errs.push(FieldError::not_supported(
                    format!("spec.permissionClaims[{i}].state"),
                    format!(
                        "{state:?}: supported values: \"{}\", \"{}\"",
                        faros_api::apis::CLAIM_ACCEPTED,
                        faros_api::apis::CLAIM_REJECTED
                    ),
                ));
            }
            if claim["resource"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("spec.permissionClaims[{i}].resource"), ""));
            }
        }
        errs.extend(duplicate_claims(obj));
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_kinds_decode() {
        let kinds = system_kinds();
        let names: Vec<&str> = kinds.iter().map(|k| k.resource.as_str()).collect();
        for expected in [
            "workspaces",
            "workspacetypes",
            "logicalclusters",
            "apiresourceschemas",
            "apiexports",
            "apibindings",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let ws = kinds.iter().find(|k| k.resource == "workspaces").unwrap();
        assert!(!ws.namespaced);
        assert_eq!(ws.short_names, vec!["ws".to_string()]);
        assert!(ws.has_status());
    }

    #[test]
    fn export_identities_are_sha256_of_place_and_name() {
        let identity = export_identity("abc", "widgets.acme.io");
        assert_eq!(identity.len(), 64);
        assert!(
            identity
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(identity, export_identity("abc", "widgets.acme.io"));
        assert_ne!(identity, export_identity("abd", "widgets.acme.io"));
        assert_ne!(identity, export_identity("abc", "gadgets.acme.io"));
        // The separator keeps `a:bc` and `ab:c` apart.
        assert_ne!(export_identity("a", "bc"), export_identity("ab", "c"));
    }

    #[test]
    fn a_resource_may_be_claimed_once() {
        let claims = |list: Value| json!({"spec": {"permissionClaims": list}});
        let ok = claims(json!([
            {"group": "", "resource": "configmaps", "state": "Accepted"},
            {"group": "", "resource": "secrets", "state": "Rejected"},
            {"group": "acme.io", "resource": "widgets", "identityHash": "a", "state": "Accepted"},
            {"group": "acme.io", "resource": "widgets", "identityHash": "b", "state": "Accepted"},
        ]));
        assert!(duplicate_claims(&ok).is_empty());
        let twice = claims(json!([
            {"group": "", "resource": "configmaps", "state": "Accepted"},
            {"group": "", "resource": "configmaps", "state": "Rejected"},
        ]));
        let errs = duplicate_claims(&twice);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.permissionClaims[1]");
    }

    #[test]
    fn random_ids_are_lowercase_alphanumeric() {
        let id = random_id(16);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert!(is_dns1123_label(&id).is_empty());
    }
}
