//! Kubernetes `Status` objects: the body of every refusal before an upgrade, and the final
//! word of an exec session on its error channel.

use http::{Response, StatusCode, header};
use serde_json::{Value, json};

/// Why an upgrade request is refused; sent as a Kubernetes `Status` instead of the `101`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    code: StatusCode,
    message: String,
    /// For SPDY without a common stream protocol: what would have worked.
    accepted_protocols: Option<String>,
}

impl Refusal {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            accepted_protocols: None,
        }
    }

    pub(crate) fn with_accepted_protocols(mut self, protocols: &[&str]) -> Refusal {
        self.accepted_protocols = Some(protocols.join(","));
        self
    }

    pub fn code(&self) -> StatusCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response to send: the Status JSON with the refusal's code.
    pub fn into_response(self) -> Response<String> {
        let mut response = status_response(self.code, &self.message);
        if let Some(value) = self
            .accepted_protocols
            .and_then(|p| header::HeaderValue::from_str(&p).ok())
        {
            response
                .headers_mut()
                .insert("x-accepted-stream-protocol-versions", value);
        }
        response
    }
}

/// A `Status` response with HTTP code `code` and the caller's `message`, for any refusal before
/// an upgrade. kubectl decodes the body of any non-101 answer as a Status and prints its message
/// (for the SPDY attempt; a refused WebSocket attempt is retried over SPDY first).
pub fn status_response(code: StatusCode, message: &str) -> Response<String> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason(code),
        "code": code.as_u16(),
    });
    let mut response = Response::new(body.to_string());
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The `StatusReason` kube-apiserver pairs with each code (apimachinery `metav1.StatusReason`).
fn reason(code: StatusCode) -> &'static str {
    match code {
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::GONE => "Gone",
        StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        StatusCode::GATEWAY_TIMEOUT => "Timeout",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        _ if code.is_server_error() => "InternalError",
        _ => "Unknown",
    }
}

/// How a remote command ended, as written on the error channel by [`crate::ExecSession::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The process exited with this code; 0 is success.
    Exited(i32),
    /// The command could not be run or was lost; kubectl prints the message and exits 1.
    Failed(String),
}

impl ExecOutcome {
    /// The v4/v5 Status JSON (client-go `tools/remotecommand/v4.go` decodes it): Success, or
    /// NonZeroExitCode with the code as the message of an `ExitCode` cause, which kubectl turns
    /// into its own exit code.
    pub(crate) fn status_json(&self) -> Vec<u8> {
        let value: Value = match self {
            ExecOutcome::Exited(0) => json!({ "metadata": {}, "status": "Success" }),
            ExecOutcome::Exited(code) => json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: {code}"),
                "reason": "NonZeroExitCode",
                // StatusCause.Type is serialised as "reason".
                "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
            }),
            ExecOutcome::Failed(message) => json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "code": 500,
            }),
        };
        value.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_travel_as_kubectl_reads_them() {
        let status: Value = serde_json::from_slice(&ExecOutcome::Exited(3).status_json()).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(
            status["details"]["causes"][0],
            json!({ "reason": "ExitCode", "message": "3" })
        );
        let ok: Value = serde_json::from_slice(&ExecOutcome::Exited(0).status_json()).unwrap();
        assert_eq!(ok["status"], "Success");
    }

    #[test]
    fn refusals_are_status_objects() {
        let response = status_response(StatusCode::NOT_FOUND, "pods \"p2\" not found");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body: Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(body["code"], 404);
    }
}
