//! Choosing the protocol from an upgrade request's headers, and the 101 answer for it.

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::status::Refusal;

/// Remote-command protocols this server speaks, best first. Over SPDY v5 differs from v4 only
/// in name; over WebSocket it adds the stdin close signal.
pub(crate) const EXEC_V5: &str = "v5.channel.k8s.io";
pub(crate) const EXEC_V4: &str = "v4.channel.k8s.io";
pub(crate) const PORT_FORWARD: &str = "portforward.k8s.io";
/// Port-forward over WebSocket: SPDY frames carried in binary messages (kubectl ≥ 1.31).
pub(crate) const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// How the client asked to upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `Upgrade: SPDY/3.1`, with the stream protocol chosen from `X-Stream-Protocol-Version`.
    Spdy { protocol: &'static str },
    /// `Upgrade: websocket`, with the subprotocol chosen and the handshake's accept key.
    WebSocket { protocol: &'static str, accept: String },
}

impl Transport {
    /// Picks the transport and protocol for a request, from the `supported` protocols of the
    /// endpoint (best first); `ws_supported` is the same for WebSocket subprotocols.
    pub(crate) fn negotiate<B>(
        req: &Request<B>,
        spdy_supported: &[&'static str],
        ws_supported: &[&'static str],
    ) -> Result<Transport, Refusal> {
        let headers = req.headers();
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "Upgrade request required"));
        }
        if has_token(headers, header::UPGRADE, "websocket") {
            let key = headers
                .get(header::SEC_WEBSOCKET_KEY)
                .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"))?;
            let offered = tokens(headers, header::SEC_WEBSOCKET_PROTOCOL);
            // The client's order wins, as in apimachinery's handshake.
            let protocol = offered
                .iter()
                .find_map(|o| ws_supported.iter().find(|s| s.eq_ignore_ascii_case(o)))
                .ok_or_else(|| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "none of the WebSocket subprotocols {offered:?} is supported; use one of {ws_supported:?}"
                        ),
                    )
                })?;
            return Ok(Transport::WebSocket {
                protocol,
                accept: derive_accept_key(key.as_bytes()),
            });
        }
        if has_token(headers, header::UPGRADE, "spdy/3.1") {
            let offered = tokens(headers, http::HeaderName::from_static(STREAM_PROTOCOL));
            let protocol = offered
                .iter()
                .find_map(|o| spdy_supported.iter().find(|s| **s == o.as_str()));
            return match protocol {
                Some(protocol) => Ok(Transport::Spdy { protocol }),
                None => {
                    // As the reference server does: 403 naming what would have worked.
                    let message =
                        format!("none of the stream protocols {offered:?} is supported; use one of {spdy_supported:?}");
                    Err(Refusal::new(StatusCode::FORBIDDEN, message).with_accepted_protocols(spdy_supported))
                }
            };
        }
        Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "unsupported upgrade: use SPDY/3.1 or websocket",
        ))
    }

    /// The `101 Switching Protocols` answer for this transport; send it, then take the upgraded IO.
    pub(crate) fn response(&self) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        match self {
            Transport::Spdy { protocol } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
                headers.insert(STREAM_PROTOCOL, HeaderValue::from_static(protocol));
            }
            Transport::WebSocket { protocol, accept } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                if let Ok(accept) = HeaderValue::from_str(accept) {
                    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
                }
                headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
            }
        }
        response
    }
}

/// Comma-separated tokens of every `name` header line, trimmed.
fn tokens(headers: &HeaderMap, name: impl header::AsHeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    tokens(headers, name).iter().any(|t| t.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::post("/api/v1/namespaces/default/pods/p1/exec");
        for (name, value) in lines {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn spdy_picks_the_clients_first_supported_protocol() {
        let req = request(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        let transport = Transport::negotiate(&req, &[EXEC_V5, EXEC_V4], &[EXEC_V5]).unwrap();
        assert_eq!(transport, Transport::Spdy { protocol: EXEC_V4 });
        let response = transport.response();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()["x-stream-protocol-version"], EXEC_V4);
    }

    #[test]
    fn no_common_protocol_is_refused_with_what_would_work() {
        let req = request(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "channel.k8s.io"),
        ]);
        let refusal = Transport::negotiate(&req, &[EXEC_V5, EXEC_V4], &[EXEC_V5])
            .unwrap_err()
            .into_response();
        assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
        assert!(refusal.headers().contains_key("x-accepted-stream-protocol-versions"));
    }

    #[test]
    fn websocket_answers_the_handshake() {
        let req = request(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io, v4.channel.k8s.io"),
        ]);
        let transport = Transport::negotiate(&req, &[EXEC_V5], &[EXEC_V5, EXEC_V4]).unwrap();
        let response = transport.response();
        // RFC 6455 section 1.3's example key and answer.
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()["sec-websocket-protocol"], EXEC_V5);
    }

    #[test]
    fn a_plain_request_is_refused() {
        let refusal = Transport::negotiate(&request(&[]), &[EXEC_V4], &[EXEC_V5]).unwrap_err();
        assert_eq!(refusal.code(), StatusCode::BAD_REQUEST);
    }
}
