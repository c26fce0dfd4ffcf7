//! What an API error means to a controller, by its HTTP code.

/// The object (or its namespace or workspace) does not exist.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The write raced with another, or its preconditions no longer hold.
pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The controller may not do this (e.g. through an APIExport view a workspace stopped sharing).
pub(crate) fn is_forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}
