//! A Workload's status from its plan and its placements, with no I/O.

use faros_api::conditions::set_condition;
use faros_api::workloads::{FieldProblem, Placement, PlacementPhase, Workload, WorkloadStatus, reasons};
use faros_api::{Condition, conditions};

use super::choose::{Plan, Unfit, placement_ready};

/// Degraded=False: nothing is wrong.
pub(crate) const AS_EXPECTED: &str = "AsExpected";
/// Degraded=True: the spec is invalid (admission refuses such specs; one may predate it).
pub(crate) const INVALID_SPEC: &str = "InvalidSpec";
/// At most this many devices are named in a condition message; the rest are counted.
const MAX_NAMED: usize = 10;

/// The status of `workload` once `plan` is carried out: `kept` are its placements that stay
/// (as last seen, with the device's reports), `plan.create` the ones just made.
pub(crate) fn aggregate(workload: &Workload, plan: &Plan, kept: &[&Placement], now: &str) -> WorkloadStatus {
    let old = workload.status.clone().unwrap_or_default();
    let generation = workload.metadata.generation;
    let hash = workload.spec.template.hash();
    let current = |p: &&&Placement| p.status.as_ref().is_some_and(|s| s.template_hash == hash);
    let updated = kept.iter().filter(current).count();
    let ready = kept.iter().filter(current).filter(|p| placement_ready(p)).count();
    let scheduled = kept.len() + plan.create.len();
    let desired = plan.desired;
    let failed: Vec<String> = kept
        .iter()
        .filter_map(|p| {
            let s = p.status.as_ref().filter(|s| s.phase == PlacementPhase::Failed)?;
            let why = [s.reason.as_str(), s.message.as_str()]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            Some(if why.is_empty() {
                format!("{}: failed", p.spec.agent)
            } else {
                format!("{}: {why}", p.spec.agent)
            })
        })
        .collect();
    let selector = workload.spec.selector.clone().unwrap_or_default();
    let namespace = workload.metadata.namespace.as_deref().unwrap_or_default();

    let no_match = plan.matching == 0;
    let short = scheduled < desired || (desired == 0 && !plan.unfit.is_empty());
    let degraded = if no_match {
        Condition::new(
            reasons::DEGRADED,
            true,
            reasons::NO_MATCHING_AGENTS,
            &format!("no agent in namespace {namespace} matches the selector {selector}"),
        )
    } else if short {
        let what = if desired == 0 {
            "no selected agent can run it".to_string()
        } else {
            format!("{scheduled} of {desired} wanted placements could be made")
        };
        Condition::new(
            reasons::DEGRADED,
            true,
            reasons::UNSCHEDULABLE,
            &format!("{what}: {}", name_devices(&plan.unfit)),
        )
    } else if !failed.is_empty() {
        Condition::new(reasons::DEGRADED, true, reasons::PLACEMENTS_FAILED, &listed(&failed))
    } else {
        Condition::new(reasons::DEGRADED, false, AS_EXPECTED, "")
    };

    let counts = format!("{ready} of {desired} placements ready");
    let available = if desired > 0 && ready >= desired {
        Condition::new(reasons::AVAILABLE, true, reasons::ALL_READY, &counts)
    } else {
        let reason = if no_match {
            reasons::NO_MATCHING_AGENTS
        } else if short {
            reasons::UNSCHEDULABLE
        } else if !failed.is_empty() {
            reasons::PLACEMENTS_FAILED
        } else {
            reasons::ROLLING_OUT
        };
        Condition::new(reasons::AVAILABLE, false, reason, &counts)
    };

    let changing = !plan.create.is_empty() || !plan.remove.is_empty();
    let settling = updated < scheduled || (ready < scheduled && failed.is_empty());
    let progressing = if changing || settling {
        Condition::new(
            reasons::PROGRESSING,
            true,
            reasons::ROLLING_OUT,
            &format!("{updated} of {scheduled} placements run the current template, {ready} ready"),
        )
    } else {
        Condition::new(reasons::PROGRESSING, false, reasons::UP_TO_DATE, "")
    };

    let mut list = old.conditions.clone();
    for mut c in [available, progressing, degraded] {
        c.observed_generation = generation;
        set_condition(&mut list, c, now);
    }
    WorkloadStatus {
        observed_generation: generation,
        desired: count(desired),
        scheduled: count(scheduled),
        ready: count(ready),
        updated: count(updated),
        template_hash: hash,
        conditions: list,
    }
}

/// The status of a Workload whose spec is invalid: Degraded with the problems, counts as
/// they were (its placements are left alone until the spec is fixed).
pub(crate) fn invalid(workload: &Workload, problems: &[FieldProblem], now: &str) -> WorkloadStatus {
    let mut status = workload.status.clone().unwrap_or_default();
    let described: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.path, p.detail)).collect();
    let mut c = Condition::new(reasons::DEGRADED, true, INVALID_SPEC, &listed(&described));
    c.observed_generation = workload.metadata.generation;
    set_condition(&mut status.conditions, c, now);
    if conditions::find(&status.conditions, reasons::AVAILABLE).is_none() {
        let mut c = Condition::new(reasons::AVAILABLE, false, INVALID_SPEC, "the spec is invalid");
        c.observed_generation = workload.metadata.generation;
        set_condition(&mut status.conditions, c, now);
    }
    status.observed_generation = workload.metadata.generation;
    status
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `dev3: insufficient memory (...); dev2: no podman runtime`, at most [`MAX_NAMED`].
fn name_devices(unfit: &[(String, Unfit)]) -> String {
    if unfit.is_empty() {
        return "no other selected agent".into();
    }
    let described: Vec<String> = unfit.iter().map(|(agent, why)| format!("{agent}: {why}")).collect();
    listed(&described)
}

