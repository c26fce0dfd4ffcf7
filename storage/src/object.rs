//! A cached object: its JSON exactly as the API serves it, kept once and shared by the cache,
//! the event window, lists and every watch, plus the little the hub reads on every list or
//! watch without decoding (its labels, its owners' UIDs and a digest of the rest of its
//! metadata; name, namespace and logical cluster come from the key).
//!
//! Anything else decodes on demand ([`Object::value`]). A decoded `serde_json::Value` tree
//! costs 10–20 times the JSON it came from; the bytes cost their length. Serving a GET, a list
//! or a watch event copies these bytes into the response without encoding anything.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::backend::{KeyValue, Revision};
use crate::key::Key;

/// What one object costs the cache besides its JSON and key: the `Arc`, the struct, the map
/// entry pointing at it. Used to charge the event window for what it keeps alive.
const OVERHEAD: usize = 128;

#[derive(Debug)]
pub struct Object {
    pub key: Arc<str>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// The object's JSON with `metadata.resourceVersion` set to `mod_revision`.
    json: Bytes,
    /// Where the digits of `metadata.resourceVersion` start in `json` (their length is that
    /// of `mod_revision`), so a deletion's last state is the same bytes with a new revision.
    revision_at: Option<u32>,
    /// `metadata.labels`, sorted by key.
    labels: Box<[(Box<str>, Box<str>)]>,
    /// The UIDs of `metadata.ownerReferences`.
    owners: Box<[Box<str>]>,
    /// A digest of `metadata` without its resourceVersion and managedFields.
    metadata_digest: u64,
}

/// The parts of a stored object read without decoding it.
#[derive(Deserialize)]
struct Outline<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
}

/// What the cache reads of `metadata`: labels and owners for selectors and the garbage
/// collector's watches, and a digest of the rest for watches that skip updates which leave
/// the metadata as it was.
#[derive(Default)]
struct MetadataOutline {
    /// Whether the JSON holds a resourceVersion (the hub's store never does).
    has_revision: bool,
    labels: Option<serde_json::Map<String, Value>>,
    owner_references: Option<Vec<OwnerReference>>,
    /// Of every field but `resourceVersion` and `managedFields`: see [`Object::same_metadata`].
    digest: u64,
}

/// Keyed once per process: digests are compared only within one, and a key nobody knows
/// leaves nobody a way to make two different metadata collide.
static DIGEST_KEYS: std::sync::LazyLock<std::hash::RandomState> = std::sync::LazyLock::new(Default::default);

impl<'de> Deserialize<'de> for MetadataOutline {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, Visitor};
        use std::hash::{BuildHasher, Hash, Hasher};

        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = MetadataOutline;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("object metadata")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetadataOutline, A::Error> {
                let mut outline = MetadataOutline::default();
                let mut digest = DIGEST_KEYS.build_hasher();
                while let Some(FieldName(name)) = map.next_key()? {
                    match &*name {
                        "resourceVersion" => {
                            map.next_value::<IgnoredAny>()?;
                            outline.has_revision = true;
                        }
                        // Every write stamps its manager's entry with the time.
                        "managedFields" => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        field => {
                            // The stored JSON is the hub's own canonical encoding, so equal
                            // fields are equal bytes.
                            let raw: &RawValue = map.next_value()?;
                            field.hash(&mut digest);
                            raw.get().hash(&mut digest);
                            match field {
                                "labels" => {
                                    outline.labels = serde_json::from_str(raw.get()).map_err(A::Error::custom)?
                                }
                                "ownerReferences" => {
                                    outline.owner_references =
                                        serde_json::from_str(raw.get()).map_err(A::Error::custom)?;
                                }
                                _ => {}
                            }
                        }
                    }
                }
                outline.digest = digest.finish();
                Ok(outline)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A key of `metadata`, borrowed from the JSON unless it holds escapes.
struct FieldName<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<FieldName<'de>, E> {
                Ok(FieldName(name.into()))
            }
            fn visit_str<E>(self, name: &str) -> Result<FieldName<'de>, E> {
                Ok(FieldName(name.to_string().into()))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[derive(Deserialize)]
struct OwnerReference {
    #[serde(default)]
    uid: String,
}

impl Object {
    /// The cached form of a stored key-value: its JSON with the revision spliced into
    /// `metadata` (the store keeps objects without one). Errors when the bytes are not a JSON
    /// object.
    pub fn from_stored(kv: &KeyValue) -> Result<Object, serde_json::Error> {
        Object::build(
            Arc::from(kv.key.as_str()),
            &kv.value,
            kv.create_revision,
            kv.mod_revision,
        )
    }

