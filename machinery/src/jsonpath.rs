//! The JSONPath dialect Kubernetes uses for CRD `additionalPrinterColumns`, `kubectl get -o
//! jsonpath=...` and `-o custom-columns`, evaluated over `serde_json` values.
//!
//! Supported, each step applied to every value the previous steps selected:
//!
//! * fields: `.a.b` (the leading dot is optional), `.*` for every member or element,
//!   `\.` to escape a dot inside a name (`.metadata.labels.app\.kubernetes\.io/name`);
//! * brackets: `[0]`, `[-1]` (from the end), slices `[1:3]`, `[::2]`, `[*]`, quoted keys
//!   `['key.with.dots']` / `["x"]`, and unions `[0,2]`, `['a','b']`;
//! * recursive descent `..name`;
//! * filters `[?(@.type=="Ready")]` with `==`, `!=`, `<`, `<=`, `>`, `>=` against string,
//!   number, boolean or null literals or another `@` path, and `[?(@.x)]` for existence;
//! * an optional `$` / `@` at the start, and an optional `{...}` around the whole path, the
//!   way kubectl templates write it.
//!
//! Evaluation behaves like kube-apiserver's printer columns (`AllowMissingKeys(true)`):
//! anything missing, out of range or of the wrong shape selects nothing instead of failing.

use std::cmp::Ordering;

use serde_json::Value;

