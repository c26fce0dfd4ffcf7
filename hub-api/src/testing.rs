//! An in-process hub for handler tests: the real router, catalog, authorizer and bootstrap
//! over the in-memory backend, with no TLS, no port and no process. Requests carry a
//! client-certificate identity, as they would from a TLS connection.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::watch;

use crate::apiserver::Hub;
use crate::auth::{Authenticator, Authorizer};
use crate::health::Health;
use crate::registry::Catalog;
use faros_storage::{Backend, Cache, MemoryBackend};

/// What the in-process hub publishes as its CA bundle (it serves no TLS).
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

pub(crate) struct InProcessHub {
    pub(crate) hub: Arc<Hub>,
    /// Dropped with the hub: its watches and background tasks end.
    _shutdown: watch::Sender<bool>,
}

impl InProcessHub {
    /// A bootstrapped hub (root workspace, default policy, edge export) on an empty store.
    pub(crate) async fn start() -> InProcessHub {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let health = Health::new(Arc::downgrade(&backend), false);
        let hub = Self::start_with(backend, health).await;
        hub.hub.health.bootstrap_done();
        hub
    }

    /// A hub on `backend` whose health checks read `health`, left as bootstrapping leaves it
    /// (the start-up objects are made, but not yet marked done).
    pub(crate) async fn start_with(backend: Arc<dyn Backend>, health: Health) -> InProcessHub {
        let cache = Cache::start(backend, faros_storage::Window::events(10_000))
            .await
            .expect("an in-memory store starts");
        let (shutdown, stopped) = watch::channel(false);
        let hub = Arc::new(Hub {
            cache: cache.clone(),
            catalog: Catalog::new(cache.clone()),
            authenticator: Authenticator::default(),
            authorizer: Authorizer::new(cache),
            shutdown: stopped,
            external_address: "hub.test:6443".into(),
            external_url: "https://hub.test:6443".into(),
            audit: None,
            tunnels: crate::tunnel::Tunnels::new(),
            relay: None,
            health: Arc::new(health),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            paths: Default::default(),
            inflight: crate::apiserver::inflight::InflightLimits::new(0, 0),
        });
        crate::bootstrap::run(&hub, TEST_CA).await.expect("bootstrap");
        InProcessHub {
            hub,
            _shutdown: shutdown,
        }
    }

    /// A request as a `system:masters` user.
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(("admin", &["system:masters"]), method, path, body).await
    }

    /// A request as `user` (name, groups).
    pub(crate) async fn call(
        &self,
        user: (&str, &[&str]),
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        crate::apiserver::call(&self.hub, user, method, path, body.as_ref())
            .await
            .expect("the router answers")
    }
}