    /// Like [`Object::from_stored`], with the key given (shared with the object's previous
    /// state rather than allocated again).
    pub(crate) fn build(
        key: Arc<str>,
        stored: &[u8],
        create_revision: Revision,
        mod_revision: Revision,
    ) -> Result<Object, serde_json::Error> {
        if stored.trim_ascii_start().first() != Some(&b'{') {
            return Err(serde::de::Error::custom("a stored object must be a JSON object"));
        }
        let outline: Outline = serde_json::from_slice(stored)?;
        let Some(metadata) = outline.metadata else {
            return Ok(Object {
                key,
                create_revision,
                mod_revision,
                json: Bytes::copy_from_slice(stored),
                revision_at: None,
                labels: Box::default(),
                owners: Box::default(),
                metadata_digest: 0,
            });
        };
        let meta: MetadataOutline = serde_json::from_str(metadata.get())?;
        if meta.has_revision {
            // Not how the hub stores objects, but a store written by other means may hold
            // one: drop it and start again from the canonical form.
            let mut value: Value = serde_json::from_slice(stored)?;
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            return Object::build(key, &serde_json::to_vec(&value)?, create_revision, mod_revision);
        }
        let labels = labels_of(meta.labels);
        let owners = meta
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.uid.into_boxed_str())
            .collect();
        // `metadata` borrows from `stored`, so its offset is where its `{` is.
        let open = metadata.get().as_ptr() as usize - stored.as_ptr() as usize;
        if stored.get(open) != Some(&b'{') {
            return Err(serde::de::Error::custom("metadata is not an object"));
        }
        let empty = metadata.get()[1..].trim_start().starts_with('}');
        let digits = mod_revision.to_string();
        let mut json = Vec::with_capacity(stored.len() + 24 + digits.len());
        json.extend_from_slice(&stored[..=open]);
        json.extend_from_slice(b"\"resourceVersion\":\"");
        let revision_at = json.len();
        json.extend_from_slice(digits.as_bytes());
        json.push(b'"');
        if !empty {
            json.push(b',');
        }
        json.extend_from_slice(&stored[open + 1..]);
        Ok(Object {
            key,
            create_revision,
            mod_revision,
            json: Bytes::from(json),
            revision_at: u32::try_from(revision_at).ok(),
            labels,
            owners,
            metadata_digest: meta.digest,
        })
    }

    /// The object's last state as a deletion at `revision` reports it: the same JSON, with
    /// that revision as its resourceVersion (as Kubernetes sends a DELETED event).
    pub(crate) fn deleted_at(&self, revision: Revision) -> Object {
        let json = match self.revision_at {
            Some(at) => {
                let at = at as usize;
                let old = self.mod_revision.to_string().len();
                let digits = revision.to_string();
                let mut json = Vec::with_capacity(self.json.len() + digits.len());
                json.extend_from_slice(&self.json[..at]);
                json.extend_from_slice(digits.as_bytes());
                json.extend_from_slice(&self.json[at + old..]);
                Bytes::from(json)
            }
            None => self.json.clone(),
        };
        Object {
            key: self.key.clone(),
            create_revision: self.create_revision,
            mod_revision: revision,
            json,
            revision_at: self.revision_at,
            labels: self.labels.clone(),
            owners: self.owners.clone(),
            metadata_digest: self.metadata_digest,
        }
    }

    /// The JSON as served, `metadata.resourceVersion` included.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The object decoded. Each call decodes again: callers that need several fields keep
    /// the result.
    pub fn value(&self) -> Value {
        // The bytes were parsed when the object was built; they cannot fail to parse now.
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// Decodes into a type of the caller's.
    pub fn decode<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.labels[i].1)
    }

    /// Every label, sorted by key.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The UIDs of the objects this one names in `metadata.ownerReferences`.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.owners.iter().map(|o| &**o)
    }

    /// Whether `other` (this object's state at another revision) has the same metadata besides
    /// `resourceVersion` and `managedFields`: a write that changed only its spec or status
    /// (a heartbeat's renewal), which a reader of metadata alone has no use for.
    pub fn same_metadata(&self, other: &Object) -> bool {
        self.metadata_digest == other.metadata_digest
    }

    /// The logical cluster, from the key.
    pub fn cluster(&self) -> &str {
        Key::parse(&self.key).map(|k| k.cluster).unwrap_or_default()
    }

    /// `metadata.name`, from the key.
    pub fn name(&self) -> &str {
        Key::parse(&self.key).map(|k| k.name).unwrap_or_default()
    }

    /// `metadata.namespace`, from the key; empty for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        Key::parse(&self.key).and_then(|k| k.namespace).unwrap_or_default()
    }

    /// The bytes this object keeps alive, roughly: what the event window is charged for it.
    pub fn size(&self) -> usize {
        let labels: usize = self.labels.iter().map(|(k, v)| k.len() + v.len() + 32).sum();
        let owners: usize = self.owners.iter().map(|o| o.len() + 16).sum();
        self.json.len() + self.key.len() + labels + owners + OVERHEAD
    }
}

