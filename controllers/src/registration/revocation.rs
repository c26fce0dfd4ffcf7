//! Deleting a Registration revokes its credential before the object goes.

use faros_api::edge::{self, REVOKE_FINALIZER, Registration};
use kube::ResourceExt;
use kube::api::DeleteParams;

use super::Apis;
use crate::errors::{is_forbidden, is_not_found};
use crate::finalizer;
use crate::runtime::{Next, cluster_of};

pub(super) async fn revoke(reg: &Registration, apis: &Apis) -> Result<Next, kube::Error> {
    let name = reg.name_any();
    let ns = reg.namespace().unwrap_or_default();
    let account = edge::registration_account(&name);
    let secret_name = edge::registration_token_secret(&name);
    if !finalizer::has(reg, REVOKE_FINALIZER) {
        return Ok(Next::Done);
    }
    // Revoke first: the token dies with its Secret and ServiceAccount. Where the
    // workspace does not (or no longer) accept the edge API's claims, those objects are
    // out of reach here; they are owned by the Registration, so the garbage collector
    // removes them once it is gone, and its deletion must not wait on access it lacks.
    let gone = |r: Result<(), kube::Error>| match r {
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) if is_forbidden(&e) => Ok(()),
        other => other,
    };
    gone(
        apis.secrets
            .delete(&secret_name, &DeleteParams::background())
            .await
            .map(|_| ()),
    )?;
    gone(
        apis.bindings
            .delete(&account, &DeleteParams::background())
            .await
            .map(|_| ()),
    )?;
    gone(
        apis.roles
            .delete(&account, &DeleteParams::background())
            .await
            .map(|_| ()),
    )?;
    gone(
        apis.accounts
            .delete(&account, &DeleteParams::background())
            .await
            .map(|_| ()),
    )?;
    finalizer::release(&apis.registrations, reg, REVOKE_FINALIZER).await?;
    tracing::info!(cluster = %cluster_of(reg), namespace = %ns, registration = %name, "registration revoked");
    Ok(Next::Done)
}
