//! The catalog of what the hub serves. A kind is data ([`ResourceKind`]) plus a few hooks
//! ([`Strategy`]); the one generic REST path in `apiserver` serves every kind from it.
//! Built-in kinds are static; custom resources are derived from the CRDs stored in each
//! logical cluster, memoised per CRD revision.

pub mod builtin;
pub mod crd;
mod decoded;
mod events;
mod pods;
mod same_tree;
pub mod system;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use faros_machinery::schema::StructuralSchema;
use faros_machinery::status::FieldError;
use faros_machinery::table::{PrinterColumn, TableConvertor};
use faros_machinery::validation::NameRule;
use faros_storage::{Cache, EventKind, Key, Prefix};

use decoded::PerRevision;
#[cfg(test)]
pub(crate) use decoded::fields_of;
pub(crate) use decoded::{BindingFields, ExportFields, Memo};

/// What a create hook may need to know about where the object is being written.
pub struct WriteEnv<'a> {
    /// The logical cluster.
    pub cluster: &'a str,
    /// Its workspace path, e.g. `root:acme`.
    pub path: &'a str,
    /// The hub's external URL, e.g. `https://hub.example.com:6443`.
    pub external_url: &'a str,
    pub user: &'a crate::auth::User,
}

/// Per-kind behaviour that is not plain data. Every hook has a do-nothing default.
pub trait Strategy: Send + Sync {
    /// Fills in defaults and server-owned fields of a new object.
    fn prepare_for_create(&self, _obj: &mut Value, _env: &WriteEnv) {}
    /// Carries over what a client may not change on update (besides the generic fields).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}
    /// Kind-specific validation (metadata is validated generically).
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        Vec::new()
    }
    /// Decodes into the kind's typed form and back, in place: rejects wrongly typed fields
    /// and reports fields the kind does not have (pruned, as kube-apiserver drops them).
    /// None for kinds validated by schema instead.
    fn normalize(&self, _obj: &mut Value) -> Option<Result<Vec<String>, String>> {
        None
    }
    /// Extra field-selector fields of this kind, e.g. `involvedObject.name` for Events.
    fn field_value(&self, _obj: &Value, _field: &str) -> Option<String> {
        None
    }
    /// Field names accepted in field selectors besides `metadata.name`/`metadata.namespace`.
    fn selectable_fields(&self) -> &[&'static str] {
        &[]
    }
    /// Marks an object whose deletion has begun (a Namespace turns `Terminating`); true when
    /// it changed anything.
    fn prepare_for_delete(&self, _obj: &mut Value) -> bool {
        false
    }
    /// Whether an object whose `metadata.finalizers` are all gone must still wait before it
    /// is removed (a Namespace waits for its `spec.finalizers`).
    fn blocks_deletion(&self, _obj: &Value) -> bool {
        false
    }

    /// For a kind whose objects are another kind's shown differently (a Pod for each
    /// Placement): the object as served. `None` serves what is stored.
    fn project(&self, _stored: &faros_storage::Object) -> Option<Value> {
        None
    }

    /// For such kinds that accept writes: the object to store for one written in this kind's
    /// shape. `None` stores what was written.
    fn unproject(&self, _served: &Value) -> Option<Value> {
        None
    }

    /// For such kinds: why create, update and patch are refused.
    fn writes_refused(&self) -> Option<&'static str> {
        None
    }

    /// A deletion that changes the stored object instead of removing it (deleting a Pod
    /// restarts the instance behind it): the object to store, or `None` to delete.
    fn delete_as_update(&self, _stored: &Value) -> Option<Value> {
        None
    }
}

pub struct NoHooks;
impl Strategy for NoHooks {}

