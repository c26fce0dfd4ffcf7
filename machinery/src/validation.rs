//! Name and object-metadata validation with apimachinery's rules and wording.
//!
//! Clients (kubectl, controllers, conformance suites) show these messages to
//! people and sometimes match on them, so the checks and the phrasing follow
//! `k8s.io/apimachinery/pkg/util/validation` and
//! `k8s.io/apimachinery/pkg/api/validation` closely. The patterns are checked
//! by hand rather than with regexes: they are tiny and this runs on every write.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::status::FieldError;

const DNS1123_LABEL_MAX_LEN: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
const QUALIFIED_NAME_MAX_LEN: usize = 63;
const LABEL_VALUE_MAX_LEN: usize = 63;
/// Kubernetes caps the summed byte length of all annotation keys and values.
pub(crate) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn empty_error() -> &'static str {
    "must be non-empty"
}

/// apimachinery's `RegexError`, including its quirky `',  or '` joining, so
/// messages are byte-for-byte what users see from kube-apiserver.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first) && is_lower_alnum(last) && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Dot-separated DNS-1123 labels; per-label length is not limited by the pattern.
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Object names of most kinds, and the DNS prefix of qualified names.
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LEN));
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Namespace names and other names that end up as a single DNS label.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX_LEN {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LEN));
    }
    if !matches_dns1123_label(s) {
        // A valid subdomain that is not a valid label can only be failing on
        // dots (length was checked above); Kubernetes says so specifically.
        if matches_dns1123_subdomain(s) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `[prefix/]name` as used by label keys, annotation keys and finalizers.
pub(crate) fn is_qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX_LEN)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Label values: empty, or a qualified-name part of at most 63 characters.
pub(crate) fn is_label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX_LEN {
        errs.push(max_len_error(LABEL_VALUE_MAX_LEN));
    }
    if !s.is_empty() && !matches_qualified_name_part(s) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Names that only have to survive being one URL path segment.
pub(crate) fn is_path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    is_path_segment_prefix(s)
}

/// A generateName prefix may be "." because a suffix always follows it.
fn is_path_segment_prefix(s: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|bad| s.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// Which name rule a kind uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    PathSegment,
}

impl NameRule {
    /// Messages for `name`; with `prefix` it is a generateName, which the
    /// server extends with random characters, so a trailing '-' is fine.
    fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(name),
            NameRule::Dns1123Label => is_dns1123_label(name),
            NameRule::PathSegment if prefix => is_path_segment_prefix(name),
            NameRule::PathSegment => is_path_segment_name(name),
        }
    }
}

/// Quotes like Go's `%q`, which is how field.Invalid shows string values.
pub(crate) fn go_quote(s: &str) -> String {
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

/// `field.Invalid(path, "value", detail)` in our error type.
fn invalid(field: impl Into<String>, value: &str, detail: &str) -> FieldError {
    FieldError::invalid(field, format!("{}: {detail}", go_quote(value)))
}

/// A field of the wrong JSON type; Kubernetes would fail decoding instead,
/// but reporting it as a cause keeps the caller's error path uniform.
fn wrong_type(field: impl Into<String>, value: &Value, expected: &str) -> FieldError {
    FieldError::type_invalid(field, format!("{value}: must be {expected}"))
}

/// Reads an optional string field; `null` counts as absent. `path` is rendered only for an
/// error: every write validates its metadata, and nearly all of them are valid.
fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: impl std::fmt::Display,
    errs: &mut Vec<FieldError>,
) -> &'a str {
    match obj.get(key) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(other) => {
            errs.push(wrong_type(path.to_string(), other, "a string"));
            ""
        }
    }
}

/// `list[index]`, written out only when an error names it.
struct Item<'a>(&'a str, usize);

impl std::fmt::Display for Item<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// Reads an optional `map[string]string` field as (key, value) pairs.
fn string_map<'a>(
    meta: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<(&'a str, &'a str)> {
    match meta.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.as_str(), s.as_str())),
                // Go decodes a JSON null into the empty string.
                Value::Null => Some((k.as_str(), "")),
                other => {
                    errs.push(wrong_type(format!("{path}[{k}]"), other, "a string"));
                    None
                }
            })
            .collect(),
        Some(other) => {
            errs.push(wrong_type(path, other, "a map of strings"));
            Vec::new()
        }
    }
}

