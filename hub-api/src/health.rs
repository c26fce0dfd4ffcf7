//! `/livez`, `/readyz` and `/healthz`: named checks, answered as kube-apiserver answers them.
//!
//! `/livez` says whether the process works at all (restart it if not), `/readyz` whether it
//! should get traffic: it fails from the moment shutdown begins, while requests in flight
//! still finish. `/healthz` is the older name, the readiness checks without `shutdown`.
//! `?verbose` lists every check (`[+]ping ok`), `?exclude=NAME` skips one, and
//! `/readyz/NAME` runs one alone. A failed check answers 503 with the list; its reason is
//! withheld there and given by `/readyz/NAME`, which only authorised users may read.
//!
//! `hub-api controllers` answers the same way for its own checks ([`Check`], [`answer`]).

use std::fmt::Write as _;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::response::Response;
use http::{HeaderValue, StatusCode};
use tokio::sync::watch;

use crate::apiserver::Hub;
use faros_storage::Backend;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Which of the three endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Livez,
    Readyz,
    Healthz,
}

impl Endpoint {
    /// The endpoint of `/livez`, `/readyz` or `/healthz` (with a trailing slash or not), and
    /// the check named after it, if any.
    pub(crate) fn parse(path: &str) -> Option<(Endpoint, Option<&str>)> {
        let path = path.strip_prefix('/')?;
        let (endpoint, rest) = path.split_once('/').unwrap_or((path, ""));
        let endpoint = match endpoint {
            "livez" => Endpoint::Livez,
            "readyz" => Endpoint::Readyz,
            "healthz" => Endpoint::Healthz,
            _ => return None,
        };
        Some((endpoint, Some(rest.trim_end_matches('/')).filter(|c| !c.is_empty())))
    }

    fn name(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Healthz => "healthz",
        }
    }

    fn checks(self, health: &Health) -> Vec<HubCheck> {
        let mut checks = vec![HubCheck::Ping, HubCheck::Storage];
        if self == Endpoint::Livez {
            return checks;
        }
        checks.extend([HubCheck::CacheSynced, HubCheck::BootstrapDone]);
        if health.controllers.is_some() {
            checks.push(HubCheck::ControllersStarted);
        }
        if self == Endpoint::Readyz {
            checks.push(HubCheck::Shutdown);
        }
        checks
    }
}

/// One named check of a process.
pub(crate) trait Check: Copy {
    /// What the check looks at.
    type Subject: Sync;

    fn name(self) -> &'static str;

    /// Ok, or why the check failed.
    fn run(self, subject: &Self::Subject) -> impl Future<Output = Result<(), String>> + Send;
}

/// The hub's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HubCheck {
    /// Answers at all.
    Ping,
    /// The store answers through whatever serves writes (SQLite's writer thread, etcd).
    Storage,
    /// The watch cache holds every write the store acknowledged.
    CacheSynced,
    /// The objects the hub makes at start-up exist.
    BootstrapDone,
    /// The in-process controllers began (they run, or wait for the lead).
    ControllersStarted,
    /// Shutdown has not begun.
    Shutdown,
}

impl Check for HubCheck {
    type Subject = Hub;

