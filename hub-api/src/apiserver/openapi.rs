use crate::registry::ResourceKind;
use serde_json::Value;
use std::sync::Arc;
pub fn index(_k: &[Arc<ResourceKind>], _b: &str) -> Value {
    Value::Null
}
pub fn group_version(_k: &[Arc<ResourceKind>], _g: &str, _v: &str) -> Option<Value> {
    None
}
