//! `hub-api migrate`: a hub's objects moved from SQLite to etcd and back, checked by a hub
//! started on each destination with the same identity: workspaces, their objects and old
//! credentials all carry over.

use std::process::Command;

use faros_testkit::etcd::Etcd;

use crate::common::{HUB, TestHub, kubectl_with, ready_workspace};

fn migrate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hub-api"))
        .arg("migrate")
        .args(args)
        .output()
        .unwrap()
}

fn configmaps(kubeconfig: &std::path::Path) -> String {
    faros_testkit::succeeded(
        "kubectl get configmaps",
        &kubectl_with(kubeconfig, "1.32", &["get", "configmaps", "-o", "name"], None),
    )
}

#[test]
fn a_hub_moves_from_sqlite_to_etcd_and_back() {
    let mut hub = TestHub::start(HUB);
    let tenant = ready_workspace(&hub, "moved", "universal");
    for i in 0..10 {
        faros_testkit::succeeded(
            "kubectl create configmap",
            &kubectl_with(
                &tenant,
                "1.32",
                &["create", "configmap", &format!("cm-{i}"), "--from-literal=k=v"],
                None,
            ),
        );
    }
    let before = configmaps(&tenant);
    hub.stop();
    let old_dir = hub.dir.to_str().unwrap().to_string();
    let pki = format!("{old_dir}/pki");

    let etcd = Etcd::start();
    let urls = etcd.endpoints().join(",");
    let out = migrate(&[
        "--from",
        &format!("sqlite:{old_dir}"),
        "--to",
        &format!("etcd:{urls}"),
        "--etcd-prefix",
        "/moved",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("copied"), "{said}");

    // Into a store that already holds keys: refused, nothing merged.
    let out = migrate(&[
        "--from",
        &format!("sqlite:{old_dir}"),
        "--to",
        &format!("etcd:{urls}"),
        "--etcd-prefix",
        "/moved",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From a directory without a database: refused.
    let empty = std::env::temp_dir().join(format!("faros-empty-{}", uuid::Uuid::new_v4()));
    let out = migrate(&[
        "--from",
        &format!("sqlite:{}", empty.display()),
        "--to",
        &format!("etcd:{urls}"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no database"));
    let out = migrate(&["--from", "postgres:x", "--to", &format!("etcd:{urls}")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no store"));

    // A hub on etcd with the same identity serves what was moved, to the same credentials.
    let on_etcd_args = etcd.hub_args("/moved", Some(std::path::Path::new(&pki)));
    let on_etcd_args: Vec<&str> = on_etcd_args.iter().map(String::as_str).collect();
    let on_etcd = TestHub::start_with_args(HUB, true, &on_etcd_args);
    let tenant_etcd = on_etcd.admin_kubeconfig_at(&on_etcd.workspace_url("root:moved"), "moved.kubeconfig");
    assert_eq!(configmaps(&tenant_etcd), before);
    let mut old_admin = kube::config::Kubeconfig::read_from(&tenant).unwrap();
    for cluster in old_admin.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        cluster.server = Some(on_etcd.workspace_url("root:moved"));
    }
    let old_on_etcd = on_etcd.dir.join("old-admin.kubeconfig");
    faros_kubeconfig::write(&old_on_etcd, &old_admin).unwrap();
    assert_eq!(configmaps(&old_on_etcd), before);
    faros_testkit::succeeded(
        "kubectl create configmap on etcd",
        &kubectl_with(&tenant_etcd, "1.32", &["create", "configmap", "made-on-etcd"], None),
    );
    drop(on_etcd);

    // And back, into a new data directory.
    let back_dir = std::env::temp_dir().join(format!("faros-back-{}", uuid::Uuid::new_v4()));
    let out = migrate(&[
        "--from",
        &format!("etcd:{urls}"),
        "--etcd-prefix",
        "/moved",
        "--to",
        &format!("sqlite:{}", back_dir.display()),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = TestHub::start_in(HUB, back_dir, true, &["--pki-dir", &pki], None);
    let tenant_back = back.admin_kubeconfig_at(&back.workspace_url("root:moved"), "moved.kubeconfig");
    let names = configmaps(&tenant_back);
    for i in 0..10 {
        assert!(names.contains(&format!("configmap/cm-{i}\n")), "{names}");
    }
    assert!(names.contains("configmap/made-on-etcd"), "{names}");
    drop(hub);
}
