//! Request bodies as the hub decodes them: JSON, YAML or Kubernetes protobuf by media type,
//! never deeper than [`MAX_DEPTH`] levels; and JSON patch (RFC 6902) and JSON merge patch
//! (RFC 7386) applied to a decoded object.

use serde_json::Value;

use crate::status::{ApiError, ApiResult, Reason};

/// Deepest nesting accepted in a request body; protects every recursive walk later.
pub const MAX_DEPTH: usize = 100;

/// Decodes a JSON object body (create, update, and the JSON-shaped patch types).
pub fn decode_object(bytes: &[u8], media_type: &str) -> ApiResult<Value> {
    match media_type {
        "" | "application/json" | "*/*" => {}
        "application/vnd.kubernetes.protobuf" => {
            return crate::protobuf::decode(bytes).map_err(|e| {
                ApiError::unsupported_media_type(format!(
                    "the protobuf body could not be decoded ({e}); send it as application/json instead"
                ))
            });
        }
        "application/yaml" => return decode_yaml(bytes),
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?})"
            )));
        }
    }
    let value = decode_json(bytes)?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    Ok(value)
}

pub fn decode_json(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    check_depth(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
}

pub fn decode_yaml(bytes: &[u8]) -> ApiResult<Value> {
    // JSON is a subset of YAML and by far the common case; try it first.
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        check_depth(bytes)?;
        return Ok(v);
    }
    check_depth(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
    let value: Value =
        serde_norway::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))?;
    // Block-style YAML nests by indentation, which the bracket count above does not see.
    if depth_exceeds(&value, MAX_DEPTH) {
        return Err(too_deep());
    }
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

/// Counts bracket nesting without parsing, so a deeply nested body is refused before any
/// recursive decoder sees it.
fn check_depth(bytes: &[u8]) -> ApiResult<()> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep() -> ApiError {
    ApiError::bad_request(format!("the request body is nested deeper than {MAX_DEPTH} levels"))
}

/// Whether `value` nests more than `limit` objects and arrays deep, walked without recursion.
fn depth_exceeds(value: &Value, limit: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        if depth + 1 > limit {
            return true;
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    false
}

/// Applies a JSON patch (a list of operations) to `doc`.
pub fn apply_json_patch(doc: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    // Applied to a copy that replaces `doc` only when every operation succeeded: the crate's
    // own rollback panics on some failed operations (a `move` into its own child).
    let mut patched = doc.clone();
    json_patch::patch_unsafe(&mut patched, &ops).map_err(|e| {
        ApiError::new(
            Reason::Invalid,
            format!("the server rejected our request due to an error in our request: {e}"),
        )
    })?;
    *doc = patched;
    Ok(())
}

/// Applies a JSON merge patch to `doc`.
pub fn apply_merge_patch(doc: &mut Value, patch: &Value) {
    json_patch::merge(doc, patch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(500) + &"]".repeat(500);
        assert!(decode_json(deep.as_bytes()).is_err());
        assert!(decode_json(br#"{"a":"[[[[[[["}"#).is_ok());
    }

    #[test]
    fn yaml_bodies_decode() {
        let v = decode_yaml(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n").unwrap();
        assert_eq!(v["metadata"]["name"], "a");
    }

    #[test]
    fn deep_block_yaml_is_refused() {
        let mut yaml = String::new();
        for level in 0..120 {
            yaml.push_str(&"  ".repeat(level));
            yaml.push_str("k:\n");
        }
        yaml.push_str(&"  ".repeat(120));
        yaml.push_str("v: 1\n");
        let err = decode_yaml(yaml.as_bytes()).unwrap_err();
        assert!(err.message.contains("nested deeper than 100 levels"), "{}", err.message);
        assert!(decode_yaml(b"a:\n  b:\n    c: 1\n").is_ok());
    }

    #[test]
    fn a_json_patch_that_fails_leaves_the_object_alone() {
        // A `move` into its own child fails; the rollback of the operations before it must
        // neither panic nor leave them applied.
        let mut doc = serde_json::json!({"a": {"b": 1}});
        let patch = serde_json::json!([
            {"op": "copy", "from": "/a", "path": "/x"},
            {"op": "add", "path": "/y", "value": 2},
            {"op": "move", "from": "/x", "path": "/x/b"},
        ]);
        assert!(apply_json_patch(&mut doc, &patch).is_err());
        assert_eq!(doc, serde_json::json!({"a": {"b": 1}}));
    }

    #[test]
    fn patches_apply() {
        let mut doc = serde_json::json!({"a": 1, "b": [1, 2]});
        apply_json_patch(&mut doc, &serde_json::json!([{"op": "remove", "path": "/b/0"}])).unwrap();
        assert_eq!(doc, serde_json::json!({"a": 1, "b": [2]}));
        let bad = apply_json_patch(&mut doc, &serde_json::json!([{"op": "test", "path": "/a", "value": 2}]));
        assert_eq!(bad.unwrap_err().reason, Reason::Invalid);
        apply_merge_patch(&mut doc, &serde_json::json!({"a": null, "c": 3}));
        assert_eq!(doc, serde_json::json!({"b": [2], "c": 3}));
    }
}