/// A parsed JSONPath expression; parse once, evaluate against many objects.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A member of an object.
    Field(String),
    /// Every member of an object or element of a list.
    Wildcard,
    /// The value itself and every container below it (`..`).
    Recursive,
    /// An element of a list, negative counting from the end.
    Index(i64),
    /// Elements `start..end` of a list, every `step`-th (step > 0).
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    },
    /// The concatenated results of several bracket selectors.
    Union(Vec<Step>),
    /// The elements of a list (or members of an object) for which the filter holds.
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    /// `[?(@.x)]`: the path selects something.
    Exists(Vec<Step>),
    Compare(Operand, Op, Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// A path relative to the element being filtered.
    Path(Vec<Step>),
    Literal(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl JsonPath {
    /// Parses `path`. Accepts `.a.b`, `a.b`, `.a[0]`, `.a[-1]`, `.a[*].b`, `.a['key.with.dots']`,
    /// `.a["x"]`, escaped dots (`.a.b\.c`), filters (`[?(@.type=="Ready")]`), recursive descent
    /// (`..name`), optionally wrapped in `{...}`.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        let invalid = |detail: String| format!("invalid JSONPath {path:?}: {detail}");
        let mut text = path.trim();
        if let Some(inner) = text.strip_prefix('{') {
            text = inner
                .strip_suffix('}')
                .ok_or_else(|| invalid("unclosed '{'".into()))?
                .trim();
        }
        if text.is_empty() {
            return Err(invalid("empty path".into()));
        }
        let steps = parse_steps(text, 0).map_err(invalid)?;
        Ok(JsonPath { steps })
    }

    /// All values the path selects, in document order; empty when nothing matches, and
    /// when evaluating would select more than [`MAX_SELECTED`] values along the way.
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut budget = MAX_SELECTED;
        eval(&self.steps, obj, &mut budget)
    }

    /// The field names when the path is nothing but plain fields (`.metadata.name` gives
    /// `["metadata", "name"]`), `None` for anything with brackets, wildcards or filters.
    pub(crate) fn field_path(&self) -> Option<Vec<&str>> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Field(name) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

struct Cursor<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Cursor<'s> {
    fn new(src: &'s str) -> Self {
        Cursor { src, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.bump() {
            Some(got) if got == c => Ok(()),
            Some(got) => Err(format!(
                "expected {c:?} at offset {}, found {got:?}",
                self.pos - got.len_utf8()
            )),
            None => Err(format!("expected {c:?}, found the end of the path")),
        }
    }
}

/// How deeply filters may nest (`[?(@.a[?(@.b)])]` is two). Parsing and evaluation recurse
/// once per level, and paths come from CRDs and field selectors: without a bound, a path
/// of a few thousand nested filters overflows a 2 MiB thread stack and aborts the process.
const MAX_FILTER_NESTING: usize = 32;

/// Parses a whole path (no `{}`): an optional `$`/`@`, then steps until the end. `nesting`
/// is the number of filters the path is inside of.
fn parse_steps(text: &str, nesting: usize) -> Result<Vec<Step>, String> {
    let mut c = Cursor::new(text);
    if !c.eat('$') {
        c.eat('@');
    }
    let mut steps = Vec::new();
    if matches!(c.peek(), Some(ch) if ch != '.' && ch != '[') {
        steps.push(parse_field(&mut c)?);
    }
    while let Some(ch) = c.peek() {
        match ch {
            '.' => {
                c.bump();
                if c.eat('.') {
                    steps.push(Step::Recursive);
                    match c.peek() {
                        None => return Err("'..' must be followed by a field or bracket".into()),
                        Some('[') => {}
                        Some('.') => return Err(format!("unexpected '.' at offset {}", c.pos)),
                        Some(_) => steps.push(parse_field(&mut c)?),
                    }
                } else if !matches!(c.peek(), None | Some('[')) {
                    steps.push(parse_field(&mut c)?);
                }
            }
            '[' => {
                c.bump();
                steps.push(parse_bracket(&mut c, nesting)?);
            }
            other => return Err(format!("unexpected {other:?} at offset {}", c.pos)),
        }
    }
    Ok(steps)
}

/// A field name up to the next unescaped `.` or `[`; `*` alone is the wildcard.
fn parse_field(c: &mut Cursor) -> Result<Step, String> {
    let start = c.pos;
    let mut name = String::new();
    let mut escaped = false;
    while let Some(ch) = c.peek() {
        match ch {
            '.' | '[' => break,
            '\\' => {
                c.bump();
                name.push(c.bump().ok_or("dangling '\\' at the end of the path")?);
                escaped = true;
            }
            ']' | '{' | '}' | ',' | '(' | ')' => {
                return Err(format!("unexpected {ch:?} at offset {}", c.pos));
            }
            _ if ch.is_whitespace() => {
                return Err(format!("unexpected whitespace at offset {}", c.pos));
            }
            _ => {
                c.bump();
                name.push(ch);
            }
        }
    }
    if name.is_empty() {
        return Err(format!("empty field name at offset {start}"));
    }
    if name == "*" && !escaped {
        return Ok(Step::Wildcard);
    }
    Ok(Step::Field(name))
}

/// What follows a `[`: a filter, `*`, or a comma-separated list of keys, indices and slices.
fn parse_bracket(c: &mut Cursor, nesting: usize) -> Result<Step, String> {
    let open = c.pos - 1;
    c.skip_ws();
    if c.eat('?') {
        if nesting >= MAX_FILTER_NESTING {
            return Err(format!(
                "filters nested more than {MAX_FILTER_NESTING} deep at offset {open}"
            ));
        }
        c.skip_ws();
        c.expect('(')?;
        let start = c.pos;
        let end = find_filter_end(c.src, start).ok_or_else(|| format!("unterminated filter at offset {open}"))?;
        c.pos = end + 1;
        c.skip_ws();
        c.expect(']')?;
        return Ok(Step::Filter(Box::new(parse_filter(&c.src[start..end], nesting + 1)?)));
    }
    if c.eat('*') {
        c.skip_ws();
        c.expect(']')?;
        return Ok(Step::Wildcard);
    }
    let mut items = Vec::new();
    loop {
        c.skip_ws();
        match c.peek() {
            Some('\'' | '"') => items.push(Step::Field(parse_quoted(c)?)),
            Some(_) => {
                let start = c.pos;
                while !matches!(c.peek(), None | Some(',' | ']')) {
                    c.bump();
                }
                items.push(parse_index(c.src[start..c.pos].trim())?);
            }
            None => return Err(format!("unterminated '[' at offset {open}")),
        }
        c.skip_ws();
        match c.bump() {
            Some(',') => continue,
            Some(']') => break,
            Some(other) => {
                return Err(format!("unexpected {other:?} at offset {}", c.pos - other.len_utf8()));
            }
            None => return Err(format!("unterminated '[' at offset {open}")),
        }
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Step::Union(items)
    })
}

