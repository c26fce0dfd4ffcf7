//! Fuzz targets: one function per kind of untrusted input this crate parses.
//!
//! The libFuzzer harnesses in `machinery/fuzz/` and the bounded corpus replay in
//! `tests/fuzz_corpus.rs` call these same functions, so a crash found by either is
//! reproduced by the other. Each target accepts any bytes, must not panic, and asserts
//! the properties that hold for every input it manages to parse (round trips,
//! idempotence): a broken property is reported as a crash too.
//!
//! Inputs are read as JSON text where they hold JSON, so seeds can be written by hand and
//! libFuzzer's dictionaries steer mutations. Bytes that are not JSON are decoded by
//! [`Bytes`] into values anyway, so every mutation still reaches the code under test
//! instead of dying in the JSON parser.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::decode;
use crate::jsonpath::JsonPath;
use crate::protobuf;
use crate::schema::StructuralSchema;
use crate::selector::{FieldOp, FieldSelector, LabelSelector};
use crate::strategic_merge::{self, ListStrategy, PatchMeta};
use crate::table::{IncludeObject, PrinterColumn, TableConvertor};
use crate::validation::{NameRule, validate_object_meta};

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target by name, as the harnesses and the corpus replay know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("label_selector", label_selector),
    ("field_selector", field_selector),
    ("jsonpath", jsonpath),
    ("strategic_merge", strategic_merge),
    ("schema", schema),
    ("protobuf", protobuf),
    ("body", body),
    ("json_patch", json_patch),
];

/// Deepest value [`Bytes`] builds: room for schemas and patches to nest a few times.
/// Depth as such comes with JSON inputs, which serde_json takes up to 128 levels deep,
/// past the 100 levels the hub accepts.
const MAX_DEPTH: usize = 24;

