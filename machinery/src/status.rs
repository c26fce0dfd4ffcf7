//! The one error type of the hub. Every failure a client can see is rendered as a
//! Kubernetes `Status` object with the HTTP code, reason and field causes that
//! kube-apiserver would use for the same mistake.

use http::StatusCode;
use serde_json::{Value, json};

/// Why a single field was rejected (`metav1.StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The kind of problem, e.g. `FieldValueInvalid` (Kubernetes' `CauseType`).
    pub reason: CauseType,
    /// JSON-path-like location, e.g. `spec.replicas` or `metadata.labels[app]`.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseType {
    FieldValueRequired,
    FieldValueInvalid,
    FieldValueNotSupported,
    FieldValueDuplicate,
    FieldValueTooLong,
    FieldValueTooMany,
    FieldValueTypeInvalid,
    FieldValueForbidden,
    FieldUnknown,
    FieldManagerConflict,
}

impl CauseType {
    pub fn as_str(self) -> &'static str {
        match self {
            CauseType::FieldValueRequired => "FieldValueRequired",
            CauseType::FieldValueInvalid => "FieldValueInvalid",
            CauseType::FieldValueNotSupported => "FieldValueNotSupported",
            CauseType::FieldValueDuplicate => "FieldValueDuplicate",
            CauseType::FieldValueTooLong => "FieldValueTooLong",
            CauseType::FieldValueTooMany => "FieldValueTooMany",
            CauseType::FieldValueTypeInvalid => "FieldValueTypeInvalid",
            CauseType::FieldValueForbidden => "FieldValueForbidden",
            CauseType::FieldUnknown => "FieldValueInvalid",
            CauseType::FieldManagerConflict => "FieldManagerConflict",
        }
    }

    /// The short phrase Kubernetes puts in front of the detail in messages.
    fn phrase(self) -> &'static str {
        match self {
            CauseType::FieldValueRequired => "Required value",
            CauseType::FieldValueInvalid => "Invalid value",
            CauseType::FieldValueNotSupported => "Unsupported value",
            CauseType::FieldValueDuplicate => "Duplicate value",
            CauseType::FieldValueTooLong => "Too long",
            CauseType::FieldValueTooMany => "Too many",
            CauseType::FieldValueTypeInvalid => "Invalid value",
            CauseType::FieldValueForbidden => "Forbidden",
            CauseType::FieldUnknown => "Unknown field",
            CauseType::FieldManagerConflict => "Conflict",
        }
    }
}

impl FieldError {
    pub fn new(reason: CauseType, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueRequired, field, message)
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueInvalid, field, message)
    }
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueNotSupported, field, message)
    }
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueForbidden, field, message)
    }
    pub(crate) fn too_long(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueTooLong, field, message)
    }
    pub fn duplicate(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueDuplicate, field, message)
    }
    pub(crate) fn type_invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::FieldValueTypeInvalid, field, message)
    }

    /// `spec.x: Invalid value: "detail"`, the way kube-apiserver phrases a cause.
    pub(crate) fn to_message(&self) -> String {
        let mut out = String::new();
        if !self.field.is_empty() {
            out.push_str(&self.field);
            out.push_str(": ");
        }
        out.push_str(&self.cause_message());
        out
    }

    /// `Invalid value: detail`, or just the phrase when there is no detail.
    pub(crate) fn cause_message(&self) -> String {
        if self.message.is_empty() {
            self.reason.phrase().to_string()
        } else {
            format!("{}: {}", self.reason.phrase(), self.message)
        }
    }
}

