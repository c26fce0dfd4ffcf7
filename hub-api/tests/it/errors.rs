//! Error paths over raw HTTP (hand-built requests sent through `kube::Client::send`): every
//! failure is a `Status` with the code and reason kube-apiserver uses, nothing a client
//! sends makes the hub answer 5xx, and the hub stays healthy afterwards.

use std::time::Duration;

use crate::common::{HUB, TestHub, install_widget_crd};
use http_body_util::BodyExt;
use serde_json::{Value, json};

struct Reply {
    version: http::Version,
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts a failure `Status` with this code and reason; returns it.
    fn failure(&self, code: u16, reason: &str) -> Value {
        assert_eq!(self.status, code, "HTTP status; body: {}", self.text());
        let status = self.json();
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["apiVersion"], "v1", "{status}");
        assert_eq!(status["status"], "Failure", "{status}");
        assert_eq!(status["code"], code, "{status}");
        assert_eq!(status["reason"], reason, "{status}");
        assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()), "{status}");
        status
    }

    fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all(http::header::WARNING)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Sends raw requests and remembers every status code it saw.
struct Probe {
    client: kube::Client,
    seen: Vec<(String, u16)>,
}

impl Probe {
    fn new(client: kube::Client) -> Probe {
        Probe {
            client,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Reply {
        self.try_send(method, path, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like `send`, but a transport failure is returned instead of panicking.
    async fn try_send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> Result<Reply, String> {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            request = request.header(http::header::CONTENT_TYPE, ct);
        }
        let request = request.body(kube::client::Body::from(body.into())).unwrap();
        let what = format!("{method} {path}");
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.send(request))
            .await
            .map_err(|_| format!("{what}: no answer within 30 s"))?
            .map_err(|e| format!("{what}: {e} ({e:?})"))?;
        let version = response.version();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
            .await
            .map_err(|_| format!("{what}: the body did not end within 30 s"))?
            .map_err(|e| format!("{what}: reading the body: {e}"))?
            .to_bytes()
            .to_vec();
        self.seen.push((what, status));
        Ok(Reply {
            version,
            status,
            headers,
            body,
        })
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, None, Vec::new()).await
    }

    async fn post_json(&mut self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some("application/json"), body.to_string())
            .await
    }

    /// The first line of a watch (or the whole error body when the watch is refused).
    async fn watch_first_line(&mut self, path: &str) -> Reply {
        let request = http::Request::get(path).body(kube::client::Body::empty()).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.send(request))
            .await
            .unwrap_or_else(|_| panic!("GET {path}: no answer within 30 s"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let version = response.version();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !bytes.contains(&b'\n') {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                }
                Ok(Some(Err(e))) => panic!("GET {path}: reading the watch: {e}"),
                Ok(None) | Err(_) => break,
            }
        }
        self.seen.push((format!("WATCH {path}"), status));
        Reply {
            version,
            status,
            headers,
            body: bytes,
        }
    }

    /// No request produced a server error, and the hub still answers normally.
    async fn assert_healthy(&mut self) {
        let readyz = self.get("/readyz").await;
        assert_eq!((readyz.status, readyz.text().as_str()), (200, "ok"));
        let created = self
            .post_json(
                "/api/v1/namespaces/default/configmaps",
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "alive-"}}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text());
        let server_errors: Vec<&(String, u16)> = self.seen.iter().filter(|(_, code)| *code >= 500).collect();
        assert!(server_errors.is_empty(), "server errors: {server_errors:?}");
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const WIDGETS: &str = "/apis/example.faros.sh/v1/namespaces/default/widgets";

