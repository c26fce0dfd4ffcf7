//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Each manager owns a set of leaf paths. Maps are descended; any other value — scalars and
//! lists — is a leaf, which is SSA's `atomic` treatment (the default for CRD lists). An apply
//! takes the paths of its configuration, conflicts with other managers that own the same
//! paths with different values (unless forced), drops the fields it applied before but no
//! longer applies when nobody else owns them, and merges its configuration in. Non-apply
//! writes give their manager the paths they changed.

use std::collections::BTreeSet;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::store::{self, Ctx};
use faros_machinery::object;
use faros_machinery::status::{ApiError, ApiResult, CauseType, FieldError, Reason};
use faros_storage::WriteOp;

type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// Metadata fields the server owns; they never appear in a manager's set.
const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Which part of the object a request manages: the main resource or its status.
fn in_scope<S: AsRef<str>>(ctx: &Ctx, path: &[S]) -> bool {
    let at = |i: usize| path.get(i).map(AsRef::as_ref);
    let top = at(0).unwrap_or_default();
    if top == "apiVersion" || top == "kind" {
        return false;
    }
    if top == "metadata" {
        let field = at(1).unwrap_or_default();
        if SERVER_META.contains(&field) {
            return false;
        }
        if field == "annotations" && at(2) == Some(faros_api::tenancy::CLUSTER_ANNOTATION) {
            return false;
        }
    }
    match ctx.req.subresource.as_deref() {
        Some("status") => top == "status",
        _ => !(ctx.kind.has_status() && top == "status"),
    }
}

fn leaves(ctx: &Ctx, value: &Value) -> FieldSet {
    fn walk(ctx: &Ctx, value: &Value, path: &mut Path, out: &mut FieldSet) {
        match value {
            Value::Object(map) if !map.is_empty() || path.is_empty() => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(ctx, v, path, out);
                    path.pop();
                }
            }
            _ => {
                if in_scope(ctx, path) {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    walk(ctx, value, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object()?.get(k))
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((_, parents)) = path.split_last() else { return };
    remove_exact(value, path);
    // Drop maps the removal left empty, as apply does for fields nobody manages.
    for depth in (1..parents.len() + 1).rev() {
        let parent_path = &path[..depth];
        if get(value, parent_path).is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
            remove_exact(value, parent_path);
        } else {
            break;
        }
    }
}

fn remove_exact(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for k in parents {
        match current.get_mut(k) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(last);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for k in path {
            node = node
                .entry(format!("f:{k}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fields are objects");
        }
    }
    Value::Object(root)
}

/// The fields a FieldsV1 node names below it: its `f:` keys, up to the first key that
/// addresses a list member (`k:`, `v:`, `i:`).
fn named_fields(node: &Map<String, Value>) -> impl Iterator<Item = (&str, &Value)> {
    node.iter()
        .take_while(|(k, _)| k.starts_with("f:") || *k == ".")
        .filter_map(|(k, v)| Some((k.strip_prefix("f:")?, v)))
}

/// Whether a FieldsV1 node owns itself as a leaf: it names no fields, or it addresses list
/// members, and lists are atomic here, so the list itself is the leaf.
fn is_leaf_node(node: &Map<String, Value>) -> bool {
    node.keys().any(|k| !k.starts_with("f:") && k != ".") || !node.keys().any(|k| k.starts_with("f:"))
}

fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(value: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(map) = value.as_object() else { return };
        for (name, v) in named_fields(map) {
            path.push(name.to_string());
            walk(v, path, out);
            path.pop();
        }
        if is_leaf_node(map) && !path.is_empty() {
            out.insert(path.clone());
        }
    }
    let mut out = FieldSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// Whether the FieldsV1 node `node` holds any path, as [`from_fields_v1`] reads it (`root`:
/// the root node, which is never a path itself). Stops at the first one.
fn owns_any(node: &Value, root: bool) -> bool {
    let Some(map) = node.as_object() else {
        return false;
    };
    (!root && is_leaf_node(map)) || named_fields(map).any(|(_, child)| owns_any(child, false))
}

/// Whether the FieldsV1 set `fields` holds `path`, as [`from_fields_v1`] reads it.
fn owns(fields: &Value, path: &[&str]) -> bool {
    let mut node = fields;
    for k in path {
        let Some(next) = node
            .as_object()
            .and_then(|map| named_fields(map).find(|(name, _)| name == k))
        else {
            return false;
        };
        node = next.1;
    }
    !path.is_empty() && node.as_object().is_some_and(is_leaf_node)
}

struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: e["time"].as_str().unwrap_or_default().to_string(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let encoded: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = e.subresource.into();
            }
            v
        })
        .collect();
    let meta = object::meta_mut(obj);
    if encoded.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(encoded));
    }
}

