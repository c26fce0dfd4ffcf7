//! Request info: what a request is about, decoded from its method, path and query the way
//! kube-apiserver's RequestInfoFactory does, after the `/clusters/<path>` prefix is removed.

use http::Method;

use faros_machinery::status::{ApiError, ApiResult};

/// The workspace part of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterTarget {
    /// A workspace path such as `root` or `root:acme:plant-7`.
    Path(String),
    /// `/clusters/*`: every logical cluster at once (privileged, list/watch only).
    Wildcard,
}

/// What a resource request does, as RBAC and audit name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Whether the verb reads a collection: the only verbs served across all workspaces.
    pub fn is_collection_read(self) -> bool {
        matches!(self, Verb::List | Verb::Watch)
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: Verb,
    /// Empty for the legacy core group.
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Anything that is not an API resource: /version, /healthz, discovery, /openapi.
    NonResource(String),
    Resource(ResourceRequest),
}

/// An APIExport's view: `/services/apiexport/<workspace>/<export>/clusters/<cluster>/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportViewRef {
    /// The export's workspace, by path or logical cluster name.
    pub workspace: String,
    pub export: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// Set when the request goes through an APIExport's view.
    pub view: Option<ExportViewRef>,
    pub cluster: ClusterTarget,
    /// The URL prefix that selected the cluster ("" or "/clusters/<path>").
    pub base: String,
    pub target: Target,
}

/// Longest workspace path we accept; deeper paths are refused before any lookup.
const MAX_CLUSTER_PATH: usize = 1024;

/// Splits the export view and `/clusters/<path>` prefixes off `path` and classifies the rest.
pub fn parse(method: &Method, path: &str, query_watch: bool) -> ApiResult<RequestInfo> {
    let Some(after) = path.strip_prefix(faros_api::apis::VIEW_PATH_PREFIX) else {
        return parse_clusters(method, path, query_watch, None, "");
    };
    // `<workspace>/<export>/clusters/<cluster>/...`: a view is always entered per cluster.
    let mut parts = after.splitn(3, '/');
    let (Some(workspace), Some(export), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::no_such_resource());
    };
    if workspace.is_empty() || workspace.len() > MAX_CLUSTER_PATH || export.is_empty() || export.len() > 253 {
        return Err(ApiError::no_such_resource());
    }
    let rest = format!("/{rest}");
    if !rest.starts_with("/clusters/") {
        return Err(ApiError::no_such_resource());
    }
    let view = ExportViewRef {
        workspace: workspace.to_string(),
        export: export.to_string(),
    };
    let base = format!("{}{workspace}/{export}", faros_api::apis::VIEW_PATH_PREFIX);
    parse_clusters(method, &rest, query_watch, Some(view), &base)
}

fn parse_clusters(
    method: &Method,
    path: &str,
    query_watch: bool,
    view: Option<ExportViewRef>,
    view_base: &str,
) -> ApiResult<RequestInfo> {
    let (cluster, base, rest) = match path.strip_prefix("/clusters/") {
        Some(after) => {
            let (cluster, rest) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, "/"),
            };
            if cluster.is_empty() || cluster.len() > MAX_CLUSTER_PATH {
                return Err(ApiError::no_such_resource());
            }
            // Clients may percent-encode the wildcard.
            let target = if cluster == "*" || cluster.eq_ignore_ascii_case("%2A") {
                ClusterTarget::Wildcard
            } else {
                ClusterTarget::Path(cluster.to_string())
            };
            (target, format!("{view_base}/clusters/{cluster}"), rest)
        }
        None => (ClusterTarget::Path("root".into()), String::new(), path),
    };
    let target = classify(method, rest, query_watch)?;
    Ok(RequestInfo {
        view,
        cluster,
        base,
        target,
    })
}

