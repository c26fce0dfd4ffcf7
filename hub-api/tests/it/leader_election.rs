//! Leader election: two `hub-api controllers` against one hub; one leads (holds the Lease
//! `root` / `kube-system` / `faros-controllers`), the other waits; killing the leader hands
//! the work over within the lease duration, and a clean stop gives the Lease up at once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{HUB, TestHub, eventually, get_json, ready_workspace};

struct Candidate {
    child: Child,
    log: PathBuf,
}

impl Candidate {
    fn start(hub: &TestHub, name: &str) -> Candidate {
        let log = hub.dir.join(format!("controllers-{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_hub-api"))
            .arg("controllers")
            .arg("--kubeconfig")
            .arg(hub.kubeconfig())
            .args(["--leader-elect-lease-duration", "4s"])
            .args(["--leader-elect-renew-deadline", "3s"])
            .args(["--leader-elect-retry-period", "500ms"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start hub-api controllers");
        Candidate { child, log }
    }

    /// The identity this process logged when it started leading, if it did.
    fn leading_as(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let line = log.lines().find(|l| l.contains("leading: the controllers start"))?;
        let identity = line.split("identity=").nth(1)?.split_whitespace().next()?;
        Some(identity.trim_matches('"').to_string())
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lease(hub: &TestHub) -> Option<serde_json::Value> {
    let root = hub.admin_kubeconfig_at(&hub.workspace_url("root"), "root.kubeconfig");
    get_json(&root, &["lease", "-n", "kube-system", "faros-controllers"])
}

fn holder(hub: &TestHub) -> Option<String> {
    lease(hub)?["spec"]["holderIdentity"].as_str().map(str::to_string)
}

#[test]
fn one_set_of_controllers_leads_and_hands_over() {
    let hub = TestHub::start_with(HUB, false);
    let mut candidates = vec![Candidate::start(&hub, "a"), Candidate::start(&hub, "b")];

    // Exactly one leads, and the Lease names it.
    assert!(
        eventually(Duration::from_secs(30), || holder(&hub).is_some()),
        "a candidate took the Lease"
    );
    std::thread::sleep(Duration::from_secs(2));
    let leaders: Vec<usize> = (0..2).filter(|&i| candidates[i].leading_as().is_some()).collect();
    assert_eq!(leaders.len(), 1, "exactly one candidate leads");
    let first = leaders[0];
    let first_identity = candidates[first].leading_as().unwrap();
    assert_eq!(holder(&hub).as_deref(), Some(first_identity.as_str()));
    // The leader's controllers work: a workspace becomes Ready.
    ready_workspace(&hub, "before", "universal");

    // Killed without a goodbye: the other takes over once the Lease has gone unrenewed for
    // its duration, and its controllers do the work from then on.
    candidates[first].child.kill().unwrap();
    candidates[first].child.wait().unwrap();
    let killed = Instant::now();
    let second = 1 - first;
    assert!(
        eventually(Duration::from_secs(30), || candidates[second].leading_as().is_some()),
        "the other candidate took over"
    );
    let handover = killed.elapsed();
    let second_identity = candidates[second].leading_as().unwrap();
    assert_ne!(first_identity, second_identity);
    assert_eq!(holder(&hub).as_deref(), Some(second_identity.as_str()));
    assert!(
        lease(&hub).unwrap()["spec"]["leaseTransitions"].as_i64() >= Some(1),
        "the takeover counts as a transition"
    );
    eprintln!("handover after the leader was killed: {handover:?}");
    ready_workspace(&hub, "after", "universal");

    // A clean stop releases the Lease instead of leaving it to expire.
    candidates[second].terminate();
    assert!(
        eventually(Duration::from_secs(10), || lease(&hub)
            .is_some_and(|l| l["spec"]["holderIdentity"].is_null())),
        "the stopped leader gave the Lease up: {:?}\nits log:\n{}",
        lease(&hub),
        std::fs::read_to_string(&candidates[second].log).unwrap_or_default()
    );
    // And a newcomer takes it at once, without waiting out a lease duration.
    candidates.push(Candidate::start(&hub, "c"));
    assert!(
        eventually(Duration::from_secs(10), || candidates[2].leading_as().is_some()),
        "a new candidate leads right away"
    );
}

#[test]
fn leader_election_can_be_turned_off_and_rejects_inconsistent_timings() {
    let hub = TestHub::start_with(HUB, false);
    let out = Command::new(env!("CARGO_BIN_EXE_hub-api"))
        .arg("controllers")
        .arg("--kubeconfig")
        .arg(hub.kubeconfig())
        .args([
            "--leader-elect-lease-duration",
            "2s",
            "--leader-elect-renew-deadline",
            "5s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--leader-elect-renew-deadline"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without election, the controllers run at once and no Lease is written.
    let _controllers = Candidate {
        log: hub.dir.join("unelected.log"),
        child: Command::new(env!("CARGO_BIN_EXE_hub-api"))
            .arg("controllers")
            .arg("--kubeconfig")
            .arg(hub.kubeconfig())
            .arg("--leader-elect=false")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    ready_workspace(&hub, "unelected", "universal");
    assert!(lease(&hub).is_none(), "no Lease without election");
}
