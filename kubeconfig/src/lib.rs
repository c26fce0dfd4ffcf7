//! The kubeconfigs Faros programs build and write, and the private files they and keys are
//! kept in.
//!
//! A kubeconfig is always kube-rs's [`Kubeconfig`], built by [`one_context`] (or
//! [`all_named`]) and serialised by serde through [`to_yaml`] or [`write`]: never assembled
//! as text, so quoting and layout are the serialiser's business. Files holding keys, tokens
//! or kubeconfigs are written by [`write_private`]. A hub's CA is pinned by [`ca_pin`].
//! Kubeconfigs are read back, as kubectl reads them, by [`read`] and [`read_from`].

pub mod ca_pin;
mod private_file;
mod read;

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext, Preferences};

pub use private_file::{write_atomic, write_private};
pub use read::{from_yaml, read, read_from};

/// How the user of a kubeconfig authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A client certificate and its private key, both PEM.
    ClientCert {
        /// PEM of the client certificate.
        cert_pem: &'a str,
        /// PEM of the client certificate's private key.
        key_pem: &'a str,
    },
    /// A bearer token.
    Token(&'a str),
    /// A file holding a bearer token, which clients read from the file rather than from the
    /// kubeconfig (so the token can be rotated in place).
    TokenFile(&'a str),
}

impl From<Credential<'_>> for AuthInfo {
    fn from(credential: Credential<'_>) -> AuthInfo {
        match credential {
            Credential::ClientCert { cert_pem, key_pem } => AuthInfo {
                client_certificate_data: Some(base64(cert_pem)),
                client_key_data: Some(base64(key_pem).into()),
                ..Default::default()
            },
            Credential::Token(token) => AuthInfo {
                token: Some(token.to_string().into()),
                ..Default::default()
            },
            Credential::TokenFile(path) => AuthInfo {
                token_file: Some(path.to_string()),
                ..Default::default()
            },
        }
    }
}

/// A cluster entry: `server`, trusting the CA certificates in `ca_pem`.
pub fn cluster(server: &str, ca_pem: &str) -> Cluster {
    Cluster {
        server: Some(server.to_string()),
        certificate_authority_data: Some(base64(ca_pem)),
        ..Default::default()
    }
}

