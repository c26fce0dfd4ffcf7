//! Workspace paths (`root:acme:plant-7`) and server URLs (`<base>/clusters/<path>`).

use anyhow::bail;

pub const ROOT: &str = "root";

/// A server URL split at `/clusters/`: the hub's base URL and the workspace path, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub base: String,
    pub path: Option<String>,
}

impl ServerUrl {
    pub fn parse(server: &str) -> ServerUrl {
        let trimmed = server.trim_end_matches('/');
        // Only the URL's path may hold `/clusters/`; the scheme and authority come first.
        let authority_end = trimmed
            .find("://")
            .map(|i| i + 3 + trimmed[i + 3..].find('/').unwrap_or(trimmed.len() - i - 3))
            .unwrap_or(0);
        let (head, tail) = trimmed.split_at(authority_end);
        match tail.find("/clusters/") {
            Some(i) => {
                let rest = &tail[i + "/clusters/".len()..];
                let path = rest.split(['/', '?', '#']).next().unwrap_or_default();
                ServerUrl {
                    base: format!("{head}{}", &tail[..i]),
                    path: (!path.is_empty()).then(|| path.to_string()),
                }
            }
            None => ServerUrl {
                base: trimmed.to_string(),
                path: None,
            },
        }
    }

    /// The URL of the workspace at `path` on the same hub.
    pub fn for_path(&self, path: &str) -> String {
        workspace_url(&self.base, path)
    }
}

pub fn workspace_url(base: &str, path: &str) -> String {
    format!("{}/clusters/{path}", base.trim_end_matches('/'))
}

/// The parent of a path and the last segment (`root:a:b` → `root:a`, `b`).
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    path.rsplit_once(':')
}

/// The last segment of a path.
pub fn base_name(path: &str) -> &str {
    path.rsplit(':').next().unwrap_or(path)
}

/// A DNS-1123 label, as workspace names are.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub fn check_name(name: &str) -> anyhow::Result<()> {
    if !is_valid_name(name) {
        bail!(
            "{name:?} is not a valid workspace name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
        );
    }
    Ok(())
}

/// Resolves what the user typed for `workspace use` against the current path:
/// `root`, `root:a:b` and `:root:a` are absolute, `~` is root, `..` goes up, `.` stays,
/// anything else is relative (`a`, `a:b`, `../sibling`). `/` may separate segments.
pub fn resolve(current: &str, input: &str) -> anyhow::Result<String> {
    let raw = input.trim().replace('/', ":");
    if raw.is_empty() {
        bail!("a workspace name or path is required");
    }
    let joined = if raw == "~" || raw == ROOT {
        ROOT.to_string()
    } else if let Some(rest) = raw.strip_prefix("~:") {
        format!("{ROOT}:{rest}")
    } else if let Some(abs) = raw.strip_prefix(':') {
        abs.to_string()
    } else if raw.starts_with("root:") {
        raw.clone()
    } else {
        format!("{current}:{raw}")
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in joined.split(':') {
        match segment {
            "" | "." => continue,
            ".." => {
                if segments.len() <= 1 {
                    bail!("cannot go up from {}", segments.first().copied().unwrap_or(ROOT));
                }
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        bail!("{input:?} is not a workspace path");
    }
    for segment in &segments {
        if !is_valid_name(segment) {
            bail!("{input:?} is not a valid workspace path: {segment:?} is not a valid workspace name");
        }
    }
    Ok(segments.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            ServerUrl::parse("https://h:6443"),
            ServerUrl {
                base: "https://h:6443".into(),
                path: None
            }
        );
        assert_eq!(
            ServerUrl::parse("https://h:6443/clusters/root:a/"),
            ServerUrl {
                base: "https://h:6443".into(),
                path: Some("root:a".into())
            }
        );
        assert_eq!(
            ServerUrl::parse("https://h/prefix/clusters/root"),
            ServerUrl {
                base: "https://h/prefix".into(),
                path: Some("root".into())
            }
        );
        assert_eq!(
            ServerUrl::parse("https://clusters/x").path,
            None,
            "a host named clusters is not a path"
        );
        assert_eq!(
            ServerUrl::parse("https://h/clusters/root").for_path("root:b"),
            "https://h/clusters/root:b"
        );
    }

    #[test]
    fn resolving() {
        let ok = |current: &str, input: &str| resolve(current, input).unwrap();
        assert_eq!(ok("root:a", "b"), "root:a:b");
        assert_eq!(ok("root:a", "b:c"), "root:a:b:c");
        assert_eq!(ok("root:a", ".."), "root");
        assert_eq!(ok("root:a:b", "../c"), "root:a:c");
        assert_eq!(ok("root:a:b", "..:..:c"), "root:c");
        assert_eq!(ok("root:a", "~"), "root");
        assert_eq!(ok("root:a", "~:x"), "root:x");
        assert_eq!(ok("root:a", "root"), "root");
        assert_eq!(ok("root:a", "root:z"), "root:z");
        assert_eq!(ok("root:a", ":root:z"), "root:z");
        assert_eq!(ok("root:a", "."), "root:a");
        assert_eq!(ok("root:a", "./root"), "root:a:root");
        assert!(resolve("root", "..").unwrap_err().to_string().contains("cannot go up"));
        assert!(resolve("root", "Bad_Name").is_err());
        assert!(resolve("root", "").is_err());
    }

    #[test]
    fn names() {
        assert!(is_valid_name("plant-7"));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("X"));
        assert!(!is_valid_name(&"a".repeat(64)));
    }
}