fn subresource(ctx: &Ctx) -> String {
    ctx.req.subresource.clone().unwrap_or_default()
}

/// The manager of a non-apply write: `fieldManager`, else the User-Agent's product name.
fn update_manager(ctx: &Ctx) -> String {
    if let Some(m) = &ctx.query.field_manager {
        return m.clone();
    }
    ctx.headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

/// Records a non-apply write: its manager takes the leaf paths it changed; paths that are
/// gone are released by everyone. Client-supplied managedFields are ignored.
/// `old`'s managedFields move to `new` when they stay as they are (a renewal), rather than
/// being copied.
pub fn record_update(ctx: &Ctx, new: &mut Value, old: Option<&mut Value>) {
    // Only the paths that differ are walked out of the two objects: a write that changes a
    // few fields of a large object (an agent's status) costs those fields, not every leaf.
    let mut difference = Difference::default();
    diff(ctx, old.as_deref(), Some(new), &mut Vec::new(), &mut difference);
    if let Some(kept) = old.as_deref().and_then(|o| kept_entries(ctx, &difference, o)) {
        // Moved to `new` rather than copied: `old` is given up to this write.
        let mut entries = old.map_or(Value::Null, |o| o["metadata"]["managedFields"].take());
        if let Kept::Renewed(i) = kept
            && let Some(entry) = entries.get_mut(i).and_then(Value::as_object_mut)
        {
            entry.insert("time".into(), faros_api::meta::now_rfc3339().into());
        }
        object::meta_mut(new).insert("managedFields".into(), entries);
        return;
    }
    let owned = |paths: &[Vec<&str>]| -> FieldSet {
        paths
            .iter()
            .map(|p| p.iter().map(|k| (*k).to_string()).collect())
            .collect()
    };
    let changed = owned(&difference.changed);
    let gone = owned(&difference.gone);
    let old = old.as_deref();
    let mut list = old.map(entries).unwrap_or_default();
    let manager = update_manager(ctx);
    let sub = subresource(ctx);
    let mine = list
        .iter()
        .position(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub);
    // Whether any entry's set of fields changes; the common write (a heartbeat: the manager
    // changed fields it already owns) changes none, and then only its entry's time is new.
    let mut regrouped = false;
    for (i, entry) in list.iter_mut().enumerate() {
        let before = entry.fields.len();
        // The manager's own entry keeps what it changed: it takes those paths anyway.
        entry
            .fields
            .retain(|p| !gone.contains(p) && (Some(i) == mine || !changed.contains(p)));
        regrouped |= entry.fields.len() != before;
    }
    let api_version = ctx.kind.api_version();
    let touched = !changed.is_empty();
    if touched {
        match mine {
            Some(i) => {
                let entry = &mut list[i];
                let before = entry.fields.len();
                entry.fields.extend(changed);
                regrouped |= entry.fields.len() != before;
                entry.time = faros_api::meta::now_rfc3339();
                regrouped |= entry.api_version != api_version;
                entry.api_version = api_version;
            }
            None => {
                regrouped = true;
                list.push(Entry {
                    manager,
                    operation: "Update".into(),
                    subresource: sub,
                    api_version,
                    time: faros_api::meta::now_rfc3339(),
                    fields: changed,
                })
            }
        }
    }
    let stored = old.and_then(|o| o["metadata"]["managedFields"].as_array());
    if !regrouped
        && let Some(stored) = stored
        && stored.len() == list.len()
        && list.iter().all(|e| !e.fields.is_empty())
    {
        // The stored entries as they are, with the new time: nothing to encode again.
        let mut kept = stored.clone();
        if touched
            && let Some(i) = mine
            && let Some(entry) = kept[i].as_object_mut()
        {
            entry.insert("time".into(), list[i].time.clone().into());
        }
        object::meta_mut(new).insert("managedFields".into(), Value::Array(kept));
        return;
    }
    store_entries(new, list);
}

/// What a write changed, leaf by leaf (see [`leaves`]), with paths borrowed from the
/// objects: the paths whose value is new, and the leaves of `old` that no leaf of `new`
/// overlaps (removed, or replaced by a map with nothing in scope below).
#[derive(Default)]
struct Difference<'a> {
    changed: Vec<Vec<&'a str>>,
    gone: Vec<Vec<&'a str>>,
}

