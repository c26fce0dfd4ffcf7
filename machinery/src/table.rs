//! `meta.k8s.io/v1` Table responses, what `kubectl get` asks for with
//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`.
//!
//! Cells are rendered the way kube-apiserver's table convertor for custom resources does:
//! the first column is the object's name, `date` columns become a human-readable age,
//! `integer`/`number`/`boolean` columns carry typed JSON values and `string` columns text;
//! a missing value is `null` (kubectl prints `<none>`). Built-in kinds use the same renderer
//! for their printer columns, plus entry counts ([`CellSource::Count`]/[`CellSource::CountAll`]).
//!
//! The column JSONPaths are parsed once per [`TableConvertor`], not per row: build one per
//! request (or per watch) and render every object with it. The free functions are shorthands
//! that build a convertor for one call.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::jsonpath::JsonPath;

/// Where a printer column's value comes from.
#[derive(Debug, Clone)]
pub enum CellSource {
    /// A JSONPath into the object, as in `additionalPrinterColumns`.
    JsonPath(String),
    /// The number of entries of the map or list at this JSONPath (e.g. ConfigMap DATA).
    Count(Vec<&'static str>),
    /// Sum of entry counts of several fields (ConfigMap counts `data` and `binaryData`).
    CountAll(Vec<Vec<&'static str>>),
    /// Computed by code from the whole object, as kube-apiserver's built-in printers compute
    /// cells such as a Pod's `READY` (`1/2`) that no JSONPath expresses.
    Computed(fn(&Value) -> Value),
}

/// One column of `kubectl get` output (`metav1.TableColumnDefinition` plus its source).
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    /// OpenAPI type: string, integer, number, boolean, date.
    pub type_: String,
    pub format: String,
    pub description: String,
    /// 0 for default output, >0 only with `-o wide`.
    pub priority: i64,
    pub source: CellSource,
}

impl PrinterColumn {
    pub fn path(name: &str, type_: &str, json_path: &str, priority: i64) -> Self {
        PrinterColumn {
            name: name.into(),
            type_: type_.into(),
            format: String::new(),
            description: String::new(),
            priority,
            source: CellSource::JsonPath(json_path.into()),
        }
    }

    pub fn age() -> Self {
        PrinterColumn {
            description: "CreationTimestamp is a timestamp representing the server time when this object was created."
                .into(),
            ..Self::path("Age", "date", ".metadata.creationTimestamp", 0)
        }
    }

    /// The columns of a custom resource version: its name, then its
    /// `additionalPrinterColumns`, or its age when it declares none (as kube-apiserver does).
    pub fn for_custom_resource(additional: &Value) -> Vec<PrinterColumn> {
        let mut columns = vec![PrinterColumn {
            format: "name".into(),
            description: "Name must be unique within a namespace.".into(),
            ..PrinterColumn::path("Name", "string", ".metadata.name", 0)
        }];
        match additional.as_array() {
            Some(extra) if !extra.is_empty() => columns.extend(extra.iter().map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().into(),
                type_: c["type"].as_str().unwrap_or("string").into(),
                format: c["format"].as_str().unwrap_or_default().into(),
                description: c["description"].as_str().unwrap_or_default().into(),
                priority: c["priority"].as_i64().unwrap_or(0),
                source: CellSource::JsonPath(c["jsonPath"].as_str().unwrap_or_default().into()),
            })),
            _ => columns.push(PrinterColumn::age()),
        }
        columns
    }
}

/// The `includeObject` query parameter: what each row carries besides its cells.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum IncludeObject {
    /// No `object` in the rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter; absent or empty means `Metadata`. Values are case-sensitive,
    /// as in kube-apiserver.
    pub fn parse(s: Option<&str>) -> Result<IncludeObject, String> {
        match s.unwrap_or_default() {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!(
                "includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
            )),
        }
    }
}

/// The printer columns of one kind, compiled: build once (per list, or per watch — it owns
/// its data, so a watch can keep it), render many rows.
#[derive(Debug, Clone)]
pub struct TableConvertor {
    columns: Vec<PrinterColumn>,
    builtin: bool,
    cells: Vec<Cell>,
}

