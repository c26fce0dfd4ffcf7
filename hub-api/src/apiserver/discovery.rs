//! API discovery documents: `/api`, `/apis`, `/apis/<group>`, `/api/v1`, `/apis/<group>/<version>`
//! and the aggregated form (`apidiscovery.k8s.io` `APIGroupDiscoveryList`) that clients ask for
//! with a parameterised `Accept` header.
//!
//! Every function takes the full list of kinds served in the caller's logical cluster and
//! builds the document from it; nothing is cached here.
//!
//! What clients rely on:
//! - group order decides which group wins when two share a resource name (kubectl's RESTMapper
//!   takes the first), so the core group comes first, then built-in groups, then custom ones;
//! - within a group, versions are listed by Kubernetes version priority and the first one is the
//!   preferred version (aggregated discovery has no separate field for it);
//! - the `Content-Type` of an aggregated answer must carry `g`, `v` and `as` parameters
//!   ([`aggregated_content_type`]); a plain answer must be `application/json`, otherwise client-go
//!   cannot tell the formats apart.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::registry::ResourceKind;

/// Verbs served on the `status` subresource.
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// Orders version strings by Kubernetes version priority: GA before beta before alpha, higher
/// major (then higher minor) numbers first, and versions that do not look like `v<N>`,
/// `v<N>alpha<M>` or `v<N>beta<M>` last, alphabetically. `Ordering::Less` means `a` is preferred.
///
/// Sorted with it: `v10, v2, v1, v11beta2, v10beta3, v3beta1, v12alpha1, v11alpha2, foo1, foo10`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (kube_version(a), kube_version(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Parses `v<major>[(alpha|beta)<minor>]` into (major, stability, minor), stability being
/// 2 for GA, 1 for beta and 0 for alpha.
fn kube_version(v: &str) -> Option<(u64, u8, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let major: u64 = rest[..digits].parse().ok()?;
    let rest = &rest[digits..];
    if rest.is_empty() {
        return Some((major, 2, 0));
    }
    let (stability, minor) = if let Some(m) = rest.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = rest.strip_prefix("alpha") {
        (0, m)
    } else {
        return None;
    };
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((major, stability, minor.parse().ok()?))
}

/// One API group as discovery shows it.
struct GroupInfo {
    name: String,
    /// Served versions, most preferred first.
    versions: Vec<String>,
}

/// The served groups in discovery order: core first, then groups of built-in kinds in the order
/// the kinds are listed, then the remaining (custom resource) groups alphabetically.
fn groups(kinds: &[Arc<ResourceKind>]) -> Vec<GroupInfo> {
    let mut builtin: Vec<GroupInfo> = Vec::new();
    let mut custom: Vec<GroupInfo> = Vec::new();
    for k in kinds {
        let is_builtin = k.builtin || k.group.is_empty();
        let existing = builtin.iter().chain(custom.iter()).position(|g| g.name == k.group);
        let group = match existing {
            Some(i) if i < builtin.len() => &mut builtin[i],
            Some(i) => {
                let i = i - builtin.len();
                if is_builtin {
                    // A built-in kind in a group first seen through a custom one: the group
                    // counts as built-in.
                    let g = custom.remove(i);
                    builtin.push(g);
                    builtin.last_mut().expect("just pushed")
                } else {
                    &mut custom[i]
                }
            }
            None => {
                let target = if is_builtin { &mut builtin } else { &mut custom };
                target.push(GroupInfo {
                    name: k.group.clone(),
                    versions: Vec::new(),
                });
                target.last_mut().expect("just pushed")
            }
        };
        if !group.versions.contains(&k.version) {
            group.versions.push(k.version.clone());
        }
    }
    custom.sort_by(|a, b| a.name.cmp(&b.name));
    let mut all = builtin;
    // The core group always leads.
    if let Some(i) = all.iter().position(|g| g.name.is_empty()) {
        let core = all.remove(i);
        all.insert(0, core);
    }
    all.extend(custom);
    for g in &mut all {
        g.versions.sort_by(|a, b| compare_versions(a, b));
    }
    all
}

fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn version_for_discovery(group: &str, version: &str) -> Value {
    json!({"groupVersion": group_version_string(group, version), "version": version})
}

fn api_group_value(g: &GroupInfo) -> Value {
    let versions: Vec<Value> = g.versions.iter().map(|v| version_for_discovery(&g.name, v)).collect();
    let mut group = Map::new();
    group.insert("name".into(), g.name.clone().into());
    if let Some(preferred) = versions.first() {
        group.insert("preferredVersion".into(), preferred.clone());
    }
    group.insert("versions".into(), versions.into());
    Value::Object(group)
}

/// `GET /api`: the legacy core group's versions.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`: every non-core group with its versions, most preferred first.
pub fn api_group_list(kinds: &[Arc<ResourceKind>]) -> Value {
    let groups: Vec<Value> = groups(kinds)
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(api_group_value)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`; None when nothing is served in the group (including the core group,
/// which lives at `/api`).
pub fn api_group(kinds: &[Arc<ResourceKind>], group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let g = groups(kinds).into_iter().find(|g| g.name == group)?;
    let mut value = api_group_value(&g);
    let obj = value.as_object_mut().expect("object");
    obj.insert("kind".into(), "APIGroup".into());
    obj.insert("apiVersion".into(), "v1".into());
    Some(value)
}

/// The kinds of one group-version, one per resource, sorted by resource name.
fn kinds_of<'a>(kinds: &'a [Arc<ResourceKind>], group: &str, version: &str) -> Vec<&'a ResourceKind> {
    let mut out: Vec<&ResourceKind> = Vec::new();
    for k in kinds {
        if k.group == group && k.version == version && !out.iter().any(|o| o.resource == k.resource) {
            out.push(k);
        }
    }
    out.sort_by(|a, b| a.resource.cmp(&b.resource));
    out
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

fn verbs(k: &ResourceKind) -> Value {
    Value::Array(k.verbs().into_iter().map(Value::from).collect())
}

/// `GET /api/v1` (group "") and `GET /apis/<group>/<version>`: the resources of one
/// group-version, including `<plural>/status` entries. None when nothing is served there.
pub fn api_resource_list(kinds: &[Arc<ResourceKind>], group: &str, version: &str) -> Option<Value> {
    let served = kinds_of(kinds, group, version);
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in served {
        let mut r = Map::new();
        r.insert("name".into(), k.resource.clone().into());
        r.insert("singularName".into(), k.singular.clone().into());
        r.insert("namespaced".into(), k.namespaced.into());
        r.insert("kind".into(), k.kind.clone().into());
        r.insert("verbs".into(), verbs(k));
        if !k.short_names.is_empty() {
            r.insert("shortNames".into(), strings(&k.short_names));
        }
        if !k.categories.is_empty() {
            r.insert("categories".into(), strings(&k.categories));
        }
        resources.push(Value::Object(r));
        if k.has_status() {
            resources.push(json!({
                "name": format!("{}/status", k.resource),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": STATUS_VERBS,
            }));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version_string(group, version),
        "resources": resources,
    }))
}

/// The aggregated discovery versions a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedVersion {
    /// `apidiscovery.k8s.io/v2` (kubectl 1.30+).
    V2,
    /// `apidiscovery.k8s.io/v2beta1` (kubectl 1.27–1.29, still offered by later ones).
    V2Beta1,
}

impl AggregatedVersion {
    fn as_str(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "v2",
            AggregatedVersion::V2Beta1 => "v2beta1",
        }
    }
}

/// The exact `Content-Type` to answer an aggregated discovery request with.
pub fn aggregated_content_type(v: AggregatedVersion) -> &'static str {
    match v {
        AggregatedVersion::V2 => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        AggregatedVersion::V2Beta1 => "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    }
}

/// Picks the response format for `GET /api` or `GET /apis` from the `Accept` header. Media
/// ranges are considered by descending `q` and then in the client's order; the first one that
/// the server can produce decides: Some(version) for an aggregated discovery type, None for the
/// plain documents (`application/json`, `application/*`, `*/*`). Ranges the server cannot
/// produce (protobuf, unknown discovery versions) are skipped; with no usable range at all the
/// answer is None.
///
/// kubectl sends e.g. `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,
/// application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json`.
pub fn negotiate_aggregated(accept: &str) -> Option<AggregatedVersion> {
    let mut ranges: Vec<(f32, MediaRange)> = accept
        .split(',')
        .filter_map(MediaRange::parse)
        .map(|r| (r.quality(), r))
        .filter(|(q, _)| *q > 0.0)
        .collect();
    // Stable sort keeps the client's order among equal qualities.
    ranges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal));
    for (_, range) in &ranges {
        let json_like = matches!(
            (range.type_.as_str(), range.subtype.as_str()),
            ("application", "json") | ("application", "*") | ("*", "*")
        );
        if !json_like {
            continue;
        }
        let (g, v, as_) = (range.param("g"), range.param("v"), range.param("as"));
        if g.is_none() && v.is_none() && as_.is_none() {
            return None;
        }
        if g == Some("apidiscovery.k8s.io") && as_ == Some("APIGroupDiscoveryList") {
            match v {
                Some("v2") => return Some(AggregatedVersion::V2),
                Some("v2beta1") => return Some(AggregatedVersion::V2Beta1),
                _ => {}
            }
        }
    }
    None
}