/// A `'...'` or `"..."` string; a backslash makes the next character literal.
fn parse_quoted(c: &mut Cursor) -> Result<String, String> {
    let start = c.pos;
    let quote = c.bump().ok_or("expected a quoted string")?;
    let mut out = String::new();
    loop {
        match c.bump() {
            None => return Err(format!("unterminated string at offset {start}")),
            Some('\\') => out.push(
                c.bump()
                    .ok_or_else(|| format!("unterminated string at offset {start}"))?,
            ),
            Some(ch) if ch == quote => return Ok(out),
            Some(ch) => out.push(ch),
        }
    }
}

/// `3`, `-1`, `1:3`, `:2`, `::2`, `1:`.
fn parse_index(text: &str) -> Result<Step, String> {
    let number = |s: &str| -> Result<Option<i64>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<i64>()
            .map(Some)
            .map_err(|_| format!("invalid array index {text:?}"))
    };
    if !text.contains(':') {
        return match number(text)? {
            Some(i) => Ok(Step::Index(i)),
            None => Err("empty array index".into()),
        };
    }
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(format!("invalid array slice {text:?}"));
    }
    let step = match parts.get(2) {
        Some(s) => number(s)?.unwrap_or(1),
        None => 1,
    };
    if step <= 0 {
        return Err(format!("slice step must be > 0 in {text:?}"));
    }
    Ok(Step::Slice {
        start: number(parts[0])?,
        end: number(parts[1])?,
        step,
    })
}

