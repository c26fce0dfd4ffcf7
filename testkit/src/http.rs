//! A plain HTTP/1.0 GET on loopback, for the plain-HTTP endpoints of the processes the tests
//! start (etcd's metrics port, Prometheus, `hub-api controllers --metrics-bind-address`).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// The whole response (status line, headers, body) to a GET of `path` on `127.0.0.1:port`,
/// or "" when the connection fails or `timeout` passes without an answer.
pub fn get(port: u16, path: &str, timeout: Duration) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}
