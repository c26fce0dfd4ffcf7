"""Drives the hub with the official Python `kubernetes` client.

Usage: client_checks.py KUBECONFIG

Run by tests/python_client.rs after it has installed the Widget CRD. Every check raises
on failure; the last line printed on success is "ALL OK".
"""

import sys
import threading
import time

try:
    import kubernetes  # noqa: F401
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(f"FATAL: the Python kubernetes client cannot be imported: {e}", file=sys.stderr)
    sys.exit(3)

NS = "pyclient"
GROUP, VERSION, PLURAL = "example.faros.sh", "v1", "widgets"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_status(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        check(e.status == code, f"expected HTTP {code}, got {e.status}: {e.body}")
        return e
    raise AssertionError(f"expected HTTP {code}, the call succeeded")


def configmap(name, data, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


def collect(stream, count, deadline_s):
    """The first `count` events of a watch stream (type, name), or fewer at timeout."""
    events = []
    end = time.time() + deadline_s
    for ev in stream:
        obj = ev["object"]
        name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
        events.append((ev["type"], name))
        if len(events) >= count or time.time() > end:
            break
    return events


def configmaps(v1):
    # create, duplicate create, get, list, label selector
    a = v1.create_namespaced_config_map(NS, configmap("cm-a", {"k1": "v1"}, {"app": "demo"}))
    check(a.metadata.name == "cm-a" and a.metadata.uid, f"created: {a}")
    check(int(a.metadata.resource_version) > 0, "resourceVersion set")
    check(a.data == {"k1": "v1"}, f"data: {a.data}")
    v1.create_namespaced_config_map(NS, configmap("cm-b", {"x": "1"}, {"app": "other"}))
    e = expect_status(409, v1.create_namespaced_config_map, NS, configmap("cm-a", {}))
    check("AlreadyExists" in e.body, e.body)
    got = v1.read_namespaced_config_map("cm-a", NS)
    check(got.metadata.uid == a.metadata.uid, "get returns the created object")
    listed = v1.list_namespaced_config_map(NS)
    check(sorted(i.metadata.name for i in listed.items) == ["cm-a", "cm-b"], f"list: {listed.items}")
    demo = v1.list_namespaced_config_map(NS, label_selector="app=demo")
    check([i.metadata.name for i in demo.items] == ["cm-a"], "label selector")
    print("PASS create/get/list")
    return listed.metadata.resource_version


def watches(v1, list_rv):
    # Without a resourceVersion: synthetic ADDED events for what exists, first.
    w = watch.Watch()
    initial = collect(w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=5), 2, 5)
    w.stop()
    check(sorted(initial) == [("ADDED", "cm-a"), ("ADDED", "cm-b")], f"initial events: {initial}")

    # ... and then live changes.
    w = watch.Watch()
    stream = w.stream(v1.list_namespaced_config_map, NS, timeout_seconds=10)

    def later():
        time.sleep(1.0)
        v1.create_namespaced_config_map(NS, configmap("cm-live", {"a": "b"}))

    t = threading.Thread(target=later)
    t.start()
    events = collect(stream, 3, 10)
    w.stop()
    t.join()
    check(sorted(events[:2]) == [("ADDED", "cm-a"), ("ADDED", "cm-b")], f"events: {events}")
    check(events[2:] == [("ADDED", "cm-live")], f"live event: {events}")

    # From a resourceVersion: exactly the changes after it, in order, no initial events.
    v1.patch_namespaced_config_map(
        "cm-b", NS, {"data": {"x": "2"}}, _content_type="application/merge-patch+json"
    )
    v1.delete_namespaced_config_map("cm-live", NS)
    w = watch.Watch()
    events = collect(
        w.stream(v1.list_namespaced_config_map, NS, resource_version=list_rv, timeout_seconds=5),
        3,
        5,
    )
    w.stop()
    check(
        events == [("ADDED", "cm-live"), ("MODIFIED", "cm-b"), ("DELETED", "cm-live")],
        f"events from resourceVersion {list_rv}: {events}",
    )
    print("PASS watch with and without resource_version")


def patches_and_delete(v1):
    # JSON merge patch: keys merge, null removes.
    merged = v1.patch_namespaced_config_map(
        "cm-a",
        NS,
        {"data": {"k2": "v2", "k1": None}, "metadata": {"labels": {"tier": "gold"}}},
        _content_type="application/merge-patch+json",
    )
    check(merged.data == {"k2": "v2"}, f"merge patch data: {merged.data}")
    check(merged.metadata.labels == {"app": "demo", "tier": "gold"}, f"labels: {merged.metadata.labels}")

    # Strategic merge patch (the client's default for an object body): finalizers merge
    # as a set, which tells it apart from a JSON merge patch (which would replace them).
    # As in apimachinery, an added item that cannot be anchored goes first.
    v1.patch_namespaced_config_map(
        "cm-a", NS, {"metadata": {"finalizers": ["example.com/one"]}},
        _content_type="application/merge-patch+json",
    )
    smp = v1.patch_namespaced_config_map(
        "cm-a", NS, {"metadata": {"finalizers": ["example.com/two"]}, "data": {"k3": "v3", "k2": None}}
    )
    check(
        smp.metadata.finalizers == ["example.com/two", "example.com/one"],
        f"strategic merge of finalizers: {smp.metadata.finalizers}",
    )
    check(smp.data == {"k3": "v3"}, f"strategic merge of data: {smp.data}")

    # JSON patch (a list body).
    jp = v1.patch_namespaced_config_map("cm-a", NS, [{"op": "remove", "path": "/metadata/finalizers"}])
    check(not jp.metadata.finalizers, f"finalizers after JSON patch: {jp.metadata.finalizers}")
    expect_status(
        422, v1.patch_namespaced_config_map, "cm-a", NS,
        [{"op": "test", "path": "/data/k3", "value": "nope"}],
    )

    # Update with a stale resourceVersion conflicts.
    stale = v1.read_namespaced_config_map("cm-a", NS)
    v1.patch_namespaced_config_map("cm-a", NS, {"data": {"k4": "v4"}})
    expect_status(409, v1.replace_namespaced_config_map, "cm-a", NS, stale)

    # Delete, then 404.
    v1.delete_namespaced_config_map("cm-a", NS)
    expect_status(404, v1.read_namespaced_config_map, "cm-a", NS)
    expect_status(404, v1.delete_namespaced_config_map, "cm-a", NS)
    print("PASS merge/strategic/json patch, conflict, delete")


def custom_objects(co):
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "py-widget", "labels": {"from": "python"}},
        "spec": {"size": 3},
    }
    created = co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
    check(created["spec"] == {"size": 3, "color": "blue"}, f"defaulted spec: {created['spec']}")
    rv = created["metadata"]["resourceVersion"]
    bad = dict(body, metadata={"name": "py-bad"}, spec={"size": 1000})
    e = expect_status(422, co.create_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, bad)
    check("spec.size" in e.body, e.body)

    listed = co.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    check([i["metadata"]["name"] for i in listed["items"]] == ["py-widget"], f"list: {listed}")
    check(listed["kind"] == "WidgetList", listed["kind"])
    got = co.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-widget")
    check(got["metadata"]["uid"] == created["metadata"]["uid"], "get")

    # patch: the client sends a JSON merge patch for a dict body.
    patched = co.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "py-widget", {"spec": {"size": 4, "tags": ["a"]}}
    )
    check(patched["spec"] == {"size": 4, "color": "blue", "tags": ["a"]}, f"patched: {patched['spec']}")
    check(patched["metadata"]["generation"] == 2, f"generation: {patched['metadata']}")
    status = co.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "py-widget",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    )
    check(status["status"]["conditions"][0]["status"] == "True", f"status: {status}")
    check(status["metadata"]["generation"] == 2, "status does not bump generation")
    # Strategic merge patch is refused for custom resources (kubectl falls back on 415).
    e = expect_status(
        415, co.patch_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "py-widget",
        {"spec": {"size": 5}}, _content_type="application/strategic-merge-patch+json",
    )
    check("application/merge-patch+json" in e.body, e.body)

    w = watch.Watch()
    events = collect(
        w.stream(
            co.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
            resource_version=rv, timeout_seconds=5,
        ),
        2,
        5,
    )
    w.stop()
    check(events == [("MODIFIED", "py-widget"), ("MODIFIED", "py-widget")], f"widget events: {events}")

    co.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-widget")
    expect_status(404, co.get_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, "py-widget")
    listed = co.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    check(listed["items"] == [], f"after delete: {listed}")
    print("PASS custom objects create/list/get/patch/status/watch/delete")


def main():
    config.load_kube_config(config_file=sys.argv[1])
    api = client.ApiClient()
    v1 = client.CoreV1Api(api)
    co = client.CustomObjectsApi(api)
    version = client.VersionApi(api).get_code()
    check(version.major == "1", f"version: {version}")
    v1.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    expect_status(404, v1.create_namespaced_config_map, "no-such-ns", configmap("x", {}))

    list_rv = configmaps(v1)
    watches(v1, list_rv)
    patches_and_delete(v1)
    custom_objects(co)
    print("ALL OK")


if __name__ == "__main__":
    main()
