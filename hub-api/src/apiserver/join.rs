//! What a device that joins (`edge-agent join`) is given and refused.
//!
//! - Before it trusts the hub, it reads the ConfigMap `cluster-info` in `kube-public` of the
//!   root workspace without credentials, as kubeadm's nodes do: a kubeconfig with the hub's
//!   URL and CA bundle, which the device accepts only if the CA matches the hash it was given
//!   (`--ca-cert-hash`). It is the one object anonymous requests may read; bootstrap writes it.
//! - A registration credential (the token of ServiceAccount `faros-reg-<name>`) stops working
//!   once its Registration is past `spec.expirationTime`, with a message that says so rather
//!   than RBAC's generic refusal.

use axum::response::Response;
use http::{Method, StatusCode};

use super::{Hub, response};
use crate::auth::User;
use crate::auth::serviceaccount::split_username;
use faros_api::edge::{REGISTRATION_ACCOUNT_PREFIX, RegistrationSpec};
use faros_machinery::status::{ApiError, ApiResult};

/// The namespace and name of the ConfigMap, as kubeadm names them.
pub(crate) const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
pub(crate) const CLUSTER_INFO: &str = "cluster-info";

/// The ConfigMap `cluster-info` for a GET of it at the hub's root (the root workspace).
pub(super) fn cluster_info(hub: &Hub, method: &Method, path: &str) -> Option<Response> {
    let wanted = format!("/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO}");
    if method != Method::GET || path.trim_end_matches('/') != wanted {
        return None;
    }
    let root = crate::tenancy::resolve(&hub.cache, faros_api::tenancy::ROOT)?;
    let found = hub.catalog.lookup(&root.name, "", "v1", "configmaps").and_then(|kind| {
        hub.cache
            .get(&kind.key(&root.name, Some(CLUSTER_INFO_NAMESPACE), CLUSTER_INFO))
    });
    Some(match found {
        Some(object) => response::bytes(StatusCode::OK, object.json().clone(), "application/json"),
        None => response::error(ApiError::not_found("", "configmaps", CLUSTER_INFO)),
    })
}

/// Refuses every request of a registration credential whose Registration has expired.
pub(super) fn refuse_expired_registration(hub: &Hub, user: &User) -> ApiResult<()> {
    let Some((namespace, account)) = split_username(&user.name) else {
        return Ok(());
    };
    let (Some(registration), Some(cluster)) = (account.strip_prefix(REGISTRATION_ACCOUNT_PREFIX), user.home_cluster())
    else {
        return Ok(());
    };
    let Some(kind) = hub
        .catalog
        .lookup(cluster, faros_api::EDGE_GROUP, faros_api::EDGE_VERSION, "registrations")
    else {
        return Ok(());
    };
    let Some(object) = hub.cache.get(&kind.key(cluster, Some(namespace), registration)) else {
        return Ok(());
    };
    let Ok(spec) = serde_json::from_value::<RegistrationSpec>(object.value()["spec"].clone()) else {
        return Ok(());
    };
    if !spec.expired(jiff::Timestamp::now()) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "the token of Registration {registration:?} in namespace {namespace:?} has expired (at {}): it admits no \
         new agents; generate a new one with `kubectl faros agent generate`",
        spec.expiration_time.as_deref().unwrap_or_default()
    )))
}
