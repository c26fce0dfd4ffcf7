//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//!
//! This is Faros' own implementation of the behaviour of apimachinery's
//! `strategicpatch.StrategicMergePatch`, restricted to what real clients
//! (kubectl, client-go, controllers) send:
//!
//! * Maps merge recursively; a `null` patch value deletes the key; any other
//!   non-map patch value replaces the original value.
//! * Lists follow the `patchStrategy`/`patchMergeKey` of the field, provided
//!   by a [`PatchMeta`]:
//!   * [`ListStrategy::Replace`] (the default, "atomic") replaces the list.
//!   * [`ListStrategy::Merge`] with a key merges lists of objects by that key:
//!     patch items are merged into the original item with the same key value,
//!     unknown items are added; `{"$patch": "delete", <key>: v}` removes items
//!     and a `{"$patch": "replace"}` element replaces the whole list with the
//!     other patch elements.
//!   * [`ListStrategy::Merge`] without a key merges lists of primitives as a
//!     set (duplicates dropped).
//!
//!   As in Kubernetes, a merged list is ordered with precedence
//!   `$setElementOrder` > order in the patch list > order in the live list:
//!   items named by the patch keep the patch's relative order, server-only
//!   items keep theirs, and the two are interleaved by live-list position (a
//!   server-only item goes before a patch item only if both are in the live
//!   list and it came first there). Consequence, identical to kube-apiserver:
//!   items a patch adds without `$setElementOrder` land *before* the existing
//!   items they cannot be anchored to — finalizers `[a, b]` patched with `[c]`
//!   become `[c, a, b]`, patched with `[b, c]` they become `[a, b, c]`.
//!   `kubectl apply` always sends `$setElementOrder`, so it gets exactly the
//!   order it asks for.
//! * Directives: `$patch: replace|delete` on maps, `$patch: replace|delete`
//!   list elements, `$retainKeys`, `$setElementOrder/<field>` and
//!   `$deleteFromPrimitiveList/<field>`. Any other `$`-prefixed key is
//!   rejected (except `$ref` and `$schema`, which are ordinary property names
//!   of the JSON schemas embedded in CustomResourceDefinitions).
//!
//! Deliberate differences from apimachinery; they only concern patches that
//! Kubernetes stores oddly or whose result fails to decode into the typed object:
//!
//! * Values with no counterpart in the original (new keys, new list items,
//!   replaced maps and lists) are normalised like a merge into an empty value:
//!   `null`s inside them are dropped and directives inside them are executed
//!   instead of being stored verbatim.
//! * `$patch: delete` on a map removes the key from its parent (apimachinery
//!   leaves an empty map behind, which decodes to the same typed object).
//! * A change of JSON container type (object / list / scalar) between the
//!   original and the patch is an error, because decoding the result into the
//!   typed object would fail in Kubernetes too. Changes between scalar types
//!   (e.g. `int-or-string` fields such as `targetPort`, `maxSurge`, quantities)
//!   are allowed.
//! * `{"$patch": "replace"}` is also honoured in merged lists of primitives;
//!   `$patch` elements of atomic lists are dropped rather than stored.
//! * Unknown `$` keys are errors (apimachinery stores them as fields).
//! * Numbers compare by numeric value (`80` equals `80.0`), as Go's JSON
//!   decoding into `float64` does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

const DIRECTIVE_MARKER: &str = "$patch";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList/";
/// `$`-prefixed property names that are ordinary fields of built-in kinds
/// (`JSONSchemaProps` in CustomResourceDefinitions), not patch directives.
const PLAIN_DOLLAR_FIELDS: &[&str] = &["$ref", "$schema"];

/// How a list field merges, from the Go struct tags `patchStrategy`/`patchMergeKey` of the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy<'a> {
    /// Atomic list: the patch value replaces the original list.
    Replace,
    /// `patchStrategy:"merge"`. With a key (`patchMergeKey`), a list of objects merged
    /// by that key; with `None`, a list of primitives merged as a set.
    Merge { key: Option<&'a str> },
}

/// Per-kind patch metadata: which fields (addressed by their path of property names,
/// array levels elided, e.g. `["metadata","ownerReferences"]`,
/// `["spec","containers","ports"]`) merge and which have `retainKeys` strategy.
pub trait PatchMeta {
    /// The strategy of the list field at `path`; [`ListStrategy::Replace`] for a field
    /// without a patch strategy.
    fn list_strategy(&self, path: &[&str]) -> ListStrategy<'_>;

    /// Whether the field at `path` has the `retainKeys` patch strategy.
    ///
    /// Informational: like apimachinery, [`apply`] honours a `$retainKeys`
    /// directive wherever a patch carries one; clients only generate it for
    /// such fields.
    fn retain_keys(&self, path: &[&str]) -> bool;
}

const REF_PREFIX: &str = "#/components/schemas/";

/// [`PatchMeta`] read from the OpenAPI v3 schema of a kind, the way kubectl reads it for
/// client-side apply: a field's `x-kubernetes-patch-strategy` (`merge`, `retainKeys` or
/// `merge,retainKeys`) and `x-kubernetes-patch-merge-key`, which kube-apiserver publishes
/// from the Go struct tags `patchStrategy`/`patchMergeKey`. So the metadata the server
/// merges with is the metadata it publishes, kept in one place. `x-kubernetes-list-type`
/// is not consulted: strategic merge follows the struct tags only (a `map` list without a
/// patch strategy, such as CustomResourceDefinition `status.conditions`, is atomic here).
///
/// ```
/// use faros_machinery::strategic_merge::{ListStrategy, PatchMeta, SchemaPatchMeta};
/// use serde_json::json;
/// let schemas = json!({"io.k8s.api.core.v1.ObjectReference": {"type": "object"}});
/// let root = json!({"properties": {"secrets": {
///     "type": "array",
///     "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ObjectReference"},
///     "x-kubernetes-patch-merge-key": "name",
///     "x-kubernetes-patch-strategy": "merge",
/// }}});
/// let meta = SchemaPatchMeta::new(schemas.as_object().unwrap(), &root);
/// assert_eq!(meta.list_strategy(&["secrets"]), ListStrategy::Merge { key: Some("name") });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SchemaPatchMeta<'s> {
    schemas: &'s Map<String, Value>,
    root: &'s Value,
}

impl<'s> SchemaPatchMeta<'s> {
    /// The metadata of the kind whose schema is `root`; `schemas` are the component schemas
    /// (by model name) its `#/components/schemas/...` references point into.
    pub fn new(schemas: &'s Map<String, Value>, root: &'s Value) -> Self {
        SchemaPatchMeta { schemas, root }
    }

    /// Follows `$ref` and a lone `allOf: [{$ref}]` (how OpenAPI v3 attaches a description
    /// to a reference) to the schema they name.
    fn resolve(&self, mut schema: &'s Value) -> &'s Value {
        loop {
            if let Some(name) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
                && let Some(target) = self.schemas.get(name)
            {
                schema = target;
            } else if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                schema = only;
            } else {
                return schema;
            }
        }
    }