/// `labelSelector` query parameter on the first line; the rest is a JSON value used as
/// a `metav1.LabelSelector` object and as the labels to match.
pub fn label_selector(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (query, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let extra = values(rest.as_bytes(), 1).pop().unwrap_or(Value::Null);

    if let Ok(selector) = LabelSelector::parse(query) {
        check_label_round_trip(&selector);
        check_label_matching(&selector, &extra);
    }
    if let Ok(selector) = LabelSelector::from_json(&extra) {
        // `from_json(null)` selects nothing, which has no query form.
        if !extra.is_null() {
            check_label_round_trip(&selector);
        }
        check_label_matching(&selector, &extra);
    }
}

/// A rendered selector means what the parsed one meant: it parses back to the same
/// requirements.
fn check_label_round_trip(selector: &LabelSelector) {
    let rendered = selector.to_string();
    let reparsed = LabelSelector::parse(&rendered)
        .unwrap_or_else(|e| panic!("{rendered:?}, rendered from {selector:?}, does not parse: {e}"));
    assert_eq!(
        reparsed.requirements(),
        selector.requirements(),
        "{rendered:?} parses to other requirements"
    );
}

fn check_label_matching(selector: &LabelSelector, extra: &Value) {
    let _ = selector.matches(None);
    if let Some(labels) = extra.as_object() {
        let _ = selector.matches(Some(labels));
    }
    // Labels built from the selector's own values reach the comparisons that arbitrary
    // labels almost never do.
    for pick in 0..3 {
        let labels: Map<String, Value> = selector
            .requirements()
            .iter()
            .map(|r| {
                let value = match pick {
                    0 => r.values.first().cloned().unwrap_or_default(),
                    1 => r.values.last().cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                (r.key.clone(), Value::String(value))
            })
            .collect();
        let _ = selector.matches(Some(&labels));
    }
}

/// A `fieldSelector` query parameter.
pub fn field_selector(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(selector) = FieldSelector::parse(&text) else {
        return;
    };
    let rendered = selector.to_string();
    let reparsed = FieldSelector::parse(&rendered)
        .unwrap_or_else(|e| panic!("{rendered:?}, rendered from {text:?}, does not parse: {e}"));
    // Terms are sorted by their raw text, which rendering may change (`a==b` becomes
    // `a=b`), so only the set of requirements must survive.
    let sorted = |s: &FieldSelector| {
        let mut r: Vec<_> = s
            .requirements()
            .iter()
            .map(|r| (r.field.clone(), r.op == FieldOp::Equals, r.value.clone()))
            .collect();
        r.sort();
        r
    };
    assert_eq!(
        sorted(&reparsed),
        sorted(&selector),
        "{rendered:?} parses to other requirements"
    );

    let fields: Vec<(String, String)> = selector
        .requirements()
        .iter()
        .map(|r| (r.field.clone(), r.value.clone()))
        .collect();
    let lookup = |field: &str| fields.iter().find(|(f, _)| f == field).map(|(_, v)| v.clone());
    // Against an object whose fields hold the values of the first term naming them, a
    // selector matches exactly when each term holds for its field's value.
    let expected = selector.requirements().iter().all(|r| {
        let actual = lookup(&r.field).unwrap_or_default();
        (r.op == FieldOp::Equals) == (actual == r.value)
    });
    assert_eq!(
        selector.matches(lookup),
        expected,
        "matching {text:?} against its own values"
    );
    if let Some(first) = selector.requirements().first() {
        let _ = selector.exact(&first.field);
    }
}

/// A JSONPath on the first line; the rest is the JSON object it is evaluated on (a
/// built-in sample when there is none). Evaluated as `find` does and as a printer column
/// of every type, as the hub does for CRD `additionalPrinterColumns`.
pub fn jsonpath(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let doc = if rest.trim().is_empty() {
        sample_object()
    } else {
        values(rest.as_bytes(), 1).pop().unwrap_or(Value::Null)
    };

    if let Ok(parsed) = JsonPath::parse(path) {
        let found = parsed.find(&doc);
        if let Some(fields) = parsed.field_path() {
            // A path of plain fields selects exactly what walking those fields reaches.
            let walked = fields.iter().try_fold(&doc, |v, f| v.as_object()?.get(*f));
            assert_eq!(found, walked.into_iter().collect::<Vec<_>>(), "{path:?} on {doc}");
        }
    }

    let columns: Vec<PrinterColumn> = ["string", "integer", "number", "boolean", "date", "other"]
        .iter()
        .map(|ty| PrinterColumn::path(ty, ty, path, 0))
        .chain([PrinterColumn::age()])
        .collect();
    let now = Timestamp::from_second(1_700_000_000).expect("a valid timestamp");
    for builtin in [false, true] {
        let table = TableConvertor::new(&columns, builtin);
        let _ = table.column_definitions();
        let _ = table.row(&doc, IncludeObject::Metadata, now);
    }
    let _ = PrinterColumn::for_custom_resource(&doc);
}

fn sample_object() -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "creationTimestamp": "2023-11-14T20:00:00Z",
            "labels": {"app.kubernetes.io/name": "web", "tier": "front"},
            "annotations": {"key.with.dots": "dotted"},
        },
        "spec": {
            "replicas": 3,
            "ratio": 0.25,
            "paused": false,
            "containers": [
                {"name": "app", "image": "nginx", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
                {"name": "side", "image": "busybox", "args": ["a", "b", "c"]},
            ],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T21:00:00Z"},
                {"type": "Scheduled", "status": "False", "count": 2},
            ],
            "empty": {},
            "none": null,
        },
    })
}

/// Patch metadata as a table of dotted paths (array levels elided).
struct TableMeta {
    lists: &'static [(&'static str, ListStrategy<'static>)],
    retain_keys: &'static [&'static str],
}

impl PatchMeta for TableMeta {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy<'_> {
        let dotted = path.join(".");
        self.lists
            .iter()
            .find(|(p, _)| *p == dotted)
            .map_or(ListStrategy::Replace, |(_, s)| *s)
    }

    fn retain_keys(&self, path: &[&str]) -> bool {
        self.retain_keys.contains(&path.join(".").as_str())
    }
}

/// Every list atomic: what a kind without patch strategies gets.
static ATOMIC: TableMeta = TableMeta {
    lists: &[],
    retain_keys: &[],
};

