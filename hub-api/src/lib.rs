//! The Faros hub: a Kubernetes-compatible API server split into KCP-style workspaces.
//!
//! A request flows `server` (TLS) → `auth` (who) → `apiserver` (request info, workspace,
//! authorization, the generic store) → `admission` → `faros-storage` (cache over a backend);
//! `registry` says what each kind is. The controllers (`faros-controllers`) are clients of
//! the API like any other; `start` composes it all.

mod admission;
mod apiserver;
mod auth;
mod bootstrap;
pub mod controllers;
mod health;
pub mod init;
pub mod leader_flags;
mod metrics;
pub mod migrate;
pub mod pki;
mod registry;
mod server;
pub mod snapshot;
pub mod start;
mod tenancy;
#[cfg(test)]
mod testing;
mod tunnel;

/// Resolves once a shutdown signal flips to true (or its sender is gone).
pub async fn stopped(signal: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await.is_ok();
}