/// The `reason` of a failure `Status` (`metav1.StatusReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Timeout,
    InternalError,
    ServiceUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::Timeout => "Timeout",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    pub fn code(self) -> StatusCode {
        match self {
            Reason::BadRequest => StatusCode::BAD_REQUEST,
            Reason::Unauthorized => StatusCode::UNAUTHORIZED,
            Reason::Forbidden => StatusCode::FORBIDDEN,
            Reason::NotFound => StatusCode::NOT_FOUND,
            Reason::AlreadyExists | Reason::Conflict => StatusCode::CONFLICT,
            Reason::Gone | Reason::Expired => StatusCode::GONE,
            Reason::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Reason::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reason::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Reason::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Reason::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Reason::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Reason::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Which object an error is about (`metav1.StatusDetails` without the causes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub group: String,
    /// The resource (plural), as Kubernetes puts it in `details.kind`.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    pub subject: Option<Box<Subject>>,
    pub causes: Vec<FieldError>,
    /// Seconds a client should wait before retrying (`Retry-After`).
    pub retry_after: Option<u32>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.as_str())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            subject: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_subject(mut self, group: &str, resource: &str, name: &str) -> Self {
        self.subject = Some(Box::new(Subject {
            group: group.to_string(),
            kind: resource.to_string(),
            name: name.to_string(),
        }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(Reason::Unauthorized, "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Reason::Forbidden, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(Reason::MethodNotAllowed, message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(Reason::UnsupportedMediaType, message)
    }

    /// `the server could not find the requested resource`: an unknown path or kind.
    pub fn no_such_resource() -> Self {
        Self::new(Reason::NotFound, "the server could not find the requested resource")
    }

    /// `configmaps "x" not found`
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_subject(group, resource, name)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_subject(group, resource, name)
    }

    /// The optimistic-concurrency failure every client knows how to retry.
    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        Self::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                qualified(group, resource)
            ),
        )
        .with_subject(group, resource, name)
    }

    /// 422 with field causes, phrased like kube-apiserver:
    /// `Kind "name" is invalid: [a: Invalid value: ..., b: Required value]`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<FieldError>) -> Self {
        let detail = match causes.as_slice() {
            [one] => one.to_message(),
            many => format!(
                "[{}]",
                many.iter().map(FieldError::to_message).collect::<Vec<_>>().join(", ")
            ),
        };
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            reason: Reason::Invalid,
            message: format!("{qualified_kind} \"{name}\" is invalid: {detail}"),
            subject: Some(Box::new(Subject {
                group: group.to_string(),
                kind: kind.to_string(),
                name: name.to_string(),
            })),
            causes,
            retry_after: None,
        }
    }

    /// A watch or list from a revision the hub no longer remembers.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(Reason::Expired, message)
    }

    pub fn too_large() -> Self {
        Self::new(
            Reason::RequestEntityTooLarge,
            "the request body is too large (limit 3 MiB)",
        )
    }

    pub fn code(&self) -> StatusCode {
        self.reason.code()
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code().as_u16(),
        });
        if self.subject.is_some() || !self.causes.is_empty() || self.retry_after.is_some() {
            let mut details = serde_json::Map::new();
            if let Some(subject) = &self.subject {
                if !subject.name.is_empty() {
                    details.insert("name".into(), subject.name.clone().into());
                }
                if !subject.group.is_empty() {
                    details.insert("group".into(), subject.group.clone().into());
                }
                if !subject.kind.is_empty() {
                    details.insert("kind".into(), subject.kind.clone().into());
                }
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|c| {
                        json!({
                            "reason": c.reason.as_str(),
                            "message": c.cause_message(),
                            "field": c.field,
                        })
                    })
                    .collect();
                details.insert("causes".into(), causes.into());
            }
            if let Some(seconds) = self.retry_after {
                details.insert("retryAfterSeconds".into(), seconds.into());
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_kube_apiserver() {
        let status = ApiError::not_found("", "configmaps", "cm1").to_status();
        assert_eq!(status["message"], "configmaps \"cm1\" not found");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["kind"], "configmaps");
    }

    #[test]
    fn invalid_lists_every_cause() {
        let err = ApiError::invalid(
            "Widget",
            "example.com",
            "w",
            vec![
                FieldError::required("spec.size", "must be set"),
                FieldError::invalid("metadata.name", "\"A\": must be lowercase"),
            ],
        );
        assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.message.starts_with("Widget.example.com \"w\" is invalid: ["));
        assert_eq!(err.to_status()["details"]["causes"][1]["field"], "metadata.name");
    }
}
