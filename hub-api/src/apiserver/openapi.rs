//! OpenAPI v3 documents as kube-apiserver publishes them: the `/openapi/v3` index and one
//! self-contained document per group-version (`/openapi/v3/api/v1`, `/openapi/v3/apis/<g>/<v>`).
//!
//! kubectl reads these documents for:
//! - `kubectl explain`: it takes the GVK from the `x-kubernetes-group-version-kind` of an
//!   operation on `/api(s)/.../<plural>` (kubectl 1.27 only looks at the GET of the
//!   cluster-wide list path, so namespaced kinds also get the all-namespaces list path), then
//!   walks `components.schemas` for the schema whose `x-kubernetes-group-version-kind` list
//!   contains exactly that `{group, version, kind}` and follows `properties`, `items`,
//!   `additionalProperties`, `allOf` and `$ref` from there;
//! - the `fieldValidation` check before create/apply/replace: some PATCH operation carrying the
//!   GVK must declare a `fieldValidation` query parameter inline; otherwise kubectl falls back to
//!   (OpenAPI v2 based) client-side validation;
//! - client-side `kubectl apply` (1.29+): if the PATCH request body of the GVK lists
//!   `application/strategic-merge-patch+json`, the patch is computed from the schema, using
//!   `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key` and failing on any changed map
//!   or list field the schema does not declare. So only built-in kinds with a schema generated
//!   from their k8s-openapi type, which declares every field, offer strategic merge; custom
//!   resources list JSON, merge and apply patches only (kubectl then sends a JSON merge patch).

use std::sync::{Arc, OnceLock};

use k8s_openapi::api::authentication::v1 as authentication;
use k8s_openapi::api::authorization::v1 as authorization;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::registry::ResourceKind;

const REF_PREFIX: &str = "#/components/schemas/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

