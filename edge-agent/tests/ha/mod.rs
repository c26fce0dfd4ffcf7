//! High availability end to end: three etcd members, three hub replicas on them sharing one
//! identity (`hub-api init` + `--pki-dir`), a real haproxy in front, and real agents that
//! know only haproxy's address. Under a concurrent write load one etcd member is killed
//! (the cluster's leader): every acknowledged write stays, and writes go on. Then the hub
//! replica that leads the controllers is killed: a watch open on another replica goes on,
//! the agents reconnect through haproxy and are never marked Unknown, a surviving replica
//! takes the lead and serves a new Registration. Finally everything is stopped and started
//! again on its data: nothing is lost.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faros_api::edge::Agent;
use faros_testkit::TestDir;
use faros_testkit::etcd::Etcd;
use faros_testkit::haproxy::Haproxy;
use faros_testkit::kubectl::{BASELINE, Watch};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

use super::{
    AGENT, AgentProcess, Hub, KillOnDrop, create, devices_workspace, eventually, kubectl, kubectl_ok, wait_exists,
};

/// Short leader election, so that a handover takes seconds.
const LEADER_ELECTION: [&str; 6] = [
    "--leader-elect-lease-duration",
    "4s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "500ms",
];
/// Real devices, and simulated ones (each with its own tunnel) in one more process.
const DEVICES: [&str; 3] = ["dev1", "dev2", "dev3"];
const SIMULATED: usize = 9;
/// What the issue allows an agent to reconnect in.
const RECONNECT_WITHIN: Duration = Duration::from_secs(10);
/// The hubs' `--agent-monitor-grace-period`: an agent that reconnects within
/// [`RECONNECT_WITHIN`] must stay Ready. (It must also outlast etcd holding a write for
/// about 7 s when its leader dies under it.)
const GRACE: &str = "10s";
const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// A kube-rs client for a kubeconfig.
async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    // A request caught by a replica's death fails instead of waiting out kube's default.
    config.read_timeout = Some(Duration::from_secs(20));
    kube::Client::try_from(config).unwrap()
}

/// Writes through the load balancer, one ConfigMap after another, remembering every name
/// the hub acknowledged and when, and every error.
#[derive(Default)]
struct Load {
    acked: Mutex<Vec<(String, Instant)>>,
    errors: Mutex<Vec<(Instant, String)>>,
    stop: AtomicBool,
}

