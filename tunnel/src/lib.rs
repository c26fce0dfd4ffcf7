//! The device tunnel's contract between the hub and the edge agent.
//!
//! The agent dials the hub (TLS, ALPN `http/1.1`) and asks for
//! `…/agents/<name>/tunnel` with `Upgrade: faros-tunnel.v1`. After the 101 the roles flip:
//! the hub is the HTTP/2 *client* of that connection and the agent its HTTP/2 *server*, so
//! every hub-initiated exchange with the device is one ordinary HTTP/2 request on one stream,
//! with HTTP/2's per-stream flow control and PING liveness. This crate holds what both ends
//! must agree on and nothing else: the upgrade token, the internal paths the agent serves,
//! the keep-alive timings, and which headers never cross a proxy hop.

mod instance;

pub use instance::{
    INSTANCE_PATH_PREFIX, InstanceRequest, exec_path, frames, log_path, parse_instance_path, portforward_path,
};

use std::time::Duration;

use http::HeaderMap;
use http::header::{self, HeaderName};

/// The `Upgrade` token of the tunnel protocol (version 1: reverse HTTP/2).
pub const UPGRADE_PROTOCOL: &str = "faros-tunnel.v1";

/// The subresource of an Agent that opens its tunnel.
pub const TUNNEL_SUBRESOURCE: &str = "tunnel";
/// The subresource that relays an HTTP request to a device-local port.
pub const PROXY_SUBRESOURCE: &str = "proxy";
/// The subresource answered by the device with its live state.
pub const LIVE_SUBRESOURCE: &str = "live";

/// How often each end PINGs an otherwise silent session…
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// …and how long a PING may go unanswered before the session is declared dead.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Prefix of the internal HTTP proxy path: `/v1/proxy/<port>/<path>`.
pub const PROXY_PATH_PREFIX: &str = "/v1/proxy/";
/// The internal live-state path.
pub const LIVE_PATH: &str = "/v1/live";

/// A header the agent sets on a refusal it generated itself (as opposed to an answer of the
/// device-local server it relays), so the hub can turn it into a Kubernetes `Status`.
pub const REFUSED_HEADER: &str = "faros-tunnel-refused";

/// The internal path of a proxied request to `port`: `path` is the rest of the URL after
/// `…/proxy/<port>`, with or without its leading slash; `query` is kept as given.
pub fn proxy_path(port: u16, path: &str, query: Option<&str>) -> String {
    let path = path.trim_start_matches('/');
    match query {
        Some(q) if !q.is_empty() => format!("{PROXY_PATH_PREFIX}{port}/{path}?{q}"),
        _ => format!("{PROXY_PATH_PREFIX}{port}/{path}"),
    }
}

/// Splits an internal proxy path (without the query) into the port and the device-local
/// path, which always starts with `/`.
pub fn parse_proxy_path(path: &str) -> Option<(u16, String)> {
    let rest = path.strip_prefix(PROXY_PATH_PREFIX)?;
    let (port, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((port, tail.to_string()))
}

/// Whether the HTTP/1.1 headers ask for the tunnel protocol.
pub fn is_tunnel_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, UPGRADE_PROTOCOL)
}

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), plus those
/// named by `Connection`. HTTP/2 refuses most of them outright, so stripping them is also
/// what makes an HTTP/1.1 request fit on a tunnel stream.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn proxy_paths_round_trip() {
        assert_eq!(proxy_path(8080, "", None), "/v1/proxy/8080/");
        assert_eq!(proxy_path(8080, "/a/b", Some("x=1")), "/v1/proxy/8080/a/b?x=1");
        assert_eq!(parse_proxy_path("/v1/proxy/8080/a/b"), Some((8080, "/a/b".into())));
        assert_eq!(parse_proxy_path("/v1/proxy/8080"), Some((8080, "/".into())));
        for bad in [
            "/v1/proxy/0/",
            "/v1/proxy/x/",
            "/v1/proxy/70000/",
            "/v1/live",
            "/v1/proxy//",
        ] {
            assert_eq!(parse_proxy_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn upgrade_is_recognised_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("Faros-Tunnel.v1"));
        assert!(is_tunnel_upgrade(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_tunnel_upgrade(&headers));
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("close, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }
}
