//! The hub driven by the official Python `kubernetes` client (installed by scripts/test.sh):
//! ConfigMaps through CoreV1Api (create, list, watch with and without a resourceVersion,
//! merge / strategic merge / JSON patch, delete) and the Widget custom resource through
//! CustomObjectsApi. The checks themselves are in tests/python/client_checks.py.

use std::path::Path;
use std::time::Duration;

use crate::common::{HUB, TestHub, install_widget_crd};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

/// Fails (never skips) when the client is missing: the suite promises to exercise it.
pub(crate) fn require_python_kubernetes() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot be run ({e}); the Python client tests need it"));
    assert!(
        out.status.success(),
        "the Python `kubernetes` client cannot be imported, so this test cannot run.\n\
         Install it with scripts/test.sh (which does `python3 -m pip install 'kubernetes>=31'`).\n\
         python3 said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn python_client_configmaps_watches_patches_and_custom_objects() {
    require_python_kubernetes();
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_checks.py");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(hub.kubeconfig())
        .env("HOME", std::env::temp_dir())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the Python checks finished within 3 minutes")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client checks failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for step in [
        "PASS create/get/list",
        "PASS watch with and without resource_version",
        "PASS merge/strategic/json patch, conflict, delete",
        "PASS custom objects create/list/get/patch/status/watch/delete",
    ] {
        assert!(stdout.contains(step), "missing {step:?}:\n{stdout}\n{stderr}");
    }
    assert_eq!(stdout.lines().last(), Some("ALL OK"), "{stdout}\n{stderr}");

    // What the Python client wrote is what kube-rs reads.
    let cms: Api<ConfigMap> = Api::namespaced(client, "pyclient");
    let b = cms.get("cm-b").await.unwrap();
    assert_eq!(b.data.unwrap()["x"], "2");
    assert!(cms.get_opt("cm-a").await.unwrap().is_none());
}
