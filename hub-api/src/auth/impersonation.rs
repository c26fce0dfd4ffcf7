//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-<key>`), as kube-apiserver: each requested attribute needs the
//! `impersonate` verb on `users`, `serviceaccounts` (for ServiceAccount user names),
//! `groups`, `uids` or `userextras/<key>` in the workspace of the request. The impersonated
//! identity gets exactly the groups asked for plus `system:authenticated` (and the
//! ServiceAccount groups for a ServiceAccount). Impersonating `system:masters` is refused to
//! anyone not already in it: workspace administrators must not step out of their workspace.

use std::collections::BTreeMap;

use http::HeaderMap;

use super::rbac::{self, Attributes, Authorizer};
use super::{AUTHENTICATED, CLUSTER_EXTRA, MASTERS, UNAUTHENTICATED, User, serviceaccount};
use faros_machinery::status::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

/// Whether the request asks to impersonate anything.
pub fn requested(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("impersonate-"))
}

fn decode_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The identity to serve the request as, after checking the caller may impersonate it.
pub fn apply(authorizer: &Authorizer, caller: User, cluster: &str, headers: &HeaderMap) -> Result<User, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .collect()
    };
    let users = values(USER);
    let groups = values(GROUP);
    let uids = values(UID);
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA)
            && let Ok(v) = value.to_str()
        {
            extra.entry(decode_key(key)).or_default().push(v.to_string());
        }
    }
    let Some(name) = users.first().cloned() else {
        if groups.is_empty() && uids.is_empty() && extra.is_empty() {
            return Ok(caller);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra fields without impersonating a user",
        ));
    };
    if users.len() > 1 || uids.len() > 1 || name.is_empty() {
        return Err(ApiError::bad_request("only one user (and uid) may be impersonated"));
    }
    let denied = |attrs: Attributes, resource: &str, group: &str, name: &str| {
        let detail = rbac::forbidden(&caller, &attrs, "").message;
        let detail = detail
            .split_once(" is forbidden: ")
            .map(|(_, d)| d.to_string())
            .unwrap_or(detail);
        rbac::forbidden_on(group, resource, name, &detail)
    };
    let check = |attrs: Attributes, resource: &str, group: &str, name: &str| -> Result<(), ApiError> {
        if authorizer.allows(&caller, cluster, &attrs) {
            Ok(())
        } else {
            Err(denied(attrs, resource, group, name))
        }
    };
    let sa = serviceaccount::split_username(&name);
    match sa {
        Some((ns, sa_name)) => check(
            Attributes::resource("impersonate", "", "serviceaccounts", ns, sa_name),
            "serviceaccounts",
            "",
            sa_name,
        )?,
        None => check(
            Attributes::resource("impersonate", "", "users", "", &name),
            "users",
            "",
            &name,
        )?,
    }
    for group in &groups {
        if group == MASTERS && !caller.is_master() {
            let attrs = Attributes::resource("impersonate", "", "groups", "", group);
            return Err(denied(attrs, "groups", "", group));
        }
        check(
            Attributes::resource("impersonate", "", "groups", "", group),
            "groups",
            "",
            group,
        )?;
    }
    for uid in &uids {
        check(
            Attributes::resource("impersonate", "authentication.k8s.io", "uids", "", uid),
            "uids",
            "authentication.k8s.io",
            uid,
        )?;
    }
    for (key, vals) in &extra {
        for v in vals {
            if key == CLUSTER_EXTRA && !caller.is_master() {
                let attrs = Attributes::resource("impersonate", "authentication.k8s.io", "userextras", "", v);
                return Err(denied(attrs, "userextras", "authentication.k8s.io", v));
            }
            let mut attrs = Attributes::resource("impersonate", "authentication.k8s.io", "userextras", "", v);
            if let Some(r) = attrs.resource.as_mut() {
                r.subresource = Some(key.clone());
            }
            check(attrs, "userextras", "authentication.k8s.io", v)?;
        }
    }
    let mut user_groups = groups;
    if let Some((ns, _)) = sa {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !user_groups.contains(&g) {
                user_groups.push(g);
            }
        }
        // An impersonated ServiceAccount is one of this workspace's.
        extra.insert(CLUSTER_EXTRA.into(), vec![cluster.to_string()]);
    }
    let everyone = if name == "system:anonymous" {
        UNAUTHENTICATED
    } else {
        AUTHENTICATED
    };
    if !user_groups.iter().any(|g| g == everyone) {
        user_groups.push(everyone.into());
    }
    Ok(User {
        name,
        groups: user_groups,
        uid: uids.into_iter().next().unwrap_or_default(),
        extra,
    })
}
