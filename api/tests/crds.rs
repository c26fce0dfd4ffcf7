//! `config/crds/` holds the CRDs generated from these types. This test regenerates them when
//! `FAROS_UPDATE_CRDS=1` and otherwise fails when a file differs from what the types produce,
//! so the published schema and the Rust types cannot drift apart.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

const HEADER: &str = "# Generated from the faros-api types; do not edit.\n\
                      # Regenerate: FAROS_UPDATE_CRDS=1 cargo test -p faros-api --test crds\n";

fn all_crds() -> Vec<CustomResourceDefinition> {
    use faros_api::{apis, edge, tenancy, workloads};
    vec![
        edge::Agent::crd(),
        edge::Registration::crd(),
        workloads::Workload::crd(),
        workloads::Placement::crd(),
        tenancy::Workspace::crd(),
        tenancy::WorkspaceType::crd(),
        tenancy::LogicalCluster::crd(),
        apis::APIResourceSchema::crd(),
        apis::APIExport::crd(),
        apis::APIBinding::crd(),
    ]
}

fn crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/crds")
}

/// `<group>_<plural>.yaml`, as controller-gen names them.
fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

fn render(crd: &CustomResourceDefinition) -> String {
    format!(
        "{HEADER}{}",
        serde_norway::to_string(crd).expect("CRDs serialise to YAML")
    )
}

#[test]
fn config_crds_match_the_types() {
    let dir = crd_dir();
    let update = std::env::var("FAROS_UPDATE_CRDS").is_ok_and(|v| v == "1");
    let crds = all_crds();
    let expected: Vec<String> = crds.iter().map(file_name).collect();
    let mut problems = Vec::new();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for crd in &crds {
        let path = dir.join(file_name(crd));
        let wanted = render(crd);
        if update {
            std::fs::write(&path, &wanted).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(found) if found == wanted => {}
            Ok(_) => problems.push(format!("{} differs from the types", path.display())),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    // Files for kinds that no longer exist are stale too.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !expected.contains(&name) {
            if update {
                std::fs::remove_file(dir.join(&name)).unwrap();
            } else {
                problems.push(format!("{name} is not generated from any type"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "config/crds is out of date:\n  {}\nRegenerate with: FAROS_UPDATE_CRDS=1 cargo test -p faros-api --test crds",
        problems.join("\n  ")
    );
}

#[test]
fn generated_crds_parse_back() {
    for crd in all_crds() {
        let parsed: CustomResourceDefinition = serde_norway::from_str(&render(&crd)).unwrap();
        assert_eq!(parsed, crd, "{} round-trips through YAML", file_name(&crd));
    }
}
