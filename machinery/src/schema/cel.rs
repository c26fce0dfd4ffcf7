//! `x-kubernetes-validations`: the CEL rules of schema nodes, evaluated as kube-apiserver
//! evaluates them for custom resources.
//!
//! Rules run once the object has passed the schema's other checks without an error that leaves
//! it in a shape its rules were not written for (a wrong type, a missing required field, a value
//! outside its enum, a size limit: kube-apiserver's blocking errors); otherwise one error says
//! that rules were not checked. `self` is bound to the value at the rule's node; a null value is
//! not checked. On an update (PUT, patch, apply and the status subresource alike) a rule that
//! names `oldSelf`, a transition rule, sees the previous value at the same node, reached through
//! properties, map keys and the items of `x-kubernetes-list-type: map` lists (matched by their
//! keys). Where there is none (on create, or for a field newly set) the rule is skipped, unless
//! `optionalOldSelf: true` makes `oldSelf` an optional, empty there. A rule that fails is
//! reported at its node, or at its `fieldPath` below it, with its `reason` as the cause type, and
//! with the message its `messageExpression` evaluates to, else its `message`, else the rule.
//!
//! What is evaluated is what the `cel` crate implements of CEL's standard library, optional
//! values included. A rule that needs more is refused when the CRD is written, naming the field,
//! never silently ignored: timestamps and durations (the crate's `chrono` feature would add the
//! whole time-zone database, some 2 MB, to every binary), and Kubernetes' CEL libraries
//! (`isSorted`, `quantity`, `url`, the string extensions, ...). kube-apiserver bounds a rule's
//! cost with estimates and a runtime budget; the `cel` crate has neither, so rules whose cost can
//! grow faster than the object — a macro (`all`, `exists`, `map`, ...) inside another — are
//! refused too: one macro is linear in the object, which a request's size limit bounds.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::objects::OptionalValue;
use cel::{Context, ExecutionError};
use serde_json::{Map, Value};

use super::path::{Path, join_path};
use super::render::quote;
use super::validate::type_matches;
use super::{Additional, ListType, Node, Type};
use crate::status::{CauseType, FieldError};

/// CEL's standard library with optional values, shared by every rule: building it costs more
/// than evaluating most rules.
static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// The functions rules may call: CEL's operators (named `_+_`, `!_`, `@in`, ...) and these.
const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "type",
    "dyn",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "orValue",
    "or",
];

/// The longest message a `messageExpression` may give (kube-apiserver's limit); a longer one
/// falls back to `message`.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// How a rule sees the previous value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OldSelf {
    /// The rule does not name `oldSelf`.
    Unused,
    /// A transition rule: evaluated only where there is a previous value.
    Required,
    /// `optionalOldSelf: true`: always evaluated, `oldSelf` an optional.
    Optional,
}

/// One compiled rule, or why it cannot be evaluated.
pub(super) struct Rule {
    /// `None` for a rule this server cannot evaluate (see `compile`).
    program: Option<cel::Program>,
    /// The rule as written, trimmed, or why it cannot be evaluated.
    rule: String,
    message: Option<String>,
    message_expression: Option<cel::Program>,
    reason: CauseType,
    /// `fieldPath` as kube-apiserver prints it (`spec.ports[http]`), relative to the node.
    field_path: Option<String>,
    old_self: OldSelf,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("rule", &self.rule).finish()
    }
}

impl Rule {
    /// Whether the rule names `oldSelf`.
    pub(super) fn is_transition(&self) -> bool {
        self.old_self != OldSelf::Unused
    }
}

// ---------------------------------------------------------------------------
// Compiling, when a CRD is written or loaded
// ---------------------------------------------------------------------------

/// Compiles the `x-kubernetes-validations` of the schema node `schema` at `path`.
/// `uncorrelatable` is the path of the list above the node whose items cannot be matched with
/// their previous versions (any list but `x-kubernetes-list-type: map`), if there is one.
///
/// A rule that cannot be evaluated is kept as refusing every value (so a CRD stored before this
/// server refused it fails writes loudly instead of going unchecked) and reported, naming the
/// offending field.
pub(super) fn compile(
    rules: &Value,
    path: &str,
    schema: &Map<String, Value>,
    uncorrelatable: Option<&str>,
) -> (Vec<Rule>, Vec<FieldError>) {
    let Some(list) = rules.as_array() else {
        let error = FieldError::invalid(format!("{path}.x-kubernetes-validations"), "must be a list of rules");
        return (vec![Rule::refused(&error)], vec![error]);
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, spec) in list.iter().enumerate() {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        match compile_one(spec, &at, schema, uncorrelatable) {
            Ok(rule) => out.push(rule),
            Err(mut e) => {
                out.push(Rule::refused(&e[0]));
                errors.append(&mut e);
            }
        }
    }
    (out, errors)
}

