//! The device side of workloads without a hub: the real reconciler driving real podman
//! containers and real processes, fed placements as the hub's watch would feed them.

mod podman;
mod process;
mod streams;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edge_agent::workloads::podman::{Podman, PodmanConfig};
use edge_agent::workloads::process::{ProcessConfig, Processes};
use edge_agent::workloads::{
    AgentRef, AnyRuntime, Assignment, Layout, Reconciler, ReconcilerOptions, RuntimeSet, StatusBoard, WorkloadSummary,
};
use faros_api::edge::AGENT_LABEL;
use faros_api::workloads::{Placement, PlacementSpec, PlacementStatus, WORKLOAD_LABEL, WorkloadTemplate};
use tokio::sync::{Notify, mpsc, watch};

pub(crate) const AGENT: &str = "dev1";

pub(crate) fn agent_ref() -> AgentRef {
    AgentRef {
        namespace: "default".into(),
        name: AGENT.into(),
    }
}

/// A state directory removed with the test (kept when it fails, for a look).
pub(crate) struct StateDir(pub(crate) PathBuf);

impl StateDir {
    pub(crate) fn new(tag: &str) -> StateDir {
        let id = uuid_like();
        let dir = std::env::temp_dir().join(format!("faros-wl-{tag}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// The placement `name` of workload `web` on agent dev1, as the scheduler would write it.
pub(crate) fn placement(name: &str, generation: i64, template: WorkloadTemplate) -> Placement {
    let mut p = Placement::new(
        name,
        PlacementSpec {
            workload: "web".into(),
            agent: AGENT.into(),
            template_hash: template.hash(),
            template,
        },
    );
    p.metadata.namespace = Some("default".into());
    p.metadata.generation = Some(generation);
    p.metadata.uid = Some(format!("uid-{name}"));
    p.metadata.labels = Some(
        [
            (AGENT_LABEL.to_string(), AGENT.to_string()),
            (WORKLOAD_LABEL.to_string(), "web".to_string()),
        ]
        .into(),
    );
    p
}

/// Which runtimes a test agent has.
pub(crate) enum With<'a> {
    Podman(&'a [(std::ffi::OsString, std::ffi::OsString)]),
    /// Another podman binary (a wrapper standing for a podman without cgroup controllers).
    PodmanAt(&'a Path, &'a [(std::ffi::OsString, std::ffi::OsString)]),
    Processes {
        log_max_bytes: u64,
    },
}

/// One run of the reconciler, as one life of an agent process.
pub(crate) struct Agent {
    pub(crate) board: StatusBoard,
    pub(crate) summary: watch::Receiver<WorkloadSummary>,
    pub(crate) hub: mpsc::Sender<Assignment>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    pub(crate) async fn start(state: &Path, with: With<'_>) -> Agent {
        let wake = Arc::new(Notify::new());
        let layout = Layout::new(state);
        let (podman, env) = match with {
            With::Podman(env) => (Some(PathBuf::from("podman")), env),
            With::PodmanAt(binary, env) => (Some(binary.to_path_buf()), env),
            With::Processes { .. } => (None, &[][..]),
        };
        let runtime = match with {
            With::Podman(_) | With::PodmanAt(..) => AnyRuntime::Podman(Podman::new(PodmanConfig {
                binary: podman.unwrap_or_default(),
                env: env.to_vec(),
                agent: agent_ref(),
                stop_grace: Duration::from_secs(1),
                poll_interval: Duration::from_millis(300),
            })),
            With::Processes { log_max_bytes } => AnyRuntime::Process(Processes::new(
                ProcessConfig {
                    layout: layout.clone(),
                    log_max_bytes,
                    stop_grace: Duration::from_secs(2),
                    poll_interval: Duration::from_millis(200),
                },
                wake.clone(),
            )),
        };
        let runtimes = RuntimeSet::detect(vec![runtime], None, wake).await;
        let board = StatusBoard::new();
        let opts = ReconcilerOptions {
            agent: agent_ref(),
            layout,
            persist: true,
            address: "127.0.0.1".into(),
        };
        let (reconciler, summary) = Reconciler::new(opts, runtimes, board.clone());
        let (hub, assignments) = mpsc::channel(16);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(reconciler.run(assignments, stopped));
        Agent {
            board,
            summary,
            hub,
            stop,
            task,
        }
    }

    pub(crate) async fn send(&self, assignment: Assignment) {
        self.hub.send(assignment).await.unwrap();
    }

    /// Stops the reconciler as a stopped agent process would: what runs keeps running.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }

    pub(crate) fn status(&self, placement: &str) -> Option<PlacementStatus> {
        self.board.get(placement)
    }

    /// Waits until the status of `placement` satisfies `check`; returns it.
    pub(crate) async fn wait_for(
        &self,
        placement: &str,
        what: &str,
        check: impl Fn(&PlacementStatus) -> bool,
    ) -> PlacementStatus {
        let mut last = None;
        let found = until(Duration::from_secs(60), || {
            last = self.status(placement);
            last.as_ref().is_some_and(&check)
        })
        .await;
        assert!(found, "timed out waiting for {what}; last status: {last:#?}");
        last.unwrap()
    }
}

/// Kills a process the test started on the device when dropped, so that it does not outlive
/// a test that fails first (a stopped agent leaves its processes running).
pub(crate) struct KillOnDrop(pub(crate) u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// The pid of a process placement's process.
pub(crate) fn pid_of(status: &PlacementStatus) -> u32 {
    status.containers[0].container_id.parse().expect("a pid")
}

pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Polls `check` every 100 ms until it holds (true) or `timeout` passes (false).
pub(crate) async fn until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

/// The body of `GET /` on 127.0.0.1:`port`, if something answers.
pub(crate) fn http_get(port: i32) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port as u16)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .starts_with("HTTP/1.")
        .then(|| response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()))
        .flatten()
}

/// A port nothing listens on now.
pub(crate) fn free_port() -> i32 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port() as i32
}

pub(crate) fn running(s: &PlacementStatus) -> bool {
    s.phase == faros_api::workloads::PlacementPhase::Running && s.ready
}