/// Strategic lists of every shape (merged by key, merged as a set) and `retainKeys` fields,
/// with ObjectMeta's own (finalizers as a set, owner references by uid).
static FUZZ_META: TableMeta = TableMeta {
    lists: &[
        ("metadata.finalizers", ListStrategy::Merge { key: None }),
        ("metadata.ownerReferences", ListStrategy::Merge { key: Some("uid") }),
        ("secrets", ListStrategy::Merge { key: Some("name") }),
        ("spec.containers", ListStrategy::Merge { key: Some("name") }),
        (
            "spec.containers.ports",
            ListStrategy::Merge {
                key: Some("containerPort"),
            },
        ),
        ("spec.containers.env", ListStrategy::Merge { key: Some("name") }),
        ("spec.tags", ListStrategy::Merge { key: None }),
        ("spec.items", ListStrategy::Merge { key: None }),
        ("status.conditions", ListStrategy::Merge { key: Some("type") }),
    ],
    retain_keys: &["spec.strategy", "spec"],
};

/// First byte: the patch metadata; then the original object and the patch.
pub fn strategic_merge(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let metas: [&dyn PatchMeta; 2] = [&ATOMIC, &FUZZ_META];
    let meta = metas[usize::from(which) % metas.len()];
    let mut docs = values(rest, 2).into_iter();
    let (original, patch) = (docs.next().unwrap_or_default(), docs.next().unwrap_or_default());

    if let Ok(merged) = strategic_merge::apply(&original, &patch, meta) {
        assert!(merged.is_object(), "a patched object is an object");
        // Directives are carried out, never stored: what a patch adds is normalised
        // like a merge into an empty value.
        if !has_directive_key(&original) {
            assert!(
                !has_directive_key(&merged),
                "patching {original} with {patch} stored a directive: {merged}"
            );
        }
    }
    if original.is_object() {
        let unchanged = strategic_merge::apply(&original, &Value::Object(Map::new()), meta);
        assert_eq!(unchanged.as_ref(), Ok(&original), "an empty patch changes nothing");
    }
}

/// Whether `value` has a `$`-key anywhere, other than the `$ref` and `$schema` of JSON
/// schemas, which are fields.
fn has_directive_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k.starts_with('$') && k != "$ref" && k != "$schema") || has_directive_key(v)),
        Value::Array(items) => items.iter().any(has_directive_key),
        _ => false,
    }
}

/// A custom resource written to the hub: the CRD's `openAPIV3Schema`, then the object.
/// The hub's order: prune, default, then validate the metadata and against the schema.
/// The raw object is validated too, before pruning cuts it down, and then stands for the
/// previous version of the object (which transition rules compare with).
pub fn schema(data: &[u8]) {
    let mut docs = values(data, 2).into_iter();
    let (schema, mut obj) = (docs.next().unwrap_or_default(), docs.next().unwrap_or_default());
    let raw = obj.clone();

    let parsed = StructuralSchema::parse(&schema, "spec.versions[0].schema.openAPIV3Schema").ok();
    if let Some(parsed) = &parsed {
        let _ = parsed.validate(&obj, None);
        let _ = parsed.prune(&mut obj);
        let again = parsed.prune(&mut obj);
        assert!(again.is_empty(), "pruning twice removed {again:?} the second time");
        parsed.apply_defaults(&mut obj);
    }
    for rule in [
        NameRule::Dns1123Subdomain,
        NameRule::Dns1123Label,
        NameRule::PathSegment,
    ] {
        for namespaced in [false, true] {
            let _ = validate_object_meta(&obj["metadata"], namespaced, rule);
        }
    }
    let Some(parsed) = parsed else {
        return;
    };
    let _ = parsed.validate(&obj, Some(&raw));

    // Every property path of the object, looked up in the schema.
    let mut paths = Vec::new();
    property_paths(&obj, &mut Vec::new(), &mut paths);
    for path in &paths {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        if let Some(node) = parsed.lookup(&path) {
            let _ = node.to_json();
        }
    }
}