fn compile_one(
    spec: &Value,
    at: &str,
    schema: &Map<String, Value>,
    uncorrelatable: Option<&str>,
) -> Result<Rule, Vec<FieldError>> {
    let text = |key: &str| spec.get(key).and_then(Value::as_str).unwrap_or_default();
    let (rule, message, message_expression, field_path) = (
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    );
    let field = |name: &str| format!("{at}.{name}");
    let mut errors = Vec::new();

    // The checks kube-apiserver makes before compiling anything.
    if rule.trim().is_empty() {
        errors.push(FieldError::required(field("rule"), "rule is not specified"));
    } else if !message.is_empty() && message.trim().is_empty() {
        errors.push(FieldError::invalid(
            field("message"),
            format!("{}: message must be non-empty if specified", quote(message)),
        ));
    } else if has_line_breaks(message.trim()) {
        errors.push(FieldError::invalid(
            field("message"),
            format!("{}: message must not contain line breaks", quote(message)),
        ));
    } else if has_line_breaks(rule.trim()) && message.trim().is_empty() {
        errors.push(FieldError::required(
            field("message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        errors.push(FieldError::required(
            field("messageExpression"),
            "messageExpression must be non-empty if specified",
        ));
    }
    let reason = match spec.get("reason").filter(|r| !r.is_null()) {
        None => CauseType::FieldValueInvalid,
        Some(reason) => match reason.as_str() {
            Some("FieldValueInvalid") => CauseType::FieldValueInvalid,
            Some("FieldValueForbidden") => CauseType::FieldValueForbidden,
            Some("FieldValueRequired") => CauseType::FieldValueRequired,
            Some("FieldValueDuplicate") => CauseType::FieldValueDuplicate,
            other => {
                let written = other.map_or_else(|| reason.to_string(), str::to_string);
                errors.push(FieldError::not_supported(
                    field("reason"),
                    format!(
                        "{}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                        quote(&written)
                    ),
                ));
                CauseType::FieldValueInvalid
            }
        },
    };
    let mut normalized_path = None;
    if !field_path.is_empty() {
        let invalid =
            |detail: &str| FieldError::invalid(field("fieldPath"), format!("{}: {detail}", quote(field_path)));
        if field_path.trim().is_empty() {
            errors.push(invalid("fieldPath must be non-empty if specified"));
        }
        if has_line_breaks(field_path) {
            errors.push(invalid("fieldPath must not contain line breaks"));
        }
        match resolve_field_path(field_path, schema) {
            Ok(path) => normalized_path = Some(path),
            Err(why) => errors.push(invalid(&format!("fieldPath must be a valid path: {why}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let program = compile_expression(rule, &field("rule"), "").map_err(|e| vec![e])?;
    let uses_old_self = program.references().has_variable("oldSelf");
    if uses_old_self && let Some(list) = uncorrelatable {
        errors.push(FieldError::invalid(
            field("rule"),
            format!(
                "{}: oldSelf cannot be used on the uncorrelatable portion of the schema within {list}",
                quote(rule)
            ),
        ));
    }
    let optional = match spec.get("optionalOldSelf") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.push(FieldError::invalid(field("optionalOldSelf"), "must be a boolean"));
            None
        }
    };
    if let Some(optional) = optional
        && !uses_old_self
    {
        errors.push(FieldError::invalid(
            field("optionalOldSelf"),
            format!("{optional}: may not be set if oldSelf is not used in rule"),
        ));
    }
    let message_expression = if message_expression.is_empty() {
        None
    } else {
        match compile_expression(message_expression, &field("messageExpression"), "messageExpression ") {
            Ok(program) => Some(program),
            Err(e) => {
                errors.push(e);
                None
            }
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rule {
        program: Some(program),
        rule: rule.trim().to_string(),
        message: Some(message.trim()).filter(|m| !m.is_empty()).map(str::to_string),
        message_expression,
        reason,
        field_path: normalized_path,
        old_self: match (uses_old_self, optional) {
            (false, _) => OldSelf::Unused,
            (true, Some(true)) => OldSelf::Optional,
            (true, _) => OldSelf::Required,
        },
    })
}

/// Line breaks as CEL's grammar knows them.
fn has_line_breaks(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// Compiles a rule or a `messageExpression` (`what` says which, in messages) and checks that it
/// needs nothing the hub cannot evaluate.
fn compile_expression(source: &str, field: &str, what: &str) -> Result<cel::Program, FieldError> {
    let program = ENV
        .compile(source)
        .map_err(|e| FieldError::invalid(field, format!("{what}compilation failed: {e}")))?;
    if macro_depth(program.expression()) > 1 {
        return Err(FieldError::forbidden(
            field,
            "a macro (all, exists, exists_one, map, filter) inside another is not supported by this server: its cost is unbounded",
        ));
    }
    let references = program.references();
    let mut unsupported: Vec<&str> = references
        .functions()
        .into_iter()
        .filter(|f| !is_operator(f) && !FUNCTIONS.contains(f))
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort_unstable();
        let names: Vec<String> = unsupported.iter().map(|f| format!("{f}()")).collect();
        return Err(FieldError::invalid(
            field,
            format!(
                "{what}compilation failed: {} not supported by this server",
                names.join(", ")
            ),
        ));
    }
    Ok(program)
}

/// How deeply macro expansions (comprehensions) nest in `expr`.
fn macro_depth(expr: &IdedExpr) -> usize {
    let deepest = |exprs: &mut dyn Iterator<Item = &IdedExpr>| exprs.map(macro_depth).max().unwrap_or(0);
    match &expr.expr {
        Expr::Call(call) => deepest(&mut call.target.iter().map(|t| &**t).chain(&call.args)),
        Expr::Comprehension(c) => {
            let parts = [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result];
            let body = deepest(&mut [&c.loop_cond, &c.loop_step].into_iter());
            deepest(&mut parts.into_iter()).max(1 + body)
        }
        Expr::List(list) => deepest(&mut list.elements.iter()),
        Expr::Map(map) => deepest(&mut map.entries.iter().flat_map(|e| entry_exprs(&e.expr))),
        Expr::Struct(st) => deepest(&mut st.entries.iter().flat_map(|e| entry_exprs(&e.expr))),
        Expr::Select(select) => macro_depth(&select.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 0,
    }
}

fn entry_exprs(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::StructField(field) => vec![&field.value],
        EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
    }
}

fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name.ends_with('_')
}

/// Resolves a rule's `fieldPath` (`.spec.name`, `.labels['app.kubernetes.io/name']`) against
/// the schema node the rule is on, as kube-apiserver does: each step names a property, or a key
/// of a map (`additionalProperties`); list items cannot be reached. Returns the path printed as
/// kube-apiserver prints it in errors (`spec.name`, `labels[app.kubernetes.io/name]`), or why it
/// is not valid.
fn resolve_field_path(path: &str, schema: &Map<String, Value>) -> Result<String, String> {
    let mut node = schema;
    let mut out = String::new();
    let mut tokens = FieldPathTokens { rest: path };
    while let Some(token) = tokens.next() {
        let name = match token {
            "[" => {
                let quoted = tokens.next().ok_or("unexpected end of JSON path")?;
                let literal = quoted
                    .strip_prefix('\'')
                    .and_then(|q| q.strip_suffix('\''))
                    .filter(|_| quoted.len() >= 2)
                    .ok_or_else(|| format!("expected single quoted string but got {quoted}"))?;
                let name = unescape_single_quoted(literal).map_err(|e| format!("invalid string literal: {e}"))?;
                match tokens.next() {
                    Some("]") => {}
                    Some(other) => return Err(format!("expected ] but got {other}")),
                    None => return Err("unexpected end of JSON path".into()),
                }
                name
            }
            "." => tokens.next().ok_or("unexpected end of JSON path")?.to_string(),
            other => return Err(format!("expected [ or . but got: {other}")),
        };
        let properties = node
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty());
        let next = if let Some(properties) = properties {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&name);
            properties.get(&name)
        } else if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
            out.push('[');
            out.push_str(&name);
            out.push(']');
            Some(additional)
        } else {
            None
        };
        node = next
            .and_then(Value::as_object)
            .ok_or("does not refer to a valid field")?;
    }
    Ok(out)
}

/// The tokens of a `fieldPath`: the delimiters `.`, `[` and `]`, single-quoted strings (which
/// may hold delimiters), and the names between them.
struct FieldPathTokens<'a> {
    rest: &'a str,
}

