//! `x-kubernetes-validations` (CEL) rules of CRDs through kubectl and kube-rs: objects that
//! break a rule are refused with kube-apiserver's error (transition rules on updates, the
//! status subresource included; `messageExpression`, `fieldPath` and `reason` in the Status),
//! and rules the hub cannot evaluate are refused when the CRD is written.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::common::{HUB, TestHub};

const V: &str = "1.32";

fn crd(rules: &str) -> String {
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.example.com}}
spec:
  group: example.com
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations: {rules}
            properties:
              replicas: {{type: integer}}
              max: {{type: integer}}
              tags:
                type: array
                items: {{type: string}}
                x-kubernetes-validations:
                - rule: "self.all(t, t.startsWith('x-'))"
"#
    )
}

fn gadget(name: &str, spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Gadget\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n")
}

#[tokio::test]
async fn cel_rules_are_enforced_and_unsupported_ones_refused() {
    let hub = TestHub::start(HUB);
    let apply = |yaml: &str| hub.kubectl_stdin(V, &["apply", "-f", "-"], yaml);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // Rules the hub cannot evaluate never get in.
    let out = apply(&crd(
        r#"[{rule: "timestamp(self.since) < timestamp('2030-01-01T00:00:00Z')"}]"#,
    ));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("timestamp() not supported"), "{}", stderr(&out));
    let out = apply(&crd(r#"[{rule: "self.tags.isSorted()"}]"#));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("isSorted() not supported"), "{}", stderr(&out));
    let out = apply(&crd(r#"[{rule: "self.replicas <"}]"#));
    assert!(stderr(&out).contains("compilation failed"), "{}", stderr(&out));

    let out = apply(&crd(
        r#"[{rule: "self.replicas <= self.max", message: "replicas must not exceed max"}]"#,
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    hub.kubectl_ok(V, &["wait", "--for=condition=Established", "crd/gadgets.example.com"]);

    let out = apply(&gadget("fine", "{replicas: 2, max: 3, tags: [x-a]}"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = apply(&gadget("too-many", "{replicas: 4, max: 3}"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"The Gadget "too-many" is invalid: spec: Invalid value: "object": replicas must not exceed max"#
        ),
        "{}",
        stderr(&out)
    );
    let out = apply(&gadget("bad-tag", "{replicas: 1, max: 3, tags: [z]}"));
    assert!(
        stderr(&out).contains(r#"spec.tags: Invalid value: "array": failed rule: self.all(t, t.startsWith('x-'))"#),
        "{}",
        stderr(&out)
    );
    // An update is held to the same rules.
    let out = hub.kubectl(
        V,
        &[
            "patch",
            "gadget",
            "fine",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":9}}"#,
        ],
    );
    assert!(
        stderr(&out).contains("replicas must not exceed max"),
        "{}",
        stderr(&out)
    );
}

/// A CRD whose rules compare with the previous object, build their message, and place the
/// error below their node.
const LOCKERS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: lockers.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: lockers, singular: locker, kind: Locker, listKind: LockerList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.size <= self.max"
              messageExpression: "'size ' + string(self.size) + ' exceeds max ' + string(self.max)"
            - rule: "!has(self.owner) || self.owner != 'nobody'"
              fieldPath: .owner
              reason: FieldValueForbidden
              message: owner may not be nobody
            properties:
              region:
                type: string
                x-kubernetes-validations:
                - {rule: "self == oldSelf", message: region is immutable}
              size: {type: integer}
              max: {type: integer}
              owner: {type: string}
          status:
            type: object
            properties:
              phase:
                type: string
                x-kubernetes-validations:
                - {rule: "oldSelf != 'Done' || self == 'Done'", message: a Done locker stays Done}
"#;

fn locker(spec: &str) -> String {
    format!("apiVersion: example.com/v1\nkind: Locker\nmetadata: {{name: a, namespace: default}}\nspec: {spec}\n")
}

#[tokio::test]
async fn transition_rules_message_expressions_and_field_paths() {
    let hub = TestHub::start(HUB);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    let refused = |out: std::process::Output, expected: &str| {
        assert!(!out.status.success(), "accepted, expected {expected}");
        assert!(
            stderr(&out).contains(expected),
            "expected {expected} in {}",
            stderr(&out)
        );
    };

    // What kube-apiserver refuses in such rules, the hub refuses too, naming the field.
    let bad_path = LOCKERS.replace("fieldPath: .owner", "fieldPath: .ownr");
    refused(
        hub.kubectl_stdin(V, &["apply", "-f", "-"], &bad_path),
        r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].fieldPath: Invalid value: ".ownr": fieldPath must be a valid path"#,
    );
    let bad_reason = LOCKERS.replace("reason: FieldValueForbidden", "reason: FieldValueGone");
    refused(
        hub.kubectl_stdin(V, &["apply", "-f", "-"], &bad_reason),
        r#"x-kubernetes-validations[1].reason: Unsupported value: "FieldValueGone""#,
    );

    let out = hub.kubectl_stdin(V, &["apply", "-f", "-"], LOCKERS);
    assert!(out.status.success(), "{}", stderr(&out));
    hub.kubectl_ok(V, &["wait", "--for=condition=Established", "crd/lockers.example.com"]);

    // On create there is no previous value: the transition rule does not apply.
    let out = hub.kubectl_stdin(V, &["apply", "-f", "-"], &locker("{region: eu, size: 1, max: 2}"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Updates by patch, apply and replace are held to it.
    let immutable = r#"The Locker "a" is invalid: spec.region: Invalid value: "string": region is immutable"#;
    refused(
        hub.kubectl(
            V,
            &[
                "patch",
                "locker",
                "a",
                "--type=merge",
                "-p",
                r#"{"spec":{"region":"us"}}"#,
            ],
        ),
        immutable,
    );
    refused(
        hub.kubectl_stdin(V, &["apply", "-f", "-"], &locker("{region: us, size: 1, max: 2}")),
        immutable,
    );
    refused(
        hub.kubectl_stdin(
            V,
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &locker("{region: us, size: 1, max: 2}"),
        ),
        immutable,
    );
    // The message of a messageExpression.
    refused(
        hub.kubectl(
            V,
            &["patch", "locker", "a", "--type=merge", "-p", r#"{"spec":{"size":5}}"#],
        ),
        r#"The Locker "a" is invalid: spec: Invalid value: "object": size 5 exceeds max 2"#,
    );
    let out = hub.kubectl(
        V,
        &["patch", "locker", "a", "--type=merge", "-p", r#"{"spec":{"size":2}}"#],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The Status a client sees: 422 Invalid, with the rule's field, reason and message.
    let resource = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Locker".into(),
        plural: "lockers".into(),
    };
    let lockers: Api<DynamicObject> = Api::namespaced_with(hub.client().await, "default", &resource);
    let status = |result: kube::Result<DynamicObject>| match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let causes = |status: &kube::core::Status| -> Vec<(String, String, String)> {
        let details = status.details.as_ref().expect("details");
        details
            .causes
            .iter()
            .map(|c| (c.reason.clone(), c.field.clone(), c.message.clone()))
            .collect()
    };
    let patch = |body: serde_json::Value| {
        let lockers = lockers.clone();
        async move { lockers.patch("a", &PatchParams::default(), &Patch::Merge(body)).await }
    };
    let forbidden = status(patch(json!({"spec": {"owner": "nobody"}})).await);
    assert_eq!((forbidden.code, forbidden.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        causes(&forbidden),
        [(
            "FieldValueForbidden".to_string(),
            "spec.owner".to_string(),
            "Forbidden: owner may not be nobody".to_string()
        )]
    );
    assert_eq!(
        forbidden.message,
        r#"Locker.example.com "a" is invalid: spec.owner: Forbidden: owner may not be nobody"#
    );
    let immutable = status(patch(json!({"spec": {"region": "us"}})).await);
    assert_eq!(
        causes(&immutable),
        [(
            "FieldValueInvalid".to_string(),
            "spec.region".to_string(),
            r#"Invalid value: "string": region is immutable"#.to_string()
        )]
    );

    // The status subresource is an update too.
    let done = lockers
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Done"}})),
        )
        .await;
    assert!(done.is_ok(), "{done:?}");
    refused(
        hub.kubectl(
            V,
            &[
                "patch",
                "locker",
                "a",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"phase":"Running"}}"#,
            ],
        ),
        r#"status.phase: Invalid value: "string": a Done locker stays Done"#,
    );
    let unchanged = hub.kubectl_ok(
        V,
        &["get", "locker", "a", "-o", "jsonpath={.spec.region}/{.status.phase}"],
    );
    assert_eq!(unchanged, "eu/Done");
}
