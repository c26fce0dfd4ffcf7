//! `x-kubernetes-validations`: CEL rules on a schema node, evaluated with `self` bound to the
//! value at that node, as kube-apiserver does for custom resources.
//!
//! The subset evaluated is what the `cel` crate implements of CEL's standard library (without
//! timestamps and durations). A rule that does not compile, or that needs more — transition
//! rules (`oldSelf`), `messageExpression`, Kubernetes' CEL libraries (`isSorted`, `quantity`,
//! `url`, ...) — is refused when the CRD is written, never silently ignored. kube-apiserver
//! bounds a rule's cost with estimates and a runtime budget; the `cel` crate has neither, so
//! rules whose cost can grow faster than the object — a macro (`all`, `exists`, `map`, ...)
//! inside another — are refused too: one macro is linear in the object, which a request's
//! size limit bounds.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde_json::Value;

use crate::status::{CauseType, FieldError};

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
];

/// One compiled rule, or why it cannot be evaluated.
pub(super) struct Rule {
    program: Option<cel::Program>,
    rule: String,
    message: Option<String>,
    reason: CauseType,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("rule", &self.rule).finish()
    }
}

/// Compiles the `x-kubernetes-validations` of a schema node at `path`. A rule that cannot be
/// evaluated is kept as refusing every value (so a CRD stored before this server refused it
/// fails writes loudly instead of going unchecked) and reported, naming the offending field.
pub(super) fn compile(rules: &Value, path: &str) -> (Vec<Rule>, Vec<FieldError>) {
    let Some(list) = rules.as_array() else {
        let error = FieldError::invalid(format!("{path}.x-kubernetes-validations"), "must be a list of rules");
        return (vec![Rule::refused(&error)], vec![error]);
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, spec) in list.iter().enumerate() {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        match compile_one(spec, &at) {
            Ok(rule) => out.push(rule),
            Err(e) => {
                out.push(Rule::refused(&e));
                errors.push(e);
            }
        }
    }
    (out, errors)
}

