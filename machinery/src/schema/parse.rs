//! Parsing and CRD-level checks.

use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use super::cel::Checker;
use super::path::Path;
use super::prune::prune_value;
use super::render::{go_string_slice, go_value, quote};
use super::validate::Validator;
use super::{Additional, Format, ListType, Node, StructuralSchema, Type, is_meta_field};
use crate::status::FieldError;

impl StructuralSchema {
    /// Parses and checks a CRD version's `openAPIV3Schema` the way CRD validation
    /// does. `field_prefix` is the path of the schema in the CRD, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`; errors carry paths below it
    /// such as `spec.versions[0].schema.openAPIV3Schema.properties[spec].type`.
    pub fn parse(schema: &Value, field_prefix: &str) -> Result<StructuralSchema, Vec<FieldError>> {
        Self::parse_with(schema, field_prefix, true)
    }

    /// As [`Self::parse`] for a schema already stored: its CEL rules that cannot be evaluated
    /// (accepted before this server checked them) do not stop it from being served; they
    /// refuse every value they apply to instead.
    pub fn parse_stored(schema: &Value, field_prefix: &str) -> Result<StructuralSchema, Vec<FieldError>> {
        Self::parse_with(schema, field_prefix, false)
    }

    fn parse_with(schema: &Value, field_prefix: &str, strict_rules: bool) -> Result<StructuralSchema, Vec<FieldError>> {
        let mut parser = Parser {
            json: Arc::new(schema.clone()),
            errors: Vec::new(),
            rule_errors: Vec::new(),
        };
        let root_ctx = Ctx {
            path: field_prefix.to_string(),
            pointer: String::new(),
            level: Level::Root,
            junctor: false,
            exempt: false,
            skip_any_of: false,
            default_forbidden: None,
            uncorrelatable: None,
        };
        let root = parser.node(schema, &root_ctx);
        if strict_rules {
            let rule_errors = std::mem::take(&mut parser.rule_errors);
            parser.errors.extend(rule_errors);
        }
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
}

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
    /// The path of the list above this node whose items cannot be matched with their previous
    /// versions (any list but `x-kubernetes-list-type: map`): transition rules cannot be used
    /// below it.
    uncorrelatable: Option<String>,
}

struct Parser {
    json: Arc<Value>,
    errors: Vec<FieldError>,
    /// CEL rules that cannot be evaluated: errors when a CRD is written (see `parse_stored`).
    rule_errors: Vec<FieldError>,
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
        if !nested && let Some(rules) = obj.get("x-kubernetes-validations").filter(|r| !r.is_null()) {
            let (rules, errors) = super::cel::compile(rules, p, obj, c.uncorrelatable.as_deref());
            n.rules = rules;
            self.rule_errors.extend(errors);
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
                        uncorrelatable: c.uncorrelatable.clone(),
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
                    uncorrelatable: c
                        .uncorrelatable
                        .clone()
                        .or_else(|| (n.list_type != Some(ListType::Map)).then(|| p.to_string())),
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
                            uncorrelatable: c.uncorrelatable.clone(),
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
                            uncorrelatable: c.uncorrelatable.clone(),
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
                uncorrelatable: c.uncorrelatable.clone(),
            };
            n.not = Some(self.node(sub, &child));
        }

        // --- structural invariants (not inside junctors) ------------------------
        if !c.junctor {
            self.structural_checks(&n, obj, c, type_str);
        }
        self.list_checks(&n, p);

        let children = n
            .properties
            .values()
            .chain(n.items.as_ref())
            .chain(match &n.additional {
                Some(Additional::Schema(s)) => Some(s),
                _ => None,
            });
        for child in children {
            n.rules_below |= child.node.rules_below;
            n.transitions_below |= child.node.transitions_below;
        }
        n.rules_below |= !n.rules.is_empty();
        n.transitions_below |= n.rules.iter().any(super::cel::Rule::is_transition);

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
        out.append(&mut v.meta);
        out.append(&mut v.lists);
        if out.is_empty() && n.rules_below {
            // As kube-apiserver does: a default must pass the rules as an update that keeps it
            // (transition rules see it as `oldSelf` too) and, so that rules with
            // `optionalOldSelf` accept it on create, as a new value.
            let rules = Checker {
                base: &field,
                defaults: true,
            };
            rules.walk(n, default, Some(default), &Path::ROOT, &mut out);
            if out.is_empty() {
                rules.walk(n, default, None, &Path::ROOT, &mut out);
            }
        }
        errors.append(&mut out);
    }
    // Like kube-apiserver, defaults below additionalProperties are not followed.
    if let Some(items) = &n.items {
        check_defaults(items, &format!("{path}.items"), errors);
    }
    for (key, prop) in &n.properties {
        check_defaults(prop, &format!("{path}.properties[{key}]"), errors);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::test_support::*;

    fn assert_has(msgs: &[String], expected: &str) {
        assert!(msgs.iter().any(|m| m == expected), "expected {expected:?} in {msgs:#?}");
    }

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
}