    fn name(self) -> &'static str {
        match self {
            HubCheck::Ping => "ping",
            HubCheck::Storage => "storage",
            HubCheck::CacheSynced => "cache-synced",
            HubCheck::BootstrapDone => "bootstrap-done",
            HubCheck::ControllersStarted => "controllers-started",
            HubCheck::Shutdown => "shutdown",
        }
    }

    async fn run(self, hub: &Hub) -> Result<(), String> {
        let health = &hub.health;
        match self {
            HubCheck::Ping => Ok(()),
            HubCheck::Storage => {
                let Some(backend) = health.backend.upgrade() else {
                    return Err("the store is closed".into());
                };
                match tokio::time::timeout(CHECK_TIMEOUT, backend.check()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                }
            }
            HubCheck::CacheSynced => match tokio::time::timeout(CHECK_TIMEOUT, hub.cache.sync()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "the cache did not reach the store's revision within {CHECK_TIMEOUT:?}"
                )),
            },
            HubCheck::BootstrapDone => {
                if health.bootstrapped() {
                    Ok(())
                } else {
                    Err("the start-up objects are not all made yet".into())
                }
            }
            HubCheck::ControllersStarted => match &health.controllers {
                Some(started) if !started.load(Ordering::Acquire) => Err("the controllers have not started".into()),
                _ => Ok(()),
            },
            HubCheck::Shutdown => {
                if health.shutting_down.load(Ordering::Acquire) {
                    Err("the hub is shutting down".into())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// What the checks read that only the hub's start-up and shutdown know.
pub(crate) struct Health {
    backend: Weak<dyn Backend>,
    bootstrapped: watch::Sender<bool>,
    /// None when the controllers do not run in this process.
    controllers: Option<AtomicBool>,
    shutting_down: AtomicBool,
}

impl Health {
    pub(crate) fn new(backend: Weak<dyn Backend>, in_process_controllers: bool) -> Health {
        Health {
            backend,
            bootstrapped: watch::Sender::new(false),
            controllers: in_process_controllers.then(|| AtomicBool::new(false)),
            shutting_down: AtomicBool::new(false),
        }
    }

    pub(crate) fn bootstrap_done(&self) {
        self.bootstrapped.send_replace(true);
    }

    pub(crate) fn bootstrapped(&self) -> bool {
        *self.bootstrapped.borrow()
    }

    /// Waits until the start-up objects exist, at most `timeout`; whether they do.
    pub(crate) async fn wait_bootstrapped(&self, timeout: Duration) -> bool {
        let mut done = self.bootstrapped.subscribe();
        tokio::time::timeout(timeout, done.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub(crate) fn controllers_started(&self) {
        if let Some(started) = &self.controllers {
            started.store(true, Ordering::Release);
        }
    }

    /// From now on `/readyz` fails.
    pub(crate) fn shutdown_begins(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}

/// Answers the hub's `endpoint` (or its one check `check`) with the query's `verbose` and
/// `exclude`.
pub(crate) async fn serve(
    hub: &Hub,
    endpoint: Endpoint,
    check: Option<&str>,
    query: Option<&str>,
) -> (StatusCode, String) {
    answer(hub, endpoint, &endpoint.checks(&hub.health), check, query).await
}

/// Answers `endpoint`, made of `checks` of `subject` (or its one check `check`), with the
/// query's `verbose` and `exclude`.
pub(crate) async fn answer<C: Check>(
    subject: &C::Subject,
    endpoint: Endpoint,
    checks: &[C],
    check: Option<&str>,
    query: Option<&str>,
) -> (StatusCode, String) {
    if let Some(name) = check {
        let Some(check) = checks.iter().find(|c| c.name() == name) else {
            return (StatusCode::NOT_FOUND, "404 page not found\n".into());
        };
        return match check.run(subject).await {
            Ok(()) => (StatusCode::OK, "ok".into()),
            Err(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("internal server error: {reason}\n"),
            ),
        };
    }
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "verbose" => verbose = true,
            "exclude" => excluded.push(value.into_owned()),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        if let Some(i) = excluded.iter().position(|e| e == check.name()) {
            excluded.swap_remove(i);
            let _ = writeln!(lines, "[+]{} excluded: ok", check.name());
            continue;
        }
        match check.run(subject).await {
            Ok(()) => {
                let _ = writeln!(lines, "[+]{} ok", check.name());
            }
            Err(reason) => {
                failed = true;
                tracing::debug!(check = check.name(), %reason, "{} check failed", endpoint.name());
                let _ = writeln!(lines, "[-]{} failed: reason withheld", check.name());
            }
        }
    }
    if !excluded.is_empty() {
        let unknown: Vec<String> = excluded.iter().map(|e| format!("{e:?}")).collect();
        let _ = writeln!(
            lines,
            "warn: some health checks cannot be excluded: no matches for {}",
            unknown.join(",")
        );
    }
    if failed {
        let _ = writeln!(lines, "{} check failed", endpoint.name());
        (StatusCode::SERVICE_UNAVAILABLE, lines)
    } else if verbose {
        let _ = writeln!(lines, "{} check passed", endpoint.name());
        (StatusCode::OK, lines)
    } else {
        (StatusCode::OK, "ok".into())
    }
}

/// The HTTP response of an answer: plain text, never sniffed as anything else.
pub(crate) fn response((status, text): (StatusCode, String)) -> Response {
    let mut response = crate::apiserver::response::bytes(status, text.into_bytes(), "text/plain; charset=utf-8");
    response
        .headers_mut()
        .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InProcessHub;
    use faros_storage::MemoryBackend;
    use std::sync::Arc;

    #[test]
    fn paths() {
        assert_eq!(Endpoint::parse("/livez"), Some((Endpoint::Livez, None)));
        assert_eq!(Endpoint::parse("/readyz/"), Some((Endpoint::Readyz, None)));
        assert_eq!(
            Endpoint::parse("/readyz/shutdown"),
            Some((Endpoint::Readyz, Some("shutdown")))
        );
        assert_eq!(
            Endpoint::parse("/healthz/ping/"),
            Some((Endpoint::Healthz, Some("ping")))
        );
        assert_eq!(Endpoint::parse("/metrics"), None);
        assert_eq!(Endpoint::parse("/livezz"), None);
    }

    /// Each check answers alone and in the list, in kube-apiserver's words; a hub that has
    /// begun to shut down is alive but not ready.
    #[tokio::test]
    async fn checks_and_shutdown() {
        let hub = InProcessHub::start().await;
        let hub = &hub.hub;
        let (status, text) = serve(hub, Endpoint::Readyz, None, None).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "ok"));
        let (status, text) = serve(hub, Endpoint::Readyz, None, Some("verbose")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            text,
            "[+]ping ok\n[+]storage ok\n[+]cache-synced ok\n[+]bootstrap-done ok\n[+]shutdown ok\nreadyz check passed\n"
        );
        let (_, text) = serve(hub, Endpoint::Livez, None, Some("verbose&exclude=storage&exclude=nope")).await;
        assert_eq!(
            text,
            "[+]ping ok\n[+]storage excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nlivez check passed\n"
        );
        let (_, text) = serve(hub, Endpoint::Healthz, None, Some("verbose=1")).await;
        assert!(!text.contains("shutdown"), "{text}");
        assert_eq!(
            serve(hub, Endpoint::Readyz, Some("ping"), None).await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(
            serve(hub, Endpoint::Livez, Some("shutdown"), None).await.0,
            StatusCode::NOT_FOUND
        );

        hub.health.shutdown_begins();
        let (status, text) = serve(hub, Endpoint::Readyz, None, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            text.ends_with("[-]shutdown failed: reason withheld\nreadyz check failed\n"),
            "{text}"
        );
        assert_eq!(
            serve(hub, Endpoint::Readyz, Some("shutdown"), None).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "internal server error: the hub is shutting down\n".into()
            )
        );
        let (status, _) = serve(hub, Endpoint::Readyz, None, Some("exclude=shutdown")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serve(hub, Endpoint::Livez, None, None).await.0, StatusCode::OK);
        assert_eq!(serve(hub, Endpoint::Healthz, None, None).await.0, StatusCode::OK);
    }

    /// Before the start-up objects exist and the controllers began, the hub is not ready;
    /// a store that is gone fails liveness.
    #[tokio::test]
    async fn start_up_and_storage() {
        // The checks look at a store of their own, which the test closes.
        let checked: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let health = Health::new(Arc::downgrade(&checked), true);
        let hub = InProcessHub::start_with(Arc::new(MemoryBackend::new()), health).await;
        let hub = &hub.hub;
        let (status, text) = serve(hub, Endpoint::Readyz, None, Some("verbose")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("[-]bootstrap-done failed: reason withheld\n"), "{text}");
        assert!(
            text.contains("[-]controllers-started failed: reason withheld\n"),
            "{text}"
        );
        hub.health.bootstrap_done();
        hub.health.controllers_started();
        assert_eq!(serve(hub, Endpoint::Readyz, None, None).await.0, StatusCode::OK);
        drop(checked);
        let (status, text) = serve(hub, Endpoint::Livez, Some("storage"), None).await;
        assert_eq!(
            (status, text.as_str()),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "internal server error: the store is closed\n"
            )
        );
    }
}
