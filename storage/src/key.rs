//! Storage keys in kcp's layout: `/<group>/<resource>/<logical-cluster>/[<namespace>/]<name>`.
//!
//! The logical cluster comes right after the resource, so one prefix range covers a resource
//! in every workspace (the `/clusters/*` view) and a longer one covers one workspace or one
//! namespace. Keys are built only here; the rest of the hub never formats them by hand.

use std::fmt;

/// The name the legacy (core) group is stored under: the empty group would leave `//`.
const CORE_GROUP: &str = "core";

/// One object's key, in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    /// The API group; empty for the legacy core group.
    pub group: &'a str,
    /// The resource as stored: its plural, with `:<identity>` for a bound resource.
    pub resource: &'a str,
    pub cluster: &'a str,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl<'a> Key<'a> {
    /// The key as stored.
    pub fn encode(&self) -> String {
        let mut prefix = Prefix::resource(self.group, self.resource).cluster(self.cluster);
        if let Some(namespace) = self.namespace {
            prefix = prefix.namespace(namespace);
        }
        prefix.name(self.name)
    }

    /// Splits a stored key into its parts; `None` for a string that is not a key.
    pub fn parse(key: &'a str) -> Option<Key<'a>> {
        let mut parts = key.strip_prefix('/')?.split('/');
        let group = parts.next()?;
        let resource = parts.next()?;
        let cluster = parts.next()?;
        let (namespace, name) = match (parts.next()?, parts.next()) {
            (name, None) => (None, name),
            (namespace, Some(name)) => (Some(namespace), name),
        };
        if parts.next().is_some() || [group, resource, cluster, name].iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Key {
            group: if group == CORE_GROUP { "" } else { group },
            resource,
            cluster,
            namespace,
            name,
        })
    }
}

/// The `/<group>/<resource>/` an object's key starts with; `None` for what is not an
/// object's key.
pub(crate) fn resource_prefix(key: &str) -> Option<&str> {
    Key::parse(key)?;
    let (end, _) = key.match_indices('/').nth(2)?;
    Some(&key[..=end])
}

/// The group (empty for the legacy core group) and resource of a `/<group>/<resource>/` key
/// prefix, as [`resource_prefix`] gives it; `None` for anything else.
pub(crate) fn parse_resource_prefix(prefix: &str) -> Option<(&str, &str)> {
    let (group, resource) = prefix.strip_prefix('/')?.strip_suffix('/')?.split_once('/')?;
    if group.is_empty() || resource.is_empty() || resource.contains('/') {
        return None;
    }
    Some((if group == CORE_GROUP { "" } else { group }, resource))
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A key prefix ending in `/`: a resource in every logical cluster, in one cluster, or in one
/// namespace of one cluster. Built from the outside in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Prefix(String);

/// What [`Prefix::resource`] reserves for the segments after the resource: a logical
/// cluster's 16 characters, a namespace and a name of common length.
const SEGMENTS_ROOM: usize = 96;

impl Prefix {
    /// `/<group>/<resource>/`: the resource in every logical cluster.
    pub fn resource(group: &str, resource: &str) -> Prefix {
        let group = if group.is_empty() { CORE_GROUP } else { group };
        // Room for the cluster, namespace and name usually added: every request for one
        // object builds its key, which should not grow a string a piece at a time.
        let mut prefix = String::with_capacity(group.len() + resource.len() + 3 + SEGMENTS_ROOM);
        for segment in ["/", group, "/", resource, "/"] {
            prefix.push_str(segment);
        }
        Prefix(prefix)
    }

    /// Narrows to one logical cluster.
    pub fn cluster(self, cluster: &str) -> Prefix {
        self.push(cluster)
    }

    /// Narrows to one namespace (after [`Prefix::cluster`]).
    pub fn namespace(self, namespace: &str) -> Prefix {
        self.push(namespace)
    }

    /// The key of the object `name` under this prefix.
    pub fn name(self, name: &str) -> String {
        let mut key = self.0;
        key.push_str(name);
        key
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn push(mut self, segment: &str) -> Prefix {
        self.0.push_str(segment);
        self.0.push('/');
        self
    }
}

impl AsRef<str> for Prefix {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let namespaced = Key {
            group: "",
            resource: "configmaps",
            cluster: "abc",
            namespace: Some("default"),
            name: "x",
        };
        assert_eq!(namespaced.encode(), "/core/configmaps/abc/default/x");
        assert_eq!(Key::parse("/core/configmaps/abc/default/x"), Some(namespaced));
        let cluster_scoped = Key {
            group: "apis.kcp.io",
            resource: "apibindings",
            cluster: "root",
            namespace: None,
            name: "edge",
        };
        assert_eq!(cluster_scoped.encode(), "/apis.kcp.io/apibindings/root/edge");
        assert_eq!(Key::parse(&cluster_scoped.encode()), Some(cluster_scoped));
    }

    #[test]
    fn resource_prefixes_of_keys() {
        assert_eq!(
            resource_prefix("/edge.faros.sh/agents/root/default/a1"),
            Some("/edge.faros.sh/agents/")
        );
        assert_eq!(
            resource_prefix("/core/namespaces/root/default"),
            Some("/core/namespaces/")
        );
        assert_eq!(resource_prefix("/not/an-object"), None);
    }

    #[test]
    fn resource_prefixes_parse() {
        assert_eq!(parse_resource_prefix("/core/configmaps/"), Some(("", "configmaps")));
        assert_eq!(
            parse_resource_prefix("/edge.faros.sh/agents/"),
            Some(("edge.faros.sh", "agents"))
        );
        for bad in [
            "",
            "/",
            "/core/",
            "/core/configmaps",
            "//configmaps/",
            "/core/configmaps/root/",
        ] {
            assert_eq!(parse_resource_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn non_keys_do_not_parse() {
        for bad in [
            "",
            "/",
            "core/configmaps/a/b",
            "/core/configmaps/a",
            "/core/configmaps/a/b/c/d",
            "/core//a/b",
        ] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_narrow_from_the_outside_in() {
        let resource = Prefix::resource("", "secrets");
        assert_eq!(resource.as_str(), "/core/secrets/");
        let ns = resource.clone().cluster("c1").namespace("kube-system");
        assert_eq!(ns.as_str(), "/core/secrets/c1/kube-system/");
        assert_eq!(ns.name("token"), "/core/secrets/c1/kube-system/token");
        assert_eq!(
            Prefix::resource("rbac.authorization.k8s.io", "roles").as_str(),
            "/rbac.authorization.k8s.io/roles/"
        );
    }
}