    /// The schema of the field at `path` as its parent declares it (where the patch
    /// extensions are), or None when the schema does not know the field.
    fn field(&self, path: &[&str]) -> Option<&'s Value> {
        let (last, parents) = path.split_last()?;
        let mut schema = self.root;
        for name in parents {
            schema = self.child(schema, name)?;
        }
        self.child(schema, last)
    }

    /// The property `name` of `schema`, looking through list items (array levels are elided
    /// in paths) and into the values of maps.
    fn child(&self, schema: &'s Value, name: &str) -> Option<&'s Value> {
        let mut schema = self.resolve(schema);
        while let Some(items) = schema.get("items") {
            schema = self.resolve(items);
        }
        schema
            .get("properties")
            .and_then(|props| props.get(name))
            .or_else(|| schema.get("additionalProperties").filter(|v| v.is_object()))
    }

    fn strategies(&self, path: &[&str]) -> impl Iterator<Item = &'s str> {
        self.field(path)
            .and_then(|f| f.get("x-kubernetes-patch-strategy"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(',')
    }
}

impl PatchMeta for SchemaPatchMeta<'_> {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy<'_> {
        if !self.strategies(path).any(|s| s == "merge") {
            return ListStrategy::Replace;
        }
        let key = self
            .field(path)
            .and_then(|f| f.get("x-kubernetes-patch-merge-key"))
            .and_then(Value::as_str);
        ListStrategy::Merge { key }
    }

    fn retain_keys(&self, path: &[&str]) -> bool {
        self.strategies(path).any(|s| s == "retainKeys")
    }
}

/// A patch that cannot be applied; the message is meant for the client
/// (the server turns it into a 400/422 status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError(pub String);

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatchError {}

/// Apply an SMP document to `original`, returning the new object.
///
/// `original` must be a JSON object (`null` is treated as `{}`); `patch` must
/// be a JSON object. Neither input is modified.
pub fn apply(original: &Value, patch: &Value, meta: &dyn PatchMeta) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError(format!(
            "the patch must be a JSON object, got {}",
            kind_name(patch)
        )));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(PatchError(format!("cannot apply a patch to {}", kind_name(other))));
        }
    };
    let merged = Merger { meta }.merge_map(original, patch, &[])?;
    // `{"$patch": "delete"}` at the top level leaves an empty object, as in Kubernetes.
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn fail(path: &[&str], msg: impl fmt::Display) -> PatchError {
    if path.is_empty() {
        PatchError(msg.to_string())
    } else {
        PatchError(format!("field {}: {msg}", path.join(".")))
    }
}

fn child<'p>(path: &[&'p str], key: &'p str) -> Vec<&'p str> {
    let mut out = Vec::with_capacity(path.len() + 1);
    out.extend_from_slice(path);
    out.push(key);
    out
}

/// Remove `key` keeping the order of the other keys (also with serde_json's
/// `preserve_order` feature, where `Map::remove` swaps entries around).
fn remove_key(map: &mut Map<String, Value>, key: &str) {
    if map.contains_key(key) {
        map.retain(|k, _| k != key);
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::Bool(_) | Value::Number(_) | Value::String(_))
}

/// JSON equality with numbers compared by value (`1` == `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A hash that values equal under [`json_eq`] share: numbers hash by their `f64` value, on
/// which every equality `json_eq` finds agrees.
fn json_hash(value: &Value) -> u64 {
    fn feed(value: &Value, h: &mut DefaultHasher) {
        match value {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or_default();
                // -0.0 == 0.0, so they must hash alike.
                (2u8, if f == 0.0 { 0 } else { f.to_bits() }).hash(h);
            }
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(items) => {
                (4u8, items.len()).hash(h);
                items.iter().for_each(|v| feed(v, h));
            }
            Value::Object(map) => {
                (5u8, map.len()).hash(h);
                for (k, v) in map {
                    k.hash(h);
                    feed(v, h);
                }
            }
        }
    }
    let mut h = DefaultHasher::new();
    feed(value, &mut h);
    h.finish()
}

/// Where list items are, by identity: the hash narrows a lookup to a few candidates and
/// [`json_eq`] decides, so merging long lists (thousands of finalizers, say) stays linear
/// instead of comparing every patch item with every live one.
#[derive(Default)]
struct IdentityIndex {
    buckets: HashMap<u64, Vec<usize>>,
}

impl IdentityIndex {
    /// An index of `ids`, each at its position.
    fn of(ids: &[Value]) -> IdentityIndex {
        let mut index = IdentityIndex::default();
        for (i, id) in ids.iter().enumerate() {
            index.insert(id, i);
        }
        index
    }

    fn insert(&mut self, id: &Value, position: usize) {
        self.buckets.entry(json_hash(id)).or_default().push(position);
    }

    /// The first position whose identity (as `identity_at` gives it) equals `id`.
    fn find<'v>(&self, id: &Value, identity_at: impl Fn(usize) -> Option<&'v Value>) -> Option<usize> {
        self.buckets
            .get(&json_hash(id))?
            .iter()
            .copied()
            .find(|&i| identity_at(i).is_some_and(|candidate| json_eq(candidate, id)))
    }
}

fn has_directive(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

/// What identifies a list item for merging and ordering: the merge key value
/// for objects that have it, otherwise the item itself.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> &'v Value {
    match key {
        Some(key) => item.get(key).unwrap_or(item),
        None => item,
    }
}

fn identities(items: &[Value], key: Option<&str>) -> Vec<Value> {
    items.iter().map(|v| identity(v, key).clone()).collect()
}

/// Kubernetes' element-order normalisation: items identified in `patch_ids`
/// are sorted by it, the others by `server_ids`; then the server-only items
/// are interleaved with the patch items using their live positions.
fn normalize_order(merged: Vec<Value>, patch_ids: &[Value], server_ids: &[Value], key: Option<&str>) -> Vec<Value> {
    // (sort position, position in the live list, item)
    type Entry = (usize, Option<usize>, Value);
    let total = merged.len();
    let (server_index, patch_index) = (IdentityIndex::of(server_ids), IdentityIndex::of(patch_ids));
    let mut from_patch: Vec<Entry> = Vec::new();
    let mut server_only: Vec<Entry> = Vec::new();
    for item in merged {
        let id = identity(&item, key);
        let live = server_index.find(id, |i| server_ids.get(i));
        match patch_index.find(id, |i| patch_ids.get(i)) {
            Some(p) => from_patch.push((p, live, item)),
            None => server_only.push((live.unwrap_or(usize::MAX), live, item)),
        }
    }
    // Stable sorts: equal positions (duplicates) keep their relative order.
    from_patch.sort_by_key(|e| e.0);
    server_only.sort_by_key(|e| e.0);

    let mut left: VecDeque<Entry> = server_only.into();
    let mut right: VecDeque<Entry> = from_patch.into();
    let mut out = Vec::with_capacity(total);
    while let (Some(l), Some(r)) = (left.front(), right.front()) {
        // A server-only item goes first only if both are in the live list and it
        // came first there; otherwise the patch item does.
        let take_left = matches!((l.1, r.1), (Some(li), Some(ri)) if li < ri);
        let next = if take_left { left.pop_front() } else { right.pop_front() };
        out.extend(next.map(|e| e.2));
    }
    out.extend(right.into_iter().map(|e| e.2));
    out.extend(left.into_iter().map(|e| e.2));
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Object,
    String,
    Number,
    Bool,
}