fn listed(items: &[String]) -> String {
    let mut text = items.iter().take(MAX_NAMED).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > MAX_NAMED {
        text.push_str(&format!("; and {} more", items.len() - MAX_NAMED));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scheduler::choose::plan;
    use crate::scheduler::choose::tests::{agent, now, placement, with_requests, workload};
    use faros_api::workloads::{PlacementStrategy, SchedulingPolicy};

    fn condition<'a>(s: &'a WorkloadStatus, type_: &str) -> &'a Condition {
        conditions::find(&s.conditions, type_).unwrap()
    }

    #[test]
    fn available_once_every_wanted_placement_is_ready_and_current() {
        let mut w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        w.metadata.generation = Some(3);
        let agents = [agent("dev1", "north", &["podman"], "1", "1Gi")];
        let made = [placement(&w, "dev1", true)];
        let p = plan(&w, &agents, &made, now(), Duration::from_secs(60));
        let kept: Vec<&Placement> = made.iter().collect();
        let s = aggregate(&w, &p, &kept, "t1");
        assert_eq!((s.desired, s.scheduled, s.ready, s.updated), (1, 1, 1, 1));
        assert_eq!(s.observed_generation, Some(3));
        assert!(condition(&s, "Available").is_true());
        assert_eq!(condition(&s, "Progressing").status, "False");
        assert_eq!(condition(&s, "Degraded").reason, AS_EXPECTED);

        // A new template: not current until the device reports it.
        w.spec.template.containers[0].image = "localhost/demo:2".into();
        w.status = Some(s);
        let s = aggregate(&w, &p, &kept, "t2");
        assert_eq!((s.ready, s.updated), (0, 0));
        let available = condition(&s, "Available");
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("False", "RollingOut")
        );
        assert_eq!(available.last_transition_time.as_deref(), Some("t2"));
        assert!(condition(&s, "Progressing").is_true());
        // Degraded did not change status: its transition time stays.
        assert_eq!(condition(&s, "Degraded").last_transition_time.as_deref(), Some("t1"));
    }

    #[test]
    fn unschedulable_names_the_devices_and_why() {
        let w = with_requests(
            workload(PlacementStrategy::Replicas, Some(1), SchedulingPolicy::ResourceAware),
            "1",
            "8Gi",
        );
        let mut cordoned = agent("dev4", "north", &["podman"], "4", "16Gi");
        cordoned.spec.unschedulable = true;
        let agents = [
            agent("dev2", "north", &["process"], "4", "16Gi"),
            agent("dev3", "north", &["podman"], "4", "1Gi"),
            cordoned,
        ];
        let p = plan(&w, &agents, &[], now(), Duration::from_secs(60));
        let s = aggregate(&w, &p, &[], "t");
        let degraded = condition(&s, "Degraded");
        assert!(degraded.is_true());
        assert_eq!(degraded.reason, "Unschedulable");
        assert_eq!(
            degraded.message,
            "0 of 1 wanted placements could be made: dev2: no podman runtime; \
             dev3: insufficient memory (requests 8Gi, free 1Gi); dev4: cordoned"
        );
        assert_eq!(condition(&s, "Available").reason, "Unschedulable");
    }

    #[test]
    fn no_matching_agents_names_the_selector() {
        let w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        let agents = [agent("dev1", "south", &["podman"], "1", "1Gi")];
        let p = plan(&w, &agents, &[], now(), Duration::from_secs(60));
        let s = aggregate(&w, &p, &[], "t");
        let degraded = condition(&s, "Degraded");
        assert_eq!(degraded.reason, "NoMatchingAgents");
        assert_eq!(
            degraded.message,
            "no agent in namespace default matches the selector site=north"
        );
    }

    #[test]
    fn failed_placements_degrade() {
        let w = workload(PlacementStrategy::All, None, SchedulingPolicy::Spread);
        let agents = [agent("dev1", "north", &["podman"], "1", "1Gi")];
        let mut failed = placement(&w, "dev1", false);
        failed.status = Some(faros_api::workloads::PlacementStatus {
            phase: PlacementPhase::Failed,
            reason: "ImagePullFailed".into(),
            message: "no such image".into(),
            template_hash: w.spec.template.hash(),
            ..Default::default()
        });
        let p = plan(
            &w,
            &agents,
            std::slice::from_ref(&failed),
            now(),
            Duration::from_secs(60),
        );
        let s = aggregate(&w, &p, &[&failed], "t");
        let degraded = condition(&s, "Degraded");
        assert_eq!(degraded.reason, "PlacementsFailed");
        assert_eq!(degraded.message, "dev1: ImagePullFailed: no such image");
        assert_eq!(condition(&s, "Progressing").status, "False");
    }

    #[test]
    fn invalid_specs_degrade_without_touching_counts() {
        let mut w = workload(PlacementStrategy::Replicas, None, SchedulingPolicy::Spread);
        w.status = Some(WorkloadStatus {
            desired: 2,
            ..Default::default()
        });
        let problems = faros_api::workloads::validate_spec(&w.spec);
        let s = invalid(&w, &problems, "t");
        assert_eq!(s.desired, 2);
        let degraded = condition(&s, "Degraded");
        assert_eq!(degraded.reason, INVALID_SPEC);
        assert_eq!(
            degraded.message,
            "spec.placement.replicas: required with strategy Replicas"
        );
    }
}
