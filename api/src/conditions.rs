//! Status conditions, shaped like `metav1.Condition`, with helpers to set them the way
//! controllers must: the transition time changes only when the status does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type in CamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `.metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn new(type_: &str, status: bool, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    pub fn unknown(type_: &str, reason: &str, message: &str) -> Condition {
        Condition {
            status: "Unknown".into(),
            ..Condition::new(type_, false, reason, message)
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Sets `condition` in `conditions`, keeping the old transition time when the status did not
/// change. Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition, now: &str) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            condition.last_transition_time = if existing.status == condition.status {
                existing.last_transition_time.clone()
            } else {
                Some(now.to_string())
            };
            if *existing == condition {
                return false;
            }
            *existing = condition;
            true
        }
        None => {
            condition.last_transition_time = Some(now.to_string());
            conditions.push(condition);
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut list = Vec::new();
        assert!(set_condition(&mut list, Condition::new("Ready", true, "Up", ""), "t1"));
        assert!(!set_condition(&mut list, Condition::new("Ready", true, "Up", ""), "t2"));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t1"));
        assert!(set_condition(
            &mut list,
            Condition::new("Ready", true, "Still", "m"),
            "t3"
        ));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t1"));
        assert!(set_condition(
            &mut list,
            Condition::new("Ready", false, "Down", ""),
            "t4"
        ));
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t4"));
    }
}
