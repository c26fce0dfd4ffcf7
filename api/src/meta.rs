//! Names and formats Kubernetes itself defines, shared by the hub and its controllers.

/// Finalizer of a foreground deletion: the owner stays until its dependents are gone.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer of an orphaning deletion: dependents lose their owner reference first.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Finalizer that keeps a CRD until all of its objects are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Secret type of legacy ServiceAccount token Secrets.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// Annotation on a token Secret naming its ServiceAccount.
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// Annotation on a token Secret recording its ServiceAccount's uid.
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// An object name as most kinds take it: a lowercase RFC 1123 DNS subdomain (at most 253
/// characters; dot-separated labels of lowercase letters, digits and '-', alphanumeric at
/// both ends).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The current time as Kubernetes writes timestamps: RFC 3339, whole seconds.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}
