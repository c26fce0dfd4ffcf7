//! The server side of kubectl's streaming protocols, for `pods/exec`, `pods/attach` and
//! `pods/portforward`, independent of any HTTP server or backend.
//!
//! The caller negotiates from the request ([`ExecUpgrade::negotiate`],
//! [`PortForwardUpgrade::negotiate`]), sends either the refusal (a Kubernetes `Status`) or the
//! `101` from `response()`, and hands the upgraded connection back:
//! - exec/attach: [`ExecUpgrade::accept`] gives an [`ExecSession`] with stdin, stdout, stderr
//!   and terminal resizes as plain byte streams, ended by [`ExecSession::finish`];
//! - port-forward: [`PortForwardUpgrade::serve`] asks a callback to connect each forwarded
//!   connection to its port and copies bytes both ways.
//!
//! Transports: WebSocket `v5.channel.k8s.io`/`v4.channel.k8s.io` and SPDY/3.1 (v5, v4) for
//! remote commands; SPDY/3.1 `portforward.k8s.io` raw or tunnelled in WebSocket binary messages
//! (`SPDY/3.1+portforward.k8s.io`) for port-forward. That covers kubectl 1.27 to 1.33 with and
//! without their WebSocket gates.

mod dictionary;
mod exec;
mod negotiate;
mod pipe;
mod portforward;
mod spdy;
mod status;
mod ws;

pub use exec::{AcceptError, ExecOptions, ExecSession, ExecUpgrade, Output, Resizes, Stdin, TerminalSize};
pub use portforward::PortForwardUpgrade;
pub use status::{ExecOutcome, Refusal, status_response};
