//! The query parameters of resource requests, decoded and checked once.

use faros_machinery::status::{ApiError, ApiResult};
use faros_storage::Revision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    NotOlderThan,
    Exact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: usize,
    pub continue_token: Option<String>,
    /// `None` when absent or empty.
    pub resource_version: Option<String>,
    pub resource_version_match: Option<ResourceVersionMatch>,
    pub watch: bool,
    pub timeout_seconds: Option<u64>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    pub force: bool,
    pub propagation_policy: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub orphan_dependents: Option<bool>,
    pub include_object: Option<String>,
}

fn parse_bool(name: &str, value: &str) -> ApiResult<bool> {
    match value {
        "" | "true" | "1" | "True" => Ok(true),
        "false" | "0" | "False" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value {value:?} for query parameter {name}"
        ))),
    }
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let mut q = Query::default();
        let Some(raw) = raw else { return Ok(q) };
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let value = value.as_ref();
            match key.as_ref() {
                "labelSelector" => q.label_selector = Some(value.to_string()).filter(|s| !s.is_empty()),
                "fieldSelector" => q.field_selector = Some(value.to_string()).filter(|s| !s.is_empty()),
                "limit" => {
                    q.limit = value
                        .parse::<i64>()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit {value:?}")))?
                        .max(0) as usize
                }
                "continue" => q.continue_token = Some(value.to_string()).filter(|s| !s.is_empty()),
                "resourceVersion" => q.resource_version = Some(value.to_string()).filter(|s| !s.is_empty()),
                "resourceVersionMatch" => {
                    q.resource_version_match = match value {
                        "" => None,
                        "NotOlderThan" => Some(ResourceVersionMatch::NotOlderThan),
                        "Exact" => Some(ResourceVersionMatch::Exact),
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "invalid resourceVersionMatch {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                            )));
                        }
                    }
                }
                "watch" => q.watch = parse_bool("watch", value)?,
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(
                        value
                            .parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {value:?}")))?,
                    )
                }
                "allowWatchBookmarks" => q.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", value)?,
                "sendInitialEvents" => q.send_initial_events = Some(parse_bool("sendInitialEvents", value)?),
                "dryRun" => match value {
                    "All" => q.dry_run = true,
                    "" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "invalid dryRun {other:?}: supported values: \"All\""
                        )));
                    }
                },
                "fieldManager" => q.field_manager = Some(value.to_string()).filter(|s| !s.is_empty()),
                "fieldValidation" => {
                    q.field_validation = match value {
                        "Ignore" => FieldValidation::Ignore,
                        "Warn" | "" => FieldValidation::Warn,
                        "Strict" => FieldValidation::Strict,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "fieldValidation {other:?} is invalid: supported values: \"Ignore\", \"Strict\", \"Warn\""
                            )));
                        }
                    }
                }
                "force" => q.force = parse_bool("force", value)?,
                "propagationPolicy" => q.propagation_policy = Some(parse_propagation(value)?),
                "gracePeriodSeconds" => {
                    q.grace_period_seconds = Some(
                        value
                            .parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {value:?}")))?,
                    )
                }
                "orphanDependents" => q.orphan_dependents = Some(parse_bool("orphanDependents", value)?),
                "includeObject" => q.include_object = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(q)
    }

    /// The resourceVersion parameter as a revision; "0" and absent are None.
    pub fn revision(&self) -> ApiResult<Option<Revision>> {
        parse_revision(self.resource_version.as_deref())
    }
}

pub fn parse_propagation(value: &str) -> ApiResult<Propagation> {
    match value {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::bad_request(format!(
            "propagationPolicy {other:?} is invalid: supported values: \"Background\", \"Foreground\", \"Orphan\""
        ))),
    }
}

pub fn parse_revision(value: Option<&str>) -> ApiResult<Option<Revision>> {
    match value {
        None | Some("") | Some("0") => Ok(None),
        Some(v) => v
            .parse::<Revision>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {v:?}"))),
    }
}
