//! Reading and editing kubeconfig files the way kubectl does.
//!
//! The files are kept as generic YAML values, so whatever we do not touch — other contexts,
//! extensions, preferences, fields newer than this plugin — is written back unchanged.
//!
//! Loading follows client-go's rules: `--kubeconfig` names the only file; otherwise every
//! file in `KUBECONFIG` (missing ones are skipped), otherwise `~/.kube/config`. Across files
//! the first definition of a context, cluster or user wins, and so does the first
//! `current-context`. Edits go where kubectl's `ModifyConfig` puts them: an entry back into
//! the file that defines it, a new entry into the file of the entry it was derived from, and
//! `current-context` into the file that already sets one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_norway::{Mapping, Value};

/// The context (and cluster) kcp's plugin points at the current workspace.
pub const CURRENT: &str = "workspace.kcp.io/current";
/// The context (and cluster) kcp's plugin keeps for `use -`.
pub const PREVIOUS: &str = "workspace.kcp.io/previous";

/// The three named sections of a kubeconfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Clusters,
    Contexts,
    Users,
}

impl Section {
    fn list_key(self) -> &'static str {
        match self {
            Section::Clusters => "clusters",
            Section::Contexts => "contexts",
            Section::Users => "users",
        }
    }

    fn item_key(self) -> &'static str {
        match self {
            Section::Clusters => "cluster",
            Section::Contexts => "context",
            Section::Users => "user",
        }
    }
}

struct File {
    path: PathBuf,
    doc: Mapping,
    exists: bool,
    dirty: bool,
}

/// The kubeconfig files in effect, in precedence order.
pub struct Kubeconfigs {
    files: Vec<File>,
    explicit: bool,
}

/// A named entry as found: the index of the file defining it and its body
/// (the value under `cluster:`, `context:` or `user:`).
#[derive(Clone, Debug)]
pub struct Found {
    pub file: usize,
    pub body: Value,
}