/// The common element type of merged list elements (`None` if there are none).
fn common_element_kind<'a>(
    items: impl Iterator<Item = &'a Value>,
    path: &[&str],
) -> Result<Option<ElementKind>, PatchError> {
    let mut kind = None;
    for item in items {
        let this = match item {
            Value::Object(_) => ElementKind::Object,
            Value::String(_) => ElementKind::String,
            Value::Number(_) => ElementKind::Number,
            Value::Bool(_) => ElementKind::Bool,
            Value::Array(_) => return Err(fail(path, "lists of lists cannot be merged")),
            Value::Null => return Err(fail(path, "a merged list cannot contain null elements")),
        };
        match kind {
            None => kind = Some(this),
            Some(prev) if prev != this => {
                return Err(fail(path, "list element types are not identical"));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

enum PatchKey<'p> {
    Directive,
    RetainKeys,
    SetElementOrder(&'p str),
    DeleteFromPrimitiveList(&'p str),
    Field,
}

fn classify<'p>(key: &'p str, path: &[&str]) -> Result<PatchKey<'p>, PatchError> {
    if !key.starts_with('$') || PLAIN_DOLLAR_FIELDS.contains(&key) {
        return Ok(PatchKey::Field);
    }
    if key == DIRECTIVE_MARKER {
        return Ok(PatchKey::Directive);
    }
    if key == RETAIN_KEYS_DIRECTIVE {
        return Ok(PatchKey::RetainKeys);
    }
    let (prefix, field, kind): (&str, _, fn(&'p str) -> PatchKey<'p>) =
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER_PREFIX) {
            (SET_ELEMENT_ORDER_PREFIX, field, PatchKey::SetElementOrder)
        } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            (
                DELETE_FROM_PRIMITIVE_LIST_PREFIX,
                field,
                PatchKey::DeleteFromPrimitiveList,
            )
        } else {
            return Err(fail(path, format_args!("unknown patch directive {key:?}")));
        };
    if field.is_empty() {
        return Err(fail(path, format_args!("directive {prefix:?} must name a field")));
    }
    Ok(kind(field))
}

struct Merger<'m> {
    meta: &'m dyn PatchMeta,
}

impl Merger<'_> {
    /// Merge `patch` into `original`. `None` means the map is deleted (`$patch: delete`).
    fn merge_map<'p>(
        &self,
        original: Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &[&'p str],
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match patch.get(DIRECTIVE_MARKER) {
            None => self.merge_fields(original, patch, path).map(Some),
            Some(Value::String(s)) if s == "replace" => self.merge_fields(Map::new(), patch, path).map(Some),
            Some(Value::String(s)) if s == "delete" => Ok(None),
            Some(other) => Err(fail(path, format_args!("unknown patch type {other} in map"))),
        }
    }

    /// Merge the fields of `patch` (ignoring a `$patch` directive) into `original`.
    fn merge_fields<'p>(
        &self,
        mut original: Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &[&'p str],
    ) -> Result<Map<String, Value>, PatchError> {
        let mut retain_keys = None;
        let mut orders = Vec::new();
        let mut deletions = Vec::new();
        let mut fields = Vec::with_capacity(patch.len());
        for (key, value) in patch {
            match classify(key, path)? {
                PatchKey::Directive => {}
                PatchKey::RetainKeys => retain_keys = Some(value),
                PatchKey::SetElementOrder(field) => orders.push((field, value)),
                PatchKey::DeleteFromPrimitiveList(field) => deletions.push((field, value)),
                PatchKey::Field => fields.push((key.as_str(), value)),
            }
        }

        if let Some(retain) = retain_keys {
            apply_retain_keys(&mut original, retain, &fields, path)?;
        }

        // `$setElementOrder/<field>` merges its list together with the ordering.
        let mut ordered = Vec::with_capacity(orders.len());
        for (field, order) in orders {
            self.merge_ordered_list(&mut original, patch, field, order, path)?;
            ordered.push(field);
        }

        for (key, value) in fields {
            if !ordered.contains(&key) {
                self.merge_field(&mut original, key, value, path)?;
            }
        }

        for (field, values) in deletions {
            delete_from_primitive_list(&mut original, field, values, path)?;
        }
        Ok(original)
    }

    fn merge_field<'p>(
        &self,
        original: &mut Map<String, Value>,
        key: &'p str,
        value: &'p Value,
        path: &[&'p str],
    ) -> Result<(), PatchError> {
        if value.is_null() {
            remove_key(original, key);
            return Ok(());
        }
        let path = child(path, key);
        let existing = match original.get_mut(key) {
            Some(existing) if !existing.is_null() => existing,
            _ => {
                match self.normalize_new(value, &path)? {
                    Some(v) => {
                        original.insert(key.to_owned(), v);
                    }
                    None => {
                        remove_key(original, key);
                    }
                }
                return Ok(());
            }
        };
        let mut remove = false;
        match (existing, value) {
            (Value::Object(current), Value::Object(patch)) => {
                let taken = std::mem::take(current);
                match self.merge_map(taken, patch, &path)? {
                    Some(merged) => *current = merged,
                    None => remove = true,
                }
            }
            (Value::Array(current), Value::Array(patch)) => {
                let taken = std::mem::take(current);
                *current = self.merge_list(taken, patch, &path, false)?;
            }
            (current, patch) if is_scalar(current) && is_scalar(patch) => {
                // Keep the stored representation of equal numbers (`80` vs `80.0`).
                if !json_eq(current, patch) {
                    *current = patch.clone();
                }
            }
            (current, patch) => {
                return Err(fail(
                    &path,
                    format_args!("cannot patch {} with {}", kind_name(current), kind_name(patch)),
                ));
            }
        }
        if remove {
            remove_key(original, key);
        }
        Ok(())
    }

    /// A patch value with no counterpart in the original: merge it into an empty
    /// value so that nulls are dropped and directives executed.
    fn normalize_new<'p>(&self, value: &'p Value, path: &[&'p str]) -> Result<Option<Value>, PatchError> {
        Ok(match value {
            Value::Object(map) => self.merge_map(Map::new(), map, path)?.map(Value::Object),
            Value::Array(list) => Some(Value::Array(self.merge_list(Vec::new(), list, path, true)?)),
            other => Some(other.clone()),
        })
    }

    /// `fresh`: the original had no such list at all (Kubernetes then takes the
    /// patch list as it is, so items without merge key are tolerated).
    fn merge_list<'p>(
        &self,
        original: Vec<Value>,
        patch: &'p [Value],
        path: &[&'p str],
        fresh: bool,
    ) -> Result<Vec<Value>, PatchError> {
        match self.meta.list_strategy(path) {
            ListStrategy::Replace => self.atomic_list(patch, path),
            ListStrategy::Merge { key } => self.merge_list_by_key(original, patch, path, key, fresh),
        }
    }

    /// The replacement value of an atomic list.
    fn atomic_list<'p>(&self, patch: &'p [Value], path: &[&'p str]) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::with_capacity(patch.len());
        for item in patch {
            match item {
                Value::Object(map) => {
                    if let Some(directive) = map.get(DIRECTIVE_MARKER) {
                        // Replacing is what an atomic list does anyway, and there is
                        // nothing to delete from a list that is being replaced.
                        match directive.as_str() {
                            Some("replace" | "delete") => continue,
                            _ => {
                                return Err(fail(
                                    path,
                                    format_args!("unknown patch type {directive} in list element"),
                                ));
                            }
                        }
                    }
                    out.extend(self.merge_map(Map::new(), map, path)?.map(Value::Object));
                }
                Value::Array(inner) => out.push(Value::Array(self.atomic_list(inner, path)?)),
                other => out.push(other.clone()),
            }
        }
        Ok(out)
    }

    fn merge_list_by_key<'p>(
        &self,
        mut original: Vec<Value>,
        patch: &'p [Value],
        path: &[&'p str],
        key: Option<&str>,
        fresh: bool,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }

        // Special elements first: `$patch: delete` / `$patch: replace`.
        let mut replace = false;
        let mut items: Vec<&'p Value> = Vec::with_capacity(patch.len());
        for item in patch {
            let Some(directive) = item.get(DIRECTIVE_MARKER) else {
                items.push(item);
                continue;
            };
            match directive.as_str() {
                Some("replace") => replace = true,
                Some("delete") => {
                    let Some(key) = key else {
                        return Err(fail(
                            path,
                            "a `$patch: delete` list element needs a merge key, but this list has none",
                        ));
                    };
                    let Some(value) = item.get(key) else {
                        return Err(fail(
                            path,
                            format_args!("`$patch: delete` list element {item} does not contain the merge key {key:?}"),
                        ));
                    };
                    original.retain(|o| !o.get(key).is_some_and(|ov| json_eq(ov, value)));
                }
                Some("merge") => {
                    return Err(fail(path, "merging lists cannot yet be specified in the patch"));
                }
                _ => {
                    return Err(fail(
                        path,
                        format_args!("unknown patch type {directive} in list element"),
                    ));
                }
            }
        }

        if replace {
            common_element_kind(items.iter().copied(), path)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Object(map) => {
                        out.extend(self.merge_map(Map::new(), map, path)?.map(Value::Object));
                    }
                    other => out.push(other.clone()),
                }
            }
            return Ok(out);
        }

        let Some(kind) = common_element_kind(original.iter().chain(items.iter().copied()), path)? else {
            return Ok(original);
        };

        if kind != ElementKind::Object {
            let server_ids = original.clone();
            let patch_ids: Vec<Value> = items.iter().map(|v| (*v).clone()).collect();
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + items.len());
            let mut seen = IdentityIndex::default();
            for value in original.into_iter().chain(patch_ids.iter().cloned()) {
                if seen.find(&value, |i| merged.get(i)).is_none() {
                    seen.insert(&value, merged.len());
                    merged.push(value);
                }
            }
            return Ok(normalize_order(merged, &patch_ids, &server_ids, None));
        }

        let Some(key) = key else {
            return Err(fail(
                path,
                "cannot merge lists of objects without a merge key (the field has no patchMergeKey)",
            ));
        };
        let server_ids = identities(&original, Some(key));
        let mut patch_ids = Vec::with_capacity(items.len());
        // Items merged away by their patch become None and are dropped at the end, so the
        // index's positions stay valid throughout.
        let mut by_key = IdentityIndex::default();
        for (i, item) in original.iter().enumerate() {
            if let Some(id) = item.get(key) {
                by_key.insert(id, i);
            }
        }
        let mut merged: Vec<Option<Value>> = original.into_iter().map(Some).collect();
        for item in items {
            let Value::Object(item_map) = item else {
                return Err(fail(path, "list element types are not identical"));
            };
            let Some(key_value) = item_map.get(key) else {
                if fresh {
                    merged.push(self.merge_map(Map::new(), item_map, path)?.map(Value::Object));
                    continue;
                }
                return Err(fail(
                    path,
                    format_args!("list element {item} does not contain the merge key {key:?}"),
                ));
            };
            patch_ids.push(key_value.clone());
            let found = by_key.find(key_value, |i| merged.get(i)?.as_ref()?.get(key));
            match found {
                Some(index) => {
                    if let Some(Value::Object(current)) = &mut merged[index] {
                        let taken = std::mem::take(current);
                        match self.merge_map(taken, item_map, path)? {
                            Some(m) => *current = m,
                            None => merged[index] = None,
                        }
                    }
                }
                None => {
                    if let Some(added) = self.merge_map(Map::new(), item_map, path)? {
                        by_key.insert(key_value, merged.len());
                        merged.push(Some(Value::Object(added)));
                    }
                }
            }
        }
        let merged: Vec<Value> = merged.into_iter().flatten().collect();
        Ok(normalize_order(merged, &patch_ids, &server_ids, Some(key)))
    }

    /// `$setElementOrder/<field>`: merge the field's patch list (if any) and put the
    /// result in the given order.
    fn merge_ordered_list<'p>(
        &self,
        original: &mut Map<String, Value>,
        patch: &'p Map<String, Value>,
        field: &'p str,
        order: &'p Value,
        path: &[&'p str],
    ) -> Result<(), PatchError> {
        let directive = format!("{SET_ELEMENT_ORDER_PREFIX}{field}");
        let Value::Array(order) = order else {
            return Err(fail(path, format_args!("{directive} must be a list")));
        };
        let path = child(path, field);
        let patch_list = match patch.get(field) {
            None => None,
            Some(Value::Array(list)) => Some(list.as_slice()),
            Some(other) => {
                return Err(fail(
                    &path,
                    format_args!("must be a list when {directive} is given, got {}", kind_name(other)),
                ));
            }
        };
        let original_list = match original.get_mut(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(std::mem::take(list)),
            Some(other) => {
                return Err(fail(
                    &path,
                    format_args!("cannot apply {directive} to {}", kind_name(other)),
                ));
            }
        };
        let server = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (None, None) => return Ok(()),
            (Some(current), None) => current,
            (current, Some(list)) => {
                let fresh = current.is_none();
                self.merge_list(current.unwrap_or_default(), list, &path, fresh)?
            }
        };

        let objects = server
            .iter()
            .chain(order)
            .chain(&merged)
            .next()
            .is_some_and(Value::is_object);
        let key = match self.meta.list_strategy(&path) {
            ListStrategy::Merge { key: Some(key) } if objects => Some(key),
            _ => None,
        };
        if let Some(key) = key
            && let Some(bad) = order.iter().find(|v| v.get(key).is_none())
        {
            return Err(fail(
                &path,
                format_args!("{directive} element {bad} does not contain the merge key {key:?}"),
            ));
        }
        if let Some(list) = patch_list {
            validate_patch_order(list, order, key, &path, &directive)?;
        }

        let order_ids = identities(order, key);
        let server_ids = identities(&server, key);
        let sorted = normalize_order(merged, &order_ids, &server_ids, key);
        original.insert(field.to_owned(), Value::Array(sorted));
        Ok(())
    }
}

