//! Building HTTP responses: JSON objects, Status errors, warnings.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::error::ApiError;

pub fn json(code: StatusCode, body: &Value) -> Response {
    bytes(code, serde_json::to_vec(body).unwrap_or_default(), "application/json")
}

pub fn bytes(code: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json(self.code(), &self.to_status());
        if self.reason == crate::error::Reason::RequestEntityTooLarge {
            // The rest of the body is never read, so an HTTP/1.1 connection cannot be reused;
            // say so instead of letting the client race the close (hyper drops this header
            // on HTTP/2, where it does not apply).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// `{"kind":"Status","status":"Success",...}` for deletes that leave nothing to return.
pub fn success_status(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": resource, "uid": uid},
    })
}
