//! RBAC, evaluated per logical cluster exactly as Kubernetes' RBAC authorizer does.
//!
//! **Evaluation.** A request is allowed when a rule reachable from the caller allows it:
//! rules of the ClusterRoles bound by ClusterRoleBindings, plus — for namespaced requests —
//! rules of the Roles and ClusterRoles bound by RoleBindings in the request's namespace.
//! Subjects match by user name, group, or ServiceAccount (which is the user name
//! `system:serviceaccount:<ns>:<name>`). A rule matches on verb, API group, resource
//! (`resource/subresource`, `*/subresource` or `*`), resource name, or non-resource URL
//! (exact or `prefix*`). `system:masters` bypasses everything.
//!
//! **The bootstrap policy** (`faros_api::policy`: `cluster-admin`, `admin`, `edit`, `view`,
//! the `system:*` roles and their bindings to `system:authenticated` and `system:masters`) is
//! indexed once and consulted by every logical cluster, as kcp's bootstrap policy authorizer
//! consults `system:admin`, instead of being copied into each workspace: a role reference
//! that names no ClusterRole of the cluster resolves to the bootstrap policy's, and its
//! bindings grant in every cluster. A cluster's own ClusterRole of the same name wins there.
//! It is immutable and not listed among a workspace's objects.
//!
//! **Aggregation** is resolved when a cluster's index is built (not by a controller): a
//! ClusterRole with an `aggregationRule` has the union of the rules of the ClusterRoles its
//! selectors match (the cluster's own and the bootstrap policy's), transitively, as the
//! Kubernetes aggregation controller would converge to. The stored object keeps whatever
//! rules it was written with; evaluation ignores them, as the controller would overwrite
//! them.
//!
//! **Index.** For each logical cluster, its Roles, ClusterRoles and bindings are read once
//! from the hub cache into per-subject maps, so a request costs a few hash lookups. A
//! background task follows the cache's event stream and marks a cluster stale when any of
//! its RBAC objects changes; a request first waits (normally not at all) until that task has
//! seen every change up to the cache revision current when the request arrived, so RBAC
//! writes are in force for the very next request, as reads of one's own writes are.
//!
//! **Entering a workspace** needs a binding there naming the caller (bindings of the default
//! policy to everyone, such as discovery, do not count), or being a ServiceAccount of that
//! workspace. Identities confined to a workspace (ServiceAccounts) get nothing elsewhere.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::User;
use faros_api::policy::{BOOTSTRAP_LABEL, BOOTSTRAP_VALUE};
use faros_machinery::status::ApiError;
use faros_storage::{Cache, Key, Prefix};

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// One `PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

impl Rule {
    /// Everything: every verb on every resource of every group, and every non-resource URL
    /// (what `system:masters` and `cluster-admin` hold).
    pub fn all() -> [Rule; 2] {
        [
            Rule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..Rule::default()
            },
            Rule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..Rule::default()
            },
        ]
    }

    pub fn from_json(v: &Value) -> Rule {
        Rule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    pub fn list_from_json(rules: &Value) -> Vec<Rule> {
        rules
            .as_array()
            .map(|a| a.iter().map(Rule::from_json).collect())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("verbs".into(), json!(self.verbs));
        if !self.non_resource_urls.is_empty() {
            out.insert("nonResourceURLs".into(), json!(self.non_resource_urls));
        } else {
            out.insert("apiGroups".into(), json!(self.api_groups));
            out.insert("resources".into(), json!(self.resources));
            if !self.resource_names.is_empty() {
                out.insert("resourceNames".into(), json!(self.resource_names));
            }
        }
        Value::Object(out)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    /// Kubernetes' `RuleAllows`.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !self.verb_matches(&attrs.verb) {
            return false;
        }
        match &attrs.resource {
            Some(r) => {
                self.api_groups.iter().any(|g| g == "*" || *g == r.group)
                    && self.resource_matches(&r.resource, r.subresource.as_deref())
                    && (self.resource_names.is_empty() || has(&self.resource_names, &r.name))
            }
            None => self.non_resource_urls.iter().any(|u| {
                u == "*" || *u == attrs.path || (u.ends_with('*') && attrs.path.starts_with(u.trim_end_matches('*')))
            }),
        }
    }

    fn resource_matches(&self, resource: &str, subresource: Option<&str>) -> bool {
        self.resources.iter().any(|r| {
            if r == "*" {
                return true;
            }
            match subresource.filter(|s| !s.is_empty()) {
                None => r == resource,
                Some(sub) => {
                    (r.len() == resource.len() + 1 + sub.len()
                        && r.starts_with(resource)
                        && r[resource.len()..].starts_with('/')
                        && r.ends_with(sub))
                        || r.strip_prefix("*/") == Some(sub)
                }
            }
        })
    }

    /// `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`, as Kubernetes prints rules.
    pub fn compact_string(&self) -> String {
        let quoted = |list: &[String]| list.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(" ");
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:[{}]", quoted(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:[{}]", quoted(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!("NonResourceURLs:[{}]", quoted(&self.non_resource_urls)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:[{}]", quoted(&self.resource_names)));
        }
        parts.push(format!("Verbs:[{}]", quoted(&self.verbs)));
        format!("{{{}}}", parts.join(", "))
    }
}