/// Walks `old` and `new` side by side, keeping only the paths that differ: a write that
/// changes a few fields of a large object allocates for those fields alone. Returns whether
/// `new` has a leaf in scope at or below `path`.
fn diff<'a>(
    ctx: &Ctx,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    path: &mut Vec<&'a str>,
    out: &mut Difference<'a>,
) -> bool {
    let interior = |v: &'a Value| v.as_object().filter(|m| !m.is_empty() || path.is_empty());
    match (old.and_then(interior), new.and_then(interior)) {
        (Some(old_map), Some(new_map)) => {
            let mut any = false;
            for (k, v) in new_map {
                path.push(k);
                any |= diff(ctx, old_map.get(k), Some(v), path, out);
                path.pop();
            }
            for (k, v) in old_map.iter().filter(|(k, _)| !new_map.contains_key(*k)) {
                path.push(k);
                diff(ctx, Some(v), None, path, out);
                path.pop();
            }
            any
        }
        (_, Some(new_map)) => {
            let mut any = false;
            for (k, v) in new_map {
                path.push(k);
                any |= diff(ctx, None, Some(v), path, out);
                path.pop();
            }
            // An old leaf under new fields stays unless none of them is in scope.
            if old.is_some() && !any && in_scope(ctx, path) {
                out.gone.push(path.clone());
            }
            any
        }
        (Some(old_map), _) => {
            let leaf = new.is_some() && in_scope(ctx, path);
            if leaf {
                out.changed.push(path.clone());
            } else {
                for (k, v) in old_map {
                    path.push(k);
                    diff(ctx, Some(v), None, path, out);
                    path.pop();
                }
            }
            leaf
        }
        (_, _) => {
            let leaf = new.is_some() && in_scope(ctx, path);
            if leaf && old != new {
                out.changed.push(path.clone());
            }
            if old.is_some() && !leaf && in_scope(ctx, path) {
                out.gone.push(path.clone());
            }
            leaf
        }
    }
}

/// Entries a write leaves as stored: all of them, or all with one manager's time new.
enum Kept {
    AsStored,
    Renewed(usize),
}

/// The common non-apply write, a heartbeat above all: the manager changed only fields it
/// already owns and nobody else does, and removed none. Every entry then stays as stored
/// and only the manager's time is new, which is what the full computation in
/// [`record_update`] yields, found without decoding any entry's field set. None when the
/// write is anything else.
fn kept_entries(ctx: &Ctx, difference: &Difference<'_>, old: &Value) -> Option<Kept> {
    if !difference.gone.is_empty() {
        return None;
    }
    let stored = old["metadata"]["managedFields"].as_array()?;
    // Entries owning nothing would be dropped.
    if !stored.iter().all(|e| owns_any(&e["fieldsV1"], true)) {
        return None;
    }
    if difference.changed.is_empty() {
        return Some(Kept::AsStored);
    }
    let manager = update_manager(ctx);
    let sub = subresource(ctx);
    let mine = stored.iter().position(|e| {
        e["manager"].as_str().unwrap_or_default() == manager
            && e["operation"].as_str().unwrap_or("Update") == "Update"
            && e["subresource"].as_str().unwrap_or_default() == sub
    })?;
    if stored[mine]["apiVersion"].as_str() != Some(ctx.kind.api_version().as_str()) {
        return None;
    }
    let unchanged_sets = difference.changed.iter().all(|path| {
        stored
            .iter()
            .enumerate()
            .all(|(i, e)| owns(&e["fieldsV1"], path) == (i == mine))
    });
    unchanged_sets.then_some(Kept::Renewed(mine))
}