impl Kubeconfigs {
    /// Loads `explicit` (from `--kubeconfig`) or the files kubectl would use.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Kubeconfigs> {
        let (paths, explicit) = match explicit {
            Some(path) => {
                if !path.exists() {
                    bail!("the kubeconfig file {} does not exist", path.display());
                }
                (vec![path.to_path_buf()], true)
            }
            None => (default_paths(), false),
        };
        let mut files = Vec::new();
        for path in paths {
            if files.iter().any(|f: &File| f.path == path) {
                continue;
            }
            let (doc, exists) = match fs::read(&path) {
                Ok(bytes) => (
                    parse(&bytes).with_context(|| format!("reading kubeconfig {}", path.display()))?,
                    true,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Mapping::new(), false),
                Err(e) => return Err(e).with_context(|| format!("reading kubeconfig {}", path.display())),
            };
            files.push(File {
                path,
                doc,
                exists,
                dirty: false,
            });
        }
        Ok(Kubeconfigs { files, explicit })
    }

    /// Builds a set from in-memory documents (tests).
    #[cfg(test)]
    pub fn from_docs(docs: Vec<(PathBuf, &str)>) -> Kubeconfigs {
        let files = docs
            .into_iter()
            .map(|(path, text)| File {
                path,
                doc: parse(text.as_bytes()).unwrap(),
                exists: true,
                dirty: false,
            })
            .collect();
        Kubeconfigs { files, explicit: false }
    }

    /// The paths considered, for error messages.
    pub fn describe_paths(&self) -> String {
        let paths: Vec<String> = self.files.iter().map(|f| f.path.display().to_string()).collect();
        paths.join(", ")
    }

    /// Whether any of the files exists.
    pub fn any_exists(&self) -> bool {
        self.files.iter().any(|f| f.exists)
    }

    pub fn path(&self, file: usize) -> &Path {
        &self.files[file].path
    }

    /// `current-context` as kubectl sees it: the first file that sets one.
    pub fn current_context(&self) -> Option<String> {
        self.files
            .iter()
            .filter(|f| f.exists)
            .filter_map(|f| f.doc.get("current-context").and_then(Value::as_str))
            .find(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// The first definition of `name` in `section`.
    pub fn get(&self, section: Section, name: &str) -> Option<Found> {
        self.files.iter().enumerate().find_map(|(index, file)| {
            entries(&file.doc, section)?
                .iter()
                .find(|entry| entry_name(entry) == Some(name))
                .map(|entry| Found {
                    file: index,
                    body: entry
                        .get(section.item_key())
                        .cloned()
                        .unwrap_or(Value::Mapping(Mapping::new())),
                })
        })
    }

    /// Sets the body of `name` in `section`: in the file that defines it, or else appended to
    /// file `new_in`.
    pub fn set(&mut self, section: Section, name: &str, body: Value, new_in: usize) {
        let target = self.get(section, name).map(|f| f.file).unwrap_or(new_in);
        let file = &mut self.files[target];
        file.dirty = true;
        let list = file
            .doc
            .entry(Value::String(section.list_key().into()))
            .or_insert(Value::Sequence(Vec::new()));
        if !list.is_sequence() {
            *list = Value::Sequence(Vec::new());
        }
        let list = list.as_sequence_mut().expect("a sequence");
        if let Some(entry) = list.iter_mut().find(|e| entry_name(e) == Some(name))
            && let Some(map) = entry.as_mapping_mut()
        {
            map.insert(Value::String(section.item_key().into()), body);
            return;
        }
        let mut entry = Mapping::new();
        entry.insert(Value::String("name".into()), Value::String(name.into()));
        entry.insert(Value::String(section.item_key().into()), body);
        list.push(Value::Mapping(entry));
    }

    /// Sets `current-context` where kubectl would: the explicit file, else the first file
    /// that already sets one, else the first file that exists, else the first file.
    pub fn set_current_context(&mut self, name: &str) {
        let index = if self.explicit {
            0
        } else {
            self.files
                .iter()
                .position(|f| {
                    f.exists
                        && f.doc
                            .get("current-context")
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                })
                .or_else(|| self.files.iter().position(|f| f.exists))
                .unwrap_or(0)
        };
        let file = &mut self.files[index];
        file.doc
            .insert(Value::String("current-context".into()), Value::String(name.into()));
        file.dirty = true;
    }

    /// Writes every changed file back.
    pub fn save(&mut self) -> anyhow::Result<()> {
        for file in self.files.iter_mut().filter(|f| f.dirty) {
            let mut doc = file.doc.clone();
            if !file.exists {
                // A new file gets the usual header.
                let mut fresh = Mapping::new();
                fresh.insert("apiVersion".into(), "v1".into());
                fresh.insert("kind".into(), "Config".into());
                for (k, v) in doc {
                    fresh.insert(k, v);
                }
                doc = fresh;
            }
            let text = serde_norway::to_string(&Value::Mapping(doc)).context("encoding the kubeconfig")?;
            write_locked(&file.path, text.as_bytes())
                .with_context(|| format!("writing kubeconfig {}", file.path.display()))?;
            file.exists = true;
            file.dirty = false;
        }
        Ok(())
    }

    /// A kube-rs `Kubeconfig` holding just `context`, its cluster and its user, with relative
    /// file references resolved against the file each came from (as kubectl does).
    pub fn kube_config_for(&self, context: &str) -> anyhow::Result<kube::config::Kubeconfig> {
        let ctx = self.get(Section::Contexts, context).ok_or_else(|| {
            anyhow!(
                "context {context:?} is not defined in the kubeconfig ({})",
                self.describe_paths()
            )
        })?;
        let cluster_name = ctx.body.get("cluster").and_then(Value::as_str).unwrap_or_default();
        let cluster = self.get(Section::Clusters, cluster_name).ok_or_else(|| {
            anyhow!(
                "cluster {cluster_name:?} of context {context:?} is not defined in the kubeconfig ({})",
                self.describe_paths()
            )
        })?;
        let cluster = absolutize(&cluster, self, &["certificate-authority"])?;
        let user = match ctx.body.get("user").and_then(Value::as_str).filter(|u| !u.is_empty()) {
            Some(user_name) => {
                let user = self.get(Section::Users, user_name).ok_or_else(|| {
                    anyhow!(
                        "user {user_name:?} of context {context:?} is not defined in the kubeconfig ({})",
                        self.describe_paths()
                    )
                })?;
                let mut body = absolutize(&user, self, &["client-certificate", "client-key", "token-file"])?;
                if let Some(command) = body["exec"]["command"].as_str()
                    && command.contains('/')
                {
                    body["exec"]["command"] = resolve_relative(self.path(user.file), command).into();
                }
                Some(serde_json::from_value(body).context(UNDECODABLE)?)
            }
            None => None,
        };
        Ok(faros_kubeconfig::one_context(
            context,
            serde_json::from_value(to_json(&ctx.body)?).context(UNDECODABLE)?,
            serde_json::from_value(cluster).context(UNDECODABLE)?,
            user,
        ))
    }
}

const UNDECODABLE: &str = "the kubeconfig entries do not decode";

fn to_json(value: &Value) -> anyhow::Result<serde_json::Value> {
    serde_json::to_value(value).context("the kubeconfig holds values JSON cannot represent")
}

fn absolutize(found: &Found, all: &Kubeconfigs, keys: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut body = to_json(&found.body)?;
    for key in keys {
        if let Some(path) = body[*key].as_str().filter(|p| !p.is_empty()) {
            body[*key] = resolve_relative(all.path(found.file), path).into();
        }
    }
    Ok(body)
}

fn resolve_relative(file: &Path, reference: &str) -> String {
    let reference_path = Path::new(reference);
    if reference_path.is_absolute() {
        return reference.to_string();
    }
    match file.parent() {
        Some(dir) => dir.join(reference_path).to_string_lossy().into_owned(),
        None => reference.to_string(),
    }
}

fn entries(doc: &Mapping, section: Section) -> Option<&Vec<Value>> {
    doc.get(section.list_key())?.as_sequence()
}

fn entry_name(entry: &Value) -> Option<&str> {
    entry.get("name")?.as_str()
}

fn parse(bytes: &[u8]) -> anyhow::Result<Mapping> {
    let text = std::str::from_utf8(bytes).context("not UTF-8")?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_norway::from_str::<Value>(text).context("not valid YAML")? {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        _ => bail!("not a kubeconfig: the document is not a mapping"),
    }
}

/// The files kubectl reads when `--kubeconfig` is not given.
fn default_paths() -> Vec<PathBuf> {
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    vec![home.join(".kube").join("config")]
}

/// Writes `bytes` to `path` holding kubectl's lock file (`<path>.lock`), replacing the file
/// atomically and keeping its permissions (new files get 0600).
fn write_locked(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // Write through symlinks, as kubectl does.
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock = PathBuf::from(format!("{}.lock", path.display()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} exists: another kubectl seems to be editing this kubeconfig (delete the lock file if none is)",
                lock.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("creating lock file {}", lock.display())),
        }
    }
    let result = replace_file(&path, bytes);
    let _ = fs::remove_file(&lock);
    result
}

fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    if faros_kubeconfig::write_atomic(path, bytes, mode).is_ok() {
        return Ok(());
    }
    // A file that cannot be replaced (a bind mount, a read-only directory) is rewritten in
    // place, as kubectl does.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

/// Switches the kubeconfig to `server`, as kcp's plugin does: the cluster and context
/// `workspace.kcp.io/current` become copies of the current context and its cluster with
/// the new server URL (CA, credentials, namespace and extensions kept), the context we
/// leave is kept as `workspace.kcp.io/previous`, and `current-context` points at
/// `workspace.kcp.io/current`. Other contexts are never modified.
pub fn switch_server(configs: &mut Kubeconfigs, context: &str, server: &str) -> anyhow::Result<()> {
    let current = configs
        .get(Section::Contexts, context)
        .ok_or_else(|| anyhow!("context {context:?} is not defined in the kubeconfig"))?;
    let cluster_name = current
        .body
        .get("cluster")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let old_cluster = configs
        .get(Section::Clusters, &cluster_name)
        .ok_or_else(|| anyhow!("cluster {cluster_name:?} of context {context:?} is not defined in the kubeconfig"))?;

    let mut new_cluster = old_cluster.body.clone();
    set_str(&mut new_cluster, "server", server);
    let mut new_context = current.body.clone();
    set_str(&mut new_context, "cluster", CURRENT);
    let mut previous = current.body.clone();
    if cluster_name == CURRENT {
        // The cluster we leave is about to be overwritten: keep a copy for `use -`.
        set_str(&mut previous, "cluster", PREVIOUS);
        configs.set(Section::Clusters, PREVIOUS, old_cluster.body.clone(), old_cluster.file);
    }
    configs.set(Section::Clusters, CURRENT, new_cluster, old_cluster.file);
    configs.set(Section::Contexts, CURRENT, new_context, current.file);
    configs.set(Section::Contexts, PREVIOUS, previous, current.file);
    configs.set_current_context(CURRENT);
    Ok(())
}