/// Whether a request would change what only the hub may: a workspace's LogicalCluster
/// (its admins may read it; changing or deleting it would cut the workspace off its path).
fn writes_hub_owned(attrs: &Attributes) -> bool {
    !matches!(attrs.verb.as_str(), "get" | "list" | "watch")
        && attrs
            .resource
            .as_ref()
            .is_some_and(|r| r.group == "core.kcp.io" && r.resource == "logicalclusters")
}

/// What a request asks to do, as Kubernetes' `authorizer.Attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    /// None for non-resource requests.
    pub resource: Option<ResourceAttributes>,
    /// The URL path of a non-resource request (without the `/clusters/<path>` prefix).
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: None,
                namespace: namespace.into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    pub fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: None,
            path: path.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        self.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or_default()
    }
}

/// The verb of a non-resource request: the lowercase HTTP method, `get` for HEAD.
pub fn non_resource_verb(method: &http::Method) -> String {
    if method == http::Method::HEAD {
        "get".into()
    } else {
        method.as_str().to_ascii_lowercase()
    }
}

/// `configmaps "x" is forbidden: User "u" cannot get resource "configmaps" in API group ""
/// in the namespace "default"`, as kube-apiserver words it.
pub fn forbidden(user: &User, attrs: &Attributes, reason: &str) -> ApiError {
    let mut detail = match &attrs.resource {
        None => format!("User {:?} cannot {} path {:?}", user.name, attrs.verb, attrs.path),
        Some(r) => {
            let resource = match r.subresource.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => format!("{}/{sub}", r.resource),
                None => r.resource.clone(),
            };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {:?}", r.namespace)
            };
            format!(
                "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                user.name, attrs.verb, r.group
            )
        }
    };
    if !reason.is_empty() {
        let _ = write!(detail, ": {reason}");
    }
    match &attrs.resource {
        None => ApiError::forbidden(format!("forbidden: {detail}")),
        Some(r) => forbidden_on(&r.group, &r.resource, &r.name, &detail),
    }
}

/// `<resource>[.<group>] ["name"] is forbidden: <detail>` with the Status details set.
pub fn forbidden_on(group: &str, resource: &str, name: &str, detail: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {detail}")
    } else {
        format!("{qualified} {name:?} is forbidden: {detail}")
    };
    ApiError::forbidden(message).with_subject(group, resource, name)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    User(String),
    Group(String),
    /// (namespace, name): matches only the ServiceAccount of this very workspace, never a
    /// same-named user from elsewhere (a certificate or token claiming that name).
    ServiceAccount(String, String),
}

/// A Role or ClusterRole, as the index needs it.
struct ParsedRole {
    namespace: String,
    name: String,
    rules: Arc<[Rule]>,
    labels: serde_json::Map<String, Value>,
    /// The aggregationRule's selectors; empty when the role is not aggregated.
    selectors: Vec<Value>,
}

/// A RoleBinding or ClusterRoleBinding, as the index needs it.
struct ParsedBinding {
    kind: &'static str,
    namespace: String,
    name: String,
    role_kind: String,
    role_name: String,
    /// Each subject's key and its description for review reasons.
    subjects: Vec<(Subject, String)>,
    /// Part of the default policy (does not open the workspace to its subjects).
    default: bool,
}

#[derive(Clone)]
enum Parsed {
    Role(Arc<ParsedRole>),
    Binding(Arc<ParsedBinding>),
}

