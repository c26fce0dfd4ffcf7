//! Validation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};

use super::cel::Checker;
use super::formats::check_format;
use super::path::{Path, join_path};
use super::render::{go_float, go_json, go_sharp, go_value, num_repr, quote};
use super::{Additional, ListType, Node, StructuralSchema, Type};
use crate::status::{CauseType, FieldError};

impl StructuralSchema {
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
    ///
    /// The CEL rules of `x-kubernetes-validations` come last, checked only if
    /// no earlier error leaves the object in a shape they were not written for.
    /// `old` is the object before an update: transition rules compare with it.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut v = Validator {
            base: "",
            meta: Vec::new(),
            lists: Vec::new(),
        };
        let mut out = Vec::new();
        v.value(obj, &self.node, &Path::ROOT, true, &mut out);
        out.append(&mut v.meta);
        out.append(&mut v.lists);
        if self.node.rules_below {
            if out.iter().any(|e| blocks_rules(e.reason)) {
                out.push(FieldError::invalid(
                    "",
                    "\"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
                ));
            } else {
                let rules = Checker {
                    base: "",
                    defaults: false,
                };
                rules.walk(&self.node, obj, old, &Path::ROOT, &mut out);
            }
        }
        out
    }
}

/// Errors after which kube-apiserver does not evaluate CEL rules: the value is not of the shape
/// they were written for.
fn blocks_rules(reason: CauseType) -> bool {
    matches!(
        reason,
        CauseType::FieldValueNotSupported
            | CauseType::FieldValueRequired
            | CauseType::FieldValueTooLong
            | CauseType::FieldValueTooMany
            | CauseType::FieldValueTypeInvalid
    )
}

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

pub(super) fn type_matches(s: &Node, v: &Value) -> bool {
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

pub(super) enum NumVal {
    Int(i64),
    Float(f64),
}

pub(super) fn num_val(n: &Number) -> NumVal {
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

pub(super) struct Validator<'b> {
    /// Prefix of every field path (the `…default` of a CRD schema node when
    /// validating defaults); empty for custom resources.
    pub(super) base: &'b str,
    /// Embedded resource (apiVersion/kind/metadata) errors.
    pub(super) meta: Vec<FieldError>,
    /// `x-kubernetes-list-type` errors.
    pub(super) lists: Vec<FieldError>,
}

impl Validator<'_> {
    fn field(&self, p: &Path, brackets: bool) -> String {
        join_path(self.base, &p.render(brackets))
    }

    pub(super) fn value(&mut self, v: &Value, s: &Node, path: &Path, root: bool, out: &mut Vec<FieldError>) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::schema::test_support::*;

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
            .validate(&json!({"spec": {"replicas": "string"}}), None);
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
        let errs = obj_schema(s.clone()).validate(&json!({"spec": {"level": 3}}), None);
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
        let errs = s.validate(
            &json!({"spec": {"template": {"name": "x"}, "list": [{"id": "a"}, {}]}}),
            None,
        );
        assert_eq!(
            messages(&errs),
            vec!["spec.list[1].id: Required value", "spec.template.image: Required value"]
        );
        assert_eq!(errs[0].reason, CauseType::FieldValueRequired);
        assert_eq!(errs[0].message, "");
        let errs = s.validate(&json!({"spec": {}}), None);
        assert_eq!(messages(&errs), vec!["spec.template: Required value"]);
        let root = schema(json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}));
        assert_eq!(
            messages(&root.validate(&json!({"kind": "X"}), None)),
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
        let errs = obj_schema(s.clone()).validate(&json!({"spec": {"s": "abcd"}}), None);
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
        let errs = obj_schema(s).validate(&json!({"spec": {"l": [1, 2, 3, "x"]}}), None);
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
        let errs = obj_schema(s.clone()).validate(&json!({"spec": {"a": {}}}), None);
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
        let errs = obj_schema(s).validate(
            &json!({"spec": {
                "tags": ["a", "b", "a", "a"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}],
                "byName": [{"name": "a"}, {"name": "a"}, "oops"],
                "nested": {"k": [1, 1]}
            }}),
            None,
        );
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
            s.validate(
                &json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            messages(&s.validate(&json!({"spec": {"template": {"metadata": "x"}, "many": {"m": {"apiVersion": "a/b/c", "kind": "Bad_Kind"}}}}), None)),
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
        assert!(s.validate(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "short", "labels": {"a": "b"}}}), None).is_empty());
        assert_eq!(
            messages(&s.validate(&json!({"metadata": {"name": "too-long"}}), None)),
            vec!["metadata.name: Too long: may not be more than 5 bytes"]
        );
    }

    #[test]
    fn root_must_be_an_object_value() {
        let s = schema(json!({"type": "object"}));
        assert_eq!(
            messages(&s.validate(&json!([1]), None)),
            vec!["Invalid value: \"array\":  in body must be of type object: \"array\""]
        );
    }

    #[test]
    fn preserve_unknown_fields_still_validates_declared_fields() {
        let s = obj_schema(
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"n": {"type": "integer"}}}),
        );
        assert!(
            s.validate(&json!({"spec": {"anything": {"x": 1}, "n": 1}}), None)
                .is_empty()
        );
        assert_eq!(
            messages(&s.validate(&json!({"spec": {"n": "x"}}), None)),
            vec!["spec.n: Invalid value: \"string\": spec.n in body must be of type integer: \"string\""]
        );
    }
}