fn property_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if out.len() >= 64 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(key.clone());
                out.push(prefix.clone());
                property_paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for item in items {
                property_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

/// The kinds a protobuf body may hold, for inputs that are not a whole body.
const PROTOBUF_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Pod"),
    ("v1", "Event"),
    ("v1", "DeleteOptions"),
    ("coordination.k8s.io/v1", "Lease"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
];

/// A protobuf request body. Input that does not start with the `k8s\0` magic is a first
/// byte choosing a kind and that object's own message, wrapped here into the envelope,
/// so that mutations of the object do not have to keep the envelope's lengths right.
pub fn protobuf(data: &[u8]) {
    let body = if data.starts_with(b"k8s\0") {
        data.to_vec()
    } else {
        let Some((&which, raw)) = data.split_first() else {
            return;
        };
        let (api_version, kind) = PROTOBUF_KINDS[usize::from(which) % PROTOBUF_KINDS.len()];
        envelope(api_version, kind, raw)
    };
    let Ok(object) = protobuf::decode(&body) else {
        return;
    };
    assert!(object.is_object(), "a decoded body is an object");
    // The hub writes the object as JSON: it must survive that unchanged.
    let text = serde_json::to_string(&object).expect("a decoded body serialises");
    let back: Value = serde_json::from_str(&text).expect("a decoded body reparses");
    assert_eq!(back, object, "a decoded body changes through JSON");
}

/// `k8s\0` + `runtime.Unknown{typeMeta: {apiVersion, kind}, raw}`.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, number: u8, bytes: &[u8]) {
        out.push(number << 3 | 2);
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
    }
    let mut type_meta = Vec::new();
    field(&mut type_meta, 1, api_version.as_bytes());
    field(&mut type_meta, 2, kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    field(&mut out, 1, &type_meta);
    field(&mut out, 2, raw);
    out
}

/// A request body: first byte choosing its media type (JSON, YAML, protobuf, an apply
/// patch, a JSON patch), then the body.
pub fn body(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => check_decoded(decode::decode_object(body, "application/json")),
        1 => check_decoded(decode::decode_object(body, "application/yaml")),
        2 => check_decoded(decode::decode_object(body, "application/vnd.kubernetes.protobuf")),
        3 => check_decoded(decode::decode_yaml(body)),
        _ => {
            if let Ok(value) = decode::decode_json(body) {
                assert!(
                    depth(&value) <= decode::MAX_DEPTH,
                    "a body deeper than the limit was accepted"
                );
            }
        }
    }
}

/// A decoded body is an object, no deeper than the limit, and survives JSON unchanged.
fn check_decoded(decoded: crate::status::ApiResult<Value>) {
    let Ok(value) = decoded else { return };
    assert!(value.is_object(), "a decoded body is an object: {value}");
    assert!(
        depth(&value) <= decode::MAX_DEPTH,
        "a body deeper than the limit was accepted"
    );
    let text = serde_json::to_vec(&value).expect("a decoded body serialises");
    let again: Value = serde_json::from_slice(&text).expect("and parses back");
    assert_eq!(again, value);
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// An object and a patch (JSON texts): applied as a JSON patch and as a JSON merge patch.
pub fn json_patch(data: &[u8]) {
    let mut docs = values(data, 2).into_iter();
    let (original, patch) = (docs.next().unwrap_or_default(), docs.next().unwrap_or_default());
    let mut patched = original.clone();
    if decode::apply_json_patch(&mut patched, &patch).is_ok() && patch.as_array().is_some_and(Vec::is_empty) {
        assert_eq!(patched, original, "an empty JSON patch changes nothing");
    }
    // Merge patches are idempotent.
    let mut once = original.clone();
    decode::apply_merge_patch(&mut once, &patch);
    let mut twice = once.clone();
    decode::apply_merge_patch(&mut twice, &patch);
    assert_eq!(once, twice, "merging {patch} twice differs from once");
}

/// `n` values from `data`: a stream of JSON texts if it holds `n` of them, else `n`
/// values decoded from the bytes by [`Bytes`].
fn values(data: &[u8], n: usize) -> Vec<Value> {
    let parsed: Result<Vec<Value>, _> = serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .take(n)
        .collect();
    match parsed {
        Ok(values) if values.len() == n => values,
        _ => {
            let mut bytes = Bytes(data);
            (0..n).map(|_| bytes.value(0)).collect()
        }
    }
}

/// Names that the code under test gives meaning to: Kubernetes fields, patch directives,
/// schema keywords, formats. Decoded strings are mostly drawn from here, since random
/// bytes would almost never spell one.
const WORDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "generation",
    "creationTimestamp",
    "spec",
    "status",
    "conditions",
    "type",
    "containers",
    "ports",
    "containerPort",
    "env",
    "tags",
    "items",
    "strategy",
    "secrets",
    "$patch",
    "replace",
    "delete",
    "merge",
    "$retainKeys",
    "$setElementOrder/finalizers",
    "$setElementOrder/containers",
    "$setElementOrder/tags",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/tags",
    "$ref",
    "properties",
    "additionalProperties",
    "object",
    "array",
    "string",
    "integer",
    "number",
    "boolean",
    "nullable",
    "default",
    "enum",
    "required",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "description",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "atomic",
    "set",
    "map",
    "granular",
    "date-time",
    "date",
    "duration",
    "byte",
    "int32",
    "int64",
    "uuid",
    "email",
    "hostname",
    "ipv4",
    "cidr",
    "mac",
    "^[a-z]+$",
    "",
    "a",
    "b",
    "-",
    "app.kubernetes.io/name",
    "2023-11-14T20:00:00Z",
    "25%",
];