/// Validate `metadata` of an object about to be written. See the module docs
/// for the source of the rules; field paths are indexed (`metadata.finalizers[1]`)
/// where Kubernetes would only name the list, to point at the offending entry.
pub fn validate_object_meta(meta: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = match meta {
        Value::Object(m) => m,
        Value::Null => &Map::new(),
        other => return vec![wrong_type("metadata", other, "an object")],
    };

    let generate_name = opt_str(meta, "generateName", "metadata.generateName", &mut errs);
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(invalid("metadata.generateName", generate_name, &msg));
        }
    }

    let name = opt_str(meta, "name", "metadata.name", &mut errs);
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in rule.check(name, false) {
            errs.push(invalid("metadata.name", name, &msg));
        }
    }

    let namespace = opt_str(meta, "namespace", "metadata.namespace", &mut errs);
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(
                "metadata.namespace",
                "namespace is required for namespaced resources",
            ));
        } else {
            for msg in is_dns1123_label(namespace) {
                errs.push(invalid("metadata.namespace", namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }

    match meta.get("generation") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64().is_some_and(|g| g < 0) => {
            errs.push(FieldError::invalid(
                "metadata.generation",
                format!("{n}: must be greater than or equal to 0"),
            ));
        }
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(other) => errs.push(wrong_type("metadata.generation", other, "an integer")),
    }

    for (key, value) in string_map(meta, "labels", "metadata.labels", &mut errs) {
        for msg in is_qualified_name(key) {
            errs.push(invalid("metadata.labels", key, &msg));
        }
        for msg in is_label_value(value) {
            errs.push(invalid("metadata.labels", value, &msg));
        }
    }

    let annotations = string_map(meta, "annotations", "metadata.annotations", &mut errs);
    for (key, _) in &annotations {
        // Annotation keys are qualified names except that case does not matter.
        let lowered = match key.bytes().any(|b| b.is_ascii_uppercase()) {
            true => std::borrow::Cow::Owned(key.to_ascii_lowercase()),
            false => std::borrow::Cow::Borrowed(*key),
        };
        for msg in is_qualified_name(&lowered) {
            errs.push(invalid("metadata.annotations", key, &msg));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            "metadata.annotations",
            format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }

    validate_finalizers(meta.get("finalizers"), &mut errs);
    validate_owner_references(meta.get("ownerReferences"), &mut errs);
    errs
}

fn validate_finalizers(finalizers: Option<&Value>, errs: &mut Vec<FieldError>) {
    let list = match finalizers {
        None | Some(Value::Null) => return,
        Some(Value::Array(list)) => list,
        Some(other) => {
            errs.push(wrong_type("metadata.finalizers", other, "a list of strings"));
            return;
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let path = Item("metadata.finalizers", i);
        let Value::String(finalizer) = item else {
            errs.push(wrong_type(path.to_string(), item, "a string"));
            continue;
        };
        for msg in is_qualified_name(finalizer) {
            errs.push(invalid(path.to_string(), finalizer, &msg));
        }
        if seen.contains(&finalizer.as_str()) {
            errs.push(FieldError::duplicate(path.to_string(), go_quote(finalizer)));
        } else {
            seen.push(finalizer);
        }
    }
    // The garbage collector cannot both orphan and delete the dependents.
    if seen.contains(&"orphan") && seen.contains(&"foregroundDeletion") {
        let rendered: Vec<String> = seen.iter().map(|f| go_quote(f)).collect();
        errs.push(FieldError::invalid(
            "metadata.finalizers",
            format!(
                "[]string{{{}}}: finalizer orphan and foregroundDeletion cannot be both set",
                rendered.join(", ")
            ),
        ));
    }
}

fn validate_owner_references(refs: Option<&Value>, errs: &mut Vec<FieldError>) {
    let list = match refs {
        None | Some(Value::Null) => return,
        Some(Value::Array(list)) => list,
        Some(other) => {
            errs.push(wrong_type("metadata.ownerReferences", other, "a list of objects"));
            return;
        }
    };
    let mut first_controller: Option<String> = None;
    for (i, item) in list.iter().enumerate() {
        let path = Item("metadata.ownerReferences", i);
        let Value::Object(owner) = item else {
            errs.push(wrong_type(path.to_string(), item, "an object"));
            continue;
        };
        let api_version = opt_str(owner, "apiVersion", format_args!("{path}.apiVersion"), errs);
        let kind = opt_str(owner, "kind", format_args!("{path}.kind"), errs);
        let name = opt_str(owner, "name", format_args!("{path}.name"), errs);
        let uid = opt_str(owner, "uid", format_args!("{path}.uid"), errs);

        // schema.ParseGroupVersion: "" and "/" are empty, one slash splits,
        // more than one is unparseable and leaves the version empty.
        let (group, version) = match api_version.matches('/').count() {
            _ if api_version == "/" => ("", ""),
            0 => ("", api_version),
            1 => api_version.split_once('/').unwrap_or(("", "")),
            _ => ("", ""),
        };
        if version.is_empty() {
            errs.push(invalid(
                format!("{path}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(invalid(format!("{path}.kind"), kind, "kind must not be empty"));
        }
        if name.is_empty() {
            errs.push(invalid(format!("{path}.name"), name, "name must not be empty"));
        }
        if uid.is_empty() {
            errs.push(invalid(format!("{path}.uid"), uid, "uid must not be empty"));
        }
        // Events are garbage collected on their own schedule; owning
        // anything through them would make dependents vanish unexpectedly.
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                path.to_string(),
                format!("{item}: /v1, Kind=Event is disallowed from being an owner"),
            ));
        }

        for flag in ["controller", "blockOwnerDeletion"] {
            match owner.get(flag) {
                None | Some(Value::Null) | Some(Value::Bool(_)) => {}
                Some(other) => errs.push(wrong_type(format!("{path}.{flag}"), other, "a boolean")),
            }
        }
        if owner.get("controller") == Some(&Value::Bool(true)) {
            let current = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    "metadata.ownerReferences",
                    format!(
                        "{}: Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}",
                        Value::Array(list.clone())
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::CauseType;
    use serde_json::json;

    fn fields(errs: &[FieldError]) -> Vec<&str> {
        errs.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn subdomain_accepts_valid_names() {
        for ok in ["a", "0", "example.com", "a-b.c-d", "1.2.3", "a--b", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn subdomain_rejects_bad_names_with_kubernetes_message() {
        assert_eq!(
            is_dns1123_subdomain("Bad_Name"),
            vec![
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        for bad in ["", "-a", "a-", ".a", "a.", "a..b", "a_b", "A", "a.-b", "é", "a b"] {
            assert_eq!(is_dns1123_subdomain(bad).len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn subdomain_length_boundary() {
        assert!(is_dns1123_subdomain(&"a".repeat(253)).is_empty());
        assert_eq!(
            is_dns1123_subdomain(&"a".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
        // Too long and malformed: both messages, length first.
        let errs = is_dns1123_subdomain(&format!("{}_", "a".repeat(254)));
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("must be no more than 253"));
    }

    #[test]
    fn label_rules_and_boundaries() {
        assert!(is_dns1123_label("my-name").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        assert!(is_dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label("My-Name"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(is_dns1123_label("").len(), 1);
        assert_eq!(is_dns1123_label("-a").len(), 1);
    }

    #[test]
    fn qualified_names() {
        for ok in [
            "a",
            "MyName",
            "my.name",
            "123-abc",
            "a_b",
            "example.com/MyName",
            "kubernetes.io/os",
            &"a".repeat(63),
            &format!("{}/{}", "a".repeat(253), "b".repeat(63)),
        ] {
            assert!(is_qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            is_qualified_name("-a"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        // Empty name part gets both the emptiness and the pattern message.
        let errs = is_qualified_name("");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0], "name part must be non-empty");
        assert_eq!(is_qualified_name("/a"), vec!["prefix part must be non-empty"]);
        let errs = is_qualified_name("Example.com/a");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        let errs = is_qualified_name(&format!("{}/a", "a".repeat(254)));
        assert_eq!(errs, vec!["prefix part must be no more than 253 characters"]);
        let errs = is_qualified_name("a/b/c");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("a qualified name must consist of"));
        assert!(errs[0].ends_with("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
        assert_eq!(is_qualified_name("a/").len(), 2);
    }

    #[test]
    fn label_values() {
        for ok in ["", "a", "MyValue", "my_value", "12345", "a.b-c_d", &"v".repeat(63)] {
            assert!(is_label_value(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            is_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(
            is_label_value("a b"),
            vec![
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            ]
        );
        for bad in ["-a", "a-", "a/b", "_", "ü"] {
            assert_eq!(is_label_value(bad).len(), 1, "{bad}");
        }
    }

    #[test]
    fn path_segment_names() {
        assert!(is_path_segment_name("anything:Goes_HERE").is_empty());
        assert!(is_path_segment_name("").is_empty());
        assert_eq!(is_path_segment_name("."), vec!["may not be '.'"]);
        assert_eq!(is_path_segment_name(".."), vec!["may not be '..'"]);
        assert!(is_path_segment_name("...").is_empty());
        assert_eq!(is_path_segment_name("a/b"), vec!["may not contain '/'"]);
        assert_eq!(
            is_path_segment_name("a/%b"),
            vec!["may not contain '/'", "may not contain '%'"]
        );
    }

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(go_quote("Bad_Name"), "\"Bad_Name\"");
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
        assert_eq!(go_quote("ü"), "\"ü\"");
    }

    #[test]
    fn valid_meta_has_no_errors() {
        let meta = json!({
            "name": "web-1",
            "namespace": "default",
            "generateName": "web-",
            "generation": 3,
            "labels": {"app": "web", "example.com/tier": "", "null": null},
            "annotations": {"Example.com/Note": "free text, any: chars!"},
            "finalizers": ["example.com/cleanup", "kubernetes"],
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "u2", "controller": false}
            ],
            "managedFields": "not validated"
        });
        assert_eq!(validate_object_meta(&meta, true, NameRule::Dns1123Subdomain), vec![]);
    }

    #[test]
    fn bad_name_is_quoted_like_field_invalid() {
        let errs = validate_object_meta(&json!({"name": "Bad_Name"}), false, NameRule::Dns1123Subdomain);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.name");
        assert_eq!(errs[0].reason, CauseType::FieldValueInvalid);
        assert!(
            errs[0]
                .message
                .starts_with("\"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
        assert!(
            errs[0]
                .to_message()
                .starts_with("metadata.name: Invalid value: \"Bad_Name\": ")
        );
    }

    #[test]
    fn missing_name_is_required() {
        let errs = validate_object_meta(&json!({}), false, NameRule::Dns1123Subdomain);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].reason, CauseType::FieldValueRequired);
        assert_eq!(errs[0].message, "name or generateName is required");
        assert_eq!(
            validate_object_meta(&Value::Null, false, NameRule::PathSegment).len(),
            1
        );
    }

    #[test]
    fn name_rules_per_kind() {
        let meta = json!({"name": "a.b"});
        assert!(validate_object_meta(&meta, false, NameRule::Dns1123Subdomain).is_empty());
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Label);
        assert_eq!(errs[0].message, "\"a.b\": must not contain dots");
        let meta = json!({"name": "system:Admin"});
        assert!(validate_object_meta(&meta, false, NameRule::PathSegment).is_empty());
        let errs = validate_object_meta(&json!({"name": ".."}), false, NameRule::PathSegment);
        assert_eq!(errs[0].message, "\"..\": may not be '..'");
        let long = "a".repeat(253);
        assert!(validate_object_meta(&json!({"name": long}), false, NameRule::Dns1123Subdomain).is_empty());
        let long = "a".repeat(254);
        assert_eq!(
            validate_object_meta(&json!({"name": long}), false, NameRule::Dns1123Subdomain).len(),
            1
        );
    }

    #[test]
    fn generate_name_allows_trailing_dash_only() {
        let ok = json!({"name": "web-x1y2z", "generateName": "web-"});
        assert!(validate_object_meta(&ok, false, NameRule::Dns1123Subdomain).is_empty());
        let bad = json!({"name": "x", "generateName": "Web-"});
        let errs = validate_object_meta(&bad, false, NameRule::Dns1123Subdomain);
        assert_eq!(fields(&errs), vec!["metadata.generateName"]);
        assert!(errs[0].message.starts_with("\"Web-\": "));
        let bad = json!({"name": "x", "generateName": "-"});
        assert_eq!(validate_object_meta(&bad, false, NameRule::Dns1123Label).len(), 1);
        // A path-segment prefix may be "." because a suffix always follows.
        let dot = json!({"name": ".x", "generateName": "."});
        assert!(validate_object_meta(&dot, false, NameRule::PathSegment).is_empty());
    }

    #[test]
    fn namespace_scope_rules() {
        let errs = validate_object_meta(&json!({"name": "a"}), true, NameRule::Dns1123Subdomain);
        assert_eq!(fields(&errs), vec!["metadata.namespace"]);
        assert_eq!(errs[0].reason, CauseType::FieldValueRequired);
        let errs = validate_object_meta(
            &json!({"name": "a", "namespace": "kube.system"}),
            true,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(errs[0].message, "\"kube.system\": must not contain dots");
        let errs = validate_object_meta(
            &json!({"name": "a", "namespace": "ns"}),
            false,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(errs[0].reason, CauseType::FieldValueForbidden);
        assert_eq!(errs[0].message, "not allowed on this type");
    }

    #[test]
    fn label_errors_point_at_metadata_labels() {
        let meta = json!({"name": "a", "labels": {"bad key": "ok", "good": "bad value", "n": 5}});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        let mut got = fields(&errs);
        got.sort();
        assert_eq!(got, vec!["metadata.labels", "metadata.labels", "metadata.labels[n]"]);
        assert!(
            errs.iter()
                .any(|e| e.message.starts_with("\"bad key\": name part must consist"))
        );
        assert!(
            errs.iter()
                .any(|e| e.message.starts_with("\"bad value\": a valid label"))
        );
        assert!(errs.iter().any(|e| e.reason == CauseType::FieldValueTypeInvalid));
        let meta = json!({"name": "a", "labels": {"k": "v".repeat(64)}});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert!(errs[0].message.ends_with("must be no more than 63 characters"));
        let meta = json!({"name": "a", "labels": ["x"]});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(errs[0].reason, CauseType::FieldValueTypeInvalid);
    }

    #[test]
    fn annotation_keys_are_case_insensitive_and_size_limited() {
        let meta = json!({"name": "a", "annotations": {"Example.COM/Some-Key": "x"}});
        assert!(validate_object_meta(&meta, false, NameRule::Dns1123Subdomain).is_empty());
        let meta = json!({"name": "a", "annotations": {"a/b/c": "x"}});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(fields(&errs), vec!["metadata.annotations"]);

        // Exactly at the limit (key + value bytes) is fine; one more byte is not.
        let at_limit = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
        let meta = json!({"name": "a", "annotations": {"k": at_limit}});
        assert!(validate_object_meta(&meta, false, NameRule::Dns1123Subdomain).is_empty());
        let over = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let meta = json!({"name": "a", "annotations": {"k": over}});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].reason, CauseType::FieldValueTooLong);
        assert_eq!(
            errs[0].to_message(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn finalizers_are_qualified_and_unique() {
        let meta = json!({"name": "a", "finalizers": ["ok/one", "bad/name/x", "ok/one", 7]});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(
            fields(&errs),
            vec![
                "metadata.finalizers[1]",
                "metadata.finalizers[2]",
                "metadata.finalizers[3]"
            ]
        );
        assert_eq!(errs[1].reason, CauseType::FieldValueDuplicate);
        assert_eq!(
            errs[1].to_message(),
            "metadata.finalizers[2]: Duplicate value: \"ok/one\""
        );
        assert_eq!(errs[2].reason, CauseType::FieldValueTypeInvalid);
    }

    #[test]
    fn orphan_and_foreground_finalizers_conflict() {
        let meta = json!({"name": "a", "finalizers": ["orphan", "foregroundDeletion"]});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "[]string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set"
        );
    }

    #[test]
    fn owner_references_need_identity_fields() {
        let meta = json!({"name": "a", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"},
            {"apiVersion": "apps/", "kind": "", "name": ""},
        ]});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(
            fields(&errs),
            vec![
                "metadata.ownerReferences[1].apiVersion",
                "metadata.ownerReferences[1].kind",
                "metadata.ownerReferences[1].name",
                "metadata.ownerReferences[1].uid",
            ]
        );
        assert_eq!(errs[3].message, "\"\": uid must not be empty");
        assert_eq!(errs[0].message, "\"apps/\": version must not be empty");
        for bad_version in ["", "/", "a/b/c"] {
            let meta = json!({"name": "a", "ownerReferences": [
                {"apiVersion": bad_version, "kind": "K", "name": "n", "uid": "u"}]});
            let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
            assert_eq!(
                fields(&errs),
                vec!["metadata.ownerReferences[0].apiVersion"],
                "{bad_version}"
            );
        }
    }

    #[test]
    fn owner_references_at_most_one_controller() {
        let meta = json!({"name": "a", "ownerReferences": [
            {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": true},
        ]});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(fields(&errs), vec!["metadata.ownerReferences"]);
        assert!(errs[0].message.ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references for A/a and B/b"
        ));
    }

    #[test]
    fn owner_reference_types_and_banned_event_owner() {
        let meta = json!({"name": "a", "ownerReferences": [
            "nope",
            {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1", "controller": "yes"},
        ]});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(
            fields(&errs),
            vec![
                "metadata.ownerReferences[0]",
                "metadata.ownerReferences[1]",
                "metadata.ownerReferences[1].controller",
            ]
        );
        assert!(
            errs[1]
                .message
                .ends_with("/v1, Kind=Event is disallowed from being an owner")
        );
    }

    #[test]
    fn negative_generation_and_wrong_types() {
        let meta = json!({"name": "a", "generation": -1});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(
            errs[0].to_message(),
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        let meta = json!({"name": 5});
        let errs = validate_object_meta(&meta, false, NameRule::Dns1123Subdomain);
        assert_eq!(fields(&errs), vec!["metadata.name", "metadata.name"]);
        assert_eq!(errs[0].reason, CauseType::FieldValueTypeInvalid);
        let errs = validate_object_meta(&json!("x"), false, NameRule::Dns1123Subdomain);
        assert_eq!(fields(&errs), vec!["metadata"]);
    }
}
