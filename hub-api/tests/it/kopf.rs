//! The Python operator framework kopf (installed by scripts/test.sh) run against the hub as an
//! operator author runs it: `kopf run --standalone -n default handlers.py`. Its handlers run,
//! it adds and removes its finalizer, patches status, and posts core/v1 Events — the ones
//! its handlers ask for, and, with `settings.posting.loggers` on, its log lines (kopf 1.45
//! posts log lines only when told to, against any API server).

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use crate::common::{HUB, TestHub};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const HANDLERS: &str = r#"
import kopf

@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.loggers = True

@kopf.on.create('example.com', 'v1', 'gadgets')
def created(body, spec, name, logger, **_):
    kopf.info(body, reason='Assembled', message=f'{name} has size {spec["size"]}')
    logger.info(f'assembling {name}')
    return {'size': spec['size']}

@kopf.on.delete('example.com', 'v1', 'gadgets')
def deleted(body, name, **_):
    kopf.warn(body, reason='Dismantled', message=f'{name} is gone')
"#;

fn require_kopf() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import kopf"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "kopf cannot be imported, so this test cannot run; scripts/test.sh installs it \
         (python3 -m pip install 'kopf==1.45.*'): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kopf_handlers_finalizers_status_and_events() {
    require_kopf();
    let hub = TestHub::start(HUB);
    let out = hub.kubectl_stdin("1.32", &["apply", "-f", "-"], CRD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The operator's files sit in the hub's directory, kept with its log when a test fails.
    let dir = hub.kubeconfig().parent().unwrap().join("kopf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("handlers.py"), HANDLERS).unwrap();
    let mut operator = tokio::process::Command::new("python3")
        .args(["-m", "kopf", "run", "--standalone", "-n", "default", "handlers.py"])
        .current_dir(&dir)
        .env("KUBECONFIG", hub.kubeconfig())
        .env("HOME", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("kopf.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("start kopf");

    let client = hub.client().await;
    let resource = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    };
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    // Created whether or not kopf watches yet: it handles what it first lists as new.
    let gadget: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "example.com/v1", "kind": "Gadget",
        "metadata": {"name": "g1"}, "spec": {"size": 3},
    }))
    .unwrap();
    gadgets.create(&Default::default(), &gadget).await.unwrap();

    let log = || std::fs::read_to_string(dir.join("kopf.log")).unwrap_or_default();
    let handled = eventually("kopf to record its handler's result", async || {
        let g = gadgets.get("g1").await.ok()?;
        (g.data["status"]["created"]["size"] == 3).then_some(g)
    })
    .await;
    assert!(
        handled
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f.starts_with("kopf.zalando.org")),
        "{handled:?}"
    );
    let by_reason = |reason: &'static str| {
        let events = events.clone();
        async move || {
            let list = events
                .list(&ListParams::default().fields("involvedObject.name=g1"))
                .await
                .ok()?;
            list.items.into_iter().find(|e| e.reason.as_deref() == Some(reason))
        }
    };
    let assembled = eventually("the handler's event", by_reason("Assembled")).await;
    assert_eq!(assembled.message.as_deref(), Some("g1 has size 3"), "{}", log());
    assert_eq!(assembled.type_.as_deref(), Some("Normal"));
    assert_eq!(assembled.involved_object.kind.as_deref(), Some("Gadget"));
    assert_eq!(assembled.involved_object.uid, handled.metadata.uid);
    assert_eq!(assembled.reporting_component.as_deref(), Some("kopf"));
    eventually("a log line posted as an event", by_reason("Logging")).await;

    // Deleting waits for kopf's finalizer; its delete handler posts one more event.
    gadgets.delete("g1", &Default::default()).await.unwrap();
    eventually("kopf to release the gadget", async || {
        gadgets.get_opt("g1").await.ok()?.is_none().then_some(())
    })
    .await;
    let dismantled = eventually("the delete handler's event", by_reason("Dismantled")).await;
    assert_eq!(dismantled.type_.as_deref(), Some("Warning"));
    let posted: Value = serde_json::to_value(&dismantled).unwrap();
    assert!(posted["eventTime"].is_string(), "{posted}");

    operator.kill().await.ok();
}
