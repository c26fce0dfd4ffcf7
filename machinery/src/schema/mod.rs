//! Structural schemas of CustomResourceDefinitions (`schema.openAPIV3Schema`).
//!
//! This module reproduces what kube-apiserver does with a CRD version's schema:
//!
//! * [`StructuralSchema::parse`] checks the schema the way CRD validation does
//!   (structurality, the restrictions on `metadata`, list and map types,
//!   `pattern`s that must compile, `default`s that must be pruned and valid)
//!   and turns it into a tree that is cheap to share between requests.
//! * [`StructuralSchema::prune`] drops unknown fields (structural pruning).
//! * [`StructuralSchema::apply_defaults`] drops non-nullable nulls and applies
//!   `default`s (structural defaulting).
//! * [`StructuralSchema::validate`] validates an object with the rules of the
//!   OpenAPI validator kube-apiserver uses for custom resources, followed by the
//!   embedded-resource and `x-kubernetes-list-type` checks and the CEL rules of
//!   `x-kubernetes-validations` (compiled by `parse`), and reports
//!   [`FieldError`]s phrased like kube-apiserver's.
//!
//! Paths of validation errors are built lazily: the walk keeps a linked list of
//! path segments on the stack and only renders a string when it reports an error.
//!
//! [`FieldError`]: crate::status::FieldError

mod cel;
mod default;
mod formats;
mod parse;
mod path;
mod prune;
mod render;
#[cfg(test)]
mod test_support;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

// ---------------------------------------------------------------------------
// The schema tree
// ---------------------------------------------------------------------------

/// A parsed structural schema, or one node of it.
///
/// Cloning is cheap (one reference count); every node shares the original JSON.
#[derive(Clone)]
pub struct StructuralSchema {
    node: Arc<Node>,
}

impl std::fmt::Debug for StructuralSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StructuralSchema")
            .field("pointer", &self.node.pointer)
            .field("schema", self.to_json())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Type {
    fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListType {
    Atomic,
    Set,
    Map,
}

#[derive(Debug)]
enum Additional {
    /// `additionalProperties: true|false`.
    Bool(bool),
    Schema(StructuralSchema),
}

/// The string formats CRD validation checks; every other format is ignored
/// (kube-apiserver strips unsupported formats, among them int32, int64, float
/// and double, before validating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BsonObjectId,
    Uri,
    Email,
    Hostname,
    Ipv4,
    Ipv6,
    Cidr,
    Mac,
    Uuid,
    Uuid3,
    Uuid4,
    Uuid5,
    Isbn,
    Isbn10,
    Isbn13,
    CreditCard,
    Ssn,
    HexColor,
    RgbColor,
    Byte,
    Password,
    Date,
    Duration,
    DateTime,
}

impl Format {
    /// Looks a format up after the `-` removal go-openapi applies to names.
    fn parse(name: &str) -> Option<Format> {
        let normalized: String = name.chars().filter(|c| *c != '-').collect();
        Some(match normalized.as_str() {
            "bsonobjectid" => Format::BsonObjectId,
            "uri" => Format::Uri,
            "email" => Format::Email,
            "hostname" => Format::Hostname,
            "ipv4" => Format::Ipv4,
            "ipv6" => Format::Ipv6,
            "cidr" => Format::Cidr,
            "mac" => Format::Mac,
            "uuid" => Format::Uuid,
            "uuid3" => Format::Uuid3,
            "uuid4" => Format::Uuid4,
            "uuid5" => Format::Uuid5,
            "isbn" => Format::Isbn,
            "isbn10" => Format::Isbn10,
            "isbn13" => Format::Isbn13,
            "creditcard" => Format::CreditCard,
            "ssn" => Format::Ssn,
            "hexcolor" => Format::HexColor,
            "rgbcolor" => Format::RgbColor,
            "byte" => Format::Byte,
            "password" => Format::Password,
            "date" => Format::Date,
            "duration" => Format::Duration,
            "datetime" => Format::DateTime,
            _ => return None,
        })
    }
}

#[derive(Default)]
struct Node {
    /// The whole schema document and where this node sits in it.
    json: Arc<Value>,
    pointer: String,

