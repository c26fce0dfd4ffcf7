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
//!   embedded-resource and `x-kubernetes-list-type` checks, and reports
//!   [`FieldError`]s phrased like kube-apiserver's.
//!
//! Paths of validation errors are built lazily: the walk keeps a linked list of
//! path segments on the stack and only renders a string when it reports an error.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::{Map, Number, Value};

use crate::status::{CauseType, FieldError};

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
    /// Parses and checks a CRD version's `openAPIV3Schema` the way CRD validation
    /// does. `field_prefix` is the path of the schema in the CRD, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`; errors carry paths below it
    /// such as `spec.versions[0].schema.openAPIV3Schema.properties[spec].type`.
    pub fn parse(schema: &Value, field_prefix: &str) -> Result<StructuralSchema, Vec<FieldError>> {
        let mut parser = Parser {
            json: Arc::new(schema.clone()),
            errors: Vec::new(),
        };
        let root_ctx = Ctx {
            path: field_prefix.to_string(),
            pointer: String::new(),
            level: Level::Root,
            junctor: false,
            exempt: false,
            skip_any_of: false,
            default_forbidden: None,
        };
        let root = parser.node(schema, &root_ctx);
        if parser.errors.is_empty() {
            parser.completeness(&root, field_prefix);
        }
        let mut errors = parser.errors;
        if errors.is_empty() {
            check_defaults(&root, field_prefix, &mut errors);
        }
        if errors.is_empty() {
            Ok(root)
        } else {
            // kube-apiserver sorts these so that the message is stable.
            errors.sort_by_cached_key(FieldError::to_message);
            errors.dedup();
            Err(errors)
        }
    }

    /// Removes fields the schema does not declare and returns their paths,
    /// sorted, in the form `.spec.unknownField` / `.spec.list[0].x`.
    ///
    /// Nodes with `x-kubernetes-preserve-unknown-fields: true` keep unknown
    /// fields (declared ones are still pruned below them); `additionalProperties`
    /// keeps every key. At the root `apiVersion`, `kind` and `metadata` are kept
    /// untouched; in `x-kubernetes-embedded-resource` objects they are kept too
    /// and the embedded `metadata` is reduced to the fields of `ObjectMeta`.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut removed = Vec::new();
        prune_value(obj, Some(&self.node), true, &Path::ROOT, &mut removed);
        removed.sort();
        removed
    }

    /// Applies `default`s (after pruning): missing properties with a default get
    /// a copy of it, as do non-nullable properties, map values and array items
    /// that are `null`; other non-nullable `null` properties are dropped.
    /// The root `metadata` is left alone.
    pub fn apply_defaults(&self, obj: &mut Value) {
        default_value(obj, &self.node, true);
    }

    /// Validates an object against the schema. The root `apiVersion` and `kind`
    /// are skipped, and of the root `metadata` only the `name`/`generateName`
    /// restrictions the schema declares are checked.
    ///
    /// Errors come in kube-apiserver's order: OpenAPI schema errors first (their
    /// paths join map keys with dots, `spec.labels.app`, as the OpenAPI
    /// validator does), then embedded-resource errors and list-type errors
    /// (which use `field.Path` brackets, `spec.labels[app]`). Errors of
    /// `allOf`/`anyOf`/`oneOf`/`not` as a whole have an empty field, like
    /// kube-apiserver's `<nil>`.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut v = Validator {
            base: "",
            meta: Vec::new(),
            lists: Vec::new(),
        };
        let mut out = Vec::new();
        v.value(obj, &self.node, &Path::ROOT, true, &mut out);
        out.append(&mut v.meta);
        out.append(&mut v.lists);
        out
    }

    /// The node reached by following property names from this node; array
    /// nodes are stepped through transparently (`spec.containers.name`).
    /// An empty path returns this node.
    pub fn lookup(&self, path: &[&str]) -> Option<&StructuralSchema> {
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
    pub fn type_name(&self) -> Option<&'static str> {
        self.node.ty.map(Type::name)
    }

    /// Whether the node is `x-kubernetes-int-or-string: true`.
    pub fn is_int_or_string(&self) -> bool {
        self.node.int_or_string
    }

    /// The node's `default`, if any.
    pub fn default_value(&self) -> Option<&Value> {
        self.node.default.as_ref()
    }
}

// ---------------------------------------------------------------------------
// Parsing and CRD-level checks
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

struct Ctx {
    path: String,
    pointer: String,
    level: Level,
    /// Inside `allOf`/`anyOf`/`oneOf`/`not`.
    junctor: bool,
    /// One of the `anyOf: [{type: integer}, {type: string}]` branches that the
    /// int-or-string exception allows.
    exempt: bool,
    /// For a junctor node: its own `anyOf` is the int-or-string pattern.
    skip_any_of: bool,
    /// Why `default` may not be used here (top-level metadata).
    default_forbidden: Option<String>,
}

struct Parser {
    json: Arc<Value>,
    errors: Vec<FieldError>,
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether `anyOf` is exactly `[{type: integer}, {type: string}]`.
fn is_int_or_string_any_of(obj: &Map<String, Value>) -> bool {
    let Some(Value::Array(any_of)) = obj.get("anyOf") else {
        return false;
    };
    let only_type = |v: &Value, t: &str| {
        v.as_object()
            .is_some_and(|m| m.len() == 1 && m.get("type").and_then(Value::as_str) == Some(t))
    };
    any_of.len() == 2 && only_type(&any_of[0], "integer") && only_type(&any_of[1], "string")
}

fn is_int_or_string_all_of(obj: &Map<String, Value>) -> bool {
    let Some(Value::Array(all_of)) = obj.get("allOf") else {
        return false;
    };
    all_of
        .first()
        .and_then(Value::as_object)
        .is_some_and(is_int_or_string_any_of)
}

impl Parser {
    fn err(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    fn wrong_json(&mut self, path: &str, key: &str, v: &Value, want: &str) {
        self.err(FieldError::invalid(
            format!("{path}.{key}"),
            format!("{}: must be {want}", go_value(v)),
        ));
    }

    fn get_bool(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
        match obj.get(key)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_json(path, key, other, "a boolean");
                None
            }
        }
    }

