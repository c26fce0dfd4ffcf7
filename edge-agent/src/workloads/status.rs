//! A placement's status, from what the reconciler wants and what the runtime sees. Pure, so
//! the phase rules are tested without a runtime.

use faros_api::workloads::{
    ContainerState, ContainerStatus, Endpoint, PlacementPhase, PlacementStatus, RunningState, TerminatedState,
    WaitingState,
};

use super::runtime::{Observed, RunState, UnitSpec};

/// Waiting reasons the reconciler sets.
pub(crate) mod waiting {
    pub(crate) const PULLING: &str = "Pulling";
    pub(crate) const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub(crate) const IMAGE_PULL_BACKOFF: &str = "ImagePullBackOff";
    pub(crate) const CRASH_LOOP_BACKOFF: &str = "CrashLoopBackOff";
    pub(crate) const CREATING: &str = "ContainerCreating";
}

/// One unit as the status sees it.
pub(crate) struct UnitView<'a> {
    pub(crate) spec: &'a UnitSpec,
    pub(crate) observed: Option<&'a Observed>,
    /// Why it is not running, when the reconciler knows better than the runtime.
    pub(crate) waiting: Option<WaitingState>,
    pub(crate) restart_count: i32,
    pub(crate) last_termination: Option<TerminatedState>,
    /// Ended, and the restart policy says it stays so.
    pub(crate) done: bool,
}

impl UnitView<'_> {
    fn running(&self) -> bool {
        self.waiting.is_none() && matches!(self.observed.map(|o| &o.state), Some(RunState::Running { .. }))
    }

    fn terminated(&self) -> Option<TerminatedState> {
        match self.observed.map(|o| &o.state) {
            Some(RunState::Exited {
                exit_code,
                started_at,
                finished_at,
            }) => Some(terminated(*exit_code, started_at.clone(), finished_at.clone())),
            _ => None,
        }
    }
}

/// How a run ended, as a container status says it.
pub(crate) fn terminated(
    exit_code: Option<i32>,
    started_at: Option<String>,
    finished_at: Option<String>,
) -> TerminatedState {
    let (exit_code, reason, message) = match exit_code {
        Some(0) => (0, "Completed", String::new()),
        Some(code) => (code, "Error", String::new()),
        None => (
            -1,
            "Unknown",
            "it ended while the agent was not its parent; its exit status is unknown".to_string(),
        ),
    };
    TerminatedState {
        exit_code,
        reason: reason.into(),
        message,
        started_at,
        finished_at,
    }
}

/// What is common to every status of a placement.
pub(crate) struct Header<'a> {
    pub(crate) generation: Option<i64>,
    /// The template hash the device runs.
    pub(crate) template_hash: &'a str,
    pub(crate) runtime: &'a str,
    /// The device address endpoints are reported on.
    pub(crate) address: &'a str,
}

/// A placement that cannot run at all.
pub(crate) fn unrunnable(header: &Header<'_>, reason: &str, message: &str) -> PlacementStatus {
    PlacementStatus {
        phase: PlacementPhase::Failed,
        ready: false,
        reason: reason.into(),
        message: message.into(),
        observed_generation: header.generation,
        template_hash: header.template_hash.into(),
        runtime: header.runtime.into(),
        ..Default::default()
    }
}

