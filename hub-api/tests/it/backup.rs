//! `hub-api snapshot save|restore`: a snapshot taken while the hub serves writes restores,
//! with the PKI directory, into a new data directory that a hub starts on with everything
//! acknowledged before the snapshot, and the same identity (old kubeconfigs still work).

use std::process::Command;

use crate::common::{HUB, TestHub};

fn hub_api(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hub-api")).args(args).output().unwrap()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn snapshot_of_a_running_hub_restores_into_a_new_data_directory() {
    let hub = TestHub::start(HUB);
    for i in 0..20 {
        hub.kubectl_ok(
            "1.32",
            &["create", "configmap", &format!("before-{i}"), "--from-literal=k=v"],
        );
    }
    let snapshot = hub.dir.join("backup.db");
    let data_dir = hub.dir.to_str().unwrap();
    let out = hub_api(&["snapshot", "save", snapshot.to_str().unwrap(), "--data-dir", data_dir]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved"));
    // Written after the snapshot: not in the restored hub.
    hub.kubectl_ok("1.32", &["create", "configmap", "after", "--from-literal=k=v"]);

    // A second save to the same file is refused; so is a restore over a live database.
    let again = hub_api(&["snapshot", "save", snapshot.to_str().unwrap(), "--data-dir", data_dir]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let over = hub_api(&[
        "snapshot",
        "restore",
        snapshot.to_str().unwrap(),
        "--data-dir",
        data_dir,
    ]);
    assert!(!over.status.success());
    assert!(String::from_utf8_lossy(&over.stderr).contains("new data directory"));

    let restored_dir = std::env::temp_dir().join(format!("faros-restored-{}", uuid::Uuid::new_v4()));
    let out = hub_api(&[
        "snapshot",
        "restore",
        snapshot.to_str().unwrap(),
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    copy_dir(&hub.dir.join("pki"), &restored_dir.join("pki"));
    let mut kubeconfig = kube::config::Kubeconfig::read_from(hub.kubeconfig()).unwrap();
    let ca = hub.ca_pem();
    drop(hub);

    let restored = TestHub::start_in(HUB, restored_dir, true, &[], None);
    assert_eq!(restored.ca_pem(), ca, "the restored hub keeps its CA");
    let names = restored.kubectl_ok("1.32", &["get", "configmaps", "-o", "name"]);
    for i in 0..20 {
        assert!(names.contains(&format!("configmap/before-{i}")), "{names}");
    }
    assert!(!names.contains("configmap/after"), "{names}");
    // A kubeconfig issued by the original hub is still valid (same CA), pointed at the new port.
    for cluster in kubeconfig.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        cluster.server = Some(restored.url());
    }
    let moved = restored.dir.join("old-admin.kubeconfig");
    faros_kubeconfig::write(&moved, &kubeconfig).unwrap();
    let out = crate::common::kubectl_with(&moved, "1.32", &["get", "configmap", "before-0"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
