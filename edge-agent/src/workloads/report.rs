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
    inner: Arc<Mutex<Board>>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Board {
    entries: HashMap<String, Entry>,
    next_seq: u64,
}

struct Entry {
    status: PlacementStatus,
    /// Bumped on every change; the reporter remembers the last it wrote.
    seq: u64,
    /// The status the hub has, as last seen in the watch.
    remote: Option<PlacementStatus>,
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
        let board = &mut *board;
        match board.entries.get_mut(placement) {
            Some(entry) if entry.seq > 0 && same(&entry.status, &status) => return false,
            Some(entry) => {
                status.last_update_time = Some(super::now_rfc3339());
                board.next_seq += 1;
                entry.status = status;
                entry.seq = board.next_seq;
            }
            None => {
                status.last_update_time = Some(super::now_rfc3339());
                board.next_seq += 1;
                board.entries.insert(
                    placement.to_string(),
                    Entry {
                        status,
                        seq: board.next_seq,
                        remote: None,
                    },
                );
            }
        }
        self.changed.notify_one();
        true
    }

    /// Records the status the hub holds for `placement` (from the watch), so that an agent
    /// that restarts does not write again what the hub already has.
    pub fn seen_remote(&self, placement: &str, status: Option<&PlacementStatus>) {
        let Ok(mut board) = self.inner.lock() else {
            return;
        };
        match board.entries.get_mut(placement) {
            Some(entry) => entry.remote = status.cloned(),
            // Not computed yet: kept (unpublished, seq 0) for when it is.
            None => {
                if let Some(status) = status {
                    board.entries.insert(
                        placement.to_string(),
                        Entry {
                            status: status.clone(),
                            seq: 0,
                            remote: Some(status.clone()),
                        },
                    );
                }
            }
        }
    }

    /// Forgets `placement` (no longer assigned).
    pub fn remove(&self, placement: &str) {
        if let Ok(mut board) = self.inner.lock() {
            board.entries.remove(placement);
        }
    }

    /// The newest status of `placement`.
    pub fn get(&self, placement: &str) -> Option<PlacementStatus> {
        let board = self.inner.lock().ok()?;
        board
            .entries
            .get(placement)
            .filter(|e| e.seq > 0)
            .map(|e| e.status.clone())
    }

    /// What differs from both the last write and the hub's copy.
    fn pending(&self, written: &HashMap<String, u64>) -> Vec<(String, PlacementStatus, u64)> {
        let Ok(board) = self.inner.lock() else {
            return Vec::new();
        };
        board
            .entries
            .iter()
            .filter(|(name, e)| e.seq > written.get(*name).copied().unwrap_or(0))
            .filter(|(_, e)| e.remote.as_ref().is_none_or(|r| !same(r, &e.status)))
            .map(|(name, e)| (name.clone(), e.status.clone(), e.seq))
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
        let mut written: HashMap<String, u64> = HashMap::new();
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
            for (name, status, seq) in self.board.pending(&written) {
                match self.limiter.admit(&name, now) {
                    Ok(()) => batch.push((name, status, seq)),
                    Err(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
                }
            }
            let api = &self.api;
            let results: Vec<_> = futures::stream::iter(batch)
                .map(|(name, status, seq)| async move {
                    let patch = Patch::Merge(status_patch(&status));
                    let result = api.patch_status(&name, &PatchParams::default(), &patch).await;
                    (name, seq, result)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            let mut failed = false;
            for (name, seq, result) in results {
                match result {
                    Ok(_) => {
                        written.insert(name, seq);
                    }
                    // Gone from the hub: nothing to report on; the watch removes it here.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        written.insert(name, seq);
                    }
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
            written.retain(|name, _| self.board.inner.lock().is_ok_and(|b| b.entries.contains_key(name)));
            if !self.board.pending(&written).is_empty() && wake.is_none() {
                wake = Some(Instant::now() + Duration::from_millis(100));
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
        let mut written = HashMap::new();
        let pending = board.pending(&written);
        assert_eq!(pending.len(), 1);
        written.insert("p".to_string(), pending[0].2);
        assert!(board.pending(&written).is_empty());
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
        let pending = board.pending(&written);
        assert_eq!((pending.len(), pending[0].1.reason.as_str()), (1, "x"));
        // What the hub already has (an agent restarted) is not written again.
        let other = StatusBoard::new();
        other.seen_remote("q", Some(&stamped));
        assert!(other.get("q").is_none());
        other.set("q", running);
        assert!(other.pending(&HashMap::new()).is_empty());
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
