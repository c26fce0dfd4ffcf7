//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`).
//!
//! Stock kubectl (1.32 and later) and client-go's typed clients send built-in kinds in the
//! Kubernetes protobuf encoding: the magic `k8s\0`, then a `runtime.Unknown` envelope whose
//! `raw` is the object's own protobuf message. The rest of the server works on JSON, so this
//! module turns such a body into the JSON object the same client would have sent as JSON.
//!
//! The schemas are Kubernetes' own `generated.proto` files, vendored under `hub-api/proto/`
//! and compiled by `build.rs` (protox, pure Rust) into a descriptor set that is embedded here.
//! Decoding is by reflection over those descriptors (prost-reflect), so no per-kind field map
//! is kept by hand. go-to-protobuf already names proto fields after their JSON names; what the
//! descriptors cannot say is kept in the few tables below, all taken from the Go types'
//! `json`/`protobuf` struct tags and custom `MarshalJSON` methods:
//!
//! - types with a JSON form of their own ([`special`]): `metav1.Time`/`MicroTime` (RFC 3339),
//!   `Duration` (Go duration string), `IntOrString`, `Quantity`, `RawExtension`/`FieldsV1`/
//!   apiextensions `JSON` (embedded JSON), slice wrappers such as `ExtraValue`, and the
//!   `JSONSchemaPropsOr*` unions;
//! - fields whose JSON name differs from the proto name ([`json_name`]): `$ref`, `$schema`,
//!   `x-kubernetes-*`, `uid` of `BoundObjectReference`;
//! - embedded Go structs that JSON inlines into their parent ([`INLINE`]).
//!
//! Field presence: Go always writes non-pointer fields, even empty ones, and writes pointer
//! fields only when set, so the wire cannot tell an empty string from an unset one. Empty
//! singular strings and bytes are therefore left out (as Go's `omitempty` would), except for
//! the few pointer fields where `""` means something ([`KEEP_EMPTY`]); numbers and booleans are
//! kept whenever they are on the wire (`gracePeriodSeconds: 0` and `automountServiceAccountToken:
//! false` matter). Items of lists and values of maps are always kept. A zero `metav1.Time`
//! (sent as an empty message) is left out.

use std::sync::LazyLock;

use base64::Engine as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value as Pb};
use serde_json::{Map, Number, Value};

/// The four bytes in front of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Deepest nesting accepted in the decoded object, as for JSON bodies.
const MAX_DEPTH: usize = 100;

/// `FileDescriptorSet` of everything under `hub-api/proto/`, compiled by `build.rs`.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s_descriptors.bin"));

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(DESCRIPTORS).map_err(|e| format!("the built-in protobuf descriptors are invalid: {e}"))
});

const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
const CORE_V1: &str = "k8s.io.api.core.v1";
const APIEXTENSIONS_V1: &str = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1";

/// The group versions whose schemas are vendored: `apiVersion` → proto package.
const GROUP_VERSIONS: &[(&str, &str)] = &[
    ("v1", CORE_V1),
    ("coordination.k8s.io/v1", "k8s.io.api.coordination.v1"),
    ("rbac.authorization.k8s.io/v1", "k8s.io.api.rbac.v1"),
    ("authentication.k8s.io/v1", "k8s.io.api.authentication.v1"),
    ("authorization.k8s.io/v1", "k8s.io.api.authorization.v1"),
    ("events.k8s.io/v1", "k8s.io.api.events.v1"),
    ("apiextensions.k8s.io/v1", APIEXTENSIONS_V1),
    ("meta.k8s.io/v1", META_V1),
];

/// Embedded Go structs tagged `json:",inline"`: their fields belong to the parent in JSON.
/// (message, field), from the `json:",inline" protobuf:"…"` tags of k8s.io/api.
const INLINE: &[(&str, &str)] = &[
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    ("k8s.io.api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"),
    ("k8s.io.api.core.v1.Probe", "handler"),
    ("k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("k8s.io.api.core.v1.SecretProjection", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapProjection", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretKeySelector", "localObjectReference"),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", "localObjectReference"),
    ("k8s.io.api.core.v1.SecretEnvSource", "localObjectReference"),
];

/// `*string` fields where an explicit `""` differs from unset (`storageClassName: ""` turns
/// dynamic provisioning off), so an empty value on the wire is kept.
const KEEP_EMPTY: &[(&str, &str)] = &[
    ("k8s.io.api.core.v1.PersistentVolumeClaimSpec", "storageClassName"),
    (
        "k8s.io.api.core.v1.PersistentVolumeClaimSpec",
        "volumeAttributesClassName",
    ),
];

