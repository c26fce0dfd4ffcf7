//! The requests that reach one workload instance (a Placement, served as a Pod): its log,
//! a command run in it, and one port-forwarded connection. Each is one HTTP/2 stream:
//!
//! - `GET /v1/instances/<placement>/containers/<container>/log?<PodLogOptions query>`: the
//!   log as a streamed body.
//! - `POST /v1/instances/<placement>/containers/<container>/exec?<PodExecOptions query>`:
//!   full duplex; the request body carries [`frames`] on the stdin, resize and close-stdin
//!   channels, the response body frames on stdout, stderr and, last, the exit channel.
//! - `POST /v1/instances/<placement>/portforward/<port>`: a raw byte pipe, the request body
//!   one way and the response body the other.
//!
//! A refusal by the agent is a non-2xx answer with [`crate::REFUSED_HEADER`] and a text body.

/// The prefix of every instance path.
pub const INSTANCE_PATH_PREFIX: &str = "/v1/instances/";

/// What an instance path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceRequest {
    Log { placement: String, container: String },
    Exec { placement: String, container: String },
    PortForward { placement: String, port: u16 },
}

pub fn log_path(placement: &str, container: &str, query: Option<&str>) -> String {
    with_query(
        format!("{INSTANCE_PATH_PREFIX}{placement}/containers/{container}/log"),
        query,
    )
}

pub fn exec_path(placement: &str, container: &str, query: Option<&str>) -> String {
    with_query(
        format!("{INSTANCE_PATH_PREFIX}{placement}/containers/{container}/exec"),
        query,
    )
}

pub fn portforward_path(placement: &str, port: u16) -> String {
    format!("{INSTANCE_PATH_PREFIX}{placement}/portforward/{port}")
}

fn with_query(path: String, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    }
}

/// Parses an instance path (without its query). Names are object names: no `/`, no dots
/// alone, so a path can never reach outside its placement.
pub fn parse_instance_path(path: &str) -> Option<InstanceRequest> {
    let rest = path.strip_prefix(INSTANCE_PATH_PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let name_ok = |s: &str| !s.is_empty() && s != "." && s != ".." && s.len() <= 253;
    match parts.as_slice() {
        [placement, "containers", container, "log"] if name_ok(placement) && name_ok(container) => {
            Some(InstanceRequest::Log {
                placement: placement.to_string(),
                container: container.to_string(),
            })
        }
        [placement, "containers", container, "exec"] if name_ok(placement) && name_ok(container) => {
            Some(InstanceRequest::Exec {
                placement: placement.to_string(),
                container: container.to_string(),
            })
        }
        [placement, "portforward", port] if name_ok(placement) => Some(InstanceRequest::PortForward {
            placement: placement.to_string(),
            port: port.parse().ok().filter(|p| *p != 0)?,
        }),
        _ => None,
    }
}

/// The framing of an exec stream: `[channel: u8][length: u32, big-endian][payload]`.
pub mod frames {
    use bytes::{Buf, BufMut, Bytes, BytesMut};

    /// Hub → agent: bytes for the command's stdin.
    pub const STDIN: u8 = 0;
    /// Agent → hub: the command's stdout.
    pub const STDOUT: u8 = 1;
    /// Agent → hub: the command's stderr.
    pub const STDERR: u8 = 2;
    /// Agent → hub, last: JSON `{"exitCode": n}` or `{"error": "..."}`.
    pub const EXIT: u8 = 3;
    /// Hub → agent: JSON `{"width": w, "height": h}` of the terminal.
    pub const RESIZE: u8 = 4;
    /// Hub → agent: stdin reached its end.
    pub const CLOSE_STDIN: u8 = 255;
    /// The largest payload of one frame.
    pub const MAX_PAYLOAD: usize = 64 * 1024;

    /// One frame, ready to send.
    pub fn encode(channel: u8, payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(5 + payload.len());
        out.put_u8(channel);
        out.put_u32(payload.len() as u32);
        out.put_slice(payload);
        out.freeze()
    }

    /// Frames out of a byte stream that arrives in arbitrary pieces.
    #[derive(Default)]
    pub struct Decoder {
        buf: BytesMut,
    }

    impl Decoder {
        pub fn push(&mut self, bytes: &[u8]) {
            self.buf.extend_from_slice(bytes);
        }

        /// The next whole frame, `None` until one has arrived, or an error for a frame
        /// longer than [`MAX_PAYLOAD`] (the stream is then broken).
        pub fn next_frame(&mut self) -> Result<Option<(u8, Bytes)>, String> {
            if self.buf.len() < 5 {
                return Ok(None);
            }
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if len > MAX_PAYLOAD {
                return Err(format!(
                    "an exec frame of {len} bytes is over the {MAX_PAYLOAD}-byte limit"
                ));
            }
            if self.buf.len() < 5 + len {
                return Ok(None);
            }
            let channel = self.buf[0];
            self.buf.advance(5);
            Ok(Some((channel, self.buf.split_to(len).freeze())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_paths_round_trip() {
        let log = log_path("web-dev1-abc", "web", Some("follow=true"));
        assert_eq!(log, "/v1/instances/web-dev1-abc/containers/web/log?follow=true");
        assert_eq!(
            parse_instance_path(log.split('?').next().unwrap()),
            Some(InstanceRequest::Log {
                placement: "web-dev1-abc".into(),
                container: "web".into()
            })
        );
        assert_eq!(
            parse_instance_path(&exec_path("p", "c", None)),
            Some(InstanceRequest::Exec {
                placement: "p".into(),
                container: "c".into()
            })
        );
        assert_eq!(
            parse_instance_path(&portforward_path("p", 8080)),
            Some(InstanceRequest::PortForward {
                placement: "p".into(),
                port: 8080
            })
        );
        for bad in [
            "/v1/instances/../containers/c/log",
            "/v1/instances/p/containers//log",
            "/v1/instances/p/portforward/0",
            "/v1/instances/p/portforward/x",
            "/v1/instances/p/containers/c/log/more",
            "/v1/live",
        ] {
            assert_eq!(parse_instance_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_arrive_whole_whatever_the_pieces() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&frames::encode(frames::STDOUT, b"hello"));
        stream.extend_from_slice(&frames::encode(frames::EXIT, br#"{"exitCode":3}"#));
        let mut decoder = frames::Decoder::default();
        let mut got = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().unwrap() {
                got.push(frame);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, &got[0].1[..]), (frames::STDOUT, &b"hello"[..]));
        assert_eq!(got[1].0, frames::EXIT);
        let mut decoder = frames::Decoder::default();
        decoder.push(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(decoder.next_frame().is_err());
    }
}
