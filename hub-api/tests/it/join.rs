//! What a joining device reads before it trusts the hub: `cluster-info` in `kube-public`, the
//! one object anonymous requests may read (as kubeadm publishes it), with the hub's URL and
//! the CA bundle its kubeconfigs trust.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

use crate::common::{HUB, TestHub};

#[tokio::test]
async fn cluster_info_is_the_one_object_anonymous_requests_read() {
    let hub = TestHub::start_with(HUB, false);
    let anonymous: Api<ConfigMap> = Api::namespaced(hub.anonymous_client().await, "kube-public");
    let info = anonymous
        .get("cluster-info")
        .await
        .expect("anonymous get of cluster-info");
    let published = kube::config::Kubeconfig::from_yaml(&info.data.as_ref().unwrap()["kubeconfig"]).unwrap();
    let cluster = published.clusters[0].cluster.clone().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(hub.url().as_str()));
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), hub.ca_pem());

    // Nothing else: not the list, not a write, not another object.
    let refused = |e: kube::Error| matches!(e, kube::Error::Api(s) if s.code == 401);
    assert!(refused(anonymous.list(&Default::default()).await.unwrap_err()));
    assert!(refused(anonymous.get("kube-root-ca.crt").await.unwrap_err()));
    let patch = serde_json::json!({"data": {"kubeconfig": "x"}});
    let write = anonymous
        .patch("cluster-info", &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    assert!(refused(write.unwrap_err()));
    // The admin sees the same object, stored like any other.
    let admin: Api<ConfigMap> = Api::namespaced(hub.client().await, "kube-public");
    assert_eq!(admin.get("cluster-info").await.unwrap().data, info.data);
}