const API_VERSION_DESC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA_DESC: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Content type of the protobuf form of `/openapi/v2`. kubectl asks for the older spelling
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, but Go cannot parse a media type
/// containing `@`, so kube-apiserver (and we) answer with this one.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The key of a group-version in the `/openapi/v3` index and the tail of its document's URL:
/// `api/v1` or `apis/<group>/<version>`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The content hash of a document: the `hash` query parameter of its URL in the index and a
/// suitable `ETag`. 128-bit FNV-1a over the compact JSON, upper-case hex.
pub fn document_hash(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in bytes {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("{h:032X}")
}

/// The group-versions served, sorted.
fn served_gvs(kinds: &[Arc<ResourceKind>]) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = kinds.iter().map(|k| (k.group.clone(), k.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

/// `GET /openapi/v3`: one entry per served group-version, pointing at
/// `<base>/openapi/v3/<gv path>?hash=<document hash>`. `base` is the path prefix the request
/// came in under ("" or e.g. "/clusters/root:acme"); client-go strips its own prefix from the
/// URL and re-adds it, and older client-go uses the URL as is, so it must be included.
pub fn index(kinds: &[Arc<ResourceKind>], base: &str) -> Value {
    let base = base.trim_end_matches('/');
    let mut paths = Map::new();
    for (group, version) in served_gvs(kinds) {
        if let Some(doc) = group_version(kinds, &group, &version) {
            let path = gv_path(&group, &version);
            let url = format!("{base}/openapi/v3/{path}?hash={}", document_hash(&doc));
            paths.insert(path, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of one group-version; None when nothing is served there.
pub fn group_version(kinds: &[Arc<ResourceKind>], group: &str, version: &str) -> Option<Value> {
    let mut served: Vec<&ResourceKind> = Vec::new();
    for k in kinds {
        if k.group == group && k.version == version && !served.iter().any(|s| s.resource == k.resource) {
            served.push(k);
        }
    }
    if served.is_empty() {
        return None;
    }
    // Sorted so that the document (and its hash) does not depend on the order of `kinds`.
    served.sort_by(|a, b| a.resource.cmp(&b.resource));

    let mut schemas = Map::new();
    let mut paths = Map::new();
    for k in served {
        let model = model_name(k, &k.kind);
        let list_model = model_name(k, &k.list_kind);
        let mut schema = if k.builtin && k.schema.is_none() {
            builtin_schema(&model)
        } else {
            custom_schema(k)
        };
        schema["x-kubernetes-group-version-kind"] = json!([gvk(k, &k.kind)]);
        schemas.insert(model.clone(), schema);
        schemas.insert(list_model.clone(), list_schema(k, &model));
        add_paths(&mut paths, k, &model, &list_model);
    }
    // Add the shared definitions the paths and schemas reference, transitively.
    let mut pending = Vec::new();
    paths
        .values()
        .chain(schemas.values())
        .for_each(|v| collect_refs(v, &mut pending));
    while let Some(name) = pending.pop() {
        if !schemas.contains_key(&name)
            && let Some(def) = definitions().get(&name)
        {
            collect_refs(def, &mut pending);
            schemas.insert(name, def.clone());
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `GET /openapi/v2`. Only kubectl 1.27/1.28 need it: they load it before create, apply,
/// replace, diff and explain and give up if it cannot be fetched or decoded, but use it only
/// when OpenAPI v3 does not answer. So this is a valid empty document: a zero-length protobuf
/// message when protobuf is acceptable (that is all kubectl asks for), else minimal JSON.
/// Returns (Content-Type, body).
pub fn v2_stub(accept: &str) -> (&'static str, Vec<u8>) {
    if accept.contains("protobuf") {
        return (V2_PROTOBUF_CONTENT_TYPE, Vec::new());
    }
    let doc = json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "unversioned"}, "paths": {}, "definitions": {}});
    ("application/json", serde_json::to_vec(&doc).unwrap_or_default())
}

fn gvk(k: &ResourceKind, kind: &str) -> Value {
    json!({"group": k.group, "version": k.version, "kind": kind})
}

/// The schema name kube-apiserver uses: `io.k8s.api.core.v1.ConfigMap`,
/// `io.k8s.api.rbac.v1.Role`, and the reversed group for everything else
/// (`com.example.v1.Widget`).
fn model_name(k: &ResourceKind, kind: &str) -> String {
    let (g, v) = (k.group.as_str(), k.version.as_str());
    if g.is_empty() {
        return format!("io.k8s.api.core.{v}.{kind}");
    }
    if k.builtin {
        if g == "apiextensions.k8s.io" {
            return format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{v}.{kind}");
        }
        if let Some(short) = g.strip_suffix(".k8s.io") {
            let first = short.split('.').next().unwrap_or(short);
            return format!("io.k8s.api.{first}.{v}.{kind}");
        }
        if !g.contains('.') {
            return format!("io.k8s.api.{g}.{v}.{kind}");
        }
    }
    let reversed: Vec<&str> = g.split('.').rev().collect();
    format!("{}.{v}.{kind}", reversed.join("."))
}

// ---------------------------------------------------------------------------------------------
// Paths and operations.

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `CoreV1`, `RbacAuthorizationV1`, `ExampleComV1alpha1`: the group-version part of operation ids.
fn gv_camel(k: &ResourceKind) -> String {
    let group = if k.group.is_empty() {
        "Core".to_string()
    } else {
        k.group
            .trim_end_matches(".k8s.io")
            .split(['.', '-'])
            .map(upper_first)
            .collect::<String>()
    };
    format!("{group}{}", upper_first(&k.version))
}

/// `core_v1`, `rbacAuthorization_v1`: the tag of a group-version's operations.
fn gv_tag(k: &ResourceKind) -> String {
    let camel = gv_camel(k);
    let group = &camel[..camel.len() - k.version.len()];
    let mut chars = group.chars();
    let lower: String = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .into_iter()
        .chain(chars)
        .collect();
    format!("{lower}_{}", k.version)
}

fn article(noun: &str) -> &'static str {
    match noun.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

/// The query parameters of the operations: name, type, description.
const QUERY_PARAMS: &[(&str, &str, &str)] = &[
    (
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag.",
    ),
    (
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server, with the value returned in the previous list response's metadata.continue.",
    ),
    (
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    ),
    (
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. It is required for apply requests (application/apply-patch) and optional otherwise.",
    ),
    (
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    (
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: unknown fields are silently dropped from the object, and all but the last duplicate field are ignored. - Warn: a warning is sent via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered; the request still succeeds if there are no other errors. - Strict: the request fails with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present; the error lists all unknown and duplicate fields encountered.",
    ),
    (
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    ),
    (
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted. Zero means delete immediately.",
    ),
    (
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    (
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata.",
    ),
    (
        "orphanDependents",
        "boolean",
        "Deprecated: please use the PropagationPolicy.",
    ),
    (
        "pretty",
        "string",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    ),
    (
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
    ),
    (
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset.",
    ),
    (
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset.",
    ),
    (
        "sendInitialEvents",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`; the watch stream then begins with synthetic events for the current state of all objects.",
    ),
    (
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
    ),
    (
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ),
];

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const DELETECOLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const DELETE_PARAMS: &[&str] = &["dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];

/// Query parameters declared inline, as kube-apiserver does (kubectl's check for
/// `fieldValidation` looks at the operation's own parameter list).
fn query_params(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .filter_map(|n| QUERY_PARAMS.iter().find(|(name, _, _)| name == n))
        .map(|(name, type_, description)| {
            json!({"name": name, "in": "query", "description": description,
                "schema": {"type": type_, "uniqueItems": true}})
        })
        .collect()
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true,
        "schema": {"type": "string", "uniqueItems": true}})
}

fn responses(codes: &[(&str, &str)], model: &str) -> Value {
    let mut r = Map::new();
    for (code, desc) in codes {
        let content = json!({
            "application/json": {"schema": schema_ref(model)},
            "application/yaml": {"schema": schema_ref(model)},
        });
        r.insert(code.to_string(), json!({"description": desc, "content": content}));
    }
    r.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(r)
}

fn body(model: &str, required: bool) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(model)}}, "required": required})
}

/// The PATCH request body. `strategic_merge` is only offered for built-in kinds with a
/// generated schema: kubectl (1.29+) computes the patch of `kubectl apply` from the schema
/// whenever it is offered, and warns and falls back when a field is missing.
fn patch_body(strategic_merge: bool) -> Value {
    let mut content = Map::new();
    let mut types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if strategic_merge {
        types.push("application/strategic-merge-patch+json");
    }
    for t in types {
        content.insert(t.into(), json!({"schema": schema_ref(PATCH)}));
    }
    json!({"content": content, "required": true})
}

/// The operations kube-apiserver serves for a resource.
#[derive(Clone, Copy, PartialEq)]
enum Verb {
    List,
    Create,
    DeleteCollection,
    Read,
    Replace,
    Delete,
    Patch,
}

/// Where an operation lives: the collection, one object, its status, or the list across all
/// namespaces.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Collection,
    Item,
    Status,
    AllNamespaces,
}

fn operation(k: &ResourceKind, verb: Verb, target: Target, model: &str, list_model: &str) -> Value {
    let kind = k.kind.as_str();
    let gv = gv_camel(k);
    let scope = if k.namespaced && target != Target::AllNamespaces {
        "Namespaced"
    } else {
        ""
    };
    let (sub, sub_id) = if target == Target::Status {
        (" status of", "Status")
    } else {
        ("", "")
    };
    let id = |verb: &str| format!("{verb}{gv}{scope}{kind}{sub_id}");
    let ok = [("200", "OK")];
    let strategic_merge = k.builtin && k.schema.is_none() && definitions().contains_key(model);
    let (action, description, operation_id, parameters, request_body, responses) = match verb {
        Verb::List => (
            "list",
            format!("list or watch objects of kind {kind}"),
            if target == Target::AllNamespaces {
                format!("list{gv}{kind}ForAllNamespaces")
            } else {
                id("list")
            },
            query_params(LIST_PARAMS),
            None,
            responses(&ok, list_model),
        ),
        Verb::Create => (
            "post",
            format!("create {} {kind}", article(kind)),
            id("create"),
            query_params(WRITE_PARAMS),
            Some(body(model, true)),
            responses(&[("200", "OK"), ("201", "Created"), ("202", "Accepted")], model),
        ),
        Verb::DeleteCollection => (
            "deletecollection",
            format!("delete collection of {kind}"),
            format!("delete{gv}Collection{scope}{kind}"),
            query_params(DELETECOLLECTION_PARAMS),
            Some(body(DELETE_OPTIONS, false)),
            responses(&ok, STATUS),
        ),
        Verb::Read => (
            "get",
            format!("read{sub} the specified {kind}"),
            id("read"),
            Vec::new(),
            None,
            responses(&ok, model),
        ),
        Verb::Replace => (
            "put",
            format!("replace{sub} the specified {kind}"),
            id("replace"),
            query_params(WRITE_PARAMS),
            Some(body(model, true)),
            responses(&[("200", "OK"), ("201", "Created")], model),
        ),
        Verb::Delete => (
            "delete",
            format!("delete {} {kind}", article(kind)),
            id("delete"),
            query_params(DELETE_PARAMS),
            Some(body(DELETE_OPTIONS, false)),
            responses(&[("200", "OK"), ("202", "Accepted")], STATUS),
        ),
        Verb::Patch => (
            "patch",
            format!("partially update{sub} the specified {kind}"),
            id("patch"),
            query_params(PATCH_PARAMS),
            Some(patch_body(strategic_merge)),
            responses(&[("200", "OK"), ("201", "Created")], model),
        ),
    };
    let mut op = Map::new();
    op.insert("tags".into(), json!([gv_tag(k)]));
    op.insert("description".into(), description.into());
    op.insert("operationId".into(), operation_id.into());
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }
    if let Some(b) = request_body {
        op.insert("requestBody".into(), b);
    }
    op.insert("responses".into(), responses);
    op.insert("x-kubernetes-action".into(), action.into());
    op.insert("x-kubernetes-group-version-kind".into(), gvk(k, kind));
    Value::Object(op)
}

fn add_paths(paths: &mut Map<String, Value>, k: &ResourceKind, model: &str, list_model: &str) {
    let prefix = if k.group.is_empty() {
        format!("/api/{}", k.version)
    } else {
        format!("/apis/{}/{}", k.group, k.version)
    };
    let collection = if k.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", k.resource)
    } else {
        format!("{prefix}/{}", k.resource)
    };
    let item = format!("{collection}/{{name}}");
    let mut targets = vec![
        (
            collection,
            Target::Collection,
            vec![Verb::List, Verb::Create, Verb::DeleteCollection],
        ),
        (
            item.clone(),
            Target::Item,
            vec![Verb::Read, Verb::Replace, Verb::Delete, Verb::Patch],
        ),
    ];
    if k.has_status() {
        targets.push((
            format!("{item}/status"),
            Target::Status,
            vec![Verb::Read, Verb::Replace, Verb::Patch],
        ));
    }
    if k.namespaced {
        targets.push((
            format!("{prefix}/{}", k.resource),
            Target::AllNamespaces,
            vec![Verb::List],
        ));
    }
    for (path, target, verbs) in targets {
        let mut entry = Map::new();
        for verb in verbs {
            let method = match verb {
                Verb::List | Verb::Read => "get",
                Verb::Create => "post",
                Verb::Replace => "put",
                Verb::Delete | Verb::DeleteCollection => "delete",
                Verb::Patch => "patch",
            };
            entry.insert(method.into(), operation(k, verb, target, model, list_model));
        }
        // Path-level parameters, shared by the operations.
        let mut params = Vec::new();
        if matches!(target, Target::Item | Target::Status) {
            params.push(path_param("name", &format!("name of the {}", k.kind)));
        }
        if k.namespaced && target != Target::AllNamespaces {
            params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        params.extend(query_params(&["pretty"]));
        entry.insert("parameters".into(), params.into());
        paths.insert(path, Value::Object(entry));
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas.

/// apiVersion, kind and metadata, the properties every kind has.
fn type_meta_props() -> [(&'static str, Value); 3] {
    [
        ("apiVersion", json!({"type": "string", "description": API_VERSION_DESC})),
        ("kind", json!({"type": "string", "description": KIND_DESC})),
        (
            "metadata",
            json!({"description": METADATA_DESC, "allOf": [schema_ref(OBJECT_META)]}),
        ),
    ]
}

fn with_type_meta(mut schema: Value) -> Value {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("type").or_insert_with(|| "object".into());
        let props = obj.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            for (name, value) in type_meta_props() {
                props.insert(name.into(), value);
            }
        }
    }
    schema
}

/// The list kind: items of the kind plus list metadata.
fn list_schema(k: &ResourceKind, model: &str) -> Value {
    json!({
        "description": format!("{} is a list of {}", k.list_kind, k.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DESC},
            "items": {
                "type": "array",
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", k.resource),
                "items": schema_ref(model),
            },
            "kind": {"type": "string", "description": KIND_DESC},
            "metadata": {"description": LIST_METADATA_DESC, "allOf": [schema_ref(LIST_META)]},
        },
        "x-kubernetes-group-version-kind": [gvk(k, &k.list_kind)],
    })
}

/// Pushes the schema names `v` references.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(name) = o
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                out.push(name.to_string());
            }
            o.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

// Custom resources.

/// The published schema of a custom resource version: the CRD's schema with apiVersion, kind
/// and metadata replaced by the standard ones, embedded resources completed the same way and
/// int-or-string fields unfolded, as kube-apiserver does.
fn custom_schema(k: &ResourceKind) -> Value {
    let mut schema = match &k.schema {
        Some(s) => s.to_json().clone(),
        None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    if !schema.is_object() {
        schema = json!({"type": "object"});
    }
    unfold(&mut schema);
    with_type_meta(schema)
}

/// Completes `x-kubernetes-embedded-resource` objects with apiVersion/kind/metadata and gives
/// `x-kubernetes-int-or-string` fields their `anyOf`, recursively.
fn unfold(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(unfold);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = obj.get_mut(key) {
            unfold(v);
        }
    }
    if obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !obj.contains_key("anyOf") {
        obj.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    if obj.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
        let props = obj.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            props.insert("kind".into(), json!({"type": "string", "description": "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            props.insert(
                "metadata".into(),
                json!({"description": METADATA_DESC, "allOf": [schema_ref(OBJECT_META)]}),
            );
        }
        let req = obj.entry("required").or_insert_with(|| json!([]));
        if let Some(req) = req.as_array_mut() {
            for f in ["kind", "apiVersion"] {
                if !req.iter().any(|r| r == f) {
                    req.push(f.into());
                }
            }
        }
    }
}

// Built-in kinds.

/// The schema of a built-in kind: its definition plus apiVersion/kind/metadata, or an open
/// object for a kind k8s-openapi has no type for.
fn builtin_schema(model: &str) -> Value {
    match definitions().get(model) {
        Some(def) => with_type_meta(def.clone()),
        None => with_type_meta(json!({"x-kubernetes-preserve-unknown-fields": true})),
    }
}

/// The published schema of the built-in kind `k`; with [`definitions`] it is also where the
/// strategic merge patch metadata of the kind (`x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`) is read from.
pub(crate) fn builtin_kind_schema(k: &ResourceKind) -> Value {
    builtin_schema(&model_name(k, &k.kind))
}

/// The component schemas of the built-in kinds, of the models they use and of the `meta/v1`
/// types the operations reference, by model name (`io.k8s.api.core.v1.ConfigMap`). They are
/// k8s-openapi's, which it generates from Kubernetes' own OpenAPI document, so every field of
/// the types is declared: client-side apply fails on a changed map or list field the schema
/// does not know. [`KUBERNETES_EXTENSIONS`] adds what that document carries beyond the
/// schemas, and the patch strategies found here are also the ones the server merges with.
/// Built once.
pub(crate) fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(generate_definitions)
}

/// The models generated, with whatever they reference: the built-in kinds (all but
/// authentication.k8s.io/v1beta1 SelfSubjectReview, which k8s-openapi no longer has and
/// which stays an open object) and the `meta/v1` types of the operations and list kinds.
const MODELS: &[fn(&mut SchemaGenerator) -> Schema] = &[
    SchemaGenerator::subschema_for::<core::Namespace>,
    SchemaGenerator::subschema_for::<core::ConfigMap>,
    SchemaGenerator::subschema_for::<core::Secret>,
    SchemaGenerator::subschema_for::<core::ServiceAccount>,
    SchemaGenerator::subschema_for::<core::Event>,
    SchemaGenerator::subschema_for::<events::Event>,
    SchemaGenerator::subschema_for::<coordination::Lease>,
    SchemaGenerator::subschema_for::<rbac::Role>,
    SchemaGenerator::subschema_for::<rbac::RoleBinding>,
    SchemaGenerator::subschema_for::<rbac::ClusterRole>,
    SchemaGenerator::subschema_for::<rbac::ClusterRoleBinding>,
    SchemaGenerator::subschema_for::<apiextensions::CustomResourceDefinition>,
    SchemaGenerator::subschema_for::<authorization::SelfSubjectAccessReview>,
    SchemaGenerator::subschema_for::<authorization::SubjectAccessReview>,
    SchemaGenerator::subschema_for::<authorization::LocalSubjectAccessReview>,
    SchemaGenerator::subschema_for::<authentication::TokenReview>,
    SchemaGenerator::subschema_for::<authorization::SelfSubjectRulesReview>,
    SchemaGenerator::subschema_for::<authentication::SelfSubjectReview>,
    SchemaGenerator::subschema_for::<meta::Status>,
    SchemaGenerator::subschema_for::<meta::DeleteOptions>,
    SchemaGenerator::subschema_for::<meta::Patch>,
    SchemaGenerator::subschema_for::<meta::ListMeta>,
];

/// What Kubernetes' OpenAPI document says of a field (or of a model) beyond k8s-openapi's
/// schemas: the extensions that come from Go struct tags and markers (`patchStrategy`,
/// `patchMergeKey`, `+listType`, `+listMapKey`, `+structType`), and the values of a `+enum`
/// type, lost the same way.
#[derive(Clone, Copy)]
enum Ext {
    /// `x-kubernetes-list-type`: `atomic` or `set`.
    ListType(&'static str),
    /// `x-kubernetes-list-type: map`, the items identified by these keys.
    ListMap(&'static [&'static str]),
    /// `x-kubernetes-patch-strategy: merge`, the items identified by the merge key if any
    /// (a list of primitives merges as a set).
    PatchMerge(Option<&'static str>),
    /// `x-kubernetes-map-type: atomic` on a model.
    AtomicStruct,
    /// `x-kubernetes-group-version-kind` of a model that is a kind of its own.
    Kind(&'static str, &'static str, &'static str),
    /// `enum`: the values of a string field.
    Enum(&'static [&'static str]),
}

impl Ext {
    /// The keys this adds to the schema of the field or model.
    fn entries(self) -> Vec<(&'static str, Value)> {
        let merge = ("x-kubernetes-patch-strategy", json!("merge"));
        match self {
            Ext::ListType(t) => vec![("x-kubernetes-list-type", json!(t))],
            Ext::ListMap(keys) => vec![
                ("x-kubernetes-list-type", json!("map")),
                ("x-kubernetes-list-map-keys", json!(keys)),
            ],
            Ext::PatchMerge(None) => vec![merge],
            Ext::PatchMerge(Some(key)) => vec![merge, ("x-kubernetes-patch-merge-key", json!(key))],
            Ext::AtomicStruct => vec![("x-kubernetes-map-type", json!("atomic"))],
            Ext::Kind(group, version, kind) => vec![(
                "x-kubernetes-group-version-kind",
                json!([{"group": group, "version": version, "kind": kind}]),
            )],
            Ext::Enum(values) => vec![("enum", json!(values))],
        }
    }
}

const ATOMIC: Ext = Ext::ListType("atomic");

/// What Kubernetes publishes for the models generated beyond k8s-openapi's schemas: package,
/// model, field ("" for the model itself), extensions. This is the only place the patch
/// strategies are written down; [`SchemaPatchMeta`](faros_machinery::strategic_merge::SchemaPatchMeta)
/// reads them back from the schemas.
#[rustfmt::skip]
const KUBERNETES_EXTENSIONS: &[(&str, &str, &str, &[Ext])] = &[
    (META_V1, "ObjectMeta", "finalizers", &[Ext::ListType("set"), Ext::PatchMerge(None)]),
    (META_V1, "ObjectMeta", "managedFields", &[ATOMIC]),
    (META_V1, "ObjectMeta", "ownerReferences", &[Ext::ListMap(&["uid"]), Ext::PatchMerge(Some("uid"))]),
    (META_V1, "OwnerReference", "", &[Ext::AtomicStruct]),
    (META_V1, "Status", "", &[Ext::Kind("", "v1", "Status")]),
    (META_V1, "Status", "details", &[ATOMIC]),
    (META_V1, "StatusDetails", "causes", &[ATOMIC]),
    (META_V1, "DeleteOptions", "dryRun", &[ATOMIC]),
    (META_V1, "LabelSelector", "", &[Ext::AtomicStruct]),
    (META_V1, "LabelSelector", "matchExpressions", &[ATOMIC]),
    (META_V1, "LabelSelectorRequirement", "values", &[ATOMIC]),
    (META_V1, "FieldSelectorRequirement", "values", &[ATOMIC]),
    (CORE_V1, "NamespaceSpec", "finalizers", &[ATOMIC]),
    (CORE_V1, "NamespaceStatus", "conditions", &[Ext::ListMap(&["type"]), Ext::PatchMerge(Some("type"))]),
    (CORE_V1, "NamespaceStatus", "phase", &[Ext::Enum(&["Active", "Terminating"])]),
    (CORE_V1, "ServiceAccount", "imagePullSecrets", &[ATOMIC]),
    (CORE_V1, "ServiceAccount", "secrets", &[Ext::ListMap(&["name"]), Ext::PatchMerge(Some("name"))]),
    (CORE_V1, "ObjectReference", "", &[Ext::AtomicStruct]),
    (CORE_V1, "LocalObjectReference", "", &[Ext::AtomicStruct]),
    (RBAC_V1, "Role", "rules", &[ATOMIC]),
    (RBAC_V1, "ClusterRole", "rules", &[ATOMIC]),
    (RBAC_V1, "AggregationRule", "clusterRoleSelectors", &[ATOMIC]),
    (RBAC_V1, "PolicyRule", "apiGroups", &[ATOMIC]),
    (RBAC_V1, "PolicyRule", "nonResourceURLs", &[ATOMIC]),
    (RBAC_V1, "PolicyRule", "resourceNames", &[ATOMIC]),
    (RBAC_V1, "PolicyRule", "resources", &[ATOMIC]),
    (RBAC_V1, "PolicyRule", "verbs", &[ATOMIC]),
    (RBAC_V1, "RoleBinding", "subjects", &[ATOMIC]),
    (RBAC_V1, "ClusterRoleBinding", "subjects", &[ATOMIC]),
    (RBAC_V1, "RoleRef", "", &[Ext::AtomicStruct]),
    (RBAC_V1, "Subject", "", &[Ext::AtomicStruct]),
    (AUTHORIZATION_V1, "LabelSelectorAttributes", "requirements", &[ATOMIC]),
    (AUTHORIZATION_V1, "FieldSelectorAttributes", "requirements", &[ATOMIC]),
    (AUTHORIZATION_V1, "SubjectRulesReviewStatus", "nonResourceRules", &[ATOMIC]),
    (AUTHORIZATION_V1, "SubjectRulesReviewStatus", "resourceRules", &[ATOMIC]),
    (AUTHORIZATION_V1, "NonResourceRule", "nonResourceURLs", &[ATOMIC]),
    (AUTHORIZATION_V1, "NonResourceRule", "verbs", &[ATOMIC]),
    (AUTHORIZATION_V1, "ResourceRule", "apiGroups", &[ATOMIC]),
    (AUTHORIZATION_V1, "ResourceRule", "resourceNames", &[ATOMIC]),
    (AUTHORIZATION_V1, "ResourceRule", "resources", &[ATOMIC]),
    (AUTHORIZATION_V1, "ResourceRule", "verbs", &[ATOMIC]),
    (AUTHENTICATION_V1, "UserInfo", "groups", &[ATOMIC]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionSpec", "versions", &[ATOMIC]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionNames", "categories", &[ATOMIC]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionNames", "shortNames", &[ATOMIC]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionVersion", "additionalPrinterColumns", &[ATOMIC]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionVersion", "selectableFields", &[ATOMIC]),
    (APIEXTENSIONS_V1, "WebhookConversion", "conversionReviewVersions", &[ATOMIC]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionStatus", "conditions", &[Ext::ListMap(&["type"])]),
    (APIEXTENSIONS_V1, "CustomResourceDefinitionStatus", "storedVersions", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "allOf", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "anyOf", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "enum", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "oneOf", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "required", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "x-kubernetes-list-map-keys", &[ATOMIC]),
    (APIEXTENSIONS_V1, "JSONSchemaProps", "x-kubernetes-validations", &[Ext::ListMap(&["rule"]), Ext::PatchMerge(Some("rule"))]),
    (APIEXTENSIONS_V1, "ValidationRule", "reason",
        &[Ext::Enum(&["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"])]),
];

const META_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const CORE_V1: &str = "io.k8s.api.core.v1";
const RBAC_V1: &str = "io.k8s.api.rbac.v1";
const AUTHORIZATION_V1: &str = "io.k8s.api.authorization.v1";
const AUTHENTICATION_V1: &str = "io.k8s.api.authentication.v1";
const APIEXTENSIONS_V1: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1";

/// k8s-openapi lists `metadata` as required wherever its Rust field is not an `Option`;
/// Kubernetes only where the Go field is not `omitempty`, which among the models generated
/// is core/v1 Event alone. (`kubectl explain` marks required fields.)
const METADATA_REQUIRED: &[&str] = &["io.k8s.api.core.v1.Event"];

fn generate_definitions() -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    for add in MODELS {
        add(&mut generator);
    }
    let defs = generator.definitions_mut();
    for (package, model, field, exts) in KUBERNETES_EXTENSIONS {
        // A row that lands nowhere is a typo or a type k8s-openapi changed; a test checks
        // that every row lands.
        let def = defs.get_mut(&format!("{package}.{model}"));
        let target = match *field {
            "" => def,
            field => def.and_then(|d| d.pointer_mut(&format!("/properties/{field}"))),
        };
        if let Some(Value::Object(target)) = target {
            for (key, value) in exts.iter().flat_map(|ext| ext.entries()) {
                target.insert(key.into(), value);
            }
        }
    }
    for (name, def) in defs.iter_mut() {
        if let Some(def) = def.as_object_mut()
            && !METADATA_REQUIRED.contains(&name.as_str())
            && let Some(Value::Array(required)) = def.get_mut("required")
        {
            required.retain(|r| r != "metadata");
            if required.is_empty() {
                def.remove("required");
            }
        }
    }
    // The OpenAPI 3 transforms run last: among them the one that turns a `$ref` with siblings
    // (a description, or an extension added above) into `allOf: [{$ref}]`, as kube-apiserver
    // publishes it and kubectl expects.
    generator.take_definitions(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;
    use crate::registry::crd::CrdKinds;
    use faros_machinery::strategic_merge::{ListStrategy, PatchMeta, SchemaPatchMeta};

    fn widget_crd(size_description: &str) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "description": "A widget.",
                        "required": ["spec"],
                        "properties": {
                            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
                            "spec": {"type": "object", "description": "Desired state.",
                                "properties": {
                                    "size": {"type": "integer", "description": size_description},
                                    "port": {"x-kubernetes-int-or-string": true},
                                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                        "x-kubernetes-preserve-unknown-fields": true},
                                    "tags": {"type": "array", "items": {"type": "string"},
                                        "x-kubernetes-list-type": "set"}}},
                            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}}}]},
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        })
    }

    fn kinds_with(crd: &Value) -> Vec<Arc<ResourceKind>> {
        let mut kinds = builtin::kinds();
        kinds.extend(CrdKinds::from_crd(crd).expect("valid CRD").served);
        kinds
    }

    fn kinds() -> Vec<Arc<ResourceKind>> {
        kinds_with(&widget_crd("How big."))
    }

    fn patch_ops<'a>(doc: &'a Value, group: &str, version: &str, kind: &str) -> Vec<&'a Value> {
        let want = json!({"group": group, "version": version, "kind": kind});
        doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|p| p.get("patch"))
            .filter(|op| op["x-kubernetes-group-version-kind"] == want)
            .collect()
    }

    fn has_query_param(op: &Value, name: &str) -> bool {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name && p["in"] == "query")
    }

    #[test]
    fn custom_resource_patch_declares_field_validation() {
        let doc = group_version(&kinds(), "example.com", "v1").unwrap();
        let ops = patch_ops(&doc, "example.com", "v1", "Widget");
        assert_eq!(ops.len(), 2, "item and status PATCH");
        for op in ops {
            for p in ["dryRun", "fieldManager", "fieldValidation", "force"] {
                assert!(has_query_param(op, p), "{p}");
            }
            let fv = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "fieldValidation")
                .unwrap();
            assert_eq!(fv["schema"], json!({"type": "string", "uniqueItems": true}));
            assert!(fv["description"].as_str().unwrap().contains("Strict"));
            assert_eq!(op["x-kubernetes-action"], "patch");
            let content = op["requestBody"]["content"].as_object().unwrap();
            assert!(content.contains_key("application/merge-patch+json"));
            assert!(content.contains_key("application/json-patch+json"));
            assert!(content.contains_key("application/apply-patch+yaml"));
            assert!(!content.contains_key("application/strategic-merge-patch+json"));
        }
        let post = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets"]["post"];
        for p in ["dryRun", "fieldManager", "fieldValidation"] {
            assert!(has_query_param(post, p), "{p}");
        }
        let put = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["put"];
        assert!(has_query_param(put, "fieldValidation"));
    }

    #[test]
    fn builtin_patch_accepts_strategic_merge() {
        let doc = group_version(&kinds(), "", "v1").unwrap();
        let ops = patch_ops(&doc, "", "v1", "ConfigMap");
        assert_eq!(ops.len(), 1);
        assert!(has_query_param(ops[0], "fieldValidation"));
        assert!(
            ops[0]["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some()
        );
        // Namespaces have a status subresource.
        assert_eq!(patch_ops(&doc, "", "v1", "Namespace").len(), 2);
    }

    #[test]
    fn paths_for_namespaced_and_cluster_kinds() {
        let doc = group_version(&kinds(), "example.com", "v1").unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut keys: Vec<&str> = paths.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "/apis/example.com/v1/namespaces/{namespace}/widgets",
                "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}",
                "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status",
                "/apis/example.com/v1/widgets",
            ]
        );
        let all = &paths["/apis/example.com/v1/widgets"]["get"];
        assert_eq!(all["x-kubernetes-action"], "list");
        assert_eq!(all["x-kubernetes-group-version-kind"]["kind"], "Widget");
        assert_eq!(
            all["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/com.example.v1.WidgetList"
        );
        let item = &paths["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"];
        let actions: Vec<&str> = ["get", "put", "patch", "delete"]
            .iter()
            .map(|m| item[*m]["x-kubernetes-action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["get", "put", "patch", "delete"]);
        assert_eq!(
            paths["/apis/example.com/v1/namespaces/{namespace}/widgets"]["delete"]["x-kubernetes-action"],
            "deletecollection"
        );

        let core = group_version(&kinds(), "", "v1").unwrap();
        let cp = core["paths"].as_object().unwrap();
        assert!(cp.contains_key("/api/v1/namespaces"));
        assert!(cp.contains_key("/api/v1/namespaces/{name}"));
        assert!(cp.contains_key("/api/v1/namespaces/{name}/status"));
        assert!(cp.contains_key("/api/v1/namespaces/{namespace}/configmaps/{name}"));
        assert!(cp.contains_key("/api/v1/configmaps"));
        assert_eq!(
            cp["/api/v1/namespaces/{name}"]["get"]["operationId"],
            "readCoreV1Namespace"
        );
        assert_eq!(
            cp["/api/v1/namespaces/{namespace}/configmaps"]["post"]["operationId"],
            "createCoreV1NamespacedConfigMap"
        );
        assert_eq!(
            cp["/api/v1/configmaps"]["get"]["operationId"],
            "listCoreV1ConfigMapForAllNamespaces"
        );
        assert!(group_version(&kinds(), "example.com", "v2").is_none());
    }

    #[test]
    fn custom_resource_schema() {
        let doc = group_version(&kinds(), "example.com", "v1").unwrap();
        let s = &doc["components"]["schemas"]["com.example.v1.Widget"];
        assert_eq!(
            s["x-kubernetes-group-version-kind"],
            json!([{"group": "example.com", "version": "v1", "kind": "Widget"}])
        );
        assert_eq!(s["type"], "object");
        assert_eq!(s["description"], "A widget.");
        assert_eq!(s["required"], json!(["spec"]));
        assert_eq!(s["properties"]["apiVersion"]["description"], API_VERSION_DESC);
        assert_eq!(s["properties"]["kind"]["type"], "string");
        assert_eq!(
            s["properties"]["metadata"]["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}])
        );
        assert_eq!(s["properties"]["spec"]["properties"]["size"]["description"], "How big.");
        assert_eq!(
            s["properties"]["spec"]["properties"]["tags"]["x-kubernetes-list-type"],
            "set"
        );
        assert_eq!(
            s["properties"]["spec"]["properties"]["port"]["anyOf"],
            json!([{"type": "integer"}, {"type": "string"}])
        );
        let template = &s["properties"]["spec"]["properties"]["template"];
        assert!(template["properties"]["metadata"]["allOf"].is_array());
        assert_eq!(template["required"], json!(["kind", "apiVersion"]));
        let list = &doc["components"]["schemas"]["com.example.v1.WidgetList"];
        assert_eq!(list["x-kubernetes-group-version-kind"][0]["kind"], "WidgetList");
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/com.example.v1.Widget"
        );
        // Every reference resolves within the document.
        assert_refs_resolve(&doc);
    }

    fn assert_refs_resolve(doc: &Value) {
        fn walk(v: &Value, schemas: &Map<String, Value>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        let name = r.strip_prefix(REF_PREFIX).expect("local ref");
                        assert!(schemas.contains_key(name), "dangling {r}");
                    }
                    o.values().for_each(|v| walk(v, schemas));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, schemas)),
                _ => {}
            }
        }
        walk(doc, doc["components"]["schemas"].as_object().unwrap());
    }

    #[test]
    fn builtin_schemas() {
        let kinds = kinds();
        for (g, v) in served_gvs(&kinds) {
            let doc = group_version(&kinds, &g, &v).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
            assert_refs_resolve(&doc);
            // Every kind of the GV has exactly one schema carrying its GVK.
            for k in kinds.iter().filter(|k| k.group == g && k.version == v) {
                let want = gvk(k, &k.kind);
                let n = doc["components"]["schemas"]
                    .as_object()
                    .unwrap()
                    .values()
                    .filter(|s| {
                        s["x-kubernetes-group-version-kind"]
                            .as_array()
                            .is_some_and(|a| a.contains(&want))
                    })
                    .count();
                assert_eq!(n, 1, "{}", k.kind);
            }
        }
        let core = group_version(&kinds, "", "v1").unwrap();
        let schemas = &core["components"]["schemas"];
        let cm = &schemas["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(cm["properties"]["data"]["additionalProperties"]["type"], "string");
        assert!(cm["properties"]["data"]["description"].is_string());
        let meta = &schemas[OBJECT_META]["properties"];
        assert_eq!(meta["ownerReferences"]["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(meta["ownerReferences"]["x-kubernetes-patch-merge-key"], "uid");
        assert_eq!(meta["finalizers"]["x-kubernetes-patch-strategy"], "merge");
        for name in [
            "OwnerReference",
            "ManagedFieldsEntry",
            "Status",
            "DeleteOptions",
            "Patch",
            "ListMeta",
        ] {
            assert!(
                schemas
                    .get(format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}"))
                    .is_some(),
                "{name}"
            );
        }
        assert_eq!(
            schemas["io.k8s.api.core.v1.ConfigMapList"]["x-kubernetes-group-version-kind"][0]["kind"],
            "ConfigMapList"
        );
        assert_eq!(
            schemas["io.k8s.api.core.v1.ServiceAccount"]["properties"]["secrets"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        let rbac = group_version(&kinds, "rbac.authorization.k8s.io", "v1").unwrap();
        let rs = &rbac["components"]["schemas"];
        assert!(rs["io.k8s.api.rbac.v1.ClusterRole"]["properties"]["rules"].is_object());
        assert_eq!(rs["io.k8s.api.rbac.v1.RoleBinding"]["required"], json!(["roleRef"]));
        assert!(rs["io.k8s.api.rbac.v1.Subject"]["properties"]["namespace"].is_object());
        let ext = group_version(&kinds, "apiextensions.k8s.io", "v1").unwrap();
        let crd = &ext["components"]["schemas"]["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation"];
        assert_eq!(
            crd["properties"]["openAPIV3Schema"]["allOf"],
            json!([{"$ref": format!("{REF_PREFIX}{APIEXTENSIONS_V1}.JSONSchemaProps")}])
        );
        assert!(
            ext["paths"]
                .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}/status")
                .is_some()
        );
        let lease = group_version(&kinds, "coordination.k8s.io", "v1").unwrap();
        assert!(
            lease["components"]["schemas"]["io.k8s.api.coordination.v1.LeaseSpec"]["properties"]["holderIdentity"]
                .is_object()
        );
    }

    #[test]
    fn definitions_are_named_and_shaped_as_kubernetes_publishes_them() {
        let defs = definitions();
        for (name, def) in defs {
            assert!(name.starts_with("io.k8s."), "{name}");
            assert!(def.get("$schema").is_none(), "{name}");
        }
        // References point into `#/components/schemas/`, and one with a description beside it
        // is wrapped in `allOf`.
        let meta = &defs[OBJECT_META]["properties"];
        assert_eq!(
            meta["creationTimestamp"]["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}])
        );
        assert!(meta["creationTimestamp"]["description"].is_string());
        assert_eq!(
            meta["ownerReferences"]["items"],
            json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"})
        );
        assert_refs_resolve(&json!({"components": {"schemas": defs}}));
        // metadata is required of core/v1 Event only, as in Kubernetes.
        assert!(defs["io.k8s.api.core.v1.ConfigMap"].get("required").is_none());
        assert_eq!(defs[STATUS].get("required"), None);
        assert_eq!(
            defs["io.k8s.api.core.v1.Event"]["required"],
            json!(["involvedObject", "metadata"])
        );
        assert_eq!(
            defs["io.k8s.api.authorization.v1.SelfSubjectAccessReview"]["required"],
            json!(["spec"])
        );
    }

    #[test]
    fn every_builtin_kind_has_a_definition() {
        for k in builtin::kinds() {
            let model = model_name(&k, &k.kind);
            let generated = definitions().contains_key(&model);
            // k8s-openapi no longer has authentication.k8s.io/v1beta1.
            let dropped = k.group == "authentication.k8s.io" && k.version == "v1beta1";
            assert_eq!(generated, !dropped, "{model}");
        }
    }

    #[test]
    fn every_kubernetes_extension_lands() {
        for (package, model, field, exts) in KUBERNETES_EXTENSIONS {
            let def = &definitions()[&format!("{package}.{model}")];
            let target = if field.is_empty() {
                def
            } else {
                &def["properties"][field]
            };
            for (key, value) in exts.iter().flat_map(|ext| ext.entries()) {
                assert_eq!(target[key], value, "{model}.{field} {key}");
            }
        }
    }

    /// The strategic merge strategy of the field at `path` of a built-in kind: None for an
    /// atomic list, else the merge key ("" for a set of primitives).
    fn merge_strategy(group: &str, kind: &str, path: &[&str]) -> Option<String> {
        let kinds = builtin::kinds();
        let k = kinds.iter().find(|k| k.group == group && k.kind == kind).unwrap();
        let schema = builtin_kind_schema(k);
        match SchemaPatchMeta::new(definitions(), &schema).list_strategy(path) {
            ListStrategy::Replace => None,
            ListStrategy::Merge { key } => Some(key.unwrap_or_default().to_string()),
        }
    }

    #[test]
    fn strategic_merge_metadata_of_builtin_kinds() {
        let merge = |key: &str| Some(key.to_string());
        assert_eq!(merge_strategy("", "ServiceAccount", &["secrets"]), merge("name"));
        assert_eq!(merge_strategy("", "ServiceAccount", &["imagePullSecrets"]), None);
        assert_eq!(
            merge_strategy("", "Namespace", &["status", "conditions"]),
            merge("type")
        );
        assert_eq!(merge_strategy("", "Namespace", &["spec", "finalizers"]), None);
        assert_eq!(
            merge_strategy(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                &[
                    "spec",
                    "versions",
                    "schema",
                    "openAPIV3Schema",
                    "properties",
                    "spec",
                    "x-kubernetes-validations"
                ],
            ),
            merge("rule")
        );
        for (group, kind) in [
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "Event"),
            ("", "Namespace"),
            ("coordination.k8s.io", "Lease"),
            ("rbac.authorization.k8s.io", "Role"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
            ("authorization.k8s.io", "SelfSubjectAccessReview"),
        ] {
            assert_eq!(
                merge_strategy(group, kind, &["metadata", "finalizers"]),
                merge(""),
                "{kind}"
            );
            assert_eq!(
                merge_strategy(group, kind, &["metadata", "ownerReferences"]),
                merge("uid"),
                "{kind}"
            );
        }
        // Lists without a patch strategy are atomic, whatever their list type.
        for (group, kind, path) in [
            ("rbac.authorization.k8s.io", "Role", &["rules"][..]),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding", &["subjects"]),
            (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                &["spec", "versions"],
            ),
            (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                &["status", "conditions"],
            ),
        ] {
            assert_eq!(merge_strategy(group, kind, path), None, "{kind} {path:?}");
        }
    }

    #[test]
    fn index_lists_every_group_version() {
        let kinds = kinds();
        let idx = index(&kinds, "/clusters/root:acme/");
        let paths = idx["paths"].as_object().unwrap();
        assert_eq!(paths.len(), served_gvs(&kinds).len());
        for gv in [
            "api/v1",
            "apis/apiextensions.k8s.io/v1",
            "apis/coordination.k8s.io/v1",
            "apis/example.com/v1",
            "apis/rbac.authorization.k8s.io/v1",
        ] {
            assert!(paths.contains_key(gv), "{gv}");
        }
        let url = paths["apis/example.com/v1"]["serverRelativeURL"].as_str().unwrap();
        let doc = group_version(&kinds, "example.com", "v1").unwrap();
        assert_eq!(
            url,
            format!(
                "/clusters/root:acme/openapi/v3/apis/example.com/v1?hash={}",
                document_hash(&doc)
            )
        );
        let root = index(&kinds, "");
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }

    #[test]
    fn hash_changes_when_schema_changes() {
        let url = |kinds: &[Arc<ResourceKind>], gv: &str| index(kinds, "")["paths"][gv]["serverRelativeURL"].clone();
        let before = kinds_with(&widget_crd("How big."));
        let same = kinds_with(&widget_crd("How big."));
        let after = kinds_with(&widget_crd("How large."));
        assert_eq!(url(&before, "apis/example.com/v1"), url(&same, "apis/example.com/v1"));
        assert_ne!(url(&before, "apis/example.com/v1"), url(&after, "apis/example.com/v1"));
        assert_eq!(url(&before, "api/v1"), url(&after, "api/v1"));
        // The order of the kinds does not matter.
        let mut reversed = before.clone();
        reversed.reverse();
        assert_eq!(
            url(&before, "apis/example.com/v1"),
            url(&reversed, "apis/example.com/v1")
        );
        let h = document_hash(&json!({}));
        assert_eq!(h.len(), 32);
        assert_ne!(h, document_hash(&json!({"a": 1})));
    }

    #[test]
    fn gv_paths() {
        assert_eq!(gv_path("", "v1"), "api/v1");
        assert_eq!(gv_path("example.com", "v1"), "apis/example.com/v1");
    }

    #[test]
    fn model_names() {
        let kinds = kinds();
        let name = |kind: &str| {
            let k = kinds.iter().find(|k| k.kind == kind).unwrap();
            model_name(k, &k.kind)
        };
        assert_eq!(name("ConfigMap"), "io.k8s.api.core.v1.ConfigMap");
        assert_eq!(name("Lease"), "io.k8s.api.coordination.v1.Lease");
        assert_eq!(name("ClusterRoleBinding"), "io.k8s.api.rbac.v1.ClusterRoleBinding");
        assert_eq!(
            name("CustomResourceDefinition"),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        );
        assert_eq!(name("Widget"), "com.example.v1.Widget");
    }

    #[test]
    fn v2_stub_formats() {
        let (ct, body) = v2_stub("application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
        assert_eq!(ct, V2_PROTOBUF_CONTENT_TYPE);
        assert!(body.is_empty());
        let (ct, body) = v2_stub("application/json");
        assert_eq!(ct, "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["swagger"], "2.0");
    }
}