/// A kubeconfig with one context, `name`, which is current, and the cluster and user it
/// names (`context.cluster`, `context.user`); `user` is left out when `None`.
pub fn one_context(name: &str, context: Context, cluster: Cluster, user: Option<AuthInfo>) -> Kubeconfig {
    Kubeconfig {
        // As kubectl writes it.
        preferences: Some(Preferences::default()),
        clusters: vec![NamedCluster {
            name: context.cluster.clone(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: user
            .map(|user| NamedAuthInfo {
                name: context.user.clone().unwrap_or_default(),
                auth_info: Some(user),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        contexts: vec![NamedContext {
            name: name.to_string(),
            context: Some(context),
            ..Default::default()
        }],
        current_context: Some(name.to_string()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Default::default()
    }
}

/// A kubeconfig whose one cluster, user and context are all named `name` (the context
/// current): the cluster is `server` trusting `ca_pem`, the user authenticates with
/// `credential`, and the context carries `namespace` when given.
pub fn all_named(
    name: &str,
    server: &str,
    ca_pem: &str,
    credential: Credential<'_>,
    namespace: Option<&str>,
) -> Kubeconfig {
    let context = Context {
        cluster: name.to_string(),
        user: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..Default::default()
    };
    one_context(name, context, cluster(server, ca_pem), Some(credential.into()))
}

/// `kubeconfig` as YAML, the way kubectl reads it.
pub fn to_yaml(kubeconfig: &Kubeconfig) -> anyhow::Result<String> {
    serde_norway::to_string(kubeconfig).context("encoding the kubeconfig")
}

/// Writes `kubeconfig` to `path` as YAML, a private file (see [`write_private`]). Missing
/// parent directories are created with mode `0700`. A kubeconfig written for use as it is
/// must name its current context.
pub fn write(path: &Path, kubeconfig: &Kubeconfig) -> anyhow::Result<()> {
    if kubeconfig.current_context.as_deref().is_none_or(str::is_empty) {
        bail!("the kubeconfig for {} names no current context", path.display());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    write_private(path, to_yaml(kubeconfig)?.as_bytes())
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;

    use serde_norway::Value;

    use crate::private_file::tests::{TempDir, mode_of};

    fn read_yaml(path: &Path) -> Value {
        serde_norway::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn kubeconfig_with_client_cert() {
        let dir = TempDir::new("kubeconfig-cert");
        let path = dir.0.join("nested").join("config");
        let kubeconfig = all_named(
            "faros",
            "https://127.0.0.1:6443",
            "CA PEM\n",
            Credential::ClientCert {
                cert_pem: "CERT PEM\n",
                key_pem: "KEY PEM\n",
            },
            Some("default"),
        );
        write(&path, &kubeconfig).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let expected: Value = serde_norway::from_str(&format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: \"faros\"\n  cluster:\n    server: \"https://127.0.0.1:6443\"\n    \
             certificate-authority-data: \"{}\"\n\
             users:\n\
             - name: \"faros\"\n  user:\n    client-certificate-data: \"{}\"\n    \
             client-key-data: \"{}\"\n\
             contexts:\n\
             - name: \"faros\"\n  context:\n    cluster: \"faros\"\n    user: \"faros\"\n    \
             namespace: \"default\"\n\
             current-context: \"faros\"\n\
             preferences: {{}}\n",
            b64("CA PEM\n"),
            b64("CERT PEM\n"),
            b64("KEY PEM\n")
        ))
        .unwrap();
        assert_eq!(read_yaml(&path), expected);
        // Only the file itself is there: the temporary file was renamed.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        // And it reads back as it was built, by kube-rs and by this crate.
        assert_eq!(
            to_yaml(&Kubeconfig::read_from(&path).unwrap()).unwrap(),
            to_yaml(&kubeconfig).unwrap()
        );
        let read = read_from(&path).unwrap();
        assert_eq!(to_yaml(&read).unwrap(), to_yaml(&kubeconfig).unwrap());
    }

    #[test]
    fn kubeconfig_with_token_replaces_existing_file() {
        let dir = TempDir::new("kubeconfig-token");
        let path = dir.0.join("config");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let name = "edge \"one\"";
        write(
            &path,
            &all_named(name, "https://hub:6443", "CA", Credential::Token("tok\\en"), None),
        )
        .unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let doc = read_yaml(&path);
        assert_eq!(doc["users"][0]["user"]["token"].as_str(), Some("tok\\en"));
        assert_eq!(doc["users"][0]["name"].as_str(), Some(name));
        assert_eq!(doc["current-context"].as_str(), Some(name));
        assert!(doc["contexts"][0]["context"].get("namespace").is_none());
        assert!(doc["users"][0]["user"].get("client-key-data").is_none());
        let unnamed = all_named("", "s", "c", Credential::Token("t"), None);
        assert!(write(&path, &unnamed).is_err());
    }

    #[test]
    fn one_context_with_a_token_file_and_no_user() {
        let context = Context {
            cluster: "faros".into(),
            user: Some("agent".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        let insecure = Cluster {
            server: Some("https://hub".into()),
            insecure_skip_tls_verify: Some(true),
            ..Default::default()
        };
        let doc: Value = serde_norway::from_str(
            &to_yaml(&one_context(
                "agent",
                context.clone(),
                insecure.clone(),
                Some(Credential::TokenFile("/state/token").into()),
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(doc["clusters"][0]["name"].as_str(), Some("faros"));
        assert_eq!(
            doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"].as_bool(),
            Some(true)
        );
        assert_eq!(doc["users"][0]["name"].as_str(), Some("agent"));
        assert_eq!(doc["users"][0]["user"]["tokenFile"].as_str(), Some("/state/token"));
        assert_eq!(doc["contexts"][0]["context"]["namespace"].as_str(), Some("ns"));
        assert_eq!(doc["current-context"].as_str(), Some("agent"));

        let without_user = one_context("agent", context, insecure, None);
        assert!(without_user.auth_infos.is_empty());
    }
}