    fn get_str<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, path: &str) -> Option<&'v str> {
        match obj.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => {
                self.wrong_json(path, key, other, "a string");
                None
            }
        }
    }

    fn get_f64(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<f64> {
        match obj.get(key)? {
            Value::Null => None,
            Value::Number(n) => n.as_f64(),
            other => {
                self.wrong_json(path, key, other, "a number");
                None
            }
        }
    }

    fn get_i64(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<i64> {
        match obj.get(key)? {
            Value::Null => None,
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Some(i);
                }
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
                    _ => {
                        self.wrong_json(path, key, &Value::Number(n.clone()), "an integer");
                        None
                    }
                }
            }
            other => {
                self.wrong_json(path, key, other, "an integer");
                None
            }
        }
    }

    fn get_strings(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Vec<String> {
        match obj.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.wrong_json(path, key, other, "a string"),
                    }
                }
                out
            }
            Some(other) => {
                self.wrong_json(path, key, other, "a list of strings");
                Vec::new()
            }
        }
    }

    /// Parses one schema node and checks it, recursing into its children.
    fn node(&mut self, value: &Value, c: &Ctx) -> StructuralSchema {
        let p = c.path.as_str();
        let mut n = Node {
            json: self.json.clone(),
            pointer: c.pointer.clone(),
            ..Node::default()
        };
        let Some(obj) = value.as_object() else {
            self.err(FieldError::invalid(
                p,
                format!("{}: must be a JSON schema object", go_value(value)),
            ));
            return StructuralSchema { node: Arc::new(n) };
        };
        let nested = c.junctor && !c.exempt;

        // --- type -----------------------------------------------------------
        let type_str = self.get_str(obj, "type", p).unwrap_or("");
        let has_type = !type_str.is_empty();
        if has_type {
            n.ty = Type::parse(type_str);
            if n.ty.is_none() {
                if type_str == "null" {
                    self.err(FieldError::forbidden(
                        format!("{p}.type"),
                        "type cannot be set to null, use nullable as an alternative",
                    ));
                } else {
                    self.err(FieldError::not_supported(
                        format!("{p}.type"),
                        format!(
                            "{}: supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"",
                            quote(type_str)
                        ),
                    ));
                }
            }
            if nested {
                self.err(FieldError::forbidden(
                    format!("{p}.type"),
                    "must be empty to be structural",
                ));
            }
        }

        // --- unsupported JSON-schema features --------------------------------
        if obj.contains_key("$ref") {
            self.err(FieldError::forbidden(format!("{p}.$ref"), "$ref is not supported"));
        }
        if obj.get("id").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            self.err(FieldError::forbidden(format!("{p}.id"), "id is not supported"));
        }
        if obj.get("additionalItems").is_some_and(|v| !v.is_null()) {
            self.err(FieldError::forbidden(
                format!("{p}.additionalItems"),
                "additionalItems is not supported",
            ));
        }
        for (key, what) in [
            ("patternProperties", "patternProperties is not supported"),
            ("definitions", "definitions is not supported"),
        ] {
            if obj.get(key).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
                self.err(FieldError::forbidden(format!("{p}.{key}"), what));
            }
        }
        if obj.get("dependencies").is_some_and(|v| !v.is_null()) {
            self.err(FieldError::forbidden(
                format!("{p}.dependencies"),
                "dependencies is not supported",
            ));
        }

        // --- generic keywords -------------------------------------------------
        n.nullable = self.get_bool(obj, "nullable", p).unwrap_or(false);
        if n.nullable {
            if c.level == Level::Root && !c.junctor {
                self.err(FieldError::forbidden(
                    format!("{p}.nullable"),
                    "nullable cannot be true at the root",
                ));
            }
            if nested {
                self.err(FieldError::forbidden(
                    format!("{p}.nullable"),
                    "must be false to be structural",
                ));
            }
        }
        for key in ["title", "description"] {
            let text = self.get_str(obj, key, p).unwrap_or("");
            if nested && !text.is_empty() {
                self.err(FieldError::forbidden(
                    format!("{p}.{key}"),
                    "must be empty to be structural",
                ));
            }
        }
        if let Some(default) = obj.get("default") {
            n.has_default_keyword = true;
            if nested {
                self.err(FieldError::forbidden(
                    format!("{p}.default"),
                    "must be undefined to be structural",
                ));
            } else if let Some(reason) = &c.default_forbidden {
                self.err(FieldError::forbidden(
                    format!("{p}.default"),
                    format!("must not be set {reason}"),
                ));
            }
            if !default.is_null() {
                n.default = Some(default.clone());
            }
        }

        // --- value validations -----------------------------------------------
        if let Some(name) = self.get_str(obj, "format", p) {
            n.format = Format::parse(name).map(|f| (f, name.to_string()));
        }
        match obj.get("enum") {
            None | Some(Value::Null) => {}
            Some(Value::Array(values)) => n.enum_values = Some(values.clone()),
            Some(other) => self.wrong_json(p, "enum", other, "a list"),
        }
        n.required = self.get_strings(obj, "required", p);
        n.minimum = self.get_f64(obj, "minimum", p);
        n.maximum = self.get_f64(obj, "maximum", p);
        n.exclusive_minimum = self.get_bool(obj, "exclusiveMinimum", p).unwrap_or(false);
        n.exclusive_maximum = self.get_bool(obj, "exclusiveMaximum", p).unwrap_or(false);
        n.multiple_of = self.get_f64(obj, "multipleOf", p);
        n.min_length = self.get_i64(obj, "minLength", p);
        n.max_length = self.get_i64(obj, "maxLength", p);
        n.min_items = self.get_i64(obj, "minItems", p);
        n.max_items = self.get_i64(obj, "maxItems", p);
        n.min_properties = self.get_i64(obj, "minProperties", p);
        n.max_properties = self.get_i64(obj, "maxProperties", p);
        n.unique_items = self.get_bool(obj, "uniqueItems", p).unwrap_or(false);
        if n.unique_items {
            self.err(FieldError::forbidden(
                format!("{p}.uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ));
        }
        if let Some(pattern) = self.get_str(obj, "pattern", p)
            && !pattern.is_empty()
        {
            match Regex::new(pattern) {
                Ok(re) => n.pattern = Some(re),
                Err(e) => self.err(FieldError::invalid(
                    format!("{p}.pattern"),
                    format!(
                        "{}: must be a valid regular expression, but isn't: {}",
                        quote(pattern),
                        regex_error_text(&e)
                    ),
                )),
            }
        }

        // --- Kubernetes extensions --------------------------------------------
        let preserve = self.get_bool(obj, "x-kubernetes-preserve-unknown-fields", p);
        if preserve == Some(false) {
            self.err(FieldError::invalid(
                format!("{p}.x-kubernetes-preserve-unknown-fields"),
                "false: must be true or undefined",
            ));
        }
        n.preserve_unknown = preserve == Some(true);
        n.embedded = self.get_bool(obj, "x-kubernetes-embedded-resource", p).unwrap_or(false);
        n.int_or_string = self.get_bool(obj, "x-kubernetes-int-or-string", p).unwrap_or(false);
        if nested {
            for (set, key) in [
                (n.preserve_unknown, "x-kubernetes-preserve-unknown-fields"),
                (n.embedded, "x-kubernetes-embedded-resource"),
                (n.int_or_string, "x-kubernetes-int-or-string"),
            ] {
                if set {
                    self.err(FieldError::forbidden(
                        format!("{p}.{key}"),
                        "must be false to be structural",
                    ));
                }
            }
        }
        let list_type = self.get_str(obj, "x-kubernetes-list-type", p);
        if let Some(lt) = list_type {
            n.list_type = match lt {
                "atomic" => Some(ListType::Atomic),
                "set" => Some(ListType::Set),
                "map" => Some(ListType::Map),
                other => {
                    self.err(FieldError::not_supported(
                        format!("{p}.x-kubernetes-list-type"),
                        format!("{}: supported values: \"atomic\", \"set\", \"map\"", quote(other)),
                    ));
                    None
                }
            };
            if n.ty != Some(Type::Array) {
                if has_type {
                    self.err(FieldError::invalid(
                        format!("{p}.type"),
                        format!(
                            "{}: must be array if x-kubernetes-list-type is specified",
                            quote(type_str)
                        ),
                    ));
                } else if !nested {
                    self.err(FieldError::required(
                        format!("{p}.type"),
                        "must be array if x-kubernetes-list-type is specified",
                    ));
                }
            }
            if nested {
                self.err(FieldError::forbidden(
                    format!("{p}.x-kubernetes-list-type"),
                    "must be undefined to be structural",
                ));
            }
        }
        n.list_map_keys = self.get_strings(obj, "x-kubernetes-list-map-keys", p);
        if !n.list_map_keys.is_empty() {
            match list_type {
                None => self.err(FieldError::required(
                    format!("{p}.x-kubernetes-list-type"),
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )),
                Some("map") => {}
                Some(other) => self.err(FieldError::invalid(
                    format!("{p}.x-kubernetes-list-type"),
                    format!(
                        "{}: must be map if x-kubernetes-list-map-keys is non-empty",
                        quote(other)
                    ),
                )),
            }
            if nested {
                self.err(FieldError::forbidden(
                    format!("{p}.x-kubernetes-list-map-keys"),
                    "must be empty to be structural",
                ));
            }
        }
        if let Some(mt) = self.get_str(obj, "x-kubernetes-map-type", p) {
            n.map_type = Some(mt.to_string());
            if mt != "atomic" && mt != "granular" {
                self.err(FieldError::not_supported(
                    format!("{p}.x-kubernetes-map-type"),
                    format!("{}: supported values: \"atomic\", \"granular\"", quote(mt)),
                ));
            }
            if n.ty != Some(Type::Object) {
                if has_type {
                    self.err(FieldError::invalid(
                        format!("{p}.type"),
                        format!(
                            "{}: must be object if x-kubernetes-map-type is specified",
                            quote(type_str)
                        ),
                    ));
                } else if !nested {
                    self.err(FieldError::required(
                        format!("{p}.type"),
                        "must be object if x-kubernetes-map-type is specified",
                    ));
                }
            }
            if nested {
                self.err(FieldError::forbidden(
                    format!("{p}.x-kubernetes-map-type"),
                    "must be undefined to be structural",
                ));
            }
        }
        if nested
            && obj
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        {
            self.err(FieldError::forbidden(
                format!("{p}.x-kubernetes-validations"),
                "must be empty to be structural",
            ));
        }

        // --- children -----------------------------------------------------------
        match obj.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(props)) => {
                for (key, sub) in props {
                    if c.junctor && key == "metadata" {
                        self.err(FieldError::forbidden(
                            format!("{p}.properties[metadata]"),
                            "must not be specified in a nested context",
                        ));
                    }
                    let default_forbidden = if c.level == Level::Root && !c.junctor && is_meta_field(key) {
                        Some(format!("in top-level {key}"))
                    } else {
                        c.default_forbidden.clone()
                    };
                    let child = Ctx {
                        path: format!("{p}.properties[{key}]"),
                        pointer: format!("{}/properties/{}", c.pointer, escape_pointer(key)),
                        level: Level::Field,
                        junctor: c.junctor,
                        exempt: false,
                        skip_any_of: false,
                        default_forbidden,
                    };
                    let parsed = self.node(sub, &child);
                    n.has_property_defaults |= parsed.node.default.is_some();
                    n.properties.insert(key.clone(), parsed);
                }
            }
            Some(other) => self.wrong_json(p, "properties", other, "an object"),
        }
        match obj.get("items") {
            None | Some(Value::Null) => {}
            Some(Value::Array(_)) => self.err(FieldError::forbidden(
                format!("{p}.items"),
                "items must be a schema object and not an array",
            )),
            Some(sub) => {
                let child = Ctx {
                    path: format!("{p}.items"),
                    pointer: format!("{}/items", c.pointer),
                    level: Level::Item,
                    junctor: c.junctor,
                    exempt: false,
                    skip_any_of: false,
                    default_forbidden: c.default_forbidden.clone(),
                };
                n.items = Some(self.node(sub, &child));
            }
        }
        match obj.get("additionalProperties") {
            None | Some(Value::Null) => {}
            Some(ap) => {
                if nested {
                    self.err(FieldError::forbidden(
                        format!("{p}.additionalProperties"),
                        "must be undefined to be structural",
                    ));
                }
                if !n.properties.is_empty() && ap != &Value::Bool(true) {
                    self.err(FieldError::forbidden(
                        format!("{p}.additionalProperties"),
                        "additionalProperties and properties are mutual exclusive",
                    ));
                }
                if !c.junctor {
                    if c.level == Level::Root {
                        self.err(FieldError::forbidden(
                            format!("{p}.additionalProperties"),
                            "must not be used at the root",
                        ));
                    }
                    if n.embedded {
                        self.err(FieldError::forbidden(
                            format!("{p}.additionalProperties"),
                            "must not be used if x-kubernetes-embedded-resource is set",
                        ));
                    }
                }
                n.additional = match ap {
                    Value::Bool(b) => Some(Additional::Bool(*b)),
                    sub => {
                        let child = Ctx {
                            path: format!("{p}.additionalProperties"),
                            pointer: format!("{}/additionalProperties", c.pointer),
                            level: Level::Field,
                            junctor: c.junctor,
                            exempt: false,
                            skip_any_of: false,
                            default_forbidden: c.default_forbidden.clone(),
                        };
                        Some(Additional::Schema(self.node(sub, &child)))
                    }
                };
            }
        }
        let own_any_of_exempt = if c.junctor {
            c.skip_any_of
        } else {
            is_int_or_string_any_of(obj)
        };
        let first_all_of_skips = !c.junctor && is_int_or_string_all_of(obj);
        for key in ["allOf", "anyOf", "oneOf"] {
            match obj.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Array(subs)) => {
                    let mut parsed = Vec::with_capacity(subs.len());
                    for (i, sub) in subs.iter().enumerate() {
                        let child = Ctx {
                            path: format!("{p}.{key}[{i}]"),
                            pointer: format!("{}/{key}/{i}", c.pointer),
                            level: c.level,
                            junctor: true,
                            exempt: key == "anyOf" && own_any_of_exempt,
                            skip_any_of: key == "allOf" && i == 0 && first_all_of_skips,
                            default_forbidden: None,
                        };
                        parsed.push(self.node(sub, &child));
                    }
                    match key {
                        "allOf" => n.all_of = parsed,
                        "anyOf" => n.any_of = parsed,
                        _ => n.one_of = parsed,
                    }
                }
                Some(other) => self.wrong_json(p, key, other, "a list of schemas"),
            }
        }
        if let Some(sub) = obj.get("not").filter(|v| !v.is_null()) {
            let child = Ctx {
                path: format!("{p}.not"),
                pointer: format!("{}/not", c.pointer),
                level: c.level,
                junctor: true,
                exempt: false,
                skip_any_of: false,
                default_forbidden: None,
            };
            n.not = Some(self.node(sub, &child));
        }

        // --- structural invariants (not inside junctors) ------------------------
        if !c.junctor {
            self.structural_checks(&n, obj, c, type_str);
        }
        self.list_checks(&n, p);

        StructuralSchema { node: Arc::new(n) }
    }

    fn structural_checks(&mut self, n: &Node, obj: &Map<String, Value>, c: &Ctx, type_str: &str) {
        let p = c.path.as_str();
        let has_type = !type_str.is_empty();
        if n.ty == Some(Type::Array) && n.items.is_none() && !obj.get("items").is_some_and(Value::is_array) {
            self.err(FieldError::required(format!("{p}.items"), "must be specified"));
        }
        if n.int_or_string && n.preserve_unknown {
            self.err(FieldError::invalid(
                format!("{p}.x-kubernetes-preserve-unknown-fields"),
                "true: must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if n.int_or_string && n.embedded {
            self.err(FieldError::invalid(
                format!("{p}.x-kubernetes-embedded-resource"),
                "true: must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if n.embedded && type_str != "object" {
            if has_type {
                self.err(FieldError::invalid(
                    format!("{p}.type"),
                    format!(
                        "{}: must be object if x-kubernetes-embedded-resource is true",
                        quote(type_str)
                    ),
                ));
            } else {
                self.err(FieldError::required(
                    format!("{p}.type"),
                    "must be object if x-kubernetes-embedded-resource is true",
                ));
            }
        } else if !has_type && !n.int_or_string && !n.preserve_unknown {
            let detail = match c.level {
                Level::Root => "must not be empty at the root",
                Level::Item => "must not be empty for specified array items",
                Level::Field => "must not be empty for specified object fields",
            };
            self.err(FieldError::required(format!("{p}.type"), detail));
        }
        if c.level == Level::Root && has_type && type_str != "object" {
            self.err(FieldError::invalid(
                format!("{p}.type"),
                format!("{}: must be object at the root", quote(type_str)),
            ));
        }
        let check_metadata = c.level == Level::Root || n.embedded;
        if check_metadata {
            for key in ["kind", "apiVersion"] {
                if let Some(prop) = n.properties.get(key)
                    && prop.node.ty != Some(Type::String)
                {
                    self.err(FieldError::invalid(
                        format!("{p}.properties[{key}].type"),
                        format!("{}: must be string", quote(prop.type_name().unwrap_or(""))),
                    ));
                }
            }
        }
        if let Some(meta) = n.properties.get("metadata") {
            if check_metadata && meta.node.ty != Some(Type::Object) {
                self.err(FieldError::invalid(
                    format!("{p}.properties[metadata].type"),
                    format!("{}: must be object", quote(meta.type_name().unwrap_or(""))),
                ));
            }
            if c.level == Level::Root && !root_metadata_is_restricted_to_names(meta.to_json()) {
                self.err(FieldError::forbidden(
                    format!("{p}.properties[metadata]"),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
        if n.embedded && !n.preserve_unknown && n.properties.is_empty() {
            self.err(FieldError::required(
                format!("{p}.properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            ));
        }
    }

    /// `x-kubernetes-list-type` set/map requirements on the items schema.
    fn list_checks(&mut self, n: &Node, p: &str) {
        let Some(lt) = n.list_type else { return };
        if lt == ListType::Atomic {
            return;
        }
        let lt_name = if lt == ListType::Set { "set" } else { "map" };
        if let Some(items) = &n.items {
            let it = &items.node;
            if it.nullable {
                self.err(FieldError::forbidden(
                    format!("{p}.items.nullable"),
                    format!("cannot be nullable when x-kubernetes-list-type is {lt_name}"),
                ));
            }
            if lt == ListType::Set {
                match it.ty {
                    Some(Type::Array) => {
                        if let Some(inner) = it.list_type.filter(|l| *l != ListType::Atomic) {
                            let name = if inner == ListType::Set { "set" } else { "map" };
                            self.err(FieldError::invalid(
                                format!("{p}.items.x-kubernetes-list-type"),
                                format!(
                                    "{}: must be atomic as item of a list with x-kubernetes-list-type=set",
                                    quote(name)
                                ),
                            ));
                        }
                    }
                    Some(Type::Object) if it.map_type.as_deref() != Some("atomic") => {
                        self.err(FieldError::invalid(
                            format!("{p}.items.x-kubernetes-map-type"),
                            format!(
                                "{}: must be atomic as item of a list with x-kubernetes-list-type=set",
                                quote(it.map_type.as_deref().unwrap_or("null"))
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        if lt != ListType::Map {
            return;
        }
        if n.list_map_keys.is_empty() {
            self.err(FieldError::required(
                format!("{p}.x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        let Some(items) = &n.items else {
            self.err(FieldError::required(
                format!("{p}.items"),
                "must have a schema if x-kubernetes-list-type is map",
            ));
            return;
        };
        let it = &items.node;
        if it.ty != Some(Type::Object) {
            self.err(FieldError::invalid(
                format!("{p}.items.type"),
                format!(
                    "{}: must be object if parent array's x-kubernetes-list-type is map",
                    quote(it.ty.map_or("", Type::name))
                ),
            ));
            return;
        }
        let keys_repr = go_string_slice(&n.list_map_keys);
        let mut seen: Vec<&str> = Vec::new();
        for key in &n.list_map_keys {
            match it.properties.get(key) {
                Some(prop) => {
                    if matches!(prop.node.ty, Some(Type::Array | Type::Object)) {
                        self.err(FieldError::invalid(
                            format!("{p}.items.properties[{key}].type"),
                            format!(
                                "{}: must be a scalar type if parent array's x-kubernetes-list-type is map",
                                quote("object")
                            ),
                        ));
                    }
                    if !it.required.iter().any(|r| r == key) && !prop.node.has_default_keyword {
                        self.err(FieldError::required(
                            format!("{p}.items.properties[{key}].default"),
                            "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                        ));
                    }
                    if prop.node.nullable {
                        self.err(FieldError::forbidden(
                            format!("{p}.items.properties[{key}].nullable"),
                            "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                        ));
                    }
                }
                None => self.err(FieldError::invalid(
                    format!("{p}.x-kubernetes-list-map-keys"),
                    format!("{keys_repr}: entries must all be names of item properties"),
                )),
            }
            if seen.contains(&key.as_str()) {
                self.err(FieldError::invalid(
                    format!("{p}.x-kubernetes-list-map-keys"),
                    format!("{keys_repr}: must not contain duplicate entries"),
                ));
            }
            seen.push(key);
        }
    }

    /// Every property and `items` mentioned inside the root's logical junctors
    /// must also be specified outside of them.
    fn completeness(&mut self, root: &StructuralSchema, prefix: &str) {
        let n = &root.node;
        let mut junctors: Vec<(String, &StructuralSchema)> = Vec::new();
        if let Some(not) = &n.not {
            junctors.push((format!("{prefix}.not"), not));
        }
        for (key, list) in [("allOf", &n.all_of), ("anyOf", &n.any_of), ("oneOf", &n.one_of)] {
            for (i, sub) in list.iter().enumerate() {
                junctors.push((format!("{prefix}.{key}[{i}]"), sub));
            }
        }
        for (v_path, sub) in junctors {
            self.complete(sub, Some(root), prefix, &v_path);
        }
    }

    fn complete(&mut self, v: &StructuralSchema, s: Option<&StructuralSchema>, s_path: &str, v_path: &str) {
        let Some(s) = s else {
            self.err(FieldError::required(
                s_path,
                format!("because it is defined in {v_path}"),
            ));
            return;
        };
        let vn = &v.node;
        if let Some(not) = &vn.not {
            self.complete(not, Some(s), s_path, &format!("{v_path}.not"));
        }
        for (key, list) in [("allOf", &vn.all_of), ("anyOf", &vn.any_of), ("oneOf", &vn.one_of)] {
            for (i, sub) in list.iter().enumerate() {
                self.complete(sub, Some(s), s_path, &format!("{v_path}.{key}[{i}]"));
            }
        }
        if let Some(items) = &vn.items {
            self.complete(
                items,
                s.node.items.as_ref(),
                &format!("{s_path}.items"),
                &format!("{v_path}.items"),
            );
        }
        for (key, sub) in &vn.properties {
            self.complete(
                sub,
                s.node.properties.get(key),
                &format!("{s_path}.properties[{key}]"),
                &format!("{v_path}.properties[{key}]"),
            );
        }
    }
}

/// Whether the root's `metadata` schema only restricts `name`/`generateName`.
fn root_metadata_is_restricted_to_names(meta: &Value) -> bool {
    let Some(obj) = meta.as_object() else {
        return false;
    };
    obj.iter().all(|(key, value)| match key.as_str() {
        "type" | "default" => true,
        "properties" => value
            .as_object()
            .is_some_and(|props| props.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

/// Go's regexp reports `error parsing regexp: …`; keep the gist of Rust's
/// multi-line message in the same shape.
fn regex_error_text(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ");
    format!("error parsing regexp: {last}")
}

/// Defaults must be pruned and must validate against their own schema.
fn check_defaults(s: &StructuralSchema, path: &str, errors: &mut Vec<FieldError>) {
    let n = &s.node;
    if let Some(default) = &n.default {
        let mut pruned = default.clone();
        let mut removed = Vec::new();
        prune_value(&mut pruned, Some(n), n.embedded, &Path::ROOT, &mut removed);
        let field = format!("{path}.default");
        if !removed.is_empty() || &pruned != default {
            errors.push(FieldError::invalid(
                field.clone(),
                format!("{}: must not have unknown fields", go_value(default)),
            ));
        }
        let mut v = Validator {
            base: &field,
            meta: Vec::new(),
            lists: Vec::new(),
        };
        let mut out = Vec::new();
        v.value(default, n, &Path::ROOT, false, &mut out);
        errors.append(&mut out);
        errors.append(&mut v.meta);
        errors.append(&mut v.lists);
    }
    // Like kube-apiserver, defaults below additionalProperties are not followed.
    if let Some(items) = &n.items {
        check_defaults(items, &format!("{path}.items"), errors);
    }
    for (key, prop) in &n.properties {
        check_defaults(prop, &format!("{path}.properties[{key}]"), errors);
    }
}

// ---------------------------------------------------------------------------
// Lazily rendered paths
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    /// A declared property.
    Prop(&'a str),
    /// A key matched by `additionalProperties`.
    Key(&'a str),
    Index(usize),
}

/// A path as a linked list on the stack; rendered only when an error needs it.
#[derive(Clone, Copy)]
struct Path<'a> {
    seg: Seg<'a>,
    parent: Option<&'a Path<'a>>,
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        seg: Seg::Root,
        parent: None,
    };

    fn prop<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            seg: Seg::Prop(key),
            parent: Some(self),
        }
    }

    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            seg: Seg::Key(key),
            parent: Some(self),
        }
    }

    fn index(&self, i: usize) -> Path<'_> {
        Path {
            seg: Seg::Index(i),
            parent: Some(self),
        }
    }

    /// Renders the path. The OpenAPI validator joins map keys with dots
    /// (`spec.labels.app`); `field.Path` uses brackets (`spec.labels[app]`).
    fn render(&self, brackets_for_keys: bool) -> String {
        let mut segs: Vec<Seg<'_>> = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match *seg {
                Seg::Root => {}
                Seg::Key(k) if brackets_for_keys => {
                    out.push('[');
                    out.push_str(k);
                    out.push(']');
                }
                Seg::Prop(k) | Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

fn join_path(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else if rel.is_empty() {
        base.to_string()
    } else if rel.starts_with('[') {
        format!("{base}{rel}")
    } else {
        format!("{base}.{rel}")
    }
}

// ---------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------

fn record(path: &Path, key: &str, out: &mut Vec<String>) {
    out.push(format!(".{}", path.prop(key).render(false)));
}

/// Structural pruning. `resource_root` marks the object root (whose apiVersion,
/// kind and metadata are never touched).
fn prune_value(v: &mut Value, s: Option<&Node>, resource_root: bool, path: &Path, out: &mut Vec<String>) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(v, s, resource_root, path, out);
        return;
    }
    match v {
        Value::Object(map) => {
            let Some(s) = s else {
                for key in map.keys() {
                    record(path, key, out);
                }
                map.clear();
                return;
            };
            let keep_meta = resource_root || s.embedded;
            map.retain(|key, val| {
                if keep_meta && is_meta_field(key) {
                    if !resource_root && key == "metadata" {
                        coerce_object_meta(val, &path.prop(key), out);
                    }
                    return true;
                }
                if let Some(prop) = s.properties.get(key) {
                    prune_value(val, Some(&prop.node), false, &path.prop(key), out);
                    true
                } else if let Some(additional) = &s.additional {
                    prune_value(val, additional_node(additional), false, &path.prop(key), out);
                    true
                } else {
                    record(path, key, out);
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_ref()).map(|i| &*i.node);
            for (i, item) in items.iter_mut().enumerate() {
                if item.is_object() || item.is_array() {
                    prune_value(item, item_schema, false, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

fn additional_node(a: &Additional) -> Option<&Node> {
    match a {
        Additional::Schema(s) => Some(&s.node),
        Additional::Bool(_) => None,
    }
}

/// Pruning below `x-kubernetes-preserve-unknown-fields: true`: unknown fields
/// stay, declared ones are pruned by their schema.
fn skip_prune(v: &mut Value, s: &Node, resource_root: bool, path: &Path, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let keep_meta = resource_root || s.embedded;
            for (key, val) in map.iter_mut() {
                if keep_meta && is_meta_field(key) {
                    if !resource_root && key == "metadata" {
                        coerce_object_meta(val, &path.prop(key), out);
                    }
                    continue;
                }
                if let Some(prop) = s.properties.get(key) {
                    prune_value(val, Some(&prop.node), false, &path.prop(key), out);
                } else if let Some(additional) = &s.additional {
                    prune_value(val, additional_node(additional), false, &path.prop(key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item, Some(&item_schema.node), false, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

/// The `metadata` of an embedded resource keeps only `ObjectMeta` fields.
fn coerce_object_meta(v: &mut Value, path: &Path, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        map.retain(|key, _| {
            let known = OBJECT_META_FIELDS.contains(&key.as_str());
            if !known {
                record(path, key, out);
            }
            known
        });
    }
}

// ---------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------

fn field_schema<'n>(s: &'n Node, key: &str) -> Option<&'n Node> {
    match s.properties.get(key) {
        Some(p) => Some(&p.node),
        None => s.additional.as_ref().and_then(additional_node),
    }
}

fn default_value(v: &mut Value, s: &Node, resource_root: bool) {
    match v {
        Value::Object(map) => {
            let skip = |key: &str| resource_root && key == "metadata";
            // Non-nullable nulls without a default are dropped first.
            if map.values().any(Value::is_null) {
                map.retain(|key, val| {
                    if !val.is_null() || skip(key) {
                        return true;
                    }
                    match field_schema(s, key) {
                        Some(fs) => fs.nullable || fs.default.is_some(),
                        None => true,
                    }
                });
            }
            if s.has_property_defaults {
                for (key, prop) in &s.properties {
                    let Some(default) = &prop.node.default else {
                        continue;
                    };
                    if skip(key) {
                        continue;
                    }
                    match map.get_mut(key.as_str()) {
                        None => {
                            map.insert(key.clone(), default.clone());
                        }
                        Some(val) if val.is_null() && !prop.node.nullable => *val = default.clone(),
                        Some(_) => {}
                    }
                }
            }
            for (key, val) in map.iter_mut() {
                if skip(key) {
                    continue;
                }
                if let Some(prop) = s.properties.get(key) {
                    if val.is_object() || val.is_array() {
                        default_value(val, &prop.node, false);
                    }
                } else if let Some(Additional::Schema(add)) = &s.additional {
                    let an = &add.node;
                    if val.is_null()
                        && !an.nullable
                        && let Some(d) = &an.default
                    {
                        *val = d.clone();
                    }
                    if val.is_object() || val.is_array() {
                        default_value(val, an, false);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = &s.items else { return };
            let it = &item_schema.node;
            for item in items.iter_mut() {
                if item.is_null()
                    && !it.nullable
                    && let Some(d) = &it.default
                {
                    *item = d.clone();
                }
                if item.is_object() || item.is_array() {
                    default_value(item, it, false);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// The JSON type of a value as the OpenAPI validator names it. Integers beyond
/// int64 decode as floats in kube-apiserver, so they count as numbers.
fn data_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.as_i64().is_some() => "integer",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// go-openapi's `IsFloat64AJSONInteger`.
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_991.0;
    const EPSILON: f64 = 1e-9;
    if !f.is_finite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    if g == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / (f.abs() + g.abs()) < EPSILON
}

fn type_matches(s: &Node, v: &Value) -> bool {
    let dt = data_type(v);
    let float_int = || matches!(v, Value::Number(n) if n.as_i64().is_none() && n.as_f64().is_some_and(is_json_integer));
    if s.int_or_string {
        return dt == "integer" || dt == "string" || float_int();
    }
    match s.ty {
        None => true,
        Some(Type::Integer) => dt == "integer" || float_int(),
        Some(Type::Number) => dt == "integer" || dt == "number",
        Some(t) => dt == t.name(),
    }
}

fn type_label(s: &Node) -> &'static str {
    if s.int_or_string {
        "integer,string"
    } else {
        s.ty.map_or("", Type::name)
    }
}

/// The format go-openapi infers for a Go value (used in one type message).
fn data_format(v: &Value) -> &'static str {
    match v {
        Value::Number(n) if n.as_i64().is_some() => "int64",
        Value::Number(_) => "float64",
        _ => "",
    }
}

enum NumVal {
    Int(i64),
    Float(f64),
}

fn num_val(n: &Number) -> NumVal {
    match n.as_i64() {
        Some(i) => NumVal::Int(i),
        None => NumVal::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Prints a bound the way the validator does: as an int64 when compared with
/// an integer, as a Go float otherwise.
fn bound_repr(bound: f64, data: &NumVal) -> String {
    match data {
        NumVal::Int(_) if bound.fract() == 0.0 && bound.abs() < 9.2e18 => (bound as i64).to_string(),
        _ => go_float(bound),
    }
}

struct Validator<'b> {
    /// Prefix of every field path (the `…default` of a CRD schema node when
    /// validating defaults); empty for custom resources.
    base: &'b str,
    /// Embedded resource (apiVersion/kind/metadata) errors.
    meta: Vec<FieldError>,
    /// `x-kubernetes-list-type` errors.
    lists: Vec<FieldError>,
}

impl Validator<'_> {
    fn field(&self, p: &Path, brackets: bool) -> String {
        join_path(self.base, &p.render(brackets))
    }

    fn value(&mut self, v: &Value, s: &Node, path: &Path, root: bool, out: &mut Vec<FieldError>) {
        let has_type = s.ty.is_some() || s.int_or_string;
        if v.is_null() {
            if has_type && !s.nullable {
                out.push(self.type_error(path, type_label(s), "null"));
            }
            if let Some(values) = &s.enum_values
                && !values.iter().any(Value::is_null)
            {
                out.push(self.enum_error(path, v, values));
            }
            return;
        }

        // type
        if has_type && !type_matches(s, v) {
            let is_string_or_array = v.is_string() || v.is_array();
            match &s.format {
                Some((_, name)) if !is_string_or_array => {
                    out.push(self.type_error(path, name, data_format(v)));
                }
                // go-openapi skips the type check for formatted strings/arrays.
                Some(_) if !matches!(s.ty, Some(Type::Integer | Type::Number)) => {}
                _ => out.push(self.type_error(path, type_label(s), data_type(v))),
            }
        }

        // allOf / anyOf / oneOf / not
        if !s.all_of.is_empty() || !s.any_of.is_empty() || !s.one_of.is_empty() || s.not.is_some() {
            self.junctors(v, s, path, out);
        }

        match v {
            Value::String(text) => {
                self.string(text, v, s, path, out);
                if let Some((format, name)) = &s.format
                    && !check_format(*format, text)
                {
                    let mp = path.render(false);
                    out.push(FieldError::type_invalid(
                        join_path(self.base, &mp),
                        format!("{q}: {mp} in body must be of type {name}: {q}", q = quote(text)),
                    ));
                }
            }
            Value::Number(n) => self.number(n, s, path, out),
            Value::Array(items) => {
                if let Some(item_schema) = &s.items {
                    for (i, item) in items.iter().enumerate() {
                        self.value(item, &item_schema.node, &path.index(i), false, out);
                    }
                }
                self.array(items, s, path, out);
            }
            _ => {}
        }

        if let Some(values) = &s.enum_values
            && !values.iter().any(|e| json_equal(e, v))
        {
            out.push(self.enum_error(path, v, values));
        }

        if let Value::Object(map) = v {
            self.object(map, s, path, root, out);
            if s.embedded && !root {
                self.embedded(map, path);
            }
        }
        if let Value::Array(items) = v
            && matches!(s.list_type, Some(ListType::Set | ListType::Map))
        {
            self.list(items, s, path);
        }
    }

    fn type_error(&self, path: &Path, expected: &str, got: &str) -> FieldError {
        let mp = path.render(false);
        FieldError::type_invalid(
            join_path(self.base, &mp),
            format!("{q}: {mp} in body must be of type {expected}: {q}", q = quote(got)),
        )
    }

    fn enum_error(&self, path: &Path, v: &Value, values: &[Value]) -> FieldError {
        let supported: Vec<String> = values
            .iter()
            .map(|e| match e {
                Value::String(s) => quote(s),
                other => quote(&go_json(other)),
            })
            .collect();
        FieldError::not_supported(
            self.field(path, false),
            format!("{}: supported values: {}", go_value(v), supported.join(", ")),
        )
    }

    fn invalid(&self, path: &Path, value: &str, detail: String) -> FieldError {
        FieldError::invalid(self.field(path, false), format!("{value}: {detail}"))
    }

    fn junctors(&mut self, v: &Value, s: &Node, path: &Path, out: &mut Vec<FieldError>) {
        let composite = |base: &str, msg: String| FieldError::invalid(base, format!("\"\": {msg}"));
        if !s.any_of.is_empty() {
            let mut best: Option<Vec<FieldError>> = None;
            let mut ok = false;
            for sub in &s.any_of {
                let mut tmp = Vec::new();
                self.value(v, &sub.node, path, false, &mut tmp);
                if tmp.is_empty() {
                    ok = true;
                    best = None;
                    break;
                }
                if best.as_ref().is_none_or(|b| tmp.len() < b.len()) {
                    best = Some(tmp);
                }
            }
            if !ok {
                out.push(composite(
                    self.base,
                    format!(
                        "{} must validate at least one schema (anyOf)",
                        quote(&path.render(false))
                    ),
                ));
            }
            if let Some(best) = best {
                out.extend(best);
            }
        }
        if !s.one_of.is_empty() {
            let mut best: Option<Vec<FieldError>> = None;
            let mut valid = 0usize;
            for sub in &s.one_of {
                let mut tmp = Vec::new();
                self.value(v, &sub.node, path, false, &mut tmp);
                if tmp.is_empty() {
                    valid += 1;
                    best = None;
                } else if valid == 0 && best.as_ref().is_none_or(|b| tmp.len() < b.len()) {
                    best = Some(tmp);
                }
            }
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                out.push(composite(
                    self.base,
                    format!(
                        "{} must validate one and only one schema (oneOf). {found}",
                        quote(&path.render(false))
                    ),
                ));
                if let Some(best) = best {
                    out.extend(best);
                }
            }
        }
        if !s.all_of.is_empty() {
            let mut valid = 0usize;
            for sub in &s.all_of {
                let before = out.len();
                self.value(v, &sub.node, path, false, out);
                if out.len() == before {
                    valid += 1;
                }
            }
            if valid != s.all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                out.push(composite(
                    self.base,
                    format!(
                        "{} must validate all the schemas (allOf){none}",
                        quote(&path.render(false))
                    ),
                ));
            }
        }
        if let Some(not) = &s.not {
            let mut tmp = Vec::new();
            self.value(v, &not.node, path, false, &mut tmp);
            if tmp.is_empty() {
                out.push(composite(
                    self.base,
                    format!("{} must not validate the schema (not)", quote(&path.render(false))),
                ));
            }
        }
    }

    fn string(&self, text: &str, v: &Value, s: &Node, path: &Path, out: &mut Vec<FieldError>) {
        if s.max_length.is_none() && s.min_length.is_none() && s.pattern.is_none() {
            return;
        }
        let chars = || text.chars().count() as i64;
        if let Some(max) = s.max_length
            && chars() > max
        {
            out.push(FieldError::too_long(
                self.field(path, false),
                format!("may not be more than {max} bytes"),
            ));
            return;
        }
        if let Some(min) = s.min_length
            && chars() < min
        {
            let mp = path.render(false);
            out.push(self.invalid(
                path,
                &go_value(v),
                format!("{mp} in body should be at least {min} chars long"),
            ));
            return;
        }
        if let Some(re) = &s.pattern
            && !re.is_match(text)
        {
            let mp = path.render(false);
            out.push(self.invalid(
                path,
                &go_value(v),
                format!("{mp} in body should match '{}'", re.as_str()),
            ));
        }
    }

    fn number(&self, n: &Number, s: &Node, path: &Path, out: &mut Vec<FieldError>) {
        if s.multiple_of.is_none() && s.minimum.is_none() && s.maximum.is_none() {
            return;
        }
        let data = num_val(n);
        let as_f64 = match data {
            NumVal::Int(i) => i as f64,
            NumVal::Float(f) => f,
        };
        let repr = num_repr(n);
        let mp = || path.render(false);
        if let Some(factor) = s.multiple_of {
            if factor <= 0.0 {
                out.push(self.invalid(
                    path,
                    &go_float(factor),
                    format!(
                        "factor MultipleOf declared for {} must be positive: {}",
                        mp(),
                        go_float(factor)
                    ),
                ));
            } else {
                let is_multiple = match data {
                    NumVal::Int(i) if factor.fract() == 0.0 && factor < 9.2e18 => i % (factor as i64) == 0,
                    _ => {
                        let mult = if factor < 1.0 {
                            1.0 / factor * as_f64
                        } else {
                            as_f64 / factor
                        };
                        is_json_integer(mult)
                    }
                };
                if !is_multiple {
                    out.push(self.invalid(
                        path,
                        &repr,
                        format!("{} in body should be a multiple of {}", mp(), bound_repr(factor, &data)),
                    ));
                }
            }
        }
        if let Some(min) = s.minimum {
            let below = match data {
                NumVal::Int(i) if min.fract() == 0.0 && min.abs() < 9.2e18 => {
                    let m = min as i64;
                    if s.exclusive_minimum { i <= m } else { i < m }
                }
                _ => {
                    if s.exclusive_minimum {
                        as_f64 <= min
                    } else {
                        as_f64 < min
                    }
                }
            };
            if below {
                let op = if s.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(self.invalid(
                    path,
                    &repr,
                    format!("{} in body should be {op} {}", mp(), bound_repr(min, &data)),
                ));
            }
        }
        if let Some(max) = s.maximum {
            let above = match data {
                NumVal::Int(i) if max.fract() == 0.0 && max.abs() < 9.2e18 => {
                    let m = max as i64;
                    if s.exclusive_maximum { i >= m } else { i > m }
                }
                _ => {
                    if s.exclusive_maximum {
                        as_f64 >= max
                    } else {
                        as_f64 > max
                    }
                }
            };
            if above {
                let op = if s.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(self.invalid(
                    path,
                    &repr,
                    format!("{} in body should be {op} {}", mp(), bound_repr(max, &data)),
                ));
            }
        }
    }

    fn array(&self, items: &[Value], s: &Node, path: &Path, out: &mut Vec<FieldError>) {
        let len = items.len() as i64;
        if let Some(min) = s.min_items
            && len < min
        {
            let mp = path.render(false);
            out.push(self.invalid(
                path,
                &len.to_string(),
                format!("{mp} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = s.max_items
            && len > max
        {
            out.push(FieldError::new(
                CauseType::FieldValueTooMany,
                self.field(path, false),
                format!("{len}: must have at most {max} items"),
            ));
        }
        if s.unique_items && !duplicate_indices(items).is_empty() {
            let mp = path.render(false);
            out.push(self.invalid(path, "\"\"", format!("{mp} in body shouldn't contain duplicates")));
        }
    }

    fn object(&mut self, map: &Map<String, Value>, s: &Node, path: &Path, root: bool, out: &mut Vec<FieldError>) {
        let count = map.len() as i64;
        if let Some(min) = s.min_properties
            && count < min
        {
            let mp = path.render(false);
            out.push(self.invalid(
                path,
                &count.to_string(),
                format!("{mp} in body should have at least {min} properties"),
            ));
            return;
        }
        if let Some(max) = s.max_properties
            && count > max
        {
            out.push(FieldError::new(
                CauseType::FieldValueTooMany,
                self.field(path, false),
                format!("{count}: must have at most {max} items"),
            ));
            return;
        }
        match &s.additional {
            Some(Additional::Bool(false)) => {
                let mp = path.render(false);
                for key in map.keys() {
                    if !s.properties.contains_key(key) {
                        out.push(self.invalid(
                            path,
                            &quote(key),
                            format!("{mp}.{key} in body is a forbidden property"),
                        ));
                    }
                }
            }
            Some(Additional::Schema(add)) => {
                for (key, val) in map {
                    if !s.properties.contains_key(key) {
                        self.value(val, &add.node, &path.key(key), false, out);
                    }
                }
            }
            _ => {}
        }
        for (key, prop) in &s.properties {
            let Some(val) = map.get(key.as_str()) else {
                continue;
            };
            if root {
                match key.as_str() {
                    "apiVersion" | "kind" => continue,
                    "metadata" => {
                        self.root_metadata(val, &prop.node, &path.prop(key), out);
                        continue;
                    }
                    _ => {}
                }
            }
            self.value(val, &prop.node, &path.prop(key), false, out);
        }
        for key in &s.required {
            if !map.contains_key(key.as_str()) {
                out.push(FieldError::required(self.field(&path.prop(key), false), ""));
            }
        }
    }

    /// Of the root metadata only the declared name/generateName restrictions
    /// are checked; the rest is ObjectMeta and validated elsewhere.
    fn root_metadata(&mut self, v: &Value, s: &Node, path: &Path, out: &mut Vec<FieldError>) {
        let Value::Object(map) = v else { return };
        for key in ["name", "generateName"] {
            if let (Some(prop), Some(val)) = (s.properties.get(key), map.get(key)) {
                self.value(val, &prop.node, &path.prop(key), false, out);
            }
        }
    }

    /// apiVersion/kind/metadata of an `x-kubernetes-embedded-resource` object.
    fn embedded(&mut self, map: &Map<String, Value>, path: &Path) {
        for key in ["apiVersion", "kind"] {
            let p = path.prop(key);
            let field = self.field(&p, true);
            match map.get(key) {
                None => self.meta.push(FieldError::required(field, "")),
                Some(Value::String(s)) if s.is_empty() => self.meta.push(FieldError::required(field, "")),
                Some(Value::String(s)) => {
                    if key == "apiVersion" {
                        if s != "/" && s.matches('/').count() > 1 {
                            self.meta.push(FieldError::invalid(
                                field,
                                format!("{}: unexpected GroupVersion string: {s}", quote(s)),
                            ));
                        }
                    } else {
                        let problems = dns1035_label_errors(&s.to_lowercase());
                        if !problems.is_empty() {
                            self.meta.push(FieldError::invalid(
                                field,
                                format!(
                                    "{}: may have mixed case, but should otherwise match: {}",
                                    quote(s),
                                    problems.join(",")
                                ),
                            ));
                        }
                    }
                }
                Some(other) => self.meta.push(FieldError::invalid(
                    field,
                    format!("{}: must be a string", go_value(other)),
                )),
            }
        }
        if let Some(meta) = map.get("metadata")
            && !meta.is_object()
        {
            let field = self.field(&path.prop("metadata"), true);
            self.meta.push(FieldError::invalid(
                field,
                format!(
                    "{}: json: cannot unmarshal {} into Go value of type v1.ObjectMeta",
                    go_value(meta),
                    match meta {
                        Value::Array(_) => "array",
                        Value::String(_) => "string",
                        Value::Bool(_) => "bool",
                        _ => "number",
                    }
                ),
            ));
        }
    }

    /// Uniqueness of `x-kubernetes-list-type: set` items and `map` keys.
    fn list(&mut self, items: &[Value], s: &Node, path: &Path) {
        match s.list_type {
            Some(ListType::Set) => {
                for i in duplicate_indices(items) {
                    let field = self.field(&path.index(i), true);
                    self.lists.push(FieldError::duplicate(field, go_value(&items[i])));
                }
            }
            Some(ListType::Map) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_null() && !item.is_object() {
                        let field = self.field(&path.index(i), true);
                        self.lists.push(FieldError::invalid(
                            field,
                            format!("{}: must be an object for an array of list-type map", go_value(item)),
                        ));
                        return;
                    }
                }
                if items.len() <= 1 {
                    return;
                }
                // An absent key field and a null item both count as "unspecified".
                let width = s.list_map_keys.len();
                let dups: Vec<usize> = if items.len() <= 32 {
                    let keys: Vec<Option<&Value>> = items
                        .iter()
                        .flat_map(|item| {
                            s.list_map_keys
                                .iter()
                                .map(move |k| item.as_object().and_then(|m| m.get(k.as_str())))
                        })
                        .collect();
                    let key = |i: usize| &keys[i * width..(i + 1) * width];
                    (1..items.len())
                        .filter(|&i| (0..i).filter(|&j| key(j) == key(i)).count() == 1)
                        .collect()
                } else {
                    let keys: Vec<Value> = items.iter().map(|item| list_map_key(item, &s.list_map_keys)).collect();
                    duplicate_indices(&keys)
                };
                for i in dups {
                    let field = self.field(&path.index(i), true);
                    let key = list_map_key(&items[i], &s.list_map_keys);
                    self.lists.push(FieldError::duplicate(field, go_sharp(&key)));
                }
            }
            _ => {}
        }
    }
}

/// The present key fields of a list-map item, as an object.
fn list_map_key(item: &Value, keys: &[String]) -> Value {
    let mut key = Map::new();
    if let Value::Object(m) = item {
        for k in keys {
            if let Some(kv) = m.get(k.as_str()) {
                key.insert(k.clone(), kv.clone());
            }
        }
    }
    Value::Object(key)
}

/// Indices of the second occurrence of each duplicated element, ascending
/// (later repetitions of the same element are not reported again). Integers
/// and floats stay apart, as Go's comparison of int64 and float64 does.
fn duplicate_indices(items: &[Value]) -> Vec<usize> {
    let mut out = Vec::new();
    if items.len() <= 1 {
        return out;
    }
    if items.len() <= 32 {
        for i in 1..items.len() {
            let earlier = items[..i].iter().filter(|x| **x == items[i]).count();
            if earlier == 1 {
                out.push(i);
            }
        }
        return out;
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut key = String::new();
        canonical(item, &mut key);
        let count = seen.entry(key).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}

/// A canonical string of a value (sorted keys, typed numbers) for hashing.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => {
            let _ = match num_val(n) {
                NumVal::Int(i) => write!(out, "i{i};"),
                NumVal::Float(f) => write!(out, "d{f:e};"),
            };
        }
        Value::String(s) => {
            let _ = write!(out, "s{}:{s}", s.len());
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                let _ = write!(out, "{}:{k}=", k.len());
                canonical(&map[k.as_str()], out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

/// Enum membership: numbers compare by value (an integer matches the same
/// float), everything else structurally.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (num_val(x), num_val(y)) {
            (NumVal::Int(i), NumVal::Int(j)) => i == j,
            (NumVal::Int(i), NumVal::Float(f)) | (NumVal::Float(f), NumVal::Int(i)) => i as f64 == f,
            (NumVal::Float(f), NumVal::Float(g)) => f == g,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn dns1035_label_errors(value: &str) -> Vec<String> {
    static DNS1035: LazyLock<Regex> =
        LazyLock::new(|| Regex::new("^[a-z]([-a-z0-9]*[a-z0-9])?$").expect("valid regex"));
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !DNS1035.is_match(value) {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

// ---------------------------------------------------------------------------
// Rendering values the way Go / kube-apiserver prints them
// ---------------------------------------------------------------------------

/// Go's `strconv.Quote`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a float64: the shortest representation, in exponent form when
/// the decimal exponent is below -4 or at least 6 (`1e+06`, `1.5e-07`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// `%v` of a number decoded by kube-apiserver (int64 or float64).
fn num_repr(n: &Number) -> String {
    match num_val(n) {
        NumVal::Int(i) => i.to_string(),
        NumVal::Float(f) => go_float(f),
    }
}

/// How a field error prints its bad value (`field.Error.ErrorBody`).
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => num_repr(n),
        Value::String(s) => quote(s),
        Value::Array(_) | Value::Object(_) => go_sharp(v),
    }
}

/// Go's `%#v` of an unstructured value.
fn go_sharp(v: &Value) -> String {
    let mut out = String::new();
    write_go_sharp(v, &mut out);
    out
}

fn write_go_sharp(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("interface {}(nil)"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => out.push_str(&num_repr(n)),
        Value::String(s) => out.push_str(&quote(s)),
        Value::Array(items) => {
            out.push_str("[]interface {}{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_go_sharp(item, out);
            }
            out.push('}');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[string]interface {}{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(k));
                out.push(':');
                write_go_sharp(&map[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

/// `%#v` of a `[]string`.
fn go_string_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Go's `json.Marshal` of an unstructured value (sorted keys, Go number style).
fn go_json(v: &Value) -> String {
    match v {
        Value::Number(n) => match num_val(n) {
            NumVal::Int(i) => i.to_string(),
            NumVal::Float(f) => {
                let abs = f.abs();
                if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                    let sci = format!("{f:e}");
                    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
                    let exp: i32 = exp.parse().unwrap_or(0);
                    let sign = if exp < 0 { '-' } else { '+' };
                    format!("{mantissa}e{sign}{:02}", exp.abs())
                } else {
                    format!("{f}")
                }
            }
        },
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_json).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), go_json(&map[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// String formats (kube-openapi's strfmt registry, restricted to what CRDs use)
// ---------------------------------------------------------------------------

fn lazy_regex(pattern: &'static str) -> Regex {
    Regex::new(pattern).expect("static regex compiles")
}

static HOSTNAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    lazy_regex(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static UUID_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID4_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static UUID5_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"));
static CREDIT_CARD_RE: LazyLock<Regex> = LazyLock::new(|| {
    lazy_regex(
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
    )
});
static SSN_RE: LazyLock<Regex> = LazyLock::new(|| lazy_regex(r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$"));
static HEX_COLOR_RE: LazyLock<Regex> = LazyLock::new(|| lazy_regex(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR_RE: LazyLock<Regex> = LazyLock::new(|| {
    lazy_regex(
        r"^rgb\([ \t\n\f\r]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[ \t\n\f\r]*,[ \t\n\f\r]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[ \t\n\f\r]*,[ \t\n\f\r]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[ \t\n\f\r]*\)$",
    )
});
static TIME_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"));
static DURATION_PART_RE: LazyLock<Regex> =
    LazyLock::new(|| lazy_regex(r"((?:-[ \t\n\f\r]?)?[0-9]+)[ \t\n\f\r]*([A-Za-zµ]+)"));

fn check_format(format: Format, s: &str) -> bool {
    match format {
        Format::BsonObjectId => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        Format::Uri => is_request_uri(s),
        Format::Email => is_email(s),
        Format::Hostname => HOSTNAME_RE.is_match(s) && s.len() <= 255 && s.split('.').all(|label| label.len() <= 63),
        Format::Ipv4 => parse_ipv4_sloppy(s).is_some() || (s.contains('.') && s.parse::<std::net::Ipv6Addr>().is_ok()),
        Format::Ipv6 => s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok(),
        Format::Cidr => is_cidr(s),
        Format::Mac => is_mac(s),
        Format::Uuid => UUID_RE.is_match(s),
        Format::Uuid3 => UUID3_RE.is_match(s),
        Format::Uuid4 => UUID4_RE.is_match(s),
        Format::Uuid5 => UUID5_RE.is_match(s),
        Format::Isbn => is_isbn10(s) || is_isbn13(s),
        Format::Isbn10 => is_isbn10(s),
        Format::Isbn13 => is_isbn13(s),
        Format::CreditCard => is_credit_card(s),
        Format::Ssn => s.len() == 11 && SSN_RE.is_match(s),
        Format::HexColor => HEX_COLOR_RE.is_match(s),
        Format::RgbColor => RGB_COLOR_RE.is_match(s),
        Format::Byte => is_base64(s),
        Format::Password => true,
        Format::Date => is_date(s),
        Format::Duration => is_duration(s),
        Format::DateTime => is_date_time(s),
    }
}

fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if padding > 2 {
        return false;
    }
    bytes[..bytes.len() - padding]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// RFC 3339 `full-date` as Go's `time.Parse("2006-01-02", …)` accepts it.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year as i32, month)
}

/// go-openapi's `IsDateTime`: date `T` time, case-insensitive.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let Some(caps) = TIME_RE.captures(time) else {
        return false;
    };
    &caps[1] <= "23" && &caps[2] <= "59" && &caps[3] <= "59"
}

/// Go's `time.ParseDuration`, or the lenient "`<n> <unit>`…" syntax strfmt
/// falls back to (`3 days`, `1w`, `5 min`).
fn is_duration(s: &str) -> bool {
    if is_go_duration(s) {
        return true;
    }
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let mut ok = false;
    for caps in DURATION_PART_RE.captures_iter(s) {
        let number = caps[1].trim_start_matches('-').trim();
        if number.parse::<i64>().is_err() {
            return false;
        }
        let unit = caps[2].to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, variant) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(variant)) || unit.eq_ignore_ascii_case(variant) {
                    ok = true;
                }
            }
        }
    }
    ok
}

fn is_go_duration(s: &str) -> bool {
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut had_digits = int_len > 0;
        rest = &rest[int_len..];
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            had_digits |= frac_len > 0;
            rest = &after_dot[frac_len..];
        }
        if !had_digits {
            return false;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        if !matches!(unit, "ns" | "us" | "\u{b5}s" | "\u{3bc}s" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// IPv4 as the old, lenient Go parser read it (leading zeros allowed).
fn parse_ipv4_sloppy(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for slot in &mut out {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = part.trim_start_matches('0');
        if trimmed.len() > 3 {
            return None;
        }
        let n: u32 = if trimmed.is_empty() { 0 } else { trimmed.parse().ok()? };
        *slot = u8::try_from(n).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return false;
    }
    let Ok(bits) = prefix.parse::<u32>() else {
        return false;
    };
    if parse_ipv4_sloppy(ip).is_some() {
        bits <= 32
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx…`, `xx-xx…` or `xxxx.xxxx…`.
fn is_mac(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 14 {
        return false;
    }
    let hex2 = |i: usize| b[i].is_ascii_hexdigit() && b[i + 1].is_ascii_hexdigit();
    if b[2] == b':' || b[2] == b'-' {
        if !(b.len() + 1).is_multiple_of(3) {
            return false;
        }
        let n = (b.len() + 1) / 3;
        if !matches!(n, 6 | 8 | 20) {
            return false;
        }
        let sep = b[2];
        (0..n).all(|i| hex2(3 * i) && (i == n - 1 || b[3 * i + 2] == sep))
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) {
            return false;
        }
        let n = 2 * (b.len() + 1) / 5;
        if !matches!(n, 6 | 8 | 20) {
            return false;
        }
        (0..n / 2).all(|i| hex2(5 * i) && hex2(5 * i + 2) && (i == n / 2 - 1 || b[5 * i + 4] == b'.'))
    } else {
        false
    }
}

fn strip_isbn(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '-').collect()
}

fn is_isbn10(s: &str) -> bool {
    let s = strip_isbn(s);
    let b = s.as_bytes();
    if b.len() != 10 || !b[..9].iter().all(u8::is_ascii_digit) || !(b[9].is_ascii_digit() || b[9] == b'X') {
        return false;
    }
    let mut sum: u32 = (0..9).map(|i| (i as u32 + 1) * u32::from(b[i] - b'0')).sum();
    sum += if b[9] == b'X' { 100 } else { 10 * u32::from(b[9] - b'0') };
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let s = strip_isbn(s);
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = (0..12)
        .map(|i| u32::from(b[i] - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(b[12] - b'0')
}

fn is_credit_card(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !CREDIT_CARD_RE.is_match(&digits) {
        return false;
    }
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d >= 10 {
                d = d % 10 + 1;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// `net/mail.ParseAddress`, approximately: `local@domain`, optionally as
/// `Display Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let s = s.trim();
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => &s[open + 1..s.len() - 1],
        (None, false) => s,
        _ => return false,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_atom =
        |part: &str| !part.is_empty() && part.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext));
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        !local[1..local.len() - 1].contains(['"', '\n', '\r'])
    } else {
        dot_atom(local)
    };
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') {
        domain.len() > 2
    } else {
        dot_atom(domain)
    };
    local_ok && domain_ok
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s == "*" {
        return true;
    }
    let mut scheme = "";
    let mut rest = s;
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return false,
            ':' => {
                scheme = &s[..i];
                rest = &s[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    if !rest.starts_with('/') {
        return !scheme.is_empty();
    }
    let mut path = rest;
    if !scheme.is_empty()
        && let Some(after) = rest.strip_prefix("//")
    {
        let end = after.find('/').unwrap_or(after.len());
        if !valid_authority(&after[..end]) {
            return false;
        }
        path = &after[end..];
    }
    valid_escapes(path)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn valid_authority(authority: &str) -> bool {
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = userinfo {
        let ok = u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
        if !ok || !valid_escapes(u) {
            return false;
        }
    }
    let port = if let Some(inner) = host.strip_prefix('[') {
        let Some((literal, after)) = inner.split_once(']') else {
            return false;
        };
        if literal.is_empty() {
            return false;
        }
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => port,
            None => return false,
        }
    } else {
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) => (n, p),
            None => (host, ""),
        };
        let name_ok = name
            .chars()
            .all(|c| c.is_alphanumeric() || "-._~!$&'()*+,;=%\"<>".contains(c) || !c.is_ascii());
        if !name_ok || !valid_escapes(name) {
            return false;
        }
        port
    };
    port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PREFIX: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn schema(v: Value) -> StructuralSchema {
        match StructuralSchema::parse(&v, PREFIX) {
            Ok(s) => s,
            Err(errs) => panic!("schema rejected: {:#?}", messages(&errs)),
        }
    }

    fn rejected(v: Value) -> Vec<String> {
        match StructuralSchema::parse(&v, PREFIX) {
            Ok(_) => panic!("schema accepted: {v}"),
            Err(errs) => messages(&errs),
        }
    }

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::to_message).collect()
    }

    fn obj_schema(spec: Value) -> StructuralSchema {
        schema(json!({"type": "object", "properties": {"spec": spec}}))
    }

    fn validate_spec(spec_schema: Value, spec: Value) -> Vec<String> {
        messages(&obj_schema(spec_schema).validate(&json!({"spec": spec})))
    }

    fn assert_has(msgs: &[String], expected: &str) {
        assert!(msgs.iter().any(|m| m == expected), "expected {expected:?} in {msgs:#?}");
    }

    // --- parsing ------------------------------------------------------------

    #[test]
    fn accepts_a_typical_schema() {
        let s = schema(json!({
            "type": "object",
            "description": "a widget",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["replicas"],
                    "properties": {
                        "replicas": {"type": "integer", "format": "int32", "minimum": 0, "default": 1},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "anything": {"x-kubernetes-preserve-unknown-fields": true},
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["port"],
                            "items": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}
                        },
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                    },
                    "x-kubernetes-validations": [{"rule": "self.replicas >= 0"}]
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        }));
        assert_eq!(s.type_name(), Some("object"));
        assert!(s.lookup(&["spec", "port"]).unwrap().is_int_or_string());
    }

    #[test]
    fn root_must_be_an_object() {
        let msgs = rejected(json!({"type": "string"}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.type: Invalid value: \"string\": must be object at the root"
            )]
        );
        let msgs = rejected(json!({"properties": {}}));
        assert_eq!(
            msgs,
            vec![format!("{PREFIX}.type: Required value: must not be empty at the root")]
        );
    }

    #[test]
    fn fields_and_items_need_a_type() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"spec": {"properties": {"a": {"type": "string"}}},
                           "list": {"type": "array", "items": {"description": "x"}}}
        }));
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{PREFIX}.properties[list].items.type: Required value: must not be empty for specified array items"
                ),
                format!(
                    "{PREFIX}.properties[spec].type: Required value: must not be empty for specified object fields"
                ),
            ]
        );
    }

    #[test]
    fn int_or_string_and_preserve_unknown_fields_need_no_type() {
        schema(json!({
            "type": "object",
            "properties": {
                "a": {"x-kubernetes-int-or-string": true},
                "b": {"x-kubernetes-preserve-unknown-fields": true},
                "c": {"x-kubernetes-int-or-string": true,
                      "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"pattern": "^[0-9]+%?$"}]}
            }
        }));
    }

    #[test]
    fn arrays_need_a_single_items_schema() {
        let msgs = rejected(json!({"type": "object", "properties": {"l": {"type": "array"}}}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[l].items: Required value: must be specified"
            )]
        );
        let msgs =
            rejected(json!({"type": "object", "properties": {"l": {"type": "array", "items": [{"type": "string"}]}}}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[l].items: Forbidden: items must be a schema object and not an array"
            )]
        );
    }

    #[test]
    fn additional_properties_rules() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"m": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}
        }));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            )]
        );
        let msgs = rejected(json!({"type": "object", "additionalProperties": {"type": "string"}}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.additionalProperties: Forbidden: must not be used at the root"
            )]
        );
        // `true` next to properties is allowed.
        schema(
            json!({"type": "object", "properties": {"m": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}}}),
        );
    }

    #[test]
    fn pattern_must_compile() {
        let msgs = rejected(json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(abc"}}}));
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0].starts_with(&format!(
                "{PREFIX}.properties[a].pattern: Invalid value: \"(abc\": must be a valid regular expression, but isn't: error parsing regexp:"
            )),
            "{msgs:?}"
        );
    }

    #[test]
    fn defaults_must_validate() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": "three"},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "c"},
                "obj": {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "default": {"n": 5}}
            }}}
        }));
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{PREFIX}.properties[spec].properties[mode].default: Unsupported value: \"c\": supported values: \"a\", \"b\""
                ),
                format!(
                    "{PREFIX}.properties[spec].properties[obj].default.n: Invalid value: 5: n in body should be less than or equal to 3"
                ),
                format!(
                    "{PREFIX}.properties[spec].properties[replicas].default: Invalid value: \"string\":  in body must be of type integer: \"string\""
                ),
            ]
        );
    }

    #[test]
    fn defaults_must_be_pruned() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": "y"}}}
        }));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[spec].default: Invalid value: map[string]interface {{}}{{\"a\":\"x\", \"b\":\"y\"}}: must not have unknown fields"
            )]
        );
    }

    #[test]
    fn defaults_are_not_allowed_in_top_level_metadata() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "default": "x"}}}}
        }));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[metadata].properties[name].default: Forbidden: must not be set in top-level metadata"
            )]
        );
    }

    #[test]
    fn root_metadata_may_only_restrict_name_and_generate_name() {
        schema(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 10}, "generateName": {"type": "string"}}}}}),
        );
        let msgs = rejected(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}}),
        );
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )]
        );
        let msgs = rejected(json!({"type": "object", "properties": {"metadata": {"type": "string"}}}));
        assert_has(
            &msgs,
            &format!("{PREFIX}.properties[metadata].type: Invalid value: \"string\": must be object"),
        );
        let msgs = rejected(json!({"type": "object", "properties": {"kind": {"type": "integer"}}}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[kind].type: Invalid value: \"integer\": must be string"
            )]
        );
    }

    #[test]
    fn value_validations_in_junctors_must_be_structural() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}},
                "anyOf": [{"type": "object", "description": "x", "properties": {"a": {"nullable": true, "default": "q"}}}]}}
        }));
        assert_eq!(
            msgs,
            vec![
                format!("{PREFIX}.properties[spec].anyOf[0].description: Forbidden: must be empty to be structural"),
                format!(
                    "{PREFIX}.properties[spec].anyOf[0].properties[a].default: Forbidden: must be undefined to be structural"
                ),
                format!(
                    "{PREFIX}.properties[spec].anyOf[0].properties[a].nullable: Forbidden: must be false to be structural"
                ),
                format!("{PREFIX}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"),
            ]
        );
    }

    #[test]
    fn junctor_fields_must_be_specified_outside() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {"spec": {"type": "object"}},
            "oneOf": [{"properties": {"spec": {"properties": {"x": {"minimum": 1}}}}}, {"properties": {"extra": {}}}]
        }));
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{PREFIX}.properties[extra]: Required value: because it is defined in {PREFIX}.oneOf[1].properties[extra]"
                ),
                format!(
                    "{PREFIX}.properties[spec].properties[x]: Required value: because it is defined in {PREFIX}.oneOf[0].properties[spec].properties[x]"
                ),
            ]
        );
    }

    #[test]
    fn unsupported_keywords_are_rejected() {
        let msgs = rejected(json!({
            "type": "object",
            "properties": {
                "a": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "b": {"$ref": "#/definitions/x"},
                "c": {"type": "null"},
                "d": {"type": "date"},
                "e": {"type": "object", "x-kubernetes-preserve-unknown-fields": false}
            }
        }));
        assert!(msgs.contains(&format!("{PREFIX}.properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")));
        assert!(msgs.contains(&format!(
            "{PREFIX}.properties[b].$ref: Forbidden: $ref is not supported"
        )));
        assert!(msgs.contains(&format!(
            "{PREFIX}.properties[c].type: Forbidden: type cannot be set to null, use nullable as an alternative"
        )));
        assert!(msgs.contains(&format!("{PREFIX}.properties[d].type: Unsupported value: \"date\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"")));
        assert!(msgs.contains(&format!("{PREFIX}.properties[e].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined")));
        // Sorted like kube-apiserver's output.
        let mut sorted = msgs.clone();
        sorted.sort();
        assert_eq!(msgs, sorted);
    }

    #[test]
    fn nullable_root_is_rejected() {
        let msgs = rejected(json!({"type": "object", "nullable": true}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.nullable: Forbidden: nullable cannot be true at the root"
            )]
        );
    }

    #[test]
    fn list_type_rules() {
        let msgs = rejected(json!({"type": "object", "properties": {
            "a": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "b": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["missing"], "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "c": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"], "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "d": {"type": "string", "x-kubernetes-list-type": "set"},
            "e": {"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}},
            "f": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}
        }}));
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{PREFIX}.properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
                ),
                format!(
                    "{PREFIX}.properties[b].x-kubernetes-list-map-keys: Invalid value: []string{{\"missing\"}}: entries must all be names of item properties"
                ),
                format!(
                    "{PREFIX}.properties[c].items.properties[k].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
                ),
                format!(
                    "{PREFIX}.properties[d].type: Invalid value: \"string\": must be array if x-kubernetes-list-type is specified"
                ),
                format!(
                    "{PREFIX}.properties[e].x-kubernetes-list-type: Unsupported value: \"bag\": supported values: \"atomic\", \"set\", \"map\""
                ),
                format!(
                    "{PREFIX}.properties[f].items.x-kubernetes-map-type: Invalid value: \"null\": must be atomic as item of a list with x-kubernetes-list-type=set"
                ),
            ]
        );
    }

    #[test]
    fn embedded_resource_rules() {
        let msgs = rejected(json!({"type": "object", "properties": {
            "a": {"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "b": {"type": "object", "x-kubernetes-embedded-resource": true}
        }}));
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{PREFIX}.properties[a].type: Required value: must be object if x-kubernetes-embedded-resource is true"
                ),
                format!(
                    "{PREFIX}.properties[b].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
                ),
            ]
        );
    }

    #[test]
    fn extension_combinations_and_list_item_nullability() {
        let msgs = rejected(json!({"type": "object", "properties": {
            "a": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true},
            "b": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                  "items": {"type": "object", "nullable": true, "required": ["k"],
                            "properties": {"k": {"type": "string", "nullable": true}}}},
            "c": {"type": "string", "x-kubernetes-map-type": "atomic"}
        }}));
        assert_eq!(
            msgs,
            vec![
                format!(
                    "{PREFIX}.properties[a].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
                ),
                format!(
                    "{PREFIX}.properties[b].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is map"
                ),
                format!(
                    "{PREFIX}.properties[b].items.properties[k].nullable: Forbidden: this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
                ),
                format!(
                    "{PREFIX}.properties[c].type: Invalid value: \"string\": must be object if x-kubernetes-map-type is specified"
                ),
            ]
        );
    }

    #[test]
    fn debug_output_is_compact() {
        let s = obj_schema(json!({"type": "object", "properties": {"a": {"type": "string"}}}));
        let a = s.lookup(&["spec", "a"]).unwrap();
        assert_eq!(
            format!("{a:?}"),
            "StructuralSchema { pointer: \"/properties/spec/properties/a\", schema: Object {\"type\": String(\"string\")} }"
        );
    }

    #[test]
    fn non_object_schema_is_rejected() {
        let msgs = rejected(json!({"type": "object", "properties": {"a": true}}));
        assert_eq!(
            msgs,
            vec![format!(
                "{PREFIX}.properties[a]: Invalid value: true: must be a JSON schema object"
            )]
        );
    }

    // --- pruning ------------------------------------------------------------

    fn prune_schema() -> StructuralSchema {
        schema(json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "properties": {"strict": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}},
                        "loose": {"type": "object", "additionalProperties": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                        "word": {"type": "string"}
                    }
                }
            }
        }))
    }

    #[test]
    fn prune_drops_unknown_fields_and_reports_them() {
        let s = prune_schema();
        let mut obj = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "whatever": 1},
            "spec": {"name": "n", "unknownField": 1, "items": [{"a": "x"}, {"a": "y", "bogus": true}]},
            "extra": {"deep": 1}
        });
        let removed = s.prune(&mut obj);
        assert_eq!(removed, vec![".extra", ".spec.items[1].bogus", ".spec.unknownField"]);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w", "whatever": 1},
                "spec": {"name": "n", "items": [{"a": "x"}, {"a": "y"}]}
            })
        );
    }

    #[test]
    fn prune_respects_preserve_unknown_fields_and_additional_properties() {
        let s = prune_schema();
        let mut obj = json!({"spec": {
            "labels": {"k1": {"v": "1", "junk": 2}},
            "free": {"anything": {"goes": [1, 2]}, "strict": {"ok": true, "nope": 1}},
            "loose": {"k": {"nested": 1}, "s": "kept"},
            "word": {"not": "a string"}
        }});
        let removed = s.prune(&mut obj);
        assert_eq!(
            removed,
            vec![
                ".spec.free.strict.nope",
                ".spec.labels.k1.junk",
                ".spec.loose.k.nested",
                ".spec.word.not",
            ]
        );
        assert_eq!(
            obj,
            json!({"spec": {
                "labels": {"k1": {"v": "1"}},
                "free": {"anything": {"goes": [1, 2]}, "strict": {"ok": true}},
                "loose": {"k": {}, "s": "kept"},
                "word": {}
            }})
        );
    }

    #[test]
    fn prune_keeps_type_and_object_meta_of_embedded_resources() {
        let s = prune_schema();
        let mut obj = json!({"spec": {"template": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": true},
            "spec": {"x": "y", "z": 1},
            "status": {}
        }}});
        let removed = s.prune(&mut obj);
        assert_eq!(
            removed,
            vec![
                ".spec.template.metadata.bogus",
                ".spec.template.spec.z",
                ".spec.template.status",
            ]
        );
        assert_eq!(
            obj["spec"]["template"],
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"x": "y"}})
        );
    }

    #[test]
    fn prune_embedded_resource_with_preserve_unknown_fields() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "raw": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
        }}));
        let mut obj = json!({"spec": {"raw": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}, "metadata": {"x": 1, "name": "n"}}}});
        let removed = s.prune(&mut obj);
        assert_eq!(removed, vec![".spec.raw.metadata.x"]);
        assert_eq!(obj["spec"]["raw"]["data"], json!({"a": "b"}));
    }

    // --- defaulting ---------------------------------------------------------

    #[test]
    fn defaults_fill_missing_fields_recursively() {
        let s = obj_schema(json!({
            "type": "object",
            "default": {},
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {"type": "object", "default": {}, "properties": {
                    "type": {"type": "string", "default": "Rolling"},
                    "maxSurge": {"x-kubernetes-int-or-string": true, "default": "25%"}
                }},
                "containers": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "pull": {"type": "string", "default": "IfNotPresent"},
                    "ports": {"type": "array", "items": {"type": "object", "properties": {"proto": {"type": "string", "default": "TCP"}, "port": {"type": "integer"}}}}
                }}},
                "env": {"type": "object", "additionalProperties": {"type": "object", "properties": {"value": {"type": "string", "default": "unset"}}}}
            }
        }));
        let mut obj = json!({});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 1, "strategy": {"type": "Rolling", "maxSurge": "25%"}}})
        );

        let mut obj = json!({"spec": {
            "replicas": 3,
            "strategy": {"type": "Recreate"},
            "containers": [{"name": "a", "ports": [{"port": 80}, {"port": 53, "proto": "UDP"}]}, {"name": "b", "pull": "Always"}],
            "env": {"A": {}, "B": {"value": "b"}}
        }});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "replicas": 3,
                "strategy": {"type": "Recreate", "maxSurge": "25%"},
                "containers": [
                    {"name": "a", "pull": "IfNotPresent", "ports": [{"port": 80, "proto": "TCP"}, {"port": 53, "proto": "UDP"}]},
                    {"name": "b", "pull": "Always"}
                ],
                "env": {"A": {"value": "unset"}, "B": {"value": "b"}}
            }})
        );
    }

    #[test]
    fn defaults_handle_nulls() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "withDefault": {"type": "string", "default": "d"},
            "plain": {"type": "string"},
            "nullable": {"type": "string", "nullable": true},
            "nullableWithDefault": {"type": "string", "nullable": true, "default": "n"},
            "map": {"type": "object", "additionalProperties": {"type": "string", "default": "m"}},
            "list": {"type": "array", "items": {"type": "string", "default": "i"}},
            "plainList": {"type": "array", "items": {"type": "string"}}
        }}));
        let mut obj = json!({"spec": {
            "withDefault": null, "plain": null, "nullable": null, "nullableWithDefault": null,
            "map": {"a": null, "b": "x"}, "list": [null, "y"], "plainList": [null]
        }});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "withDefault": "d", "nullable": null, "nullableWithDefault": null,
                "map": {"a": "m", "b": "x"}, "list": ["i", "y"], "plainList": [null]
            }})
        );
    }

    #[test]
    fn defaults_leave_root_metadata_alone_and_copy_values() {
        let s = schema(json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]}}}
        }}));
        let mut obj = json!({"metadata": {"name": "x", "labels": null}, "spec": {}});
        s.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "x", "labels": null}, "spec": {"tags": ["a"]}})
        );
        obj["spec"]["tags"].as_array_mut().unwrap().push(json!("b"));
        let mut again = json!({"spec": {}});
        s.apply_defaults(&mut again);
        assert_eq!(again["spec"]["tags"], json!(["a"]));
    }

    // --- validation -------------------------------------------------------------

    #[test]
    fn type_errors_read_like_kube_apiserver() {
        let msgs = validate_spec(
            json!({"type": "object", "properties": {
                "replicas": {"type": "integer"}, "name": {"type": "string"}, "on": {"type": "boolean"},
                "ratio": {"type": "number"}, "list": {"type": "array", "items": {"type": "string"}}, "obj": {"type": "object"}
            }}),
            json!({"replicas": "string", "name": 5, "on": "yes", "ratio": "1", "list": {}, "obj": []}),
        );
        assert_eq!(
            msgs,
            vec![
                "spec.list: Invalid value: \"object\": spec.list in body must be of type array: \"object\"",
                "spec.name: Invalid value: \"integer\": spec.name in body must be of type string: \"integer\"",
                "spec.obj: Invalid value: \"array\": spec.obj in body must be of type object: \"array\"",
                "spec.on: Invalid value: \"string\": spec.on in body must be of type boolean: \"string\"",
                "spec.ratio: Invalid value: \"string\": spec.ratio in body must be of type number: \"string\"",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            ]
        );
        let errs = obj_schema(json!({"type": "object", "properties": {"replicas": {"type": "integer"}}}))
            .validate(&json!({"spec": {"replicas": "string"}}));
        assert_eq!(errs[0].reason, CauseType::FieldValueTypeInvalid);
        assert_eq!(errs[0].field, "spec.replicas");
        assert_eq!(
            errs[0].message,
            "\"string\": spec.replicas in body must be of type integer: \"string\""
        );
    }

    #[test]
    fn integers_and_numbers() {
        let s = json!({"type": "object", "properties": {"i": {"type": "integer"}, "n": {"type": "number"}}});
        assert!(validate_spec(s.clone(), json!({"i": 3, "n": 3})).is_empty());
        assert!(validate_spec(s.clone(), json!({"i": -7, "n": 2.5})).is_empty());
        // A float without fraction decodes as an integer-compatible value.
        assert!(validate_spec(s.clone(), json!({"i": 3.0})).is_empty());
        assert_eq!(
            validate_spec(s, json!({"i": 1.5})),
            vec!["spec.i: Invalid value: \"number\": spec.i in body must be of type integer: \"number\""]
        );
    }

    #[test]
    fn null_needs_nullable() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string"}, "b": {"type": "string", "nullable": true}, "c": {"type": "object", "nullable": true}
        }});
        assert_eq!(
            validate_spec(s.clone(), json!({"a": null})),
            vec!["spec.a: Invalid value: \"null\": spec.a in body must be of type string: \"null\""]
        );
        assert!(validate_spec(s, json!({"b": null, "c": null})).is_empty());
    }

    #[test]
    fn int_or_string() {
        let s = json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true}}});
        assert!(validate_spec(s.clone(), json!({"port": 80})).is_empty());
        assert!(validate_spec(s.clone(), json!({"port": "http"})).is_empty());
        assert_eq!(
            validate_spec(s.clone(), json!({"port": true})),
            vec![
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
            ]
        );
        assert_eq!(
            validate_spec(s, json!({"port": 1.5})),
            vec!["spec.port: Invalid value: \"number\": spec.port in body must be of type integer,string: \"number\""]
        );
        let with_any_of = json!({"type": "object", "properties": {"port": {
            "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": "^[0-9]+%$"
        }}});
        assert!(validate_spec(with_any_of.clone(), json!({"port": 5})).is_empty());
        assert!(validate_spec(with_any_of.clone(), json!({"port": "5%"})).is_empty());
        assert_eq!(
            validate_spec(with_any_of, json!({"port": "five"})),
            vec!["spec.port: Invalid value: \"five\": spec.port in body should match '^[0-9]+%$'"]
        );
    }

    #[test]
    fn formats() {
        let fmt = |f: &str| json!({"type": "object", "properties": {"v": {"type": "string", "format": f}}});
        let ok = |f: &str, v: &str| validate_spec(fmt(f), json!({"v": v})).is_empty();
        assert!(ok("date-time", "2024-02-29T10:00:00Z"));
        assert!(ok("date-time", "2024-02-29t10:00:00.123+02:00"));
        assert!(!ok("date-time", "2023-02-29T10:00:00Z"));
        assert!(!ok("date-time", "2024-01-01 10:00:00Z"));
        assert!(!ok("date-time", "2024-01-01T25:00:00Z"));
        assert!(ok("datetime", "2024-01-01T00:00:00Z"));
        assert!(ok("date", "2024-12-31"));
        assert!(!ok("date", "2024-13-01"));
        assert!(!ok("date", "24-1-1"));
        assert!(ok("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(ok("uuid", "123E4567E89B12D3A456426614174000"));
        assert!(!ok("uuid", "not-a-uuid"));
        assert!(ok("uuid4", "123e4567-e89b-42d3-a456-426614174000"));
        assert!(!ok("uuid4", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(ok("byte", "aGVsbG8="));
        assert!(!ok("byte", "aGVsbG8"));
        assert!(!ok("byte", "a$b="));
        assert!(ok("ipv4", "10.0.0.1"));
        assert!(!ok("ipv4", "10.0.0.256"));
        assert!(!ok("ipv4", "::1"));
        assert!(ok("ipv6", "fe80::1"));
        assert!(!ok("ipv6", "10.0.0.1"));
        assert!(ok("cidr", "10.0.0.0/8"));
        assert!(ok("cidr", "fd00::/64"));
        assert!(!ok("cidr", "10.0.0.0/33"));
        assert!(ok("mac", "00:1a:2b:3c:4d:5e"));
        assert!(ok("mac", "001a.2b3c.4d5e"));
        assert!(!ok("mac", "00:1a:2b:3c:4d"));
        assert!(ok("hostname", "example.com"));
        assert!(ok("hostname", "localhost"));
        assert!(!ok("hostname", "-bad-.com"));
        assert!(ok("email", "someone@example.com"));
        assert!(ok("email", "Some One <someone@example.com>"));
        assert!(!ok("email", "not an email"));
        assert!(ok("uri", "https://example.com/path?q=1"));
        assert!(ok("uri", "/absolute/path"));
        assert!(ok("uri", "mailto:someone@example.com"));
        assert!(!ok("uri", "relative/path"));
        assert!(!ok("uri", "http://exa mple.com/"));
        assert!(ok("duration", "1h30m"));
        assert!(ok("duration", "3 days"));
        assert!(ok("duration", "-1.5h"));
        assert!(!ok("duration", "soon"));
        assert!(ok("bsonobjectid", "507f1f77bcf86cd799439011"));
        assert!(ok("hexcolor", "#fff"));
        assert!(ok("rgbcolor", "rgb(255, 0, 10)"));
        assert!(!ok("rgbcolor", "rgb(256,0,0)"));
        assert!(ok("isbn", "978-0321751041"));
        assert!(ok("isbn10", "0321751043"));
        assert!(ok("ssn", "123-45-6789"));
        assert!(ok("creditcard", "4111 1111 1111 1111"));
        assert!(!ok("creditcard", "4111 1111 1111 1112"));
        assert!(ok("password", "anything"));
        // Unsupported formats are ignored, like kube-apiserver does.
        assert!(ok("k8s-something", "whatever"));
        let int32 = json!({"type": "object", "properties": {"v": {"type": "integer", "format": "int32"}}});
        assert!(validate_spec(int32, json!({"v": 1_i64 << 40})).is_empty());

        assert_eq!(
            validate_spec(fmt("uuid"), json!({"v": "abc"})),
            vec!["spec.v: Invalid value: \"abc\": spec.v in body must be of type uuid: \"abc\""]
        );
        assert_eq!(
            validate_spec(fmt("date-time"), json!({"v": "yesterday"})),
            vec!["spec.v: Invalid value: \"yesterday\": spec.v in body must be of type date-time: \"yesterday\""]
        );
        // go-openapi names the format in the type error for non-strings.
        assert_eq!(
            validate_spec(fmt("date"), json!({"v": 5})),
            vec!["spec.v: Invalid value: \"int64\": spec.v in body must be of type date: \"int64\""]
        );
    }

    #[test]
    fn enum_messages() {
        let s = json!({"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["a", "b"]},
            "level": {"type": "integer", "enum": [1, 2]},
            "nmode": {"type": "string", "nullable": true, "enum": ["a", null]}
        }});
        assert!(validate_spec(s.clone(), json!({"mode": "a", "level": 2, "nmode": null})).is_empty());
        assert!(validate_spec(s.clone(), json!({"level": 2.0})).is_empty());
        assert_eq!(
            validate_spec(s.clone(), json!({"mode": "x"})),
            vec!["spec.mode: Unsupported value: \"x\": supported values: \"a\", \"b\""]
        );
        let errs = obj_schema(s.clone()).validate(&json!({"spec": {"level": 3}}));
        assert_eq!(errs[0].reason, CauseType::FieldValueNotSupported);
        assert_eq!(
            messages(&errs),
            vec!["spec.level: Unsupported value: 3: supported values: \"1\", \"2\""]
        );
    }

    #[test]
    fn nested_required() {
        let s = obj_schema(json!({"type": "object", "required": ["template"], "properties": {
            "template": {"type": "object", "required": ["name", "image"], "properties": {
                "name": {"type": "string"}, "image": {"type": "string"}
            }},
            "list": {"type": "array", "items": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}
        }}));
        let errs = s.validate(&json!({"spec": {"template": {"name": "x"}, "list": [{"id": "a"}, {}]}}));
        assert_eq!(
            messages(&errs),
            vec!["spec.list[1].id: Required value", "spec.template.image: Required value"]
        );
        assert_eq!(errs[0].reason, CauseType::FieldValueRequired);
        assert_eq!(errs[0].message, "");
        let errs = s.validate(&json!({"spec": {}}));
        assert_eq!(messages(&errs), vec!["spec.template: Required value"]);
        let root = schema(json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}));
        assert_eq!(
            messages(&root.validate(&json!({"kind": "X"}))),
            vec!["spec: Required value"]
        );
    }

    #[test]
    fn numeric_bounds() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "integer", "minimum": 1, "maximum": 10},
            "b": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true},
            "c": {"type": "number", "minimum": 0.5, "maximum": 1000000}
        }});
        assert!(validate_spec(s.clone(), json!({"a": 1, "b": 2, "c": 0.5})).is_empty());
        assert!(validate_spec(s.clone(), json!({"a": 10, "b": 9, "c": 1000000})).is_empty());
        assert_eq!(
            validate_spec(s.clone(), json!({"a": 0, "b": 1, "c": 0.25})),
            vec![
                "spec.a: Invalid value: 0: spec.a in body should be greater than or equal to 1",
                "spec.b: Invalid value: 1: spec.b in body should be greater than 1",
                "spec.c: Invalid value: 0.25: spec.c in body should be greater than or equal to 0.5",
            ]
        );
        assert_eq!(
            validate_spec(s, json!({"a": 11, "b": 10, "c": 1000000.5})),
            vec![
                "spec.a: Invalid value: 11: spec.a in body should be less than or equal to 10",
                "spec.b: Invalid value: 10: spec.b in body should be less than 10",
                "spec.c: Invalid value: 1.0000005e+06: spec.c in body should be less than or equal to 1e+06",
            ]
        );
    }

    #[test]
    fn multiple_of() {
        let s = json!({"type": "object", "properties": {"i": {"type": "integer", "multipleOf": 5}, "f": {"type": "number", "multipleOf": 0.1}}});
        assert!(validate_spec(s.clone(), json!({"i": 15, "f": 0.3})).is_empty());
        assert_eq!(
            validate_spec(s, json!({"i": 7, "f": 0.35})),
            vec![
                "spec.f: Invalid value: 0.35: spec.f in body should be a multiple of 0.1",
                "spec.i: Invalid value: 7: spec.i in body should be a multiple of 5",
            ]
        );
    }

    #[test]
    fn string_lengths_count_characters() {
        let s = json!({"type": "object", "properties": {"s": {"type": "string", "minLength": 2, "maxLength": 3}}});
        assert!(validate_spec(s.clone(), json!({"s": "äöü"})).is_empty());
        let errs = obj_schema(s.clone()).validate(&json!({"spec": {"s": "abcd"}}));
        assert_eq!(errs[0].reason, CauseType::FieldValueTooLong);
        assert_eq!(messages(&errs), vec!["spec.s: Too long: may not be more than 3 bytes"]);
        assert_eq!(
            validate_spec(s, json!({"s": "é"})),
            vec!["spec.s: Invalid value: \"é\": spec.s in body should be at least 2 chars long"]
        );
    }

    #[test]
    fn patterns() {
        let s = json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "^[a-z]+$"}, "t": {"type": "string", "pattern": "b"}}});
        assert!(validate_spec(s.clone(), json!({"s": "abc", "t": "abc"})).is_empty());
        assert_eq!(
            validate_spec(s, json!({"s": "ABC", "t": "xyz"})),
            vec![
                "spec.s: Invalid value: \"ABC\": spec.s in body should match '^[a-z]+$'",
                "spec.t: Invalid value: \"xyz\": spec.t in body should match 'b'",
            ]
        );
    }

    #[test]
    fn item_counts() {
        let s = json!({"type": "object", "properties": {"l": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "integer"}}}});
        assert!(validate_spec(s.clone(), json!({"l": [1, 2]})).is_empty());
        assert_eq!(
            validate_spec(s.clone(), json!({"l": [1]})),
            vec!["spec.l: Invalid value: 1: spec.l in body should have at least 2 items"]
        );
        let errs = obj_schema(s).validate(&json!({"spec": {"l": [1, 2, 3, "x"]}}));
        assert_eq!(
            messages(&errs),
            vec![
                "spec.l[3]: Invalid value: \"string\": spec.l[3] in body must be of type integer: \"string\"",
                "spec.l: Too many: 4: must have at most 3 items",
            ]
        );
        assert_eq!(errs[1].reason, CauseType::FieldValueTooMany);
    }

    #[test]
    fn unique_items_is_checked_when_present() {
        // CRD validation forbids uniqueItems, but the validator supports it.
        let item = StructuralSchema {
            node: Arc::new(Node {
                ty: Some(Type::Integer),
                ..Node::default()
            }),
        };
        let list = Node {
            ty: Some(Type::Array),
            items: Some(item),
            unique_items: true,
            ..Node::default()
        };
        let mut v = Validator {
            base: "",
            meta: Vec::new(),
            lists: Vec::new(),
        };
        let mut out = Vec::new();
        v.value(&json!([1, 2, 1]), &list, &Path::ROOT.prop("l"), false, &mut out);
        assert_eq!(
            messages(&out),
            vec!["l: Invalid value: \"\": l in body shouldn't contain duplicates"]
        );
        let mut out = Vec::new();
        v.value(&json!([1, 2, 3]), &list, &Path::ROOT.prop("l"), false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn property_counts() {
        let s = json!({"type": "object", "properties": {"m": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}}}});
        assert!(validate_spec(s.clone(), json!({"m": {"a": "1"}})).is_empty());
        assert_eq!(
            validate_spec(s.clone(), json!({"m": {}})),
            vec!["spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"]
        );
        assert_eq!(
            validate_spec(s, json!({"m": {"a": "1", "b": "2", "c": 3}})),
            vec!["spec.m: Too many: 3: must have at most 2 items"]
        );
    }

    #[test]
    fn additional_properties_validation() {
        let s = json!({"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
            "closed": {"type": "object", "additionalProperties": false}
        }});
        assert!(validate_spec(s.clone(), json!({"labels": {"a": "b"}, "closed": {}})).is_empty());
        assert_eq!(
            validate_spec(s, json!({"labels": {"app": 5, "tier": "backend"}, "closed": {"x": 1}})),
            vec![
                "spec.closed: Invalid value: \"x\": spec.closed.x in body is a forbidden property",
                "spec.labels.app: Invalid value: \"integer\": spec.labels.app in body must be of type string: \"integer\"",
                "spec.labels.tier: Too long: may not be more than 3 bytes",
            ]
        );
    }

    #[test]
    fn logical_junctors() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "string"}},
                  "oneOf": [{"required": ["x"]}, {"required": ["y"]}]},
            "b": {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]},
            "c": {"type": "string", "allOf": [{"minLength": 2}, {"pattern": "^a"}]},
            "d": {"type": "string", "not": {"enum": ["forbidden"]}}
        }});
        assert!(validate_spec(s.clone(), json!({"a": {"x": "1"}, "b": 11, "c": "ab", "d": "ok"})).is_empty());
        // Composite errors have no field (kube-apiserver's `<nil>`).
        let errs = obj_schema(s.clone()).validate(&json!({"spec": {"a": {}}}));
        assert_eq!(errs[0].field, "");
        assert_eq!(errs[0].reason, CauseType::FieldValueInvalid);
        assert_eq!(
            messages(&errs),
            vec![
                "Invalid value: \"\": \"spec.a\" must validate one and only one schema (oneOf). Found none valid",
                "spec.a.x: Required value",
            ]
        );
        assert_eq!(
            validate_spec(s.clone(), json!({"a": {"x": "1", "y": "2"}})),
            vec![
                "Invalid value: \"\": \"spec.a\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
            ]
        );
        assert_eq!(
            validate_spec(s.clone(), json!({"b": 5})),
            vec![
                "Invalid value: \"\": \"spec.b\" must validate at least one schema (anyOf)",
                "spec.b: Invalid value: 5: spec.b in body should be greater than or equal to 10",
            ]
        );
        assert_eq!(
            validate_spec(s.clone(), json!({"c": "b"})),
            vec![
                "spec.c: Invalid value: \"b\": spec.c in body should be at least 2 chars long",
                "spec.c: Invalid value: \"b\": spec.c in body should match '^a'",
                "Invalid value: \"\": \"spec.c\" must validate all the schemas (allOf). None validated",
            ]
        );
        assert_eq!(
            validate_spec(s, json!({"d": "forbidden"})),
            vec!["Invalid value: \"\": \"spec.d\" must not validate the schema (not)"]
        );
    }

    #[test]
    fn list_type_set_and_map() {
        let s = json!({"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                      "items": {"type": "object", "required": ["port"], "properties": {
                          "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
            "byName": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                       "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
            "nested": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}
        }});
        assert!(
            validate_spec(
                s.clone(),
                json!({
                    "tags": ["a", "b"],
                    "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}],
                    "byName": [{"name": "a"}, {"name": "b"}]
                })
            )
            .is_empty()
        );
        let errs = obj_schema(s).validate(&json!({"spec": {
            "tags": ["a", "b", "a", "a"],
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}],
            "byName": [{"name": "a"}, {"name": "a"}, "oops"],
            "nested": {"k": [1, 1]}
        }}));
        assert_eq!(
            messages(&errs),
            vec![
                "spec.byName[2]: Invalid value: \"string\": spec.byName[2] in body must be of type object: \"string\"",
                "spec.byName[2]: Invalid value: \"oops\": must be an object for an array of list-type map",
                "spec.nested[k][1]: Duplicate value: 1",
                "spec.ports[1]: Duplicate value: map[string]interface {}{\"port\":80, \"protocol\":\"TCP\"}",
                "spec.tags[2]: Duplicate value: \"a\"",
            ]
        );
        assert_eq!(errs[2].reason, CauseType::FieldValueDuplicate);
    }

    #[test]
    fn large_sets_use_hashing() {
        let s = json!({"type": "object", "properties": {"tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}}});
        let mut tags: Vec<i64> = (0..100).collect();
        tags.push(42);
        tags.push(42);
        tags.push(7);
        assert_eq!(
            validate_spec(s, json!({"tags": tags})),
            vec![
                "spec.tags[100]: Duplicate value: 42",
                "spec.tags[102]: Duplicate value: 7"
            ]
        );
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            "many": {"type": "object", "additionalProperties": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}
        }}));
        assert!(
            s.validate(&json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}}))
                .is_empty()
        );
        assert_eq!(
            messages(&s.validate(&json!({"spec": {"template": {"metadata": "x"}, "many": {"m": {"apiVersion": "a/b/c", "kind": "Bad_Kind"}}}}))),
            vec![
                "spec.many[m].apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c",
                "spec.many[m].kind: Invalid value: \"Bad_Kind\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                "spec.template.apiVersion: Required value",
                "spec.template.kind: Required value",
                "spec.template.metadata: Invalid value: \"x\": json: cannot unmarshal string into Go value of type v1.ObjectMeta",
            ]
        );
    }

    #[test]
    fn root_type_meta_is_skipped_and_metadata_names_are_checked() {
        let s = schema(json!({"type": "object", "properties": {
            "apiVersion": {"type": "string", "enum": ["never"]},
            "kind": {"type": "string", "maxLength": 1},
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}},
            "spec": {"type": "object"}
        }}));
        assert!(s.validate(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "short", "labels": {"a": "b"}}})).is_empty());
        assert_eq!(
            messages(&s.validate(&json!({"metadata": {"name": "too-long"}}))),
            vec!["metadata.name: Too long: may not be more than 5 bytes"]
        );
    }

    #[test]
    fn root_must_be_an_object_value() {
        let s = schema(json!({"type": "object"}));
        assert_eq!(
            messages(&s.validate(&json!([1]))),
            vec!["Invalid value: \"array\":  in body must be of type object: \"array\""]
        );
    }

    #[test]
    fn preserve_unknown_fields_still_validates_declared_fields() {
        let s = obj_schema(
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"n": {"type": "integer"}}}),
        );
        assert!(s.validate(&json!({"spec": {"anything": {"x": 1}, "n": 1}})).is_empty());
        assert_eq!(
            messages(&s.validate(&json!({"spec": {"n": "x"}}))),
            vec!["spec.n: Invalid value: \"string\": spec.n in body must be of type integer: \"string\""]
        );
    }

    // --- lookup, to_json, sharing -----------------------------------------------

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
        let handle = std::thread::spawn(move || t.validate(&json!({"spec": {"name": 1}})).len());
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[test]
    fn go_style_rendering() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_value(&json!(null)), "\"null\"");
        assert_eq!(go_value(&json!([1, "a"])), "[]interface {}{1, \"a\"}");
        assert_eq!(go_json(&json!({"b": 1.0, "a": [2.5]})), "{\"a\":[2.5],\"b\":1}");
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
        assert!(s.validate(&obj).is_empty());
        obj["spec"]["count"] = json!(0);
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["spec.count: Invalid value: 0: spec.count in body should be greater than or equal to 1"]
        );
    }
}