/// Everything the generic handlers need to serve one resource.
pub struct ResourceKind {
    pub group: String,
    pub version: String,
    /// Plural lowercase name used in URLs.
    pub resource: String,
    /// The resource part of storage keys: the plural, or `<plural>:<identity>` for resources
    /// bound from an APIExport, so two exports of one group/resource never share objects.
    pub storage_resource: String,
    /// The group part of storage keys: the group, except for a kind that shows another
    /// kind's objects (Pods are stored as Placements).
    pub storage_group: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// The subresources served besides the object itself.
    pub subresources: Vec<Subresource>,
    /// Set for kinds answered by code rather than stored (reviews): create is their only verb.
    pub rest: Option<Rest>,
    pub columns: Vec<PrinterColumn>,
    /// Built-in kinds accept strategic merge patch; custom resources do not.
    pub builtin: bool,
    pub name_rule: NameRule,
    /// Whether PUT without `metadata.resourceVersion` is allowed.
    pub allow_unconditional_update: bool,
    /// Whether `metadata.generation` counts the changes to the object's spec, as it does for
    /// custom resources and CRDs. Kubernetes' ConfigMaps, Leases, Namespaces, RBAC and the
    /// other built-in kinds served here have none.
    pub tracks_generation: bool,
    /// Validation schema for custom resources (and the published OpenAPI).
    pub schema: Option<Arc<StructuralSchema>>,
    pub strategy: Arc<dyn Strategy>,
    /// The `x-kubernetes-selectable-fields` of a CRD version.
    pub crd_selectable_fields: Vec<String>,
}

impl ResourceKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key of one object of this kind.
    pub fn key(&self, cluster: &str, namespace: Option<&str>, name: &str) -> String {
        Key {
            group: &self.storage_group,
            resource: &self.storage_resource,
            cluster,
            namespace,
            name,
        }
        .encode()
    }

    /// The key prefix of this kind's objects in one logical cluster (and, given, one of its
    /// namespaces), or in all of them.
    pub fn collection_prefix(&self, cluster: Option<&str>, namespace: Option<&str>) -> String {
        let mut prefix = self.storage_prefix();
        if let Some(cluster) = cluster {
            prefix = prefix.cluster(cluster);
            if let Some(ns) = namespace {
                prefix = prefix.namespace(ns);
            }
        }
        prefix.as_str().to_string()
    }

    /// The storage key prefix of this resource across all logical clusters.
    pub fn storage_prefix(&self) -> Prefix {
        Prefix::resource(&self.storage_group, &self.storage_resource)
    }

    /// How `kubectl get` tables of this kind render.
    pub fn table_convertor(&self) -> TableConvertor {
        TableConvertor::new(&self.columns, self.builtin)
    }

    /// Whether the kind has a `status` subresource (the main resource then ignores status,
    /// and status ignores the rest).
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// The subresource `name`, if the kind serves it.
    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether `verb` is served on subresource `sub` of this kind.
    pub fn serves_subresource(&self, sub: &str, verb: &str) -> bool {
        self.subresource(sub).is_some_and(|s| s.verbs.contains(&verb))
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.rest.is_some() {
            return vec!["create"];
        }
        if self.strategy.writes_refused().is_some() {
            return vec!["delete", "get", "list", "watch"];
        }
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    /// Starts the declaration of a built-in kind: cluster-scoped, no subresources, DNS
    /// subdomain names, no hooks, until the builder says otherwise.
    pub fn builder(group: &str, version: &str, resource: &str, kind: &str) -> KindBuilder {
        KindBuilder(ResourceKind {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            storage_resource: resource.into(),
            storage_group: group.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced: false,
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: Vec::new(),
            rest: None,
            columns: Vec::new(),
            builtin: true,
            name_rule: NameRule::Dns1123Subdomain,
            allow_unconditional_update: true,
            tracks_generation: false,
            schema: None,
            strategy: Arc::new(NoHooks),
            crd_selectable_fields: Vec::new(),
        })
    }
}

/// A subresource of a kind, e.g. `status`, or `token` of ServiceAccounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    pub verbs: &'static [&'static str],
    /// Set when code answers it rather than the stored object (TokenRequest).
    pub rest: Option<Rest>,
}

impl Subresource {
    /// `status`: read and written apart from the rest of the object.
    pub const STATUS: Subresource = Subresource {
        name: "status",
        verbs: &["get", "patch", "update"],
        rest: None,
    };