fn widget(name: &str) -> Value {
    json!({
        "apiVersion": "example.faros.sh/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 2},
    })
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn oversized_body_is_413_and_the_client_can_go_on() {
    let hub = TestHub::start(HUB);
    let mut probe = Probe::new(hub.client().await);
    let big = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"blob": "x".repeat(3 * 1024 * 1024 + 512 * 1024)},
    });
    let reply = probe.post_json(CMS, &big).await;
    let connection = reply
        .headers
        .get(http::header::CONNECTION)
        .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase());
    let version = reply.version;
    reply.failure(413, "RequestEntityTooLarge");
    // The hub stops reading at the limit, so over HTTP/1.1 the connection cannot be reused
    // and the response must say so (`Connection: close`, as Go's net/http does for
    // kube-apiserver). Without it, whether the client's next request on that connection
    // works depends on a race with the hub closing it.
    if version < http::Version::HTTP_2 {
        assert_eq!(
            connection.as_deref(),
            Some("close"),
            "a 413 that leaves the body unread must carry `Connection: close` over {version:?}"
        );
    }
    // The same client goes on with its next request.
    match probe.try_send("GET", &format!("{CMS}/big"), None, Vec::new()).await {
        Ok(reply) => {
            reply.failure(404, "NotFound");
        }
        Err(e) => panic!("after the 413 the client's next request failed: {e}"),
    }
    // A large body under the limit is read in full and stored.
    let mut fresh = Probe::new(hub.client().await);
    let under = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "under"},
        "data": {"blob": "x".repeat(512 * 1024)},
    });
    assert_eq!(fresh.post_json(CMS, &under).await.status, 201);
    fresh.get(&format!("{CMS}/big")).await.failure(404, "NotFound");
    fresh.assert_healthy().await;
}

#[tokio::test]
async fn malformed_bodies() {
    let hub = TestHub::start(HUB);
    let mut probe = Probe::new(hub.client().await);

    // Malformed JSON, a non-object, invalid UTF-8, an empty body: 400.
    let truncated = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x""#;
    probe
        .send("POST", CMS, Some("application/json"), truncated)
        .await
        .failure(400, "BadRequest");
    probe
        .send("POST", CMS, Some("application/json"), "[1, 2, 3]")
        .await
        .failure(400, "BadRequest");
    probe
        .send("POST", CMS, Some("application/json"), b"{\"a\": \"\xff\xfe\"}".to_vec())
        .await
        .failure(400, "BadRequest");
    probe
        .send("POST", CMS, Some("application/json"), "")
        .await
        .failure(400, "BadRequest");

    // 1,000 levels of nesting: 400, never a crash, for every decoder.
    let deep_create = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep"}},"data":{{"a":{}}}}}"#,
        nested(1000)
    );
    probe
        .send("POST", CMS, Some("application/json"), deep_create.clone())
        .await
        .failure(400, "BadRequest");
    probe
        .send("POST", CMS, Some("application/yaml"), deep_create)
        .await
        .failure(400, "BadRequest");
    probe
        .post_json(
            CMS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}}),
        )
        .await;
    let deep_patch = format!(r#"{{"metadata":{{"annotations":{{"a":{}}}}}}}"#, nested(1000));
    for media in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    ] {
        probe
            .send("PATCH", &format!("{CMS}/target"), Some(media), deep_patch.clone())
            .await
            .failure(400, "BadRequest");
    }
    let deep_json_patch = format!(r#"[{{"op":"add","path":"/data","value":{}}}]"#, nested(1000));
    probe
        .send(
            "PATCH",
            &format!("{CMS}/target"),
            Some("application/json-patch+json"),
            deep_json_patch,
        )
        .await
        .failure(400, "BadRequest");
    // Apply bodies are YAML: JSON flow nesting and block (indentation) nesting.
    let deep_apply = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"target"}},"data":{{"a":{}}}}}"#,
        nested(1000)
    );
    let apply = format!("{CMS}/target?fieldManager=deep");
    probe
        .send("PATCH", &apply, Some("application/apply-patch+yaml"), deep_apply)
        .await
        .failure(400, "BadRequest");
    let mut block = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: target\n  labels:\n");
    for level in 0..1000 {
        block.push_str(&" ".repeat(4 + 2 * level));
        block.push_str("k:\n");
    }
    block.push_str(&" ".repeat(4 + 2 * 1000));
    block.push_str("v\n");
    let reply = probe
        .send("PATCH", &apply, Some("application/apply-patch+yaml"), block)
        .await;
    assert!(
        reply.status == 400 || reply.status == 422,
        "deep YAML: {} {}",
        reply.status,
        reply.text()
    );
    probe.assert_healthy().await;
}

