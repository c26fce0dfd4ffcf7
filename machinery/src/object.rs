//! Helpers over Kubernetes objects as JSON: metadata access, finalizers, deletion, and the
//! comparisons the write path makes.

use serde_json::{Map, Value};

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Adds `finalizer` to the object's finalizers unless it is there already.
pub fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let list = meta_mut(obj)
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f == finalizer)
    {
        list.push(finalizer.into());
    }
}

pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// Five characters from the alphabet Kubernetes uses for `generateName` (no vowels, no
/// look-alike digits, so generated names never spell words).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// The object without the fields that change on every write, to detect no-op updates.
pub fn same_content(a: &Value, b: &Value) -> bool {
    // Compared in place: every write (each heartbeat) asks, so no copies of either object.
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let ignored = |k: &str| k == "resourceVersion" || k == "managedFields";
    let same_meta = |x: &Value, y: &Value| match (x.as_object(), y.as_object()) {
        (Some(x), Some(y)) => {
            let fields = |m: &'_ Map<String, Value>| m.iter().filter(|(k, _)| !ignored(k)).count();
            fields(x) == fields(y) && x.iter().filter(|(k, _)| !ignored(k)).all(|(k, v)| y.get(k) == Some(v))
        }
        _ => x == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match b.get(k) {
            Some(w) if k == "metadata" => same_meta(v, w),
            Some(w) => v == w,
            None => false,
        })
}

/// Everything but metadata and (for kinds with a status subresource) status: a change here
/// is a spec change and bumps `metadata.generation`.
pub fn spec_changed(new: &Value, old: &Value, status_subresource: bool) -> bool {
    let (Some(new), Some(old)) = (new.as_object(), old.as_object()) else {
        return new != old;
    };
    let ignored = |k: &str| k == "metadata" || (status_subresource && k == "status");
    let differs = |a: &Map<String, Value>, b: &Map<String, Value>| {
        a.iter().filter(|(k, _)| !ignored(k)).any(|(k, v)| b.get(k) != Some(v))
    };
    differs(new, old) || differs(old, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_content_ignores_only_the_revision_and_managed_fields() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [{"manager": "x"}]},
            "spec": {"n": 1}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"n": 1}});
        assert!(same_content(&a, &b));
        assert!(same_content(&b, &a));
        let relabelled = json!({"metadata": {"name": "a", "labels": {"l": "v"}}, "spec": {"n": 1}});
        assert!(!same_content(&a, &relabelled));
        assert!(!same_content(&relabelled, &a));
        let respecced = json!({"metadata": {"name": "a"}, "spec": {"n": 2}});
        assert!(!same_content(&a, &respecced));
        let extra = json!({"metadata": {"name": "a"}, "spec": {"n": 1}, "status": {}});
        assert!(!same_content(&b, &extra));
        assert!(!same_content(&extra, &b));
        assert!(!same_content(&json!({"spec": {"n": 1}}), &b));
    }
}