fn merge_into(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                match t.get_mut(k) {
                    Some(existing)
                        if existing.is_object() && v.is_object() && !v.as_object().is_some_and(Map::is_empty) =>
                    {
                        merge_into(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// Server-side apply of `config` onto `current`.
pub fn apply(ctx: &Ctx, current: &Value, config: &Value) -> ApiResult<Value> {
    let manager = ctx.query.field_manager.clone().unwrap_or_default();
    check_config(ctx, config)?;
    let applied = leaves(ctx, config);
    let sub = subresource(ctx);
    let mut list = entries(current);
    let mut conflicts = Vec::new();
    for entry in list
        .iter_mut()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        let taken: Vec<Path> = entry
            .fields
            .iter()
            .filter(|owned| {
                applied
                    .iter()
                    .any(|p| overlaps(p, owned) && get(current, p) != get(config, p))
            })
            .cloned()
            .collect();
        if taken.is_empty() {
            continue;
        }
        if ctx.query.force {
            for p in &taken {
                entry.fields.remove(p);
            }
        } else {
            for p in taken {
                conflicts.push((entry.manager.clone(), p));
            }
        }
    }
    if !conflicts.is_empty() {
        let causes: Vec<FieldError> = conflicts
            .iter()
            .map(|(m, p)| {
                FieldError::new(
                    CauseType::FieldManagerConflict,
                    format!(".{}", p.join(".")),
                    format!("conflict with \"{m}\""),
                )
            })
            .collect();
        let detail = conflicts
            .iter()
            .map(|(m, p)| format!("- .{}: conflict with \"{m}\"", p.join(".")))
            .collect::<Vec<_>>()
            .join("\n");
        let mut err = ApiError::new(
            Reason::Conflict,
            format!(
                "Apply failed with {} conflict{}: {detail}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" }
            ),
        );
        err.causes = causes;
        err.subject = Some(Box::new(faros_machinery::status::Subject {
            group: ctx.kind.group.clone(),
            kind: ctx.kind.resource.clone(),
            name: object::name(current).to_string(),
        }));
        return Err(err);
    }
    let mut result = current.clone();
    // Fields this manager applied before and dropped now go away unless someone else
    // also manages them.
    if let Some(previous) = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == sub)
    {
        for p in previous.fields.difference(&applied) {
            let shared = list
                .iter()
                .any(|e| !(e.manager == manager && e.operation == "Apply") && e.fields.iter().any(|q| overlaps(p, q)));
            if !shared {
                remove(&mut result, p);
            }
        }
    }
    let mut scoped = config.clone();
    strip_out_of_scope(ctx, &mut scoped);
    merge_into(&mut result, &scoped);
    list.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub));
    list.push(Entry {
        manager,
        operation: "Apply".into(),
        subresource: sub,
        api_version: ctx.kind.api_version(),
        time: faros_api::meta::now_rfc3339(),
        fields: applied,
    });
    // Managed fields are final here; the update path must not re-attribute the change.
    store_entries(&mut result, list);
    result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    Ok(result)
}

fn strip_out_of_scope(ctx: &Ctx, config: &mut Value) {
    if let Some(map) = config.as_object_mut() {
        match ctx.req.subresource.as_deref() {
            Some("status") => map.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind"),
            _ if ctx.kind.has_status() => {
                map.remove("status");
            }
            _ => {}
        }
    }
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_META {
            if *f != "name" && *f != "namespace" {
                meta.remove(*f);
            }
        }
    }
}

fn check_config(ctx: &Ctx, config: &Value) -> ApiResult<()> {
    let name = ctx.req.name.as_deref().unwrap_or_default();
    let given = object::name(config);
    // An apply configuration may leave the name to the URL (kube-rs status patches do).
    if !given.is_empty() && given != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    let api_version = config["apiVersion"].as_str().unwrap_or_default();
    let kind = config["kind"].as_str().unwrap_or_default();
    if api_version != ctx.kind.api_version() || kind != ctx.kind.kind {
        return Err(ApiError::bad_request(format!(
            "the apply configuration must have apiVersion {:?} and kind {:?}",
            ctx.kind.api_version(),
            ctx.kind.kind
        )));
    }
    Ok(())
}