/// The relative order of the patch list's items must agree with the
/// `$setElementOrder` list, and every patch item must appear in it.
fn validate_patch_order(
    patch_list: &[Value],
    order: &[Value],
    key: Option<&str>,
    path: &[&str],
    directive: &str,
) -> Result<(), PatchError> {
    let items: Vec<&Value> = patch_list.iter().filter(|v| !has_directive(v)).collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if json_eq(identity(items[pi], key), identity(&order[oi], key)) {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() {
        return Err(fail(
            path,
            format_args!(
                "the order of the patch list does not match the {directive} list (item {} is missing or out of order)",
                items[pi]
            ),
        ));
    }
    Ok(())
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    retain: &Value,
    fields: &[(&str, &Value)],
    path: &[&str],
) -> Result<(), PatchError> {
    let bad_format = || {
        fail(
            path,
            "invalid patch format of $retainKeys: it must be a list of field names",
        )
    };
    let Value::Array(list) = retain else {
        return Err(bad_format());
    };
    let keep = list
        .iter()
        .map(|v| v.as_str().ok_or_else(bad_format))
        .collect::<Result<Vec<&str>, _>>()?;
    if let Some((key, _)) = fields
        .iter()
        .find(|(key, value)| !value.is_null() && !keep.contains(key))
    {
        return Err(fail(
            path,
            format_args!(
                "invalid patch format of $retainKeys: field {key:?} is in the patch but not in the $retainKeys list"
            ),
        ));
    }
    original.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

fn delete_from_primitive_list(
    original: &mut Map<String, Value>,
    field: &str,
    values: &Value,
    path: &[&str],
) -> Result<(), PatchError> {
    let directive = format!("{DELETE_FROM_PRIMITIVE_LIST_PREFIX}{field}");
    let Value::Array(values) = values else {
        return Err(fail(path, format_args!("{directive} must be a list")));
    };
    if values.iter().any(|v| !is_scalar(v)) {
        return Err(fail(
            path,
            format_args!("{directive} may only contain primitive values"),
        ));
    }
    match original.get_mut(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            if items.iter().any(|v| !is_scalar(v)) {
                return Err(fail(
                    &child(path, field),
                    format_args!("{directive} only applies to lists of primitives"),
                ));
            }
            let doomed = IdentityIndex::of(values);
            items.retain(|v| doomed.find(v, |i| values.get(i)).is_none());
            Ok(())
        }
        Some(other) => Err(fail(
            &child(path, field),
            format_args!("cannot apply {directive} to {}", kind_name(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Value {
        apply(&original, &patch, &meta("ConfigMap")).expect("patch applies")
    }

    fn smp_with(meta: &dyn PatchMeta, original: Value, patch: Value) -> Value {
        apply(&original, &patch, meta).expect("patch applies")
    }

    fn smp_err(meta: &dyn PatchMeta, original: Value, patch: Value) -> String {
        apply(&original, &patch, meta).expect_err("patch is rejected").0
    }

    /// Component schemas shaped as kube-apiserver publishes them, reduced to the fields that
    /// matter here; Deployment is a slice of the Deployment/Pod metadata, for nested paths.
    fn schemas() -> &'static Map<String, Value> {
        static SCHEMAS: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        SCHEMAS.get_or_init(|| {
            let r = |name: &str| json!({"$ref": format!("{REF_PREFIX}{name}")});
            let described = |name: &str| json!({"allOf": [r(name)], "description": "A part."});
            let merge_by = |key: &str, items: Value| {
                json!({"type": "array", "items": items,
                    "x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge"})
            };
            let json = json!({
                "ObjectMeta": {"type": "object", "properties": {
                    "finalizers": {"type": "array", "items": {"type": "string"},
                        "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ownerReferences": merge_by("uid", r("OwnerReference")),
                }},
                "OwnerReference": {"type": "object", "properties": {"uid": {"type": "string"}}},
                "ConfigMap": {"type": "object", "properties": {
                    "metadata": described("ObjectMeta"),
                    "data": {"type": "object", "additionalProperties": {"type": "string"}},
                }},
                "ServiceAccount": {"type": "object", "properties": {
                    "metadata": described("ObjectMeta"),
                    "imagePullSecrets": {"type": "array", "items": r("Reference"), "x-kubernetes-list-type": "atomic"},
                    "secrets": merge_by("name", r("Reference")),
                }},
                "Reference": {"type": "object", "properties": {"name": {"type": "string"}}},
                "Namespace": {"type": "object", "properties": {
                    "metadata": described("ObjectMeta"),
                    "status": described("NamespaceStatus"),
                }},
                "NamespaceStatus": {"type": "object", "properties": {
                    "conditions": merge_by("type", r("Condition")),
                }},
                "CustomResourceDefinition": {"type": "object", "properties": {
                    "status": {"type": "object", "properties": {"conditions": {
                        "type": "array", "items": r("Condition"),
                        "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map"}}},
                }},
                "Condition": {"type": "object", "properties": {"type": {"type": "string"}}},
                "Deployment": {"type": "object", "properties": {
                    "metadata": described("ObjectMeta"),
                    "spec": described("DeploymentSpec"),
                }},
                "DeploymentSpec": {"type": "object", "properties": {
                    "strategy": {"allOf": [r("DeploymentStrategy")], "x-kubernetes-patch-strategy": "retainKeys"},
                    "template": described("PodTemplateSpec"),
                }},
                "DeploymentStrategy": {"type": "object", "properties": {"type": {"type": "string"}}},
                "PodTemplateSpec": {"type": "object", "properties": {
                    "metadata": described("ObjectMeta"),
                    "spec": described("PodSpec"),
                }},
                "PodSpec": {"type": "object", "properties": {
                    "containers": merge_by("name", r("Container")),
                    "volumes": {"type": "array", "items": r("Volume"), "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge,retainKeys"},
                }},
                "Container": {"type": "object", "properties": {
                    "env": merge_by("name", json!({"type": "object"})),
                    "ports": merge_by("containerPort", json!({"type": "object"})),
                }},
                "Volume": {"type": "object", "properties": {"name": {"type": "string"}}},
                "Items": {"type": "object", "properties": {
                    "items": {"type": "array", "items": {"type": "object"}, "x-kubernetes-patch-strategy": "merge"},
                }},
            });
            match json {
                Value::Object(map) => map,
                _ => unreachable!("an object literal"),
            }
        })
    }

    fn meta(model: &str) -> SchemaPatchMeta<'static> {
        SchemaPatchMeta::new(schemas(), &schemas()[model])
    }

    fn owner(uid: &str, name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid})
    }

    #[test]
    fn labels_and_annotations_add_update_remove() {
        let original = json!({
            "metadata": {
                "name": "cm",
                "labels": {"app": "web", "tier": "front", "keep": "yes"},
                "annotations": {"a": "1"}
            },
            "data": {"k": "v"}
        });
        let patch = json!({
            "metadata": {
                "labels": {"app": "api", "tier": null, "new": "x"},
                "annotations": {"b": "2"}
            }
        });
        assert_eq!(
            smp(original, patch),
            json!({
                "metadata": {
                    "name": "cm",
                    "labels": {"app": "api", "keep": "yes", "new": "x"},
                    "annotations": {"a": "1", "b": "2"}
                },
                "data": {"k": "v"}
            })
        );
    }

    #[test]
    fn labels_added_when_metadata_has_none() {
        let original = json!({"metadata": {"name": "cm"}});
        let patch = json!({"metadata": {"labels": {"a": "1", "gone": null}}});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"name": "cm", "labels": {"a": "1"}}})
        );
    }

    #[test]
    fn null_deletes_keys_at_any_depth_and_unmatched_nulls_are_ignored() {
        let original = json!({"spec": {"a": {"b": 1, "c": 2}, "d": 3}, "status": {"x": 1}});
        let patch = json!({"spec": {"a": {"b": null}, "missing": null}, "status": null});
        assert_eq!(smp(original, patch), json!({"spec": {"a": {"c": 2}, "d": 3}}));
    }

    #[test]
    fn scalars_and_replace_lists_are_replaced() {
        let original = json!({
            "spec": {"replicas": 1, "tolerations": [{"key": "a"}, {"key": "b"}], "port": 80},
            "metadata": {"managedFields": [{"manager": "x"}]}
        });
        let patch = json!({
            "spec": {"replicas": 3, "tolerations": [{"key": "c", "value": null}], "port": "http"},
            "metadata": {"managedFields": []}
        });
        assert_eq!(
            smp(original, patch),
            json!({
                "spec": {"replicas": 3, "tolerations": [{"key": "c"}], "port": "http"},
                "metadata": {"managedFields": []}
            })
        );
    }

    #[test]
    fn finalizers_merge_as_set() {
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": ["b", "c"]}});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}})
        );
    }

    #[test]
    fn finalizers_added_to_object_without_any() {
        let original = json!({"metadata": {"name": "x"}});
        let patch = json!({"metadata": {"finalizers": ["a", "a", "b"]}});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}})
        );
    }

    #[test]
    fn empty_patch_list_does_not_clear_a_merge_list() {
        let original = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!({"metadata": {"finalizers": []}});
        assert_eq!(smp(original.clone(), patch), original);
        // Only null (or `$patch: replace`) clears it.
        let patch = json!({"metadata": {"finalizers": null}});
        assert_eq!(smp(original, patch), json!({"metadata": {}}));
    }

    #[test]
    fn patch_order_takes_precedence_over_live_order() {
        // Kubernetes: items named in the patch keep the patch's relative order.
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": ["c"]}});
        assert_eq!(
            smp(original.clone(), patch),
            json!({"metadata": {"finalizers": ["c", "a", "b"]}})
        );
        let patch = json!({"metadata": {"finalizers": ["c", "a"]}});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"finalizers": ["c", "a", "b"]}})
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a"), owner("u2", "b")]}});
        let patch = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "controller": true, "blockOwnerDeletion": true},
            owner("u3", "c")
        ]}});
        // As in Kubernetes (no `$setElementOrder`): patch items keep the patch's
        // order and take precedence; u2 (server only, after u1 on the server) follows.
        let result = smp(original, patch);
        assert_eq!(
            result["metadata"]["ownerReferences"],
            json!([
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "u1",
                 "controller": true, "blockOwnerDeletion": true},
                owner("u3", "c"),
                owner("u2", "b"),
            ])
        );
    }

    #[test]
    fn owner_reference_patch_delete() {
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a"), owner("u2", "b"), owner("u3", "c")]}});
        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u2"}]}});
        assert_eq!(
            smp(original, patch)["metadata"]["ownerReferences"],
            json!([owner("u1", "a"), owner("u3", "c")])
        );
        // Deleting something that is not there is fine.
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a")]}});
        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "zz"}]}});
        assert_eq!(
            smp(original, patch)["metadata"]["ownerReferences"],
            json!([owner("u1", "a")])
        );
    }

    #[test]
    fn delete_directive_without_merge_key_is_rejected() {
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a")]}});
        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "name": "a"}]}});
        let err = smp_err(&meta("ConfigMap"), original, patch);
        assert!(
            err.contains("merge key") && err.contains("metadata.ownerReferences"),
            "{err}"
        );
    }

    #[test]
    fn list_item_without_merge_key_is_rejected() {
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a")]}});
        let patch = json!({"metadata": {"ownerReferences": [{"name": "b"}]}});
        let err = smp_err(&meta("ConfigMap"), original, patch);
        assert!(err.contains("does not contain the merge key \"uid\""), "{err}");
    }

    #[test]
    fn service_account_secrets_merge_by_name() {
        let original = json!({
            "metadata": {"name": "default"},
            "secrets": [{"name": "s1"}, {"name": "s2"}],
            "imagePullSecrets": [{"name": "p1"}]
        });
        let patch = json!({
            "secrets": [{"name": "s3"}, {"$patch": "delete", "name": "s1"}],
            "imagePullSecrets": [{"name": "p2"}]
        });
        assert_eq!(
            smp_with(&meta("ServiceAccount"), original, patch),
            // Kubernetes puts new items that the live list cannot anchor first;
            // imagePullSecrets is atomic on ServiceAccount.
            json!({
                "metadata": {"name": "default"},
                "secrets": [{"name": "s3"}, {"name": "s2"}],
                "imagePullSecrets": [{"name": "p2"}]
            })
        );
    }

    #[test]
    fn set_element_order_on_map_list() {
        let original = json!({"secrets": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
        let patch = json!({
            "$setElementOrder/secrets": [{"name": "c"}, {"name": "a"}, {"name": "d"}, {"name": "b"}],
            "secrets": [{"name": "d", "extra": 1}]
        });
        assert_eq!(
            smp_with(&meta("ServiceAccount"), original, patch),
            json!({"secrets": [{"name": "c"}, {"name": "a"}, {"name": "d", "extra": 1}, {"name": "b"}]})
        );
    }

    #[test]
    fn set_element_order_without_patch_list_only_reorders() {
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a"), owner("u2", "b")]}});
        let patch = json!({"metadata": {"$setElementOrder/ownerReferences": [{"uid": "u2"}, {"uid": "u1"}]}});
        assert_eq!(
            smp(original, patch)["metadata"]["ownerReferences"],
            json!([owner("u2", "b"), owner("u1", "a")])
        );
    }

    #[test]
    fn set_element_order_keeps_unmentioned_server_items() {
        // Items only on the server are interleaved by their live positions: x was
        // before b on the server, y after it; the ordered items keep the given order.
        let original = json!({"secrets": [{"name": "a"}, {"name": "x"}, {"name": "b"}, {"name": "y"}]});
        let patch = json!({
            "$setElementOrder/secrets": [{"name": "b"}, {"name": "a"}, {"name": "n"}],
            "secrets": [{"name": "n"}]
        });
        assert_eq!(
            smp_with(&meta("ServiceAccount"), original, patch)["secrets"],
            json!([{"name": "x"}, {"name": "b"}, {"name": "a"}, {"name": "n"}, {"name": "y"}])
        );
    }

    #[test]
    fn set_element_order_with_deletions_for_primitive_list() {
        // What `kubectl apply` sends when finalizers go from [a, b] to [a, c].
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["c", "a"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["c"]
        }});
        assert_eq!(smp(original, patch), json!({"metadata": {"finalizers": ["c", "a"]}}));
    }

    #[test]
    fn set_element_order_creates_missing_list() {
        let original = json!({"metadata": {"name": "x"}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["b", "a"],
            "finalizers": ["b", "a"]
        }});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"name": "x", "finalizers": ["b", "a"]}})
        );
    }

    #[test]
    fn set_element_order_mismatch_is_rejected() {
        let original = json!({"secrets": [{"name": "a"}]});
        let patch = json!({
            "$setElementOrder/secrets": [{"name": "a"}],
            "secrets": [{"name": "b"}]
        });
        let err = smp_err(&meta("ServiceAccount"), original, patch);
        assert!(err.contains("$setElementOrder/secrets"), "{err}");

        let original = json!({"secrets": [{"name": "a"}]});
        let patch = json!({"$setElementOrder/secrets": [{"nom": "a"}]});
        let err = smp_err(&meta("ServiceAccount"), original, patch);
        assert!(err.contains("merge key"), "{err}");

        let patch = json!({"$setElementOrder/secrets": {"name": "a"}});
        let err = smp_err(&meta("ServiceAccount"), json!({"secrets": []}), patch);
        assert!(err.contains("must be a list"), "{err}");
    }

    #[test]
    fn delete_from_primitive_list() {
        let original = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}});
        assert_eq!(smp(original, patch), json!({"metadata": {"finalizers": ["a", "c"]}}));
        // Nothing to delete from: no-op.
        let original = json!({"metadata": {"name": "x"}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}});
        assert_eq!(smp(original.clone(), patch), original);
    }

    #[test]
    fn delete_from_primitive_list_rejects_non_lists() {
        let meta = &meta("ConfigMap");
        let err = smp_err(
            meta,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        );
        assert!(err.contains("must be a list"), "{err}");
        let err = smp_err(
            meta,
            json!({"metadata": {"ownerReferences": [owner("u", "n")]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/ownerReferences": ["u"]}}),
        );
        assert!(err.contains("lists of primitives"), "{err}");
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let original = json!({"spec": {"strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}
        }}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(
            smp_with(&meta("Deployment"), original, patch),
            json!({"spec": {"strategy": {"type": "Recreate"}}})
        );
        assert!(meta("Deployment").retain_keys(&["spec", "strategy"]));
        assert!(!meta("Deployment").retain_keys(&["spec"]));
    }

    #[test]
    fn retain_keys_inside_merged_list_items() {
        let original = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "c"}}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}
        ]}}}});
        assert_eq!(
            smp_with(&meta("Deployment"), original, patch),
            json!({"spec": {"template": {"spec": {"volumes": [
                {"name": "data", "hostPath": {"path": "/x"}},
                {"name": "cfg", "configMap": {"name": "c"}}
            ]}}}})
        );
    }

    #[test]
    fn retain_keys_must_cover_patched_fields() {
        let original = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {"maxSurge": 1}
        }}});
        let err = smp_err(&meta("Deployment"), original.clone(), patch);
        assert!(err.contains("$retainKeys") && err.contains("rollingUpdate"), "{err}");
        // Nulls need not be listed.
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null
        }}});
        assert_eq!(
            smp_with(&meta("Deployment"), original.clone(), patch),
            json!({"spec": {"strategy": {"type": "Recreate"}}})
        );
        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        assert!(smp_err(&meta("Deployment"), original, patch).contains("$retainKeys"));
    }

    #[test]
    fn patch_replace_on_map() {
        let original = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}});
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "c": "3", "d": null}}});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"labels": {"c": "3"}, "name": "x"}})
        );
    }

    #[test]
    fn patch_delete_on_map() {
        let original = json!({"spec": {"selector": {"app": "x"}, "type": "ClusterIP"}});
        let patch = json!({"spec": {"selector": {"$patch": "delete"}}});
        assert_eq!(smp(original, patch), json!({"spec": {"type": "ClusterIP"}}));
        // On a key the original does not have: nothing is added.
        let original = json!({"spec": {}});
        let patch = json!({"spec": {"selector": {"$patch": "delete"}}});
        assert_eq!(smp(original, patch), json!({"spec": {}}));
    }

    #[test]
    fn patch_replace_on_list() {
        let original = json!({"metadata": {"ownerReferences": [owner("u1", "a"), owner("u2", "b")]}});
        let patch = json!({"metadata": {"ownerReferences": [{"$patch": "replace"}, owner("u3", "c")]}});
        assert_eq!(
            smp(original, patch)["metadata"]["ownerReferences"],
            json!([owner("u3", "c")])
        );
        // Also for merged primitive lists; with no other elements the list is emptied.
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": [{"$patch": "replace"}]}});
        assert_eq!(smp(original, patch), json!({"metadata": {"finalizers": []}}));
        let original = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": ["c", {"$patch": "replace"}]}});
        assert_eq!(smp(original, patch), json!({"metadata": {"finalizers": ["c"]}}));
    }

    #[test]
    fn nested_maps_inside_merged_list_items() {
        let original = json!({"spec": {"template": {"spec": {"containers": [
            {
                "name": "app",
                "image": "app:1",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}]
            },
            {"name": "sidecar", "image": "side:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {
                "name": "app",
                "image": "app:2",
                "resources": {"limits": {"memory": null, "cpu": "2"}, "requests": {"cpu": "500m"}},
                "env": [{"name": "B", "value": "3"}, {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"containerPort": 80.0, "name": "http"}, {"containerPort": 443}]
            }
        ]}}}});
        assert_eq!(
            smp_with(&meta("Deployment"), original, patch),
            json!({"spec": {"template": {"spec": {"containers": [
                {
                    "name": "app",
                    "image": "app:2",
                    "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "500m"}},
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "value": "3"},
                        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                    ],
                    "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]
                },
                {"name": "sidecar", "image": "side:1"}
            ]}}}})
        );
    }

    #[test]
    fn directives_inside_merged_list_items() {
        let original = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "resources": {"limits": {"cpu": "1"}}, "env": [{"name": "A"}, {"name": "B"}]}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "resources": {"$patch": "delete"}, "env": [{"$patch": "delete", "name": "A"}]}
        ]}}}});
        assert_eq!(
            smp_with(&meta("Deployment"), original, patch),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "B"}]}
            ]}}}})
        );
    }

    #[test]
    fn new_values_are_normalized() {
        // A new container carries nested nulls and merge lists; nulls are dropped and
        // nested directives executed rather than stored.
        let original = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "b", "image": null, "env": [{"name": "X", "value": "1"}, {"$patch": "delete", "name": "Y"}]}
        ]}, "metadata": {"labels": {"$patch": "replace", "l": "v", "n": null}}}}});
        assert_eq!(
            smp_with(&meta("Deployment"), original, patch),
            json!({"spec": {"template": {
                "spec": {"containers": [{"name": "b", "env": [{"name": "X", "value": "1"}]}, {"name": "a"}]},
                "metadata": {"labels": {"l": "v"}}
            }}})
        );
    }

    #[test]
    fn kubectl_client_side_apply_configmap_second_apply() {
        // Live object after the first `kubectl apply` (data a=1, b=2) plus a label
        // added by someone else.
        let first_applied = r#"{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"cm","namespace":"default"}}
"#;
        let live = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "cm",
                "namespace": "default",
                "uid": "1234",
                "resourceVersion": "42",
                "labels": {"owner": "someone-else"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": first_applied}
            },
            "data": {"a": "1", "b": "2"}
        });
        // Second apply: a changed, b removed, c added.
        let second_applied = r#"{"apiVersion":"v1","data":{"a":"10","c":"3"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"cm","namespace":"default"}}
