//! CustomResourceDefinitions: their own validation and status, and the [`ResourceKind`]s
//! each one contributes for its served versions.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{NoHooks, ResourceKind, Strategy, Subresource};
use faros_api::meta::CRD_CLEANUP_FINALIZER as CLEANUP_FINALIZER;
use faros_machinery::schema::StructuralSchema;
use faros_machinery::status::FieldError;
use faros_machinery::table::PrinterColumn;
use faros_machinery::validation::{NameRule, is_dns1123_label, is_dns1123_subdomain};

/// What one CRD serves.
pub struct CrdKinds {
    pub established: bool,
    /// One kind per served version; all share the same storage (the version is not in the key).
    pub served: Vec<Arc<ResourceKind>>,
}

impl CrdKinds {
    pub fn from_crd(crd: &Value) -> Result<CrdKinds, String> {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().ok_or("spec.group missing")?.to_string();
        let names = &spec["names"];
        let plural = names["plural"].as_str().ok_or("plural missing")?.to_string();
        let kind = names["kind"].as_str().ok_or("kind missing")?.to_string();
        let singular = names["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| kind.to_lowercase());
        let list_kind = names["listKind"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List"));
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let mut served = Vec::new();
        for (i, version) in spec["versions"].as_array().into_iter().flatten().enumerate() {
            let name = version["name"].as_str().unwrap_or_default().to_string();
            if version["served"].as_bool() != Some(true) {
                continue;
            }
            let schema = match version["schema"].get("openAPIV3Schema") {
                Some(s) => Some(Arc::new(
                    StructuralSchema::parse_stored(s, &format!("spec.versions[{i}].schema.openAPIV3Schema"))
                        .map_err(|e| format!("{e:?}"))?,
                )),
                None => None,
            };
            let columns = PrinterColumn::for_custom_resource(&version["additionalPrinterColumns"]);
            served.push(Arc::new(ResourceKind {
                group: group.clone(),
                version: name,
                resource: plural.clone(),
                storage_resource: plural.clone(),
                storage_group: group.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                list_kind: list_kind.clone(),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources: {
                    let mut subresources = if version["subresources"].get("status").is_some() {
                        vec![Subresource::STATUS]
                    } else {
                        Vec::new()
                    };
                    if group == faros_api::EDGE_GROUP && plural == "agents" {
                        subresources.extend(Subresource::AGENT_DEVICE);
                    }
                    subresources
                },
                rest: None,
                columns,
                builtin: false,
                // Custom resource names are DNS subdomains, as in kube-apiserver.
                name_rule: NameRule::Dns1123Subdomain,
                allow_unconditional_update: false,
                tracks_generation: true,
                schema,
                strategy: Arc::new(NoHooks),
                crd_selectable_fields: version["selectableFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect(),
            }));
        }
        let condition = |t: &str| {
            crd["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == t && c["status"] == "True")
        };
        Ok(CrdKinds {
            established: condition("Established"),
            served,
        })
    }
}

pub struct CrdStrategy;

impl CrdStrategy {
    fn set_status(obj: &mut Value) {
        let now = faros_api::meta::now_rfc3339();
        let names = obj["spec"]["names"].clone();
        let condition = |t: &str, reason: &str, message: &str| {
            json!({"type": t, "status": "True", "reason": reason, "message": message,
                   "lastTransitionTime": now})
        };
        let mut accepted = names.clone();
        if accepted.get("singular").is_none_or(Value::is_null) {
            let kind = names["kind"].as_str().unwrap_or_default().to_lowercase();
            accepted["singular"] = kind.into();
        }
        if accepted.get("listKind").is_none_or(Value::is_null) {
            accepted["listKind"] = format!("{}List", names["kind"].as_str().unwrap_or_default()).into();
        }
        let stored: Vec<Value> = obj["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .map(|v| v["name"].clone())
            .collect();
        // Names are checked by validation and a CRD is served as soon as it is stored, so it
        // is accepted and established in the same write.
        obj["status"] = json!({
            "acceptedNames": accepted,
            "storedVersions": stored,
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
        });
    }
}

impl Strategy for CrdStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _env: &super::WriteEnv) {
        Self::set_status(obj);
        faros_machinery::object::add_finalizer(obj, CLEANUP_FINALIZER);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if new["spec"] != old["spec"] {
            let mut stored = old["status"]["storedVersions"].clone();
            Self::set_status(new);
            // storedVersions only ever grows (objects may still be stored in old versions).
            if let (Some(old_list), Some(new_list)) =
                (stored.as_array_mut(), new["status"]["storedVersions"].as_array())
            {
                for v in new_list {
                    if !old_list.contains(v) {
                        old_list.push(v.clone());
                    }
                }
                new["status"]["storedVersions"] = stored;
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = &obj["spec"];
        let group = spec["group"].as_str().unwrap_or_default();
        let plural = spec["names"]["plural"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if group.is_empty() {
            errs.push(FieldError::required("spec.group", ""));
        } else if !is_dns1123_subdomain(group).is_empty() || !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                format!("{group:?}: should be a domain with at least one dot"),
            ));
        }
        if name != format!("{plural}.{group}") {
            errs.push(FieldError::invalid(
                "metadata.name",
                format!("{name:?}: must be spec.names.plural+\".\"+spec.group"),
            ));
        }
        let names = &spec["names"];
        for field in ["plural", "singular"] {
            if let Some(value) = names[field].as_str()
                && !is_dns1123_label(value).is_empty()
            {
                errs.push(FieldError::invalid(
                    format!("spec.names.{field}"),
                    format!("{value:?}: a lowercase RFC 1123 label is required"),
                ));
            }
        }
        if plural.is_empty() {
            errs.push(FieldError::required("spec.names.plural", ""));
        }
        if names["kind"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required("spec.names.kind", ""));
        }
        if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
            errs.push(FieldError::not_supported(
                "spec.scope",
                format!("{}: supported values: \"Cluster\", \"Namespaced\"", spec["scope"]),
            ));
        }
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        if versions.is_empty() {
            errs.push(FieldError::required(
                "spec.versions",
                "must have exactly one version marked as storage version",
            ));
        }
        let storage = versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count();
        if !versions.is_empty() && storage != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                "must have exactly one version marked as storage version",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, version) in versions.iter().enumerate() {
            let vname = version["name"].as_str().unwrap_or_default();
            if !is_dns1123_label(vname).is_empty() {
                errs.push(FieldError::invalid(
                    format!("spec.versions[{i}].name"),
                    format!("{vname:?}: a DNS-1035 label is required"),
                ));
            }
            if !seen.insert(vname) {
                errs.push(FieldError::duplicate(
                    format!("spec.versions[{i}].name"),
                    format!("{vname:?}"),
                ));
            }
            match version["schema"].get("openAPIV3Schema") {
                Some(schema) => {
                    if let Err(mut schema_errs) =
                        StructuralSchema::parse(schema, &format!("spec.versions[{i}].schema.openAPIV3Schema"))
                    {
                        errs.append(&mut schema_errs);
                    }
                }
                None => errs.push(FieldError::required(
                    format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    "schemas are required",
                )),
            }
        }
        if let Some(old) = old {
            if old["spec"]["group"] != spec["group"] {
                errs.push(FieldError::invalid("spec.group", "field is immutable"));
            }
            if old["spec"]["scope"] != spec["scope"] {
                errs.push(FieldError::invalid("spec.scope", "field is immutable"));
            }
        }
        errs
    }

    fn normalize(&self, obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        Some(super::builtin::normalize_crd(obj))
    }
}