#[tokio::test]
async fn unknown_paths_media_types_and_names() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let mut probe = Probe::new(client);

    // Unknown resources, versions and groups: 404 Status.
    for path in [
        "/api/v1/namespaces/default/frobnicators",
        "/api/v1/frobnicators",
        "/api/v2/namespaces",
        "/apis/example.faros.sh/v1/namespaces/default/gizmos",
        "/apis/example.faros.sh/v2/namespaces/default/widgets",
        "/apis/nope.example.com/v1/things",
        "/apis/nope.example.com/v1/namespaces/default/things/x",
        "/apis/nope.example.com/v1",
        "/apis/nope.example.com",
        "/no/such/path",
    ] {
        probe.get(path).await.failure(404, "NotFound");
    }
    probe
        .post_json(
            "/apis/nope.example.com/v1/namespaces/default/things",
            &json!({"apiVersion": "nope.example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}),
        )
        .await
        .failure(404, "NotFound");
    // A missing object names itself.
    let missing = probe.get(&format!("{CMS}/absent")).await.failure(404, "NotFound");
    assert_eq!(missing["details"]["name"], "absent", "{missing}");
    assert_eq!(missing["details"]["kind"], "configmaps", "{missing}");

    // Create in a namespace that does not exist: 404.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let status = probe
        .post_json("/api/v1/namespaces/no-such-ns/configmaps", &cm)
        .await
        .failure(404, "NotFound");
    assert!(status["message"].as_str().unwrap().contains("no-such-ns"), "{status}");
    probe
        .post_json("/apis/example.faros.sh/v1/namespaces/no-such-ns/widgets", &widget("w"))
        .await
        .failure(404, "NotFound");

    // Wrong content type on a create: 415.
    probe
        .send("POST", CMS, Some("text/plain"), cm.to_string())
        .await
        .failure(415, "UnsupportedMediaType");
    probe
        .send("PUT", &format!("{CMS}/x"), Some("text/plain"), cm.to_string())
        .await
        .failure(415, "UnsupportedMediaType");

    // Strategic merge patch on a custom resource: 415 listing what is accepted.
    assert_eq!(probe.post_json(WIDGETS, &widget("w1")).await.status, 201);
    let status = probe
        .send(
            "PATCH",
            &format!("{WIDGETS}/w1"),
            Some("application/strategic-merge-patch+json"),
            r#"{"spec":{"size":3}}"#,
        )
        .await
        .failure(415, "UnsupportedMediaType");
    let message = status["message"].as_str().unwrap();
    for accepted in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(message.contains(accepted), "{message}");
    }
    assert!(
        !message.contains("accepted media types include: application/strategic"),
        "{message}"
    );
    // An unknown patch type on a built-in kind: 415 too.
    assert_eq!(probe.post_json(CMS, &cm).await.status, 201);
    probe
        .send("PATCH", &format!("{CMS}/x"), Some("text/plain"), r#"{"data":{}}"#)
        .await
        .failure(415, "UnsupportedMediaType");

    probe.assert_healthy().await;
}

/// Custom resources are named like most built-in kinds: DNS-1123 subdomains
/// (kube-apiserver validates them with `NameIsDNSSubdomain`).
#[tokio::test]
async fn invalid_names_are_422_naming_metadata_name() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let mut probe = Probe::new(client);
    // Invalid names: 422 whose causes name metadata.name.
    for (path, body) in [
        (
            CMS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name!"}}),
        ),
        (
            CMS,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a".repeat(300)}}),
        ),
        (WIDGETS, widget("Not-Lower")),
        (WIDGETS, widget("dot..dot")),
    ] {
        let reply = probe.post_json(path, &body).await;
        assert_eq!(
            reply.status,
            422,
            "the name {} must be refused at {path}: {}",
            body["metadata"]["name"],
            reply.text()
        );
        let status = reply.failure(422, "Invalid");
        let causes = status["details"]["causes"]
            .as_array()
            .unwrap_or_else(|| panic!("{status}"));
        assert!(
            causes.iter().any(|c| c["field"] == "metadata.name"),
            "causes name metadata.name: {status}"
        );
    }
    // A valid subdomain is fine for both.
    let ok = probe.post_json(WIDGETS, &widget("a.b-c")).await;
    assert_eq!(ok.status, 201, "{}", ok.text());
    probe.assert_healthy().await;
}

