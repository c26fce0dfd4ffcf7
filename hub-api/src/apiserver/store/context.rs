//! The decoded request every verb works from, and under whose authority it acts.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::list::partial_metadata;
use crate::admission::{self, Operation};
use crate::apiserver::body::Representation;
use crate::apiserver::query::Query;
use crate::apiserver::request::ResourceRequest;
use crate::apiserver::{Hub, response};
use crate::auth::User;
use crate::registry::ResourceKind;
use crate::tenancy::{ClusterScope, LogicalClusterRef};
use faros_machinery::object;
use faros_machinery::status::{ApiError, ApiResult};
use faros_machinery::table;
use faros_storage::{Object, Revision};

/// Everything about one resource request, decoded.
pub struct Ctx {
    pub hub: Arc<Hub>,
    /// The logical cluster the request is served from, or all of them.
    pub cluster: ClusterScope,
    pub req: ResourceRequest,
    pub kind: Arc<ResourceKind>,
    pub query: Query,
    pub user: User,
    pub headers: HeaderMap,
    pub representation: Representation,
    pub scope: Scope,
    /// The request's watch leaves out updates that keep the metadata (see
    /// [`crate::apiserver::watch::MetadataWatch`]).
    pub metadata_watch: bool,
}

/// Under whose authority a request acts in its cluster.
pub enum Scope {
    /// The requester's own RBAC in the cluster (checked before the handlers run).
    Direct,
    /// An APIExport owner's, through the export's view.
    Export(Arc<ViewAccess>),
}

/// What the export's owner may reach with one request through the export's view.
pub struct ViewAccess {
    pub view: Arc<crate::tenancy::export_view::ExportView>,
    /// The requested kind.
    pub kind: Arc<ResourceKind>,
    /// The claim granting it (None: one of the export's own resources).
    pub claim: Option<faros_api::apis::PermissionClaim>,
    /// What the owner holds in the (single) target cluster, as RBAC rules; worked out only
    /// for requests on RBAC's kinds, whose admission is all that reads them (empty otherwise).
    pub rules: Vec<crate::auth::rbac::Rule>,
}

impl ViewAccess {
    /// Whether `cluster` shares the kind with the owner (as of `revision`, if given).
    pub fn shared_in(&self, cache: &faros_storage::Cache, cluster: &str, revision: Option<u64>) -> bool {
        self.view
            .access_in(cache, cluster, revision)
            .is_some_and(|access| access.allows(&self.kind, self.claim.as_ref()))
    }

    /// Every cluster sharing the kind with the owner (as of `revision`, if given).
    pub fn clusters(&self, cache: &faros_storage::Cache, revision: Option<u64>) -> ClusterSet {
        ClusterSet {
            clusters: self
                .view
                .clusters_sharing(cache, &self.kind, self.claim.as_ref(), revision),
        }
    }
}

impl Scope {
    /// Across all clusters, the clusters whose objects the request may see (as of
    /// `revision`, if given); None when not restricted. Through an export's view, only the
    /// clusters whose bindings share the kind now.
    pub fn visible_clusters(&self, cache: &faros_storage::Cache, revision: Option<u64>) -> Option<ClusterSet> {
        match self {
            Scope::Export(access) => Some(access.clusters(cache, revision)),
            Scope::Direct => None,
        }
    }
}

/// Logical clusters a cross-cluster list or watch is restricted to.
pub struct ClusterSet {
    pub clusters: std::collections::HashSet<String>,
}

impl ClusterSet {
    /// Whether the object at `key` is in the set.
    pub fn admits(&self, key: &str) -> bool {
        faros_storage::Key::parse(key).is_some_and(|k| self.clusters.contains(k.cluster))
    }
}