/// One media range of an `Accept` header.
struct MediaRange {
    type_: String,
    subtype: String,
    /// Parameter names lowercased, values unquoted.
    params: Vec<(String, String)>,
}

impl MediaRange {
    fn parse(s: &str) -> Option<MediaRange> {
        let mut parts = s.split(';');
        let (type_, subtype) = parts.next()?.trim().split_once('/')?;
        let (type_, subtype) = (type_.trim().to_ascii_lowercase(), subtype.trim().to_ascii_lowercase());
        if type_.is_empty() || subtype.is_empty() {
            return None;
        }
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                let v = v.trim();
                let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                Some((k.trim().to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        Some(MediaRange { type_, subtype, params })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn quality(&self) -> f32 {
        self.param("q").and_then(|q| q.parse().ok()).unwrap_or(1.0)
    }
}

/// The aggregated discovery document: for `/api` (`legacy_core`) only the core group (named
/// ""), for `/apis` every other group. Versions are listed most preferred first; each resource
/// carries its status subresource.
pub fn aggregated(kinds: &[Arc<ResourceKind>], legacy_core: bool, version: AggregatedVersion) -> Value {
    let items: Vec<Value> = groups(kinds)
        .iter()
        .filter(|g| g.name.is_empty() == legacy_core)
        .map(|g| {
            let versions: Vec<Value> = g
                .versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = kinds_of(kinds, &g.name, v)
                        .into_iter()
                        .map(aggregated_resource)
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g.name}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", version.as_str()),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(k: &ResourceKind) -> Value {
    let response_kind = json!({"group": k.group, "version": k.version, "kind": k.kind});
    let mut r = Map::new();
    r.insert("resource".into(), k.resource.clone().into());
    r.insert("responseKind".into(), response_kind.clone());
    r.insert(
        "scope".into(),
        if k.namespaced { "Namespaced" } else { "Cluster" }.into(),
    );
    r.insert("singularResource".into(), k.singular.clone().into());
    r.insert("verbs".into(), verbs(k));
    if !k.short_names.is_empty() {
        r.insert("shortNames".into(), strings(&k.short_names));
    }
    if !k.categories.is_empty() {
        r.insert("categories".into(), strings(&k.categories));
    }
    if k.has_status() {
        r.insert(
            "subresources".into(),
            json!([{"subresource": "status", "responseKind": response_kind, "verbs": STATUS_VERBS}]),
        );
    }
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;
    use crate::registry::crd::CrdKinds;

    /// A CRD serving `versions` (the first is the storage version) of `widgets.example.com`.
    fn widget_kinds(versions: &[&str]) -> Vec<Arc<ResourceKind>> {
        let versions: Vec<Value> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({"name": v, "served": true, "storage": i == 0,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}},
                    "subresources": {"status": {}}})
            })
            .collect();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                    "shortNames": ["wd"], "categories": ["all"]},
                "versions": versions},
            "status": {"conditions": [{"type": "Established", "status": "True"}]},
        });
        CrdKinds::from_crd(&crd).expect("valid CRD").served
    }

    fn all_kinds() -> Vec<Arc<ResourceKind>> {
        let mut kinds = builtin::kinds();
        kinds.extend(widget_kinds(&["v1beta1", "v1"]));
        kinds
    }

    #[test]
    fn version_priority_ordering() {
        let mut v = vec![
            "foo",
            "v1alpha1",
            "v1beta1",
            "v1",
            "v1beta2",
            "v2",
            "v10",
            "v11alpha2",
            "v12alpha1",
            "foo10",
            "foo1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            [
                "v10",
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo",
                "foo1",
                "foo10"
            ]
        );
        for weird in ["v", "v1beta", "v1gamma1", "1", "vbeta1", "v1beta1x"] {
            assert_eq!(compare_versions("v9alpha9", weird), Ordering::Less, "{weird}");
        }
    }

    #[test]
    fn api_versions_document() {
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(v["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.1:6443");
    }

    #[test]
    fn group_list_orders_groups_and_versions() {
        let list = api_group_list(&all_kinds());
        assert_eq!(list["kind"], "APIGroupList");
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        // Built-in groups first, then custom groups; the core group is at /api.
        let pos = |g: &str| names.iter().position(|n| *n == g).unwrap();
        for builtin in [
            "coordination.k8s.io",
            "rbac.authorization.k8s.io",
            "apiextensions.k8s.io",
        ] {
            assert!(pos(builtin) < pos("example.com"), "{builtin}");
        }
        assert_eq!(names.last(), Some(&"example.com"));
        assert!(!names.contains(&""));
        let example = list["groups"].as_array().unwrap().last().unwrap();
        assert_eq!(example["versions"][0]["groupVersion"], "example.com/v1");
        assert_eq!(example["versions"][1]["version"], "v1beta1");
        assert_eq!(
            example["preferredVersion"],
            json!({"groupVersion": "example.com/v1", "version": "v1"})
        );
    }

    #[test]
    fn single_group() {
        let kinds = all_kinds();
        let g = api_group(&kinds, "example.com").unwrap();
        assert_eq!(g["kind"], "APIGroup");
        assert_eq!(g["preferredVersion"]["version"], "v1");
        assert!(api_group(&kinds, "nope.io").is_none());
        assert!(api_group(&kinds, "").is_none());
    }

    #[test]
    fn resource_lists() {
        let kinds = all_kinds();
        let core = api_resource_list(&kinds, "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for n in [
            "configmaps",
            "events",
            "namespaces",
            "namespaces/status",
            "secrets",
            "serviceaccounts",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert!(!names.contains(&"configmaps/status"));
        let resource = |name: &str| {
            core["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .unwrap()
        };
        let cm = resource("configmaps");
        assert_eq!(cm["singularName"], "configmap");
        assert_eq!(cm["namespaced"], true);
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(cm["shortNames"], json!(["cm"]));
        assert!(cm["verbs"].as_array().unwrap().contains(&json!("watch")));
        let ns_status = resource("namespaces/status");
        assert_eq!(ns_status["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(ns_status["kind"], "Namespace");

        let widgets = api_resource_list(&kinds, "example.com", "v1beta1").unwrap();
        assert_eq!(widgets["groupVersion"], "example.com/v1beta1");
        assert_eq!(widgets["resources"][0]["categories"], json!(["all"]));
        assert_eq!(widgets["resources"][1]["name"], "widgets/status");
        assert!(api_resource_list(&kinds, "example.com", "v2").is_none());
    }

    #[test]
    fn aggregated_discovery_has_status_subresources() {
        let kinds = all_kinds();
        let core = aggregated(&kinds, true, AggregatedVersion::V2);
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let ns = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "namespaces")
            .unwrap();
        assert_eq!(ns["scope"], "Cluster");
        assert_eq!(ns["singularResource"], "namespace");
        assert_eq!(
            ns["responseKind"],
            json!({"group": "", "version": "v1", "kind": "Namespace"})
        );
        assert_eq!(
            ns["subresources"],
            json!([{"subresource": "status", "responseKind": {"group": "", "version": "v1", "kind": "Namespace"},
                "verbs": ["get", "patch", "update"]}])
        );

        let apis = aggregated(&kinds, false, AggregatedVersion::V2Beta1);
        assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let groups = apis["items"].as_array().unwrap();
        assert!(groups.iter().all(|g| g["metadata"]["name"] != ""));
        let example = groups.iter().find(|g| g["metadata"]["name"] == "example.com").unwrap();
        let versions: Vec<&str> = example["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        let widgets = &example["versions"][0]["resources"][0];
        assert_eq!(widgets["scope"], "Namespaced");
        assert_eq!(widgets["shortNames"], json!(["wd"]));
        assert_eq!(widgets["categories"], json!(["all"]));
        assert_eq!(widgets["subresources"][0]["subresource"], "status");
        assert_eq!(widgets["subresources"][0]["responseKind"]["kind"], "Widget");
        let crds = groups
            .iter()
            .find(|g| g["metadata"]["name"] == "apiextensions.k8s.io")
            .unwrap();
        assert_eq!(
            crds["versions"][0]["resources"][0]["shortNames"],
            json!(["crd", "crds"])
        );
    }

    #[test]
    fn negotiation() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let v2b1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(
            negotiate_aggregated(&format!("{v2},{v2b1},application/json")),
            Some(AggregatedVersion::V2)
        );
        assert_eq!(
            negotiate_aggregated(&format!("{v2b1},application/json")),
            Some(AggregatedVersion::V2Beta1)
        );
        // client-go's "nopeer" profile variant, spaces and parameter order do not matter.
        assert_eq!(
            negotiate_aggregated(&format!("{v2};profile=nopeer,{v2},application/json")),
            Some(AggregatedVersion::V2)
        );
        assert_eq!(
            negotiate_aggregated("application/json; as=APIGroupDiscoveryList; v=v2beta1; g=apidiscovery.k8s.io"),
            Some(AggregatedVersion::V2Beta1)
        );
        // Unsupported entries are skipped.
        assert_eq!(
            negotiate_aggregated(&format!(
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
                 application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,{v2b1}"
            )),
            Some(AggregatedVersion::V2Beta1)
        );
        // Plain JSON first, or only, means the unaggregated documents.
        assert_eq!(negotiate_aggregated(&format!("application/json,{v2}")), None);
        assert_eq!(negotiate_aggregated("application/json"), None);
        assert_eq!(negotiate_aggregated("*/*"), None);
        assert_eq!(negotiate_aggregated(""), None);
        // Quality values are honoured.
        assert_eq!(
            negotiate_aggregated(&format!("application/json;q=0.5,{v2}")),
            Some(AggregatedVersion::V2)
        );
        assert_eq!(negotiate_aggregated(&format!("{v2};q=0,application/json")), None);
        assert_eq!(aggregated_content_type(AggregatedVersion::V2), v2);
        assert_eq!(aggregated_content_type(AggregatedVersion::V2Beta1), v2b1);
    }
}