#[tokio::test]
async fn updates_need_fresh_resource_versions() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let mut probe = Probe::new(client);
    let created = probe.post_json(WIDGETS, &widget("w")).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let stale = created.json();

    // PUT without a resourceVersion on a custom resource: 422 naming the field.
    let mut unconditional = stale.clone();
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    unconditional["spec"]["size"] = 3.into();
    let status = probe
        .send(
            "PUT",
            &format!("{WIDGETS}/w"),
            Some("application/json"),
            unconditional.to_string(),
        )
        .await
        .failure(422, "Invalid");
    assert!(
        status["details"]["causes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["field"] == "metadata.resourceVersion")),
        "{status}"
    );

    // Someone else changes it; a PUT with the old resourceVersion: 409 Conflict.
    let changed = probe
        .send(
            "PATCH",
            &format!("{WIDGETS}/w"),
            Some("application/merge-patch+json"),
            r#"{"spec":{"size":4}}"#,
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text());
    let mut outdated = stale.clone();
    outdated["spec"]["size"] = 5.into();
    let status = probe
        .send(
            "PUT",
            &format!("{WIDGETS}/w"),
            Some("application/json"),
            outdated.to_string(),
        )
        .await
        .failure(409, "Conflict");
    assert!(status["message"].as_str().unwrap().contains("modified"), "{status}");
    // A patch with a stale resourceVersion precondition: 409 as well.
    let rv = stale["metadata"]["resourceVersion"].as_str().unwrap();
    probe
        .send(
            "PATCH",
            &format!("{WIDGETS}/w"),
            Some("application/merge-patch+json"),
            json!({"metadata": {"resourceVersion": rv}, "spec": {"size": 6}}).to_string(),
        )
        .await
        .failure(409, "Conflict");
    // A delete with a stale precondition: 409.
    probe
        .send(
            "DELETE",
            &format!("{WIDGETS}/w"),
            Some("application/json"),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv}}).to_string(),
        )
        .await
        .failure(409, "Conflict");
    // The fresh resourceVersion works.
    let fresh = probe.get(&format!("{WIDGETS}/w")).await.json();
    assert_eq!(fresh["spec"]["size"], 4);
    let mut update = fresh.clone();
    update["spec"]["size"] = 7.into();
    let ok = probe
        .send(
            "PUT",
            &format!("{WIDGETS}/w"),
            Some("application/json"),
            update.to_string(),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["spec"]["size"], 7);
    // Creating what exists: 409 AlreadyExists.
    probe
        .post_json(WIDGETS, &widget("w"))
        .await
        .failure(409, "AlreadyExists");
    probe.assert_healthy().await;
}

#[tokio::test]
async fn field_validation_strict_warn_ignore() {
    let hub = TestHub::start(HUB);
    let client = hub.client().await;
    install_widget_crd(&client).await;
    let mut probe = Probe::new(client);

    let mut w = widget("fv");
    w["spec"]["bogus"] = "x".into();
    let status = probe
        .post_json(&format!("{WIDGETS}?fieldValidation=Strict"), &w)
        .await
        .failure(400, "BadRequest");
    assert!(status["message"].as_str().unwrap().contains("spec.bogus"), "{status}");
    probe.get(&format!("{WIDGETS}/fv")).await.failure(404, "NotFound");

    let warned = probe.post_json(&format!("{WIDGETS}?fieldValidation=Warn"), &w).await;
    assert_eq!(warned.status, 201, "{}", warned.text());
    let warnings = warned.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("299 ") && w.contains("spec.bogus")),
        "{warnings:?}"
    );
    assert!(
        warned.json()["spec"].get("bogus").is_none(),
        "unknown fields are dropped"
    );

    let mut quiet = w.clone();
    quiet["metadata"]["name"] = "fv-ignore".into();
    let ignored = probe
        .post_json(&format!("{WIDGETS}?fieldValidation=Ignore"), &quiet)
        .await;
    assert_eq!(ignored.status, 201, "{}", ignored.text());
    assert!(ignored.warnings().is_empty(), "{:?}", ignored.warnings());

    // Built-in kinds report unknown fields the same way.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fv"}, "bogusTop": 1});
    let status = probe
        .post_json(&format!("{CMS}?fieldValidation=Strict"), &cm)
        .await
        .failure(400, "BadRequest");
    assert!(status["message"].as_str().unwrap().contains("bogusTop"), "{status}");
    let warned = probe.post_json(&format!("{CMS}?fieldValidation=Warn"), &cm).await;
    assert_eq!(warned.status, 201, "{}", warned.text());
    assert!(
        warned.warnings().iter().any(|w| w.contains("bogusTop")),
        "{:?}",
        warned.warnings()
    );
    // Strict on a patch too.
    let status = probe
        .send(
            "PATCH",
            &format!("{WIDGETS}/fv?fieldValidation=Strict"),
            Some("application/merge-patch+json"),
            r#"{"spec":{"alsoBogus":1}}"#,
        )
        .await
        .failure(400, "BadRequest");
    assert!(
        status["message"].as_str().unwrap().contains("spec.alsoBogus"),
        "{status}"
    );
    // An invalid directive is a 400 too.
    probe
        .post_json(&format!("{CMS}?fieldValidation=Loose"), &cm)
        .await
        .failure(400, "BadRequest");
    probe.assert_healthy().await;
}

