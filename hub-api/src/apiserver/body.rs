//! Request bodies and content negotiation: size limits, decoding by Content-Type, and
//! what the client accepts back.

use axum::body::Body;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};

use faros_machinery::status::{ApiError, ApiResult};

/// Largest request body accepted, as kube-apiserver's default (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

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
}