impl Ctx {
    /// What admission sees of this request.
    pub(super) fn admission(&self, operation: Operation) -> ApiResult<admission::Context<'_>> {
        let cluster = self.one_cluster()?;
        Ok(admission::Context {
            operation,
            cluster: &cluster.name,
            cluster_path: &cluster.path,
            kind: &self.kind,
            subresource: self.req.subresource.as_deref(),
            user: &self.user,
            view_rules: match &self.scope {
                Scope::Export(access) => Some(&access.rules),
                Scope::Direct => None,
            },
            cache: &self.hub.cache,
            authorizer: &self.hub.authorizer,
        })
    }

    /// The one logical cluster of a request that cannot span all of them (routing refuses
    /// every verb but list and watch across all).
    pub(crate) fn one_cluster(&self) -> ApiResult<&LogicalClusterRef> {
        self.cluster
            .one()
            .ok_or_else(|| ApiError::method_not_allowed("only list and watch are supported across all workspaces"))
    }

    pub(super) fn group(&self) -> &str {
        &self.kind.group
    }

    pub(super) fn resource(&self) -> &str {
        &self.kind.resource
    }

    pub(crate) fn key(&self, name: &str) -> ApiResult<String> {
        let cluster = self.one_cluster()?;
        Ok(self.kind.key(&cluster.name, self.req.namespace.as_deref(), name))
    }

    pub(super) fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.group(), self.resource(), name)
    }

    /// A stored object as this kind shows it, decoded.
    pub(super) fn served(&self, object: &Object) -> Value {
        self.kind.strategy.project(object).unwrap_or_else(|| object.value())
    }

    /// An object written in this kind's shape as it is stored (itself, for most kinds).
    pub(crate) fn to_stored<'a>(&self, obj: &'a Value) -> std::borrow::Cow<'a, Value> {
        match self.kind.strategy.unproject(obj) {
            Some(stored) => std::borrow::Cow::Owned(stored),
            None => std::borrow::Cow::Borrowed(obj),
        }
    }

    /// A stored object as this request asks for it: its cached JSON as is when it can be.
    pub(super) fn respond_stored(&self, code: StatusCode, object: &Object) -> Response {
        match self.kind.strategy.project(object) {
            Some(projected) => self.with_status_code(code, &projected, &[]),
            None if self.representation == Representation::Object => {
                response::bytes(code, object.json().clone(), "application/json")
            }
            None => self.with_status_code(code, &object.value(), &[]),
        }
    }

    /// The answer to a write of `value` (as stored, in this kind's own shape) to `key` at
    /// `revision`: the bytes the cache keeps for it rather than encoded again. Only an answer
    /// in another representation, or one the cache no longer holds (a later write came
    /// first), decodes `value` and gives it its revision.
    pub(super) fn respond_written(
        &self,
        code: StatusCode,
        key: &str,
        value: &Bytes,
        revision: Revision,
        warnings: &[String],
    ) -> Response {
        if self.representation == Representation::Object
            && let Some(cached) = self.hub.cache.get(key)
            && cached.mod_revision == revision
            // A kind served as a projection of what is stored answers in its own shape.
            && self.kind.strategy.project(&cached).is_none()
        {
            return response::with_warnings(
                response::bytes(code, cached.json().clone(), "application/json"),
                warnings,
            );
        }
        // Encoded from a tree by this write: it parses.
        let mut written: Value = serde_json::from_slice(value).unwrap_or(Value::Null);
        object::meta_mut(&mut written).insert("resourceVersion".into(), revision.to_string().into());
        self.with_status_code(code, &written, warnings)
    }

    /// An object as this request asks for it (a whole object, a table row, or metadata).
    pub(super) fn with_status_code(&self, code: StatusCode, obj: &Value, warnings: &[String]) -> Response {
        let body = if self.representation == Representation::Table {
            let include = table::IncludeObject::parse(self.query.include_object.as_deref()).unwrap_or_default();
            self.kind.table_convertor().table(
                std::iter::once(obj),
                include,
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                true,
                jiff::Timestamp::now(),
            )
        } else if self.representation == Representation::Metadata {
            partial_metadata(obj)
        } else {
            // The object itself, encoded from where it is: every write answers with one.
            return response::with_warnings(response::json(code, obj), warnings);
        };
        response::with_warnings(response::json(code, &body), warnings)
    }
}
