//! Assignments from the hub: a watch of the agent's own placements (the label selector is
//! all its credential may list or watch), turned into [`Assignment`]s. A complete list
//! becomes one `Snapshot`, the only event besides a delete that may remove anything; a
//! failing or reconnecting watch sends nothing, so the device keeps running what it has.

use std::collections::HashMap;

use faros_api::edge::AGENT_LABEL;
use faros_api::workloads::Placement;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::Assignment;

/// Feeds `tx` with the placements of agent `agent` until `tx` closes.
pub async fn watch_placements(api: Api<Placement>, agent: String, tx: mpsc::Sender<Assignment>) {
    let config = watcher::Config::default().labels(&format!("{AGENT_LABEL}={agent}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut listing = Vec::new();
    let mut failures = 0u32;
    while let Some(event) = events.next().await {
        let assignment = match event {
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(p)) => {
                listing.push(p);
                continue;
            }
            Ok(Event::InitDone) => Assignment::Snapshot(std::mem::take(&mut listing)),
            Ok(Event::Apply(p)) => Assignment::Apply(Box::new(p)),
            Ok(Event::Delete(p)) => Assignment::Delete(Box::new(p)),
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(%agent, error = %e, "watching placements failed; keeping what runs and retrying");
                }
                continue;
            }
        };
        failures = 0;
        if tx.send(assignment).await.is_err() {
            return;
        }
    }
}

/// One watch of every placement in the namespace, fanned out to the agents of `senders`
/// by their agent label (the simulator's many agents share one).
pub async fn demultiplex_placements(api: Api<Placement>, senders: HashMap<String, mpsc::Sender<Assignment>>) {
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: HashMap<String, Vec<Placement>> = HashMap::new();
    let agent_of = |p: &Placement| p.metadata.labels.as_ref().and_then(|l| l.get(AGENT_LABEL)).cloned();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(p)) => {
                if let Some(agent) = agent_of(&p) {
                    listing.entry(agent).or_default().push(p);
                }
            }
            Ok(Event::InitDone) => {
                for (agent, tx) in &senders {
                    let _ = tx
                        .send(Assignment::Snapshot(listing.remove(agent).unwrap_or_default()))
                        .await;
                }
            }
            Ok(Event::Apply(p)) => {
                if let Some(tx) = agent_of(&p).and_then(|a| senders.get(&a)) {
                    let _ = tx.send(Assignment::Apply(Box::new(p))).await;
                }
            }
            Ok(Event::Delete(p)) => {
                if let Some(tx) = agent_of(&p).and_then(|a| senders.get(&a)) {
                    let _ = tx.send(Assignment::Delete(Box::new(p))).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "watching placements failed; retrying"),
        }
    }
}
