//! When the agent starts an ended unit again: the restart policy, and a backoff that doubles
//! from 1 s to 60 s and starts over once a unit has run for 10 minutes — as the kubelet's
//! crash-loop backoff, without jitter (one device's restarts need no spreading).

use std::time::Duration;

use faros_api::workloads::RestartPolicy;

pub(crate) const INITIAL: Duration = Duration::from_secs(1);
pub(crate) const CAP: Duration = Duration::from_secs(60);
/// A unit that ran this long is healthy again: its next failure restarts after `INITIAL`.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(600);

/// Whether a unit that ended with `exit_code` (None: unknown) is started again. An unknown
/// end counts as a failure: a service that may have crashed is better restarted.
pub(crate) fn should_restart(policy: RestartPolicy, exit_code: Option<i32>) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != Some(0),
        RestartPolicy::Never => false,
    }
}

/// The crash-loop backoff of one unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RestartBackoff {
    attempt: u32,
}

impl RestartBackoff {
    /// How long to wait before the next restart.
    pub(crate) fn delay(&self) -> Duration {
        INITIAL.saturating_mul(1 << self.attempt.min(16)).min(CAP)
    }

    pub(crate) fn restarted(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
    }

    /// Called while the unit runs: after `RESET_AFTER` the backoff starts over.
    pub(crate) fn running_for(&mut self, ran: Duration) {
        if ran >= RESET_AFTER {
            self.attempt = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets_after_a_healthy_run() {
        let mut b = RestartBackoff::default();
        let mut delays = Vec::new();
        for _ in 0..9 {
            delays.push(b.delay().as_secs());
            b.restarted();
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.running_for(Duration::from_secs(599));
        assert_eq!(b.delay(), CAP);
        b.running_for(RESET_AFTER);
        assert_eq!(b.delay(), INITIAL);
        for _ in 0..100 {
            b.restarted();
        }
        assert_eq!(b.delay(), CAP, "no overflow however long it flaps");
    }

    #[test]
    fn policies() {
        use RestartPolicy::*;
        assert!(should_restart(Always, Some(0)));
        assert!(should_restart(OnFailure, Some(1)));
        assert!(!should_restart(OnFailure, Some(0)));
        assert!(should_restart(OnFailure, None));
        assert!(!should_restart(Never, Some(1)));
    }
}