#[tokio::test]
async fn unauthenticated_requests() {
    let hub = TestHub::start(HUB);
    let mut anonymous = Probe::new(hub.anonymous_client().await);
    for path in ["/version", "/healthz", "/readyz", "/livez"] {
        let reply = anonymous.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    assert_eq!(anonymous.get("/version").await.json()["major"], "1");
    for path in [
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/configmaps",
        "/api",
        "/apis",
        "/openapi/v3",
    ] {
        anonymous.get(path).await.failure(401, "Unauthorized");
    }
    anonymous
        .post_json(
            CMS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "anon"}}),
        )
        .await
        .failure(401, "Unauthorized");
    let no_errors: Vec<_> = anonymous.seen.iter().filter(|(_, c)| *c >= 500).collect();
    assert!(no_errors.is_empty(), "{no_errors:?}");

    // The admin's client still works, and the anonymous create stored nothing.
    let mut admin = Probe::new(hub.client().await);
    admin.get(&format!("{CMS}/anon")).await.failure(404, "NotFound");
    assert_eq!(admin.get("/api/v1/namespaces").await.status, 200);
    admin.assert_healthy().await;
}

#[tokio::test]
async fn watch_from_a_revision_older_than_the_window_is_expired() {
    window_expires_old_revisions(&["--watch-cache-events", "5"]).await;
}

#[tokio::test]
async fn a_window_bounded_by_bytes_expires_old_revisions_too() {
    // About ten small updates' worth: each is charged for its object and the one it replaced.
    window_expires_old_revisions(&["--watch-cache-bytes", "4Ki"]).await;
}

#[test]
fn window_sizes_that_are_not_quantities_are_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub-api"))
        .args(["start", "--watch-cache-bytes", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--watch-cache-bytes") && stderr.contains("64Mi"),
        "{stderr}"
    );
}

/// Twenty updates of one ConfigMap through a hub whose event window `args` keep small: a
/// watch or exact list from before them is 410 Expired, one from the last is served.
async fn window_expires_old_revisions(args: &[&str]) {
    let hub = TestHub::start_with_args(HUB, false, args);
    let mut probe = Probe::new(hub.client().await);
    let first = probe
        .post_json(
            CMS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "churn"}, "data": {"n": "0"}}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text());
    let old_rv = first.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut last_rv = old_rv.clone();
    for n in 1..=20 {
        let reply = probe
            .send(
                "PATCH",
                &format!("{CMS}/churn"),
                Some("application/merge-patch+json"),
                json!({"data": {"n": n.to_string()}}).to_string(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        last_rv = reply.json()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
    }

    // From a revision that has left the 5-event window: 410 Expired, either as the HTTP
    // status or as an ERROR event carrying a Status.
    let reply = probe
        .watch_first_line(&format!("{CMS}?watch=1&resourceVersion={old_rv}&timeoutSeconds=5"))
        .await;
    let status = if reply.status == 200 {
        let event: Value = serde_json::from_slice(reply.body.split(|b| *b == b'\n').next().unwrap())
            .unwrap_or_else(|e| panic!("first watch line ({e}): {}", reply.text()));
        assert_eq!(event["type"], "ERROR", "{event}");
        event["object"].clone()
    } else {
        assert_eq!(reply.status, 410, "{}", reply.text());
        reply.json()
    };
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], 410, "{status}");
    assert_eq!(status["reason"], "Expired", "{status}");

    // From a revision inside the window: the next change, then live.
    let recent = last_rv.parse::<u64>().unwrap() - 1;
    let reply = probe
        .watch_first_line(&format!("{CMS}?watch=1&resourceVersion={recent}&timeoutSeconds=5"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let event: Value = serde_json::from_slice(reply.body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(event["type"], "MODIFIED", "{event}");
    assert_eq!(
        event["object"]["metadata"]["resourceVersion"],
        last_rv.as_str(),
        "{event}"
    );

    // An exact list at an old revision cannot be served either.
    probe
        .get(&format!("{CMS}?resourceVersion={old_rv}&resourceVersionMatch=Exact"))
        .await
        .failure(410, "Expired");
    probe.assert_healthy().await;
}