    /// An Agent's subresources that reach its device through the tunnel (answered by
    /// `apiserver::device`): declared so that RBAC rules and APIExport views can name them.
    /// Opening the tunnel is always `create`; the proxy takes the verb of its HTTP method.
    pub const AGENT_DEVICE: [Subresource; 3] = [
        Subresource {
            name: faros_tunnel::TUNNEL_SUBRESOURCE,
            verbs: &["create"],
            rest: None,
        },
        Subresource {
            name: faros_tunnel::PROXY_SUBRESOURCE,
            verbs: &["create", "delete", "get", "patch", "update"],
            rest: None,
        },
        Subresource {
            name: faros_tunnel::LIVE_SUBRESOURCE,
            verbs: &["get"],
            rest: None,
        },
    ];
}

/// Requests answered by code instead of storage (the `rest` module of the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// authentication.k8s.io/v1 TokenReview: whose is this token?
    TokenReview,
    /// authorization.k8s.io/v1 SubjectAccessReview and the namespaced LocalSubjectAccessReview:
    /// may this user do that here?
    SubjectAccessReview,
    LocalSubjectAccessReview,
    SelfSubjectAccessReview,
    SelfSubjectRulesReview,
    SelfSubjectReview,
    TokenRequest,
}

/// Declares a kind; see [`ResourceKind::builder`].
pub struct KindBuilder(ResourceKind);

impl KindBuilder {
    pub fn namespaced(mut self) -> Self {
        self.0.namespaced = true;
        self
    }

    pub fn short_names(mut self, names: &[&str]) -> Self {
        self.0.short_names = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn subresource(mut self, subresource: Subresource) -> Self {
        self.0.subresources.push(subresource);
        self
    }

    /// Shows the objects stored under another group and resource (converted by the
    /// strategy's `project` and `unproject`).
    pub fn stored_as(mut self, group: &str, resource: &str) -> Self {
        self.0.storage_group = group.into();
        self.0.storage_resource = resource.into();
        self
    }

    pub fn columns(mut self, columns: Vec<PrinterColumn>) -> Self {
        self.0.columns = columns;
        self
    }

    pub fn names(mut self, rule: NameRule) -> Self {
        self.0.name_rule = rule;
        self
    }

    /// `metadata.generation` counts spec changes (see [`ResourceKind::tracks_generation`]).
    pub fn tracks_generation(mut self) -> Self {
        self.0.tracks_generation = true;
        self
    }

    pub fn strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.0.strategy = strategy;
        self
    }

    /// Answered by code: create is the only verb, nothing is stored.
    pub fn rest(mut self, rest: Rest) -> Self {
        self.0.rest = Some(rest);
        self.0.name_rule = NameRule::PathSegment;
        self
    }

    pub fn build(self) -> Arc<ResourceKind> {
        Arc::new(self.0)
    }
}

/// One APIResourceSchema an APIBinding binds, and the identity it is bound under.
struct BoundSchema {
    schema_key: String,
    identity: String,
}

/// Resolves (cluster, group, version, resource) to a kind: built-ins first, then CRDs.
pub struct Catalog {
    builtins: Vec<Arc<ResourceKind>>,
    cache: Arc<Cache>,
    /// CRD-derived kinds (None: the CRD does not decode) keyed by the CRD's key, valid for
    /// one CRD revision.
    crds: PerRevision<String, Option<Arc<crd::CrdKinds>>>,
    /// Kinds decoded from APIResourceSchemas keyed by (schema key, identity), valid for one
    /// schema revision.
    schemas: PerRevision<(String, String), Vec<Arc<ResourceKind>>>,
    /// What each APIBinding binds, keyed by the binding's key, valid for one binding
    /// revision: every request to a bound kind resolves it through its workspace's bindings.
    bindings: PerRevision<String, Arc<[BoundSchema]>>,
    /// What export views read of each APIBinding, valid for one binding revision.
    binding_fields: Arc<Memo<BindingFields>>,
    /// What the hub reads of each APIExport, valid for one export revision: every request
    /// through an export's view reads its export.
    exports: Memo<ExportFields>,
    /// The Pods kind over each bound Placements kind, by its storage resource.
    pods: Mutex<HashMap<String, Arc<ResourceKind>>>,
}