impl<'a> Iterator for FieldPathTokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest;
        let end = if s.is_empty() {
            return None;
        } else if s.starts_with('\'') {
            // Up to the first quote not escaped with a backslash, or the end.
            let bytes = s.as_bytes();
            (1..bytes.len())
                .find(|&i| bytes[i] == b'\'' && bytes[i - 1] != b'\\')
                .map_or(s.len(), |i| i + 1)
        } else if s.starts_with(['.', '[', ']']) {
            1
        } else {
            s.find(['.', '[', ']']).unwrap_or(s.len())
        };
        self.rest = &s[end..];
        Some(&s[..end])
    }
}

/// The escapes a single-quoted `fieldPath` step may use.
fn unescape_single_quoted(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next() {
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\u{b}',
            Some('\'') => '\'',
            Some('\\') => '\\',
            Some(other) => return Err(format!("invalid escape char \\{other}")),
            // A backslash that ends the string escapes nothing.
            None => '\\',
        };
        out.push(escaped);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Evaluating, on every write
// ---------------------------------------------------------------------------

/// Checks the rules of a schema tree against a value and, on an update, its previous version.
pub(super) struct Checker<'b> {
    /// Prefix of every field path (the `…default` of a CRD schema node when checking defaults);
    /// empty for objects.
    pub(super) base: &'b str,
    /// Checking a CRD's defaults: rules that cannot be evaluated are reported by the CRD's own
    /// checks, not again here.
    pub(super) defaults: bool,
}

