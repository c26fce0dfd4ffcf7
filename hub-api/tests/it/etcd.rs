//! The hub on etcd (`--storage etcd`): kubectl's everyday commands, and two hub processes
//! sharing one etcd prefix, each seeing the other's writes in its reads and watches.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use faros_testkit::etcd::Etcd;
use faros_testkit::kubectl::Watch;

use crate::common::{HUB, TestHub, kubectl_with, ready_workspace};

const V: &str = faros_testkit::kubectl::BASELINE;

fn start_hub(etcd: &Etcd, prefix: &str) -> TestHub {
    let args = etcd.hub_args(prefix, None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestHub::start_with_args(HUB, true, &args)
}

fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    faros_testkit::succeeded(&format!("kubectl {args:?}"), &kubectl_with(kubeconfig, V, args, None))
}

fn ok_stdin(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    faros_testkit::succeeded(
        &format!("kubectl {args:?}"),
        &kubectl_with(kubeconfig, V, args, Some(stdin)),
    )
}

/// A kube-rs client for a kubeconfig.
async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// `kubectl get configmaps --watch --output-watch-events` in the background.
fn watch_configmaps(kubeconfig: &Path) -> Watch {
    Watch::start(V, kubeconfig, "configmaps", &[])
}

#[test]
fn kubectl_against_a_hub_on_etcd() {
    let etcd = Etcd::start();
    let prefix = "/faros-kubectl";
    let mut hub = start_hub(&etcd, prefix);
    let tenant = ready_workspace(&hub, "tenant", "universal");

    ok(&tenant, &["create", "configmap", "first", "--from-literal=k=1"]);
    let mut watch = watch_configmaps(&tenant);
    // The initial list shows the existing object: the watch is open.
    watch.expect("ADDED", "first", Duration::from_secs(30));

    ok(&tenant, &["create", "configmap", "second", "--from-literal=k=1"]);
    watch.expect("ADDED", "second", Duration::from_secs(30));
    let value = ok(&tenant, &["get", "configmap", "second", "-o", "jsonpath={.data.k}"]);
    assert_eq!(value, "1");
    let names = ok(&tenant, &["get", "configmaps", "-o", "name"]);
    assert!(
        names.contains("configmap/first") && names.contains("configmap/second"),
        "{names}"
    );
    let paged = ok(&tenant, &["get", "configmaps", "--chunk-size=1", "-o", "name"]);
    assert_eq!(paged, names);

    ok(
        &tenant,
        &["patch", "configmap", "second", "-p", r#"{"data":{"k":"2"}}"#],
    );
    watch.expect("MODIFIED", "second", Duration::from_secs(30));
    let replaced = ok(&tenant, &["get", "configmap", "second", "-o", "yaml"]).replace("k: \"2\"", "k: \"3\"");
    ok_stdin(&tenant, &["replace", "-f", "-"], &replaced);
    watch.expect("MODIFIED", "second", Duration::from_secs(30));
    assert_eq!(
        ok(&tenant, &["get", "configmap", "second", "-o", "jsonpath={.data.k}"]),
        "3"
    );
    // A stale resourceVersion is a conflict, as with any other storage.
    let stale = kubectl_with(&tenant, V, &["replace", "-f", "-"], Some(&replaced));
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("has been modified"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );

    ok(&tenant, &["delete", "configmap", "first"]);
    watch.expect("DELETED", "first", Duration::from_secs(30));
    drop(watch);

    // Everything lives in etcd: a restarted hub serves it again.
    hub.restart();
    let names = ok(&tenant, &["get", "configmaps", "-o", "name"]);
    assert!(
        names.contains("configmap/second") && !names.contains("configmap/first"),
        "{names}"
    );
}

/// Two hub processes on one etcd prefix: a write through one is seen by a GET on the other
/// right after, and by a watch open on the other.
#[test]
fn two_hubs_share_one_etcd_prefix() {
    let etcd = Etcd::start();
    let prefix = "/faros-replicas";
    let a = start_hub(&etcd, prefix);
    let tenant_a = ready_workspace(&a, "shared", "universal");

    // The second replica serves the same identity: the first one's PKI, copied before start.
    let dir_b = std::env::temp_dir().join(format!("faros-hub-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir_b.join("pki")).unwrap();
    for entry in std::fs::read_dir(a.dir.join("pki")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir_b.join("pki").join(entry.file_name())).unwrap();
    }
    let args = etcd.hub_args(prefix, None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Controllers run in the first replica only.
    let b = TestHub::start_in(HUB, dir_b, false, &args, None);
    let tenant_b = b.admin_kubeconfig_at(&b.workspace_url("root:shared"), "shared-b.kubeconfig");
    // One identity: the first replica's kubeconfig works against the second.
    let a_on_b = a.admin_kubeconfig_at(&b.workspace_url("root:shared"), "shared-a-on-b.kubeconfig");
    ok(&a_on_b, &["get", "namespaces"]);

    ok(&tenant_b, &["create", "configmap", "seen", "--from-literal=k=1"]);
    let mut watch = watch_configmaps(&tenant_b);
    watch.expect("ADDED", "seen", Duration::from_secs(30));

    for i in 0..10 {
        let name = format!("through-a-{i}");
        ok(&tenant_a, &["create", "configmap", &name, "--from-literal=k=1"]);
        // No waiting: B's read catches up with etcd first.
        let got = kubectl_with(&tenant_b, V, &["get", "configmap", &name, "-o", "name"], None);
        assert!(
            got.status.success(),
            "{name} written through A was not found on B: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        watch.expect("ADDED", &name, Duration::from_secs(30));
    }
    ok(
        &tenant_a,
        &["patch", "configmap", "seen", "-p", r#"{"data":{"k":"2"}}"#],
    );
    assert_eq!(
        ok(&tenant_b, &["get", "configmap", "seen", "-o", "jsonpath={.data.k}"]),
        "2"
    );
    watch.expect("MODIFIED", "seen", Duration::from_secs(30));
    ok(&tenant_a, &["delete", "configmap", "seen"]);
    let gone = kubectl_with(&tenant_b, V, &["get", "configmap", "seen"], None);
    assert!(!gone.status.success(), "deleted through A but still on B");
    watch.expect("DELETED", "seen", Duration::from_secs(30));
    drop(watch);

    // The same without kubectl's start-up time between the write and the read: a client on
    // each replica, the read sent the moment the write is acknowledged.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use k8s_openapi::api::core::v1::ConfigMap;
        let on_a: kube::Api<ConfigMap> = kube::Api::namespaced(client(&tenant_a).await, "default");
        let on_b: kube::Api<ConfigMap> = kube::Api::namespaced(client(&tenant_b).await, "default");
        for i in 0..50 {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(format!("fast-{i}"));
            let created = on_a.create(&Default::default(), &cm).await.unwrap();
            let read = on_b.get(&format!("fast-{i}")).await;
            assert!(read.is_ok(), "fast-{i} written through A was not found on B: {read:?}");
            assert_eq!(
                read.unwrap().metadata.resource_version,
                created.metadata.resource_version
            );
            on_a.delete(&format!("fast-{i}"), &Default::default()).await.unwrap();
            let read = on_b.get(&format!("fast-{i}")).await;
            assert!(read.is_err(), "fast-{i} deleted through A was still on B");
        }
    });

    // And the other way round, read by a list.
    ok(&tenant_b, &["create", "configmap", "through-b", "--from-literal=k=1"]);
    let names = ok(&tenant_a, &["get", "configmaps", "-o", "name"]);
    assert!(names.contains("configmap/through-b"), "{names}");
}

/// A hub told to use an etcd that is not there, or none at all, says so and exits.
#[test]
fn startup_errors_name_the_etcd_problem() {
    let dir = std::env::temp_dir().join(format!("faros-hub-{}", uuid::Uuid::new_v4()));
    let nobody = format!("http://127.0.0.1:{}", faros_testkit::etcd::free_port());
    let run = |args: &[&str]| {
        let started = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_hub-api"))
            .arg("start")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--secure-port", "0"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unreachable = run(&["--storage", "etcd", "--etcd-servers", &nobody]);
    assert!(
        unreachable.contains("etcd") && unreachable.contains(&nobody),
        "{unreachable}"
    );
    let missing = run(&["--storage", "etcd"]);
    assert!(missing.contains("--etcd-servers"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}
