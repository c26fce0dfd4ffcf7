//! `x-kubernetes-validations` (CEL) rules of CRDs through kubectl: objects that break a rule
//! are refused with kube-apiserver's error, and rules the hub cannot evaluate are refused
//! when the CRD is written.

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
    let out = apply(&crd(r#"[{rule: "self.replicas == oldSelf.replicas"}]"#));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("transition rules (oldSelf) are not supported"),
        "{}",
        stderr(&out)
    );
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