impl Catalog {
    pub fn new(cache: Arc<Cache>) -> Catalog {
        Catalog {
            builtins: {
                let mut kinds = builtin::kinds();
                kinds.push(events::kind());
                kinds.extend(system::system_kinds());
                kinds
            },
            cache,
            crds: PerRevision::new(),
            schemas: PerRevision::new(),
            bindings: PerRevision::new(),
            binding_fields: Arc::new(PerRevision::new()),
            exports: PerRevision::new(),
            pods: Mutex::new(HashMap::new()),
        }
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The kind served at `/apis/<group>/<version>/<resource>` in `cluster`, if any.
    pub fn lookup(&self, cluster: &str, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceKind>> {
        if let Some(kind) = self
            .builtins
            .iter()
            .find(|k| k.group == group && k.version == version && k.resource == resource)
        {
            return Some(kind.clone());
        }
        if group.is_empty() {
            return (version == "v1" && resource == "pods")
                .then(|| self.pods(cluster))
                .flatten();
        }
        if let Some(crd) = self.crd(cluster, &format!("{resource}.{group}"))
            && let Some(kind) = crd.served.iter().find(|k| k.version == version)
        {
            return Some(kind.clone());
        }
        self.bound_kinds(cluster)
            .into_iter()
            .find(|k| k.group == group && k.version == version && k.resource == resource)
    }

    /// Every kind served in `cluster`: built-ins, then custom resources (all served versions).
    pub fn all_kinds(&self, cluster: &str) -> Vec<Arc<ResourceKind>> {
        let mut kinds = self.builtins.clone();
        for crd in self.crds(cluster) {
            kinds.extend(crd.served.iter().cloned());
        }
        let bound = self.bound_kinds(cluster);
        let pods = self.pods_over(&bound);
        for bound in bound {
            // A local CRD of the same group/resource wins; the binding reports the conflict.
            if !kinds
                .iter()
                .any(|k| k.group == bound.group && k.resource == bound.resource)
            {
                kinds.push(bound);
            }
        }
        kinds.extend(pods);
        kinds
    }

    /// Pods, where the workspace binds Placements: each Placement shown as a Pod.
    fn pods(&self, cluster: &str) -> Option<Arc<ResourceKind>> {
        self.pods_over(&self.bound_kinds(cluster))
    }

    /// Pods over the Placements among a workspace's `bound` kinds.
    fn pods_over(&self, bound: &[Arc<ResourceKind>]) -> Option<Arc<ResourceKind>> {
        let placements = bound
            .iter()
            .find(|k| k.group == faros_api::EDGE_GROUP && k.resource == "placements")?;
        let mut memo = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            memo.entry(placements.storage_resource.clone())
                .or_insert_with(|| pods::kind(placements))
                .clone(),
        )
    }

    /// The kind served at a path in the wildcard view (`/clusters/*`): a built-in or system
    /// kind, or a resource offered by exactly one APIExport (or named `<resource>:<identity>`).
    pub fn lookup_wildcard(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceKind>> {
        if let Some(kind) = self
            .builtins
            .iter()
            .find(|k| k.group == group && k.version == version && k.resource == resource)
        {
            return Some(kind.clone());
        }
        let (resource, wanted_identity) = match resource.split_once(':') {
            Some((r, id)) => (r, Some(id)),
            None => (resource, None),
        };
        let (exports, _, _) = self
            .cache
            .list(Prefix::resource("apis.kcp.io", "apiexports").as_str(), None, 0, |_| {
                true
            });
        let mut found: Vec<Arc<ResourceKind>> = exports
            .iter()
            .map(|e| self.export_fields(e))
            .filter(|e| wanted_identity.is_none_or(|w| e.identity() == w))
            .flat_map(|e| self.export_kinds(&e))
            .filter(|k| k.group == group && k.version == version && k.resource == resource)
            .collect();
        // Two exports of the same resource are ambiguous without an identity.
        if found.len() == 1 { found.pop() } else { None }
    }

    /// Every kind (all served versions) an APIExport offers, under its identity. Empty until
    /// the export has an identity.
    pub(crate) fn export_kinds(&self, export: &ExportFields) -> Vec<Arc<ResourceKind>> {
        let identity = export.identity();
        if identity.is_empty() {
            return Vec::new();
        }
        let cluster = export.cluster();
        let mut kinds = Vec::new();
        for schema in export.latest_resource_schemas() {
            let key = Prefix::resource("apis.kcp.io", "apiresourceschemas")
                .cluster(cluster)
                .name(schema);
            let Some(object) = self.cache.get(&key) else { continue };
            kinds.extend(self.schema_kinds(key, &object, identity));
        }
        kinds
    }

    /// The kinds a permission claim names: a built-in (empty identity) or a resource of the
    /// export with that identity.
    pub fn claimed_kinds(&self, group: &str, resource: &str, identity: &str) -> Vec<Arc<ResourceKind>> {
        if identity.is_empty() {
            // Stored kinds only: reviews and other create-only answers are not data to share.
            return self
                .builtins
                .iter()
                .filter(|k| k.group == group && k.resource == resource && k.verbs().contains(&"get"))
                .cloned()
                .collect();
        }
        let (exports, _, _) = self
            .cache
            .list(Prefix::resource("apis.kcp.io", "apiexports").as_str(), None, 0, |_| {
                true
            });
        exports
            .iter()
            .map(|e| self.export_fields(e))
            .filter(|e| e.identity() == identity)
            .flat_map(|e| self.export_kinds(&e))
            .filter(|k| k.group == group && k.resource == resource)
            .collect()
    }

    /// Kinds of an APIResourceSchema under an identity, memoised per schema revision.
    fn schema_kinds(&self, key: String, object: &faros_storage::Object, identity: &str) -> Vec<Arc<ResourceKind>> {
        self.schemas
            .get_or_decode((key, identity.to_string()), object.mod_revision, || {
                system::kinds_from_schema(&object.value(), identity)
            })
    }

    /// Kinds bound into `cluster` by its Bound APIBindings.
    pub fn bound_kinds(&self, cluster: &str) -> Vec<Arc<ResourceKind>> {
        let (bindings, _, _) = self.cache.list(
            Prefix::resource("apis.kcp.io", "apibindings").cluster(cluster).as_str(),
            None,
            0,
            |_| true,
        );
        let mut kinds = Vec::new();
        for binding in bindings {
            for bound in self.bound_schemas(&binding).iter() {
                let Some(object) = self.cache.get(&bound.schema_key) else {
                    continue;
                };
                kinds.extend(self.schema_kinds(bound.schema_key.clone(), &object, &bound.identity));
            }
        }
        kinds
    }

    /// The APIResourceSchemas a binding binds (none unless it is Bound), decoded once per
    /// revision of the binding.
    fn bound_schemas(&self, binding: &faros_storage::Object) -> Arc<[BoundSchema]> {
        self.bindings
            .get_or_decode(binding.key.to_string(), binding.mod_revision, || {
                Self::decode_bound_schemas(binding)
            })
    }

    fn decode_bound_schemas(binding: &faros_storage::Object) -> Arc<[BoundSchema]> {
        let value = binding.value();
        let status = &value["status"];
        let mut bound = Vec::new();
        if status["phase"] == "Bound" {
            let export_cluster = status["apiExportClusterName"].as_str().unwrap_or_default();
            for resource in status["boundResources"].as_array().into_iter().flatten() {
                // Bindings recorded before kcp's shape have the name and identity flat.
                let schema = &resource["schema"];
                let name = schema["name"].as_str().or(schema.as_str());
                let identity = schema["identityHash"].as_str().or(resource["identityHash"].as_str());
                let (Some(name), Some(identity)) = (name, identity) else {
                    continue;
                };
                bound.push(BoundSchema {
                    schema_key: Prefix::resource("apis.kcp.io", "apiresourceschemas")
                        .cluster(export_cluster)
                        .name(name),
                    identity: identity.to_string(),
                });
            }
        }
        bound.into()
    }

    /// Every established CRD of `cluster`, decoded.
    pub fn crds(&self, cluster: &str) -> Vec<Arc<crd::CrdKinds>> {
        let prefix = Prefix::resource("apiextensions.k8s.io", "customresourcedefinitions").cluster(cluster);
        let (objects, _, _) = self.cache.list(prefix.as_str(), None, 0, |_| true);
        objects
            .iter()
            .filter_map(|o| self.decode_crd(o))
            .filter(|c| c.established)
            .collect()
    }

    fn crd(&self, cluster: &str, name: &str) -> Option<Arc<crd::CrdKinds>> {
        let key = Prefix::resource("apiextensions.k8s.io", "customresourcedefinitions")
            .cluster(cluster)
            .name(name);
        let object = self.cache.get(&key)?;
        self.decode_crd(&object).filter(|c| c.established)
    }

    fn decode_crd(&self, object: &faros_storage::Object) -> Option<Arc<crd::CrdKinds>> {
        self.crds
            .get_or_decode(object.key.to_string(), object.mod_revision, || {
                crd::CrdKinds::from_crd(&object.value()).ok().map(Arc::new)
            })
    }

    /// Keeps the memos to live definitions: whatever was decoded from a CRD, an
    /// APIResourceSchema, an APIExport or an APIBinding is dropped once the object is
    /// deleted. Runs until `shutdown` flips.
    pub async fn forget_deleted(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let follow = |group, resource| {
            let prefix = Prefix::resource(group, resource);
            self.cache.watch(prefix.as_str(), None).map(|start| start.live)
        };
        loop {
            let (Ok(mut crds), Ok(mut schemas), Ok(mut exports), Ok(mut bindings)) = (
                follow("apiextensions.k8s.io", "customresourcedefinitions"),
                follow("apis.kcp.io", "apiresourceschemas"),
                follow("apis.kcp.io", "apiexports"),
                follow("apis.kcp.io", "apibindings"),
            ) else {
                return;
            };
            loop {
                let event = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    event = crds.recv() => event,
                    event = schemas.recv() => event,
                    event = exports.recv() => event,
                    event = bindings.recv() => event,
                };
                match event {
                    Ok(event) if event.kind == EventKind::Deleted => self.forget(&event.object.key),
                    Ok(_) => {}
                    // Fell behind: follow again from now. A definition deleted in the gap
                    // keeps its memo entry, which is keyed by revision and never served.
                    Err(faros_storage::FeedEnded::Lagged | faros_storage::FeedEnded::Expired) => break,
                    Err(faros_storage::FeedEnded::Closed) => return,
                }
            }
        }
    }

    fn forget(&self, key: &str) {
        let Some(parsed) = Key::parse(key) else { return };
        match parsed.resource {
            "customresourcedefinitions" => self.crds.retain(|k| k != key),
            "apiexports" => self.exports.retain(|k| k != key),
            "apibindings" => {
                self.bindings.retain(|k| k != key);
                self.binding_fields.retain(|k| k != key);
            }
            _ => self.schemas.retain(|(schema, _)| schema != key),
        }
    }

    /// What the hub reads of a stored APIExport.
    pub(crate) fn export_fields(&self, export: &faros_storage::Object) -> Arc<ExportFields> {
        self.exports.read(export)
    }

    /// What export views read of stored APIBindings, memoised per binding revision.
    pub(crate) fn binding_fields(&self) -> Arc<Memo<BindingFields>> {
        self.binding_fields.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http::{Method, StatusCode};
    use serde_json::json;

    use crate::testing::InProcessHub;

    fn export_fields(value: serde_json::Value) -> super::ExportFields {
        super::fields_of::<super::ExportFields>(
            &faros_storage::Object::from_stored(&faros_storage::KeyValue {
                key: "/apis.kcp.io/apiexports/c1/widgets".into(),
                value: serde_json::to_vec(&value).unwrap().into(),
                create_revision: 2,
                mod_revision: 2,
            })
            .unwrap(),
        )
    }

    #[test]
    fn an_export_is_read_from_its_own_fields() {
        let export = export_fields(json!({
            "metadata": {
                "name": "widgets",
                "annotations": {faros_api::tenancy::CLUSTER_ANNOTATION: "c1", "other": "x"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {
                "latestResourceSchemas": ["v1.widgets.acme.io"],
                "permissionClaims": [{"resource": "configmaps"}],
            },
            "status": {"identityHash": "abc", "conditions": [{"type": "Ready", "status": "True"}]},
        }));
        assert_eq!(export.identity(), "abc");
        assert_eq!(export.cluster(), "c1");
        assert_eq!(export.latest_resource_schemas(), ["v1.widgets.acme.io"]);
        assert_eq!(export.permission_claims()[0].resource, "configmaps");

        // Explicit nulls read as absent; an export without an identity serves nothing yet.
        let pending = export_fields(json!({"metadata": {"annotations": null}, "spec": null, "status": {}}));
        assert_eq!(pending.identity(), "");
        assert_eq!(pending.cluster(), "");
        assert!(pending.latest_resource_schemas().is_empty());
        assert!(pending.permission_claims().is_empty());
    }

    /// Creates `object` in the collection at `path`, has the catalog decode it (`read`),
    /// deletes it (releasing by hand the finalizers no controller releases here), and waits
    /// until `memoised` counts nothing.
    async fn deleted_object_leaves_the_memo(
        path: &str,
        object: serde_json::Value,
        read: impl Fn(&super::Catalog),
        memoised: impl Fn(&super::Catalog) -> usize,
    ) {
        let hub = InProcessHub::start().await;
        let catalog_hub = hub.hub.clone();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move { catalog_hub.catalog.forget_deleted(stopped).await });
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let (code, body) = hub.admin(Method::POST, path, Some(object)).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        read(&hub.hub.catalog);
        assert!(memoised(&hub.hub.catalog) > 0, "the object was read into the memo");
        let item = format!("{path}/{name}");
        let (code, _) = hub.admin(Method::DELETE, &item, None).await;
        assert_eq!(code, StatusCode::OK);
        let release = json!({"metadata": {"finalizers": null}});
        let (code, body) = hub.admin(Method::PATCH, &item, Some(release)).await;
        assert!(
            code == StatusCode::OK || code == StatusCode::NOT_FOUND,
            "{code}: {body}"
        );
        let gone = async {
            while memoised(&hub.hub.catalog) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("the deleted object left the memo");
    }

    /// The stored objects of a collection (by its storage prefix), for a test to read.
    fn stored(catalog: &super::Catalog, prefix: super::Prefix) -> Vec<Arc<faros_storage::Object>> {
        catalog.cache().list(prefix.as_str(), None, 0, |_| true).0
    }

    /// What an APIBinding binds and what export views read of it are read once per
    /// revision of the binding, and forgotten when the binding is gone.
    #[tokio::test]
    async fn deleted_bindings_leave_the_memo() {
        let binding = json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIBinding",
            "metadata": {"name": "edge"},
            "spec": {"reference": {"export": {"path": "root", "name": faros_api::edge::EDGE_EXPORT}}},
        });
        deleted_object_leaves_the_memo(
            "/apis/apis.kcp.io/v1alpha1/apibindings",
            binding,
            |catalog| {
                drop(catalog.bound_kinds("root"));
                for binding in stored(catalog, super::Prefix::resource("apis.kcp.io", "apibindings")) {
                    drop(catalog.binding_fields().read(&binding));
                }
                assert_eq!(catalog.binding_fields.len(), 1);
            },
            |catalog| catalog.bindings.len() + catalog.binding_fields.len(),
        )
        .await;
    }

    /// What the hub reads of an APIExport is read once per revision and forgotten when the
    /// export is gone.
    #[tokio::test]
    async fn deleted_exports_leave_the_memo() {
        let export = json!({
            "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExport",
            "metadata": {"name": "widgets"},
            "spec": {"latestResourceSchemas": []},
        });
        deleted_object_leaves_the_memo(
            "/apis/apis.kcp.io/v1alpha1/apiexports",
            export,
            |catalog| {
                let exports = stored(
                    catalog,
                    super::Prefix::resource("apis.kcp.io", "apiexports").cluster("root"),
                );
                let widgets = exports.iter().find(|o| o.key.ends_with("/widgets")).expect("stored");
                let first = catalog.export_fields(widgets);
                // The same revision is not decoded again.
                assert!(Arc::ptr_eq(&first, &catalog.export_fields(widgets)));
            },
            |catalog| catalog.exports.len(),
        )
        .await;
    }

    /// The catalog decodes a CRD once per revision and forgets it when the CRD is gone.
    #[tokio::test]
    async fn deleted_crds_leave_the_memo() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
        });
        deleted_object_leaves_the_memo(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
            |catalog| drop(catalog.crds("root")),
            |catalog| catalog.crds.len(),
        )
        .await;
    }
}