/// The byte offset of the `)` closing a filter opened just before `start`.
fn find_filter_end(src: &str, start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote = None;
    let mut chars = src[start..].char_indices();
    while let Some((i, ch)) = chars.next() {
        match quote {
            Some(q) => {
                if ch == '\\' {
                    chars.next();
                } else if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '\'' | '"' => quote = Some(ch),
                '(' | '[' => depth += 1,
                ')' if depth == 0 => return Some(start + i),
                ')' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    None
}

/// The text between `[?(` and `)]`.
fn parse_filter(text: &str, nesting: usize) -> Result<Filter, String> {
    let text = text.trim();
    let Some((at, op_text)) = find_operator(text) else {
        return match parse_operand(text, nesting)? {
            Operand::Path(steps) => Ok(Filter::Exists(steps)),
            Operand::Literal(_) => Err(format!("filter {text:?} has no path to test")),
        };
    };
    let op = match op_text {
        "==" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        other => return Err(format!("unrecognized filter operator {other:?}")),
    };
    let left = parse_operand(text[..at].trim(), nesting)?;
    let right = parse_operand(text[at + op_text.len()..].trim(), nesting)?;
    Ok(Filter::Compare(left, op, right))
}

/// The first run of comparison characters outside quotes and brackets.
fn find_operator(text: &str) -> Option<(usize, &str)> {
    let is_op = |ch: char| matches!(ch, '=' | '!' | '<' | '>');
    let mut depth = 0usize;
    let mut quote = None;
    let mut chars = text.char_indices();
    while let Some((i, ch)) = chars.next() {
        match quote {
            Some(q) => {
                if ch == '\\' {
                    chars.next();
                } else if ch == q {
                    quote = None;
                }
            }
            None => match ch {
                '\'' | '"' => quote = Some(ch),
                '[' | '(' => depth += 1,
                ']' | ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 && is_op(ch) => {
                    let len = text[i..].find(|c: char| !is_op(c)).unwrap_or(text.len() - i);
                    return Some((i, &text[i..i + len]));
                }
                _ => {}
            },
        }
    }
    None
}

fn parse_operand(text: &str, nesting: usize) -> Result<Operand, String> {
    match text.chars().next() {
        None => Err("missing filter operand".into()),
        Some('@' | '$' | '.' | '[') => Ok(Operand::Path(parse_steps(text, nesting)?)),
        Some('\'' | '"') => {
            let mut c = Cursor::new(text);
            let s = parse_quoted(&mut c)?;
            c.skip_ws();
            match c.peek() {
                None => Ok(Operand::Literal(Value::String(s))),
                Some(_) => Err(format!("unexpected text after string in {text:?}")),
            }
        }
        Some(_) => match text {
            "true" => Ok(Operand::Literal(Value::Bool(true))),
            "false" => Ok(Operand::Literal(Value::Bool(false))),
            "null" => Ok(Operand::Literal(Value::Null)),
            _ => {
                if let Ok(i) = text.parse::<i64>() {
                    return Ok(Operand::Literal(Value::from(i)));
                }
                let numeric = text
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
                match text.parse::<f64>() {
                    Ok(f) if numeric && f.is_finite() => Ok(Operand::Literal(Value::from(f))),
                    _ => Err(format!("invalid filter operand {text:?}")),
                }
            }
        },
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

/// Most values one evaluation may select, summed over its steps and the paths of its
/// filters. Each `..` step can multiply the selection by the depth of the object, so
/// without a bound `..*..*..*..*..*..*` on a 250-byte object selects billions of values
/// and exhausts memory; no useful path comes near the bound.
pub const MAX_SELECTED: usize = 1 << 20;

/// Evaluates `steps`, drawing what each step selects from `budget`: a path that exhausts
/// it selects nothing.
fn eval<'a>(steps: &[Step], root: &'a Value, budget: &mut usize) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            let before = next.len();
            apply(step, value, &mut next, budget);
            let selected = next.len() - before;
            if selected > *budget {
                *budget = 0;
                return Vec::new();
            }
            *budget -= selected;
        }
        if next.is_empty() {
            return next;
        }
        current = next;
    }
    current
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>, budget: &mut usize) {
    match step {
        Step::Field(name) => {
            if let Some(v) = value.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Step::Wildcard => children(value, out),
        Step::Recursive => descend(value, out),
        Step::Index(i) => {
            if let Some(list) = value.as_array() {
                let len = list.len() as i64;
                let at = if *i < 0 { i + len } else { *i };
                if (0..len).contains(&at) {
                    out.push(&list[at as usize]);
                }
            }
        }
        Step::Slice { start, end, step } => {
            if let Some(list) = value.as_array() {
                let len = list.len() as i64;
                let clamp = |i: i64| if i < 0 { (i + len).max(0) } else { i.min(len) };
                let start = start.map_or(0, clamp);
                let end = end.map_or(len, clamp);
                if start < end {
                    // `step_by` rather than adding the step by hand: a step near i64::MAX
                    // (`[1::9223372036854775807]`) would overflow past the end.
                    let step = usize::try_from(*step).unwrap_or(usize::MAX);
                    out.extend(list[start as usize..end as usize].iter().step_by(step));
                }
            }
        }
        Step::Union(items) => {
            for item in items {
                apply(item, value, out, budget);
            }
        }
        Step::Filter(filter) => match value {
            Value::Array(list) => out.extend(list.iter().filter(|v| holds(filter, v, budget))),
            Value::Object(map) => out.extend(map.values().filter(|v| holds(filter, v, budget))),
            _ => {}
        },
    }
}

fn children<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(list) => out.extend(list.iter()),
        Value::Object(map) => out.extend(map.values()),
        _ => {}
    }
}

/// The value and every non-empty container below it, depth first (as Kubernetes' `..`).
fn descend<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    let start = out.len();
    children(value, out);
    if out.len() == start {
        return;
    }
    let kids: Vec<&'a Value> = out.drain(start..).collect();
    out.push(value);
    for kid in kids {
        descend(kid, out);
    }
}

fn holds(filter: &Filter, element: &Value, budget: &mut usize) -> bool {
    match filter {
        Filter::Exists(steps) => !eval(steps, element, budget).is_empty(),
        Filter::Compare(left, op, right) => match (single(left, element, budget), single(right, element, budget)) {
            (Some(l), Some(r)) => compare(l, *op, r),
            _ => false,
        },
    }
}

/// The operand's value; paths must select exactly one value to be compared.
fn single<'a>(operand: &'a Operand, element: &'a Value, budget: &mut usize) -> Option<&'a Value> {
    match operand {
        Operand::Literal(v) => Some(v),
        Operand::Path(steps) => match eval(steps, element, budget).as_slice() {
            [one] => Some(one),
            _ => None,
        },
    }
}