pub(crate) fn placement_status(header: &Header<'_>, units: &[UnitView<'_>]) -> PlacementStatus {
    let containers: Vec<ContainerStatus> = units.iter().map(container_status).collect();
    let all_running = !units.is_empty() && units.iter().all(UnitView::running);
    let all_done = !units.is_empty() && units.iter().all(|u| u.done);
    let first_waiting = units
        .iter()
        .find_map(|u| u.waiting.as_ref().map(|w| (u.spec.unit.as_str(), w)));
    let ever_ran = units.iter().any(|u| u.observed.is_some() || u.restart_count > 0);
    let (phase, reason, message) = if all_running {
        let warnings: Vec<String> = units
            .iter()
            .filter_map(|u| {
                u.observed
                    .and_then(|o| o.warning.as_ref())
                    .map(|w| format!("{}: {w}", u.spec.unit))
            })
            .collect();
        (PlacementPhase::Running, String::new(), warnings.join("; "))
    } else if all_done {
        let failed = units.iter().find_map(|u| {
            u.terminated()
                .filter(|t| t.exit_code != 0)
                .map(|t| format!("{} exited with code {}", u.spec.unit, t.exit_code))
        });
        match failed {
            None => (PlacementPhase::Succeeded, "Completed".to_string(), String::new()),
            Some(message) => (PlacementPhase::Failed, "Error".to_string(), message),
        }
    } else if let Some((unit, w)) = first_waiting {
        let phase = match w.reason.as_str() {
            waiting::PULLING => PlacementPhase::Pulling,
            waiting::ERR_IMAGE_PULL | waiting::IMAGE_PULL_BACKOFF => PlacementPhase::Pending,
            waiting::CREATING => PlacementPhase::Starting,
            _ if ever_ran => PlacementPhase::Running,
            _ => PlacementPhase::Pending,
        };
        let message = if w.message.is_empty() {
            unit.to_string()
        } else {
            format!("{unit}: {}", w.message)
        };
        (phase, w.reason.clone(), message)
    } else {
        (PlacementPhase::Starting, String::new(), String::new())
    };
    let endpoints = units
        .iter()
        .filter(|u| u.running())
        .flat_map(|u| endpoints(u, header.address))
        .collect();
    PlacementStatus {
        phase,
        ready: all_running,
        reason,
        message,
        observed_generation: header.generation,
        template_hash: header.template_hash.into(),
        runtime: header.runtime.into(),
        restart_count: units.iter().map(|u| u.restart_count).sum(),
        containers,
        endpoints,
        last_update_time: None,
    }
}

fn container_status(u: &UnitView<'_>) -> ContainerStatus {
    let observed = u.observed;
    let state = if let Some(w) = &u.waiting {
        ContainerState {
            waiting: Some(w.clone()),
            ..Default::default()
        }
    } else {
        match observed.map(|o| &o.state) {
            Some(RunState::Running { started_at }) => ContainerState {
                running: Some(RunningState {
                    started_at: started_at.clone(),
                }),
                ..Default::default()
            },
            Some(RunState::Exited { .. }) => ContainerState {
                terminated: u.terminated(),
                ..Default::default()
            },
            Some(RunState::Created) | None => ContainerState {
                waiting: Some(WaitingState {
                    reason: waiting::CREATING.into(),
                    message: String::new(),
                }),
                ..Default::default()
            },
        }
    };
    ContainerStatus {
        name: u.spec.unit.clone(),
        state,
        ready: u.running(),
        restart_count: u.restart_count,
        last_termination: u.last_termination.clone(),
        image: u
            .spec
            .image()
            .map(str::to_string)
            .or_else(|| observed.map(|o| o.image.clone()))
            .unwrap_or_default(),
        image_id: observed.map(|o| o.image_id.clone()).unwrap_or_default(),
        container_id: observed.map(|o| o.id.clone()).unwrap_or_default(),
    }
}