/// Decodes a Kubernetes protobuf body: the 4-byte magic `k8s\0`, then a `runtime.Unknown`
/// message (typeMeta{apiVersion, kind}, raw bytes, contentEncoding, contentType) whose `raw` is
/// the protobuf encoding of the object. Returns the object as Kubernetes JSON (the same shape
/// `kubectl create -f x.json` would send: camelCase field names, RFC 3339 strings for
/// metav1.Time/MicroTime, base64 strings for bytes, int-or-string and Quantity as their JSON
/// forms, maps as objects, omitting unset optional fields), with apiVersion and kind filled
/// from typeMeta.
///
/// Errors (as text for a 4xx answer) on a body without the magic, a malformed message, a
/// content encoding, or a kind whose schema is not built in (the caller answers 415).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let pool = POOL.as_ref().map_err(Clone::clone)?;
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body is not in the Kubernetes protobuf encoding: it does not start with \"k8s\\x00\"")?;
    let unknown = DynamicMessage::decode(message_type(pool, "k8s.io.apimachinery.pkg.runtime.Unknown")?, envelope)
        .map_err(|e| format!("malformed protobuf envelope (runtime.Unknown): {e}"))?;
    let type_meta = match unknown.get_field_by_name("typeMeta").as_deref() {
        Some(Pb::Message(m)) => m.clone(),
        _ => return Err("the protobuf envelope has no typeMeta".into()),
    };
    let api_version = string_field(&type_meta, "apiVersion");
    let kind = string_field(&type_meta, "kind");
    if api_version.is_empty() || kind.is_empty() {
        return Err("the protobuf envelope does not name the object's apiVersion and kind".into());
    }
    let encoding = string_field(&unknown, "contentEncoding");
    if !encoding.is_empty() {
        return Err(format!("unsupported protobuf content encoding {encoding:?}"));
    }
    let content_type = string_field(&unknown, "contentType");
    if !content_type.is_empty() && content_type != "application/vnd.kubernetes.protobuf" {
        return Err(format!(
            "unsupported content type {content_type:?} inside the protobuf envelope"
        ));
    }
    let desc = kind_message(pool, &api_version, &kind)?;
    let raw = bytes_field(&unknown, "raw");
    let object = DynamicMessage::decode(desc, raw.as_slice())
        .map_err(|e| format!("malformed protobuf {api_version} {kind}: {e}"))?;

    let mut out = Map::new();
    out.insert("apiVersion".into(), api_version.into());
    out.insert("kind".into(), kind.into());
    fields_into(&object, &mut out)?;
    let out = Value::Object(out);
    if depth(&out) > MAX_DEPTH {
        return Err(format!("the object is nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(out)
}

fn message_type(pool: &DescriptorPool, name: &str) -> Result<MessageDescriptor, String> {
    pool.get_message_by_name(name)
        .ok_or_else(|| format!("the built-in protobuf descriptors lack {name}"))
}

/// The message of a top-level kind: one of the vendored group versions, with `metadata`
/// (so `PodSpec` is not a kind), or `DeleteOptions`, which every group version accepts.
fn kind_message(pool: &DescriptorPool, api_version: &str, kind: &str) -> Result<MessageDescriptor, String> {
    if kind == "DeleteOptions" {
        return message_type(pool, &format!("{META_V1}.DeleteOptions"));
    }
    GROUP_VERSIONS
        .iter()
        .find(|(gv, _)| *gv == api_version)
        .and_then(|(_, package)| pool.get_message_by_name(&format!("{package}.{kind}")))
        .filter(|desc| desc.get_field_by_name("metadata").is_some())
        .ok_or_else(|| {
            format!("no protobuf schema is built in for {kind} in {api_version}; send it as application/json instead")
        })
}

fn string_field(msg: &DynamicMessage, name: &str) -> String {
    match msg.get_field_by_name(name).as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn bytes_field(msg: &DynamicMessage, name: &str) -> Vec<u8> {
    match msg.get_field_by_name(name).as_deref() {
        Some(Pb::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

fn repeated_field<'a>(msg: &'a DynamicMessage, name: &str) -> &'a [Pb] {
    msg.fields()
        .find(|(field, _)| field.name() == name)
        .and_then(|(_, value)| value.as_list())
        .unwrap_or_default()
}

/// Writes the JSON form of every field set in `msg` into `out`.
fn fields_into(msg: &DynamicMessage, out: &mut Map<String, Value>) -> Result<(), String> {
    let desc = msg.descriptor();
    let message_name = desc.full_name();
    for (field, value) in msg.fields() {
        let entry = (message_name, field.name());
        if INLINE.contains(&entry) {
            if let Pb::Message(inner) = value {
                fields_into(inner, out)?;
            }
            continue;
        }
        let converted = match value {
            Pb::List(items) if items.is_empty() => None,
            Pb::List(items) => Some(Value::Array(items.iter().map(item).collect::<Result<_, _>>()?)),
            Pb::Map(entries) if entries.is_empty() => None,
            Pb::Map(entries) => {
                let mut map = Map::new();
                for (key, value) in entries {
                    map.insert(map_key(key), item(value)?);
                }
                Some(Value::Object(map))
            }
            single => scalar(single, KEEP_EMPTY.contains(&entry))?,
        };
        if let Some(converted) = converted {
            out.insert(json_name(message_name, field.name()), converted);
        }
    }
    Ok(())
}

/// A list item or map value: always there, `null` where Go would write null.
fn item(value: &Pb) -> Result<Value, String> {
    Ok(scalar(value, true)?.unwrap_or(Value::Null))
}

/// The JSON form of a non-repeated value, `None` to leave the field out.
fn scalar(value: &Pb, keep_empty: bool) -> Result<Option<Value>, String> {
    Ok(match value {
        Pb::Bool(b) => Some(Value::Bool(*b)),
        Pb::I32(n) => Some((*n).into()),
        Pb::I64(n) => Some((*n).into()),
        Pb::U32(n) => Some((*n).into()),
        Pb::U64(n) => Some((*n).into()),
        Pb::F32(n) => Some(float(f64::from(*n))?),
        Pb::F64(n) => Some(float(*n)?),
        Pb::EnumNumber(n) => Some((*n).into()),
        Pb::String(s) if s.is_empty() && !keep_empty => None,
        Pb::String(s) => Some(Value::String(s.clone())),
        Pb::Bytes(b) if b.is_empty() && !keep_empty => None,
        Pb::Bytes(b) => Some(Value::String(base64::engine::general_purpose::STANDARD.encode(b))),
        Pb::Message(m) => message(m)?,
        Pb::List(_) | Pb::Map(_) => return Err("nested repeated protobuf value".into()),
    })
}

/// Go writes whole floats without a fraction (`10`, not `10.0`).
fn float(n: f64) -> Result<Value, String> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        return Ok(Value::from(n as i64));
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or_else(|| format!("{n} has no JSON form"))
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

/// A message's JSON form: its own for the types in [`special`], else an object of its fields.
fn message(msg: &DynamicMessage) -> Result<Option<Value>, String> {
    if let Some(value) = special(msg)? {
        return Ok(value);
    }
    let mut out = Map::new();
    fields_into(msg, &mut out)?;
    Ok(Some(Value::Object(out)))
}

/// Types whose Go `MarshalJSON` (or slice-wrapping by go-to-protobuf) gives them a JSON form
/// other than an object of their fields. `Some(None)` leaves the field out.
fn special(msg: &DynamicMessage) -> Result<Option<Option<Value>>, String> {
    let desc = msg.descriptor();
    let name = desc.full_name();
    let (package, short) = name.rsplit_once('.').unwrap_or(("", name));
    let value = match (package, short) {
        (META_V1, "Time") => time(msg, false)?,
        (META_V1, "MicroTime") => time(msg, true)?,
        (META_V1, "Duration") => {
            let nanos = msg.get_field_by_name("duration").and_then(|v| v.as_i64()).unwrap_or(0);
            Some(Value::String(go_duration(nanos)))
        }
        (META_V1, "FieldsV1") | ("k8s.io.apimachinery.pkg.runtime", "RawExtension") | (APIEXTENSIONS_V1, "JSON") => {
            embedded_json(msg, short)?
        }
        (META_V1, "Verbs") | ("k8s.io.api.authentication.v1" | "k8s.io.api.authorization.v1", "ExtraValue") => {
            Some(Value::Array(
                repeated_field(msg, "items")
                    .iter()
                    .map(item)
                    .collect::<Result<_, _>>()?,
            ))
        }
        ("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") => {
            // type 0 is Int, 1 is String.
            if msg.get_field_by_name("type").and_then(|v| v.as_i64()) == Some(1) {
                Some(Value::String(string_field(msg, "strVal")))
            } else {
                Some(
                    msg.get_field_by_name("intVal")
                        .and_then(|v| v.as_i32())
                        .unwrap_or(0)
                        .into(),
                )
            }
        }
        ("k8s.io.apimachinery.pkg.api.resource", "Quantity" | "QuantityValue") => {
            let s = string_field(msg, "string");
            Some(Value::String(if s.is_empty() { "0".into() } else { s }))
        }
        (APIEXTENSIONS_V1, "JSONSchemaPropsOrArray") => {
            let many = repeated_field(msg, "jSONSchemas");
            if !many.is_empty() {
                Some(Value::Array(many.iter().map(item).collect::<Result<_, _>>()?))
            } else {
                sub_message(msg, "schema")?
            }
        }
        (APIEXTENSIONS_V1, "JSONSchemaPropsOrBool") => {
            if msg.has_field_by_name("schema") {
                sub_message(msg, "schema")?
            } else {
                Some(Value::Bool(
                    msg.get_field_by_name("allows")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                ))
            }
        }
        (APIEXTENSIONS_V1, "JSONSchemaPropsOrStringArray") => {
            let property = repeated_field(msg, "property");
            if !property.is_empty() {
                Some(Value::Array(property.iter().map(item).collect::<Result<_, _>>()?))
            } else {
                sub_message(msg, "schema")?
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

fn sub_message(msg: &DynamicMessage, name: &str) -> Result<Option<Value>, String> {
    if !msg.has_field_by_name(name) {
        return Ok(None);
    }
    match msg.get_field_by_name(name).as_deref() {
        Some(Pb::Message(m)) => message(m),
        _ => Ok(None),
    }
}

/// `metav1.Time` (RFC 3339, whole seconds) or `MicroTime` (six fractional digits), always in
/// UTC as Go writes them. An empty message is Go's zero time, which is left out.
fn time(msg: &DynamicMessage, micro: bool) -> Result<Option<Value>, String> {
    if !msg.has_field_by_name("seconds") && !msg.has_field_by_name("nanos") {
        return Ok(None);
    }
    let seconds = msg.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
    let nanos = msg.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(format!("invalid timestamp: nanos {nanos} out of range"));
    }
    let ts = jiff::Timestamp::new(seconds, 0).map_err(|e| format!("invalid timestamp {seconds}: {e}"))?;
    let whole = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(Value::String(if micro {
        format!("{whole}.{:06}Z", nanos / 1000)
    } else {
        format!("{whole}Z")
    })))
}

/// The raw bytes (field 1: `raw`, or `Raw` in `FieldsV1`) of `RawExtension`, `FieldsV1` and
/// apiextensions `JSON`, which hold JSON.
fn embedded_json(msg: &DynamicMessage, type_name: &str) -> Result<Option<Value>, String> {
    let raw = match msg.get_field_by_number(1).as_deref() {
        Some(Pb::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    if raw.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| format!("the {type_name} in the protobuf body does not hold JSON: {e}"))
}

/// A field's JSON name. go-to-protobuf names fields after their JSON names, except where the
/// JSON name is not a valid proto identifier or the Go field is named differently.
fn json_name(message: &str, field: &str) -> String {
    if let Some(rest) = field.strip_prefix("xKubernetes") {
        // x-kubernetes-preserve-unknown-fields and friends of JSONSchemaProps.
        let mut out = String::from("x-kubernetes");
        for c in rest.chars() {
            if c.is_ascii_uppercase() {
                out.push('-');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        return out;
    }
    match (message, field) {
        ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps", "ref") => "$ref".into(),
        ("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps", "schema") => "$schema".into(),
        ("k8s.io.api.authentication.v1.BoundObjectReference", "uID") => "uid".into(),
        _ => field.into(),
    }
}

/// Go's `time.Duration.String`: `1h0m0s`, `1.5s`, `300ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    fn fraction(value: u64, scale: u64, digits: usize) -> String {
        let (whole, rest) = (value / scale, value % scale);
        if rest == 0 {
            return whole.to_string();
        }
        let rest = format!("{rest:0digits$}");
        format!("{whole}.{}", rest.trim_end_matches('0'))
    }
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let body = if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", fraction(n, 1_000, 3))
    } else if n < 1_000_000_000 {
        format!("{}ms", fraction(n, 1_000_000, 6))
    } else {
        let seconds = n / 1_000_000_000;
        let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
        let secs = fraction(n % 60_000_000_000, 1_000_000_000, 9);
        if hours > 0 {
            format!("{hours}h{minutes}m{secs}s")
        } else if minutes > 0 {
            format!("{minutes}m{secs}s")
        } else {
            format!("{secs}s")
        }
    };
    format!("{sign}{body}")
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (command, body kubectl 1.33 sent as protobuf, body kubectl 1.31 sent as JSON for the
    /// same command), captured from the stock binaries against a loopback recorder.
    const KUBECTL: &[(&str, &str, &str)] = &[
        (
            "kubectl create namespace ns1",
            "6b3873000a0f0a02763112094e616d657370616365121b0a130a036e733112001a0022002a0032003800420012001a020a001a002200",
            r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"ns1","creationTimestamp":null},"spec":{},"status":{}}"#,
        ),
        (
            "kubectl create configmap cm1 --from-literal=a=b --from-literal=key2=value2",
            "6b3873000a0f0a0276311209436f6e6669674d6170122d0a130a03636d3112001a0022002a0032003800420012060a0161120162120e0a046b657932120676616c7565321a002200",
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm1","creationTimestamp":null},"data":{"a":"b","key2":"value2"}}"#,
        ),
        (
            "kubectl create configmap cm2 --from-file=bin.dat --from-literal=greeting=héllo",
            "6b3873000a0f0a0276311209436f6e6669674d617012400a130a03636d3212001a0022002a0032003800420012120a086772656574696e67120668c3a96c6c6f1a150a0762696e2e646174120a0001fffe62696e6172791a002200",
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm2","creationTimestamp":null},"data":{"greeting":"héllo"},"binaryData":{"bin.dat":"AAH//mJpbmFyeQ=="}}"#,
        ),
        (
            "kubectl create secret generic s1 --from-literal=password=s3cr3t --from-literal=user=admin",
            "6b3873000a0c0a027631120653656372657412390a120a02733112001a0022002a0032003800420012120a0870617373776f72641206733363723374120d0a0475736572120561646d696e1a001a002200",
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s1","creationTimestamp":null},"data":{"password":"czNjcjN0","user":"YWRtaW4="}}"#,
        ),
        (
            "kubectl create secret docker-registry reg1 --docker-server=r.example --docker-username=u --docker-password=p",
            "6b3873000a0c0a02763112065365637265741292010a140a047265673112001a0022002a00320038004200125a0a112e646f636b6572636f6e6669676a736f6e12457b226175746873223a7b22722e6578616d706c65223a7b22757365726e616d65223a2275222c2270617373776f7264223a2270222c2261757468223a2264547077227d7d7d1a1e6b756265726e657465732e696f2f646f636b6572636f6e6669676a736f6e1a002200",
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"reg1","creationTimestamp":null},"data":{".dockerconfigjson":"eyJhdXRocyI6eyJyLmV4YW1wbGUiOnsidXNlcm5hbWUiOiJ1IiwicGFzc3dvcmQiOiJwIiwiYXV0aCI6ImRUcHcifX19"},"type":"kubernetes.io/dockerconfigjson"}"#,
        ),
        (
            "kubectl create token sa1 --duration=1h --audience=api --audience=vault",
            "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e5265717565737412290a100a0012001a0022002a00320038004200120f0a036170690a057661756c7420901c1a040a0012001a002200",
            r#"{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":["api","vault"],"expirationSeconds":3600,"boundObjectRef":null},"status":{"token":"","expirationTimestamp":null}}"#,
        ),
        (
            "kubectl create token sa1 --bound-object-kind=Pod --bound-object-name=p1 --bound-object-uid=…",
            "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e52657175657374124f0a100a0012001a0022002a0032003800420012351a330a03506f64120276311a027031222430623166336336612d303030302d343030302d383030302d3030303030303030303030311a040a0012001a002200",
            r#"{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":null,"expirationSeconds":null,"boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":"p1","uid":"0b1f3c6a-0000-4000-8000-000000000001"}},"status":{"token":"","expirationTimestamp":null}}"#,
        ),
        (
            "kubectl auth can-i get pods",
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373526576696577123c0a100a0012001a0022002a00320038004200121e0a1c0a0764656661756c7412036765741a0022002a04706f647332003a001a08080012001a0020001a002200",
            r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":"default","verb":"get","resource":"pods"}},"status":{"allowed":false}}"#,
        ),
        (
            "kubectl auth can-i create deployments.apps --subresource=scale -n kube-system",
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a65637441636365737352657669657712530a100a0012001a0022002a0032003800420012350a330a0b6b7562652d73797374656d12066372656174651a046170707322002a0b6465706c6f796d656e747332057363616c653a001a08080012001a0020001a002200",
            r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":"kube-system","verb":"create","group":"apps","resource":"deployments","subresource":"scale"}},"status":{"allowed":false}}"#,
        ),
        (
            "kubectl auth can-i get /healthz",
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373526576696577122f0a100a0012001a0022002a003200380042001211120f0a082f6865616c74687a12036765741a08080012001a0020001a002200",
            r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"nonResourceAttributes":{"path":"/healthz","verb":"get"}},"status":{"allowed":false}}"#,
        ),
        (
            "kubectl auth can-i --list",
            "6b3873000a310a17617574686f72697a6174696f6e2e6b38732e696f2f7631121653656c665375626a65637452756c657352657669657712230a100a0012001a0022002a0032003800420012090a0764656661756c741a04180022001a002200",
            r#"{"kind":"SelfSubjectRulesReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"namespace":"default"},"status":{"resourceRules":null,"nonResourceRules":null,"incomplete":false}}"#,
        ),
        (
            "kubectl auth whoami",
            "6b3873000a2d0a1861757468656e7469636174696f6e2e6b38732e696f2f7631121153656c665375626a656374526576696577121a0a100a0012001a0022002a0032003800420012060a040a0012001a002200",
            r#"{"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"status":{"userInfo":{}}}"#,
        ),
        (
            "kubectl create serviceaccount sa1",
            "6b3873000a140a027631120e536572766963654163636f756e7412150a130a0373613112001a0022002a003200380042001a002200",
            r#"{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"sa1","creationTimestamp":null}}"#,
        ),
        (
            "kubectl create role r1 --verb=get,list --resource=pods,configmaps --resource-name=x",
            "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c6512380a120a02723112001a0022002a0032003800420012220a036765740a046c69737412001a04706f64731a0a636f6e6669676d6170732201781a002200",
            r#"{"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"r1","creationTimestamp":null},"rules":[{"verbs":["get","list"],"apiGroups":[""],"resources":["pods","configmaps"],"resourceNames":["x"]}]}"#,
        ),
        (
            "kubectl create rolebinding rb1 --role=r1 --user=alice --serviceaccount=default:sa1 --group=devs",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c6542696e64696e6712b6010a130a0372623112001a0022002a00320038004200122a0a04557365721219726261632e617574686f72697a6174696f6e2e6b38732e696f1a05616c6963652200122a0a0547726f75701219726261632e617574686f72697a6174696f6e2e6b38732e696f1a0464657673220012200a0e536572766963654163636f756e7412001a03736131220764656661756c741a250a19726261632e617574686f72697a6174696f6e2e6b38732e696f1204526f6c651a0272311a002200",
            r#"{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"rb1","creationTimestamp":null},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"},{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"devs"},{"kind":"ServiceAccount","name":"sa1","namespace":"default"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r1"}}"#,
        ),
        (
            "kubectl create clusterrole cr1 --verb=get --non-resource-url='/logs/*'",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c6512250a130a0363723112001a0022002a00320038004200120e0a036765742a072f6c6f67732f2a1a002200",
            r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"cr1","creationTimestamp":null},"rules":[{"verbs":["get"],"nonResourceURLs":["/logs/*"]}]}"#,
        ),
        (
            "kubectl create clusterrole cr2 --aggregation-rule=rbac.example.com/aggregate-to-monitoring=true",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c65124b0a130a0363723212001a0022002a003200380042001a340a320a300a28726261632e6578616d706c652e636f6d2f6167677265676174652d746f2d6d6f6e69746f72696e671204747275651a002200",
            r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"cr2","creationTimestamp":null},"rules":null,"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"rbac.example.com/aggregate-to-monitoring":"true"}}]}}"#,
        ),
        (
            "kubectl create clusterrolebinding crb1 --clusterrole=cr1 --user=bob",
            "6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c7573746572526f6c6542696e64696e67126f0a140a046372623112001a0022002a0032003800420012280a04557365721219726261632e617574686f72697a6174696f6e2e6b38732e696f1a03626f6222001a2d0a19726261632e617574686f72697a6174696f6e2e6b38732e696f120b436c7573746572526f6c651a036372311a002200",
            r#"{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"crb1","creationTimestamp":null},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"bob"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cr1"}}"#,
        ),
    ];

    fn unhex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Drops what Go writes for an unset field of a non-pointer type and this decoder leaves out
    /// or keeps as it found it (`null`, `""`, `false`, `0`), so both encodings compare equal.
    fn without_zero_values(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| {
                        !matches!(v, Value::Null | Value::Bool(false)) && **v != json!("") && **v != json!(0)
                    })
                    .map(|(k, v)| (k.clone(), without_zero_values(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(without_zero_values).collect()),
            other => other.clone(),
        }
    }

    /// A protobuf message written by hand from the wire format, independently of the decoder's
    /// descriptors: field numbers come from the Go types' `protobuf:"…"` tags.
    #[derive(Default, Clone)]
    struct W(Vec<u8>);

    impl W {
        fn new() -> Self {
            Self::default()
        }

        fn key(&mut self, field: u32, wire_type: u8) {
            self.put_varint(u64::from(field) << 3 | u64::from(wire_type));
        }

        fn put_varint(&mut self, mut value: u64) {
            while value >= 0x80 {
                self.0.push((value as u8) | 0x80);
                value >>= 7;
            }
            self.0.push(value as u8);
        }

        fn int(mut self, field: u32, value: i64) -> Self {
            self.key(field, 0);
            self.put_varint(value as u64);
            self
        }

        fn bool(self, field: u32, value: bool) -> Self {
            self.int(field, i64::from(value))
        }

        fn double(mut self, field: u32, value: f64) -> Self {
            self.key(field, 1);
            self.0.extend_from_slice(&value.to_le_bytes());
            self
        }

        fn bytes(mut self, field: u32, value: &[u8]) -> Self {
            self.key(field, 2);
            self.put_varint(value.len() as u64);
            self.0.extend_from_slice(value);
            self
        }

        fn str(self, field: u32, value: &str) -> Self {
            self.bytes(field, value.as_bytes())
        }

        fn msg(self, field: u32, value: W) -> Self {
            self.bytes(field, &value.0)
        }

        /// An entry of a `map<string, string>`.
        fn entry(self, field: u32, key: &str, value: &str) -> Self {
            self.msg(field, W::new().str(1, key).str(2, value))
        }

        /// An entry of a map whose values are messages (or bytes).
        fn entry_msg(self, field: u32, key: &str, value: W) -> Self {
            self.msg(field, W::new().str(1, key).msg(2, value))
        }
    }

    /// `k8s\0` + runtime.Unknown{typeMeta{apiVersion=1, kind=2}=1, raw=2}.
    fn body(api_version: &str, kind: &str, object: W) -> Vec<u8> {
        let unknown = W::new()
            .msg(1, W::new().str(1, api_version).str(2, kind))
            .msg(2, object);
        [MAGIC, &unknown.0].concat()
    }

    /// ObjectMeta as Go writes it: every non-pointer field, empty or not.
    fn meta(name: &str, namespace: &str) -> W {
        W::new()
            .str(1, name)
            .str(2, "")
            .str(3, namespace)
            .str(4, "")
            .str(5, "")
            .str(6, "")
            .int(7, 0)
            .msg(8, W::new())
    }

    /// metav1.Time / MicroTime {seconds=1, nanos=2}.
    fn time(seconds: i64, nanos: i64) -> W {
        W::new().int(1, seconds).int(2, nanos)
    }

    fn ok(api_version: &str, kind: &str, object: W) -> Value {
        decode(&body(api_version, kind, object)).unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"))
    }

    #[test]
    fn kubectl_protobuf_bodies_decode_to_what_kubectl_sends_as_json() {
        for (command, proto, json) in KUBECTL {
            let decoded = decode(&unhex(proto)).unwrap_or_else(|e| panic!("{command}: {e}"));
            let sent: Value = serde_json::from_str(json).unwrap();
            assert_eq!(without_zero_values(&decoded), without_zero_values(&sent), "{command}");
        }
    }

    #[test]
    fn kubectl_namespace_and_configmap_exactly() {
        let namespace = decode(&unhex(KUBECTL[0].1)).unwrap();
        assert_eq!(
            namespace,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "ns1", "generation": 0},
                "spec": {},
                "status": {},
            })
        );
        let configmap = decode(&unhex(KUBECTL[2].1)).unwrap();
        assert_eq!(
            configmap,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm2", "generation": 0},
                "data": {"greeting": "héllo"},
                "binaryData": {"bin.dat": "AAH//mJpbmFyeQ=="},
            })
        );
        // kubectl 1.32, the first to send protobuf: create configmap v32 --from-literal=x=y.
        let v132 = "6b3873000a0f0a0276311209436f6e6669674d6170121d0a130a0376333212001a0022002a0032003800420012060a01781201791a002200";
        assert_eq!(
            decode(&unhex(v132)).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "v32", "generation": 0},
                "data": {"x": "y"},
            })
        );
    }

    #[test]
    fn kubectl_review_bodies_exactly() {
        let ssar = decode(&unhex(KUBECTL[7].1)).unwrap();
        assert_eq!(
            ssar,
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {"generation": 0},
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
                "status": {"allowed": false, "denied": false},
            })
        );
        let whoami = decode(&unhex(KUBECTL[11].1)).unwrap();
        assert_eq!(
            whoami,
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "SelfSubjectReview",
                "metadata": {"generation": 0},
                "status": {"userInfo": {}},
            })
        );
        let token = decode(&unhex(KUBECTL[6].1)).unwrap();
        assert_eq!(
            token["spec"],
            json!({"boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": "p1",
                "uid": "0b1f3c6a-0000-4000-8000-000000000001",
            }})
        );
    }

    #[test]
    fn hand_built_configmap() {
        let object = W::new()
            .msg(
                1,
                meta("settings", "team-a")
                    .msg(8, time(1_700_000_000, 123_456_789))
                    .entry(11, "app", "web")
                    .entry(12, "note", ""),
            )
            .entry(2, "empty", "")
            .entry(2, "k", "v")
            .msg(3, W::new().str(1, "blob").bytes(2, b"\x00\xff"))
            .bool(4, false);
        assert_eq!(
            ok("v1", "ConfigMap", object),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "settings",
                    "namespace": "team-a",
                    "generation": 0,
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "labels": {"app": "web"},
                    "annotations": {"note": ""},
                },
                "data": {"empty": "", "k": "v"},
                "binaryData": {"blob": "AP8="},
                "immutable": false,
            })
        );
    }

    #[test]
    fn hand_built_namespace() {
        let object = W::new()
            .msg(
                1,
                W::new().str(1, "prod").str(14, "example.com/cleanup").str(14, "other"),
            )
            .msg(2, W::new().str(1, "kubernetes"))
            .msg(3, W::new().str(1, "Active"));
        assert_eq!(
            ok("v1", "Namespace", object),
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "prod", "finalizers": ["example.com/cleanup", "other"]},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            })
        );
    }

    #[test]
    fn secret_and_service_account() {
        let secret = W::new()
            .msg(1, meta("creds", ""))
            .msg(2, W::new().str(1, "empty").bytes(2, b""))
            .msg(2, W::new().str(1, "token").bytes(2, b"abc"))
            .entry(4, "plain", "text")
            .str(3, "Opaque")
            .bool(5, true);
        assert_eq!(
            ok("v1", "Secret", secret),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds", "generation": 0},
                "data": {"empty": "", "token": "YWJj"},
                "stringData": {"plain": "text"},
                "type": "Opaque",
                "immutable": true,
            })
        );
        let account = W::new()
            .msg(1, meta("builder", "ci"))
            .msg(2, W::new().str(1, "Secret").str(3, "builder-token"))
            .msg(3, W::new().str(1, "registry"))
            .bool(4, false);
        assert_eq!(
            ok("v1", "ServiceAccount", account),
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "builder", "namespace": "ci", "generation": 0},
                "secrets": [{"kind": "Secret", "name": "builder-token"}],
                "imagePullSecrets": [{"name": "registry"}],
                "automountServiceAccountToken": false,
            })
        );
    }

    #[test]
    fn event_times_and_micro_times() {
        let object = W::new()
            .msg(1, meta("web.17a", "default"))
            .msg(
                2,
                W::new()
                    .str(1, "Pod")
                    .str(2, "default")
                    .str(3, "web")
                    .str(4, "u-1")
                    .str(5, "v1"),
            )
            .str(3, "Started")
            .str(4, "Started container")
            .msg(5, W::new().str(1, "kubelet").str(2, "node-1"))
            .msg(6, time(0, 0))
            .msg(7, time(1_700_000_000, 999_999_999))
            .int(8, 3)
            .str(9, "Normal")
            .msg(10, time(1_700_000_000, 123_456_789))
            .msg(11, W::new().int(1, 2).msg(2, time(1_700_000_001, 5_000)))
            .str(12, "Start")
            .str(14, "kubelet")
            .str(15, "node-1");
        assert_eq!(
            ok("v1", "Event", object),
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "web.17a", "namespace": "default", "generation": 0},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u-1", "apiVersion": "v1"},
                "reason": "Started",
                "message": "Started container",
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "1970-01-01T00:00:00Z",
                "lastTimestamp": "2023-11-14T22:13:20Z",
                "count": 3,
                "type": "Normal",
                "eventTime": "2023-11-14T22:13:20.123456Z",
                "series": {"count": 2, "lastObservedTime": "2023-11-14T22:13:21.000005Z"},
                "action": "Start",
                "reportingComponent": "kubelet",
                "reportingInstance": "node-1",
            })
        );
    }

    #[test]
    fn lease() {
        let object = W::new().msg(1, meta("leader", "kube-system")).msg(
            2,
            W::new()
                .str(1, "node-1_abc")
                .int(2, 15)
                .msg(3, time(1_700_000_000, 0))
                .msg(4, time(1_700_000_010, 500_000_000))
                .int(5, 0)
                .str(6, "OldestEmulationVersion"),
        );
        assert_eq!(
            ok("coordination.k8s.io/v1", "Lease", object),
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "leader", "namespace": "kube-system", "generation": 0},
                "spec": {
                    "holderIdentity": "node-1_abc",
                    "leaseDurationSeconds": 15,
                    "acquireTime": "2023-11-14T22:13:20.000000Z",
                    "renewTime": "2023-11-14T22:13:30.500000Z",
                    "leaseTransitions": 0,
                    "strategy": "OldestEmulationVersion",
                },
            })
        );
    }

    /// authentication/authorization ExtraValue is a `[]string` that protobuf wraps as {items}.
    fn extra(values: &[&str]) -> W {
        values.iter().fold(W::new(), |w, v| w.str(1, v))
    }

    #[test]
    fn token_review_and_request() {
        let review = W::new()
            .msg(1, meta("", ""))
            .msg(
                2,
                W::new().str(1, "eyJhbGciOi").str(2, "https://kubernetes.default.svc"),
            )
            .msg(
                3,
                W::new()
                    .bool(1, true)
                    .msg(
                        2,
                        W::new()
                            .str(1, "system:serviceaccount:ci:builder")
                            .str(2, "u-2")
                            .str(3, "system:serviceaccounts")
                            .entry_msg(4, "authentication.kubernetes.io/pod-name", extra(&["web-0"]))
                            .entry_msg(4, "scopes", extra(&["a", "b"])),
                    )
                    .str(4, "api"),
            );
        assert_eq!(
            ok("authentication.k8s.io/v1", "TokenReview", review),
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "metadata": {"generation": 0},
                "spec": {"token": "eyJhbGciOi", "audiences": ["https://kubernetes.default.svc"]},
                "status": {
                    "authenticated": true,
                    "user": {
                        "username": "system:serviceaccount:ci:builder",
                        "uid": "u-2",
                        "groups": ["system:serviceaccounts"],
                        "extra": {"authentication.kubernetes.io/pod-name": ["web-0"], "scopes": ["a", "b"]},
                    },
                    "audiences": ["api"],
                },
            })
        );
        let request = W::new()
            .msg(
                2,
                W::new()
                    .str(1, "vault")
                    .int(4, 600)
                    .msg(3, W::new().str(1, "Secret").str(3, "s").str(4, "u-3")),
            )
            .msg(3, W::new().str(1, "t").msg(2, time(1_893_456_000, 0)));
        assert_eq!(
            ok("authentication.k8s.io/v1", "TokenRequest", request),
            json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": ["vault"], "expirationSeconds": 600, "boundObjectRef": {"kind": "Secret", "name": "s", "uid": "u-3"}},
                "status": {"token": "t", "expirationTimestamp": "2030-01-01T00:00:00Z"},
            })
        );
    }

    #[test]
    fn subject_access_review() {
        let requirement = W::new().str(1, "env").str(2, "In").str(3, "prod").str(3, "staging");
        let object = W::new().msg(1, meta("", "")).msg(
            2,
            W::new()
                .msg(
                    1,
                    W::new()
                        .str(1, "team-a")
                        .str(2, "list")
                        .str(3, "")
                        .str(4, "v1")
                        .str(5, "pods")
                        .msg(8, W::new().str(1, "spec.nodeName=n1"))
                        .msg(9, W::new().msg(2, requirement)),
                )
                .str(3, "alice")
                .str(4, "devs")
                .str(4, "system:authenticated")
                .entry_msg(5, "scopes", extra(&[]))
                .str(6, "u-4"),
        );
        assert_eq!(
            ok("authorization.k8s.io/v1", "SubjectAccessReview", object),
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "metadata": {"generation": 0},
                "spec": {
                    "resourceAttributes": {
                        "namespace": "team-a",
                        "verb": "list",
                        "version": "v1",
                        "resource": "pods",
                        "fieldSelector": {"rawSelector": "spec.nodeName=n1"},
                        "labelSelector": {"requirements": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]},
                    },
                    "user": "alice",
                    "groups": ["devs", "system:authenticated"],
                    "extra": {"scopes": []},
                    "uid": "u-4",
                },
            })
        );
        let rules = W::new().msg(2, W::new().str(1, "team-a"));
        assert_eq!(
            ok("authorization.k8s.io/v1", "SelfSubjectRulesReview", rules)["spec"],
            json!({"namespace": "team-a"})
        );
    }

    #[test]
    fn rbac_kinds() {
        let rule = W::new().str(1, "get").str(2, "").str(3, "pods").str(4, "web");
        let role = W::new().msg(1, meta("reader", "team-a")).msg(2, rule.clone());
        assert_eq!(
            ok("rbac.authorization.k8s.io/v1", "Role", role)["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}])
        );
        let selector = W::new().msg(2, W::new().str(1, "rbac.example.com/aggregate").str(2, "Exists"));
        let cluster_role = W::new().msg(1, meta("agg", "")).msg(3, W::new().msg(1, selector));
        assert_eq!(
            ok("rbac.authorization.k8s.io/v1", "ClusterRole", cluster_role)["aggregationRule"],
            json!({"clusterRoleSelectors": [{
                "matchExpressions": [{"key": "rbac.example.com/aggregate", "operator": "Exists"}],
            }]})
        );
        let binding = W::new()
            .msg(1, meta("read", "team-a"))
            .msg(
                2,
                W::new()
                    .str(1, "ServiceAccount")
                    .str(2, "")
                    .str(3, "builder")
                    .str(4, "ci"),
            )
            .msg(
                3,
                W::new()
                    .str(1, "rbac.authorization.k8s.io")
                    .str(2, "Role")
                    .str(3, "reader"),
            );
        let decoded = ok("rbac.authorization.k8s.io/v1", "RoleBinding", binding.clone());
        assert_eq!(
            decoded["subjects"],
            json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}])
        );
        assert_eq!(
            decoded["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
        );
        let decoded = ok("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", binding);
        assert_eq!(decoded["kind"], "ClusterRoleBinding");
        assert_eq!(decoded["roleRef"]["name"], "reader");
    }

    #[test]
    fn delete_options_in_any_group_version() {
        let object = W::new()
            .int(1, 0)
            .msg(2, W::new().str(1, "u-5").str(2, "42"))
            .bool(3, false)
            .str(4, "Foreground")
            .str(5, "All");
        for api_version in ["v1", "meta.k8s.io/v1", "apps/v1"] {
            assert_eq!(
                ok(api_version, "DeleteOptions", object.clone()),
                json!({
                    "apiVersion": api_version,
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": "u-5", "resourceVersion": "42"},
                    "orphanDependents": false,
                    "propagationPolicy": "Foreground",
                    "dryRun": ["All"],
                })
            );
        }
    }

    /// apiextensions JSON {raw=1}.
    fn raw_json(text: &str) -> W {
        W::new().str(1, text)
    }

    #[test]
    fn doubles_survive_the_json_the_hub_writes() {
        // Read back from its shortest JSON form, this double came out one unit in the last
        // place off until serde_json parsed floats exactly (its `float_roundtrip` feature).
        let x = -2.5682921664342994e-6;
        let schema = W::new().str(5, "number").double(19, x);
        let version = W::new().str(1, "v1").msg(4, W::new().msg(1, schema));
        let crd = W::new()
            .msg(1, meta("x", ""))
            .msg(2, W::new().str(1, "x.io").msg(7, version));
        let object = ok("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd);
        let multiple_of = &object["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["multipleOf"];
        assert_eq!(multiple_of.as_f64(), Some(x));
        let reread: Value = serde_json::from_str(&object.to_string()).expect("the object reparses");
        assert_eq!(reread, object);
    }

    #[test]
    fn custom_resource_definition() {
        let string_schema = W::new().str(5, "string");
        let replicas = W::new()
            .str(5, "integer")
            .str(6, "int32")
            .msg(8, raw_json("1"))
            .double(9, 10.0)
            .double(11, 0.0)
            .double(19, 0.5);
        let port = W::new()
            .bool(40, true)
            .msg(27, W::new().str(5, "integer"))
            .msg(27, W::new().str(5, "string"));
        let tags = W::new()
            .str(5, "array")
            .msg(24, W::new().msg(1, string_schema.clone()))
            .int(16, 0);
        let tuple = W::new().str(5, "array").msg(
            24,
            W::new()
                .msg(2, string_schema.clone())
                .msg(2, W::new().str(5, "integer")),
        );
        let labels = W::new()
            .str(5, "object")
            .msg(30, W::new().msg(2, string_schema.clone()));
        let closed = W::new().str(5, "object").msg(30, W::new().bool(1, false));
        let spec_schema = W::new()
            .str(5, "object")
            .str(23, "replicas")
            .entry_msg(29, "replicas", replicas)
            .entry_msg(29, "port", port)
            .entry_msg(29, "tags", tags)
            .entry_msg(29, "tuple", tuple)
            .entry_msg(29, "labels", labels)
            .entry_msg(29, "closed", closed)
            .entry_msg(
                29,
                "mode",
                W::new()
                    .str(5, "string")
                    .msg(20, raw_json("\"fast\""))
                    .msg(20, raw_json("\"slow\"")),
            )
            .entry_msg(
                29,
                "link",
                W::new()
                    .str(3, "#/definitions/link")
                    .str(2, "http://json-schema.org/schema#"),
            )
            .entry_msg(
                29,
                "items",
                W::new()
                    .str(5, "array")
                    .str(41, "name")
                    .str(42, "map")
                    .msg(24, W::new().msg(1, W::new().str(5, "object"))),
            )
            .entry_msg(32, "tags", W::new().str(2, "labels"))
            .msg(
                44,
                W::new()
                    .str(1, "self.replicas >= 0")
                    .str(2, "must not be negative")
                    .str(4, "FieldValueInvalid"),
            );
        let root = W::new()
            .str(5, "object")
            .entry_msg(29, "spec", spec_schema)
            .entry_msg(29, "status", W::new().str(5, "object").bool(38, true))
            .entry_msg(29, "embedded", W::new().str(5, "object").bool(39, true).bool(38, true));
        let version = W::new()
            .str(1, "v1")
            .bool(2, true)
            .bool(3, true)
            .msg(4, W::new().msg(1, root))
            .msg(
                5,
                W::new()
                    .msg(1, W::new())
                    .msg(2, W::new().str(1, ".spec.replicas").str(2, ".status.replicas")),
            )
            .msg(
                6,
                W::new()
                    .str(1, "Replicas")
                    .str(2, "integer")
                    .int(5, 0)
                    .str(6, ".spec.replicas"),
            );
        let spec = W::new()
            .str(1, "example.com")
            .msg(
                3,
                W::new()
                    .str(1, "widgets")
                    .str(2, "widget")
                    .str(3, "wd")
                    .str(4, "Widget")
                    .str(5, "WidgetList")
                    .str(6, "all"),
            )
            .str(4, "Namespaced")
            .msg(7, version)
            .msg(9, W::new().str(1, "None"))
            .bool(10, false);
        let decoded = ok(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            W::new().msg(1, meta("widgets.example.com", "")).msg(2, spec),
        );
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com", "generation": 0},
                "spec": {
                    "group": "example.com",
                    "names": {"plural": "widgets", "singular": "widget", "shortNames": ["wd"], "kind": "Widget", "listKind": "WidgetList", "categories": ["all"]},
                    "scope": "Namespaced",
                    "versions": [{
                        "name": "v1",
                        "served": true,
                        "storage": true,
                        "schema": {"openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["replicas"],
                                    "properties": {
                                        "replicas": {"type": "integer", "format": "int32", "default": 1, "maximum": 10, "minimum": 0, "multipleOf": 0.5},
                                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                                        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
                                        "tuple": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                        "closed": {"type": "object", "additionalProperties": false},
                                        "mode": {"type": "string", "enum": ["fast", "slow"]},
                                        "link": {"$ref": "#/definitions/link", "$schema": "http://json-schema.org/schema#"},
                                        "items": {"type": "array", "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map", "items": {"type": "object"}},
                                    },
                                    "dependencies": {"tags": ["labels"]},
                                    "x-kubernetes-validations": [{"rule": "self.replicas >= 0", "message": "must not be negative", "reason": "FieldValueInvalid"}],
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "embedded": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                            },
                        }},
                        "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                        "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "priority": 0, "jsonPath": ".spec.replicas"}],
                    }],
                    "conversion": {"strategy": "None"},
                    "preserveUnknownFields": false,
                },
            })
        );
    }

    #[test]
    fn core_special_types_and_inlined_structs() {
        // Service.spec.ports[].targetPort is an IntOrString {type=1, intVal=2, strVal=3}.
        let port = |name: &str, target: W| W::new().str(1, name).str(2, "TCP").int(3, 80).msg(4, target);
        let service = W::new().msg(1, meta("web", "")).msg(
            2,
            W::new()
                .msg(1, port("http", W::new().int(1, 0).int(2, 8080).str(3, "")))
                .msg(1, port("named", W::new().int(1, 1).int(2, 0).str(3, "web-port"))),
        );
        assert_eq!(
            ok("v1", "Service", service)["spec"]["ports"],
            json!([
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "named", "protocol": "TCP", "port": 80, "targetPort": "web-port"},
            ])
        );
        // ResourceQuota.spec.hard is a map<string, Quantity{string=1}>.
        let quota = W::new().msg(
            2,
            W::new()
                .entry_msg(1, "cpu", W::new().str(1, "500m"))
                .entry_msg(1, "memory", W::new().str(1, "1Gi")),
        );
        assert_eq!(
            ok("v1", "ResourceQuota", quota)["spec"],
            json!({"hard": {"cpu": "500m", "memory": "1Gi"}})
        );
        // Volume.volumeSource, SecretKeySelector.localObjectReference and Probe.handler are Go
        // embedded structs, inlined in JSON.
        let container = W::new()
            .str(1, "app")
            .str(2, "nginx")
            .msg(
                7,
                W::new()
                    .str(1, "PASSWORD")
                    .msg(3, W::new().msg(4, W::new().msg(1, W::new().str(1, "db")).str(2, "pw"))),
            )
            .msg(
                10,
                W::new()
                    .msg(
                        1,
                        W::new().msg(2, W::new().str(1, "/healthz").msg(2, W::new().int(2, 80))),
                    )
                    .int(2, 3),
            );
        let volume = W::new()
            .str(1, "config")
            .msg(2, W::new().msg(19, W::new().msg(1, W::new().str(1, "settings"))));
        let pod = W::new()
            .msg(1, meta("web-0", "default"))
            .msg(2, W::new().msg(1, volume).msg(2, container));
        assert_eq!(
            ok("v1", "Pod", pod)["spec"],
            json!({
                "volumes": [{"name": "config", "configMap": {"name": "settings"}}],
                "containers": [{
                    "name": "app",
                    "image": "nginx",
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "initialDelaySeconds": 3},
                }],
            })
        );
        // storageClassName "" (no dynamic provisioning) differs from unset and is kept.
        let claim = W::new()
            .msg(1, meta("data", ""))
            .msg(2, W::new().str(1, "ReadWriteOnce").str(5, ""));
        assert_eq!(
            ok("v1", "PersistentVolumeClaim", claim)["spec"],
            json!({"accessModes": ["ReadWriteOnce"], "storageClassName": ""})
        );
    }

    #[test]
    fn managed_fields_hold_embedded_json() {
        let entry = W::new()
            .str(1, "kubectl")
            .str(2, "Update")
            .str(3, "v1")
            .msg(4, time(1_700_000_000, 0))
            .str(6, "FieldsV1")
            .msg(7, W::new().str(1, r#"{"f:data":{"f:k":{}}}"#));
        let object = W::new().msg(1, meta("cm", "").msg(17, entry));
        assert_eq!(
            ok("v1", "ConfigMap", object)["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2023-11-14T22:13:20Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:k": {}}},
            }])
        );
    }

    /// client-go's events library sends events.k8s.io/v1 Events as protobuf: their renamed
    /// fields keep their JSON names.
    #[test]
    fn events_v1_decode() {
        let event = ok(
            "events.k8s.io/v1",
            "Event",
            W::new()
                .msg(1, W::new().str(1, "e"))
                .str(4, "example.com/ctl")
                .str(6, "Check")
                .msg(8, W::new().str(1, "Pod").str(3, "p"))
                .str(10, "looked")
                .int(15, 2),
        );
        assert_eq!(event["note"], "looked");
        assert_eq!(event["reportingController"], "example.com/ctl");
        assert_eq!(event["regarding"]["name"], "p");
        assert_eq!(event["deprecatedCount"], 2);
    }

    #[test]
    fn every_covered_kind_decodes() {
        let kinds = [
            (
                "v1",
                &["Namespace", "ConfigMap", "Secret", "ServiceAccount", "Event"][..],
            ),
            ("coordination.k8s.io/v1", &["Lease"]),
            ("events.k8s.io/v1", &["Event"]),
            (
                "rbac.authorization.k8s.io/v1",
                &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"],
            ),
            (
                "authentication.k8s.io/v1",
                &["TokenRequest", "SelfSubjectReview", "TokenReview"],
            ),
            (
                "authorization.k8s.io/v1",
                &[
                    "SelfSubjectAccessReview",
                    "SelfSubjectRulesReview",
                    "SubjectAccessReview",
                    "LocalSubjectAccessReview",
                ],
            ),
            ("apiextensions.k8s.io/v1", &["CustomResourceDefinition"]),
            ("meta.k8s.io/v1", &["DeleteOptions"]),
        ];
        for (api_version, kinds) in kinds {
            for kind in kinds {
                // metadata{name} for objects; dryRun for DeleteOptions, which has no metadata.
                let fields = if *kind == "DeleteOptions" {
                    W::new().str(5, "All")
                } else {
                    W::new().msg(1, W::new().str(1, "x"))
                };
                let object = ok(api_version, kind, fields);
                assert_eq!(
                    (object["apiVersion"].as_str(), object["kind"].as_str()),
                    (Some(api_version), Some(*kind))
                );
            }
        }
    }

    #[test]
    fn rejects_what_it_cannot_decode() {
        let err = |body: &[u8]| decode(body).unwrap_err();
        assert!(err(b"{\"kind\":\"ConfigMap\"}").contains("k8s\\x00"));
        assert!(err(b"").contains("k8s\\x00"));
        assert!(err(b"k8s\0\x0a\xff").contains("malformed"));
        assert!(err(&[MAGIC, &W::new().bytes(2, b"").0].concat()).contains("apiVersion and kind"));
        assert!(
            err(&body("apps/v1", "Deployment", W::new()))
                .contains("no protobuf schema is built in for Deployment in apps/v1")
        );
        assert!(err(&body("v1", "Widget", W::new())).contains("Widget"));
        assert!(err(&body("v1", "PodSpec", W::new())).contains("PodSpec"), "not a kind");
        assert!(err(&body("coordination.k8s.io/v1beta1", "Lease", W::new())).contains("v1beta1"));
        assert!(err(&body("v1", "ConfigMap", W::new().str(2, "\u{0}").bytes(1, b"\xff"))).contains("malformed"));
        let gzip = W::new()
            .msg(1, W::new().str(1, "v1").str(2, "ConfigMap"))
            .str(3, "gzip");
        assert!(err(&[MAGIC, &gzip.0].concat()).contains("gzip"));
        let json_inside = W::new()
            .msg(1, W::new().str(1, "v1").str(2, "ConfigMap"))
            .str(4, "application/json");
        assert!(err(&[MAGIC, &json_inside.0].concat()).contains("application/json"));
        let bad_default = W::new().msg(1, W::new()).msg(
            2,
            W::new().msg(
                7,
                W::new().msg(4, W::new().msg(1, W::new().msg(8, raw_json("{not json")))),
            ),
        );
        assert!(
            err(&body(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                bad_default
            ))
            .contains("JSON")
        );
        let bad_time = W::new().msg(1, W::new().msg(8, time(0, 2_000_000_000)));
        assert!(err(&body("v1", "ConfigMap", bad_time)).contains("nanos"));
        // JSONSchemaProps nested past the depth limit.
        let mut schema = W::new().str(5, "object");
        for _ in 0..120 {
            schema = W::new().msg(28, schema);
        }
        let deep = W::new().msg(2, W::new().msg(7, W::new().msg(4, W::new().msg(1, schema))));
        let deep = err(&body("apiextensions.k8s.io/v1", "CustomResourceDefinition", deep));
        assert!(deep.contains("recursion limit") || deep.contains("deeper"), "{deep}");
        // Shallow protobuf, but embedded JSON that takes the whole object past the limit.
        let nested = format!("{}{}", "[".repeat(98), "]".repeat(98));
        let deep_default = W::new().msg(
            2,
            W::new().msg(7, W::new().msg(4, W::new().msg(1, W::new().msg(8, raw_json(&nested))))),
        );
        let deep = err(&body(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            deep_default,
        ));
        assert!(deep.contains("deeper than 100"), "{deep}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let object = W::new()
            .msg(1, W::new().str(1, "cm").str(99, "future"))
            .entry(2, "a", "b")
            .int(1000, 7);
        assert_eq!(
            ok("v1", "ConfigMap", object),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn tables_name_real_descriptors() {
        let pool = POOL.as_ref().unwrap();
        for (_, package) in GROUP_VERSIONS {
            assert!(pool.all_messages().any(|m| m.package_name() == *package), "{package}");
        }
        for (message, field) in INLINE.iter().chain(KEEP_EMPTY) {
            let desc = pool.get_message_by_name(message).unwrap_or_else(|| panic!("{message}"));
            assert!(desc.get_field_by_name(field).is_some(), "{message}.{field}");
        }
        for (message, fields) in [
            (format!("{META_V1}.Time"), &["seconds", "nanos"][..]),
            (format!("{META_V1}.MicroTime"), &["seconds", "nanos"]),
            (format!("{META_V1}.Duration"), &["duration"]),
            (format!("{META_V1}.Verbs"), &["items"]),
            ("k8s.io.api.authentication.v1.ExtraValue".into(), &["items"]),
            ("k8s.io.api.authorization.v1.ExtraValue".into(), &["items"]),
            (
                "k8s.io.apimachinery.pkg.util.intstr.IntOrString".into(),
                &["type", "intVal", "strVal"],
            ),
            ("k8s.io.apimachinery.pkg.api.resource.Quantity".into(), &["string"]),
            ("k8s.io.apimachinery.pkg.api.resource.QuantityValue".into(), &["string"]),
            (
                format!("{APIEXTENSIONS_V1}.JSONSchemaPropsOrArray"),
                &["schema", "jSONSchemas"],
            ),
            (
                format!("{APIEXTENSIONS_V1}.JSONSchemaPropsOrBool"),
                &["allows", "schema"],
            ),
            (
                format!("{APIEXTENSIONS_V1}.JSONSchemaPropsOrStringArray"),
                &["schema", "property"],
            ),
            (
                format!("{APIEXTENSIONS_V1}.JSONSchemaProps"),
                &["ref", "schema", "xKubernetesPreserveUnknownFields"],
            ),
            ("k8s.io.api.authentication.v1.BoundObjectReference".into(), &["uID"]),
        ] {
            let desc = pool
                .get_message_by_name(&message)
                .unwrap_or_else(|| panic!("{message}"));
            for field in fields {
                assert!(desc.get_field_by_name(field).is_some(), "{message}.{field}");
            }
        }
        for message in [
            format!("{META_V1}.FieldsV1"),
            "k8s.io.apimachinery.pkg.runtime.RawExtension".into(),
            format!("{APIEXTENSIONS_V1}.JSON"),
        ] {
            let desc = pool
                .get_message_by_name(&message)
                .unwrap_or_else(|| panic!("{message}"));
            let raw = desc.get_field(1).unwrap_or_else(|| panic!("{message} field 1"));
            assert_eq!(raw.kind(), prost_reflect::Kind::Bytes, "{message}");
        }
    }

    #[test]
    fn go_durations() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_445_000_000_000, "1h30m45s"),
            (-90_000_000_000, "-1m30s"),
            (100 * 3_600_000_000_000 + 1, "100h0m0.000000001s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn decodes_concurrently() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| decode(&unhex(KUBECTL[1].1)).unwrap()))
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap()["data"]["a"], "b");
        }
    }
}
