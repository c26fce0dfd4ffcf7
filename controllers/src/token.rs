//! The token controller: fills Secrets of type `kubernetes.io/service-account-token` that
//! name a ServiceAccount (`kubernetes.io/service-account.name`) with a legacy token
//! (`data.token`), the CA bundle (`data.ca.crt`) and the namespace (`data.namespace`), and
//! records the ServiceAccount's uid in `kubernetes.io/service-account.uid`. As in
//! Kubernetes, a token Secret whose ServiceAccount does not exist (or has another uid) is
//! deleted. The hub refuses such a token as soon as its Secret or ServiceAccount is gone,
//! whether or not this controller has caught up.
//!
//! Minting needs the hub's signing key, which the process that owns it passes in as the
//! [`crate::ControllerConfig`]'s `token_signer`; without it (controllers running out of
//! process) token Secrets stay empty.

use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::TokenSigner;
use crate::errors::{is_conflict, is_not_found};
use crate::runtime::{self, Clusters, Next, cluster_of};
use faros_api::meta::{SA_NAME_ANNOTATION, SA_UID_ANNOTATION, TOKEN_SECRET_TYPE};

pub(crate) async fn run(clusters: Clusters, signer: Option<Arc<dyn TokenSigner>>) {
    let Some(signer) = signer else {
        tracing::info!("no ServiceAccount token signer in this process; token Secrets are not filled");
        return;
    };
    runtime::run("token", clusters, move |secret: Arc<Secret>, client: Client| {
        let signer = signer.clone();
        async move { reconcile(secret, client, signer).await }
    })
    .await;
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn reconcile(secret: Arc<Secret>, client: Client, signer: Arc<dyn TokenSigner>) -> Result<Next, kube::Error> {
    if secret.type_.as_deref() != Some(TOKEN_SECRET_TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Next::Done);
    }
    let annotations = secret.annotations();
    let Some(sa_name) = annotations.get(SA_NAME_ANNOTATION).filter(|n| !n.is_empty()).cloned() else {
        return Ok(Next::Done);
    };
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let sa = accounts.get_opt(&sa_name).await?;
    let sa_uid = sa.as_ref().and_then(|sa| sa.uid()).unwrap_or_default();
    let wanted_uid = annotations.get(SA_UID_ANNOTATION).filter(|u| !u.is_empty());
    if sa.is_none() || wanted_uid.is_some_and(|u| *u != sa_uid) {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match secrets.delete(&name, &params).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e),
        }
        return Ok(Next::Done);
    }
    let data = secret.data.clone().unwrap_or_default();
    let has = |key: &str| data.get(key).is_some_and(|v| !v.0.is_empty());
    if has("token") && has("ca.crt") && has("namespace") && wanted_uid.is_some() {
        return Ok(Next::Done);
    }
    let mut patch_data = serde_json::Map::new();
    if !has("token") {
        let cluster = cluster_of(secret.as_ref());
        let token = signer
            .issue_legacy(
                &cluster,
                &namespace,
                (&sa_name, &sa_uid),
                (&name, &secret.uid().unwrap_or_default()),
            )
            .map_err(|e| kube::Error::Service(e.into()))?;
        patch_data.insert("token".into(), b64(&token).into());
    }
    if !has("ca.crt") {
        patch_data.insert("ca.crt".into(), b64(signer.ca_pem()).into());
    }
    if !has("namespace") {
        patch_data.insert("namespace".into(), b64(&namespace).into());
    }
    let patch = json!({
        "metadata": {
            "annotations": {SA_UID_ANNOTATION: sa_uid},
            "resourceVersion": secret.resource_version(),
        },
        "data": patch_data,
    });
    match secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(Next::Done),
        // Changed meanwhile: the new version comes back through the watch.
        Err(e) if is_conflict(&e) || is_not_found(&e) => Ok(Next::Done),
        Err(e) => Err(e),
    }
}
