//! LIST: one page of a collection, now or as of a revision, as objects, a Table or metadata.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::context::Ctx;
use super::filter::{Filter, decode_continue, encode_continue};
use super::internal;
use crate::apiserver::body::Representation;
use crate::apiserver::query::ResourceVersionMatch;
use crate::apiserver::response;
use crate::tenancy::ClusterScope;
use faros_machinery::status::{ApiError, ApiResult, Reason};
use faros_machinery::table;
use faros_storage::Object;

pub(super) fn list(ctx: &Ctx) -> ApiResult<Response> {
    let filter = Filter::for_request(ctx)?;
    let prefix = ctx
        .kind
        .collection_prefix(ctx.cluster.one().map(|c| c.name.as_str()), ctx.req.namespace.as_deref());
    check_list_revision(ctx)?;
    let (snapshot, start_after) = match &ctx.query.continue_token {
        Some(token) => {
            let (rv, start) = decode_continue(token, &prefix)?;
            (Some(rv), Some(start))
        }
        None => match (ctx.query.resource_version_match, ctx.query.revision()?) {
            (Some(ResourceVersionMatch::Exact), Some(rv)) => (Some(rv), None),
            _ => (None, None),
        },
    };
    let limit = ctx.query.limit;
    // Who shares what is decided now, even for a page of an older snapshot.
    let visible = match ctx.cluster {
        ClusterScope::All => ctx.scope.visible_clusters(&ctx.hub.cache, None),
        ClusterScope::One(_) => None,
    };
    let admits = |o: &Object| visible.as_ref().is_none_or(|v| v.admits(&o.key)) && filter.matches(o);
    let (items, revision, more) = match filter
        .exact_name()
        .filter(|_| ctx.cluster != ClusterScope::All && (ctx.req.namespace.is_some() || !ctx.kind.namespaced))
    {
        Some(name) => {
            let items: Vec<Arc<Object>> = ctx
                .hub
                .cache
                .get(&format!("{prefix}{name}"))
                .filter(|o| admits(o))
                .into_iter()
                .collect();
            (items, ctx.hub.cache.revision(), false)
        }
        None => match snapshot {
            // Continued pages (and Exact reads) come from the first page's snapshot.
            Some(rv) => ctx
                .hub
                .cache
                .list_at(&prefix, start_after.as_deref(), limit, rv, admits)
                .map_err(|_| {
                    ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    )
                })?,
            None => ctx.hub.cache.list(&prefix, start_after.as_deref(), limit, admits),
        },
    };
    let mut list_meta = Map::new();
    list_meta.insert("resourceVersion".into(), revision.to_string().into());
    if more && let Some(last) = items.last() {
        list_meta.insert("continue".into(), encode_continue(revision, &last.key, &prefix).into());
    }
    if ctx.representation == Representation::Table {
        let include =
            table::IncludeObject::parse(ctx.query.include_object.as_deref()).map_err(ApiError::bad_request)?;
        let values: Vec<Value> = items.iter().map(|o| ctx.served(o)).collect();
        let body = ctx.kind.table_convertor().table(
            values.iter(),
            include,
            Value::Object(list_meta),
            true,
            jiff::Timestamp::now(),
        );
        return Ok(response::json(StatusCode::OK, &body));
    }
    // Items are written straight into the response: the cached JSON of each as it is,
    // unless the request wants metadata only or the kind shows a projection.
    let size: usize = items.iter().map(|o| o.json().len() + 1).sum();
    let mut out = Vec::with_capacity(256 + size);
    let (list_kind, api_version) = if ctx.representation == Representation::Metadata {
        (
            "PartialObjectMetadataList".to_string(),
            METADATA_API_VERSION.to_string(),
        )
    } else {
        (ctx.kind.list_kind.clone(), ctx.kind.api_version())
    };
    out.extend_from_slice(b"{\"kind\":");
    serde_json::to_writer(&mut out, &list_kind).map_err(internal)?;
    out.extend_from_slice(b",\"apiVersion\":");
    serde_json::to_writer(&mut out, &api_version).map_err(internal)?;
    out.extend_from_slice(b",\"metadata\":");
    serde_json::to_writer(&mut out, &list_meta).map_err(internal)?;
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if ctx.representation == Representation::Metadata {
            serde_json::to_writer(&mut out, &partial_metadata(&ctx.served(item))).map_err(internal)?;
        } else if let Some(projected) = ctx.kind.strategy.project(item) {
            serde_json::to_writer(&mut out, &projected).map_err(internal)?;
        } else {
            out.extend_from_slice(item.json());
        }
    }
    out.extend_from_slice(b"]}");
    Ok(response::bytes(StatusCode::OK, out, "application/json"))
}

pub(super) const METADATA_API_VERSION: &str = "meta.k8s.io/v1";

/// An object as a metadata-only client (client-go's metadata informers) asks for it.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": METADATA_API_VERSION, "metadata": obj["metadata"]})
}

/// `resourceVersion` + `resourceVersionMatch` on a list: the cache is always current and can
/// roll back to any revision in its window, so only a revision from the future is refused
/// here (one older than the window is 410 when the list is served).
pub(super) fn check_list_revision(ctx: &Ctx) -> ApiResult<()> {
    let requested = ctx.query.revision()?;
    let current = ctx.hub.cache.revision();
    match (ctx.query.resource_version_match, requested) {
        (Some(ResourceVersionMatch::Exact), None) => Err(ApiError::bad_request(
            "resourceVersionMatch=Exact requires a non-zero resourceVersion",
        )),
        (_, Some(rv)) if rv > current => {
            let mut err = ApiError::new(
                Reason::Timeout,
                format!("Too large resource version: {rv}, current: {current}"),
            );
            err.retry_after = Some(1);
            Err(err)
        }
        _ => Ok(()),
    }
}