/// How one column's cell is computed.
#[derive(Debug, Clone)]
enum Cell {
    /// The object's name (always a string, empty when missing).
    Name,
    /// A JSONPath rendered per the column type; `None` when the path does not parse (every
    /// cell is then null, as kube-apiserver leaves cells it cannot compute empty).
    Path(Option<JsonPath>, ColumnType),
    /// Total number of entries of the maps/lists at these field paths.
    Count(Vec<Vec<&'static str>>),
    Computed(fn(&Value) -> Value),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ColumnType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    /// Anything else: kube-apiserver renders no value for it.
    Other,
}

impl ColumnType {
    fn of(type_: &str) -> ColumnType {
        match type_ {
            "string" => ColumnType::String,
            "integer" => ColumnType::Integer,
            "number" => ColumnType::Number,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            _ => ColumnType::Other,
        }
    }
}

impl TableConvertor {
    /// Compiles a kind's printer columns (each JSONPath parsed once). Built-in kinds render
    /// metadata-only rows as kube-apiserver's built-in printers do.
    pub fn new(columns: &[PrinterColumn], builtin: bool) -> Self {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, column)| match &column.source {
                CellSource::JsonPath(path) => {
                    let parsed = JsonPath::parse(path).ok();
                    let is_name =
                        parsed.as_ref().and_then(JsonPath::field_path).as_deref() == Some(&["metadata", "name"][..]);
                    if i == 0 && is_name {
                        Cell::Name
                    } else {
                        Cell::Path(parsed, ColumnType::of(&column.type_))
                    }
                }
                CellSource::Count(path) => Cell::Count(vec![path.clone()]),
                CellSource::CountAll(paths) => Cell::Count(paths.clone()),
                CellSource::Computed(f) => Cell::Computed(*f),
            })
            .collect();
        TableConvertor {
            columns: columns.to_vec(),
            builtin,
            cells,
        }
    }

    /// `columnDefinitions`: one `metav1.TableColumnDefinition` per printer column.
    pub(crate) fn column_definitions(&self) -> Value {
        Value::Array(
            self.columns
                .iter()
                .enumerate()
                .map(|(i, c)| self.column_definition(i, c))
                .collect(),
        )
    }

    fn column_definition(&self, index: usize, column: &PrinterColumn) -> Value {
        let mut description = column.description.clone();
        // kube-apiserver describes undocumented CRD columns by their path.
        if let CellSource::JsonPath(path) = &column.source
            && description.is_empty()
            && !self.builtin
            && index > 0
        {
            description = format!("Custom resource definition column (in JSONPath format): {path}");
        }
        json!({
            "name": column.name,
            "type": column.type_,
            "format": column.format,
            "description": description,
            "priority": column.priority,
        })
    }

    /// The cells of one object, one per column.
    pub fn cells(&self, obj: &Value, now: Timestamp) -> Vec<Value> {
        self.cells.iter().map(|cell| render(cell, obj, now)).collect()
    }

    /// One row: `{"cells": [...], "object": ...}`, `object` per `include`.
    pub fn row(&self, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
        let mut row = Map::new();
        row.insert("cells".into(), Value::Array(self.cells(obj, now)));
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                let metadata = match obj.get("metadata") {
                    Some(m @ Value::Object(_)) => m.clone(),
                    _ => Value::Object(Map::new()),
                };
                row.insert(
                    "object".into(),
                    json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": metadata,
                    }),
                );
            }
            IncludeObject::Object => {
                row.insert("object".into(), obj.clone());
            }
        }
        Value::Object(row)
    }

    /// A whole `Table` of `objects`, ages relative to `now`.
    pub fn table<'a>(
        &self,
        objects: impl IntoIterator<Item = &'a Value>,
        include: IncludeObject,
        list_meta: Value,
        with_columns: bool,
        now: Timestamp,
    ) -> Value {
        let columns = if with_columns {
            self.column_definitions()
        } else {
            Value::Array(Vec::new())
        };
        let rows: Vec<Value> = objects.into_iter().map(|o| self.row(o, include, now)).collect();
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "columnDefinitions": columns,
            "rows": rows,
        })
    }
}

