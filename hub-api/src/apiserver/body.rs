//! Request bodies and content negotiation: size limits, decoding by Content-Type, and
//! what the client accepts back.

use axum::body::Body;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use faros_machinery::status::{ApiError, ApiResult};

/// Largest request body accepted, as kube-apiserver's default (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Deepest JSON nesting accepted in a request body; protects every recursive walk later.
const MAX_DEPTH: usize = 100;

pub async fn read(body: Body) -> ApiResult<bytes::Bytes> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(e) => Err(ApiError::bad_request(format!("failed to read request body: {e}"))),
    }
}

/// The media type of a request, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decodes a JSON object body (create, update, and the JSON-shaped patch types).
pub fn decode_object(bytes: &[u8], media_type: &str) -> ApiResult<Value> {
    match media_type {
        "" | "application/json" | "*/*" => {}
        "application/vnd.kubernetes.protobuf" => {
            return faros_machinery::protobuf::decode(bytes).map_err(|e| {
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
                    return Err(ApiError::bad_request(format!(
                        "the request body is nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    /// `application/json;as=Table;g=meta.k8s.io;v=v1` (or v1beta1).
    Table,
    /// `as=PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the first acceptable representation from the Accept header, in the client's order.
pub fn negotiate(headers: &HeaderMap) -> ApiResult<Representation> {
    let Some(accept) = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Representation::Object);
    };
    let mut saw_any = false;
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut params = std::collections::HashMap::new();
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                params.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        if !matches!(
            media.as_str(),
            "application/json" | "application/*" | "*/*" | "application/yaml"
        ) {
            saw_any = true;
            continue;
        }
        match params.get("as").map(String::as_str) {
            None => return Ok(Representation::Object),
            Some("Table") if params.get("g").is_some_and(|g| g == "meta.k8s.io") => {
                return Ok(Representation::Table);
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if params.get("g").is_some_and(|g| g == "meta.k8s.io") =>
            {
                return Ok(Representation::Metadata);
            }
            _ => saw_any = true,
        }
    }
    if saw_any {
        Err(ApiError::new(
            faros_machinery::status::Reason::NotAcceptable,
            "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io",
        ))
    } else {
        Ok(Representation::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, accept.parse().unwrap());
        h
    }

    #[test]
    fn kubectl_table_accept_is_understood() {
        let h = headers(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(negotiate(&h).unwrap(), Representation::Table);
        assert_eq!(negotiate(&headers("application/json")).unwrap(), Representation::Object);
        assert_eq!(
            negotiate(&headers("application/vnd.kubernetes.protobuf, */*")).unwrap(),
            Representation::Object
        );
        assert!(negotiate(&headers("application/vnd.kubernetes.protobuf")).is_err());
    }

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
}
