//! Placement statuses on their way to the hub: the reconciler posts each placement's newest
//! status on a [`StatusBoard`]; a [`Reporter`] writes them, coalesced (only the newest status
//! of a placement is ever written), only when they differ from what the hub has, at most
//! one write per placement per second and at most a global rate, so a flapping container
//! costs the hub one write a second at most. While the hub is unreachable the board keeps
//! the newest statuses and the reporter writes them once it answers again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faros_api::workloads::{Placement, PlacementStatus};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::backoff::Backoff;

/// The newest status of every placement, shared by the reconciler(s) and the reporter.
#[derive(Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
    changed: Arc<Notify>,
}

struct Entry {
    /// The newest status; `None` until the reconciler has computed one.
    status: Option<PlacementStatus>,
    /// What the hub has: from the watch, or what was last written successfully. A status
    /// the hub changed meanwhile (`Unknown` while the device was away) differs, and is
    /// written again.
    remote: Option<PlacementStatus>,
}

impl Entry {
    fn pending(&self) -> Option<&PlacementStatus> {
        let status = self.status.as_ref()?;
        self.remote.as_ref().is_none_or(|r| !same(r, status)).then_some(status)
    }
}

/// Equal but for the time stamp.
fn same(a: &PlacementStatus, b: &PlacementStatus) -> bool {
    PlacementStatus {
        last_update_time: None,
        ..a.clone()
    } == PlacementStatus {
        last_update_time: None,
        ..b.clone()
    }
}

impl StatusBoard {
    pub fn new() -> StatusBoard {
        StatusBoard::default()
    }

    /// Posts the status of `placement`; a change is stamped with the time and wakes the
    /// reporter. Returns whether it changed.
    pub fn set(&self, placement: &str, mut status: PlacementStatus) -> bool {
        let Ok(mut board) = self.inner.lock() else {
            return false;
        };
        let entry = board.entry(placement.to_string()).or_insert(Entry {
            status: None,
            remote: None,
        });
        if entry.status.as_ref().is_some_and(|s| same(s, &status)) {
            return false;
        }
        // What the hub has is not news: keep its time stamp.
        status.last_update_time = match &entry.remote {
            Some(remote) if same(remote, &status) => remote.last_update_time.clone(),
            _ => Some(super::now_rfc3339()),
        };
        let pending = entry.remote.as_ref().is_none_or(|r| !same(r, &status));
        entry.status = Some(status);
        if pending {
            self.changed.notify_one();
        }
        true
    }

    /// Records the status the hub holds for `placement` (from the watch), so that what the
    /// hub already has is not written again — after an agent restart too — and what the hub
    /// changed is.
    pub fn seen_remote(&self, placement: &str, status: Option<&PlacementStatus>) {
        let Ok(mut board) = self.inner.lock() else {
            return;
        };
        let entry = board.entry(placement.to_string()).or_insert(Entry {
            status: None,
            remote: None,
        });
        entry.remote = status.cloned();
        if entry.pending().is_some() {
            self.changed.notify_one();
        }
    }

    /// Records a successful write.
    fn written(&self, placement: &str, status: PlacementStatus) {
        if let Ok(mut board) = self.inner.lock()
            && let Some(entry) = board.get_mut(placement)
        {
            entry.remote = Some(status);
        }
    }

    /// Forgets `placement` (no longer assigned).
    pub fn remove(&self, placement: &str) {
        if let Ok(mut board) = self.inner.lock() {
            board.remove(placement);
        }
    }

    /// The newest status of `placement`.
    pub fn get(&self, placement: &str) -> Option<PlacementStatus> {
        self.inner.lock().ok()?.get(placement)?.status.clone()
    }

    /// The device ports the workloads publish now (what the tunnel's proxy may reach by
    /// default).
    pub fn endpoint_ports(&self) -> std::collections::BTreeSet<u16> {
        let Ok(board) = self.inner.lock() else {
            return Default::default();
        };
        board
            .values()
            .filter_map(|e| e.status.as_ref())
            .flat_map(|s| s.endpoints.iter())
            .filter_map(|e| u16::try_from(e.port).ok())
            .filter(|p| *p != 0)
            .collect()
    }

