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
//!   or list field the schema does not declare. So only built-in kinds with a hand-written
//!   schema, which declares every field of the type, offer strategic merge; custom resources list
//!   JSON, merge and apply patches only (kubectl then sends a JSON merge patch).

use std::sync::{Arc, OnceLock};

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
/// hand-written schema: kubectl (1.29+) computes the patch of `kubectl apply` from the schema
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

/// The schema of a built-in kind: its hand-written definition plus apiVersion/kind/metadata,
/// or an open object for a kind without one.
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

/// Brings a hand-written definition into kube-apiserver's shape: a `$ref` with sibling keys
/// becomes `allOf: [{$ref}]`, short reference names get the `#/components/schemas/` prefix and
/// objects with properties get `type: object`.
fn finish(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && !r.starts_with('#')
            {
                *r = format!("{REF_PREFIX}{r}");
            }
            if o.len() > 1
                && let Some(r) = o.remove("$ref")
            {
                o.insert("allOf".into(), json!([{"$ref": r}]));
            }
            if o.contains_key("properties") {
                o.entry("type").or_insert_with(|| "object".into());
            }
            o.values_mut().for_each(finish);
        }
        Value::Array(a) => a.iter_mut().for_each(finish),
        _ => {}
    }
}

/// Hand-written definitions of `meta/v1` and of the built-in kinds (without apiVersion, kind and
/// metadata, which [`with_type_meta`] adds) and their parts. Every field of the Kubernetes types
/// is declared, because client-side apply fails on a changed map or list field the schema does
/// not know, and their patch strategies are also the ones the server merges with; descriptions
/// are kept short. Built once.
pub(crate) fn definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut defs = Map::new();
        for (name, mut def) in meta_definitions()
            .into_iter()
            .chain(builtin_definitions())
            .chain(crd_definitions())
        {
            finish(&mut def);
            defs.insert(name.to_string(), def);
        }
        defs
    })
}

fn string() -> Value {
    json!({"type": "string"})
}
const TIME: &str = "date-time";