fn render(cell: &Cell, obj: &Value, now: Timestamp) -> Value {
    match cell {
        Cell::Name => Value::String(obj["metadata"]["name"].as_str().unwrap_or_default().to_string()),
        Cell::Path(None, _) => Value::Null,
        Cell::Path(Some(path), ColumnType::String) => {
            let texts: Vec<String> = path.find(obj).into_iter().filter(|v| !v.is_null()).map(text).collect();
            if texts.is_empty() {
                Value::Null
            } else {
                Value::String(texts.join(","))
            }
        }
        Cell::Path(Some(path), type_) => match path.find(obj).first() {
            Some(value) => typed_cell(*type_, value, now),
            None => Value::Null,
        },
        Cell::Count(paths) => {
            let total: usize = paths.iter().map(|p| entries(obj, p)).sum();
            Value::from(total as u64)
        }
        Cell::Computed(f) => f(obj),
    }
}

/// Number of entries of the map or list at `path` (0 when missing or not a collection).
fn entries(obj: &Value, path: &[&str]) -> usize {
    let mut value = obj;
    for field in path {
        match value.get(field) {
            Some(v) => value = v,
            None => return 0,
        }
    }
    match value {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// A non-string column's cell: a JSON value of the column's type, or null.
fn typed_cell(type_: ColumnType, value: &Value, now: Timestamp) -> Value {
    match (type_, value) {
        (ColumnType::Integer, Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            // Truncated toward zero, saturating, like Go's int64(float64).
            (None, None, Some(f)) => Value::from(f as i64),
            _ => Value::Null,
        },
        (ColumnType::Number, Value::Number(n)) => Value::Number(n.clone()),
        (ColumnType::Boolean, Value::Bool(b)) => Value::Bool(*b),
        (ColumnType::Date, Value::String(s)) => Value::String(human_age(s, now)),
        (ColumnType::String, v) if !v.is_null() => Value::String(text(v)),
        _ => Value::Null,
    }
}

/// How a `string` column shows a value: strings as-is, numbers and booleans as Go prints them,
/// maps and lists as compact JSON (as kubectl's JSONPath printer does).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => go_float(f),
            _ => n.to_string(),
        },
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            go_json(value, &mut out);
            out
        }
    }
}

/// The age of an RFC 3339 `timestamp` at `now`, as kube-apiserver renders `date` cells:
/// `<unknown>` for an empty or zero time, `<invalid>` when it does not parse.
pub fn human_age(timestamp: &str, now: Timestamp) -> String {
    if timestamp.is_empty() || timestamp == "null" {
        return "<unknown>".into();
    }
    match parse_rfc3339(timestamp) {
        None => "<invalid>".into(),
        // Go's zero time.Time, 0001-01-01T00:00:00Z.
        Some(t) if t.as_second() == -62_135_596_800 && t.subsec_nanosecond() == 0 => "<unknown>".into(),
        Some(t) => crate::duration::human(now.as_nanosecond() - t.as_nanosecond()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, as Go's `time.Parse(time.RFC3339, ...)` accepts.
fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| b.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19)
        // Go has no leap seconds.
        && &s[17..19] < "60";
    if !shape {
        return None;
    }
    let mut at = 19;
    let mut fraction = "";
    if matches!(b.get(at), Some(b'.' | b',')) {
        let start = at + 1;
        let len = b[start..].iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Go accepts any number of digits and keeps nanoseconds.
        fraction = &s[start..start + len.min(9)];
        at = start + len;
    }
    let offset = &s[at..];
    let offset_ok = offset == "Z"
        || (offset.len() == 6
            && matches!(offset.as_bytes()[0], b'+' | b'-')
            && digits(at + 1..at + 3)
            && offset.as_bytes()[3] == b':'
            && digits(at + 4..at + 6));
    if !offset_ok {
        return None;
    }
    let normalized = if fraction.is_empty() {
        format!("{}{offset}", &s[..19])
    } else {
        format!("{}.{fraction}{offset}", &s[..19])
    };
    normalized.parse().ok()
}

/// The shortest decimal digits of a finite, non-zero `f` and its exponent:
/// `f == 0.d1d2d3... * 10^point`.
fn shortest_digits(f: f64) -> (String, i32) {
    let formatted = format!("{:e}", f.abs());
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse::<i32>().unwrap_or(0) + 1)
}

/// `d.ddde±XX` with at least two exponent digits, as Go's `%e`-style output.
fn exponent_form(digits: &str, point: i32) -> String {
    let exp = point - 1;
    let mut out = digits[..1].to_string();
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push_str(&format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()));
    out
}