    /// The statuses that differ from the hub's copy.
    fn pending(&self) -> Vec<(String, PlacementStatus)> {
        let Ok(board) = self.inner.lock() else {
            return Vec::new();
        };
        board
            .iter()
            .filter_map(|(name, e)| e.pending().map(|s| (name.clone(), s.clone())))
            .collect()
    }
}

/// At most one write per key per `per_key`, and at most `rate` a second overall with
/// bursts of `burst`.
pub(crate) struct RateLimiter {
    per_key: Duration,
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    last: HashMap<String, Instant>,
}

impl RateLimiter {
    pub(crate) fn new(per_key: Duration, rate: f64, burst: f64, now: Instant) -> RateLimiter {
        RateLimiter {
            per_key,
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            refilled: now,
            last: HashMap::new(),
        }
    }

    /// Takes a write for `key` now, or says when one may be tried.
    pub(crate) fn admit(&mut self, key: &str, now: Instant) -> Result<(), Instant> {
        if let Some(last) = self.last.get(key)
            && now < *last + self.per_key
        {
            return Err(*last + self.per_key);
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Err(now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate));
        }
        self.tokens -= 1.0;
        self.last.insert(key.to_string(), now);
        Ok(())
    }

    pub(crate) fn forget(&mut self, key: &str) {
        self.last.remove(key);
    }
}

/// Every field of `PlacementStatus` as written: a merge patch names the absent ones as
/// null, so a cleared `reason` is cleared on the hub too.
const STATUS_FIELDS: &[&str] = &[
    "phase",
    "ready",
    "reason",
    "message",
    "observedGeneration",
    "templateHash",
    "runtime",
    "restartCount",
    "containers",
    "endpoints",
    "lastUpdateTime",
];

pub(crate) fn status_patch(status: &PlacementStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or_else(|_| Value::Object(Default::default()));
    if let Value::Object(map) = &mut value {
        for field in STATUS_FIELDS {
            map.entry(field.to_string()).or_insert(Value::Null);
        }
    }
    serde_json::json!({ "status": value })
}

/// Writes the board's statuses to the hub.
pub struct Reporter {
    api: Api<Placement>,
    board: StatusBoard,
    limiter: RateLimiter,
    concurrency: usize,
}

