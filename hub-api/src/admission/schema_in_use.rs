//! The in-use finalizer of an APIResourceSchema belongs to the hub.

use serde_json::Value;

use super::{Context, Plugin};
use crate::auth::rbac;
use faros_api::apis::SCHEMA_IN_USE_FINALIZER;
use faros_machinery::object;
use faros_machinery::status::ApiError;

/// Only the hub lets a schema in use go: removing its in-use finalizer by hand would take
/// the resource from under every binding that serves it.
pub(super) struct SchemaInUse;

impl Plugin for SchemaInUse {
    fn validate(&self, ctx: &Context<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        match old {
            Some(old) if ctx.is(faros_api::apis::GROUP, "apiresourceschemas") && ctx.subresource.is_none() => {
                check(ctx, obj, old)
            }
            _ => Ok(()),
        }
    }
}

fn check(ctx: &Context<'_>, obj: &Value, old: &Value) -> Result<(), ApiError> {
    let held = |o: &Value| object::finalizers(o).iter().any(|f| f == SCHEMA_IN_USE_FINALIZER);
    if ctx.user.is_master() || !held(old) || held(obj) {
        return Ok(());
    }
    Err(rbac::forbidden_on(
        faros_api::apis::GROUP,
        "apiresourceschemas",
        object::name(obj),
        &format!(
            "the hub removes the {} finalizer once no APIBinding serves this schema",
            SCHEMA_IN_USE_FINALIZER
        ),
    ))
}
