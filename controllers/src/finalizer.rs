//! A controller's finalizer on the objects it guards: added before the controller relies on
//! it, released once its clean-up is done.
//!
//! Both write a merge patch carrying the resourceVersion that was read, so a write over a
//! newer version fails instead of dropping a finalizer someone else just added. Such a
//! conflict, or an object already gone, is not an error: the watch brings what happened and
//! the object is reconciled again.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::errors::{is_conflict, is_not_found};

/// Whether `object` carries `finalizer`.
pub(crate) fn has<K: Resource>(object: &K, finalizer: &str) -> bool {
    object.finalizers().iter().any(|f| f == finalizer)
}

/// Adds `finalizer` to `object` unless it is there.
pub(crate) async fn add<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if has(object, finalizer) {
        return Ok(());
    }
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(finalizer.into());
    write(api, object, finalizers).await
}

/// Removes `finalizer` from `object` if it is there.
pub(crate) async fn release<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if !has(object, finalizer) {
        return Ok(());
    }
    let kept: Vec<&String> = object.finalizers().iter().filter(|f| *f != finalizer).collect();
    write(api, object, kept).await
}

async fn write<K, F>(api: &Api<K>, object: &K, finalizers: Vec<F>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    F: serde::Serialize,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    match api
        .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
}
