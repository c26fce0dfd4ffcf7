//! Building HTTP responses: JSON objects, Status errors, warnings.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use faros_machinery::status::ApiError;

pub fn json(code: StatusCode, body: &Value) -> Response {
    bytes(code, serde_json::to_vec(body).unwrap_or_default(), "application/json")
}

pub fn bytes(code: StatusCode, body: impl Into<bytes::Bytes>, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Adds `Warning: 299 - "..."` headers, the way kube-apiserver reports non-fatal problems.
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = w.replace(['"', '\\'], "'").replace(['\r', '\n'], " ");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// The `Status` a failure answers with, and the headers that go with it.
pub fn error(e: ApiError) -> Response {
    let mut response = json(e.code(), &e.to_status());
    if e.reason == faros_machinery::status::Reason::RequestEntityTooLarge {
        // The rest of the body is never read, so an HTTP/1.1 connection cannot be reused;
        // say so instead of letting the client race the close (hyper drops this header
        // on HTTP/2, where it does not apply).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(seconds) = e.retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
