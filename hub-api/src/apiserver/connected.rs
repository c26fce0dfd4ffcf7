//! The `Connected` condition of Agents, which only the hub writes: `True`
//! (`TunnelConnected`) while it holds the device's tunnel, `False` (`TunnelDisconnected`)
//! within moments of losing it. It is separate from the Lease-based `Ready`: a device may
//! heartbeat over its API credential while its tunnel cannot get through, and the other way
//! round.
//!
//! The writer is level-triggered: told *which* agents changed, it compares what the
//! registry says now with what the Agent says and writes the difference, so a flapping
//! session never leaves the last event's answer behind. A hub that starts (or crashed)
//! holds no sessions, while Agents may still say `True`; after a grace period that lets
//! devices reconnect, a sweep sets `False` on every Agent saying `True` without a session
//! here, and repeats now and then to catch any write that failed.
//!
//! Writes go through this process's own router as a privileged user, like the bootstrap's,
//! with the read resourceVersion as a precondition so that an agent's concurrent status
//! write is never overwritten; the agent in turn keeps conditions it does not own.

use std::sync::Arc;
use std::time::Duration;

use faros_api::edge::reasons;
use faros_api::{Condition, conditions};
use futures::StreamExt;
use http::{Method, StatusCode};
use serde_json::json;

use super::Hub;
use crate::tunnel::AgentKey;

/// Who the hub's condition writes are recorded as.
const WRITER: (&str, &[&str]) = ("system:faros-tunnels", &["system:masters"]);
/// How many condition writes are in flight at once (a hub restart reconnects every device).
const CONCURRENT_WRITES: usize = 16;
/// How often the sweep runs after the first.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// The same with several replicas.
const RELAYED_SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// How many times a write lost to a concurrent one is tried again.
const MAX_ATTEMPTS: usize = 5;

/// Keeps the `Connected` conditions in line with the hub's sessions until shutdown.
/// `startup_grace` is how long devices get to reconnect before a stale `True` is corrected.
pub(crate) async fn run(hub: Arc<Hub>, startup_grace: Duration) {
    let mut shutdown = hub.shutdown.clone();
    let mut next_sweep = tokio::time::Instant::now() + startup_grace;
    loop {
        let keys = tokio::select! {
            keys = hub.tunnels.changed() => keys,
            _ = tokio::time::sleep_until(next_sweep) => {
                // With replicas, a peer that died takes its sessions with it unannounced:
                // look more often.
                let interval = if hub.relay.is_some() { RELAYED_SWEEP_INTERVAL } else { SWEEP_INTERVAL };
                next_sweep = tokio::time::Instant::now() + interval;
                stale(&hub)
            }
            _ = crate::stopped(&mut shutdown) => return,
        };
        futures::stream::iter(keys)
            .for_each_concurrent(CONCURRENT_WRITES, |key| {
                let hub = hub.clone();
                async move {
                    if let Err(e) = reconcile(&hub, &key).await {
                        tracing::warn!(agent = %key, error = %e, "could not write the Connected condition");
                    }
                }
            })
            .await;
    }
}

/// Agents whose `Connected=True` no session of this hub backs.
fn stale(hub: &Hub) -> Vec<AgentKey> {
    let Some(kind) = hub
        .catalog
        .lookup_wildcard(faros_api::EDGE_GROUP, faros_api::EDGE_VERSION, "agents")
    else {
        return Vec::new();
    };
    // Taken as they are, then read outside the cache's lock: every Agent is decoded.
    let (agents, _, _) = hub.cache.list(kind.storage_prefix().as_str(), None, 0, |_| true);
    agents
        .iter()
        .filter(|o| condition_status(o, reasons::CONNECTED).as_deref() == Some("True"))
        .map(|o| AgentKey {
            cluster: o.cluster().to_string(),
            namespace: o.namespace().to_string(),
            name: o.name().to_string(),
        })
        .filter(|key| !hub.device_connected(key))
        .collect()
}