fn compile_one(spec: &Value, at: &str) -> Result<Rule, FieldError> {
    let rule = spec["rule"].as_str().unwrap_or_default();
    if rule.trim().is_empty() {
        return Err(FieldError::required(format!("{at}.rule"), ""));
    }
    if spec.get("messageExpression").is_some_and(|m| !m.is_null()) {
        return Err(FieldError::forbidden(
            format!("{at}.messageExpression"),
            "messageExpression is not supported by this server; use message",
        ));
    }
    if spec.get("fieldPath").is_some_and(|m| !m.is_null()) {
        return Err(FieldError::forbidden(
            format!("{at}.fieldPath"),
            "fieldPath is not supported by this server",
        ));
    }
    let reason = match spec["reason"].as_str() {
        None | Some("FieldValueInvalid") => CauseType::FieldValueInvalid,
        Some("FieldValueForbidden") => CauseType::FieldValueForbidden,
        Some("FieldValueRequired") => CauseType::FieldValueRequired,
        Some("FieldValueDuplicate") => CauseType::FieldValueDuplicate,
        Some(other) => {
            return Err(FieldError::not_supported(
                format!("{at}.reason"),
                format!(
                    "\"{other}\": supported values: \"FieldValueInvalid\", \"FieldValueForbidden\", \"FieldValueRequired\", \"FieldValueDuplicate\""
                ),
            ));
        }
    };
    let program = cel::Program::compile(rule)
        .map_err(|e| FieldError::invalid(format!("{at}.rule"), format!("compilation failed: {e}")))?;
    let references = program.references();
    if references.has_variable("oldSelf") {
        return Err(FieldError::forbidden(
            format!("{at}.rule"),
            "transition rules (oldSelf) are not supported by this server",
        ));
    }
    if macro_depth(program.expression()) > 1 {
        return Err(FieldError::forbidden(
            format!("{at}.rule"),
            "a macro (all, exists, exists_one, map, filter) inside another is not supported by this server: its cost is unbounded",
        ));
    }
    let mut unsupported: Vec<&str> = references
        .functions()
        .into_iter()
        .filter(|f| !is_operator(f) && !FUNCTIONS.contains(f))
        .collect();
    if !unsupported.is_empty() {
        unsupported.sort_unstable();
        return Err(FieldError::invalid(
            format!("{at}.rule"),
            format!(
                "compilation failed: {} not supported by this server",
                unsupported
                    .iter()
                    .map(|f| format!("{f}()"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(Rule {
        program: Some(program),
        rule: rule.to_string(),
        message: spec["message"].as_str().filter(|m| !m.is_empty()).map(str::to_string),
        reason,
    })
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

impl Rule {
    fn refused(why: &FieldError) -> Rule {
        Rule {
            program: None,
            rule: why.to_message(),
            message: None,
            reason: CauseType::FieldValueInvalid,
        }
    }

    /// Checks `value` (of schema type `type_name`) at `field`; the error when the rule does
    /// not hold, phrased as kube-apiserver does.
    pub(super) fn check(&self, value: &Value, type_name: &str, field: &str) -> Option<FieldError> {
        let Some(program) = &self.program else {
            let detail = format!("the schema has a rule this server cannot evaluate: {}", self.rule);
            return Some(FieldError::invalid(field, format!("\"{type_name}\": {detail}")));
        };
        let mut context = cel::Context::default();
        context.add_variable_from_value("self", to_cel(value));
        let detail = match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => return None,
            Ok(cel::Value::Bool(false)) => self
                .message
                .clone()
                .unwrap_or_else(|| format!("failed rule: {}", self.rule)),
            Ok(other) => format!("rule did not evaluate to a bool: {other:?}: {}", self.rule),
            Err(e) => format!("rule could not be evaluated ({e}): {}", self.rule),
        };
        let message = match self.reason {
            CauseType::FieldValueInvalid => format!("\"{type_name}\": {detail}"),
            _ => detail,
        };
        Some(FieldError::new(self.reason, field, message))
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

    use super::*;

    fn one(spec: Value) -> Result<Rule, FieldError> {
        compile_one(&spec, "spec.validation.openAPIV3Schema.x-kubernetes-validations[0]")
    }

    #[test]
    fn rules_hold_or_report_their_message() {
        let rule = one(json!({"rule": "self.replicas <= self.max", "message": "replicas above max"})).unwrap();
        assert!(
            rule.check(&json!({"replicas": 2, "max": 3}), "object", "spec")
                .is_none()
        );
        let err = rule.check(&json!({"replicas": 4, "max": 3}), "object", "spec").unwrap();
        assert_eq!(err.to_message(), "spec: Invalid value: \"object\": replicas above max");
        let rule = one(json!({"rule": "self.all(t, t.startsWith('x-')) && size(self) < 3"})).unwrap();
        assert!(rule.check(&json!(["x-a", "x-b"]), "array", "spec.tags").is_none());
        let err = rule.check(&json!(["y"]), "array", "spec.tags").unwrap();
        assert!(
            err.to_message()
                .ends_with("failed rule: self.all(t, t.startsWith('x-')) && size(self) < 3")
        );
        let rule =
            one(json!({"rule": "self.n + 1 > 1 && self.s.matches('^a') && has(self.o) && 'k' in self.o"})).unwrap();
        assert!(
            rule.check(&json!({"n": 1, "s": "ab", "o": {"k": 1}}), "object", "spec")
                .is_none()
        );
        let rule =
            one(json!({"rule": "has(self.name)", "reason": "FieldValueRequired", "message": "name is required"}))
                .unwrap();
        let err = rule.check(&json!({}), "object", "spec").unwrap();
        assert_eq!(err.to_message(), "spec: Required value: name is required");
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused() {
        let refused = |spec: Value| one(spec).unwrap_err().to_message();
        assert!(refused(json!({"rule": "self.a <"})).contains("compilation failed"));
        assert!(refused(json!({"rule": "self == oldSelf"})).contains("transition rules"));
        assert!(refused(json!({"rule": "self.list.isSorted()"})).contains("isSorted() not supported"));
        assert!(refused(json!({"rule": "true", "messageExpression": "'x'"})).contains("messageExpression"));
        assert!(refused(json!({"rule": ""})).contains("Required value"));
        assert!(refused(json!({"rule": "true", "reason": "Odd"})).contains("Unsupported value"));
        assert!(refused(json!({"rule": "self.a.all(x, self.b.exists(y, x == y))"})).contains("inside another"));
        assert!(one(json!({"rule": "self.a.all(x, x > 0) && self.b.exists(y, y == 1)"})).is_ok());
    }

    /// A stored schema whose rule the server cannot evaluate is still served, and refuses the
    /// values the rule applies to; writing such a schema is refused.
    #[test]
    fn stored_schemas_with_refused_rules_fail_closed() {
        use crate::schema::StructuralSchema;
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}});
        let prefix = "spec.versions[0].schema.openAPIV3Schema";
        let errors = StructuralSchema::parse(&schema, prefix).unwrap_err();
        assert!(errors[0].to_message().contains("transition rules"), "{errors:?}");
        let stored = StructuralSchema::parse_stored(&schema, prefix).unwrap();
        let errors = stored.validate(&json!({"spec": {}}));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_message().contains("cannot evaluate"), "{errors:?}");
        assert!(stored.validate(&json!({})).is_empty());
    }
}