fn meta_definitions() -> Vec<(&'static str, Value)> {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let mut annotations = string_map.clone();
    annotations["description"] = "Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations".into();
    let mut labels = string_map;
    labels["description"] = "Map of string keys and values that can be used to organize and categorize (scope and select) objects. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels".into();
    vec![
        (
            OBJECT_META,
            json!({
                "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
                "properties": {
                    "annotations": annotations,
                    "creationTimestamp": {"type": "string", "format": TIME, "description": "CreationTimestamp is a timestamp representing the server time when this object was created. Set by the system. Read-only."},
                    "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system. Only set when deletionTimestamp is also set. Read-only."},
                    "deletionTimestamp": {"type": "string", "format": TIME, "description": "DeletionTimestamp is the time after which this resource will be deleted. Set by the server when a graceful deletion is requested. Read-only."},
                    "finalizers": {"type": "array", "items": string(), "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge",
                        "description": "Must be empty before the object is deleted from the registry. Each entry is an identifier for the responsible component that will remove the entry from the list."},
                    "generateName": {"type": "string", "description": "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."},
                    "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state. Set by the system. Read-only."},
                    "labels": labels,
                    "managedFields": {"type": "array", "items": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"}, "x-kubernetes-list-type": "atomic",
                        "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow. This is mostly for internal housekeeping."},
                    "name": {"type": "string", "description": "Name must be unique within a namespace. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"},
                    "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces"},
                    "ownerReferences": {"type": "array", "items": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"},
                        "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map",
                        "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge",
                        "description": "List of objects depended by this object. If ALL objects in the list have been deleted, this object will be garbage collected."},
                    "resourceVersion": {"type": "string", "description": "An opaque value that represents the internal version of this object. Set by the system. Read-only."},
                    "selfLink": {"type": "string", "description": "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."},
                    "uid": {"type": "string", "description": "UID is the unique in time and space value for this object. Set by the system. Read-only."},
                },
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
            json!({
                "description": "OwnerReference contains enough information to let you identify an owning object. The owner must be in the same namespace as the dependent, or be cluster-scoped.",
                "required": ["apiVersion", "kind", "name", "uid"],
                "x-kubernetes-map-type": "atomic",
                "properties": {
                    "apiVersion": {"type": "string", "description": "API version of the referent."},
                    "blockOwnerDeletion": {"type": "boolean", "description": "If true, AND if the owner has the \"foregroundDeletion\" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed."},
                    "controller": {"type": "boolean", "description": "If true, this reference points to the managing controller."},
                    "kind": {"type": "string", "description": "Kind of the referent."},
                    "name": {"type": "string", "description": "Name of the referent."},
                    "uid": {"type": "string", "description": "UID of the referent."},
                },
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
            json!({
                "description": "ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to.",
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the version of this resource that this field set applies to."},
                    "fieldsType": {"type": "string", "description": "FieldsType is the discriminator for the different fields format and version. The only value is \"FieldsV1\"."},
                    "fieldsV1": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1", "description": "FieldsV1 holds the first JSON version format as described in the \"FieldsV1\" type."},
                    "manager": {"type": "string", "description": "Manager is an identifier of the workflow managing these fields."},
                    "operation": {"type": "string", "description": "Operation is the type of operation which lead to this ManagedFieldsEntry being created: 'Apply' or 'Update'."},
                    "subresource": {"type": "string", "description": "Subresource is the name of the subresource used to update that object, or empty string if the object was updated through the main resource."},
                    "time": {"type": "string", "format": TIME, "description": "Time is the timestamp of when the ManagedFields entry was added."},
                },
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
            json!({"type": "object", "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format."}),
        ),
        (
            LIST_META,
            json!({
                "description": "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
                "properties": {
                    "continue": {"type": "string", "description": "continue may be set if the user set a limit on the number of items returned, and indicates that the server has more data available."},
                    "remainingItemCount": {"type": "integer", "format": "int64", "description": "remainingItemCount is the number of subsequent items in the list which are not included in this list response."},
                    "resourceVersion": {"type": "string", "description": "String that identifies the server's internal version of this object."},
                    "selfLink": {"type": "string", "description": "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."},
                },
            }),
        ),
        (
            STATUS,
            json!({
                "description": "Status is a return value for calls that don't return other objects.",
                "properties": {
                    "apiVersion": {"type": "string", "description": API_VERSION_DESC},
                    "code": {"type": "integer", "format": "int32", "description": "Suggested HTTP return code for this status, 0 if not set."},
                    "details": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails", "x-kubernetes-list-type": "atomic", "description": "Extended data associated with the reason."},
                    "kind": {"type": "string", "description": KIND_DESC},
                    "message": {"type": "string", "description": "A human-readable description of the status of this operation."},
                    "metadata": {"$ref": LIST_META, "description": LIST_METADATA_DESC},
                    "reason": {"type": "string", "description": "A machine-readable description of why this operation is in the \"Failure\" status."},
                    "status": {"type": "string", "description": "Status of the operation. One of: \"Success\" or \"Failure\"."},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}],
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails",
            json!({
                "description": "StatusDetails is a set of additional properties that MAY be set by the server to provide additional information about a response.",
                "properties": {
                    "causes": {"type": "array", "items": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.StatusCause"}, "x-kubernetes-list-type": "atomic", "description": "The Causes array includes more details associated with the failure."},
                    "group": {"type": "string", "description": "The group attribute of the resource associated with the status."},
                    "kind": {"type": "string", "description": "The kind attribute of the resource associated with the status."},
                    "name": {"type": "string", "description": "The name attribute of the resource associated with the status (when there is a single name which can be described)."},
                    "retryAfterSeconds": {"type": "integer", "format": "int32", "description": "If specified, the time in seconds before the operation should be retried."},
                    "uid": {"type": "string", "description": "UID of the resource."},
                },
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.StatusCause",
            json!({
                "description": "StatusCause provides more information about an api.Status failure, including cases when multiple errors are encountered.",
                "properties": {
                    "field": {"type": "string", "description": "The field of the resource that has caused this error, as named by its JSON serialization."},
                    "message": {"type": "string", "description": "A human-readable description of the cause of the error."},
                    "reason": {"type": "string", "description": "A machine-readable description of the cause of the error."},
                },
            }),
        ),
        (
            DELETE_OPTIONS,
            json!({
                "description": "DeleteOptions may be provided when deleting an API object.",
                "properties": {
                    "apiVersion": {"type": "string", "description": API_VERSION_DESC},
                    "dryRun": {"type": "array", "items": string(), "x-kubernetes-list-type": "atomic", "description": "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"},
                    "gracePeriodSeconds": {"type": "integer", "format": "int64", "description": "The duration in seconds before the object should be deleted. Zero means delete immediately."},
                    "kind": {"type": "string", "description": KIND_DESC},
                    "orphanDependents": {"type": "boolean", "description": "Deprecated: please use the PropagationPolicy."},
                    "preconditions": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions", "description": "Must be fulfilled before a deletion is carried out."},
                    "propagationPolicy": {"type": "string", "description": "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."},
                },
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.Preconditions",
            json!({
                "description": "Preconditions must be fulfilled before an operation (update, delete, etc.) is carried out.",
                "properties": {
                    "resourceVersion": {"type": "string", "description": "Specifies the target ResourceVersion"},
                    "uid": {"type": "string", "description": "Specifies the target UID."},
                },
            }),
        ),
        (
            PATCH,
            json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
            json!({
                "description": "A label selector is a label query over a set of resources. The result of matchLabels and matchExpressions are ANDed. An empty label selector matches all objects. A null label selector matches no objects.",
                "x-kubernetes-map-type": "atomic",
                "properties": {
                    "matchExpressions": {"type": "array", "items": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement"}, "x-kubernetes-list-type": "atomic", "description": "matchExpressions is a list of label selector requirements. The requirements are ANDed."},
                    "matchLabels": {"type": "object", "additionalProperties": string(), "description": "matchLabels is a map of {key,value} pairs, each equivalent to a matchExpressions element with operator \"In\" and that single value. The requirements are ANDed."},
                },
            }),
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
            json!({
                "description": "A label selector requirement is a selector that contains values, a key, and an operator that relates the key and values.",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string", "description": "key is the label key that the selector applies to."},
                    "operator": {"type": "string", "description": "operator represents a key's relationship to a set of values. Valid operators are In, NotIn, Exists and DoesNotExist."},
                    "values": {"type": "array", "items": string(), "x-kubernetes-list-type": "atomic", "description": "values is an array of string values. Must be non-empty for In and NotIn, empty for Exists and DoesNotExist."},
                },
            }),
        ),
    ]
}

fn builtin_definitions() -> Vec<(&'static str, Value)> {
    let object_reference = json!({
        "description": "ObjectReference contains enough information to let you inspect or modify the referred object.",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the referent."},
            "fieldPath": {"type": "string", "description": "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."},
            "kind": {"type": "string", "description": "Kind of the referent. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
            "name": {"type": "string", "description": "Name of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names"},
            "namespace": {"type": "string", "description": "Namespace of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/"},
            "resourceVersion": {"type": "string", "description": "Specific resourceVersion to which this reference is made, if any."},
            "uid": {"type": "string", "description": "UID of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#uids"},
        },
    });
    let bytes_map = json!({"type": "object", "additionalProperties": {"type": "string", "format": "byte"}});
    let strings = json!({"type": "array", "items": string(), "x-kubernetes-list-type": "atomic"});
    let with = |mut v: Value, desc: &str| {
        v["description"] = desc.into();
        v
    };
    vec![
        (
            "io.k8s.api.core.v1.ConfigMap",
            json!({
                "description": "ConfigMap holds configuration data for pods to consume.",
                "properties": {
                    "binaryData": with(bytes_map.clone(), "BinaryData contains the binary data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values are base64 encoded and may hold bytes outside UTF-8. Keys must not overlap with those in Data."),
                    "data": {"type": "object", "additionalProperties": string(), "description": "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. Keys must not overlap with those in BinaryData."},
                    "immutable": {"type": "boolean", "description": "Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified)."},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.Secret",
            json!({
                "description": "Secret holds secret data of a certain type.",
                "properties": {
                    "data": with(bytes_map, "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values are base64 encoded."),
                    "immutable": {"type": "boolean", "description": "Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified)."},
                    "stringData": {"type": "object", "additionalProperties": string(), "description": "stringData allows specifying non-binary secret data in string form. It is a write-only convenience field: its entries are merged into data on write."},
                    "type": {"type": "string", "description": "Used to facilitate programmatic handling of secret data, e.g. Opaque or kubernetes.io/service-account-token."},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.Namespace",
            json!({
                "description": "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
                "properties": {
                    "spec": {"$ref": "io.k8s.api.core.v1.NamespaceSpec", "description": "Spec defines the behavior of the Namespace."},
                    "status": {"$ref": "io.k8s.api.core.v1.NamespaceStatus", "description": "Status describes the current status of a Namespace."},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.NamespaceSpec",
            json!({
                "description": "NamespaceSpec describes the attributes on a Namespace.",
                "properties": {
                    "finalizers": with(strings.clone(), "Finalizers is an opaque list of values that must be empty to permanently remove object from storage."),
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.NamespaceStatus",
            json!({
                "description": "NamespaceStatus is information about the current status of a Namespace.",
                "properties": {
                    "conditions": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.NamespaceCondition"},
                        "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
                        "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge",
                        "description": "Represents the latest available observations of a namespace's current state."},
                    "phase": {"type": "string", "enum": ["Active", "Terminating"], "description": "Phase is the current lifecycle phase of the namespace."},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.NamespaceCondition",
            json!({
                "description": "NamespaceCondition contains details about state of namespace.",
                "required": ["type", "status"],
                "properties": {
                    "lastTransitionTime": {"type": "string", "format": TIME, "description": "Last time the condition transitioned from one status to another."},
                    "message": {"type": "string", "description": "Human-readable message indicating details about last transition."},
                    "reason": {"type": "string", "description": "Unique, one-word, CamelCase reason for the condition's last transition."},
                    "status": {"type": "string", "description": "Status of the condition, one of True, False, Unknown."},
                    "type": {"type": "string", "description": "Type of namespace controller condition."},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.ServiceAccount",
            json!({
                "description": "ServiceAccount binds together: a name, understood by users and perhaps by peripheral systems, for an identity; a principal that can be authenticated and authorized; a set of secrets.",
                "properties": {
                    "automountServiceAccountToken": {"type": "boolean", "description": "AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted."},
                    "imagePullSecrets": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.LocalObjectReference"}, "x-kubernetes-list-type": "atomic",
                        "description": "ImagePullSecrets is a list of references to secrets in the same namespace to use for pulling any images in pods that reference this ServiceAccount."},
                    "secrets": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.ObjectReference"},
                        "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
                        "description": "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."},
                },
            }),
        ),
        ("io.k8s.api.core.v1.ObjectReference", object_reference),
        (
            "io.k8s.api.core.v1.LocalObjectReference",
            json!({
                "description": "LocalObjectReference contains enough information to let you locate the referenced object inside the same namespace.",
                "x-kubernetes-map-type": "atomic",
                "properties": {"name": {"type": "string", "description": "Name of the referent. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#names"}},
            }),
        ),
        (
            "io.k8s.api.core.v1.Event",
            json!({
                "description": "Event is a report of an event somewhere in the cluster.",
                "required": ["metadata", "involvedObject"],
                "properties": {
                    "action": {"type": "string", "description": "What action was taken/failed regarding to the Regarding object."},
                    "count": {"type": "integer", "format": "int32", "description": "The number of times this event has occurred."},
                    "eventTime": {"type": "string", "format": TIME, "description": "Time when this Event was first observed (with microsecond precision)."},
                    "firstTimestamp": {"type": "string", "format": TIME, "description": "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"},
                    "involvedObject": {"$ref": "io.k8s.api.core.v1.ObjectReference", "description": "The object that this event is about."},
                    "lastTimestamp": {"type": "string", "format": TIME, "description": "The time at which the most recent occurrence of this event was recorded."},
                    "message": {"type": "string", "description": "A human-readable description of the status of this operation."},
                    "reason": {"type": "string", "description": "A short, machine understandable string that gives the reason for the transition into the object's current status."},
                    "related": {"$ref": "io.k8s.api.core.v1.ObjectReference", "description": "Optional secondary object for more complex actions."},
                    "reportingComponent": {"type": "string", "description": "Name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`."},
                    "reportingInstance": {"type": "string", "description": "ID of the controller instance, e.g. `kubelet-xyzf`."},
                    "series": {"$ref": "io.k8s.api.core.v1.EventSeries", "description": "Data about the Event series this event represents or nil if it's a singleton Event."},
                    "source": {"$ref": "io.k8s.api.core.v1.EventSource", "description": "The component reporting this event."},
                    "type": {"type": "string", "description": "Type of this event (Normal, Warning), new types could be added in the future"},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.EventSeries",
            json!({
                "description": "EventSeries contain information on series of events, i.e. thing that was/is happening continuously for some time.",
                "properties": {
                    "count": {"type": "integer", "format": "int32", "description": "Number of occurrences in this series up to the last heartbeat time"},
                    "lastObservedTime": {"type": "string", "format": TIME, "description": "Time of the last occurrence observed"},
                },
            }),
        ),
        (
            "io.k8s.api.core.v1.EventSource",
            json!({
                "description": "EventSource contains information for an event.",
                "properties": {
                    "component": {"type": "string", "description": "Component from which the event is generated."},
                    "host": {"type": "string", "description": "Node name on which the event is generated."},
                },
            }),
        ),
        (
            "io.k8s.api.coordination.v1.Lease",
            json!({
                "description": "Lease defines a lease concept.",
                "properties": {
                    "spec": {"$ref": "io.k8s.api.coordination.v1.LeaseSpec", "description": "spec contains the specification of the Lease. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status"},
                },
            }),
        ),
        (
            "io.k8s.api.coordination.v1.LeaseSpec",
            json!({
                "description": "LeaseSpec is a specification of a Lease.",
                "properties": {
                    "acquireTime": {"type": "string", "format": TIME, "description": "acquireTime is a time when the current lease was acquired."},
                    "holderIdentity": {"type": "string", "description": "holderIdentity contains the identity of the holder of a current lease."},
                    "leaseDurationSeconds": {"type": "integer", "format": "int32", "description": "leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it."},
                    "leaseTransitions": {"type": "integer", "format": "int32", "description": "leaseTransitions is the number of transitions of a lease between holders."},
                    "preferredHolder": {"type": "string", "description": "PreferredHolder signals to a lease holder that the lease has a more optimal holder and should be given up."},
                    "renewTime": {"type": "string", "format": TIME, "description": "renewTime is a time when the current holder of a lease has last updated the lease."},
                    "strategy": {"type": "string", "description": "Strategy indicates the strategy for picking the leader for coordinated leader election."},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.Role",
            json!({
                "description": "Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding.",
                "properties": {
                    "rules": {"type": "array", "items": {"$ref": "io.k8s.api.rbac.v1.PolicyRule"}, "x-kubernetes-list-type": "atomic", "description": "Rules holds all the PolicyRules for this Role"},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.ClusterRole",
            json!({
                "description": "ClusterRole is a cluster level, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding or ClusterRoleBinding.",
                "properties": {
                    "aggregationRule": {"$ref": "io.k8s.api.rbac.v1.AggregationRule", "description": "AggregationRule is an optional field that describes how to build the Rules for this ClusterRole. If set, the Rules are controller managed."},
                    "rules": {"type": "array", "items": {"$ref": "io.k8s.api.rbac.v1.PolicyRule"}, "x-kubernetes-list-type": "atomic", "description": "Rules holds all the PolicyRules for this ClusterRole"},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.PolicyRule",
            json!({
                "description": "PolicyRule holds information that describes a policy rule, but does not contain information about who the rule applies to or which namespace the rule applies to.",
                "required": ["verbs"],
                "properties": {
                    "apiGroups": with(strings.clone(), "APIGroups is the name of the APIGroup that contains the resources. \"\" represents the core API group and \"*\" represents all API groups."),
                    "nonResourceURLs": with(strings.clone(), "NonResourceURLs is a set of partial urls that a user should have access to. *s are allowed, but only as the full, final step in the path."),
                    "resourceNames": with(strings.clone(), "ResourceNames is an optional white list of names that the rule applies to. An empty set means that everything is allowed."),
                    "resources": with(strings.clone(), "Resources is a list of resources this rule applies to. '*' represents all resources."),
                    "verbs": with(strings.clone(), "Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. '*' represents all verbs."),
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.AggregationRule",
            json!({
                "description": "AggregationRule describes how to locate ClusterRoles to aggregate into the ClusterRole",
                "properties": {
                    "clusterRoleSelectors": {"type": "array", "items": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"}, "x-kubernetes-list-type": "atomic",
                        "description": "ClusterRoleSelectors holds a list of selectors which will be used to find ClusterRoles and create the rules."},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.RoleBinding",
            json!({
                "description": "RoleBinding references a role, but does not contain it. It can reference a Role in the same namespace or a ClusterRole in the global namespace.",
                "required": ["roleRef"],
                "properties": {
                    "roleRef": {"$ref": "io.k8s.api.rbac.v1.RoleRef", "description": "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. This field is immutable."},
                    "subjects": {"type": "array", "items": {"$ref": "io.k8s.api.rbac.v1.Subject"}, "x-kubernetes-list-type": "atomic", "description": "Subjects holds references to the objects the role applies to."},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.ClusterRoleBinding",
            json!({
                "description": "ClusterRoleBinding references a ClusterRole, but not contain it. It can reference a ClusterRole in the global namespace, and adds who information via Subject.",
                "required": ["roleRef"],
                "properties": {
                    "roleRef": {"$ref": "io.k8s.api.rbac.v1.RoleRef", "description": "RoleRef can only reference a ClusterRole in the global namespace. This field is immutable."},
                    "subjects": {"type": "array", "items": {"$ref": "io.k8s.api.rbac.v1.Subject"}, "x-kubernetes-list-type": "atomic", "description": "Subjects holds references to the objects the role applies to."},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.RoleRef",
            json!({
                "description": "RoleRef contains information that points to the role being used",
                "required": ["apiGroup", "kind", "name"],
                "x-kubernetes-map-type": "atomic",
                "properties": {
                    "apiGroup": {"type": "string", "description": "APIGroup is the group for the resource being referenced"},
                    "kind": {"type": "string", "description": "Kind is the type of resource being referenced"},
                    "name": {"type": "string", "description": "Name is the name of resource being referenced"},
                },
            }),
        ),
        (
            "io.k8s.api.rbac.v1.Subject",
            json!({
                "description": "Subject contains a reference to the object or user identities a role binding applies to.",
                "required": ["kind", "name"],
                "x-kubernetes-map-type": "atomic",
                "properties": {
                    "apiGroup": {"type": "string", "description": "APIGroup holds the API group of the referenced subject. Defaults to \"\" for ServiceAccount subjects and \"rbac.authorization.k8s.io\" for User and Group subjects."},
                    "kind": {"type": "string", "description": "Kind of object being referenced: \"User\", \"Group\" or \"ServiceAccount\"."},
                    "name": {"type": "string", "description": "Name of the object being referenced."},
                    "namespace": {"type": "string", "description": "Namespace of the referenced object. Must be empty for non-namespaced kinds such as \"User\" or \"Group\"."},
                },
            }),
        ),
    ]
}

/// CustomResourceDefinition and its parts. The JSON schema of a version is left open.
fn crd_definitions() -> Vec<(&'static str, Value)> {
    let strings = json!({"type": "array", "items": string(), "x-kubernetes-list-type": "atomic"});
    let with = |mut v: Value, desc: &str| {
        v["description"] = desc.into();
        v
    };
    vec![
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
            json!({
                "description": "CustomResourceDefinition represents a resource that should be exposed on the API server. Its name MUST be in the format <.spec.name>.<.spec.group>.",
                "required": ["spec"],
                "properties": {
                    "spec": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec", "description": "spec describes how the user wants the resources to appear"},
                    "status": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus", "description": "status indicates the actual state of the CustomResourceDefinition"},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec",
            json!({
                "description": "CustomResourceDefinitionSpec describes how a user wants their resource to appear",
                "required": ["group", "names", "scope", "versions"],
                "properties": {
                    "conversion": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceConversion", "description": "conversion defines conversion settings for the CRD."},
                    "group": {"type": "string", "description": "group is the API group of the defined custom resource. The custom resources are served under `/apis/<group>/...`."},
                    "names": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames", "description": "names specify the resource and kind names for the custom resource."},
                    "preserveUnknownFields": {"type": "boolean", "description": "preserveUnknownFields indicates that object fields which are not specified in the OpenAPI schema should be preserved when persisting to storage. Must be false in v1."},
                    "scope": {"type": "string", "description": "scope indicates whether the defined custom resource is cluster- or namespace-scoped. Allowed values are `Cluster` and `Namespaced`."},
                    "versions": {"type": "array", "items": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion"}, "x-kubernetes-list-type": "atomic",
                        "description": "versions is the list of all API versions of the defined custom resource."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames",
            json!({
                "description": "CustomResourceDefinitionNames indicates the names to serve this CustomResourceDefinition",
                "required": ["plural", "kind"],
                "properties": {
                    "categories": with(strings.clone(), "categories is a list of grouped resources this custom resource belongs to (e.g. 'all'), used by clients for invocations like `kubectl get all`."),
                    "kind": {"type": "string", "description": "kind is the serialized kind of the resource. It is normally CamelCase and singular."},
                    "listKind": {"type": "string", "description": "listKind is the serialized kind of the list for this resource. Defaults to \"`kind`List\"."},
                    "plural": {"type": "string", "description": "plural is the plural name of the resource to serve; it must match the name of the CustomResourceDefinition (`<names.plural>.<group>`)."},
                    "shortNames": with(strings.clone(), "shortNames are short names for the resource, used by clients for invocations like `kubectl get <shortname>`."),
                    "singular": {"type": "string", "description": "singular is the singular name of the resource. Defaults to lowercased `kind`."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion",
            json!({
                "description": "CustomResourceDefinitionVersion describes a version for CRD.",
                "required": ["name", "served", "storage"],
                "properties": {
                    "additionalPrinterColumns": {"type": "array", "items": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceColumnDefinition"}, "x-kubernetes-list-type": "atomic",
                        "description": "additionalPrinterColumns specifies additional columns returned in Table output."},
                    "deprecated": {"type": "boolean", "description": "deprecated indicates this version of the custom resource API is deprecated."},
                    "deprecationWarning": {"type": "string", "description": "deprecationWarning overrides the default warning returned to API clients."},
                    "name": {"type": "string", "description": "name is the version name, e.g. “v1”, “v2beta1”, etc."},
                    "schema": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation", "description": "schema describes the schema used for validation, pruning, and defaulting of this version of the custom resource."},
                    "selectableFields": {"type": "array", "items": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.SelectableField"}, "x-kubernetes-list-type": "atomic",
                        "description": "selectableFields specifies paths to fields that may be used as field selectors."},
                    "served": {"type": "boolean", "description": "served is a flag enabling/disabling this version from being served via REST APIs"},
                    "storage": {"type": "boolean", "description": "storage indicates this version should be used when persisting custom resources to storage. Exactly one version must have storage=true."},
                    "subresources": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresources", "description": "subresources specify what subresources this version of the defined custom resource have."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceValidation",
            json!({
                "description": "CustomResourceValidation is a list of validation methods for CustomResources.",
                "properties": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "openAPIV3Schema is the OpenAPI v3 schema to use for validation and pruning."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresources",
            json!({
                "description": "CustomResourceSubresources defines the status and scale subresources for CustomResources.",
                "properties": {
                    "scale": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceScale", "description": "scale indicates the custom resource should serve a `/scale` subresource that returns an `autoscaling/v1` Scale object."},
                    "status": {"type": "object", "description": "status indicates the custom resource should serve a `/status` subresource; the main resource then ignores changes to status and the subresource ignores changes to anything else."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceScale",
            json!({
                "description": "CustomResourceSubresourceScale defines how to serve the scale subresource for CustomResources.",
                "required": ["specReplicasPath", "statusReplicasPath"],
                "properties": {
                    "labelSelectorPath": {"type": "string", "description": "labelSelectorPath defines the JSON path inside of a custom resource that corresponds to Scale `status.selector`."},
                    "specReplicasPath": {"type": "string", "description": "specReplicasPath defines the JSON path inside of a custom resource that corresponds to Scale `spec.replicas`."},
                    "statusReplicasPath": {"type": "string", "description": "statusReplicasPath defines the JSON path inside of a custom resource that corresponds to Scale `status.replicas`."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceColumnDefinition",
            json!({
                "description": "CustomResourceColumnDefinition specifies a column for server side printing.",
                "required": ["name", "type", "jsonPath"],
                "properties": {
                    "description": {"type": "string", "description": "description is a human readable description of this column."},
                    "format": {"type": "string", "description": "format is an optional OpenAPI type definition for this column."},
                    "jsonPath": {"type": "string", "description": "jsonPath is a simple JSON path which is evaluated against each custom resource to produce the value for this column."},
                    "name": {"type": "string", "description": "name is a human readable name for the column."},
                    "priority": {"type": "integer", "format": "int32", "description": "priority is an integer defining the relative importance of this column compared to others. Lower numbers are considered higher priority."},
                    "type": {"type": "string", "description": "type is an OpenAPI type definition for this column."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.SelectableField",
            json!({
                "description": "SelectableField specifies the JSON path of a field that may be used with field selectors.",
                "required": ["jsonPath"],
                "properties": {
                    "jsonPath": {"type": "string", "description": "jsonPath is a simple JSON path which is evaluated against each custom resource to produce a field selector value."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceConversion",
            json!({
                "description": "CustomResourceConversion describes how to convert different versions of a CR.",
                "required": ["strategy"],
                "properties": {
                    "strategy": {"type": "string", "description": "strategy specifies how custom resources are converted between versions: \"None\" or \"Webhook\"."},
                    "webhook": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookConversion", "description": "webhook describes how to call the conversion webhook. Required when `strategy` is \"Webhook\"."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookConversion",
            json!({
                "description": "WebhookConversion describes how to call a conversion webhook",
                "required": ["conversionReviewVersions"],
                "properties": {
                    "clientConfig": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookClientConfig", "description": "clientConfig is the instructions for how to call the webhook if strategy is `Webhook`."},
                    "conversionReviewVersions": with(strings.clone(), "conversionReviewVersions is an ordered list of preferred `ConversionReview` versions the Webhook expects."),
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookClientConfig",
            json!({
                "description": "WebhookClientConfig contains the information to make a TLS connection with the webhook.",
                "properties": {
                    "caBundle": {"type": "string", "format": "byte", "description": "caBundle is a PEM encoded CA bundle which will be used to validate the webhook's server certificate."},
                    "service": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ServiceReference", "description": "service is a reference to the service for this webhook. Either service or url must be specified."},
                    "url": {"type": "string", "description": "url gives the location of the webhook, in standard URL form (`scheme://host:port/path`). Exactly one of `url` or `service` must be specified."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ServiceReference",
            json!({
                "description": "ServiceReference holds a reference to Service.legacy.k8s.io",
                "required": ["namespace", "name"],
                "properties": {
                    "name": {"type": "string", "description": "name is the name of the service. Required"},
                    "namespace": {"type": "string", "description": "namespace is the namespace of the service. Required"},
                    "path": {"type": "string", "description": "path is an optional URL path at which the webhook will be contacted."},
                    "port": {"type": "integer", "format": "int32", "description": "port is an optional service port at which the webhook will be contacted. Defaults to 443."},
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
            json!({
                "description": "CustomResourceDefinitionStatus indicates the state of the CustomResourceDefinition",
                "properties": {
                    "acceptedNames": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames", "description": "acceptedNames are the names that are actually being used to serve discovery."},
                    "conditions": {"type": "array", "items": {"$ref": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionCondition"},
                        "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
                        "description": "conditions indicate state for particular aspects of a CustomResourceDefinition"},
                    "storedVersions": with(strings, "storedVersions lists all versions of CustomResources that were ever persisted."),
                },
            }),
        ),
        (
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionCondition",
            json!({
                "description": "CustomResourceDefinitionCondition contains details for the current condition of this CustomResourceDefinition.",
                "required": ["type", "status"],
                "properties": {
                    "lastTransitionTime": {"type": "string", "format": TIME, "description": "lastTransitionTime last time the condition transitioned from one status to another."},
                    "message": {"type": "string", "description": "message is a human-readable message indicating details about last transition."},
                    "reason": {"type": "string", "description": "reason is a unique, one-word, CamelCase reason for the condition's last transition."},
                    "status": {"type": "string", "description": "status is the status of the condition. Can be True, False, Unknown."},
                    "type": {"type": "string", "description": "type is the type of the condition. Types include Established, NamesAccepted and Terminating."},
                },
            }),
        ),
    ]
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
            crd["properties"]["openAPIV3Schema"]["x-kubernetes-preserve-unknown-fields"],
            true
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
