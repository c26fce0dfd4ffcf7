//! The Faros hub: a Kubernetes-compatible API server split into KCP-style workspaces.
//!
//! A request flows `server` (TLS) → `auth` → `apiserver` (request info, workspace,
//! handlers) → `registry` (what each kind is) → `storage` (cache over a backend).
//! `controllers` are clients of the API like any other.

mod admission;
mod apiserver;
mod auth;
mod bootstrap;
pub mod pki;
mod registry;
mod server;
pub mod start;
mod tenancy;
#[cfg(test)]
mod testing;

/// Resolves once a shutdown signal flips to true (or its sender is gone).
pub async fn stopped(signal: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await.is_ok();
}
