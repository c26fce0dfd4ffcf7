//! Rendering values the way Go / kube-apiserver prints them.

use std::fmt::Write as _;

use serde_json::{Number, Value};

use super::validate::{NumVal, num_val};

/// Go's `strconv.Quote` (and `%q`).
pub(super) use crate::validation::go_quote as quote;

/// Go's `%v` of a float64: the shortest representation, in exponent form when
/// the decimal exponent is below -4 or at least 6 (`1e+06`, `1.5e-07`).
pub(super) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// `%v` of a number decoded by kube-apiserver (int64 or float64).
pub(super) fn num_repr(n: &Number) -> String {
    match num_val(n) {
        NumVal::Int(i) => i.to_string(),
        NumVal::Float(f) => go_float(f),
    }
}

/// How a field error prints its bad value (`field.Error.ErrorBody`).
pub(super) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => num_repr(n),
        Value::String(s) => quote(s),
        Value::Array(_) | Value::Object(_) => go_sharp(v),
    }
}

/// Go's `%#v` of an unstructured value.
pub(super) fn go_sharp(v: &Value) -> String {
    let mut out = String::new();
    write_go_sharp(v, &mut out);
    out
}

fn write_go_sharp(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("interface {}(nil)"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => out.push_str(&num_repr(n)),
        Value::String(s) => out.push_str(&quote(s)),
        Value::Array(items) => {
            out.push_str("[]interface {}{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_go_sharp(item, out);
            }
            out.push('}');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[string]interface {}{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(k));
                out.push(':');
                write_go_sharp(&map[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

/// `%#v` of a `[]string`.
pub(super) fn go_string_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Go's `json.Marshal` of an unstructured value (sorted keys, Go number style).
pub(super) fn go_json(v: &Value) -> String {
    match v {
        Value::Number(n) => match num_val(n) {
            NumVal::Int(i) => i.to_string(),
            NumVal::Float(f) => {
                let abs = f.abs();
                if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                    let sci = format!("{f:e}");
                    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
                    let exp: i32 = exp.parse().unwrap_or(0);
                    let sign = if exp < 0 { '-' } else { '+' };
                    format!("{mantissa}e{sign}{:02}", exp.abs())
                } else {
                    format!("{f}")
                }
            }
        },
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_json).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), go_json(&map[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn go_style_rendering() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_value(&json!(null)), "\"null\"");
        assert_eq!(go_value(&json!([1, "a"])), "[]interface {}{1, \"a\"}");
        assert_eq!(go_json(&json!({"b": 1.0, "a": [2.5]})), "{\"a\":[2.5],\"b\":1}");
    }
}