    ty: Option<Type>,
    nullable: bool,
    int_or_string: bool,
    preserve_unknown: bool,
    embedded: bool,
    /// A supported format and its name as written in the schema.
    format: Option<(Format, String)>,
    enum_values: Option<Vec<Value>>,
    required: Vec<String>,
    minimum: Option<f64>,
    exclusive_minimum: bool,
    maximum: Option<f64>,
    exclusive_maximum: bool,
    multiple_of: Option<f64>,
    min_length: Option<i64>,
    max_length: Option<i64>,
    pattern: Option<Regex>,
    min_items: Option<i64>,
    max_items: Option<i64>,
    unique_items: bool,
    min_properties: Option<i64>,
    max_properties: Option<i64>,
    properties: BTreeMap<String, StructuralSchema>,
    additional: Option<Additional>,
    items: Option<StructuralSchema>,
    all_of: Vec<StructuralSchema>,
    any_of: Vec<StructuralSchema>,
    one_of: Vec<StructuralSchema>,
    not: Option<StructuralSchema>,
    default: Option<Value>,
    /// `default` was written (even as `null`).
    has_default_keyword: bool,
    list_type: Option<ListType>,
    list_map_keys: Vec<String>,
    map_type: Option<String>,
    /// Some property has a `default`.
    has_property_defaults: bool,
    /// The compiled `x-kubernetes-validations`.
    rules: Vec<cel::Rule>,
    /// This node or one below it (through properties, additionalProperties and items) has
    /// rules; the rules' walk skips the others.
    rules_below: bool,
    /// The same for transition rules: only their nodes need the previous value.
    transitions_below: bool,
}

static NULL: Value = Value::Null;

/// Fields of `metav1.ObjectMeta`; anything else under the `metadata` of an
/// embedded resource is dropped by pruning.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn is_meta_field(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata")
}

impl StructuralSchema {
    /// The node reached by following property names from this node; array
    /// nodes are stepped through transparently (`spec.containers.name`).
    /// An empty path returns this node.
    pub(crate) fn lookup(&self, path: &[&str]) -> Option<&StructuralSchema> {
        let mut cur = self;
        for name in path {
            if let Some(next) = cur.node.properties.get(*name) {
                cur = next;
                continue;
            }
            let mut items = cur.node.items.as_ref();
            let mut found = None;
            while let Some(it) = items {
                if let Some(next) = it.node.properties.get(*name) {
                    found = Some(next);
                    break;
                }
                items = it.node.items.as_ref();
            }
            cur = found?;
        }
        Some(cur)
    }

    /// The original JSON of this node.
    pub fn to_json(&self) -> &Value {
        self.node.json.pointer(&self.node.pointer).unwrap_or(&NULL)
    }

    /// The declared `type` (`"integer"`, `"object"`, …), if any.
    fn type_name(&self) -> Option<&'static str> {
        self.node.ty.map(Type::name)
    }

    /// Whether the node is `x-kubernetes-int-or-string: true`.
    // Only the tests ask; no other crate does.
    #[cfg(test)]
    fn is_int_or_string(&self) -> bool {
        self.node.int_or_string
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::test_support::*;

    #[test]
    fn lookup_and_to_json() {
        let raw = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "color": {"type": "string", "description": "the color"},
            "a/b~c": {"type": "integer"},
            "containers": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
        }}}});
        let s = schema(raw.clone());
        assert_eq!(s.to_json(), &raw);
        let color = s.lookup(&["spec", "color"]).unwrap();
        assert_eq!(color.to_json(), &json!({"type": "string", "description": "the color"}));
        assert_eq!(color.type_name(), Some("string"));
        assert_eq!(
            s.lookup(&["spec", "a/b~c"]).unwrap().to_json(),
            &json!({"type": "integer"})
        );
        assert_eq!(
            s.lookup(&["spec", "containers", "name"]).unwrap().type_name(),
            Some("string")
        );
        assert!(s.lookup(&["spec", "missing"]).is_none());
        assert!(s.lookup(&[]).is_some());
    }

    #[test]
    fn schemas_are_cheap_to_share() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<StructuralSchema>();
        let s = prune_schema();
        let t = s.clone();
        assert!(Arc::ptr_eq(&s.node, &t.node));
        let handle = std::thread::spawn(move || t.validate(&json!({"spec": {"name": 1}}), None).len());
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[test]
    fn full_pipeline() {
        let s = schema(json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "required": ["size"], "properties": {
                    "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
                    "count": {"type": "integer", "minimum": 1, "default": 1}
                }}
            }
        }));
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
                             "spec": {"count": null, "color": "red"}});
        let removed = s.prune(&mut obj);
        assert_eq!(removed, vec![".spec.color"]);
        s.apply_defaults(&mut obj);
        assert_eq!(obj["spec"], json!({"size": "small", "count": 1}));
        assert!(s.validate(&obj, None).is_empty());
        obj["spec"]["count"] = json!(0);
        assert_eq!(
            messages(&s.validate(&obj, None)),
            vec!["spec.count: Invalid value: 0: spec.count in body should be greater than or equal to 1"]
        );
    }
}
