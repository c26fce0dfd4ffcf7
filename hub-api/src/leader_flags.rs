//! The leader-election flags of `hub-api start --all-in-one` and `hub-api controllers`
//! (kube-controller-manager's names and defaults).

use std::time::Duration;

use faros_controllers::LeaderElection;

#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectionOptions {
    /// Run the controllers only while this process holds their Lease, so that of several
    /// replicas exactly one set of controllers works (`--leader-elect=false` runs them
    /// unconditionally).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long a Lease not renewed stays its holder's; a candidate takes over after that.
    #[arg(long, default_value = "15s", value_parser = faros_machinery::duration::parse)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops its controllers.
    #[arg(long, default_value = "10s", value_parser = faros_machinery::duration::parse)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to acquire the Lease and the leader renews it.
    #[arg(long, default_value = "2s", value_parser = faros_machinery::duration::parse)]
    pub leader_elect_retry_period: Duration,
}

impl LeaderElectionOptions {
    /// The election to take part in as `identity`, or None with `--leader-elect=false`.
    pub fn election(&self, identity: String) -> anyhow::Result<Option<LeaderElection>> {
        if !self.leader_elect {
            return Ok(None);
        }
        anyhow::ensure!(
            self.leader_elect_retry_period < self.leader_elect_renew_deadline
                && self.leader_elect_renew_deadline < self.leader_elect_lease_duration,
            "leader election needs --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration"
        );
        Ok(Some(LeaderElection {
            identity,
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        }))
    }
}
