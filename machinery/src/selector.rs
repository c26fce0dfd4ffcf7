//! Label and field selectors, parsed and evaluated the way kube-apiserver does
//! (`k8s.io/apimachinery/pkg/labels` and `.../pkg/fields`).
//!
//! Clients build these strings by hand, so the accepted syntax, the error
//! wording and the matching rules (e.g. `!=` matching objects without the
//! label) follow Kubernetes rather than what might seem tidier.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::validation::{go_quote, is_label_value, is_qualified_name};

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// The operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelOp {
    /// `key=value` and `key==value`.
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One ANDed term of a label selector. `values` is sorted and de-duplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelRequirement {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

impl LabelRequirement {
    /// Builds a requirement, checking what `labels.NewRequirement` checks and
    /// aggregating every problem into one message.
    fn new(key: &str, op: LabelOp, values: Vec<String>) -> Result<Self, String> {
        let mut errs: Vec<String> = Vec::new();
        if let Some(e) = key_error(key, "key") {
            errs.push(e);
        }
        let values_shown = || {
            let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
            format!("[]string{{{}}}", quoted.join(", "))
        };
        match op {
            LabelOp::In | LabelOp::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                values_shown()
            )),
            LabelOp::Equals | LabelOp::NotEquals if values.len() != 1 => errs.push(format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                values_shown()
            )),
            LabelOp::Exists | LabelOp::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                values_shown()
            )),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        values_shown()
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_label_value(v);
            if !msgs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    msgs.join("; ")
                ));
            }
        }
        match errs.len() {
            0 => {
                // A set is what Kubernetes keeps; sorted output keeps String() stable.
                let values: BTreeSet<String> = values.into_iter().collect();
                Ok(LabelRequirement {
                    key: key.to_string(),
                    op,
                    values: values.into_iter().collect(),
                })
            }
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    /// `value` is the object's value of this requirement's label, if it has the label.
    fn matches(&self, value: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match (self.op, value) {
            (LabelOp::Equals | LabelOp::In, Some(v)) => has(v),
            (LabelOp::Equals | LabelOp::In, None) => false,
            // Negative set operators match objects that lack the label.
            (LabelOp::NotEquals | LabelOp::NotIn, Some(v)) => !has(v),
            (LabelOp::NotEquals | LabelOp::NotIn, None) => true,
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::DoesNotExist, v) => v.is_none(),
            (LabelOp::GreaterThan | LabelOp::LessThan, Some(v)) => {
                // A label that is not an integer simply does not match.
                let (Ok(have), [want]) = (v.parse::<i64>(), self.values.as_slice()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
            (LabelOp::GreaterThan | LabelOp::LessThan, None) => false,
        }
    }
}

/// A stored label value as a string; Go decodes JSON null to "".
fn label_string(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => s.as_str().into(),
        Value::Null => "".into(),
        other => other.to_string().into(),
    }
}

fn key_error(key: &str, path: &str) -> Option<String> {
    let msgs = is_qualified_name(key);
    (!msgs.is_empty()).then(|| format!("{path}: Invalid value: {}: {}", go_quote(key), msgs.join("; ")))
}

impl fmt::Display for LabelRequirement {
    /// Kubernetes' `Requirement.String()`, with `==` normalised to `=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == LabelOp::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            LabelOp::Exists | LabelOp::DoesNotExist => return Ok(()),
            LabelOp::Equals => "=",
            LabelOp::NotEquals => "!=",
            LabelOp::GreaterThan => ">",
            LabelOp::LessThan => "<",
            LabelOp::In => " in ",
            LabelOp::NotIn => " notin ",
        };
        f.write_str(op)?;
        let values = self.values.join(",");
        if matches!(self.op, LabelOp::In | LabelOp::NotIn) {
            write!(f, "({values})")
        } else {
            f.write_str(&values)
        }
    }
}