fn endpoints(u: &UnitView<'_>, address: &str) -> Vec<Endpoint> {
    let Some(observed) = u.observed else {
        return Vec::new();
    };
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    observed
        .ports
        .iter()
        .map(|b| Endpoint {
            name: u
                .spec
                .ports()
                .iter()
                .find(|p| p.container_port == b.container_port && p.protocol == b.protocol)
                .and_then(|p| p.name.clone()),
            address: address.to_string(),
            port: b.host_port,
            container_port: b.container_port,
            protocol: b.protocol,
            url: format!("{}://{host}:{}", b.protocol.as_str().to_ascii_lowercase(), b.host_port),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::runtime::{PortBinding, UnitKind};
    use faros_api::workloads::{Container, ContainerPort, Protocol};

    fn unit(name: &str) -> UnitSpec {
        UnitSpec {
            placement: "p".into(),
            unit: name.into(),
            hash: "h".into(),
            template_hash: "t".into(),
            kind: UnitKind::Container {
                container: Container {
                    name: name.into(),
                    image: "localhost/demo:1".into(),
                    ports: vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                mounts: vec![],
            },
        }
    }

    fn seen(state: RunState) -> Observed {
        Observed {
            placement: "p".into(),
            unit: "web".into(),
            hash: "h".into(),
            id: "c1".into(),
            state,
            image: "localhost/demo:1".into(),
            image_id: "sha".into(),
            ports: vec![PortBinding {
                container_port: 8080,
                host_port: 40000,
                protocol: Protocol::Tcp,
            }],
            warning: None,
        }
    }

    fn view<'a>(spec: &'a UnitSpec, observed: Option<&'a Observed>) -> UnitView<'a> {
        UnitView {
            spec,
            observed,
            waiting: None,
            restart_count: 0,
            last_termination: None,
            done: false,
        }
    }

    const HEADER: Header<'static> = Header {
        generation: Some(4),
        template_hash: "t",
        runtime: "podman",
        address: "10.0.0.7",
    };

    #[test]
    fn running_reports_endpoints_and_readiness() {
        let spec = unit("web");
        let running = seen(RunState::Running {
            started_at: Some("2030-01-01T00:00:00Z".into()),
        });
        let status = placement_status(&HEADER, &[view(&spec, Some(&running))]);
        assert_eq!((status.phase, status.ready), (PlacementPhase::Running, true));
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.endpoints[0].url, "tcp://10.0.0.7:40000");
        assert_eq!(status.endpoints[0].name.as_deref(), Some("http"));
        assert_eq!(status.containers[0].container_id, "c1");
        let v6 = Header {
            address: "2001:db8::1",
            ..HEADER
        };
        let status = placement_status(&v6, &[view(&spec, Some(&running))]);
        assert_eq!(status.endpoints[0].url, "tcp://[2001:db8::1]:40000");
    }

    #[test]
    fn phases_follow_the_units() {
        let spec = unit("web");
        let mut pulling = view(&spec, None);
        pulling.waiting = Some(WaitingState {
            reason: waiting::PULLING.into(),
            message: "pulling localhost/demo:1".into(),
        });
        let status = placement_status(&HEADER, &[pulling]);
        assert_eq!(
            (status.phase, status.reason.as_str()),
            (PlacementPhase::Pulling, "Pulling")
        );

        let mut failed_pull = view(&spec, None);
        failed_pull.waiting = Some(WaitingState {
            reason: waiting::ERR_IMAGE_PULL.into(),
            message: "no such image".into(),
        });
        let status = placement_status(&HEADER, &[failed_pull]);
        assert_eq!(status.phase, PlacementPhase::Pending);
        assert_eq!(status.message, "web: no such image");

        let exited = seen(RunState::Exited {
            exit_code: Some(137),
            started_at: None,
            finished_at: None,
        });
        let mut crashing = view(&spec, Some(&exited));
        crashing.waiting = Some(WaitingState {
            reason: waiting::CRASH_LOOP_BACKOFF.into(),
            message: "back-off 2s".into(),
        });
        crashing.restart_count = 3;
        let status = placement_status(&HEADER, &[crashing]);
        assert_eq!((status.phase, status.ready), (PlacementPhase::Running, false));
        assert_eq!((status.reason.as_str(), status.restart_count), ("CrashLoopBackOff", 3));
        assert!(status.endpoints.is_empty(), "nothing serves while it restarts");

        let mut done = view(&spec, Some(&exited));
        done.done = true;
        let status = placement_status(&HEADER, &[done]);
        assert_eq!(status.phase, PlacementPhase::Failed);
        assert_eq!(status.message, "web exited with code 137");
        assert_eq!(status.containers[0].state.terminated.as_ref().unwrap().exit_code, 137);

        let ok = seen(RunState::Exited {
            exit_code: Some(0),
            started_at: None,
            finished_at: None,
        });
        let mut done = view(&spec, Some(&ok));
        done.done = true;
        assert_eq!(placement_status(&HEADER, &[done]).phase, PlacementPhase::Succeeded);

        let status = placement_status(&HEADER, &[view(&spec, None)]);
        assert_eq!(status.phase, PlacementPhase::Starting);
        let status = unrunnable(&HEADER, "RuntimeUnavailable", "no podman");
        assert_eq!(
            (status.phase, status.reason.as_str()),
            (PlacementPhase::Failed, "RuntimeUnavailable")
        );
    }
}