impl Parsed {
    fn role(value: &Value) -> Parsed {
        let meta = &value["metadata"];
        Parsed::Role(Arc::new(ParsedRole {
            namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            rules: Rule::list_from_json(&value["rules"]).into(),
            labels: meta["labels"].as_object().cloned().unwrap_or_default(),
            selectors: value["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        }))
    }

    fn binding(value: &Value, kind: &'static str) -> Parsed {
        let meta = &value["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or_default().to_string();
        Parsed::Binding(Arc::new(ParsedBinding {
            kind,
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            role_kind: value["roleRef"]["kind"].as_str().unwrap_or_default().to_string(),
            role_name: value["roleRef"]["name"].as_str().unwrap_or_default().to_string(),
            subjects: subject_keys(&value["subjects"], &namespace),
            default: is_default(value),
            namespace,
        }))
    }
}

/// The rules one binding gives one of its subjects.
struct Grant {
    binding: Arc<ParsedBinding>,
    /// Which of the binding's subjects this grant is for.
    subject: usize,
    rules: Arc<[Rule]>,
}

impl Grant {
    /// `ClusterRoleBinding "x" of ClusterRole "y" to User "z"`, as Kubernetes gives reasons.
    fn source(&self) -> String {
        let b = &self.binding;
        let name = if b.namespace.is_empty() {
            b.name.clone()
        } else {
            format!("{}/{}", b.name, b.namespace)
        };
        let subject = b
            .subjects
            .get(self.subject)
            .map(|(_, d)| d.as_str())
            .unwrap_or_default();
        format!("{} {name:?} of {} {:?} to {subject}", b.kind, b.role_kind, b.role_name)
    }
}

type Grants = HashMap<Subject, Vec<Arc<Grant>>>;

/// The RBAC objects of one logical cluster, indexed by subject.
struct ClusterPolicy {
    cluster: String,
    /// The cache revision the index reflects.
    revision: u64,
    /// Every object, parsed, by storage key with its revision: the next rebuild reparses only
    /// what changed.
    parsed: HashMap<Arc<str>, (u64, Parsed)>,
    roles: HashMap<(String, String), Arc<[Rule]>>,
    /// ClusterRoles, aggregation resolved. Empty when the cluster has none of its own: the
    /// bootstrap policy's are then used as they are, without a copy per workspace.
    cluster_roles: HashMap<String, Arc<[Rule]>>,
    cluster_grants: Grants,
    namespace_grants: HashMap<String, Grants>,
    /// Subjects named by a binding other than the default policy's: they may enter.
    entry: HashSet<Subject>,
    /// The bootstrap policy every workspace also consults; None for that policy itself.
    bootstrap: Option<Arc<Bootstrap>>,
}

/// The default policy (`faros_api::policy`), indexed once for every logical cluster: its
/// ClusterRoles are what a workspace's role references fall back to, and its bindings grant
/// in every workspace. Nothing of it is stored in the workspaces.
struct Bootstrap {
    policy: ClusterPolicy,
    /// Its ClusterRoles before aggregation: a workspace's own ClusterRoles with aggregation
    /// labels add to `admin`, `edit` and `view` there.
    raw: HashMap<String, Arc<ParsedRole>>,
}

impl Bootstrap {
    fn new() -> Bootstrap {
        let objects = faros_api::policy::default_objects();
        let parse = |kind: &str| -> Vec<Parsed> {
            objects
                .iter()
                .filter(|o| o["kind"] == kind)
                .map(|o| match kind {
                    "ClusterRole" => Parsed::role(o),
                    _ => Parsed::binding(o, "ClusterRoleBinding"),
                })
                .collect()
        };
        let lists = [
            Vec::new(),
            parse("ClusterRole"),
            Vec::new(),
            parse("ClusterRoleBinding"),
        ];
        let raw = raw_cluster_roles(&lists[1]);
        let policy = ClusterPolicy::index("", 0, HashMap::new(), &lists, None);
        Bootstrap { policy, raw }
    }
}

fn selector_matches(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(match_labels) = selector["matchLabels"].as_object() {
        for (k, v) in match_labels {
            if label(k) != v.as_str() {
                return false;
            }
        }
    }
    for expr in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = expr["key"].as_str().unwrap_or_default();
        let values = strings(&expr["values"]);
        let ok = match expr["operator"].as_str().unwrap_or_default() {
            "In" => label(key).is_some_and(|v| has(&values, v)),
            "NotIn" => label(key).is_none_or(|v| !has(&values, v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn subject_keys(subjects: &Value, binding_namespace: &str) -> Vec<(Subject, String)> {
    let mut out = Vec::new();
    for s in subjects.as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        match s["kind"].as_str().unwrap_or_default() {
            "User" => out.push((Subject::User(name.into()), format!("User {name:?}"))),
            "Group" => out.push((Subject::Group(name.into()), format!("Group {name:?}"))),
            "ServiceAccount" => {
                let ns = s["namespace"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_namespace);
                if ns.is_empty() {
                    continue;
                }
                out.push((
                    Subject::ServiceAccount(ns.to_string(), name.to_string()),
                    format!("ServiceAccount {:?}", format!("{name}/{ns}")),
                ));
            }
            _ => {}
        }
    }
    out
}

fn is_default(obj: &Value) -> bool {
    obj["metadata"]["labels"][BOOTSTRAP_LABEL] == BOOTSTRAP_VALUE
}

impl ClusterPolicy {
    /// Indexes the cluster's RBAC objects, reusing what `previous` parsed of unchanged ones.
    fn build(
        cache: &Cache,
        cluster: &str,
        previous: Option<&ClusterPolicy>,
        bootstrap: Option<Arc<Bootstrap>>,
    ) -> ClusterPolicy {
        let mut parsed: HashMap<Arc<str>, (u64, Parsed)> = HashMap::new();
        let mut revision = u64::MAX;
        let mut lists = Vec::new();
        for resource in ["roles", "clusterroles", "rolebindings", "clusterrolebindings"] {
            let (objects, rev, _) = cache.list(
                Prefix::resource(GROUP, resource).cluster(cluster).as_str(),
                None,
                0,
                |_| true,
            );
            revision = revision.min(rev);
            let mut out = Vec::with_capacity(objects.len());
            for o in objects {
                let reused = previous
                    .and_then(|p| p.parsed.get(&o.key))
                    .filter(|(rev, _)| *rev == o.mod_revision)
                    .map(|(_, p)| p.clone());
                let p = reused.unwrap_or_else(|| match resource {
                    "roles" | "clusterroles" => Parsed::role(&o.value()),
                    "rolebindings" => Parsed::binding(&o.value(), "RoleBinding"),
                    _ => Parsed::binding(&o.value(), "ClusterRoleBinding"),
                });
                parsed.insert(o.key.clone(), (o.mod_revision, p.clone()));
                out.push(p);
            }
            lists.push(out);
        }
        ClusterPolicy::index(cluster, revision, parsed, &lists, bootstrap)
    }

    /// The index of parsed Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (in that
    /// order in `lists`).
    fn index(
        cluster: &str,
        revision: u64,
        parsed: HashMap<Arc<str>, (u64, Parsed)>,
        lists: &[Vec<Parsed>],
        bootstrap: Option<Arc<Bootstrap>>,
    ) -> ClusterPolicy {
        let roles: HashMap<(String, String), Arc<[Rule]>> = roles_of(&lists[0])
            .into_iter()
            .map(|r| ((r.namespace.clone(), r.name.clone()), r.rules.clone()))
            .collect();

        // ClusterRoles, aggregation resolved over the bootstrap policy's and the cluster's
        // own (which win by name, as in kcp).
        let own = raw_cluster_roles(&lists[1]);
        let mut resolved: HashMap<String, Arc<[Rule]>> = HashMap::new();
        if !own.is_empty() || bootstrap.is_none() {
            let mut raw = bootstrap.as_ref().map(|b| b.raw.clone()).unwrap_or_default();
            raw.extend(own);
            let mut names: Vec<&String> = raw.keys().collect();
            names.sort();
            for name in names {
                let mut visiting = HashSet::new();
                let rules = resolve_cluster_role(name, &raw, &mut resolved, &mut visiting);
                resolved.insert(name.clone(), rules);
            }
        }

        let mut policy = ClusterPolicy {
            cluster: cluster.to_string(),
            revision,
            parsed,
            roles,
            cluster_roles: resolved,
            cluster_grants: HashMap::new(),
            namespace_grants: HashMap::new(),
            entry: HashSet::new(),
            bootstrap,
        };
        for list in [&lists[3], &lists[2]] {
            for p in list {
                if let Parsed::Binding(b) = p {
                    policy.add_binding(b);
                }
            }
        }
        policy
    }

    fn rules_of(&self, kind: &str, name: &str, namespace: &str) -> Option<Arc<[Rule]>> {
        match kind {
            // Without ClusterRoles of its own, the cluster's are the bootstrap policy's.
            "ClusterRole" => self.cluster_roles.get(name).cloned().or_else(|| {
                self.bootstrap
                    .as_ref()
                    .and_then(|b| b.policy.cluster_roles.get(name).cloned())
            }),
            "Role" if !namespace.is_empty() => self.roles.get(&(namespace.to_string(), name.to_string())).cloned(),
            _ => None,
        }
    }

    fn role_ref_rules(&self, role_ref: &Value, namespace: &str) -> Option<Arc<[Rule]>> {
        self.rules_of(
            role_ref["kind"].as_str().unwrap_or_default(),
            role_ref["name"].as_str().unwrap_or_default(),
            namespace,
        )
    }

    fn add_binding(&mut self, binding: &Arc<ParsedBinding>) {
        if !binding.default {
            self.entry.extend(binding.subjects.iter().map(|(s, _)| s.clone()));
        }
        let Some(rules) = self.rules_of(&binding.role_kind, &binding.role_name, &binding.namespace) else {
            return;
        };
        let grants = if binding.namespace.is_empty() {
            &mut self.cluster_grants
        } else {
            self.namespace_grants.entry(binding.namespace.clone()).or_default()
        };
        for (i, (subject, _)) in binding.subjects.iter().enumerate() {
            grants.entry(subject.clone()).or_default().push(Arc::new(Grant {
                binding: binding.clone(),
                subject: i,
                rules: rules.clone(),
            }));
        }
    }

    /// The subject keys `user` matches here: its name, its groups, and — for a
    /// ServiceAccount of this workspace — the ServiceAccount itself.
    fn subjects_of(&self, user: &User) -> Vec<Subject> {
        let mut keys: Vec<Subject> = std::iter::once(Subject::User(user.name.clone()))
            .chain(user.groups.iter().map(|g| Subject::Group(g.clone())))
            .collect();
        if user.home_cluster() == Some(self.cluster.as_str())
            && let Some((ns, name)) = super::serviceaccount::split_username(&user.name)
        {
            keys.push(Subject::ServiceAccount(ns.to_string(), name.to_string()));
        }
        keys
    }

    /// Calls `visit` with every grant that applies to `user` in `namespace` ("" = cluster
    /// bindings only) until it returns true: the cluster's own, then the bootstrap policy's.
    fn visit(&self, user: &User, namespace: &str, mut visit: impl FnMut(&Grant) -> bool) -> bool {
        let keys = self.subjects_of(user);
        let maps = std::iter::once(&self.cluster_grants)
            .chain(
                (!namespace.is_empty())
                    .then(|| self.namespace_grants.get(namespace))
                    .flatten(),
            )
            .chain(self.bootstrap.as_ref().map(|b| &b.policy.cluster_grants));
        for grants in maps {
            for key in &keys {
                for grant in grants.get(key).into_iter().flatten() {
                    if visit(grant) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

fn roles_of(list: &[Parsed]) -> Vec<Arc<ParsedRole>> {
    list.iter()
        .filter_map(|p| match p {
            Parsed::Role(r) => Some(r.clone()),
            Parsed::Binding(_) => None,
        })
        .collect()
}

fn raw_cluster_roles(list: &[Parsed]) -> HashMap<String, Arc<ParsedRole>> {
    roles_of(list).into_iter().map(|r| (r.name.clone(), r)).collect()
}

fn resolve_cluster_role(
    name: &str,
    raw: &HashMap<String, Arc<ParsedRole>>,
    resolved: &mut HashMap<String, Arc<[Rule]>>,
    visiting: &mut HashSet<String>,
) -> Arc<[Rule]> {
    if let Some(rules) = resolved.get(name) {
        return rules.clone();
    }
    let Some(role) = raw.get(name) else {
        return Arc::from(Vec::new());
    };
    if role.selectors.is_empty() {
        resolved.insert(name.to_string(), role.rules.clone());
        return role.rules.clone();
    }
    visiting.insert(name.to_string());
    let mut rules: Vec<Rule> = Vec::new();
    for selector in &role.selectors {
        let mut matched: Vec<&String> = raw
            .iter()
            .filter(|(other, r)| {
                other.as_str() != name && !visiting.contains(other.as_str()) && selector_matches(selector, &r.labels)
            })
            .map(|(other, _)| other)
            .collect();
        matched.sort();
        for other in matched {
            for rule in resolve_cluster_role(other, raw, resolved, visiting).iter() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
        }
    }
    visiting.remove(name);
    // Only memoised at the top level: a result computed while a cycle was being broken
    // may lack rules.
    Arc::from(rules)
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with the reason (which binding).
    Allow(String),
    Deny,
}

struct State {
    policies: HashMap<String, Arc<ClusterPolicy>>,
    /// Revision of the latest RBAC change seen per cluster: an index built before it is stale.
    changed: HashMap<String, u64>,
    /// Everything built before this revision is stale (after the follower lagged).
    cleared: u64,
}

impl State {
    fn valid_from(&self, cluster: &str) -> u64 {
        self.changed.get(cluster).copied().unwrap_or(0).max(self.cleared)
    }
}

/// Follows the cache's events and marks clusters whose RBAC objects changed. Whatever is
/// queued is handled as one batch, and `applied` advances once per batch, so waiting
/// requests wake once rather than once per event.
async fn follow(
    mut live: faros_storage::Feed,
    state: std::sync::Weak<RwLock<State>>,
    cache: std::sync::Weak<Cache>,
    applied: watch::Sender<u64>,
) {
    use faros_storage::FeedEnded;
    loop {
        let mut next = live.recv().await.map(Some);
        let Some(state) = state.upgrade() else { return };
        let mut changed: Vec<(String, u64)> = Vec::new();
        let mut cleared = None;
        let mut revision = 0;
        loop {
            match next {
                Ok(Some(event)) => {
                    if let Some(key) = Key::parse(&event.object.key)
                        && key.group == GROUP
                    {
                        let cluster = key.cluster;
                        changed.push((cluster.to_string(), event.revision));
                    }
                    revision = revision.max(event.revision);
                }
                Ok(None) => break,
                Err(FeedEnded::Lagged | FeedEnded::Expired) => {
                    // Events were lost: every index may be stale; follow again from now.
                    let Some(cache) = cache.upgrade() else { return };
                    let Ok(start) = cache.watch("/", None) else { return };
                    live = start.live;
                    changed.clear();
                    cleared = Some(start.revision);
                    revision = revision.max(start.revision);
                    break;
                }
                Err(FeedEnded::Closed) => return,
            }
            next = live.try_recv();
        }
        if !changed.is_empty() || cleared.is_some() {
            let mut s = state.write().unwrap_or_else(|e| e.into_inner());
            if let Some(now) = cleared {
                s.policies.clear();
                s.changed.clear();
                s.cleared = now;
            }
            for (cluster, rev) in changed {
                let seen = s.changed.entry(cluster).or_insert(0);
                *seen = (*seen).max(rev);
            }
        }
        applied.send_if_modified(|r| {
            let newer = revision > *r;
            *r = (*r).max(revision);
            newer
        });
    }
}

/// Decides what authenticated users may do.
pub struct Authorizer {
    cache: Arc<Cache>,
    bootstrap: Arc<Bootstrap>,
    state: Arc<RwLock<State>>,
    /// Every change up to this revision has been seen by the follower.
    applied: watch::Receiver<u64>,
}

/// Most clusters whose index is kept; beyond, the indexes are dropped and rebuilt on demand.
const MAX_INDEXED_CLUSTERS: usize = 16_384;

impl Authorizer {
    /// Starts following the cache (needs a Tokio runtime).
    pub fn new(cache: Arc<Cache>) -> Authorizer {
        let state = Arc::new(RwLock::new(State {
            policies: HashMap::new(),
            changed: HashMap::new(),
            cleared: 0,
        }));
        // Every event, not only RBAC ones: each one moves the index's revision forward, which
        // is what `sync` waits for.
        let start = cache.watch("/", None).ok();
        let initial = start.as_ref().map(|s| s.revision).unwrap_or_else(|| cache.revision());
        let (tx, applied) = watch::channel(initial);
        if let Some(start) = start {
            tokio::spawn(follow(start.live, Arc::downgrade(&state), Arc::downgrade(&cache), tx));
        }
        Authorizer {
            cache,
            bootstrap: Arc::new(Bootstrap::new()),
            state,
            applied,
        }
    }

    /// Waits until every RBAC change the cache holds now is reflected (normally at once).
    pub async fn sync(&self) {
        let target = self.cache.revision();
        if *self.applied.borrow() >= target {
            return;
        }
        let mut rx = self.applied.clone();
        if tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|r| *r >= target))
            .await
            .is_err()
        {
            tracing::warn!("the RBAC index did not catch up in time; rebuilding it");
            let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
            s.policies.clear();
            s.cleared = target;
        }
    }

    fn policy(&self, cluster: &str) -> Arc<ClusterPolicy> {
        {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(policy) = s.policies.get(cluster)
                && policy.revision >= s.valid_from(cluster)
            {
                return policy.clone();
            }
        }
        let previous = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .policies
            .get(cluster)
            .cloned();
        let built = Arc::new(ClusterPolicy::build(
            &self.cache,
            cluster,
            previous.as_deref(),
            Some(self.bootstrap.clone()),
        ));
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        if built.revision >= s.valid_from(cluster)
            && s.policies.get(cluster).is_none_or(|p| p.revision < built.revision)
        {
            if s.policies.len() >= MAX_INDEXED_CLUSTERS {
                s.policies.clear();
            }
            s.policies.insert(cluster.to_string(), built.clone());
        }
        built
    }

    /// Whether `user` may make any request in `cluster`.
    pub fn may_enter(&self, user: &User, cluster: &str) -> bool {
        if user.is_master() {
            return true;
        }
        if let Some(home) = user.home_cluster() {
            return home == cluster;
        }
        let policy = self.policy(cluster);
        policy.subjects_of(user).iter().any(|s| policy.entry.contains(s))
    }

    pub fn authorize(&self, user: &User, cluster: &str, attrs: &Attributes) -> Decision {
        if user.is_master() {
            return Decision::Allow(String::new());
        }
        if user.home_cluster().is_some_and(|home| home != cluster) {
            return Decision::Deny;
        }
        let policy = self.policy(cluster);
        let mut reason = None;
        policy.visit(user, attrs.namespace(), |grant| {
            if grant.rules.iter().any(|r| r.allows(attrs)) {
                reason = Some(format!("RBAC: allowed by {}", grant.source()));
                true
            } else {
                false
            }
        });
        reason.map(Decision::Allow).unwrap_or(Decision::Deny)
    }

    /// Whether the request is allowed (the hot path: no reason is built).
    pub fn allows(&self, user: &User, cluster: &str, attrs: &Attributes) -> bool {
        if user.is_master() {
            return true;
        }
        if user.home_cluster().is_some_and(|home| home != cluster) || writes_hub_owned(attrs) {
            return false;
        }
        self.policy(cluster).visit(user, attrs.namespace(), |grant| {
            grant.rules.iter().any(|r| r.allows(attrs))
        })
    }

    /// Authorizes or returns the Forbidden error kube-apiserver would send.
    pub fn check(&self, user: &User, cluster: &str, attrs: &Attributes) -> Result<(), ApiError> {
        if self.allows(user, cluster, attrs) {
            Ok(())
        } else {
            Err(forbidden(user, attrs, ""))
        }
    }

    /// Every rule that applies to `user` in `namespace` ("" = cluster-wide rules only).
    pub fn rules_for(&self, user: &User, cluster: &str, namespace: &str) -> Vec<Rule> {
        if user.home_cluster().is_some_and(|home| home != cluster) {
            return Vec::new();
        }
        let policy = self.policy(cluster);
        let mut rules: Vec<Rule> = Vec::new();
        policy.visit(user, namespace, |grant| {
            for rule in grant.rules.iter() {
                if !rules.contains(rule) {
                    rules.push(rule.clone());
                }
            }
            false
        });
        rules
    }

    /// The effective rules of a role reference, or None when the role does not exist.
    pub fn role_ref_rules(&self, cluster: &str, role_ref: &Value, namespace: &str) -> Option<Arc<[Rule]>> {
        let policy = self.policy(cluster);
        policy.role_ref_rules(role_ref, namespace)
    }
}

/// The rules `owner` lacks to hold everything `requested` grants (Kubernetes' `Covers`),
/// broken down into single permissions.
pub fn uncovered(owner: &[Rule], requested: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for rule in requested {
        for atom in breakdown(rule) {
            if !owner.iter().any(|o| covers(o, &atom)) {
                missing.push(atom);
            }
        }
    }
    missing
}

fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                if rule.resource_names.is_empty() {
                    out.push(Rule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..Rule::default()
                    });
                }
                for name in &rule.resource_names {
                    out.push(Rule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: vec![name.clone()],
                        ..Rule::default()
                    });
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Rule::default()
            });
        }
    }
    out
}

/// Kubernetes' `ruleCovers`.
fn covers(owner: &Rule, sub: &Rule) -> bool {
    let all = |set: &[String], wanted: &[String]| wanted.iter().all(|w| has(set, w));
    let verbs = has(&owner.verbs, "*") || all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || all(&owner.api_groups, &sub.api_groups);
    let resources = has(&owner.resources, "*")
        || sub.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
        });
    let urls = sub.non_resource_urls.iter().all(|u| {
        owner
            .non_resource_urls
            .iter()
            .any(|o| o == "*" || o == u || (o.ends_with('*') && u.starts_with(o.trim_end_matches('*'))))
    });
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && urls && names
}

/// Merges single permissions that differ only in their verb, for messages.
pub fn compact(rules: &[Rule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for rule in rules {
        match out.iter_mut().find(|r| {
            r.api_groups == rule.api_groups
                && r.resources == rule.resources
                && r.resource_names == rule.resource_names
                && r.non_resource_urls == rule.non_resource_urls
        }) {
            Some(existing) => {
                for verb in &rule.verbs {
                    if !has(&existing.verbs, verb) {
                        existing.verbs.push(verb.clone());
                    }
                }
            }
            None => out.push(rule.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: Option<&str>, name: &str) -> Attributes {
        let mut a = Attributes::resource(verb, group, resource, "default", name);
        a.resource.as_mut().unwrap().subresource = sub.map(str::to_string);
        a
    }

    #[test]
    fn rule_matching_follows_kubernetes() {
        let r = rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}));
        assert!(r.allows(&res("get", "", "configmaps", None, "a")));
        assert!(!r.allows(&res("create", "", "configmaps", None, "")));
        assert!(!r.allows(&res("get", "apps", "configmaps", None, "a")));
        assert!(!r.allows(&res("get", "", "secrets", None, "a")));
        assert!(!r.allows(&res("get", "", "configmaps", Some("status"), "a")));

        let status = rule(json!({"verbs": ["update"], "apiGroups": ["edge.faros.sh"], "resources": ["agents/status"]}));
        assert!(status.allows(&res("update", "edge.faros.sh", "agents", Some("status"), "a")));
        assert!(!status.allows(&res("update", "edge.faros.sh", "agents", None, "a")));
        let any_status = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/status"]}));
        assert!(any_status.allows(&res("patch", "x", "widgets", Some("status"), "a")));
        assert!(!any_status.allows(&res("patch", "x", "widgets", None, "a")));
        assert!(!any_status.allows(&res("patch", "x", "widgets", Some("scale"), "a")));

        let named =
            rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}));
        assert!(named.allows(&res("get", "", "configmaps", None, "a")));
        assert!(!named.allows(&res("get", "", "configmaps", None, "b")));
        assert!(!named.allows(&res("get", "", "configmaps", None, "")));

        let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/apis", "/apis/*", "/version"]}));
        assert!(urls.allows(&Attributes::non_resource("get", "/apis")));
        assert!(urls.allows(&Attributes::non_resource("get", "/apis/example.com/v1")));
        assert!(!urls.allows(&Attributes::non_resource("get", "/api")));
        assert!(!urls.allows(&Attributes::non_resource("post", "/version")));
        assert!(!urls.allows(&res("get", "", "apis", None, "")));
    }

    #[test]
    fn covers_breaks_rules_down() {
        let owner = vec![
            rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]})),
            rule(json!({"verbs": ["*"], "apiGroups": ["x"], "resources": ["*/status"]})),
        ];
        assert!(
            uncovered(
                &owner,
                &[rule(
                    json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]})
                )]
            )
            .is_empty()
        );
        assert!(
            uncovered(
                &owner,
                &[rule(
                    json!({"verbs": ["update"], "apiGroups": ["x"], "resources": ["w/status"]})
                )]
            )
            .is_empty()
        );
        let missing = uncovered(
            &owner,
            &[rule(
                json!({"verbs": ["get", "create"], "apiGroups": [""], "resources": ["configmaps", "secrets"]}),
            )],
        );
        assert_eq!(missing.len(), 3);
        let compacted = compact(&missing);
        let text: Vec<String> = compacted.iter().map(Rule::compact_string).collect();
        assert!(
            text.contains(&r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "create"]}"#.to_string()),
            "{text:?}"
        );
        // Named owner rules do not cover unnamed requests.
        let named_owner = vec![rule(
            json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
        )];
        assert_eq!(
            uncovered(
                &named_owner,
                &[rule(
                    json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]})
                )]
            )
            .len(),
            1
        );
    }

    #[test]
    fn selectors() {
        let labels = json!({"a": "1", "b": "2"});
        let labels = labels.as_object().unwrap();
        assert!(selector_matches(&json!({"matchLabels": {"a": "1"}}), labels));
        assert!(!selector_matches(&json!({"matchLabels": {"a": "2"}}), labels));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "b", "operator": "In", "values": ["2", "3"]}]}),
            labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}),
            labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}),
            labels
        ));
        assert!(selector_matches(&json!({}), labels));
    }

    /// An Authorizer over a real cache: RBAC writes are in force for the next request,
    /// aggregation is resolved, entry needs a binding of one's own.
    #[tokio::test]
    async fn index_follows_writes() {
        use faros_storage::WriteOp;
        let dir = std::env::temp_dir().join(format!("faros-rbac-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let backend = Arc::new(faros_storage::SqliteBackend::open(&dir.join("hub.db")).unwrap());
        let cache = Cache::start(backend, faros_storage::Window::events(1000))
            .await
            .unwrap();
        let authz = Authorizer::new(cache.clone());
        let put = |key: &str, value: Value| {
            let cache = cache.clone();
            let key = key.to_string();
            async move {
                let current = cache.get(&key);
                let value = bytes::Bytes::from(serde_json::to_vec(&value).unwrap());
                let op = match current {
                    Some(o) => WriteOp::Update {
                        key,
                        value,
                        expected: o.mod_revision,
                    },
                    None => WriteOp::Create { key, value },
                };
                cache.write(op).await.unwrap();
            }
        };
        let bob = User::authenticated("bob", vec![], "");
        let list_cm = Attributes::resource("list", "", "configmaps", "default", "");
        // Writes of other kinds move the index forward too: `sync` never waits on them.
        put(
            &Prefix::resource("", "configmaps")
                .cluster("c1")
                .namespace("default")
                .name("x"),
            json!({"metadata": {"name": "x"}}),
        )
        .await;
        let mut applied = authz.applied.clone();
        let target = cache.revision();
        tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|r| *r >= target))
            .await
            .expect("the index follows every write")
            .unwrap();
        authz.sync().await;
        assert!(!authz.may_enter(&bob, "c1"));
        assert_eq!(authz.authorize(&bob, "c1", &list_cm), Decision::Deny);

        // Nothing of the bootstrap policy is stored in c1: a binding to its `view` lets bob in
        // and grants it, and its bindings give bob discovery.
        put(
            &Prefix::resource(GROUP, "rolebindings")
                .cluster("c1")
                .namespace("default")
                .name("bob"),
            json!({"metadata": {"name": "bob", "namespace": "default"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "bob"}]}),
        )
        .await;
        authz.sync().await;
        assert!(authz.may_enter(&bob, "c1"));
        assert!(!authz.may_enter(&bob, "c2"));
        assert!(authz.allows(&bob, "c1", &list_cm));
        assert!(!authz.allows(&bob, "c1", &Attributes::resource("list", "", "configmaps", "other", "")));
        assert!(!authz.allows(&bob, "c1", &Attributes::resource("list", "", "secrets", "default", "")));
        assert!(authz.allows(&bob, "c1", &Attributes::non_resource("get", "/apis/x/v1")));
        let widgets = Attributes::resource("get", "example.com", "widgets", "default", "w");
        assert!(!authz.allows(&bob, "c1", &widgets));
        put(
            &Prefix::resource(GROUP, "clusterroles").cluster("c1").name("widget-view"),
            json!({"metadata": {"name": "widget-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]}),
        )
        .await;
        authz.sync().await;
        assert!(authz.allows(&bob, "c1", &widgets));
        // admin aggregates edit, which aggregates view.
        assert!(
            authz
                .role_ref_rules("c1", &json!({"kind": "ClusterRole", "name": "admin"}), "")
                .unwrap()
                .iter()
                .any(|r| r.resources == ["widgets"])
        );

        // Another cluster's own roles aggregate into its `view` only.
        assert!(
            !authz
                .role_ref_rules("c2", &json!({"kind": "ClusterRole", "name": "view"}), "")
                .unwrap()
                .iter()
                .any(|r| r.resources == ["widgets"])
        );
        // A cluster's own ClusterRole of a bootstrap name wins there; deleting it brings the
        // bootstrap one back.
        let view_key = Prefix::resource(GROUP, "clusterroles").cluster("c1").name("view");
        put(
            &view_key,
            json!({"metadata": {"name": "view"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]}),
        )
        .await;
        authz.sync().await;
        let list_secrets = Attributes::resource("list", "", "secrets", "default", "");
        assert!(authz.allows(&bob, "c1", &list_secrets));
        assert!(!authz.allows(&bob, "c1", &list_cm));
        let current = cache.get(&view_key).unwrap();
        cache
            .write(WriteOp::Delete {
                key: view_key.clone(),
                expected: current.mod_revision,
            })
            .await
            .unwrap();
        authz.sync().await;
        assert!(!authz.allows(&bob, "c1", &list_secrets));
        assert!(authz.allows(&bob, "c1", &list_cm));

        // A ServiceAccount of c1 enters c1 only, and its name means nothing elsewhere.
        let sa = super::super::serviceaccount::user("c1", "default", "robot", "u");
        assert!(authz.may_enter(&sa, "c1"));
        assert!(!authz.may_enter(&sa, "c2"));
        put(
            &Prefix::resource(GROUP, "rolebindings")
                .cluster("c1")
                .namespace("default")
                .name("robot"),
            json!({"metadata": {"name": "robot", "namespace": "default"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}),
        )
        .await;
        authz.sync().await;
        assert!(authz.allows(&sa, "c1", &list_cm));
        // A certificate or token merely named like the ServiceAccount gets nothing.
        let impostor = User::authenticated("system:serviceaccount:default:robot", vec![], "");
        assert!(!authz.may_enter(&impostor, "c1"));
        assert!(!authz.allows(&impostor, "c1", &list_cm));
        let masters = User::authenticated("root", vec![super::super::MASTERS.into()], "");
        assert!(authz.may_enter(&masters, "anything"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn forbidden_messages() {
        let user = User::authenticated("bob", vec![], "");
        let err = forbidden(
            &user,
            &Attributes::resource("list", "", "configmaps", "default", ""),
            "",
        );
        assert_eq!(
            err.message,
            r#"configmaps is forbidden: User "bob" cannot list resource "configmaps" in API group "" in the namespace "default""#
        );
        let mut attrs = Attributes::resource("update", "example.com", "widgets", "", "w");
        attrs.resource.as_mut().unwrap().subresource = Some("status".into());
        assert_eq!(
            forbidden(&user, &attrs, "").message,
            r#"widgets.example.com "w" is forbidden: User "bob" cannot update resource "widgets/status" in API group "example.com" at the cluster scope"#
        );
        assert_eq!(
            forbidden(&user, &Attributes::non_resource("get", "/apis"), "").message,
            r#"forbidden: User "bob" cannot get path "/apis""#
        );
    }
}