impl Checker<'_> {
    /// Checks the rules of `node` and of the nodes below it against `value`; `old` is the value
    /// at the same place before the update, if there was one.
    pub(super) fn walk(&self, node: &Node, value: &Value, old: Option<&Value>, path: &Path, out: &mut Vec<FieldError>) {
        if !node.rules_below || value.is_null() {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        if !node.rules.is_empty() && type_matches(node, value) {
            self.rules(node, value, old, path, out);
        }
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    let (child, path) = match (node.properties.get(key), &node.additional) {
                        (Some(child), _) => (child, path.prop(key)),
                        (None, Some(Additional::Schema(child))) => (child, path.key(key)),
                        _ => continue,
                    };
                    let before = old.filter(|_| child.node.transitions_below).and_then(|o| o.get(key));
                    self.walk(&child.node, item, before, &path, out);
                }
            }
            Value::Array(items) => {
                let Some(child) = &node.items else { return };
                // Only the items of a map list can be matched with their previous versions.
                let olds = match old {
                    Some(Value::Array(olds))
                        if child.node.transitions_below && node.list_type == Some(ListType::Map) =>
                    {
                        let keyed = olds.iter().filter_map(|o| Some((map_key(o, &node.list_map_keys)?, o)));
                        let mut by_key = HashMap::new();
                        for (key, o) in keyed {
                            by_key.entry(key).or_insert(o);
                        }
                        Some(by_key)
                    }
                    _ => None,
                };
                for (i, item) in items.iter().enumerate() {
                    let before = olds
                        .as_ref()
                        .and_then(|by_key| by_key.get(&map_key(item, &node.list_map_keys)?).copied());
                    self.walk(&child.node, item, before, &path.index(i), out);
                }
            }
            _ => {}
        }
    }

    /// Checks the rules of one node.
    fn rules(&self, node: &Node, value: &Value, old: Option<&Value>, path: &Path, out: &mut Vec<FieldError>) {
        let field = join_path(self.base, &path.render(true));
        let type_name = node.ty.map(Type::name).unwrap_or_default();
        let this = to_cel(value);
        // Like kube-apiserver, `oldSelf` is bound only where a rule of the node names it (a
        // message expression elsewhere cannot use it).
        let transitions = node.rules.iter().any(Rule::is_transition);
        let before = old.filter(|_| transitions).map(to_cel);
        let plain = bind(&this, before.clone());
        let mut optional = None;
        for rule in &node.rules {
            if self.defaults && rule.program.is_none() {
                continue;
            }
            let context = match rule.old_self {
                // Transition rules compare with a previous value; without one there is nothing to check.
                OldSelf::Required if before.is_none() => continue,
                OldSelf::Optional => &*optional.get_or_insert_with(|| {
                    let old = before.clone().map_or_else(OptionalValue::none, OptionalValue::of);
                    bind(&this, Some(cel::Value::Opaque(Arc::new(old))))
                }),
                OldSelf::Unused | OldSelf::Required => &plain,
            };
            out.extend(rule.check(context, &plain, type_name, &field));
        }
    }
}

/// A context binding `self`, and `oldSelf` when given.
fn bind(this: &cel::Value, old: Option<cel::Value>) -> Context<'static, 'static> {
    let mut context = Context::with_env(ENV.clone());
    context.add_variable_from_value("self", this.clone());
    if let Some(old) = old {
        context.add_variable_from_value("oldSelf", old);
    }
    context
}

/// The composite key of a map list's item, or `None` if a key is missing or not a scalar (such
/// an item has no previous version).
fn map_key(item: &Value, keys: &[String]) -> Option<String> {
    let values: Option<Vec<&Value>> = keys
        .iter()
        .map(|k| {
            item.get(k)
                .filter(|v| matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_)))
        })
        .collect();
    serde_json::to_string(&values?).ok()
}

impl Rule {
    fn refused(why: &FieldError) -> Rule {
        Rule {
            program: None,
            rule: why.to_message(),
            message: None,
            message_expression: None,
            reason: CauseType::FieldValueInvalid,
            field_path: None,
            old_self: OldSelf::Unused,
        }
    }

    /// Evaluates the rule in `context` on a value of schema type `type_name` at `field`: the
    /// error when it does not hold, phrased as kube-apiserver does. A `messageExpression` is
    /// evaluated in `plain`, where `oldSelf` (if bound) is the previous value itself even for an
    /// `optionalOldSelf` rule, as in kube-apiserver.
    fn check(&self, context: &Context, plain: &Context, type_name: &str, field: &str) -> Option<FieldError> {
        let invalid = |detail: String| Some(FieldError::invalid(field, format!("{}: {detail}", quote(type_name))));
        let Some(program) = &self.program else {
            return invalid(format!(
                "the schema has a rule this server cannot evaluate: {}",
                self.rule
            ));
        };
        match program.execute(context) {
            Ok(cel::Value::Bool(true)) => None,
            Ok(cel::Value::Bool(false)) => {
                let field = match &self.field_path {
                    Some(path) if field.is_empty() => path.clone(),
                    Some(path) => format!("{field}.{path}"),
                    None => field.to_string(),
                };
                let detail = self
                    .message_from_expression(plain)
                    .unwrap_or_else(|| match &self.message {
                        Some(message) => message.clone(),
                        None => format!("failed rule: {}", self.rule),
                    });
                Some(match self.reason {
                    CauseType::FieldValueForbidden => FieldError::forbidden(field, detail),
                    CauseType::FieldValueRequired => FieldError::required(field, detail),
                    // kube-apiserver reports the node's type as the duplicate value, not the message.
                    CauseType::FieldValueDuplicate => FieldError::duplicate(field, quote(type_name)),
                    _ => FieldError::invalid(field, format!("{}: {detail}", quote(type_name))),
                })
            }
            Ok(other) => invalid(format!(
                "rule did not evaluate to a bool ({other:?}) evaluating rule: {}",
                self.error_string()
            )),
            Err(e @ ExecutionError::NoSuchOverload(_)) => invalid(format!(
                "'{e}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                self.error_string()
            )),
            Err(e) => invalid(format!("{e} evaluating rule: {}", self.error_string())),
        }
    }

