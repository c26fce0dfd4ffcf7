//! Authentication: who is calling. Client certificates signed by the hub CA are verified
//! during the TLS handshake; the identity they carry (CN = user, O = groups) arrives here as
//! a request extension set by the connection layer.

use axum::extract::Request;

/// An authenticated identity, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
}

impl User {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The verified client-certificate identity of a connection, if it presented one.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<(String, Vec<String>)>);

#[derive(Default)]
pub struct Authenticator {}

impl Authenticator {
    pub fn new() -> Self {
        Authenticator {}
    }

    /// The caller's identity, or None when it presented no valid credential.
    pub fn authenticate(&self, request: &Request) -> Option<User> {
        let PeerIdentity(Some((name, groups))) = request.extensions().get::<PeerIdentity>()? else {
            return None;
        };
        let mut groups = groups.clone();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Some(User {
            name: name.clone(),
            groups,
            uid: String::new(),
        })
    }
}

/// Decides what an authenticated user may do. RBAC evaluation plugs in here; until then
/// only `system:masters` may enter workspaces.
#[derive(Default)]
pub struct Authorizer {}

impl Authorizer {
    pub fn new() -> Self {
        Authorizer {}
    }

    /// Whether `user` may make any request in `cluster`.
    pub fn may_enter(&self, user: &User, _cluster: &str) -> bool {
        user.is_master()
    }
}
