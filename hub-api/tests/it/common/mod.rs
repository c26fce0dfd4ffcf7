//! Test harness: the real `hub-api` binary on a free port with a temporary data directory
//! (`faros_testkit::Hub`), the real kubectl binaries, and the samples.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

pub use faros_testkit::TestDir;

/// The hub of these tests: the `hub-api` binary this package builds.
pub type TestHub = faros_testkit::Hub;

pub const HUB: faros_testkit::Launcher = faros_testkit::Launcher::Binary(env!("CARGO_BIN_EXE_hub-api"));

/// Creates the Widget CRD from `config/samples/widget-crd.yaml` through the API and waits
/// until it is Established.
pub async fn install_widget_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let text = std::fs::read_to_string(sample("widget-crd.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_norway::from_str(&text).unwrap();
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    api.create(&Default::default(), &crd)
        .await
        .expect("create the Widget CRD");
    let established = kube::runtime::wait::await_condition(
        api,
        "widgets.example.faros.sh",
        kube::runtime::wait::conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .expect("the Widget CRD became Established in time")
        .unwrap();
}

/// The path of the real kubectl for a minor version, e.g. "1.32".
pub fn kubectl_binary(version: &str) -> PathBuf {
    faros_testkit::kubectl::binary(version).unwrap_or_else(|| panic!("kubectl.{version} is not installed here"))
}

pub fn kubectl_with(kubeconfig: &Path, version: &str, args: &[&str], stdin: Option<&str>) -> Output {
    faros_testkit::kubectl::run(version, kubeconfig, &std::env::temp_dir(), args, stdin)
}

pub use faros_testkit::eventually;

/// A controller's reconciles so far, from a `/metrics` text of the hub or of `hub-api
/// controllers`.
pub fn reconciles(metrics: &str, controller: &str) -> Option<u64> {
    let series = format!("faros_controller_reconcile_duration_seconds_count{{controller=\"{controller}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|n| n.parse().ok())
}

pub fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/samples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `kubectl get ARGS -o json`, or None when kubectl fails (e.g. not found).
pub fn get_json(kubeconfig: &std::path::Path, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = kubectl_with(kubeconfig, "1.32", &all, None);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Creates workspace `root:<name>` of type `ws_type` as the admin, waits until it is Ready,
/// and returns an admin kubeconfig pointing at it.
pub fn ready_workspace(hub: &TestHub, name: &str, ws_type: &str) -> std::path::PathBuf {
    let ws = format!(
        "apiVersion: tenancy.kcp.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\nspec:\n  type:\n    name: {ws_type}\n"
    );
    let out = hub.kubectl_stdin("1.32", &["create", "-f", "-"], &ws);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    hub.kubectl_ok(
        "1.32",
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Ready",
            &format!("workspace/{name}"),
            "--timeout=60s",
        ],
    );
    hub.admin_kubeconfig_at(
        &hub.workspace_url(&format!("root:{name}")),
        &format!("{name}.kubeconfig"),
    )
}