/// A decoder of arbitrary bytes into JSON values: every byte string is some value, and
/// similar bytes give similar values, which is what coverage-guided mutation needs.
/// Missing bytes read as zero, so decoding never fails.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn value(&mut self, depth: usize) -> Value {
        let tag = self.byte();
        let kinds = if depth >= MAX_DEPTH { 6 } else { 8 };
        match tag % kinds {
            0 => Value::Null,
            1 => Value::Bool(tag & 0x80 != 0),
            2 => Value::from(i64::from(self.byte() as i8)),
            3 => {
                let mut b = [0; 8];
                let got = self.take(8);
                b[..got.len()].copy_from_slice(got);
                Value::from(i64::from_le_bytes(b))
            }
            4 => {
                let mut b = [0; 8];
                let got = self.take(8);
                b[..got.len()].copy_from_slice(got);
                // Non-finite floats have no JSON form; serde_json turns them into null.
                Value::from(f64::from_le_bytes(b))
            }
            5 => Value::String(self.string()),
            6 => {
                let len = usize::from(self.byte() % 6);
                Value::Array((0..len).map(|_| self.value(depth + 1)).collect())
            }
            _ => {
                let len = usize::from(self.byte() % 6);
                let mut map = Map::new();
                for _ in 0..len {
                    let key = self.string();
                    map.insert(key, self.value(depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    fn string(&mut self) -> String {
        let tag = self.byte();
        if tag < 0xc0 {
            return WORDS[usize::from(tag) % WORDS.len()].to_string();
        }
        let len = usize::from(tag - 0xc0);
        String::from_utf8_lossy(self.take(len)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_decode_to_values_of_bounded_depth() {
        fn depth(v: &Value) -> usize {
            match v {
                Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
                Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        // Every byte asks for an object of five members: the deepest possible value.
        let deep = Bytes(&[0x07; 4096]).value(0);
        assert_eq!(depth(&deep), MAX_DEPTH);
        assert_eq!(Bytes(&[]).value(0), Value::Null);
    }

    #[test]
    fn json_inputs_are_read_as_json() {
        let docs = values(br#"{"a": 1} [true]"#, 2);
        assert_eq!(docs, vec![serde_json::json!({"a": 1}), serde_json::json!([true])]);
        // One JSON text where two are wanted: the bytes are decoded instead.
        assert_eq!(values(br#"{"a": 1}"#, 2).len(), 2);
    }

    #[test]
    fn envelopes_decode() {
        let body = envelope("v1", "ConfigMap", b"");
        let object = protobuf::decode(&body).expect("an empty ConfigMap decodes");
        assert_eq!(object, serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}));
        // Lengths of 128 bytes and more take two varint bytes.
        let long = "x".repeat(200);
        let mut name = vec![0x0a, 200, 1];
        name.extend_from_slice(long.as_bytes());
        let mut meta = vec![0x0a, 203, 1];
        meta.extend_from_slice(&name);
        let object = protobuf::decode(&envelope("v1", "ConfigMap", &meta)).expect("a named ConfigMap decodes");
        assert_eq!(object["metadata"]["name"], long);
    }
}