    /// The message of `messageExpression`, if it evaluates to a usable one: a string, not
    /// empty once trimmed, on one line, and not too long. Otherwise kube-apiserver falls back to
    /// `message`, and so does this.
    fn message_from_expression(&self, context: &Context) -> Option<String> {
        let Ok(cel::Value::String(message)) = self.message_expression.as_ref()?.execute(context) else {
            return None;
        };
        let message = message.trim();
        (!message.is_empty() && message.len() <= MAX_MESSAGE_BYTES && !message.contains('\n'))
            .then(|| message.to_string())
    }

    /// How an evaluation error names the rule: by its message, else its text.
    fn error_string(&self) -> &str {
        self.message.as_deref().unwrap_or(&self.rule)
    }
}

/// A JSON value as CEL sees it: integers are `int` (not `uint`), as Kubernetes maps them.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let entries: HashMap<String, cel::Value> = map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            entries.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::schema::StructuralSchema;
    use crate::schema::test_support::*;

    use super::*;

    /// A schema whose `spec` has `properties` and `rules`.
    fn spec_with(properties: Value, rules: Value) -> StructuralSchema {
        obj_schema(json!({"type": "object", "properties": properties, "x-kubernetes-validations": rules}))
    }

    /// The errors of writing `spec`, over `old` on an update.
    fn write(s: &StructuralSchema, spec: Value, old: Option<Value>) -> Vec<String> {
        let old = old.map(|o| json!({"spec": o}));
        messages(&s.validate(&json!({"spec": spec}), old.as_ref()))
    }

    /// Why a CRD whose `spec` has these properties and rules is refused.
    fn refused(properties: Value, rules: Value) -> Vec<String> {
        rejected(json!({"type": "object", "properties": {"spec":
            {"type": "object", "properties": properties, "x-kubernetes-validations": rules}}}))
    }

    fn ints() -> Value {
        json!({"replicas": {"type": "integer"}, "max": {"type": "integer"}})
    }

    #[test]
    fn rules_hold_or_report_their_message() {
        let s = spec_with(
            ints(),
            json!([{"rule": "self.replicas <= self.max", "message": "replicas above max"}]),
        );
        assert!(write(&s, json!({"replicas": 2, "max": 3}), None).is_empty());
        assert_eq!(
            write(&s, json!({"replicas": 4, "max": 3}), None),
            ["spec: Invalid value: \"object\": replicas above max"]
        );
        let s = obj_schema(
            json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"},
            "x-kubernetes-validations": [{"rule": "self.all(t, t.startsWith('x-')) && size(self) < 3"}]}}}),
        );
        assert!(write(&s, json!({"tags": ["x-a", "x-b"]}), None).is_empty());
        assert_eq!(
            write(&s, json!({"tags": ["y"]}), None),
            ["spec.tags: Invalid value: \"array\": failed rule: self.all(t, t.startsWith('x-')) && size(self) < 3"]
        );
        let s = spec_with(
            json!({"n": {"type": "integer"}, "s": {"type": "string"}, "o": {"type": "object", "additionalProperties": {"type": "integer"}}}),
            json!([{"rule": "self.n + 1 > 1 && self.s.matches('^a') && has(self.o) && 'k' in self.o && self.?missing.orValue(1) == 1"}]),
        );
        assert!(write(&s, json!({"n": 1, "s": "ab", "o": {"k": 1}}), None).is_empty());
        // An evaluation error is reported as kube-apiserver does, naming the rule.
        let s = spec_with(ints(), json!([{"rule": "self.replicas / self.max > 0"}]));
        let errors = write(&s, json!({"replicas": 1, "max": 0}), None);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec: Invalid value: \"object\": ")
                && errors[0].ends_with(" evaluating rule: self.replicas / self.max > 0"),
            "{errors:?}"
        );
        let s = obj_schema(json!({"type": "object", "properties": {"port": {
            "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-validations": [{"rule": "self > 0", "message": "port must be positive"}]}}}));
        let errors = write(&s, json!({"port": "http"}), None);
        assert!(
            errors.len() == 1
                && errors[0].ends_with(
                    "': call arguments did not match a supported operator, function or macro signature for rule: port must be positive"
                ),
            "{errors:?}"
        );
    }

    #[test]
    fn transition_rules_compare_with_the_previous_value() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]},
            "count": {"type": "integer"}
        }, "x-kubernetes-validations": [{"rule": "self.count >= oldSelf.count", "message": "count may not go down"}]}));
        // On create there is no previous value: transition rules are skipped.
        assert!(write(&s, json!({"name": "a", "count": 1}), None).is_empty());
        assert!(
            write(
                &s,
                json!({"name": "a", "count": 2}),
                Some(json!({"name": "a", "count": 1}))
            )
            .is_empty()
        );
        assert_eq!(
            write(
                &s,
                json!({"name": "b", "count": 0}),
                Some(json!({"name": "a", "count": 1}))
            ),
            [
                "spec: Invalid value: \"object\": count may not go down",
                "spec.name: Invalid value: \"string\": name is immutable"
            ]
        );
        // A field newly set (or removed) has no previous value to compare with.
        assert!(write(&s, json!({"name": "b", "count": 1}), Some(json!({"count": 1}))).is_empty());
        assert!(write(&s, json!({"count": 1}), Some(json!({"name": "a", "count": 1}))).is_empty());
        // A rule at the root sees the whole object before and after.
        let root = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": ints()}},
            "x-kubernetes-validations": [{"rule": "self.spec.max == oldSelf.spec.max", "reason": "FieldValueForbidden",
                "fieldPath": ".spec.max", "message": "max is fixed"}]}),
        );
        let errors = root.validate(
            &json!({"spec": {"max": 2}}),
            Some(&json!({"spec": {"max": 1}, "status": {}})),
        );
        assert_eq!(messages(&errors), ["spec.max: Forbidden: max is fixed"]);
    }

    #[test]
    fn map_entries_and_map_list_items_are_matched_with_their_previous_versions() {
        let s = obj_schema(json!({"type": "object", "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "labels are immutable"}]}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "proto"],
                "items": {"type": "object", "required": ["name", "proto"], "properties": {
                    "name": {"type": "string"}, "proto": {"type": "string"}, "port": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.port >= oldSelf.port", "message": "ports only grow"}]}}
        }}));
        let old = json!({"labels": {"app.kubernetes.io/name": "a"}, "ports": [
            {"name": "a", "proto": "TCP", "port": 80}, {"name": "a", "proto": "UDP", "port": 90}]});
        // Reordered, with a new entry and a new item: nothing to compare but the matched ones.
        let fine = json!({"labels": {"app.kubernetes.io/name": "a", "new": "x"}, "ports": [
            {"name": "b", "proto": "TCP", "port": 1}, {"name": "a", "proto": "UDP", "port": 90},
            {"name": "a", "proto": "TCP", "port": 81}]});
        assert!(write(&s, fine, Some(old.clone())).is_empty());
        let changed = json!({"labels": {"app.kubernetes.io/name": "b"}, "ports": [
            {"name": "a", "proto": "UDP", "port": 89}, {"name": "a", "proto": "TCP", "port": 80}]});
        assert_eq!(
            write(&s, changed, Some(old)),
            [
                "spec.labels[app.kubernetes.io/name]: Invalid value: \"string\": labels are immutable",
                "spec.ports[0]: Invalid value: \"object\": ports only grow"
            ]
        );
    }

    #[test]
    fn optional_old_self_runs_on_create_too() {
        let s = obj_schema(json!({"type": "object", "properties": {"phase": {"type": "string",
            "x-kubernetes-validations": [{"rule": "oldSelf.hasValue() ? self != 'New' : self == 'New'",
                "optionalOldSelf": true, "message": "starts New, then leaves it"}]}}}));
        assert!(write(&s, json!({"phase": "New"}), None).is_empty());
        assert_eq!(
            write(&s, json!({"phase": "Running"}), None),
            ["spec.phase: Invalid value: \"string\": starts New, then leaves it"]
        );
        assert!(write(&s, json!({"phase": "Running"}), Some(json!({"phase": "New"}))).is_empty());
        assert_eq!(
            write(&s, json!({"phase": "New"}), Some(json!({"phase": "Running"}))).len(),
            1
        );
        // optionalOldSelf: false is a plain transition rule.
        let s = obj_schema(json!({"type": "object", "properties": {"n": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self >= oldSelf", "optionalOldSelf": false}]}}}));
        assert!(write(&s, json!({"n": 1}), None).is_empty());
        assert_eq!(write(&s, json!({"n": 1}), Some(json!({"n": 2}))).len(), 1);
    }

    #[test]
    fn message_expressions_give_the_message_or_fall_back() {
        let with = |message_expression: &str, message: Option<&str>| {
            let mut rule = json!({"rule": "self.replicas <= self.max", "messageExpression": message_expression});
            if let Some(m) = message {
                rule["message"] = json!(m);
            }
            write(
                &spec_with(ints(), json!([rule])),
                json!({"replicas": 4, "max": 3}),
                Some(json!({"replicas": 1, "max": 3})),
            )
        };
        assert_eq!(
            with(
                "'replicas ' + string(self.replicas) + ' above ' + string(self.max)",
                Some("unused")
            ),
            ["spec: Invalid value: \"object\": replicas 4 above 3"]
        );
        // `oldSelf` is there for the message where a rule of the node is a transition rule.
        let transition = json!([{"rule": "self.replicas - oldSelf.replicas <= 1",
            "messageExpression": "'up from ' + string(oldSelf.replicas)"}]);
        assert_eq!(
            write(
                &spec_with(ints(), transition),
                json!({"replicas": 4}),
                Some(json!({"replicas": 1}))
            ),
            ["spec: Invalid value: \"object\": up from 1"]
        );
        assert_eq!(
            with("'was ' + string(oldSelf.replicas)", None),
            ["spec: Invalid value: \"object\": failed rule: self.replicas <= self.max"]
        );
        // An error, a value that is not a string, an empty or multi-line string: the message, or
        // the rule.
        for failing in ["self.missing + 'x'", "self.replicas", "'   '", "'a\\nb'"] {
            assert_eq!(
                with(failing, Some("too many")),
                ["spec: Invalid value: \"object\": too many"],
                "{failing}"
            );
            assert_eq!(
                with(failing, None),
                ["spec: Invalid value: \"object\": failed rule: self.replicas <= self.max"],
                "{failing}"
            );
        }
    }

    #[test]
    fn field_path_and_reason_place_and_classify_the_error() {
        let properties = json!({
            "name": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "inner": {"type": "object", "properties": {"a.b": {"type": "string"}}}
        });
        let check = |rule: Value| write(&spec_with(properties.clone(), json!([rule])), json!({}), None);
        assert_eq!(
            check(
                json!({"rule": "has(self.name)", "fieldPath": ".name", "reason": "FieldValueRequired", "message": "name is required"})
            ),
            ["spec.name: Required value: name is required"]
        );
        assert_eq!(
            check(
                json!({"rule": "false", "fieldPath": ".labels['app.kubernetes.io/name']", "reason": "FieldValueForbidden"})
            ),
            ["spec.labels[app.kubernetes.io/name]: Forbidden: failed rule: false"]
        );
        assert_eq!(
            check(json!({"rule": "false", "fieldPath": "['inner']['a.b']", "message": "m"})),
            ["spec.inner.a.b: Invalid value: \"object\": m"]
        );
        // kube-apiserver reports the node's type, not the message, as the duplicate value.
        let errors = spec_with(
            properties.clone(),
            json!([{"rule": "false", "reason": "FieldValueDuplicate", "message": "m"}]),
        )
        .validate(&json!({"spec": {}}), None);
        assert_eq!(errors[0].reason, CauseType::FieldValueDuplicate);
        assert_eq!(messages(&errors), ["spec: Duplicate value: \"object\""]);
    }

    #[test]
    fn rules_wait_for_an_object_of_the_right_shape() {
        let s = spec_with(ints(), json!([{"rule": "self.replicas <= self.max"}]));
        assert_eq!(
            write(&s, json!({"replicas": "many", "max": 3}), None),
            [
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
            ]
        );
    }

    #[test]
    fn defaults_must_pass_the_rules() {
        let with_default = |default: Value, rule: Value| {
            StructuralSchema::parse(
                &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "default": default, "x-kubernetes-validations": [rule]}}}}}),
                PREFIX,
            )
            .map(|_| ())
            .map_err(|e| messages(&e))
        };
        assert_eq!(
            with_default(json!(5), json!({"rule": "self < 3", "message": "too big"})),
            Err(vec![format!(
                "{PREFIX}.properties[spec].properties[size].default: Invalid value: \"integer\": too big"
            )])
        );
        // A default is its own previous value, and a new value for optionalOldSelf rules.
        assert!(with_default(json!(5), json!({"rule": "self == oldSelf"})).is_ok());
        assert!(
            with_default(
                json!(5),
                json!({"rule": "!oldSelf.hasValue() || self == oldSelf.value()", "optionalOldSelf": true})
            )
            .is_ok()
        );
        assert!(with_default(json!(5), json!({"rule": "oldSelf.hasValue()", "optionalOldSelf": true})).is_err());
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused() {
        let one = |rule: Value| refused(ints(), json!([rule])).join("\n");
        let at = format!("{PREFIX}.properties[spec].x-kubernetes-validations[0]");
        assert!(one(json!({"rule": "self.a <"})).contains("rule: Invalid value: compilation failed: "));
        assert!(one(json!({"rule": "self.list.isSorted()"})).contains("isSorted() not supported"));
        assert!(
            one(json!({"rule": "timestamp(self.t) < timestamp('2024-01-01T00:00:00Z')"}))
                .contains("timestamp() not supported")
        );
        assert!(one(json!({"rule": "duration(self.d) > duration('1s')"})).contains("duration() not supported"));
        assert!(one(json!({"rule": "self.a.all(x, self.b.exists(y, x == y))"})).contains("inside another"));
        assert_eq!(
            one(json!({"rule": " "})),
            format!("{at}.rule: Required value: rule is not specified")
        );
        assert_eq!(
            one(json!({"rule": "true", "reason": "Odd"})),
            format!(
                "{at}.reason: Unsupported value: \"Odd\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""
            )
        );
        assert_eq!(
            one(json!({"rule": "true", "message": "two\nlines"})),
            format!("{at}.message: Invalid value: \"two\\nlines\": message must not contain line breaks")
        );
        assert_eq!(
            one(json!({"rule": "true &&\ntrue"})),
            format!("{at}.message: Required value: message must be specified if rule contains line breaks")
        );
        assert_eq!(
            one(json!({"rule": "true", "messageExpression": "  "})),
            format!("{at}.messageExpression: Required value: messageExpression must be non-empty if specified")
        );
        assert!(
            one(json!({"rule": "true", "messageExpression": "'a' +"})).starts_with(&format!(
                "{at}.messageExpression: Invalid value: messageExpression compilation failed: "
            ))
        );
        assert_eq!(
            one(json!({"rule": "true", "messageExpression": "self.l.join(',')"})),
            format!(
                "{at}.messageExpression: Invalid value: messageExpression compilation failed: join() not supported by this server"
            )
        );
        assert_eq!(
            one(json!({"rule": "true", "optionalOldSelf": true})),
            format!("{at}.optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule")
        );
        assert!(
            StructuralSchema::parse(
                &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": ints(),
                    "x-kubernetes-validations": [{"rule": "[1].all(x, x > 0) && [2].exists(y, y == 2)"}]}}}),
                PREFIX
            )
            .is_ok()
        );
    }

    #[test]
    fn invalid_field_paths_are_refused() {
        let properties = json!({
            "name": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}}
        });
        let at = format!("{PREFIX}.properties[spec].x-kubernetes-validations[0].fieldPath");
        let with = |path: &str| refused(properties.clone(), json!([{"rule": "true", "fieldPath": path}]));
        let invalid = |path: &str, why: &str| {
            vec![format!(
                "{at}: Invalid value: {path:?}: fieldPath must be a valid path: {why}"
            )]
        };
        assert_eq!(with(".nope"), invalid(".nope", "does not refer to a valid field"));
        assert_eq!(with(".list.x"), invalid(".list.x", "does not refer to a valid field"));
        assert_eq!(with(".name.x"), invalid(".name.x", "does not refer to a valid field"));
        assert_eq!(with("name"), invalid("name", "expected [ or . but got: name"));
        assert_eq!(with(".labels["), invalid(".labels[", "unexpected end of JSON path"));
        assert_eq!(
            with("[name]"),
            invalid("[name]", "expected single quoted string but got name")
        );
        assert_eq!(with("['name'"), invalid("['name'", "unexpected end of JSON path"));
        assert_eq!(
            with("['na\\qme']"),
            invalid("['na\\qme']", "invalid string literal: invalid escape char \\q")
        );
        let blank = with(" ");
        assert!(
            blank.contains(&format!(
                "{at}: Invalid value: \" \": fieldPath must be non-empty if specified"
            )),
            "{blank:?}"
        );
        // Valid ones: properties by name, map keys by anything, quoted or not.
        for path in [".name", "['name']", ".labels.anything", ".labels['a.b/c']"] {
            let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": properties,
                "x-kubernetes-validations": [{"rule": "true", "fieldPath": path}]}}});
            assert!(StructuralSchema::parse(&schema, PREFIX).is_ok(), "{path}");
        }
    }

    #[test]
    fn transition_rules_need_items_that_can_be_matched() {
        let list = |list_type: &str| {
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"l": {
                "type": "array", "x-kubernetes-list-type": list_type, "x-kubernetes-list-map-keys": (list_type == "map").then_some(["k"]),
                "items": {"type": "object", "required": ["k"], "x-kubernetes-map-type": (list_type == "set").then_some("atomic"),
                    "properties": {"k": {"type": "string"}, "v": {"type": "object", "properties": {"n": {"type": "integer",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}}}}}}})
        };
        assert!(StructuralSchema::parse(&list("map"), PREFIX).is_ok());
        for list_type in ["atomic", "set"] {
            let errors = messages(&StructuralSchema::parse(&list(list_type), PREFIX).unwrap_err());
            assert_eq!(
                errors,
                [format!(
                    "{PREFIX}.properties[spec].properties[l].items.properties[v].properties[n].x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within {PREFIX}.properties[spec].properties[l]"
                )],
                "{list_type}"
            );
        }
    }

    /// A stored schema whose rule the server cannot evaluate is still served, and refuses the
    /// values the rule applies to; writing such a schema is refused.
    #[test]
    fn stored_schemas_with_refused_rules_fail_closed() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object", "x-kubernetes-validations": [{"rule": "self.l.isSorted()"}]}}});
        let errors = StructuralSchema::parse(&schema, PREFIX).unwrap_err();
        assert!(
            errors[0].to_message().contains("isSorted() not supported"),
            "{errors:?}"
        );
        let stored = StructuralSchema::parse_stored(&schema, PREFIX).unwrap();
        let errors = stored.validate(&json!({"spec": {}}), None);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_message().contains("cannot evaluate"), "{errors:?}");
        assert!(stored.validate(&json!({}), None).is_empty());
    }
}