"#;
        let patch = json!({
            "data": {"a": "10", "b": null, "c": "3"},
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": second_applied}}
        });
        let result = smp(live, patch);
        assert_eq!(
            result,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "cm",
                    "namespace": "default",
                    "uid": "1234",
                    "resourceVersion": "42",
                    "labels": {"owner": "someone-else"},
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": second_applied}
                },
                "data": {"a": "10", "c": "3"}
            })
        );
    }

    #[test]
    fn kubectl_client_side_apply_deployment_containers() {
        // kubectl apply removing container env B and adding C, with the order directive.
        let original = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                "name": "app",
                "image": "app:2",
                "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]
            }]
        }}}});
        assert_eq!(
            smp_with(&meta("Deployment"), original, patch),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]}
            ]}}}})
        );
    }

    #[test]
    fn unknown_directives_are_rejected() {
        let meta = &meta("ConfigMap");
        let original = json!({"metadata": {"labels": {"a": "1"}}});
        let err = smp_err(meta, original.clone(), json!({"metadata": {"$foo": 1}}));
        assert!(err.contains("unknown patch directive \"$foo\""), "{err}");
        let err = smp_err(
            meta,
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "merge"}}}),
        );
        assert!(err.contains("unknown patch type"), "{err}");
        let err = smp_err(meta, original.clone(), json!({"$setElementOrder/": []}));
        assert!(err.contains("must name a field"), "{err}");
        let err = smp_err(
            meta,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [{"$patch": "bogus"}]}}),
        );
        assert!(err.contains("unknown patch type"), "{err}");
        let err = smp_err(
            meta,
            json!({"metadata": {"ownerReferences": []}}),
            json!({"metadata": {"ownerReferences": [{"$patch": "merge"}]}}),
        );
        assert!(err.contains("cannot yet be specified"), "{err}");
    }

    #[test]
    fn schema_dollar_fields_are_plain_fields() {
        let original = json!({"spec": {"schema": {"$ref": "#/a"}}});
        let patch = json!({"spec": {"schema": {"$ref": "#/b", "$schema": "x"}}});
        assert_eq!(
            smp(original, patch),
            json!({"spec": {"schema": {"$ref": "#/b", "$schema": "x"}}})
        );
    }

    #[test]
    fn non_object_patches_are_rejected() {
        let meta = &meta("ConfigMap");
        for patch in [json!([]), json!("x"), json!(null), json!(1)] {
            let err = smp_err(meta, json!({}), patch);
            assert!(err.contains("must be a JSON object"), "{err}");
        }
        let err = smp_err(meta, json!([1]), json!({}));
        assert!(err.contains("cannot apply"), "{err}");
    }

    #[test]
    fn container_type_mismatches_are_rejected() {
        let meta = &meta("ConfigMap");
        let err = smp_err(
            meta,
            json!({"metadata": {"labels": {"a": "1"}}}),
            json!({"metadata": {"labels": "a"}}),
        );
        assert!(
            err.contains("metadata.labels") && err.contains("an object with a string"),
            "{err}"
        );
        let err = smp_err(
            meta,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": {"a": 1}}}),
        );
        assert!(err.contains("a list with an object"), "{err}");
        let err = smp_err(
            meta,
            json!({"spec": {"replicas": 1}}),
            json!({"spec": {"replicas": [1]}}),
        );
        assert!(err.contains("a number with a list"), "{err}");
        let err = smp_err(
            meta,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [1]}}),
        );
        assert!(err.contains("not identical"), "{err}");
        let err = smp_err(
            meta,
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [["a"]]}}),
        );
        assert!(err.contains("lists of lists"), "{err}");
    }

    #[test]
    fn merge_list_of_objects_needs_merge_key() {
        let err = smp_err(
            &meta("Items"),
            json!({"items": [{"a": 1}]}),
            json!({"items": [{"a": 2}]}),
        );
        assert!(err.contains("without a merge key"), "{err}");
    }

    #[test]
    fn scalar_type_changes_are_allowed() {
        // int-or-string and quantity fields legitimately change JSON type.
        let original = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%"}}}});
        assert_eq!(
            smp(original, patch),
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%"}}}})
        );
    }

    #[test]
    fn null_original_values_are_treated_as_absent() {
        let original = json!({"metadata": {"labels": null, "finalizers": null}});
        let patch = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["f"]}});
        assert_eq!(
            smp(original, patch),
            json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["f"]}})
        );
        assert_eq!(
            apply(&Value::Null, &json!({"a": 1}), &meta("ConfigMap")).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn top_level_directives() {
        let original = json!({"a": 1, "b": {"c": 2}});
        assert_eq!(smp(original.clone(), json!({"$patch": "delete"})), json!({}));
        assert_eq!(
            smp(original.clone(), json!({"$patch": "replace", "x": 1})),
            json!({"x": 1})
        );
        assert_eq!(smp(original.clone(), json!({})), original);
    }

    #[test]
    fn atomic_list_drops_list_directives_and_normalizes_items() {
        let original = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let patch = json!({"spec": {"tolerations": [{"$patch": "replace"}, {"key": "b", "effect": null}]}});
        assert_eq!(smp(original, patch), json!({"spec": {"tolerations": [{"key": "b"}]}}));
    }

    #[test]
    fn namespace_status_conditions_merge_by_type() {
        let original = json!({"status": {"phase": "Active", "conditions": [
            {"type": "A", "status": "False"}, {"type": "B", "status": "True"}
        ]}});
        let patch = json!({"status": {"conditions": [{"type": "A", "status": "True", "reason": "Done"}]}});
        assert_eq!(
            smp_with(&meta("Namespace"), original, patch),
            json!({"status": {"phase": "Active", "conditions": [
                {"type": "A", "status": "True", "reason": "Done"}, {"type": "B", "status": "True"}
            ]}})
        );
    }

    #[test]
    fn schema_patch_meta_lookup() {
        let sa = meta("ServiceAccount");
        assert_eq!(
            sa.list_strategy(&["metadata", "ownerReferences"]),
            ListStrategy::Merge { key: Some("uid") }
        );
        assert_eq!(
            sa.list_strategy(&["metadata", "finalizers"]),
            ListStrategy::Merge { key: None }
        );
        assert_eq!(
            sa.list_strategy(&["secrets"]),
            ListStrategy::Merge { key: Some("name") }
        );
        assert_eq!(sa.list_strategy(&["imagePullSecrets"]), ListStrategy::Replace);
        assert_eq!(sa.list_strategy(&["metadata"]), ListStrategy::Replace);
        assert_eq!(
            sa.list_strategy(&["metadata", "finalizers", "x"]),
            ListStrategy::Replace
        );
        assert_eq!(sa.list_strategy(&["metadata", "labels", "x"]), ListStrategy::Replace);
        assert_eq!(sa.list_strategy(&["unknown", "x"]), ListStrategy::Replace);
        assert_eq!(sa.list_strategy(&[]), ListStrategy::Replace);
        assert!(!sa.retain_keys(&["secrets"]));
        assert_eq!(meta("ConfigMap").list_strategy(&["secrets"]), ListStrategy::Replace);
        // A list-type map without a patch strategy is atomic for strategic merge.
        assert_eq!(
            meta("CustomResourceDefinition").list_strategy(&["status", "conditions"]),
            ListStrategy::Replace
        );
        // Through list items and references, with both strategies on one field.
        let deployment = meta("Deployment");
        let ports = ["spec", "template", "spec", "containers", "ports"];
        assert_eq!(
            deployment.list_strategy(&ports),
            ListStrategy::Merge {
                key: Some("containerPort")
            }
        );
        let volumes = ["spec", "template", "spec", "volumes"];
        assert_eq!(
            deployment.list_strategy(&volumes),
            ListStrategy::Merge { key: Some("name") }
        );
        assert!(deployment.retain_keys(&volumes));
        assert_eq!(
            deployment.list_strategy(&["spec", "template", "metadata", "finalizers"]),
            ListStrategy::Merge { key: None }
        );
    }

    #[test]
    fn original_is_not_modified() {
        let original = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]}});
        let copy = original.clone();
        let _ = apply(
            &original,
            &json!({"metadata": {"labels": null, "finalizers": ["y"]}}),
            &meta("ConfigMap"),
        )
        .unwrap();
        assert_eq!(original, copy);
    }

    #[test]
    fn values_equal_as_json_hash_alike() {
        let pairs = [
            (json!(1), json!(1.0)),
            (json!(-0.0), json!(0)),
            (json!(9_007_199_254_740_993_u64), json!(9_007_199_254_740_992.0)),
            (json!({"a": [1, {"b": 2.0}]}), json!({"a": [1.0, {"b": 2}]})),
        ];
        for (a, b) in &pairs {
            assert!(json_eq(a, b), "{a} {b}");
            assert_eq!(json_hash(a), json_hash(b), "{a} {b}");
        }
        let index = IdentityIndex::of(&[json!("x"), json!(2), json!("x")]);
        let ids = [json!("x"), json!(2), json!("x")];
        assert_eq!(
            index.find(&json!("x"), |i| ids.get(i)),
            Some(0),
            "the first of equal items"
        );
        assert_eq!(index.find(&json!(2.0), |i| ids.get(i)), Some(1));
        assert_eq!(index.find(&json!("y"), |i| ids.get(i)), None);
    }
}
