//! What the project ships besides its binaries, checked with the tools that consume it: the
//! container images built and run with podman, the systemd units with `systemd-analyze`, the
//! kustomize base with `kubectl kustomize` and the Kubernetes API types, and the krew
//! manifest with krew's own rules and kubectl's plugin discovery.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faros_testkit::podman::Sandbox;
use faros_testkit::{eventually, kubectl, succeeded};
use serde_json::Value;

/// The user the images run as (`USER` in the Containerfiles, `runAsUser` on Kubernetes).
const IMAGE_UID: u32 = 65532;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faros-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

fn run_ok(what: &str, command: &mut Command) -> String {
    succeeded(what, &command.output().unwrap_or_else(|e| panic!("{what}: {e}")))
}

/// Imports `tag`: an image holding only the shared libraries `binaries` load (as `ldd`
/// finds them on this machine) and an empty `/tmp` — what the Containerfiles' default base
/// provides them, since no image can be pulled here.
fn import_library_image(sandbox: &Sandbox, tag: &str, binaries: &[&Path]) {
    let root = sandbox.dir.join("base-root");
    for binary in binaries {
        let ldd = run_ok("ldd", Command::new("ldd").arg(binary));
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`
        for library in ldd
            .lines()
            .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        {
            let target = root.join(library.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().expect("a library's directory")).expect("create a directory");
            std::fs::copy(library, &target).unwrap_or_else(|e| panic!("copy {library}: {e}"));
        }
    }
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create /tmp");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).expect("chmod /tmp");
    let tar = sandbox.dir.join("base.tar");
    run_ok(
        "tar",
        Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."),
    );
    sandbox.podman_ok(&["import", "--quiet", tar.to_str().expect("a UTF-8 path"), tag]);
}

/// Builds `deploy/container/<name>.Containerfile` on `base` from `binary`, as `tag`.
fn build_image(sandbox: &Sandbox, name: &str, binary: &Path, base: &str, tag: &str) {
    let context = sandbox.dir.join(format!("context-{name}"));
    std::fs::create_dir_all(&context).expect("create the build context");
    if std::fs::hard_link(binary, context.join(name)).is_err() {
        std::fs::copy(binary, context.join(name)).expect("copy the binary into the build context");
    }
    let containerfile = repo().join(format!("deploy/container/{name}.Containerfile"));
    sandbox.podman_ok(&[
        "build",
        "--quiet",
        "--pull=never",
        "--build-arg",
        &format!("BASE={base}"),
        "-f",
        containerfile.to_str().expect("a UTF-8 path"),
        "-t",
        tag,
        context.to_str().expect("a UTF-8 path"),
    ]);
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    succeeded(
        &format!("kubectl {args:?}"),
        &kubectl::run(kubectl::BASELINE, kubeconfig, &std::env::temp_dir(), args, None),
    )
}

/// The hub's image runs as its own user with everything it keeps in the volume: it serves on
/// the published port, answers `/readyz`, and kubectl works with the admin kubeconfig it
/// wrote there — also after the container is stopped (cleanly) and started again. The
/// agent's image runs its binary as the same user.
#[test]
fn container_images_run_as_non_root_with_their_data_in_a_volume() {
    let sandbox = Sandbox::new();
    let hub_binary = Path::new(env!("CARGO_BIN_EXE_hub-api"));
    let agent_binary = faros_testkit::workspace_binary("edge-agent");
    let base = "localhost/faros-test-base:1";
    import_library_image(&sandbox, base, &[hub_binary, &agent_binary]);
    let image = "localhost/faros/hub-api:test";
    build_image(&sandbox, "hub-api", hub_binary, base, image);

    let port = faros_testkit::etcd::free_port();
    sandbox.podman_ok(&[
        "run",
        "--detach",
        "--name",
        "hub",
        "--publish",
        &format!("127.0.0.1:{port}:6443"),
        "--volume",
        "faros-hub:/var/lib/faros",
        image,
    ]);
    let data = PathBuf::from(
        sandbox
            .podman_ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "faros-hub"])
            .trim(),
    );
    let written = data.join("admin.kubeconfig");
    assert!(
        eventually(Duration::from_secs(60), || written.exists()),
        "the hub wrote no admin kubeconfig into its volume; its log:\n{}",
        String::from_utf8_lossy(&sandbox.podman(&["logs", "hub"]).stderr)
    );
    for file in ["admin.kubeconfig", "hub.db", "pki/ca.key"] {
        let owner = std::fs::metadata(data.join(file)).expect("a file the hub keeps").uid();
        assert_eq!(owner, IMAGE_UID, "{file} is written by the image's user, not root");
    }

    // The kubeconfig names the hub as its clients inside see it; from here the port is the
    // published one.
    let text = std::fs::read_to_string(&written).expect("read the admin kubeconfig");
    assert!(text.contains("server: https://localhost:6443"), "{text}");
    let kubeconfig = sandbox.dir.join("admin.kubeconfig");
    std::fs::write(
        &kubeconfig,
        text.replace("https://localhost:6443", &format!("https://127.0.0.1:{port}")),
    )
    .expect("write the kubeconfig");
    let ready = || {
        kubectl::run(
            kubectl::BASELINE,
            &kubeconfig,
            &sandbox.dir,
            &["get", "--raw", "/readyz"],
            None,
        )
        .stdout
        .starts_with(b"ok")
    };
    assert!(eventually(Duration::from_secs(30), ready), "/readyz never said ok");
    let namespaces = kubectl_ok(&kubeconfig, &["get", "namespaces", "-o", "name"]);
    assert!(namespaces.contains("namespace/default"), "{namespaces}");
    kubectl_ok(&kubeconfig, &["create", "namespace", "shipped"]);

    // PID 1 of the container stops cleanly on SIGTERM, and the volume keeps what it held.
    sandbox.podman_ok(&["stop", "--time", "30", "hub"]);
    assert_eq!(sandbox.inspect("hub", "{{.State.ExitCode}}").as_deref(), Some("0"));
    sandbox.podman_ok(&["start", "hub"]);
    assert!(
        eventually(Duration::from_secs(60), ready),
        "/readyz never said ok after a restart"
    );
    kubectl_ok(&kubeconfig, &["get", "namespace", "shipped"]);

    let agent_image = "localhost/faros/edge-agent:test";
    build_image(&sandbox, "edge-agent", &agent_binary, base, agent_image);
    let version = sandbox.podman_ok(&["run", "--rm", agent_image, "--version"]);
    assert!(version.starts_with("edge-agent "), "{version}");
    let user = sandbox.podman_ok(&["image", "inspect", "--format", "{{.Config.User}}", agent_image]);
    assert_eq!(user.trim(), format!("{IMAGE_UID}:{IMAGE_UID}"));
}

/// Both units pass `systemd-analyze verify` (it names a bad key or value but exits 0, so
/// its output must be empty), and the hub's hardening keeps its exposure score at 2.0 or
/// under. They are checked in a scratch root holding the machine's own system units (the
/// targets they name) and placeholders for the binaries they start.
#[test]
fn systemd_units_verify_and_the_hub_is_sandboxed() {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is required (Debian's systemd package; it need not run)"
    );
    let root = scratch("units");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).expect("create the scratch root");
    run_ok(
        "copy the system units",
        Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(root.join("usr/lib/systemd/")),
    );
    let units = root.join("etc/systemd/system");
    let binaries = root.join("usr/local/bin");
    for dir in [&units, &binaries] {
        std::fs::create_dir_all(dir).expect("create a directory");
    }
    for name in ["hub-api", "edge-agent"] {
        let unit = format!("{name}.service");
        std::fs::copy(repo().join("config").join(&unit), units.join(&unit)).expect("copy the unit");
        std::fs::write(binaries.join(name), "#!/bin/sh\n").expect("write a placeholder binary");
        std::fs::set_permissions(binaries.join(name), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the placeholder");
        let out = Command::new(analyze)
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(&unit)
            .output()
            .expect("run systemd-analyze verify");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.trim().is_empty(), "{unit}:\n{said}");
    }
    let out = Command::new(analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(format!("--root={}", root.display()))
        .arg("hub-api.service")
        .output()
        .expect("run systemd-analyze security");
    assert!(
        out.status.success(),
        "hub-api.service is exposed more than 2.0:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `kubectl kustomize` builds the base into exactly a ServiceAccount, a Service and a
/// StatefulSet; each reads back through the Kubernetes API types to exactly what was rendered
/// (a misspelt or misplaced field would be dropped, a missing required one filled in), and
/// they fit together and with the image.
#[test]
fn kustomize_base_builds_a_hub_statefulset_with_its_volume() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use serde::Deserialize;

    let binary = kubectl::binary(kubectl::BASELINE).expect("the baseline kubectl");
    let yaml = run_ok(
        "kubectl kustomize",
        Command::new(binary)
            .arg("kustomize")
            .arg(repo().join("deploy/kubernetes")),
    );
    let documents: Vec<Value> = serde_norway::Deserializer::from_str(&yaml)
        .map(|document| Value::deserialize(document).expect("a YAML document"))
        .collect();

    /// Every difference between an object as rendered and as read back through its type
    /// (decoded, encoded again), one line each, naming the path.
    fn differences(rendered: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
        match (rendered, back) {
            (Value::Object(a), Value::Object(b)) => {
                for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                    let path = format!("{path}.{key}");
                    match (a.get(key), b.get(key)) {
                        (Some(x), Some(y)) => differences(x, y, &path, out),
                        (Some(Value::Null), None) => out.push(format!(
                            "{path}: null is dropped: no such field here (misspelt or misplaced), or one \
                             better left out than set to null"
                        )),
                        (Some(x), None) => out.push(format!(
                            "{path}: {x} is dropped: no such field here (misspelt or misplaced)"
                        )),
                        // k8s-openapi writes the kind of every object it encodes, even of
                        // one embedded in another (a claim template), where it may be left out.
                        (None, Some(_)) if key == "apiVersion" || key == "kind" => {}
                        (None, Some(y)) => {
                            out.push(format!("{path}: absent, read back as {y}: a required field is missing"))
                        }
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    differences(x, y, &format!("{path}[{i}]"), out);
                }
            }
            (a, b) if a != b => out.push(format!("{path}: {a} reads back as {b}")),
            _ => {}
        }
    }
    /// `document` as a `T`, which must encode back to exactly `document`: k8s-openapi's
    /// decoding ignores unknown fields and fills in missing required ones, so what it cannot
    /// tell apart from a valid object is found only by comparing.
    fn same_through<T: serde::de::DeserializeOwned + serde::Serialize>(document: &Value) -> T {
        let object = format!(
            "{} {}",
            document["kind"].as_str().unwrap_or("(no kind)"),
            document["metadata"]["name"].as_str().unwrap_or("(no name)")
        );
        let typed: T = serde_json::from_value(document.clone())
            .unwrap_or_else(|e| panic!("{object} is not a valid object of its kind: {e}\n{document:#}"));
        let mut found = Vec::new();
        let back = serde_json::to_value(&typed).expect("serialize");
        differences(document, &back, "", &mut found);
        assert!(
            found.is_empty(),
            "{object} does not read back unchanged through its Kubernetes type:\n{}",
            found.join("\n")
        );
        typed
    }
    let (mut account, mut service, mut set) = (None, None, None);
    for document in &documents {
        match document["kind"].as_str() {
            Some("ServiceAccount") => account = Some(same_through::<ServiceAccount>(document)),
            Some("Service") => service = Some(same_through::<Service>(document)),
            Some("StatefulSet") => set = Some(same_through::<StatefulSet>(document)),
            other => panic!("unexpected object {other:?} in the base"),
        }
    }
    let (account, service, set) = (
        account.expect("a ServiceAccount"),
        service.expect("a Service"),
        set.expect("a StatefulSet"),
    );
    assert_eq!(documents.len(), 3);

    let spec = &set.spec;
    assert_eq!(spec.replicas, Some(1), "one writer for the SQLite store");
    assert_eq!(
        spec.service_name, service.metadata.name,
        "the Service governs the StatefulSet"
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selects = |selector: &std::collections::BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| template_labels.get(k) == Some(v))
    };
    assert!(selects(spec.selector.match_labels.as_ref().expect("matchLabels")));
    let service_spec = service.spec.as_ref().expect("the Service's spec");
    assert!(
        selects(service_spec.selector.as_ref().expect("a selector")),
        "the Service selects the hub's pods"
    );

    let pod = spec.template.spec.as_ref().expect("the pod spec");
    assert_eq!(pod.service_account_name, account.metadata.name);
    let security = pod.security_context.as_ref().expect("a pod security context");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(i64::from(IMAGE_UID)));
    assert_eq!(
        security.fs_group,
        Some(i64::from(IMAGE_UID)),
        "the volume is writable by the hub"
    );
    let containerfile = std::fs::read_to_string(repo().join("deploy/container/hub-api.Containerfile")).unwrap();
    assert!(containerfile.contains(&format!("\nUSER {IMAGE_UID}:{IMAGE_UID}\n")));

    let [hub] = pod.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(
        hub.image.as_deref(),
        Some(format!("faros/hub-api:{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let ports: Vec<_> = hub.ports.iter().flatten().filter_map(|p| p.name.clone()).collect();
    for port in service_spec.ports.iter().flatten() {
        let target = serde_json::to_value(&port.target_port).unwrap();
        assert!(
            ports.iter().any(|p| target == p.as_str()),
            "{target} is a port of the hub"
        );
    }
    let data = hub
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/var/lib/faros")
        .expect("the image's volume is mounted");
    let claims: Vec<_> = spec
        .volume_claim_templates
        .iter()
        .flatten()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(
        claims,
        std::slice::from_ref(&data.name),
        "the data directory is on the claim"
    );
    let volumes: Vec<_> = pod.volumes.iter().flatten().map(|v| v.name.clone()).collect();
    for mount in hub.volume_mounts.iter().flatten() {
        assert!(
            claims.contains(&mount.name) || volumes.contains(&mount.name),
            "{} is mounted but not defined",
            mount.name
        );
    }
}

/// The krew manifest `scripts/package-krew.sh` writes obeys krew's rules for a plugin
/// manifest; installed as krew installs it (archive checked against its sha256, files
/// copied, `bin` linked onto PATH), kubectl finds and runs the plugin.
#[test]
fn krew_manifest_installs_a_plugin_kubectl_runs() {
    let plugin = faros_testkit::workspace_binary("kubectl-faros");
    let dir = scratch("krew");
    let out = dir.join("release");
    let version = env!("CARGO_PKG_VERSION");
    let url = format!("https://downloads.example.com/faros/v{version}");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let printed = run_ok(
        "package-krew.sh",
        Command::new(repo().join("scripts/package-krew.sh"))
            .arg(&url)
            .arg(format!("linux/{arch}={}", plugin.display()))
            .env("OUT_DIR", &out),
    );
    let manifest_path = PathBuf::from(printed.trim());
    let manifest: Value =
        serde_norway::from_str(&std::fs::read_to_string(&manifest_path).expect("read the manifest")).expect("YAML");

    // krew's checks (its index validation), one by one.
    assert_eq!(manifest["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(manifest["kind"], "Plugin");
    let name = manifest["metadata"]["name"].as_str().expect("metadata.name");
    assert_eq!(name, "faros", "the name is the file's");
    assert_eq!(manifest_path.file_stem().and_then(|s| s.to_str()), Some(name));
    let spec = &manifest["spec"];
    let short = spec["shortDescription"].as_str().expect("spec.shortDescription");
    assert!(!short.is_empty() && !short.contains(['\n', '\r']), "{short:?}");
    assert_eq!(
        spec["version"],
        format!("v{version}"),
        "the manifest's version is the crates'"
    );
    let platforms = spec["platforms"].as_array().expect("spec.platforms");
    assert_eq!(platforms.len(), 1);
    let platform = &platforms[0];
    let labels = platform["selector"]["matchLabels"]
        .as_object()
        .expect("a matchLabels selector");
    assert!(
        !labels.is_empty() && labels.keys().all(|k| k == "os" || k == "arch"),
        "{labels:?}"
    );
    assert_eq!(labels["os"], "linux");
    assert_eq!(labels["arch"], arch);
    let sha = platform["sha256"].as_str().expect("sha256");
    assert!(
        sha.len() == 64 && sha.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{sha}"
    );
    let uri = platform["uri"].as_str().expect("uri");
    let bin = platform["bin"].as_str().expect("bin");
    let files = platform["files"].as_array().expect("files");
    assert!(!files.is_empty());

    // Install as krew does: the archive the URI names, checked, unpacked, its files moved.
    let archive_name = uri
        .strip_prefix(&format!("{url}/"))
        .expect("the URI is under the release URL");
    let archive = std::fs::read(out.join(archive_name)).expect("the archive the URI names");
    let digest = ring::digest::digest(&ring::digest::SHA256, &archive);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, sha, "the archive's sha256");
    let unpacked = dir.join("unpacked");
    let installed = dir.join("store/faros").join(format!("v{version}"));
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::create_dir_all(&installed).unwrap();
    run_ok(
        "tar",
        Command::new("tar")
            .arg("-xzf")
            .arg(out.join(archive_name))
            .arg("-C")
            .arg(&unpacked),
    );
    for file in files {
        let from = file["from"].as_str().expect("from");
        let to = file["to"].as_str().expect("to");
        std::fs::copy(unpacked.join(from), installed.join(to).join(from)).unwrap_or_else(|e| panic!("{from}: {e}"));
    }
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(installed.join(bin), bin_dir.join("kubectl-faros")).expect("link the plugin");

    let kubectl_binary = kubectl::binary(kubectl::BASELINE).expect("the baseline kubectl");
    // Only krew's bin directory: kubectl must find the plugin there (another kubectl-faros
    // elsewhere on PATH would make `plugin list` warn and fail).
    let path = bin_dir.display().to_string();
    let list = run_ok(
        "kubectl plugin list",
        Command::new(&kubectl_binary)
            .args(["plugin", "list"])
            .env("PATH", &path),
    );
    assert!(
        list.contains(&bin_dir.join("kubectl-faros").display().to_string()),
        "{list}"
    );
    let help = run_ok(
        "kubectl faros --help",
        Command::new(&kubectl_binary)
            .args(["faros", "--help"])
            .env("PATH", &path),
    );
    assert!(help.contains("Faros workspaces"), "{help}");
    let _ = std::fs::remove_dir_all(&dir);
}
