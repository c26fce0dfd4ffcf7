//! What the delete path needs to know about dependents for Foreground and Orphan deletion.

use serde_json::Value;

use super::store::Ctx;
use faros_machinery::object;

/// Whether any object in the same logical cluster names `obj` as an owner. Only Foreground
/// and Orphan deletes ask, so a scan of the cache is acceptable; without dependents those
/// deletes complete at once instead of waiting for the garbage collector.
pub fn may_have_dependents(ctx: &Ctx, obj: &Value) -> bool {
    let cluster = ctx.cluster.name();
    let uid = object::uid(obj);
    if uid.is_empty() {
        return false;
    }
    // Owners' UIDs are kept beside each cached object: the scan decodes nothing.
    let (found, _, _) = ctx.hub.cache.list("/", None, 1, |candidate| {
        candidate.owners().any(|owner| owner == uid) && candidate.cluster() == cluster
    });
    !found.is_empty()
}
