//! The device tunnel's contract between the hub and the edge agent.
//!
//! The agent keeps one HTTP/2 connection to the hub for everything: its API calls, its
//! watches and its tunnel. On it, the agent holds one **control stream** open
//! (`POST …/agents/<name>/tunnel`); the hub sends a session number down it for each request it
//! has for the device, and the agent answers each number with an **accepted stream** of its
//! own (`POST …/agents/<name>/tunnel?session=<n>`): the hub's response carries the request
//! (its head, then its body) and the agent's request body carries the device's answer (its
//! head, then its body). Every exchange is thus one HTTP/2 stream, with HTTP/2's own flow
//! control, on a connection the device already has. This crate holds what both ends must
//! agree on and nothing else: the stream framing ([`wire`]), the internal paths the agent
//! serves, the keep-alive timings, and which headers never cross a proxy hop.

mod instance;
pub mod wire;

pub use instance::{
    INSTANCE_PATH_PREFIX, InstanceRequest, exec_path, frames, log_path, parse_instance_path, portforward_path,
};

use std::time::Duration;

use http::HeaderMap;
use http::header::{self, HeaderName};

/// The header both tunnel streams carry, with [`PROTOCOL_VERSION`]: a hub and an agent that
/// do not speak the same protocol say so instead of misreading each other.
pub const PROTOCOL_HEADER: &str = "faros-tunnel";
/// This protocol: a control stream and accepted streams on the agent's HTTP/2 connection.
pub const PROTOCOL_VERSION: &str = "v2";
/// The query parameter of an accepted stream: the session number it answers.
pub const SESSION_PARAMETER: &str = "session";

/// The subresource of an Agent that carries its tunnel.
pub const TUNNEL_SUBRESOURCE: &str = "tunnel";
/// The subresource that relays an HTTP request to a device-local port.
pub const PROXY_SUBRESOURCE: &str = "proxy";
/// The subresource answered by the device with its live state.
pub const LIVE_SUBRESOURCE: &str = "live";

/// How often the agent writes to its otherwise silent control stream…
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// …and how long the hub waits for it before it declares the session dead. A process that
/// exits or a hub that restarts closes the connection, which both ends notice at once; this
/// bound is for a network that goes silent.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(50);

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