impl Load {
    async fn run(self: Arc<Self>, api: Api<ConfigMap>, writer: usize) {
        let mut i = 0u64;
        while !self.stop.load(Ordering::Acquire) {
            i += 1;
            // A fresh name per attempt: a write that failed may still have been committed.
            let name = format!("load-{writer}-{i}");
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.clone());
            cm.data = Some([("n".to_string(), i.to_string())].into());
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => self.acked.lock().unwrap().push((name, Instant::now())),
                Err(e) => {
                    self.errors.lock().unwrap().push((Instant::now(), e.to_string()));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn acked_after(&self, t: Instant) -> usize {
        self.acked.lock().unwrap().iter().filter(|(_, at)| *at > t).count()
    }

    fn names(&self) -> BTreeSet<String> {
        self.acked.lock().unwrap().iter().map(|(n, _)| n.clone()).collect()
    }

    fn errors_after(&self, t: Instant) -> Vec<String> {
        self.errors
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > t)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The longest time without an acknowledgement around `t`, and how long after `t` the
    /// first acknowledgement came.
    fn stall_around(&self, t: Instant) -> (Duration, Duration) {
        let acked = self.acked.lock().unwrap();
        let times: Vec<Instant> = acked.iter().map(|(_, at)| *at).collect();
        let first_after = times.iter().find(|at| **at > t).map(|at| *at - t).unwrap_or_default();
        let longest = times
            .windows(2)
            .filter(|w| w[1] > t && w[0] <= t + Duration::from_secs(30))
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        (longest, first_after)
    }
}

/// Every ConfigMap name in the namespace, read through `api`. A connection refused or cut
/// while a replica or haproxy's view of it changes is tried again, as any client would: what
/// is checked is what the store holds, not that one request got through.
async fn stored_names(api: &Api<ConfigMap>) -> BTreeSet<String> {
    let params = ListParams::default();
    let list = retried("list the ConfigMaps", || api.list(&params)).await;
    list.items.into_iter().filter_map(|cm| cm.metadata.name).collect()
}

/// Every name in `acked` (acknowledged before `stored` was read) is in `stored`.
fn assert_all_present(acked: &BTreeSet<String>, stored: &BTreeSet<String>, when: &str) {
    let missing: Vec<&String> = acked.difference(stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing {when}: {missing:?}",
        missing.len(),
        acked.len()
    );
}

/// The Ready condition of every agent: status, reason and lastTransitionTime.
async fn readiness(api: &Api<Agent>) -> kube::Result<HashMap<String, (String, String, String)>> {
    let agents = api.list(&ListParams::default()).await?;
    Ok(agents
        .items
        .into_iter()
        .map(|agent| {
            let name = agent.metadata.name.clone().unwrap_or_default();
            let ready = agent
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .map(|c| {
                    (
                        c.status.clone(),
                        c.reason.clone(),
                        c.last_transition_time.clone().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            (name, ready)
        })
        .collect())
}

fn condition_status(agent: &Agent, type_: &str) -> Option<String> {
    agent
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

/// Samples every agent's Ready condition until stopped; keeps every sample that was not
/// `True`.
async fn watch_readiness(api: Api<Agent>, stop: Arc<AtomicBool>, not_ready: Arc<Mutex<Vec<String>>>) {
    let started = Instant::now();
    while !stop.load(Ordering::Acquire) {
        // Reads through the load balancer fail for a moment when a replica dies.
        if let Ok(agents) = readiness(&api).await {
            for (name, (status, reason, _)) in agents {
                if status != "True" {
                    not_ready
                        .lock()
                        .unwrap()
                        .push(format!("{name} Ready={status} ({reason}) at {:?}", started.elapsed()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The holder of the controllers' Lease, if any.
async fn leader(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("faros-controllers")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Which replica a leader identity (`<host>_<replica name>`) names: the port in its
/// replica Lease's peer address.
async fn replica_port(leases: &Api<Lease>, identity: &str) -> u16 {
    let name = identity.rsplit('_').next().unwrap();
    let lease = leases.get(name).await.expect("the leader's replica Lease");
    let address = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("faros.sh/peer-address"))
        .expect("a peer address on the replica Lease")
        .clone();
    address.rsplit(':').next().unwrap().parse().unwrap()
}

/// Which replica holds each device's tunnel: replica name by agent name.
async fn tunnel_owners(leases: &Api<Lease>) -> HashMap<String, String> {
    let Ok(list) = leases.list(&ListParams::default()).await else {
        return HashMap::new();
    };
    list.items
        .into_iter()
        .filter_map(|lease| {
            let agent = lease
                .metadata
                .annotations
                .as_ref()?
                .get("faros.sh/tunnel-agent")?
                .clone();
            let agent = agent.rsplit('/').next().unwrap_or(&agent).to_string();
            Some((agent, lease.spec?.holder_identity?))
        })
        .collect()
}

async fn live(client: &kube::Client, agent: &str) -> bool {
    let path = format!("/apis/edge.faros.sh/v1alpha1/namespaces/default/agents/{agent}/live");
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    client.request_text(request).await.is_ok()
}

fn agent_lease_renewed(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0.to_string())
}

#[test]
fn replicas_behind_haproxy_ride_through_an_etcd_member_and_a_replica_dying() {
    let began = Instant::now();
    let mut etcd = Etcd::start_cluster(3);
    let files = TestDir::new("ha");
    let dir: &Path = &files;
    let pki = dir.join("pki");
    faros_testkit::init_pki(&pki, &["127.0.0.1"]);
    let storage = etcd.hub_args("/ha", Some(&pki));
    let args: Vec<&str> = storage.iter().map(String::as_str).chain(LEADER_ELECTION).collect();
    let mut replicas: Vec<Hub> = (0..3).map(|_| Hub::start_with_grace(GRACE, &args)).collect();
    let ports: Vec<u16> = replicas.iter().map(|r| r.hub.port).collect();
    let lb = Haproxy::start(&ports);
    let lb_url = format!("https://{}", lb.address());
    for replica in &mut replicas {
        replica.behind(&lb_url);
    }
    eprintln!("etcd, 3 replicas and haproxy up after {:?}", began.elapsed());

    // Everything below goes through haproxy, unless it names a replica on purpose.
    let (tenant, join) = devices_workspace(&replicas[0]);
    let root = replicas[0].workspace_kubeconfig("root");
    let admin = replicas[0].admin();
    let mut agents: Vec<AgentProcess> = DEVICES
        .iter()
        .map(|name| {
            AgentProcess::start_with(
                dir,
                &join,
                name,
                &dir.join(format!("state-{name}")),
                &["--runtimes", "process"],
            )
        })
        .collect();
    let _simulated = KillOnDrop(
        Command::new(AGENT)
            .args(["simulate", "--count", &SIMULATED.to_string(), "--prefix", "sim-"])
            .args([
                "--heartbeat-interval-seconds",
                "1",
                "--tunnels",
                "--runtimes",
                "process",
            ])
            .env("KUBECONFIG", &tenant)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("simulated.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    for name in DEVICES {
        wait_exists(&tenant, name);
        // Heartbeats every second: the grace period alone decides when an agent that cannot
        // reach a replica is marked Unknown.
        kubectl_ok(
            &tenant,
            &[
                "patch",
                "agent",
                name,
                "--type=merge",
                "-p",
                r#"{"spec":{"heartbeatIntervalSeconds":1}}"#,
            ],
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let tenant_client = rt.block_on(client(&tenant));
    let root_client = rt.block_on(client(&root));
    let agents_api: Api<Agent> = Api::namespaced(tenant_client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(tenant_client.clone(), "default");
    let system_leases: Api<Lease> = Api::namespaced(root_client.clone(), "kube-system");
    let agent_leases: Api<Lease> = Api::namespaced(tenant_client.clone(), "default");
    let all = DEVICES.len() + SIMULATED;
    eventually(
        "every agent Ready and Connected through haproxy",
        Duration::from_secs(60),
        || all_ready_and_connected(&rt, &agents_api, all),
    );
    eprintln!("{all} agents Ready after {:?}", began.elapsed());

    // From here on no agent may leave Ready=True.
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let not_ready = Arc::new(Mutex::new(Vec::new()));
    let sampler = rt.spawn(watch_readiness(
        agents_api.clone(),
        stop_sampling.clone(),
        not_ready.clone(),
    ));
    let ready_before = rt.block_on(retried("read the agents' readiness", || readiness(&agents_api)));

    // 3. A write load through haproxy; the etcd leader dies under it.
    let load = Arc::new(Load::default());
    let writers: Vec<_> = (0..2)
        .map(|w| rt.spawn(load.clone().run(configmaps.clone(), w)))
        .collect();
    eventually("writes acknowledged", Duration::from_secs(30), || {
        load.acked_after(began) >= 30
    });
    let member = etcd.leader().expect("an etcd leader");
    etcd.kill(member);
    let member_killed = Instant::now();
    eprintln!("killed etcd member {member} (the leader) after {:?}", began.elapsed());
    eventually(
        "writes acknowledged after the etcd member died",
        Duration::from_secs(30),
        || load.acked_after(member_killed) >= 30,
    );
    let (etcd_stall, etcd_first) = load.stall_around(member_killed);
    let etcd_errors = load.errors_after(member_killed - Duration::from_secs(1));
    eprintln!(
        "etcd member loss: first write acknowledged {etcd_first:?} after the kill, longest pause between \
         acknowledgements {etcd_stall:?}, {} failed writes: {etcd_errors:?}",
        etcd_errors.len()
    );
    // The writers go on: what they had acknowledged before the list began must be in it (a
    // write acknowledged while the list runs may or may not be).
    let acked = load.names();
    let stored = rt.block_on(stored_names(&configmaps));
    assert_all_present(&acked, &stored, "after the etcd member died");

    // 4. The replica leading the controllers dies.
    let identity = rt.block_on(leader(&system_leases)).expect("a controllers leader");
    let leader_port = rt.block_on(replica_port(&system_leases, &identity));
    let victim = ports
        .iter()
        .position(|p| *p == leader_port)
        .expect("the leader is a replica");
    let survivor = (victim + 1) % replicas.len();
    eprintln!("the controllers lead on replica {victim} ({identity})");
    let owners = rt.block_on(tunnel_owners(&system_leases));
    let victim_name = identity.rsplit('_').next().unwrap().to_string();
    let tunnels_on_victim: Vec<String> = owners
        .iter()
        .filter(|(_, owner)| **owner == victim_name)
        .map(|(agent, _)| agent.clone())
        .collect();
    eprintln!(
        "tunnels on replica {victim}: {tunnels_on_victim:?} (of {} tunnels)",
        owners.len()
    );

    // A watch on a surviving replica's own port, and one through haproxy (kube-rs, as the
    // agents and controllers watch).
    let direct = replicas[survivor].hub.admin_kubeconfig_at(
        &replicas[survivor].hub.workspace_url("root:tenant1"),
        "direct-tenant.kubeconfig",
    );
    kubectl_ok(&tenant, &["create", "configmap", "before-replica-kill"]);
    let mut direct_watch = Watch::start(BASELINE, &direct, "configmaps", &[]);
    direct_watch.expect("ADDED", "before-replica-kill", Duration::from_secs(30));
    let seen_through_lb = Arc::new(Mutex::new(BTreeSet::new()));
    let lb_watch = rt.spawn({
        let seen = seen_through_lb.clone();
        let api = configmaps.clone();
        async move {
            let mut events = kube::runtime::watcher(api, Default::default()).boxed();
            while let Some(event) = events.next().await {
                if let Ok(kube::runtime::watcher::Event::Apply(cm) | kube::runtime::watcher::Event::InitApply(cm)) =
                    event
                {
                    seen.lock().unwrap().insert(cm.metadata.name.unwrap_or_default());
                }
            }
        }
    });
    eventually("the kube-rs watch through haproxy", Duration::from_secs(30), || {
        seen_through_lb.lock().unwrap().contains("before-replica-kill")
    });
    let renewed_before: HashMap<String, Option<String>> = DEVICES
        .iter()
        .map(|name| {
            let lease = rt
                .block_on(agent_leases.get(&faros_api::edge::lease_name(name)))
                .unwrap();
            (name.to_string(), agent_lease_renewed(&lease))
        })
        .collect();
    let tunnel_logs: Vec<usize> = agents
        .iter()
        .map(|a| a.log().matches("tunnel connected").count())
        .collect();

    replicas[victim].hub.kill();
    let replica_killed = Instant::now();
    eprintln!("killed replica {victim} after {:?}", began.elapsed());

    // Every real agent heartbeats again and answers through haproxy; the simulated ones
    // answer too.
    let mut reconnected: HashMap<String, Duration> = HashMap::new();
    eventually(
        "every agent reconnected through haproxy",
        RECONNECT_WITHIN + Duration::from_secs(20),
        || {
            for name in DEVICES {
                if reconnected.contains_key(name) {
                    continue;
                }
                let renewed = rt
                    .block_on(agent_leases.get(&faros_api::edge::lease_name(name)))
                    .ok()
                    .and_then(|l| agent_lease_renewed(&l));
                if renewed.is_some() && renewed != renewed_before[name] && rt.block_on(live(&tenant_client, name)) {
                    reconnected.insert(name.to_string(), replica_killed.elapsed());
                }
            }
            for i in 0..SIMULATED {
                let name = format!("sim-{i}");
                if !reconnected.contains_key(&name) && rt.block_on(live(&tenant_client, &name)) {
                    reconnected.insert(name, replica_killed.elapsed());
                }
            }
            reconnected.len() == all
        },
    );
    let slowest = reconnected.values().max().copied().unwrap_or_default();
    let mut on_victim: Vec<(String, Duration)> = reconnected
        .iter()
        .filter(|(name, _)| tunnels_on_victim.contains(name))
        .map(|(n, d)| (n.clone(), *d))
        .collect();
    on_victim.sort();
    eprintln!(
        "agents reconnected through haproxy: slowest after {slowest:?}; those whose tunnel was on the dead \
         replica: {on_victim:?}"
    );
    for (i, agent) in agents.iter_mut().enumerate() {
        assert!(agent.running(), "{}", agent.log());
        let redialled = agent.log().matches("tunnel connected").count() > tunnel_logs[i];
        if tunnels_on_victim.contains(&DEVICES[i].to_string()) {
            assert!(
                redialled,
                "{} did not dial its tunnel again:\n{}",
                DEVICES[i],
                agent.log()
            );
        }
    }
    assert!(
        slowest < RECONNECT_WITHIN,
        "agents took {slowest:?} to reconnect: {reconnected:?}"
    );

    // A surviving replica takes the lead.
    let mut successor = None;
    eventually("another replica leading", Duration::from_secs(30), || {
        successor = rt.block_on(leader(&system_leases)).filter(|h| *h != identity);
        successor.is_some()
    });
    let handover = replica_killed.elapsed();
    let successor = successor.unwrap();
    eprintln!("handover to {successor} within {handover:?} of the kill");
    let successor_port = rt.block_on(replica_port(&system_leases, &successor));
    assert_ne!(successor_port, leader_port);

    // Watches on the surviving replicas go on; writes go on.
    kubectl_ok(&tenant, &["create", "configmap", "after-replica-kill"]);
    direct_watch.expect("ADDED", "after-replica-kill", Duration::from_secs(30));
    assert!(direct_watch.running(), "the watch on replica {survivor} ended");
    eventually(
        "the kube-rs watch through haproxy, re-established",
        Duration::from_secs(30),
        || seen_through_lb.lock().unwrap().contains("after-replica-kill"),
    );
    eventually(
        "writes acknowledged after the replica died",
        Duration::from_secs(30),
        || load.acked_after(replica_killed) >= 30,
    );
    let (replica_stall, replica_first) = load.stall_around(replica_killed);
    let replica_errors = load.errors_after(replica_killed - Duration::from_secs(1));
    eprintln!(
        "replica loss: first write acknowledged {replica_first:?} after the kill, longest pause {replica_stall:?}, \
         {} failed writes: {replica_errors:?}",
        replica_errors.len()
    );

    // The new leader's controllers work: a Registration made now becomes Ready.
    create(
        &tenant,
        "apiVersion: edge.faros.sh/v1alpha1\nkind: Registration\nmetadata:\n  name: late\n  namespace: default\nspec: {}\n",
    );
    kubectl_ok(
        &tenant,
        &["wait", "--for=condition=Ready", "registration/late", "--timeout=60s"],
    );

    // The agents stayed Ready through it all, until past the new leader's grace period too
    // (its controllers give every agent a whole grace period when they start): what is
    // checked here is that nothing happens during that time.
    let window_end = replica_killed + handover + GRACE_PERIOD + Duration::from_secs(2);
    std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
    stop_sampling.store(true, Ordering::Release);
    rt.block_on(sampler).unwrap();
    let not_ready = not_ready.lock().unwrap().clone();
    assert!(not_ready.is_empty(), "agents left Ready=True: {not_ready:?}");
    let ready_after = rt.block_on(retried("read the agents' readiness", || readiness(&agents_api)));
    for (name, (status, reason, since)) in &ready_before {
        assert_eq!(
            ready_after.get(name),
            Some(&(status.clone(), reason.clone(), since.clone())),
            "{name}'s Ready condition changed"
        );
    }
    let params = ListParams::default();
    let list = rt.block_on(retried("list the agents", || agents_api.list(&params)));
    for agent in &list.items {
        assert_eq!(
            condition_status(agent, "Connected").as_deref(),
            Some("True"),
            "{:?}",
            agent.metadata.name
        );
    }

    // 5. Everything stops and starts again on its data.
    load.stop.store(true, Ordering::Release);
    for writer in writers {
        rt.block_on(writer).unwrap();
    }
    lb_watch.abort();
    drop(direct_watch);
    let stored = rt.block_on(stored_names(&configmaps));
    assert_all_present(&load.names(), &stored, "before the restart");
    let acknowledged = load.names().len();
    for replica in &mut replicas {
        replica.hub.stop();
    }
    for i in 0..3 {
        etcd.stop(i);
    }
    let restarting = Instant::now();
    etcd.start_stopped();
    for replica in &mut replicas {
        replica.hub.resume();
    }
    eprintln!("etcd and every replica started again in {:?}", restarting.elapsed());
    let stored = rt.block_on(async {
        // The client's pooled connections went with the replicas.
        let configmaps: Api<ConfigMap> = Api::namespaced(client(&tenant).await, "default");
        stored_names(&configmaps).await
    });
    assert_all_present(&load.names(), &stored, "after restarting everything");
    for name in ["before-replica-kill", "after-replica-kill"] {
        assert!(stored.contains(name), "{name} was lost");
    }
    let phase = kubectl_ok(
        &admin,
        &["get", "workspace", "tenant1", "-o", "jsonpath={.status.phase}"],
    );
    assert_eq!(phase, "Ready");
    for registration in ["devices", "late"] {
        kubectl_ok(
            &tenant,
            &[
                "wait",
                "--for=condition=Ready",
                &format!("registration/{registration}"),
                "--timeout=60s",
            ],
        );
    }
    let agents_api: Api<Agent> = Api::namespaced(rt.block_on(client(&tenant)), "default");
    eventually(
        "every agent Ready and Connected after the restart",
        Duration::from_secs(60),
        || all_ready_and_connected(&rt, &agents_api, all),
    );
    for agent in &mut agents {
        assert!(agent.running(), "{}", agent.log());
        assert!(!agent.log().contains("panicked"), "{}", agent.log());
    }
    let out = kubectl(&tenant, &["get", "agents"]);
    assert!(out.status.success());
    eprintln!(
        "summary: {acknowledged} writes acknowledged, none lost; etcd leader loss: longest write pause \
         {etcd_stall:?}, {} failed writes; replica loss: controllers handed over in {handover:?}, agents \
         reconnected within {slowest:?}, longest write pause {replica_stall:?}, {} failed writes; whole test \
         {:?}",
        etcd_errors.len(),
        replica_errors.len(),
        began.elapsed()
    );
}

/// Whether there are `count` agents and every one says Ready=True and Connected=True.
fn all_ready_and_connected(rt: &tokio::runtime::Runtime, agents: &Api<Agent>, count: usize) -> bool {
    rt.block_on(agents.list(&ListParams::default())).is_ok_and(|list| {
        list.items.len() == count
            && list.items.iter().all(|a| {
                condition_status(a, "Ready").as_deref() == Some("True")
                    && condition_status(a, "Connected").as_deref() == Some("True")
            })
    })
}

/// `call`'s answer, tried again for up to 30 s while it fails (a connection cut while
/// haproxy's view of the replicas changes): the checks are about what the hub holds.
async fn retried<T, E: std::fmt::Display, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{what} failed, trying again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
