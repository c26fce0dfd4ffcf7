//! Leader election: with several hub replicas (or several `hub-api controllers`), one set of
//! controllers works at a time. The leader holds a `coordination.k8s.io/v1` Lease in the root
//! workspace and renews it; a candidate takes the Lease over once it has seen no renewal for
//! a whole lease duration, as kube-controller-manager does.
//!
//! Expiry is judged by the candidate's own clock: it notes when it last saw the Lease change
//! and compares that with the lease duration, never with the holder's `renewTime`, so
//! replicas whose clocks disagree still agree on who leads. Every write is a compare-and-swap
//! on the Lease's resourceVersion, so two candidates can never both believe they won.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use crate::ControllerObserver;

/// Where the controllers' Lease lives: workspace `root`, namespace `kube-system`.
pub const LEASE_WORKSPACE: &str = "root";
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "faros-controllers";

/// How many times a stopping leader tries to give its Lease up.
const RELEASE_ATTEMPTS: usize = 3;
/// The pause between those attempts.
const RELEASE_RETRY: Duration = Duration::from_millis(200);

/// How a candidate competes for the lead (kube-controller-manager's flags and defaults).
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Who this candidate is in the Lease's `holderIdentity`: unique per process.
    pub identity: String,
    /// How long a Lease not renewed stays the holder's.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives the lead up.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// The defaults of kube-controller-manager: 15 s, 10 s, 2 s; the identity is the host
    /// name and a random suffix, so two processes on one host differ.
    pub fn with_defaults(identity: String) -> LeaderElection {
        LeaderElection {
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The host name and a random suffix: unique per process, readable in the Lease.
    pub fn default_identity() -> String {
        // The clock's nanoseconds and the pid are unique enough to tell processes apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        Self::identity_for(&format!("{mixed:016x}"))
    }

    /// The host name and `suffix`, which must be unique per process: a hub replica's own
    /// name, so that the Lease says which replica leads.
    pub fn identity_for(suffix: &str) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "hub".to_string());
        format!("{host}_{suffix}")
    }
}

/// What the candidate last saw of the Lease, and when (by its own clock).
struct Observed {
    resource_version: Option<String>,
    at: Instant,
}

pub(crate) struct Candidate {
    api: Api<Lease>,
    config: LeaderElection,
    observed: Option<Observed>,
    /// Told of every acquisition and renewal.
    observer: Option<Arc<dyn ControllerObserver>>,
}

impl Candidate {
    pub(crate) fn new(
        root: kube::Client,
        config: LeaderElection,
        observer: Option<Arc<dyn ControllerObserver>>,
    ) -> Candidate {
        Candidate {
            api: Api::namespaced(root, LEASE_NAMESPACE),
            config,
            observed: None,
            observer,
        }
    }

    /// Returns once this candidate holds the Lease.
    pub(crate) async fn acquire(&mut self) {
        let namespaces: Api<Namespace> = Api::all(self.api.clone().into_client());
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    // A fresh hub: the namespace may not exist yet.
                    let namespace = Namespace {
                        metadata: ObjectMeta {
                            name: Some(LEASE_NAMESPACE.into()),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    if namespaces.create(&PostParams::default(), &namespace).await.is_ok() {
                        continue;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "leader election: cannot read the lease"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period; returns when the lead is lost: another holder took the
    /// Lease, or no renewal succeeded for the renew deadline.
    pub(crate) async fn hold(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: renewing the lease failed");
                    if last_renewed.elapsed() >= self.config.renew_deadline {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up, if this candidate holds it, so another candidate takes over at
    /// once instead of waiting for it to expire. Best effort: on failure the Lease simply
    /// expires.
    pub(crate) async fn release(&mut self) {
        // A renewal cancelled by the shutdown may still land after this read, and then the
        // write below conflicts with it: read again and retry, a bounded number of times.
        for attempt in 1..=RELEASE_ATTEMPTS {
            let result = match self.api.get_opt(LEASE_NAME).await {
                Ok(Some(mut lease)) => {
                    let spec = lease.spec.get_or_insert_with(Default::default);
                    if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                        return;
                    }
                    spec.holder_identity = None;
                    // One second: candidates that watch the clock take over on their next
                    // attempt.
                    spec.lease_duration_seconds = Some(1);
                    self.api
                        .replace(LEASE_NAME, &PostParams::default(), &lease)
                        .await
                        .map(drop)
                }
                Ok(None) => return,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    tracing::info!(identity = %self.config.identity, "leader election: gave the lease up");
                    return;
                }
                Err(e) if attempt == RELEASE_ATTEMPTS => {
                    tracing::warn!(error = %e, "leader election: could not give the lease up; it will expire");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "leader election: giving the lease up failed; trying again");
                    tokio::time::sleep(RELEASE_RETRY).await;
                }
            }
        }
    }

    /// One attempt: true when this candidate holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        // The Lease counts from no later than this: others time it from when they see it.
        let attempt = Instant::now();
        let now = MicroTime(jiff::Timestamp::now());
        let me = self.config.identity.clone();
        let duration = i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    self.renewed(attempt);
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_me = holder.as_deref() == Some(me.as_str());
        if !held_by_me && holder.is_some() {
            let their_duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            let seen = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            if seen.elapsed() < their_duration {
                return Ok(false);
            }
        }
        if !held_by_me {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(me);
        spec.lease_duration_seconds = Some(duration);
        spec.renew_time = Some(now);
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(written) => {
                self.observe(&written);
                self.renewed(attempt);
                Ok(true)
            }
            // Someone else wrote first: they renewed or took it; look again next time.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn renewed(&self, at: Instant) {
        if let Some(observer) = &self.observer {
            observer.lease_renewed(at);
        }
    }

    /// Notes when the Lease last changed, by this process's clock.
    fn observe(&mut self, lease: &Lease) {
        let version = lease.metadata.resource_version.clone();
        if self.observed.as_ref().is_some_and(|o| o.resource_version == version) {
            return;
        }
        self.observed = Some(Observed {
            resource_version: version,
            at: Instant::now(),
        });
    }
}