fn classify(method: &Method, path: &str, query_watch: bool) -> ApiResult<Target> {
    let trimmed = path.trim_matches('/');
    let parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    // Empty segments (`//`) and dot segments are never valid API paths; refusing them
    // early keeps `..` tricks out of every later lookup.
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(ApiError::no_such_resource());
    }
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Ok(Target::NonResource(format!("/{trimmed}"))),
    };
    let mut rest: Vec<&str> = rest.to_vec();
    let mut watch_path = false;
    if rest.first() == Some(&"watch") {
        watch_path = true;
        rest.remove(0);
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        // `/namespaces/<ns>/<resource>...` unless the third part is one of the namespace's
        // own subresources, in which case the namespace object itself is meant.
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            namespace = Some(rest[1].to_string());
            rest.drain(..2);
        }
    }
    let (resource, name, subresource) = match rest.as_slice() {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
        // A proxy subresource carries a path of its own after it (`agents/<name>/proxy/
        // <port>/<path>`), as kube-apiserver's `services/proxy` does; its handler reads it
        // from the URL.
        [resource, name, sub, _, ..] if *sub == faros_tunnel::PROXY_SUBRESOURCE => {
            (*resource, Some(name.to_string()), Some(sub.to_string()))
        }
        _ => return Err(ApiError::no_such_resource()),
    };
    // A device's tunnel streams carry a session, whatever the method says: like
    // `pods/exec`, it is authorized as `create`, so that no read grant (`get` on `agents/*`)
    // can ever stand in for a device.
    let opens_session = (group == faros_api::EDGE_GROUP
        && resource == "agents"
        && subresource.as_deref() == Some(faros_tunnel::TUNNEL_SUBRESOURCE))
        || (group.is_empty()
            && resource == "pods"
            && matches!(subresource.as_deref(), Some("exec" | "attach" | "portforward")));
    let watch = watch_path || query_watch;
    let verb = match (method, name.is_some()) {
        _ if opens_session => Verb::Create,
        (&Method::GET | &Method::HEAD, _) if watch => Verb::Watch,
        (&Method::GET | &Method::HEAD, true) => Verb::Get,
        (&Method::GET | &Method::HEAD, false) => Verb::List,
        (&Method::POST, _) => Verb::Create,
        (&Method::PUT, _) => Verb::Update,
        (&Method::PATCH, _) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "method {method} is not supported"
            )));
        }
    };
    Ok(Target::Resource(ResourceRequest {
        verb,
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
        namespace,
        name,
        subresource,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(method: Method, path: &str) -> ResourceRequest {
        match parse(&method, path, false).unwrap().target {
            Target::Resource(r) => r,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_scoped_paths() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/configmaps/a");
        assert_eq!(
            (r.verb.as_str(), r.namespace.as_deref(), r.name.as_deref()),
            ("get", Some("default"), Some("a"))
        );
        let r = resource(Method::GET, "/api/v1/namespaces/default");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("default"), None)
        );
        let r = resource(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.resource.as_str(), r.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );
        let r = resource(Method::PATCH, "/apis/example.com/v1/namespaces/n/widgets/w/status");
        assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Patch, Some("status")));
        let r = resource(Method::DELETE, "/apis/example.com/v1/widgets");
        assert_eq!(r.verb, Verb::DeleteCollection);
        let r = resource(Method::GET, "/api/v1/watch/namespaces/n/configmaps");
        assert_eq!(r.verb, Verb::Watch);
    }

    #[test]
    fn cluster_prefix_is_split_off() {
        let info = parse(&Method::GET, "/clusters/root:acme/api/v1/namespaces", false).unwrap();
        assert_eq!(info.cluster, ClusterTarget::Path("root:acme".into()));
        assert_eq!(info.base, "/clusters/root:acme");
        let info = parse(&Method::GET, "/clusters/*/apis/edge.faros.sh/v1alpha1/agents", true).unwrap();
        assert_eq!(info.cluster, ClusterTarget::Wildcard);
        let info = parse(&Method::GET, "/clusters/root/version", false).unwrap();
        assert_eq!(info.target, Target::NonResource("/version".into()));
    }

    #[test]
    fn export_view_prefix_is_split_off() {
        let info = parse(
            &Method::GET,
            "/services/apiexport/root:acme/widgets/clusters/*/apis/acme.io/v1/widgets",
            false,
        )
        .unwrap();
        assert_eq!(
            info.view,
            Some(ExportViewRef {
                workspace: "root:acme".into(),
                export: "widgets".into()
            })
        );
        assert_eq!(info.cluster, ClusterTarget::Wildcard);
        assert_eq!(info.base, "/services/apiexport/root:acme/widgets/clusters/*");
        let info = parse(&Method::GET, "/services/apiexport/root/e/clusters/abc/api", false).unwrap();
        assert_eq!(info.cluster, ClusterTarget::Path("abc".into()));
        assert_eq!(info.target, Target::NonResource("/api".into()));
        for bad in [
            "/services/apiexport/root/e",
            "/services/apiexport/root/e/api/v1/configmaps",
            "/services/apiexport//e/clusters/*/api",
            "/services/apiexport/root/e/clusters/",
        ] {
            assert!(parse(&Method::GET, bad, false).is_err(), "{bad}");
        }
        assert!(parse(&Method::GET, "/clusters/root/api", false).unwrap().view.is_none());
    }

    #[test]
    fn device_subresources() {
        let base = "/apis/edge.faros.sh/v1alpha1/namespaces/default/agents/dev1";
        let r = resource(Method::GET, &format!("{base}/proxy/8080/a/b"));
        assert_eq!(
            (r.verb, r.name.as_deref(), r.subresource.as_deref()),
            (Verb::Get, Some("dev1"), Some("proxy"))
        );
        let r = resource(Method::POST, &format!("{base}/proxy/8080/"));
        assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Create, Some("proxy")));
        let r = resource(Method::GET, &format!("{base}/tunnel"));
        assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Create, Some("tunnel")));
        let r = resource(Method::GET, &format!("{base}/live"));
        assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Get, Some("live")));
        // Only proxy takes a path.
        assert!(parse(&Method::GET, &format!("{base}/status/x"), false).is_err());
    }

    #[test]
    fn dot_segments_are_refused() {
        assert!(parse(&Method::GET, "/api/v1/namespaces/../configmaps", false).is_err());
        assert!(parse(&Method::GET, "/api/v1//configmaps", false).is_err());
    }
}