/// Plain decimal notation of `0.digits * 10^point`.
fn fixed_form(digits: &str, point: i32) -> String {
    if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    }
}

/// A float as Go's `fmt.Print` writes it (`%g` with the shortest precision): exponent form
/// below 1e-4 and from 1e6 on (`1.5e+06`), plain decimal otherwise.
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let (digits, point) = shortest_digits(f);
    let exp = point - 1;
    let body = if !(-4..6).contains(&exp) {
        exponent_form(&digits, point)
    } else {
        fixed_form(&digits, point)
    };
    if f < 0.0 { format!("-{body}") } else { body }
}

/// A float as Go's `encoding/json` writes it: plain decimal, exponent form below 1e-6 and
/// from 1e21 on (with `e-7` rather than `e-07`).
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        let body = if abs == 0.0 {
            "0".to_string()
        } else {
            let (digits, point) = shortest_digits(f);
            fixed_form(&digits, point)
        };
        return if f < 0.0 { format!("-{body}") } else { body };
    }
    let (digits, point) = shortest_digits(f);
    let mut body = exponent_form(&digits, point);
    if let Some(i) = body.find("e-0") {
        body.remove(i + 2);
    }
    if f < 0.0 { format!("-{body}") } else { body }
}

/// Compact JSON as Go's `json.Marshal` writes a decoded object: keys sorted, HTML-sensitive
/// characters escaped.
fn go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => out.push_str(&go_json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(key, out);
                out.push(':');
                go_json(item, out);
            }
            out.push('}');
        }
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", ch as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    /// The table of a custom resource with these `additionalPrinterColumns`.
    fn crd_kind(columns: Value) -> TableConvertor {
        TableConvertor::new(&PrinterColumn::for_custom_resource(&columns), false)
    }

    /// The table of a built-in kind with exactly these columns.
    fn builtin_kind(columns: Vec<PrinterColumn>) -> TableConvertor {
        TableConvertor::new(&columns, true)
    }

    fn column_definitions(table: &TableConvertor) -> Value {
        table.column_definitions()
    }

    fn row(table: &TableConvertor, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
        table.row(obj, include, now)
    }

    fn table<'a>(
        table: &TableConvertor,
        objects: impl IntoIterator<Item = &'a Value>,
        include: IncludeObject,
        list_meta: Value,
        with_columns: bool,
    ) -> Value {
        table.table(objects, include, list_meta, with_columns, Timestamp::now())
    }

    fn widget_columns() -> Value {
        json!([
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status",
             "description": "Whether the widget is ready"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Selector", "type": "string", "jsonPath": ".spec.selector", "priority": 1},
            {"name": "Hosts", "type": "string", "jsonPath": ".spec.hosts[*]", "format": "hostname"},
        ])
    }

    fn widget() -> Value {
        json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {
                "name": "w1",
                "namespace": "default",
                "uid": "0b6c1f6e",
                "resourceVersion": "7",
                "creationTimestamp": "2024-05-01T11:54:50Z",
                "labels": {"app": "w"},
            },
            "spec": {
                "replicas": 3,
                "paused": false,
                "selector": {"matchLabels": {"app": "w"}},
                "hosts": ["a.example.com", "b.example.com"],
            },
            "status": {
                "ratio": 0.75,
                "conditions": [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False"}],
            },
        })
    }

    #[test]
    fn include_object_parameter() {
        assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("")), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("Metadata")), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
        assert_eq!(IncludeObject::parse(Some("Object")), Ok(IncludeObject::Object));
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::parse(Some("object")),
            Err("includeObject: Invalid value: \"object\": must be 'Metadata', 'Object', 'None', or empty".into())
        );
    }

    #[test]
    fn ages_of_timestamps() {
        let now = now();
        assert_eq!(human_age("2024-05-01T11:54:50Z", now), "5m10s");
        assert_eq!(human_age("2024-05-01T11:54:50.999999999Z", now), "5m9s");
        assert_eq!(human_age("2024-05-01T11:54:50.1234567891234Z", now), "5m9s");
        assert_eq!(human_age("2024-05-01T13:54:50+02:00", now), "5m10s");
        assert_eq!(human_age("2024-05-01T02:00:00-05:00", now), "5h");
        assert_eq!(human_age("2024-04-28T08:00:00Z", now), "3d4h");
        assert_eq!(human_age("2024-05-01T12:00:01Z", now), "0s");
        assert_eq!(human_age("2024-05-01T12:00:05Z", now), "<invalid>");
        assert_eq!(human_age("", now), "<unknown>");
        assert_eq!(human_age("null", now), "<unknown>");
        assert_eq!(human_age("0001-01-01T00:00:00Z", now), "<unknown>");
        for bad in [
            "yesterday",
            "2024-05-01",
            "2024-05-01 11:54:50Z",
            "2024-05-01T11:54:50",
            "2024-05-01T11:54:50.Z",
            "2024-05-01T11:54:50+0200",
            "2024-13-01T11:54:50Z",
            "2024-05-01T11:54:60Z",
        ] {
            assert_eq!(human_age(bad, now), "<invalid>", "{bad}");
        }
    }

    #[test]
    fn custom_resource_table() {
        let kind = crd_kind(widget_columns());
        let w1 = widget();
        let w2 = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w2", "namespace": "default", "creationTimestamp": "2024-04-28T08:00:00Z"},
        });
        let convertor = kind.clone();
        let full = convertor.table(
            [&w1, &w2],
            IncludeObject::None,
            json!({"resourceVersion": "42", "continue": "abc"}),
            true,
            now(),
        );
        let path_desc = |p: &str| format!("Custom resource definition column (in JSONPath format): {p}");
        assert_eq!(
            full,
            json!({
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": "42", "continue": "abc"},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name",
                     "description": "Name must be unique within a namespace.", "priority": 0},
                    {"name": "Ready", "type": "string", "format": "",
                     "description": "Whether the widget is ready", "priority": 0},
                    {"name": "Replicas", "type": "integer", "format": "",
                     "description": path_desc(".spec.replicas"), "priority": 0},
                    {"name": "Ratio", "type": "number", "format": "",
                     "description": path_desc(".status.ratio"), "priority": 0},
                    {"name": "Paused", "type": "boolean", "format": "",
                     "description": path_desc(".spec.paused"), "priority": 0},
                    {"name": "Age", "type": "date", "format": "",
                     "description": path_desc(".metadata.creationTimestamp"), "priority": 0},
                    {"name": "Selector", "type": "string", "format": "",
                     "description": path_desc(".spec.selector"), "priority": 1},
                    {"name": "Hosts", "type": "string", "format": "hostname",
                     "description": path_desc(".spec.hosts[*]"), "priority": 0},
                ],
                "rows": [
                    {"cells": ["w1", "False", 3, 0.75, false, "5m10s",
                               "{\"matchLabels\":{\"app\":\"w\"}}", "a.example.com,b.example.com"]},
                    {"cells": ["w2", null, null, null, null, "3d4h", null, null]},
                ],
            })
        );
        // Watch events after the first carry no column definitions.
        let next = convertor.table([&w1], IncludeObject::None, json!({}), false, now());
        assert_eq!(next["columnDefinitions"], json!([]));
        assert_eq!(next["rows"][0]["cells"][0], json!("w1"));
        // The free function renders the same cells (ages relative to the real clock).
        let free = table(&kind, [&w2], IncludeObject::None, json!({}), true);
        assert_eq!(free["columnDefinitions"], full["columnDefinitions"]);
        assert_eq!(free["rows"][0]["cells"][0], json!("w2"));
        assert!(free["rows"][0]["cells"][5].as_str().unwrap().ends_with('d'));
        assert_eq!(column_definitions(&kind), full["columnDefinitions"]);
    }

    #[test]
    fn convertor_is_owned_and_reusable() {
        let kind = crd_kind(widget_columns());
        let convertor = kind.clone();
        let expected = column_definitions(&kind);
        drop(kind);
        let w1 = widget();
        for _ in 0..3 {
            let t = convertor.table([&w1], IncludeObject::None, json!({}), true, now());
            assert_eq!(t["columnDefinitions"], expected);
            assert_eq!(t["rows"][0]["cells"][1], json!("False"));
        }
        assert_eq!(
            convertor.cells(&w1, now()),
            row(&crd_kind(widget_columns()), &w1, IncludeObject::None, now())["cells"]
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn crd_without_printer_columns_shows_name_and_age() {
        let kind = crd_kind(Value::Null);
        assert_eq!(
            column_definitions(&kind),
            json!([
                {"name": "Name", "type": "string", "format": "name",
                 "description": "Name must be unique within a namespace.", "priority": 0},
                {"name": "Age", "type": "date", "format": "",
                 "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
                 "priority": 0},
            ])
        );
        let obj = json!({"metadata": {"creationTimestamp": "2024-05-01T09:00:00Z"}});
        assert_eq!(
            row(&kind, &obj, IncludeObject::None, now()),
            json!({"cells": ["", "3h"]})
        );
        let no_time = json!({"metadata": {"name": "x"}});
        assert_eq!(
            row(&kind, &no_time, IncludeObject::None, now()),
            json!({"cells": ["x", null]})
        );
    }

    #[test]
    fn rows_carry_the_object_per_include_object() {
        let kind = crd_kind(widget_columns());
        let w1 = widget();
        let none = row(&kind, &w1, IncludeObject::None, now());
        assert!(none.get("object").is_none());
        assert_eq!(none["cells"][0], json!("w1"));
        let meta = row(&kind, &w1, IncludeObject::Metadata, now());
        assert_eq!(
            meta["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": w1["metadata"].clone()})
        );
        assert_eq!(meta["cells"], none["cells"]);
        let full = row(&kind, &w1, IncludeObject::Object, now());
        assert_eq!(full["object"], w1);
        let bare = row(&kind, &json!({}), IncludeObject::Metadata, now());
        assert_eq!(bare["object"]["metadata"], json!({}));
        let t = table(&kind, [&w1], IncludeObject::Metadata, json!({}), true);
        assert_eq!(t["rows"][0]["object"]["kind"], json!("PartialObjectMetadata"));
    }

    #[test]
    fn typed_cells_follow_the_column_type() {
        let kind = crd_kind(json!([
            {"name": "I", "type": "integer", "jsonPath": ".v"},
            {"name": "N", "type": "number", "jsonPath": ".v"},
            {"name": "B", "type": "boolean", "jsonPath": ".v"},
            {"name": "D", "type": "date", "jsonPath": ".v"},
            {"name": "S", "type": "string", "jsonPath": ".v"},
            {"name": "First", "type": "integer", "jsonPath": ".list[*]"},
            {"name": "Odd", "type": "object", "jsonPath": ".v"},
            {"name": "Broken", "type": "string", "jsonPath": ".v[?(@.x=\"y\")]"},
        ]));
        let cells = |v: Value| {
            let obj = json!({"metadata": {"name": "o"}, "v": v, "list": [4, 5]});
            row(&kind, &obj, IncludeObject::None, now())["cells"].clone()
        };
        assert_eq!(cells(json!(7)), json!(["o", 7, 7, null, null, "7", 4, null, null]));
        assert_eq!(
            cells(json!(7.9)),
            json!(["o", 7, 7.9, null, null, "7.9", 4, null, null])
        );
        assert_eq!(
            cells(json!(-7.9)),
            json!(["o", -7, -7.9, null, null, "-7.9", 4, null, null])
        );
        assert_eq!(
            cells(json!(true)),
            json!(["o", null, null, true, null, "true", 4, null, null])
        );
        assert_eq!(
            cells(json!("3")),
            json!(["o", null, null, null, "<invalid>", "3", 4, null, null])
        );
        assert_eq!(
            cells(json!("2024-05-01T11:00:00Z")),
            json!(["o", null, null, null, "60m", "2024-05-01T11:00:00Z", 4, null, null])
        );
        assert_eq!(
            cells(json!(null)),
            json!(["o", null, null, null, null, null, 4, null, null])
        );
        assert_eq!(
            cells(json!([1, "a"])),
            json!(["o", null, null, null, null, "[1,\"a\"]", 4, null, null])
        );
        // Unparsable paths still get a column definition.
        assert_eq!(column_definitions(&kind).as_array().unwrap().len(), 9);
    }

    #[test]
    fn string_cells_print_like_go() {
        let kind = crd_kind(json!([{"name": "S", "type": "string", "jsonPath": ".v"}]));
        let cell = |v: Value| row(&kind, &json!({"v": v}), IncludeObject::None, now())["cells"][1].clone();
        assert_eq!(cell(json!("plain")), json!("plain"));
        assert_eq!(cell(json!("")), json!(""));
        assert_eq!(cell(json!(12345678901i64)), json!("12345678901"));
        assert_eq!(cell(json!(u64::MAX)), json!("18446744073709551615"));
        assert_eq!(cell(json!(5.0)), json!("5"));
        assert_eq!(cell(json!(1.5)), json!("1.5"));
        assert_eq!(cell(json!(-0.25)), json!("-0.25"));
        assert_eq!(cell(json!(123456.5)), json!("123456.5"));
        assert_eq!(cell(json!(1e6)), json!("1e+06"));
        assert_eq!(cell(json!(1234567.5)), json!("1.2345675e+06"));
        assert_eq!(cell(json!(0.0001)), json!("0.0001"));
        assert_eq!(cell(json!(0.00001)), json!("1e-05"));
        assert_eq!(cell(json!(1e300)), json!("1e+300"));
        assert_eq!(
            cell(json!({"b": 1, "a": [1.5, 5.0, 1e-7, 1e21, 100000000.0, "<&>\n\u{1}\u{2028}é", null, false]})),
            json!(
                "{\"a\":[1.5,5,1e-7,1e+21,100000000,\"\\u003c\\u0026\\u003e\\n\\u0001\\u2028é\",null,false],\"b\":1}"
            )
        );
    }

    #[test]
    fn builtin_columns_counts_and_first_columns() {
        let count = |name: &str, paths: Vec<Vec<&'static str>>| PrinterColumn {
            source: CellSource::CountAll(paths),
            ..PrinterColumn::path(name, "integer", "", 0)
        };
        let name = PrinterColumn {
            format: "name".into(),
            ..PrinterColumn::path("Name", "string", ".metadata.name", 0)
        };
        let configmaps = builtin_kind(vec![
            name.clone(),
            count("Data", vec![vec!["data"], vec!["binaryData"]]),
            PrinterColumn {
                source: CellSource::Count(vec!["spec", "items"]),
                ..PrinterColumn::path("Items", "integer", "", 0)
            },
            PrinterColumn::age(),
        ]);
        let cm = json!({
            "metadata": {"name": "cfg", "creationTimestamp": "2024-05-01T11:59:15Z"},
            "data": {"a": "1", "b": "2"},
            "binaryData": {"c": "AA=="},
            "spec": {"items": [1, 2, 3, 4]},
        });
        assert_eq!(
            row(&configmaps, &cm, IncludeObject::None, now())["cells"],
            json!(["cfg", 3, 4, "45s"])
        );
        let empty = json!({"metadata": {"name": "empty"}, "data": "not a map"});
        assert_eq!(
            row(&configmaps, &empty, IncludeObject::None, now())["cells"],
            json!(["empty", 0, 0, null])
        );
        // Built-in columns without descriptions are not given the CRD default.
        assert_eq!(column_definitions(&configmaps)[1]["description"], json!(""));

        // A first column that is not the name renders like any other.
        let events = builtin_kind(vec![
            PrinterColumn::path("Last Seen", "date", ".lastTimestamp", 0),
            PrinterColumn::path("Object", "string", ".involvedObject.name", 0),
        ]);
        let ev = json!({"metadata": {"name": "ev1"}, "lastTimestamp": "2024-05-01T11:00:00Z", "involvedObject": {"name": "pod-1"}});
        assert_eq!(
            row(&events, &ev, IncludeObject::None, now())["cells"],
            json!(["60m", "pod-1"])
        );
        let no_time = json!({"metadata": {"name": "ev2"}, "lastTimestamp": null});
        assert_eq!(
            row(&events, &no_time, IncludeObject::None, now())["cells"],
            json!([null, null])
        );

        // Several matches are joined with ",".
        let bindings = builtin_kind(vec![
            name,
            PrinterColumn::path("Users", "string", ".subjects[?(@.kind==\"User\")].name", 1),
            PrinterColumn::path("Groups", "string", ".subjects[?(@.kind==\"Group\")].name", 1),
        ]);
        let rb = json!({
            "metadata": {"name": "rb"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "ns"},
                {"kind": "User", "name": "bob"},
            ],
        });
        assert_eq!(
            row(&bindings, &rb, IncludeObject::None, now())["cells"],
            json!(["rb", "alice,bob", null])
        );
    }
}