/// Apply to a missing object: create it, owned by the applying manager.
pub async fn apply_create(ctx: &Ctx, config: Value) -> ApiResult<Response> {
    check_config(ctx, &config)?;
    let mut obj = config.clone();
    let name = ctx.req.name.clone().unwrap_or_default();
    object::meta_mut(&mut obj).insert("name".into(), name.into());
    let warnings = store::prepare_create(ctx, &mut obj)?;
    let list = vec![Entry {
        manager: ctx.query.field_manager.clone().unwrap_or_default(),
        operation: "Apply".into(),
        subresource: String::new(),
        api_version: ctx.kind.api_version(),
        time: faros_api::meta::now_rfc3339(),
        fields: leaves(ctx, &config),
    }];
    store_entries(&mut obj, list);
    if ctx.query.dry_run {
        return Ok(super::response::with_warnings(
            super::response::json(StatusCode::CREATED, &obj),
            &warnings,
        ));
    }
    let name = object::name(&obj).to_string();
    let key = ctx.key(&name)?;
    let mut stored = ctx.to_stored(&obj).into_owned();
    object::meta_mut(&mut stored).remove("resourceVersion");
    let outcome = ctx
        .hub
        .cache
        .write(WriteOp::Create {
            key,
            value: bytes::Bytes::from(serde_json::to_vec(&stored).unwrap_or_default()),
        })
        .await
        .map_err(|e| store::storage_error(ctx, &name, e))?;
    object::meta_mut(&mut obj).insert("resourceVersion".into(), outcome.revision.to_string().into());
    Ok(super::response::with_warnings(
        super::response::json(StatusCode::CREATED, &obj),
        &warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips() {
        let mut set = FieldSet::new();
        set.insert(vec!["spec".into(), "replicas".into()]);
        set.insert(vec!["metadata".into(), "labels".into(), "app".into()]);
        let encoded = to_fields_v1(&set);
        assert_eq!(encoded["f:spec"]["f:replicas"], json!({}));
        assert_eq!(from_fields_v1(&encoded), set);
    }

    /// Updates give their manager the fields they changed and take them from the others;
    /// a manager rewriting fields it already owns keeps the entries as they were.
    #[tokio::test]
    async fn updates_move_ownership_between_managers() {
        use http::Method;
        let hub = crate::testing::InProcessHub::start().await;
        let path = "/api/v1/namespaces/default/configmaps";
        let write = |method: Method, manager: &str, data: Value, rv: Option<&str>| {
            let mut body = json!({"metadata": {"name": "cm"}, "data": data});
            if let Some(rv) = rv {
                body["metadata"]["resourceVersion"] = rv.into();
            }
            let url = match method {
                Method::POST => format!("{path}?fieldManager={manager}"),
                _ => format!("{path}/cm?fieldManager={manager}"),
            };
            let hub = &hub;
            async move {
                let (code, obj) = hub.admin(method, &url, Some(body)).await;
                assert!(code.is_success(), "{code}: {obj}");
                obj
            }
        };
        let owners = |obj: &Value| -> Vec<(String, Vec<String>)> {
            obj["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let fields = from_fields_v1(&e["fieldsV1"])
                        .into_iter()
                        .map(|p| p.join("."))
                        .collect();
                    (e["manager"].as_str().unwrap().to_string(), fields)
                })
                .collect()
        };
        let rv = |obj: &Value| obj["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let created = write(Method::POST, "one", json!({"a": "1"}), None).await;
        assert_eq!(owners(&created), vec![("one".to_string(), vec!["data.a".to_string()])]);
        let same = write(Method::PUT, "one", json!({"a": "2"}), Some(&rv(&created))).await;
        assert_eq!(
            same["metadata"]["managedFields"][0]["fieldsV1"],
            created["metadata"]["managedFields"][0]["fieldsV1"]
        );
        assert_eq!(owners(&same), owners(&created));
        let second = write(Method::PUT, "two", json!({"a": "2", "b": "3"}), Some(&rv(&same))).await;
        assert_eq!(
            owners(&second),
            vec![
                ("one".to_string(), vec!["data.a".to_string()]),
                ("two".to_string(), vec!["data.b".to_string()]),
            ]
        );
        let taken = write(Method::PUT, "two", json!({"a": "5", "b": "3"}), Some(&rv(&second))).await;
        assert_eq!(
            owners(&taken),
            vec![("two".to_string(), vec!["data.a".to_string(), "data.b".to_string()])]
        );
        // Writing what is already there changes nobody's fields.
        let unchanged = write(Method::PUT, "one", json!({"a": "5", "b": "3"}), Some(&rv(&taken))).await;
        assert_eq!(
            unchanged["metadata"]["managedFields"],
            taken["metadata"]["managedFields"]
        );
        // A field removed is released by its owner, even when the write changes nothing else.
        let removed = write(Method::PUT, "two", json!({"a": "5"}), Some(&rv(&unchanged))).await;
        assert_eq!(owners(&removed), vec![("two".to_string(), vec!["data.a".to_string()])]);
        // A new field for a manager that owns others is added to its set.
        let grown = write(Method::PUT, "two", json!({"a": "5", "c": "1"}), Some(&rv(&removed))).await;
        assert_eq!(
            owners(&grown),
            vec![("two".to_string(), vec!["data.a".to_string(), "data.c".to_string()])]
        );
        // A changed field owned by another manager moves to the writer, who keeps its own.
        let moved = write(Method::PUT, "one", json!({"a": "5", "c": "2"}), Some(&rv(&grown))).await;
        assert_eq!(
            owners(&moved),
            vec![
                ("two".to_string(), vec!["data.a".to_string()]),
                ("one".to_string(), vec!["data.c".to_string()]),
            ]
        );
        // Its owner changing it again keeps every set as it was, and the entries' order.
        let renewed = write(Method::PUT, "one", json!({"a": "5", "c": "3"}), Some(&rv(&moved))).await;
        assert_eq!(owners(&renewed), owners(&moved));

        // A map removed as a whole is released field by field, by every manager, while the
        // writer takes what it changed beside it.
        let mut labelled = renewed.clone();
        labelled["metadata"]["labels"] = json!({"x": "1", "y": "2"});
        let (code, labelled) = hub
            .admin(Method::PUT, &format!("{path}/cm?fieldManager=one"), Some(labelled))
            .await;
        assert!(code.is_success(), "{labelled}");
        assert_eq!(
            owners(&labelled),
            vec![
                ("two".to_string(), vec!["data.a".to_string()]),
                (
                    "one".to_string(),
                    vec![
                        "data.c".to_string(),
                        "metadata.labels.x".to_string(),
                        "metadata.labels.y".to_string()
                    ]
                ),
            ]
        );
        let unlabelled = write(Method::PUT, "two", json!({"a": "5", "c": "4"}), Some(&rv(&labelled))).await;
        assert_eq!(
            owners(&unlabelled),
            vec![("two".to_string(), vec!["data.a".to_string(), "data.c".to_string()])]
        );
    }

    /// Whether an entry owns a path reads its FieldsV1 as decoding the whole set does,
    /// list members (`k:` keys) included.
    #[test]
    fn ownership_of_one_path_agrees_with_the_decoded_set() {
        let fields = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}},
                "f:replicas": {},
                "f:template": {"f:x": {}, "k:{\"y\":1}": {}},
            },
            "f:data": {},
        });
        let set = from_fields_v1(&fields);
        let candidates: Vec<Vec<&str>> = vec![
            vec!["metadata"],
            vec!["metadata", "labels"],
            vec!["metadata", "labels", "app"],
            vec!["spec"],
            vec!["spec", "containers"],
            vec!["spec", "containers", "image"],
            vec!["spec", "replicas"],
            vec!["spec", "template"],
            vec!["spec", "template", "x"],
            vec!["data"],
            vec!["data", "k"],
            vec!["status"],
        ];
        for path in candidates {
            let owned: Path = path.iter().map(|k| k.to_string()).collect();
            assert_eq!(owns(&fields, &path), set.contains(&owned), "{path:?} in {set:?}");
        }
        assert!(owns(&fields, &["spec", "replicas"]));
        assert!(owns(&fields, &["spec", "containers"]));
        assert!(!owns(&fields, &["spec"]));
        assert!(!owns(&json!({}), &[]));
        // Sets that decode to nothing, though they name fields.
        for empty in [
            json!({}),
            json!({"f:data": 1}),
            json!({"f:data": {"f:k": null}}),
            json!({"A": {}, "f:data": {}}),
        ] {
            assert!(from_fields_v1(&empty).is_empty(), "{empty}");
            assert!(!owns_any(&empty, true), "{empty}");
        }
        assert!(owns_any(&fields, true));
        assert!(owns_any(&json!({"f:data": {}}), true));
    }

    #[test]
    fn removal_prunes_empty_parents() {
        let mut v = json!({"spec": {"a": {"b": 1}, "c": 2}});
        remove(&mut v, &["spec".into(), "a".into(), "b".into()]);
        assert_eq!(v, json!({"spec": {"c": 2}}));
    }
}