fn compare(left: &Value, op: Op, right: &Value) -> bool {
    let ordering = match (left, right) {
        (Value::Number(l), Value::Number(r)) => match (l.as_i64(), r.as_i64()) {
            (Some(l), Some(r)) => Some(l.cmp(&r)),
            _ => l.as_f64().zip(r.as_f64()).and_then(|(l, r)| l.partial_cmp(&r)),
        },
        (Value::String(l), Value::String(r)) => Some(l.cmp(r)),
        (Value::Bool(l), Value::Bool(r)) if matches!(op, Op::Eq | Op::Ne) => Some(l.cmp(r)),
        (Value::Null, Value::Null) if matches!(op, Op::Eq | Op::Ne) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, obj: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap_or_else(|e| panic!("{e}"))
            .find(obj)
            .into_iter()
            .cloned()
            .collect()
    }

    fn pod() -> Value {
        json!({
            "metadata": {
                "name": "web-1",
                "labels": {"app.kubernetes.io/name": "web", "tier": "front"},
                "annotations": {"key.with.dots": "dotted", "x": "ex"},
            },
            "spec": {
                "containers": [
                    {"name": "app", "image": "nginx", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
                    {"name": "sidecar", "image": "envoy", "ports": [{"containerPort": 9901}]},
                    {"name": "logger", "image": "fluent"},
                ],
                "replicas": 3,
            },
            "status": {
                "conditions": [
                    {"type": "Initialized", "status": "True", "count": 1},
                    {"type": "Ready", "status": "False", "count": 5},
                    {"type": "Synced", "status": "True", "count": 7.5},
                ],
            },
        })
    }

    #[test]
    fn plain_fields_with_and_without_leading_dot() {
        let obj = pod();
        assert_eq!(find(".metadata.name", &obj), vec![json!("web-1")]);
        assert_eq!(find("metadata.name", &obj), vec![json!("web-1")]);
        assert_eq!(find("$.metadata.name", &obj), vec![json!("web-1")]);
        assert_eq!(find("{.metadata.name}", &obj), vec![json!("web-1")]);
        assert_eq!(find(" { .spec.replicas } ", &obj), vec![json!(3)]);
        assert_eq!(find(".", &obj), vec![obj.clone()]);
        assert!(find(".metadata.missing", &obj).is_empty());
        assert!(find(".metadata.name.deeper", &obj).is_empty());
        assert!(find(".spec.containers.name", &obj).is_empty());
    }

    #[test]
    fn indices_and_slices() {
        let obj = pod();
        assert_eq!(find(".spec.containers[0].name", &obj), vec![json!("app")]);
        assert_eq!(find(".spec.containers[-1].name", &obj), vec![json!("logger")]);
        assert_eq!(find(".spec.containers[ 1 ].image", &obj), vec![json!("envoy")]);
        assert!(find(".spec.containers[3].name", &obj).is_empty());
        assert!(find(".spec.containers[-4].name", &obj).is_empty());
        assert!(find(".metadata[0]", &obj).is_empty());
        assert_eq!(
            find(".spec.containers[0:2].name", &obj),
            vec![json!("app"), json!("sidecar")]
        );
        assert_eq!(
            find(".spec.containers[1:].name", &obj),
            vec![json!("sidecar"), json!("logger")]
        );
        assert_eq!(
            find(".spec.containers[::2].name", &obj),
            vec![json!("app"), json!("logger")]
        );
        assert_eq!(
            find(".spec.containers[-2:].name", &obj),
            vec![json!("sidecar"), json!("logger")]
        );
        assert_eq!(find(".spec.containers[0:100].name", &obj).len(), 3);
        assert!(find(".spec.containers[2:1].name", &obj).is_empty());
        // Steps too large to add to an index select the first element only.
        assert_eq!(
            find(".spec.containers[1::9223372036854775807].name", &obj),
            vec![json!("sidecar")]
        );
        assert_eq!(
            find(".spec.containers[-1::9223372036854775807].name", &obj),
            vec![json!("logger")]
        );
        assert_eq!(
            find(".spec.containers[0,2].name", &obj),
            vec![json!("app"), json!("logger")]
        );
    }

    #[test]
    fn wildcards_and_recursion() {
        let obj = pod();
        assert_eq!(
            find(".spec.containers[*].name", &obj),
            vec![json!("app"), json!("sidecar"), json!("logger")]
        );
        assert_eq!(find(".spec.containers.*.image", &obj).len(), 3);
        // Elements without the field are skipped, not errors.
        assert_eq!(
            find(".spec.containers[*].ports[*].containerPort", &obj),
            vec![json!(80), json!(443), json!(9901)]
        );
        assert_eq!(find(".metadata.labels[*]", &obj).len(), 2);
        assert_eq!(find("..containerPort", &obj), vec![json!(80), json!(443), json!(9901)]);
        assert_eq!(
            find("$..name", &obj),
            vec![json!("web-1"), json!("app"), json!("sidecar"), json!("logger")]
        );
        assert_eq!(
            find(".spec..ports[0].containerPort", &obj),
            vec![json!(80), json!(9901)]
        );
    }

    #[test]
    fn quoted_and_escaped_keys() {
        let obj = pod();
        assert_eq!(
            find(".metadata.annotations['key.with.dots']", &obj),
            vec![json!("dotted")]
        );
        assert_eq!(find(".metadata.annotations[\"x\"]", &obj), vec![json!("ex")]);
        assert_eq!(find(".metadata['annotations']['x']", &obj), vec![json!("ex")]);
        assert_eq!(
            find(".metadata.labels.app\\.kubernetes\\.io/name", &obj),
            vec![json!("web")]
        );
        assert_eq!(
            find(".metadata.labels['app\\.kubernetes\\.io/name']", &obj),
            vec![json!("web")]
        );
        assert_eq!(
            find(".metadata.labels['tier','app.kubernetes.io/name']", &obj),
            vec![json!("front"), json!("web")]
        );
        assert!(find(".metadata.labels.app.kubernetes.io/name", &obj).is_empty());
        let odd = json!({"it's": {"a]b": 1}, "*": 2});
        assert_eq!(find("['it\\'s'][\"a]b\"]", &odd), vec![json!(1)]);
        assert_eq!(find(".\\*", &odd), vec![json!(2)]);
    }

    #[test]
    fn filters() {
        let obj = pod();
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status", &obj),
            vec![json!("False")]
        );
        assert_eq!(
            find("{.status.conditions[?(@.type=='Ready')].status}", &obj),
            vec![json!("False")]
        );
        assert_eq!(
            find(".status.conditions[?( @.type == \"Ready\" )].count", &obj),
            vec![json!(5)]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!=\"Ready\")].type", &obj),
            vec![json!("Initialized"), json!("Synced")]
        );
        assert_eq!(
            find(".status.conditions[?(@.count>3)].type", &obj),
            vec![json!("Ready"), json!("Synced")]
        );
        assert_eq!(
            find(".status.conditions[?(@.count>=5)].type", &obj),
            vec![json!("Ready"), json!("Synced")]
        );
        assert_eq!(
            find(".status.conditions[?(@.count<5)].type", &obj),
            vec![json!("Initialized")]
        );
        assert_eq!(find(".status.conditions[?(@.count<=7.5)].type", &obj).len(), 3);
        assert_eq!(find(".status.conditions[?(@.count>-1e3)].type", &obj).len(), 3);
        assert_eq!(
            find(".status.conditions[?(@.type<\"R\")].type", &obj),
            vec![json!("Initialized")]
        );
        assert!(find(".status.conditions[?(@.type==\"Missing\")].status", &obj).is_empty());
        // Existence, and comparisons against another path of the same element.
        assert_eq!(
            find(".spec.containers[?(@.ports)].name", &obj),
            vec![json!("app"), json!("sidecar")]
        );
        assert_eq!(find(".spec.containers[?(@.name==@.name)].name", &obj).len(), 3);
        // Elements lacking the field never match, not even `!=`.
        assert_eq!(
            find(".spec.containers[?(@.ports[0].containerPort!=80)].name", &obj),
            vec![json!("sidecar")]
        );
        // Nested filters and quoted operators.
        let nested = json!({"items": [
            {"name": "a", "conds": [{"type": "Ready", "status": "True"}]},
            {"name": "b", "conds": [{"type": "Ready", "status": "False"}]},
            {"name": "c=d", "flag": true, "n": null},
        ]});
        assert_eq!(
            find(
                ".items[?(@.conds[?(@.type==\"Ready\")].status==\"True\")].name",
                &nested
            ),
            vec![json!("a")]
        );
        assert_eq!(find(".items[?(@.name==\"c=d\")].flag", &nested), vec![json!(true)]);
        assert_eq!(find(".items[?(@.flag==true)].name", &nested), vec![json!("c=d")]);
        assert_eq!(find(".items[?(@.n==null)].name", &nested), vec![json!("c=d")]);
        assert_eq!(find(".items[?(@.name!=5)].name", &nested).len(), 3);
        assert!(find(".items[?(@.name>5)].name", &nested).is_empty());
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in [
            "",
            "{}",
            "{.a",
            ".a[",
            ".a[0",
            ".a[x]",
            ".a[]",
            ".a['x]",
            ".a[?(@.x==\"y\"]",
            ".a[?(@.x=\"y\")]",
            ".a[?(@.x==y)]",
            ".a[?(\"y\")]",
            ".a[::0]",
            ".a[1:2:3:4]",
            ".a b",
            ".a]",
            "..",
            ".a\\",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let err = JsonPath::parse(".a[x]").unwrap_err();
        assert!(err.contains(".a[x]"), "{err}");
    }

    #[test]
    fn filters_nest_only_so_deep() {
        let nested = |n: usize| format!(".a{}.b{}", "[?(@".repeat(n), ")]".repeat(n));
        let at_limit = JsonPath::parse(&nested(MAX_FILTER_NESTING)).expect("nesting up to the limit parses");
        // Each filter looks one list further down, the last for `b`.
        let mut lists = json!({"b": 1});
        for _ in 0..MAX_FILTER_NESTING {
            lists = json!([lists]);
        }
        assert_eq!(at_limit.find(&json!({ "a": lists })).len(), 1);
        // Far deeper than that overflowed a 2 MiB stack before the limit; now it is refused
        // after a few levels, with room to spare on a small stack.
        let err = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || JsonPath::parse(&nested(10_000)).unwrap_err())
            .expect("thread starts")
            .join()
            .expect("no stack overflow");
        assert!(err.contains("filters nested more than 32 deep"), "{err}");
        assert!(JsonPath::parse(&nested(MAX_FILTER_NESTING + 1)).is_err());
    }

    #[test]
    fn paths_selecting_too_much_select_nothing() {
        // Every `..*` selects each value below each value selected so far: on 127 nested
        // lists, some 126^k / k! values for k of them, billions for k = 6.
        let mut deep = json!(1);
        for _ in 0..126 {
            deep = json!([deep]);
        }
        assert!(find("..*..*..*..*..*..*", &deep).is_empty());

        // At most the budget is selected, over all steps and filters.
        let within = |path: &str, obj: &Value, mut budget: usize| {
            let steps = JsonPath::parse(path).expect("path parses").steps;
            eval(&steps, obj, &mut budget).len()
        };
        // `..` 126 lists, `*` their 126 items, `..` 7875 lists below those, `*` their items.
        let all = 126 + 126 + 7875 + 7875;
        assert_eq!(within("..*..*", &deep, all), 7875);
        assert_eq!(within("..*..*", &deep, all - 1), 0);
        // The two elements; per element, `..` 126 lists and `*` their 126 items.
        let two = json!([deep.clone(), deep.clone()]);
        assert_eq!(within("[?(@..*)]", &two, 2 + 2 * 252), 2);
        assert_eq!(within("[?(@..*)]", &two, 2 + 2 * 252 - 1), 0);
    }

    #[test]
    fn field_path_of_simple_paths() {
        let p = JsonPath::parse(".metadata.labels.app\\.kubernetes\\.io/name").unwrap();
        assert_eq!(
            p.field_path(),
            Some(vec!["metadata", "labels", "app.kubernetes.io/name"])
        );
        assert_eq!(
            JsonPath::parse("{.metadata.name}").unwrap().field_path(),
            Some(vec!["metadata", "name"])
        );
        assert_eq!(JsonPath::parse(".a[0]").unwrap().field_path(), None);
        assert_eq!(JsonPath::parse(".a.*").unwrap().field_path(), None);
    }
}