impl Reporter {
    /// `rate` writes a second at most overall (bursts of twice that), one per placement
    /// per second, `concurrency` requests in flight.
    pub fn new(api: Api<Placement>, board: StatusBoard, rate: f64, concurrency: usize) -> Reporter {
        Reporter {
            api,
            board,
            limiter: RateLimiter::new(Duration::from_secs(1), rate, rate * 2.0, Instant::now()),
            concurrency: concurrency.max(1),
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut failing = 0u32;
        let mut wake: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.board.changed.notified() => {}
                _ = async { match wake { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            wake = None;
            let now = Instant::now();
            let mut batch = Vec::new();
            for (name, status) in self.board.pending() {
                match self.limiter.admit(&name, now) {
                    Ok(()) => batch.push((name, status)),
                    Err(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
                }
            }
            let api = &self.api;
            let results: Vec<_> = futures::stream::iter(batch)
                .map(|(name, status)| async move {
                    let patch = Patch::Merge(status_patch(&status));
                    let result = api.patch_status(&name, &PatchParams::default(), &patch).await;
                    (name, status, result)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            let mut failed = false;
            for (name, status, result) in results {
                match result {
                    Ok(_) => self.board.written(&name, status),
                    // Gone from the hub: nothing to report on; the watch removes it here.
                    Err(kube::Error::Api(s)) if s.code == 404 => self.board.written(&name, status),
                    Err(e) => {
                        self.limiter.forget(&name);
                        if failing == 0 || failing.is_power_of_two() {
                            tracing::warn!(placement = %name, error = %e, "could not report a placement's status; retrying");
                        }
                        failed = true;
                    }
                }
            }
            if failed {
                failing += 1;
                let at = Instant::now() + failures.next_delay();
                wake = Some(wake.map_or(at, |w| w.max(at)));
            } else if failing > 0 {
                tracing::info!("placement statuses are reported again");
                failing = 0;
                failures.reset();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faros_api::workloads::{ContainerStatus, Endpoint, PlacementPhase, TerminatedState};

    #[test]
    fn limits_per_placement_and_overall() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(Duration::from_secs(1), 2.0, 3.0, t0);
        assert!(l.admit("a", t0).is_ok());
        assert_eq!(
            l.admit("a", t0 + Duration::from_millis(500)),
            Err(t0 + Duration::from_secs(1))
        );
        assert!(l.admit("b", t0).is_ok());
        assert!(l.admit("c", t0).is_ok());
        // The burst of 3 is spent; tokens come back at 2 a second.
        let next = l.admit("d", t0).unwrap_err();
        assert_eq!(next, t0 + Duration::from_millis(500));
        assert!(l.admit("d", next).is_ok());
        assert!(l.admit("a", t0 + Duration::from_secs(1)).is_ok());
        // A flapping placement gets one write a second however often it changes.
        let mut admitted = 0;
        let mut l = RateLimiter::new(Duration::from_secs(1), 100.0, 100.0, t0);
        for i in 0..100 {
            if l.admit("flap", t0 + Duration::from_millis(i * 50)).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 5);
    }

    #[test]
    fn the_board_coalesces_and_skips_what_the_hub_has() {
        let board = StatusBoard::new();
        let running = PlacementStatus {
            phase: PlacementPhase::Running,
            ready: true,
            ..Default::default()
        };
        assert!(board.set("p", running.clone()));
        assert!(!board.set("p", running.clone()), "an equal status is no change");
        let stamped = board.get("p").unwrap();
        assert!(stamped.last_update_time.is_some());
        let pending = board.pending();
        assert_eq!(pending.len(), 1);
        board.written("p", pending[0].1.clone());
        assert!(board.pending().is_empty());
        // Changes in between are coalesced into the newest.
        board.set(
            "p",
            PlacementStatus {
                ready: false,
                ..running.clone()
            },
        );
        board.set(
            "p",
            PlacementStatus {
                reason: "x".into(),
                ..running.clone()
            },
        );
        let pending = board.pending();
        assert_eq!((pending.len(), pending[0].1.reason.as_str()), (1, "x"));
        board.written("p", pending[0].1.clone());
        // The hub marked it Unknown while the device was away: written again.
        let unknown = PlacementStatus {
            phase: PlacementPhase::Unknown,
            ..Default::default()
        };
        board.seen_remote("p", Some(&unknown));
        assert_eq!(board.pending().len(), 1);
        // What the hub already has (an agent restarted) is not written again, and keeps
        // its time.
        let other = StatusBoard::new();
        other.seen_remote("q", Some(&stamped));
        assert!(other.get("q").is_none());
        other.set("q", running);
        assert!(other.pending().is_empty());
        assert_eq!(other.get("q").unwrap().last_update_time, stamped.last_update_time);
        other.remove("q");
        assert!(other.get("q").is_none());
    }

    #[test]
    fn patches_clear_what_is_gone() {
        let full = PlacementStatus {
            phase: PlacementPhase::Running,
            ready: true,
            reason: "r".into(),
            message: "m".into(),
            observed_generation: Some(1),
            template_hash: "t".into(),
            runtime: "podman".into(),
            restart_count: 1,
            containers: vec![ContainerStatus {
                last_termination: Some(TerminatedState::default()),
                ..Default::default()
            }],
            endpoints: vec![Endpoint::default()],
            last_update_time: Some("now".into()),
        };
        let keys: Vec<String> = serde_json::to_value(&full)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut listed: Vec<String> = STATUS_FIELDS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, listed, "every status field is listed");
        let patch = status_patch(&PlacementStatus::default());
        assert_eq!(patch["status"]["reason"], Value::Null);
        assert_eq!(patch["status"]["phase"], "Pending");
    }
}
