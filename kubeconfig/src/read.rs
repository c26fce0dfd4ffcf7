//! Reading kubeconfig files the way kubectl does: several YAML documents in one file are
//! merged, `KUBECONFIG` may list several files (the first to set a value wins), and the
//! file paths inside a kubeconfig are relative to the file that names them.
//!
//! kube-rs reads kubeconfigs too, with a YAML parser of its own. Faros programs read them
//! here instead, with the one YAML library they already use for writing them and for config
//! files: on a device, the agent's binary then carries one YAML implementation, not two.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kube::config::Kubeconfig;
use serde::Deserialize as _;

/// The kubeconfig named by `KUBECONFIG` (its files merged), or else `~/.kube/config`.
pub fn read() -> anyhow::Result<Kubeconfig> {
    let listed: Vec<PathBuf> = std::env::var_os("KUBECONFIG")
        .map(|value| {
            std::env::split_paths(&value)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        let home = std::env::home_dir().context("no KUBECONFIG and no home directory to find .kube/config in")?;
        return read_from(home.join(".kube").join("config"));
    }
    listed.iter().try_fold(
        Kubeconfig::default(),
        |merged, path| Ok(merged.merge(read_from(path)?)?),
    )
}

/// The kubeconfig in the file at `path`, with its relative file references made absolute.
pub fn read_from(path: impl AsRef<Path>) -> anyhow::Result<Kubeconfig> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut kubeconfig = from_yaml(&text).with_context(|| format!("decoding {}", path.display()))?;
    if let Some(dir) = path.parent() {
        resolve_relative_paths(&mut kubeconfig, dir);
    }
    Ok(kubeconfig)
}

/// The kubeconfig in `text`; several YAML documents are merged, an empty text is an empty
/// kubeconfig.
pub fn from_yaml(text: &str) -> anyhow::Result<Kubeconfig> {
    serde_norway::Deserializer::from_str(text)
        .map(Kubeconfig::deserialize)
        .try_fold(Kubeconfig::default(), |merged, document| Ok(merged.merge(document?)?))
}

/// Certificate, key and token files, and exec commands given as a path (not a bare command
/// name looked up in `PATH`), are relative to the kubeconfig's own directory.
fn resolve_relative_paths(kubeconfig: &mut Kubeconfig, dir: &Path) {
    let resolve = |file: &mut Option<String>| {
        if let Some(name) = file.as_deref()
            && Path::new(name).is_relative()
            && let Some(absolute) = dir.join(name).to_str()
        {
            *file = Some(absolute.to_string());
        }
    };
    for cluster in kubeconfig.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        resolve(&mut cluster.certificate_authority);
    }
    for user in kubeconfig.auth_infos.iter_mut().filter_map(|u| u.auth_info.as_mut()) {
        resolve(&mut user.client_certificate);
        resolve(&mut user.client_key);
        resolve(&mut user.token_file);
        if let Some(exec) = user.exec.as_mut()
            && exec.command.as_deref().is_some_and(|c| c.contains('/'))
        {
            resolve(&mut exec.command);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::private_file::tests::TempDir;

    #[test]
    fn relative_files_resolve_against_the_kubeconfig_directory() {
        let dir = TempDir::new("kubeconfig-read-relative");
        let path = dir.0.join("agent.kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: hub\n  cluster:\n    server: https://hub:6443\n    certificate-authority: ca.crt\n\
             users:\n- name: a\n  user:\n    tokenFile: /etc/faros/token\n    client-key: keys/a.key\n\
             \x20   exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: tpm-token\n\
             - name: b\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: bin/token\n\
             contexts:\n- name: hub\n  context:\n    cluster: hub\n    user: a\n\
             current-context: hub\n",
        )
        .unwrap();
        let read = read_from(&path).unwrap();
        let in_dir = |name: &str| Some(dir.0.join(name).to_str().unwrap().to_string());
        let cluster = read.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.certificate_authority, in_dir("ca.crt"));
        assert_eq!(cluster.server.as_deref(), Some("https://hub:6443"));
        let a = read.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(a.token_file.as_deref(), Some("/etc/faros/token"));
        assert_eq!(a.client_key, in_dir("keys/a.key"));
        assert_eq!(a.exec.as_ref().unwrap().command.as_deref(), Some("tpm-token"));
        let b = read.auth_infos[1].auth_info.as_ref().unwrap();
        assert_eq!(b.exec.as_ref().unwrap().command, in_dir("bin/token"));
        assert_eq!(read.current_context.as_deref(), Some("hub"));
    }

    #[test]
    fn documents_merge_first_value_wins_and_empty_is_empty() {
        let merged = from_yaml(
            "current-context: one\nclusters:\n- name: c\n  cluster:\n    server: https://first\n\
             ---\ncurrent-context: two\nclusters:\n- name: c\n  cluster:\n    server: https://second\n\
             - name: d\n  cluster:\n    server: https://d\n",
        )
        .unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("one"));
        let servers: Vec<_> = merged
            .clusters
            .iter()
            .map(|c| c.cluster.as_ref().unwrap().server.as_deref().unwrap())
            .collect();
        assert_eq!(servers, ["https://first", "https://d"]);
        assert!(from_yaml("").unwrap().clusters.is_empty());
        assert!(from_yaml("clusters: 3\n").is_err());
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let error = read_from("/nonexistent/faros.kubeconfig").unwrap_err();
        assert!(
            format!("{error:#}").contains("/nonexistent/faros.kubeconfig"),
            "{error:#}"
        );
    }
}