/// A parsed label selector: ANDed requirements, kept sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
    /// `labels.Nothing()`: what a null `metav1.LabelSelector` means.
    nothing: bool,
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter syntax.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut parser = Parser { tokens: lex(s), pos: 0 };
        let mut requirements = parser.parse()?;
        // Sorted so that equal selectors render (and compare) identically.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// From a `metav1.LabelSelector` object, as `LabelSelectorAsSelector`
    /// converts it: null selects nothing, `{}` selects everything.
    pub fn from_json(v: &Value) -> Result<LabelSelector, String> {
        let obj = match v {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(obj) => obj,
            other => return Err(format!("label selector must be an object, got {other}")),
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Value::String(value) = value else {
                        return Err(format!("matchLabels[{key}]: must be a string, got {value}"));
                    };
                    requirements.push(LabelRequirement::new(key, LabelOp::Equals, vec![value.clone()])?);
                }
            }
            Some(other) => return Err(format!("matchLabels must be an object, got {other}")),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    requirements.push(expression_requirement(i, expr)?);
                }
            }
            Some(other) => return Err(format!("matchExpressions must be a list, got {other}")),
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Matches no object at all (a null `metav1.LabelSelector`).
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// True when the selector has no requirements and so matches everything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub(crate) fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// The one value the selector pins `key` to (`key=v`, `key==v` or `key in (v)`), if any:
    /// what an authorizer checks to know a list can return only objects with that label.
    pub fn exact(&self, key: &str) -> Option<&str> {
        if self.nothing {
            return None;
        }
        self.requirements
            .iter()
            .find_map(|r| match (&r.op, r.values.as_slice()) {
                (LabelOp::Equals | LabelOp::In, [value]) if r.key == key => Some(value.as_str()),
                _ => None,
            })
    }

    /// `labels` is the object's `metadata.labels` (None when absent).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.matches_lookup(|key| labels.and_then(|l| l.get(key)).map(label_string))
    }

    /// Like [`LabelSelector::matches`], reading labels through `label` (for objects whose
    /// labels are kept apart from a decoded tree).
    pub fn matches_lookup<S: AsRef<str>>(&self, label: impl Fn(&str) -> Option<S>) -> bool {
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches(label(&r.key).as_ref().map(AsRef::as_ref)))
    }
}

fn expression_requirement(i: usize, expr: &Value) -> Result<LabelRequirement, String> {
    let Value::Object(expr) = expr else {
        return Err(format!("matchExpressions[{i}] must be an object, got {expr}"));
    };
    let string_field = |name: &str| match expr.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("matchExpressions[{i}].{name} must be a string, got {other}")),
    };
    let key = string_field("key")?;
    let operator = string_field("operator")?;
    let op = match operator.as_str() {
        "In" => LabelOp::In,
        "NotIn" => LabelOp::NotIn,
        "Exists" => LabelOp::Exists,
        "DoesNotExist" => LabelOp::DoesNotExist,
        _ => {
            return Err(format!(
                "{} is not a valid label selector operator",
                go_quote(&operator)
            ));
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vals)) => vals
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("matchExpressions[{i}].values must be strings, got {other}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(format!("matchExpressions[{i}].values must be a list, got {other}"));
        }
    };
    LabelRequirement::new(&key, op, values)
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// --- label selector lexer and parser ---------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// The keywords are only keywords where an operator is expected.
    In,
    NotIn,
    /// `!` before a key.
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Greater => ">",
            Token::Less => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Identifiers are maximal runs of anything that is neither whitespace nor a