/// The status of a cached object's condition `type_`, decoding its conditions only (sweeps
/// and metrics read it from every Agent).
pub(crate) fn condition_status(object: &faros_storage::Object, type_: &str) -> Option<String> {
    use std::borrow::Cow;
    // Borrowed where the JSON has no escapes: a sweep of 100,000 Agents allocates nothing
    // for conditions it does not want.
    #[derive(serde::Deserialize)]
    struct Object<'a> {
        #[serde(default, borrow)]
        status: Status<'a>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Status<'a> {
        #[serde(default, borrow)]
        conditions: Vec<ConditionRef<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct ConditionRef<'a> {
        #[serde(rename = "type", borrow)]
        type_: Cow<'a, str>,
        #[serde(borrow)]
        status: Cow<'a, str>,
    }
    let object = object.decode::<Object>().ok()?;
    object
        .status
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.into_owned())
}

/// The Agent's `Connected` status, if it has the condition.
fn connected_of(agent: &serde_json::Value) -> Option<bool> {
    agent["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == reasons::CONNECTED)
        .map(|c| c["status"] == "True")
}

/// The condition that says `connected`.
fn condition(connected: bool) -> Condition {
    if connected {
        Condition::new(
            reasons::CONNECTED,
            true,
            reasons::TUNNEL_CONNECTED,
            "the device's tunnel to the hub is up",
        )
    } else {
        Condition::new(
            reasons::CONNECTED,
            false,
            reasons::TUNNEL_DISCONNECTED,
            "the device's tunnel to the hub is down",
        )
    }
}

/// Writes the agent's `Connected` condition if it differs from the hub's sessions. An
/// agent that never had a tunnel gets no condition until it has one.
async fn reconcile(hub: &Arc<Hub>, key: &AgentKey) -> anyhow::Result<()> {
    let path = format!(
        "/clusters/{}/apis/{}/{}/namespaces/{}/agents/{}/status",
        key.cluster,
        faros_api::EDGE_GROUP,
        faros_api::EDGE_VERSION,
        key.namespace,
        key.name
    );
    if let Some(relay) = &hub.relay {
        relay.record_owner(hub, key).await?;
    }
    for _ in 0..MAX_ATTEMPTS {
        let connected = hub.device_connected(key);
        let Some(kind) = hub
            .catalog
            .lookup(&key.cluster, faros_api::EDGE_GROUP, faros_api::EDGE_VERSION, "agents")
        else {
            return Ok(());
        };
        let Some(agent) = hub.cache.get(&kind.key(&key.cluster, Some(&key.namespace), &key.name)) else {
            return Ok(());
        };
        let agent = agent.value();
        match connected_of(&agent) {
            Some(now) if now == connected => return Ok(()),
            None if !connected => return Ok(()),
            _ => {}
        }
        let mut list: Vec<Condition> =
            serde_json::from_value(agent["status"]["conditions"].clone()).unwrap_or_default();
        let stamp = jiff::Timestamp::now();
        let stamp = jiff::Timestamp::from_second(stamp.as_second())
            .unwrap_or(stamp)
            .to_string();
        conditions::set_condition(&mut list, condition(connected), &stamp);
        let patch = json!({
            "metadata": {"resourceVersion": agent["metadata"]["resourceVersion"]},
            "status": {"conditions": list},
        });
        let (code, body) = super::call(hub, WRITER, Method::PATCH, &path, Some(&patch)).await?;
        match code {
            c if c.is_success() => {
                tracing::debug!(agent = %key, connected, "wrote the Connected condition");
                return Ok(());
            }
            StatusCode::NOT_FOUND => return Ok(()),
            // Someone (the agent) wrote meanwhile: read again and decide afresh.
            StatusCode::CONFLICT => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => anyhow::bail!("{code}: {}", body["message"]),
        }
    }
    anyhow::bail!("lost {MAX_ATTEMPTS} races with other writers")
}