/// Swaps `workspace.kcp.io/current` and `workspace.kcp.io/previous` (`use -`). Returns the
/// server URL now current.
pub fn swap_previous(configs: &mut Kubeconfigs, context: &str) -> anyhow::Result<String> {
    let previous = configs.get(Section::Contexts, PREVIOUS).ok_or_else(|| {
        anyhow!(
            "there is no previous workspace in the kubeconfig yet (it is recorded by `kubectl faros workspace use`)"
        )
    })?;
    let current = configs
        .get(Section::Contexts, context)
        .ok_or_else(|| anyhow!("context {context:?} is not defined in the kubeconfig"))?;
    let cluster_of = |found: &Found| {
        found
            .body
            .get("cluster")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (current_cluster, previous_cluster) = (cluster_of(&current), cluster_of(&previous));
    let mut new_previous = current.body.clone();
    let mut new_current = previous.body.clone();
    // Read both clusters before writing either.
    let current_cluster_body = configs.get(Section::Clusters, CURRENT);
    let previous_cluster_body = configs.get(Section::Clusters, PREVIOUS);
    if current_cluster == CURRENT {
        let body = current_cluster_body
            .clone()
            .ok_or_else(|| anyhow!("cluster {CURRENT:?} is not defined in the kubeconfig"))?;
        set_str(&mut new_previous, "cluster", PREVIOUS);
        configs.set(Section::Clusters, PREVIOUS, body.body, body.file);
    }
    if previous_cluster == PREVIOUS {
        let body =
            previous_cluster_body.ok_or_else(|| anyhow!("cluster {PREVIOUS:?} is not defined in the kubeconfig"))?;
        set_str(&mut new_current, "cluster", CURRENT);
        configs.set(Section::Clusters, CURRENT, body.body, body.file);
    }
    configs.set(Section::Contexts, CURRENT, new_current, previous.file);
    configs.set(Section::Contexts, PREVIOUS, new_previous, current.file);
    configs.set_current_context(CURRENT);
    let cluster = configs
        .get(Section::Contexts, CURRENT)
        .and_then(|c| c.body.get("cluster").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    Ok(configs
        .get(Section::Clusters, &cluster)
        .and_then(|c| c.body.get("server").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default())
}

fn set_str(body: &mut Value, key: &str, value: &str) {
    if !body.is_mapping() {
        *body = Value::Mapping(Mapping::new());
    }
    if let Some(map) = body.as_mapping_mut() {
        map.insert(Value::String(key.into()), Value::String(value.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: "root"
  cluster:
    server: "https://127.0.0.1:6443"
    certificate-authority-data: "Q0E="
    extensions:
    - name: example.com/x
      extension: {a: 1}
users:
- name: "root"
  user:
    client-certificate-data: "Q0VSVA=="
    client-key-data: "S0VZ"
contexts:
- name: "root"
  context:
    cluster: "root"
    user: "root"
    namespace: "ops"
- name: other
  context:
    cluster: root
    user: root
current-context: "root"
preferences: {}
x-unknown-top-level: keep me
"#;

    fn server_of(configs: &Kubeconfigs, context: &str) -> String {
        let ctx = configs.get(Section::Contexts, context).unwrap();
        let cluster = ctx.body.get("cluster").unwrap().as_str().unwrap().to_string();
        configs.get(Section::Clusters, &cluster).unwrap().body["server"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn switch_and_swap_like_kcp() {
        let mut configs = Kubeconfigs::from_docs(vec![(PathBuf::from("/tmp/a"), ADMIN)]);
        switch_server(&mut configs, "root", "https://127.0.0.1:6443/clusters/root:a").unwrap();
        assert_eq!(configs.current_context().as_deref(), Some(CURRENT));
        assert_eq!(server_of(&configs, CURRENT), "https://127.0.0.1:6443/clusters/root:a");
        assert_eq!(server_of(&configs, PREVIOUS), "https://127.0.0.1:6443");
        // The original context is untouched; CA, extensions and namespace are carried over.
        assert_eq!(server_of(&configs, "root"), "https://127.0.0.1:6443");
        let cluster = configs.get(Section::Clusters, CURRENT).unwrap().body;
        assert_eq!(cluster["certificate-authority-data"].as_str(), Some("Q0E="));
        assert!(cluster.get("extensions").is_some());
        let ctx = configs.get(Section::Contexts, CURRENT).unwrap().body;
        assert_eq!(ctx["namespace"].as_str(), Some("ops"));
        assert_eq!(ctx["user"].as_str(), Some("root"));

        switch_server(&mut configs, CURRENT, "https://127.0.0.1:6443/clusters/root:a:b").unwrap();
        assert_eq!(server_of(&configs, CURRENT), "https://127.0.0.1:6443/clusters/root:a:b");
        assert_eq!(server_of(&configs, PREVIOUS), "https://127.0.0.1:6443/clusters/root:a");

        let now = swap_previous(&mut configs, CURRENT).unwrap();
        assert_eq!(now, "https://127.0.0.1:6443/clusters/root:a");
        assert_eq!(server_of(&configs, CURRENT), "https://127.0.0.1:6443/clusters/root:a");
        assert_eq!(
            server_of(&configs, PREVIOUS),
            "https://127.0.0.1:6443/clusters/root:a:b"
        );
        let now = swap_previous(&mut configs, CURRENT).unwrap();
        assert_eq!(now, "https://127.0.0.1:6443/clusters/root:a:b");
    }

    #[test]
    fn swap_back_to_a_plain_context() {
        let mut configs = Kubeconfigs::from_docs(vec![(PathBuf::from("/tmp/a"), ADMIN)]);
        switch_server(&mut configs, "root", "https://127.0.0.1:6443/clusters/root:a").unwrap();
        let now = swap_previous(&mut configs, CURRENT).unwrap();
        assert_eq!(now, "https://127.0.0.1:6443");
        assert_eq!(server_of(&configs, PREVIOUS), "https://127.0.0.1:6443/clusters/root:a");
        let now = swap_previous(&mut configs, CURRENT).unwrap();
        assert_eq!(now, "https://127.0.0.1:6443/clusters/root:a");
    }

    #[test]
    fn no_previous_is_a_clear_error() {
        let mut configs = Kubeconfigs::from_docs(vec![(PathBuf::from("/tmp/a"), ADMIN)]);
        let err = swap_previous(&mut configs, "root").unwrap_err().to_string();
        assert!(err.contains("no previous workspace"), "{err}");
    }

    #[test]
    fn first_definition_wins_and_edits_go_to_the_defining_file() {
        let second = r#"
clusters:
- name: root
  cluster: {server: "https://shadowed"}
- name: elsewhere
  cluster: {server: "https://elsewhere"}
contexts:
- name: mine
  context: {cluster: elsewhere, user: root}
current-context: other
"#;
        let mut configs = Kubeconfigs::from_docs(vec![
            (PathBuf::from("/tmp/empty"), "preferences: {}\n"),
            (PathBuf::from("/tmp/a"), ADMIN),
            (PathBuf::from("/tmp/b"), second),
        ]);
        assert_eq!(configs.current_context().as_deref(), Some("root"));
        assert_eq!(server_of(&configs, "root"), "https://127.0.0.1:6443");
        switch_server(&mut configs, "mine", "https://elsewhere/clusters/root:x").unwrap();
        // The new cluster goes where the cluster it copies lives, the contexts where the
        // current context lives, current-context into the file that already had one.
        assert_eq!(configs.get(Section::Clusters, CURRENT).unwrap().file, 2);
        assert_eq!(configs.get(Section::Contexts, CURRENT).unwrap().file, 2);
        assert_eq!(configs.get(Section::Contexts, PREVIOUS).unwrap().file, 2);
        assert_eq!(configs.files[1].doc["current-context"].as_str(), Some(CURRENT));
        assert!(!configs.files[0].dirty);
        assert_eq!(configs.files[2].doc["current-context"].as_str(), Some("other"));
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("kubectl-faros-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        fs::write(&path, ADMIN).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        }
        let mut configs = Kubeconfigs::load(Some(&path)).unwrap();
        switch_server(&mut configs, "root", "https://127.0.0.1:6443/clusters/root:a").unwrap();
        configs.save().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(doc["x-unknown-top-level"].as_str(), Some("keep me"));
        assert_eq!(doc["current-context"].as_str(), Some(CURRENT));
        assert!(doc["preferences"].is_mapping());
        assert_eq!(
            doc["clusters"][0]["cluster"]["extensions"][0]["name"].as_str(),
            Some("example.com/x")
        );
        assert_eq!(doc["contexts"].as_sequence().unwrap().len(), 4);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!PathBuf::from(format!("{}.lock", path.display())).exists());
        // kube-rs reads what we wrote.
        let kc = Kubeconfigs::load(Some(&path))
            .unwrap()
            .kube_config_for(CURRENT)
            .unwrap();
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://127.0.0.1:6443/clusters/root:a")
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_through_symlinks_and_creates_missing_files() {
        let dir = std::env::temp_dir().join(format!("kubectl-faros-unit-link-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let real = dir.join("real-config");
        fs::write(&real, ADMIN).unwrap();
        let link = dir.join("config");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let mut configs = Kubeconfigs::load(Some(&link)).unwrap();
        switch_server(&mut configs, "root", "https://h/clusters/root:a").unwrap();
        configs.save().unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(fs::read_to_string(&real).unwrap().contains("https://h/clusters/root:a"));

        // With KUBECONFIG naming only missing files, the first one is created (mode 0600).
        let fresh = dir.join("sub").join("new-config");
        let mut configs = Kubeconfigs {
            files: vec![File {
                path: fresh.clone(),
                doc: Mapping::new(),
                exists: false,
                dirty: false,
            }],
            explicit: false,
        };
        configs.set_current_context("x");
        configs.save().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
        let doc: Value = serde_norway::from_str(&fs::read_to_string(&fresh).unwrap()).unwrap();
        assert_eq!(doc["kind"].as_str(), Some("Config"));
        assert_eq!(doc["current-context"].as_str(), Some("x"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn relative_file_references_resolve_against_their_file() {
        let text = r#"
clusters:
- name: c
  cluster: {server: "https://x", certificate-authority: ca.crt}
users:
- name: u
  user: {client-certificate: certs/u.crt, client-key: /abs/u.key}
contexts:
- name: ctx
  context: {cluster: c, user: u}
"#;
        let configs = Kubeconfigs::from_docs(vec![(PathBuf::from("/home/me/.kube/config"), text)]);
        let kc = configs.kube_config_for("ctx").unwrap();
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.certificate_authority.as_deref(), Some("/home/me/.kube/ca.crt"));
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_certificate.as_deref(), Some("/home/me/.kube/certs/u.crt"));
        assert_eq!(user.client_key.as_deref(), Some("/abs/u.key"));
    }
}