/// symbol; symbols are matched longest-first (`!=`, `==`), as Kubernetes does.
fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && is_whitespace(chars[i]) {
            i += 1;
        }
        let Some(&c) = chars.get(i) else {
            tokens.push(Token::End);
            return tokens;
        };
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (token, width) = match (c, next) {
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', _) => (Token::Bang, 1),
                ('=', _) => (Token::Equals, 1),
                ('(', _) => (Token::Open, 1),
                (')', _) => (Token::Close, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::Greater, 1),
                _ => (Token::Less, 1),
            };
            tokens.push(token);
            i += width;
        } else {
            let start = i;
            while i < chars.len() && !is_whitespace(chars[i]) && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Ident(word),
            });
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    /// The raw token, where `in`/`notin` are operators.
    fn peek_raw(&self) -> Token {
        self.tokens.get(self.pos).cloned().unwrap_or(Token::End)
    }

    /// The token where a key or value is expected: keywords are plain words.
    fn peek(&self) -> Token {
        match self.peek_raw() {
            Token::In => Token::Ident("in".into()),
            Token::NotIn => Token::Ident("notin".into()),
            t => t,
        }
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        self.advance();
        t
    }

    fn next_raw(&mut self) -> Token {
        let t = self.peek_raw();
        self.advance();
        t
    }

    fn advance(&mut self) {
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::Ident(_) | Token::Bang => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.next() {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let t = self.peek();
                            if !matches!(t, Token::Ident(_) | Token::Bang) {
                                return Err(format!("found '{}', expected: identifier after ','", t.literal()));
                            }
                        }
                        t => {
                            return Err(format!("found '{}', expected: ',' or 'end of string'", t.literal()));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let mut token = self.next();
        let negated = token == Token::Bang;
        if negated {
            token = self.next();
        }
        let Token::Ident(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        if let Some(e) = key_error(&key, "key") {
            return Err(e);
        }
        // `!key` is complete as it stands; anything after it is a syntax
        // error reported by the caller.
        if negated {
            return LabelRequirement::new(&key, LabelOp::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return LabelRequirement::new(&key, LabelOp::Exists, Vec::new());
        }
        let op = match self.next_raw() {
            Token::In => LabelOp::In,
            Token::NotIn => LabelOp::NotIn,
            Token::Equals | Token::DoubleEquals => LabelOp::Equals,
            Token::NotEquals => LabelOp::NotEquals,
            Token::Greater => LabelOp::GreaterThan,
            Token::Less => LabelOp::LessThan,
            t => {
                return Err(format!("found '{}', expected: {BINARY_OPERATORS}", t.literal()));
            }
        };
        let values = match op {
            // Kubernetes validates the set in sorted order, so error indexes match.
            LabelOp::In | LabelOp::NotIn => {
                let set: BTreeSet<String> = self.set_values()?.into_iter().collect();
                set.into_iter().collect()
            }
            _ => vec![self.exact_value()?],
        };
        LabelRequirement::new(&key, op, values)
    }

    /// `(a, b, ...)`. Empty entries (`()`, `(a,)`, `(,,)`) stand for the
    /// empty value, as in Kubernetes.
    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let t = self.next();
        if t != Token::Open {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.peek() {
            Token::Close => {
                self.advance();
                Ok(vec![String::new()])
            }
            Token::Ident(_) | Token::Comma => {
                let values = self.value_list()?;
                let t = self.next();
                if t != Token::Close {
                    return Err(format!("found '{}', expected: ')'", t.literal()));
                }
                Ok(values)
            }
            t => Err(format!("found '{}', expected: ',', ')' or identifier", t.literal())),
        }
    }

    /// The inside of a value set; leaves the closing parenthesis unread.
    fn value_list(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        loop {
            match self.next() {
                Token::Ident(v) => {
                    values.push(v);
                    match self.peek() {
                        Token::Comma => {}
                        Token::Close => return Ok(values),
                        t => {
                            return Err(format!("found '{}', expected: ',' or ')'", t.literal()));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek() {
                        Token::Close => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.advance();
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!("found '{}', expected: ',', or identifier", t.literal()));
                }
            }
        }
    }

    /// The single value after `=`, `!=`, `>`, `<`; nothing at all means "".
    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next() {
            Token::Ident(v) => Ok(v),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOp {
    /// `f=v` and `f==v`.
    Equals,
    NotEquals,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOp,
    /// Unescaped value.
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, actual: &str) -> bool {
        match self.op {
            FieldOp::Equals => actual == self.value,
            FieldOp::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A parsed field selector: ANDed exact-match terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `fieldSelector`. Like Kubernetes, terms are split on unescaped
    /// commas, each at its first `!=`, `==` or `=`, and nothing is trimmed.
    /// Which fields exist is the caller's business (it differs per kind).
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut terms = split_field_terms(s);
        // Kubernetes sorts the raw terms so equal selectors render identically.
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let (field, op, raw) =
                split_field_term(term).ok_or_else(|| format!("invalid selector: '{s}'; can't understand '{term}'"))?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape_field_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` is pinned to with `=`, if any.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }

    /// `lookup` yields the object's value for a field; None compares as "".
    pub fn matches(&self, mut lookup: impl FnMut(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(lookup(&r.field).as_deref().unwrap_or("")))
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Splits on commas that are not preceded by an escaping backslash.
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the leftmost operator; at one position `!=` and `==` win over `=`.
fn split_field_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, value));
            }
        }
    }
    None
}

/// Undoes `\\`, `\,`, `\=` (Kubernetes' escapes) and `\!`; a bare `,` or `=`
/// in a value is an error, as is any other escape or a trailing backslash.
fn unescape_field_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=' | '!') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(format!("invalid field selector: unescaped character in value: '{c}'"));
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Inverse of the unescaping above, emitting only Kubernetes' own escapes.
fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("labels must be an object"),
        }
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn matches(s: &str, l: Value) -> bool {
        sel(s).matches(Some(&labels(l)))
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(parsed) => panic!("{s:?} parsed as {parsed:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   ", "\t\n"] {
            let parsed = sel(s);
            assert!(parsed.is_empty());
            assert!(parsed.matches(None));
            assert!(parsed.matches(Some(&labels(json!({"a": "b"})))));
            assert_eq!(parsed.to_string(), "");
        }
        assert!(LabelSelector::everything().is_empty());
        assert!(LabelSelector::everything().matches(None));
    }

    #[test]
    fn equality_operators() {
        assert!(matches("a=b", json!({"a": "b"})));
        assert!(matches("a==b", json!({"a": "b"})));
        assert!(!matches("a=b", json!({"a": "c"})));
        assert!(!matches("a=b", json!({})));
        assert!(!sel("a=b").matches(None));
        assert!(matches("a!=b", json!({"a": "c"})));
        assert!(!matches("a!=b", json!({"a": "b"})));
        // != matches objects that do not carry the label at all.
        assert!(matches("a!=b", json!({})));
        assert!(sel("a!=b").matches(None));
    }

    #[test]
    fn empty_exact_values() {
        let s = sel("a=");
        assert_eq!(s.requirements()[0].values, vec![""]);
        assert!(s.matches(Some(&labels(json!({"a": ""})))));
        assert!(!s.matches(Some(&labels(json!({"a": "x"})))));
        let s = sel("a=,b");
        assert_eq!(s.to_string(), "a=,b");
        assert_eq!(s.requirements()[1].op, LabelOp::Exists);
    }

    #[test]
    fn set_operators() {
        assert!(matches("env in (prod, dev)", json!({"env": "dev"})));
        assert!(!matches("env in (prod,dev)", json!({"env": "qa"})));
        assert!(!matches("env in (prod)", json!({})));
        assert!(matches("env notin (prod)", json!({"env": "dev"})));
        assert!(!matches("env notin (prod)", json!({"env": "prod"})));
        assert!(matches("env notin (prod)", json!({})));
        assert!(matches("env notin(prod)", json!({})));
        assert_eq!(sel("env in (b,a,b)").to_string(), "env in (a,b)");
    }

    #[test]
    fn set_operators_with_empty_members() {
        assert_eq!(sel("a in ()").requirements()[0].values, vec![""]);
        assert_eq!(sel("a in (x,)").requirements()[0].values, vec!["", "x"]);
        assert_eq!(sel("a in (,x)").requirements()[0].values, vec!["", "x"]);
        assert_eq!(sel("a in (x,,y)").requirements()[0].values, vec!["", "x", "y"]);
        assert!(matches("a in ()", json!({"a": ""})));
    }

    #[test]
    fn keywords_are_plain_words_outside_operator_position() {
        assert!(matches("in", json!({"in": "x"})));
        assert!(matches("notin=in", json!({"notin": "in"})));
        assert!(matches("a in (in,notin)", json!({"a": "notin"})));
    }

    #[test]
    fn existence() {
        assert!(matches("a", json!({"a": ""})));
        assert!(!matches("a", json!({"b": "x"})));
        assert!(!sel("a").matches(None));
        assert!(matches("!a", json!({"b": "x"})));
        assert!(!matches("!a", json!({"a": "x"})));
        assert!(sel("!a").matches(None));
        assert!(matches(" ! a ", json!({})));
        assert_eq!(sel("!a").requirements()[0].op, LabelOp::DoesNotExist);
    }

    #[test]
    fn greater_and_less_than() {
        assert!(matches("a>5", json!({"a": "6"})));
        assert!(!matches("a>5", json!({"a": "5"})));
        assert!(matches("a<5", json!({"a": "-10"})));
        assert!(!matches("a<5", json!({"a": "5"})));
        assert!(!matches("a>5", json!({})));
        // A label that is not an integer never matches.
        assert!(!matches("a>5", json!({"a": "six"})));
        assert!(matches("a > 0 , a < 10", json!({"a": "3"})));
    }

    #[test]
    fn greater_than_needs_an_integer() {
        assert_eq!(
            parse_err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(parse_err("a<1.5").contains("the value must be an integer"));
        assert!(parse_err("a<").contains("the value must be an integer"));
        assert!(parse_err("a>99999999999999999999").contains("must be an integer"));
        assert_eq!(
            parse_err("a>=1"),
            "unable to parse requirement: found '=', expected: identifier"
        );
    }

    #[test]
    fn multiple_requirements_are_anded_and_sorted() {
        let s = sel("z=1, a in (x), !m,b!=2,c>1, d");
        assert_eq!(s.to_string(), "a in (x),b!=2,c>1,d,!m,z=1");
        assert!(s.matches(Some(&labels(json!({"z": "1", "a": "x", "c": "2", "d": ""})))));
        assert!(!s.matches(Some(&labels(json!({"z": "1", "a": "x", "c": "2", "d": "", "m": ""})))));
        assert_eq!(sel(&s.to_string()), s);
        assert_eq!(sel("a==b").to_string(), "a=b");
    }

    #[test]
    fn whitespace_is_tolerated() {
        let s = sel("  a  =  b ,\tc\nin\r( x ,  y )  ");
        assert_eq!(s.to_string(), "a=b,c in (x,y)");
    }

    #[test]
    fn prefixed_keys() {
        assert!(matches(
            "app.kubernetes.io/name=web",
            json!({"app.kubernetes.io/name": "web"})
        ));
        assert!(matches("!example.com/x", json!({})));
    }

    #[test]
    fn invalid_keys_and_values() {
        assert_eq!(
            parse_err("a/b/c=d"),
            "unable to parse requirement: key: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        assert!(parse_err(&format!("{}=b", "k".repeat(64))).contains("name part must be no more than 63 characters"));
        assert!(parse_err("-a").contains("key: Invalid value: \"-a\""));
        let e = parse_err(&format!("a={}", "v".repeat(64)));
        assert!(
            e.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"vvv"),
            "{e}"
        );
        assert!(e.ends_with("must be no more than 63 characters"));
        assert!(parse_err("a=b_").contains("a valid label must be an empty string"));
        assert!(parse_err("a in (ok,-bad)").contains("values[0][a]"));
        assert!(LabelSelector::parse(&format!("{}=v", "k".repeat(63))).is_ok());
        assert!(LabelSelector::parse(&format!("k={}", "v".repeat(63))).is_ok());
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            ("a=b,", "found '', expected: identifier after ','"),
            ("a=b,,c", "found ',', expected: identifier after ','"),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            ("=a", "found '=', expected: !, identifier, or 'end of string'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("!!a", "unable to parse requirement: found '!', expected: identifier"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            (
                "a!b",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
            ("a in b", "unable to parse requirement: found 'b' expected: '('"),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (b,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            ("a in", "unable to parse requirement: found '' expected: '('"),
            ("a===b", "unable to parse requirement: found '=', expected: identifier"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_err(input), want, "input {input:?}");
        }
    }

    #[test]
    fn exact_finds_a_pinned_label_only() {
        let exact = |s: &str| LabelSelector::parse(s).unwrap().exact("a").map(str::to_string);
        assert_eq!(exact("a=x"), Some("x".into()));
        assert_eq!(exact("b=y,a==x"), Some("x".into()));
        assert_eq!(exact("a in (x)"), Some("x".into()));
        assert_eq!(exact("a in (x,y)"), None);
        assert_eq!(exact("a!=x"), None);
        assert_eq!(exact("a"), None);
        assert_eq!(exact("b=x"), None);
        assert_eq!(LabelSelector::nothing().exact("a"), None);
    }

    #[test]
    fn from_json_converts_match_labels_and_expressions() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "owner", "operator": "Exists", "values": []},
            ]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,env notin (prod),owner,tier in (be,fe)");
        assert!(s.matches(Some(&labels(json!({"app": "web", "tier": "fe", "owner": "me"})))));
        assert!(!s.matches(Some(&labels(json!({"app": "web", "tier": "fe"})))));
    }

    #[test]
    fn from_json_empty_and_null() {
        let s = LabelSelector::from_json(&json!({})).unwrap();
        assert!(s.is_empty() && s.matches(None));
        let s = LabelSelector::from_json(&json!({"matchLabels": null, "matchExpressions": []})).unwrap();
        assert!(s.is_empty());
        let s = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(!s.is_empty());
        assert!(!s.matches(None));
        assert!(!s.matches(Some(&labels(json!({"a": "b"})))));
    }

    #[test]
    fn from_json_validates() {
        let err = |v: Value| LabelSelector::from_json(&v).unwrap_err();
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
        );
        assert!(err(json!({"matchLabels": {"bad key": "v"}})).starts_with("key: Invalid value: \"bad key\""));
        assert!(err(json!({"matchLabels": {"k": "bad value"}})).starts_with("values[0][k]: Invalid value"));
        assert!(err(json!({"matchLabels": {"k": 1}})).contains("must be a string"));
        assert!(err(json!({"matchExpressions": {}})).contains("must be a list"));
        assert!(err(json!("a=b")).contains("must be an object"));
        // Several problems in one requirement are reported together.
        let e = err(json!({"matchExpressions": [{"key": "-k", "operator": "NotIn"}]}));
        assert!(e.starts_with("[key: Invalid value: \"-k\""), "{e}");
        assert!(e.contains(", values: Invalid value: []string{}"), "{e}");
    }

    #[test]
    fn label_values_that_are_not_strings() {
        assert!(matches("a=", json!({"a": null})));
        assert!(matches("a", json!({"a": null})));
    }

    // --- field selectors ---

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |f| pairs.iter().find(|(k, _)| *k == f).map(|(_, v)| v.to_string())
    }

    #[test]
    fn field_selector_basics() {
        let s = fsel("metadata.name=web,status.phase!=Running");
        assert_eq!(s.requirements().len(), 2);
        assert!(s.matches(lookup(&[("metadata.name", "web"), ("status.phase", "Pending")])));
        assert!(!s.matches(lookup(&[("metadata.name", "web"), ("status.phase", "Running")])));
        assert!(!s.matches(lookup(&[("metadata.name", "db")])));
        assert_eq!(s.exact("metadata.name"), Some("web"));
        assert_eq!(s.exact("status.phase"), None);
        assert_eq!(fsel("a==b").requirements()[0].op, FieldOp::Equals);
        assert_eq!(fsel("a==b").to_string(), "a=b");
    }

    #[test]
    fn field_selector_empty_matches_everything() {
        for s in ["", ",", ",,"] {
            let parsed = fsel(s);
            assert!(parsed.is_empty());
            assert!(parsed.matches(|_| None));
            assert_eq!(parsed.to_string(), "");
        }
        assert!(FieldSelector::everything().is_empty());
    }

    #[test]
    fn field_selector_missing_field_compares_as_empty() {
        assert!(fsel("spec.nodeName=").matches(|_| None));
        assert!(!fsel("spec.nodeName!=").matches(|_| None));
        assert!(fsel("spec.nodeName!=n1").matches(|_| None));
        assert!(!fsel("spec.nodeName=n1").matches(|_| None));
    }

    #[test]
    fn field_selector_escaping() {
        let s = fsel(r"a=x\,y\=z\\w\!");
        assert_eq!(s.requirements()[0].value, r"x,y=z\w!");
        assert_eq!(s.to_string(), r"a=x\,y\=z\\w!");
        assert_eq!(fsel(&s.to_string()), s);
        let s = fsel(r"a=1\,2,b=3");
        assert_eq!(s.requirements().len(), 2);
        assert_eq!(s.requirements()[0].value, "1,2");
        assert_eq!(s.to_string(), r"a=1\,2,b=3");
    }

    #[test]
    fn field_selector_errors() {
        assert_eq!(
            FieldSelector::parse("a=b,c").unwrap_err(),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: '='"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \"
        );
    }

    #[test]
    fn field_selector_operator_precedence_and_sorting() {
        // The leftmost operator wins; `!=` beats `=` at the same position.
        let s = fsel("a!=b");
        assert_eq!(s.requirements()[0].op, FieldOp::NotEquals);
        let s = fsel("a=!b");
        assert_eq!(s.requirements()[0].value, "!b");
        // Nothing is trimmed, as in Kubernetes.
        assert_eq!(fsel("a = b").requirements()[0].field, "a ");
        assert_eq!(fsel("z=1,a=2").to_string(), "a=2,z=1");
        assert_eq!(fsel("a=1,a!=2").requirements().len(), 2);
        assert_eq!(fsel("m=x,m=y").exact("m"), Some("x"));
        assert!(!fsel("m=x,m=y").matches(lookup(&[("m", "x")])));
    }
}