/// Label values are strings once validated; anything else is kept as a selector compares it
/// (null as empty, others as their JSON text).
fn labels_of(labels: Option<serde_json::Map<String, Value>>) -> Box<[(Box<str>, Box<str>)]> {
    let Some(labels) = labels else {
        return Box::default();
    };
    // serde_json's map is ordered by key, so the pairs come out sorted.
    labels
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.into_boxed_str(), v.into_boxed_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(stored: &Value, revision: Revision) -> Object {
        let kv = KeyValue {
            key: "/core/configmaps/root/ns/a".into(),
            value: Bytes::from(serde_json::to_vec(stored).unwrap()),
            create_revision: 1,
            mod_revision: revision,
        };
        Object::from_stored(&kv).unwrap()
    }

    #[test]
    fn metadata_is_the_same_when_only_the_revision_managed_fields_or_content_changed() {
        let stored = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u", "labels": {"agent": "a"},
                "ownerReferences": [{"uid": "o", "name": "a", "kind": "Agent"}],
                "managedFields": [{"manager": "agent", "time": "2026-12-07T06:00:00Z"}]},
            "spec": {"renewTime": "2026-12-07T06:00:00.000000Z"}});
        let before = object(&stored, 5);
        // A renewal: new content, a new time in managedFields, a new revision.
        let mut renewed = stored.clone();
        renewed["spec"]["renewTime"] = json!("2026-12-07T06:00:10.000000Z");
        renewed["metadata"]["managedFields"][0]["time"] = json!("2026-12-07T06:00:10Z");
        assert!(before.same_metadata(&object(&renewed, 6)));
        assert!(before.same_metadata(&before.deleted_at(7)));
        let changed = [
            ("labels", json!({"agent": "b"})),
            ("annotations", json!({"note": "x"})),
            (
                "ownerReferences",
                json!([{"uid": "o", "name": "a", "kind": "Agent", "controller": true}]),
            ),
            ("finalizers", json!(["x/y"])),
            ("deletionTimestamp", json!("2026-12-07T06:01:00Z")),
            ("deletionGracePeriodSeconds", json!(0)),
            ("generation", json!(2)),
        ];
        for (field, value) in changed {
            let mut other = stored.clone();
            other["metadata"][field] = value;
            assert!(!before.same_metadata(&object(&other, 6)), "{field}");
        }
        let mut unlabelled = stored.clone();
        unlabelled["metadata"].as_object_mut().unwrap().remove("labels");
        assert!(!before.same_metadata(&object(&unlabelled, 6)));
    }

    #[test]
    fn the_revision_is_spliced_into_metadata() {
        let stored = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "labels": {"b": "2", "a": "1"},
                "ownerReferences": [{"uid": "u1", "name": "o"}, {"uid": "u2", "name": "p"}]},
            "data": {"k": "v"}});
        let o = object(&stored, 42);
        let mut expected = stored.clone();
        expected["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(o.value(), expected);
        assert_eq!(o.labels().collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")]);
        assert_eq!((o.label("b"), o.label("c")), (Some("2"), None));
        assert_eq!((o.name(), o.namespace(), o.cluster()), ("a", "ns", "root"));
        assert_eq!(o.owners().collect::<Vec<_>>(), vec!["u1", "u2"]);
    }

    #[test]
    fn empty_metadata_and_stored_revisions() {
        let o = object(&json!({"metadata": {}}), 7);
        assert_eq!(o.json().as_ref(), br#"{"metadata":{"resourceVersion":"7"}}"#);
        // A stored resourceVersion is replaced, never kept beside the real one.
        let o = object(&json!({"metadata": {"resourceVersion": "3", "name": "x"}}), 9);
        assert_eq!(o.value(), json!({"metadata": {"resourceVersion": "9", "name": "x"}}));
        let o = object(&json!({"spec": {"metadata": {}}}), 9);
        assert_eq!(o.value(), json!({"spec": {"metadata": {}}}));
    }

    #[test]
    fn a_deletion_restamps_the_revision_whatever_its_length() {
        let o = object(&json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {}}), 9);
        let gone = o.deleted_at(1234);
        assert_eq!(gone.value()["metadata"]["resourceVersion"], "1234");
        assert_eq!(gone.value()["data"], json!({}));
        assert_eq!(gone.deleted_at(10).value()["metadata"]["resourceVersion"], "10");
        assert_eq!(gone.label("x"), Some("y"));
    }

    #[test]
    fn non_objects_are_refused() {
        for bad in [&b"[1]"[..], b"\"x\"", b"{\"metadata\":[]}", b"{", b""] {
            let kv = KeyValue {
                key: "/k/a".into(),
                value: Bytes::copy_from_slice(bad),
                create_revision: 1,
                mod_revision: 1,
            };
            assert!(Object::from_stored(&kv).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn labels_that_are_not_strings_keep_their_json() {
        let o = object(&json!({"metadata": {"labels": {"n": 1, "b": true}}}), 1);
        assert_eq!(o.labels().collect::<Vec<_>>(), vec![("b", "true"), ("n", "1")]);
    }
}
