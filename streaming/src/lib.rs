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
//!
//! Wiring into a hyper (or axum) handler; everything about authorisation and the backend is
//! the caller's:
//!
//! ```no_run
//! use faros_streaming::{ExecOptions, ExecOutcome, ExecUpgrade, PortForwardUpgrade, status_response};
//! use http::{Request, Response, StatusCode};
//! use hyper_util::rt::TokioIo;
//!
//! fn exec(mut req: Request<hyper::body::Incoming>) -> Response<String> {
//!     let options = match ExecOptions::from_query(req.uri().query()) {
//!         Ok(options) => options,
//!         Err(message) => return status_response(StatusCode::BAD_REQUEST, &message),
//!     };
//!     let upgrade = match ExecUpgrade::negotiate(&req) {
//!         Ok(upgrade) => upgrade,
//!         Err(refusal) => return refusal.into_response(),
//!     };
//!     let response = upgrade.response().map(|()| String::new());
//!     let on_upgrade = hyper::upgrade::on(&mut req);
//!     tokio::spawn(async move {
//!         let Ok(io) = on_upgrade.await else { return };
//!         let Ok(mut session) = upgrade.accept(TokioIo::new(io), &options).await else { return };
//!         let (stdin, stdout) = (session.take_stdin(), session.take_stdout());
//!         // ... relay stdin/stdout/stderr/resizes to the backend, racing session.disconnected() ...
//!         # drop((stdin, stdout));
//!         let _ = session.finish(ExecOutcome::Exited(0)).await;
//!     });
//!     response
//! }
//!
//! fn port_forward(mut req: Request<hyper::body::Incoming>) -> Response<String> {
//!     let upgrade = match PortForwardUpgrade::negotiate(&req) {
//!         Ok(upgrade) => upgrade,
//!         Err(refusal) => return refusal.into_response(),
//!     };
//!     let response = upgrade.response().map(|()| String::new());
//!     let on_upgrade = hyper::upgrade::on(&mut req);
//!     tokio::spawn(async move {
//!         let Ok(io) = on_upgrade.await else { return };
//!         let connect = |port: u16| async move {
//!             tokio::net::TcpStream::connect(("127.0.0.1", port))
//!                 .await
//!                 .map_err(|e| format!("error forwarding port {port} to pod p1, uid u1: {e}"))
//!         };
//!         upgrade.serve(TokioIo::new(io), connect).await;
//!     });
//!     response
//! }
//! ```

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
