//! What the hub reads of stored definitions (APIExports, APIBindings, CRDs, schemas), each
//! decoded once per revision of its object: requests read them far more often than they are
//! written, and a fleet's controllers reach their objects through an export's view, whose
//! export and bindings every such request reads.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use faros_api::apis::PermissionClaim;
use faros_storage::Object;

/// Values decoded from stored objects, each valid for the one revision it was decoded from.
/// An entry for a later revision replaces it; the catalog drops entries whose object is
/// deleted (`Catalog::forget_deleted`).
pub(crate) struct PerRevision<K, T> {
    entries: Mutex<HashMap<K, (u64, T)>>,
}

impl<K: Eq + Hash, T: Clone> PerRevision<K, T> {
    pub(crate) fn new() -> PerRevision<K, T> {
        PerRevision {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value memoised under `key` for `revision`, or `decode()`'s, memoised. The decoding
    /// runs without the lock held: two requests may both decode a new revision, and the
    /// results are the same.
    pub(crate) fn get_or_decode(&self, key: K, revision: u64, decode: impl FnOnce() -> T) -> T {
        if let Some((at, value)) = self.lock().get(&key)
            && *at == revision
        {
            return value.clone();
        }
        let value = decode();
        self.lock().insert(key, (revision, value.clone()));
        value
    }

    /// Drops the entries `keep` says no to.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (u64, T)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the hub reads of an APIExport to serve it, not the whole object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ExportFields {
    metadata: Option<ExportMetadata>,
    spec: Option<ExportSpecFields>,
    status: Option<ExportStatusFields>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExportMetadata {
    annotations: Option<HashMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ExportSpecFields {
    latest_resource_schemas: Option<Vec<String>>,
    permission_claims: Option<Vec<PermissionClaim>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ExportStatusFields {
    identity_hash: Option<String>,
}

impl ExportFields {
    /// `status.identityHash`: empty until the export has an identity.
    pub(crate) fn identity(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.identity_hash.as_deref())
            .unwrap_or_default()
    }

    /// The logical cluster the export lives in.
    pub(crate) fn cluster(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(faros_api::tenancy::CLUSTER_ANNOTATION))
            .map_or("", String::as_str)
    }

    pub(crate) fn latest_resource_schemas(&self) -> &[String] {
        self.spec
            .as_ref()
            .and_then(|s| s.latest_resource_schemas.as_deref())
            .unwrap_or_default()
    }

    /// `spec.permissionClaims`.
    pub(crate) fn permission_claims(&self) -> &[PermissionClaim] {
        self.spec
            .as_ref()
            .and_then(|s| s.permission_claims.as_deref())
            .unwrap_or_default()
    }
}

/// What an export's view reads of an APIBinding: which export it binds, whether it is
/// Bound, the resources it serves and the claims it accepted. A binding that does not
/// decode (it was validated when written) shares nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct BindingFields {
    spec: Option<BindingSpecFields>,
    status: Option<BindingStatusFields>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct BindingSpecFields {
    reference: Option<BindingReference>,
    permission_claims: Option<Vec<PermissionClaim>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BindingReference {
    export: Option<ExportReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExportReference {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct BindingStatusFields {
    phase: Option<String>,
    api_export_cluster_name: Option<String>,
    bound_resources: Option<Vec<BoundResourceFields>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BoundResourceFields {
    group: Option<String>,
    resource: Option<String>,
}

impl BindingFields {
    /// `spec.reference.export.name`.
    pub(crate) fn export_name(&self) -> Option<&str> {
        self.spec.as_ref()?.reference.as_ref()?.export.as_ref()?.name.as_deref()
    }

    /// `status.phase`.
    pub(crate) fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    /// `status.apiExportClusterName`: the logical cluster of the bound export.
    pub(crate) fn export_cluster(&self) -> Option<&str> {
        self.status.as_ref()?.api_export_cluster_name.as_deref()
    }

    /// `spec.permissionClaims`: the claims the binding accepted or rejected.
    pub(crate) fn permission_claims(&self) -> &[PermissionClaim] {
        self.spec
            .as_ref()
            .and_then(|s| s.permission_claims.as_deref())
            .unwrap_or_default()
    }

    /// (group, resource) of each resource in `status.boundResources`.
    pub(crate) fn bound_resources(&self) -> impl Iterator<Item = (&str, &str)> {
        self.status
            .as_ref()
            .and_then(|s| s.bound_resources.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r.group.as_deref().unwrap_or_default(),
                    r.resource.as_deref().unwrap_or_default(),
                )
            })
    }
}

/// The fields `T` reads of a stored object; none of them when it does not decode. The
/// definitions read this way were validated when written, so they do; one that cannot be
/// read serves and shares nothing.
pub(crate) fn fields_of<T: DeserializeOwned + Default>(object: &Object) -> T {
    object.decode().unwrap_or_default()
}

/// The fields `T` reads of objects, by object key, each valid for one revision.
pub(crate) type Memo<T> = PerRevision<String, Arc<T>>;

impl<T: DeserializeOwned + Default> Memo<T> {
    /// `object`'s fields, decoded only when its revision was not read yet.
    pub(crate) fn read(&self, object: &Object) -> Arc<T> {
        self.get_or_decode(object.key.to_string(), object.mod_revision, || {
            Arc::new(fields_of(object))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_decoded_once_per_revision() {
        let memo: PerRevision<&str, u64> = PerRevision::new();
        let decoded = std::cell::Cell::new(0);
        let read = |revision: u64| {
            memo.get_or_decode("a", revision, || {
                decoded.set(decoded.get() + 1);
                revision * 10
            })
        };
        assert_eq!(read(1), 10);
        assert_eq!(read(1), 10);
        assert_eq!(decoded.get(), 1);
        // A new revision is decoded again and replaces the old one.
        assert_eq!(read(2), 20);
        assert_eq!(read(2), 20);
        assert_eq!(decoded.get(), 2);
        assert_eq!(memo.len(), 1);
        memo.retain(|key| *key != "a");
        assert_eq!(memo.len(), 0);
    }
}
