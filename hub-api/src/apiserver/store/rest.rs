//! Requests answered by the authenticator and authorizer rather than by storage:
//! `SelfSubjectAccessReview`, `SelfSubjectRulesReview`, `SubjectAccessReview` and
//! `LocalSubjectAccessReview` (authorization.k8s.io/v1), `TokenReview` (authentication.k8s.io/v1),
//! `SelfSubjectReview` (authentication.k8s.io/v1 and v1beta1) and `TokenRequest`
//! (`POST .../serviceaccounts/<name>/token`).
//!
//! The review kinds are ordinary entries of the catalog — so discovery lists them and kubectl
//! finds them — declared with [`Rest`], as the ServiceAccount `token` subresource is; the
//! store answers their creates here. Nothing here is stored.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Ctx, Scope};
use crate::apiserver::request::Verb;
use crate::apiserver::{body, response};
use crate::auth::rbac::{Attributes, ResourceAttributes, Rule};
use crate::auth::serviceaccount::{BoundObject, DEFAULT_EXPIRATION, MIN_EXPIRATION, TokenSpec};
use crate::registry::Rest;
use faros_machinery::status::{ApiError, ApiResult, FieldError};

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// Answers a request for a kind or subresource declared as `rest`: creates only, by the
/// requester in its own workspace.
pub(super) async fn serve(ctx: &Ctx, rest: Rest, body: axum::body::Body) -> ApiResult<Response> {
    let named = ctx.req.name.is_some();
    if ctx.req.verb != Verb::Create || named != (rest == Rest::TokenRequest) {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    if !matches!(ctx.scope, Scope::Direct) {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method through an APIExport view",
        ));
    }
    let obj = read(ctx, body).await?;
    match rest {
        Rest::TokenRequest => token_request(ctx, obj),
        Rest::SelfSubjectAccessReview => access_review(ctx, obj, &ctx.user, "SelfSubjectAccessReview"),
        Rest::SubjectAccessReview => subject_access_review(ctx, obj, "SubjectAccessReview"),
        Rest::LocalSubjectAccessReview => subject_access_review(ctx, obj, "LocalSubjectAccessReview"),
        Rest::TokenReview => token_review(ctx, obj),
        Rest::SelfSubjectRulesReview => Ok(rules_review(ctx, obj)),
        Rest::SelfSubjectReview => Ok(self_review(ctx)),
    }
}

async fn read(ctx: &Ctx, body: axum::body::Body) -> ApiResult<Value> {
    let bytes = body::read(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    faros_machinery::decode::decode_object(&bytes, &body::content_type(&ctx.headers))
}

/// A review's answer: the question and its status.
fn created(kind: &str, api_version: &str, spec: Value, status: Value) -> Value {
    json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    })
}

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Whether `user` may do what the review's `spec` describes, in the requester's workspace.
fn access_review(ctx: &Ctx, obj: Value, user: &crate::auth::User, kind: &str) -> ApiResult<Response> {
    let spec = obj["spec"].clone();
    let invalid = |field: &str, message: &str| {
        ApiError::invalid(kind, AUTHORIZATION, "", vec![FieldError::invalid(field, message)])
    };
    let attrs = if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let namespace = string(&r["namespace"]);
        // A local review asks about its own namespace only.
        if kind == "LocalSubjectAccessReview" && Some(namespace.as_str()) != ctx.req.namespace.as_deref() {
            return Err(invalid(
                "spec.resourceAttributes.namespace",
                "must match metadata.namespace",
            ));
        }
        Attributes {
            verb: string(&r["verb"]),
            resource: Some(ResourceAttributes {
                group: string(&r["group"]),
                resource: string(&r["resource"]),
                subresource: r["subresource"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
                namespace,
                name: string(&r["name"]),
            }),
            path: String::new(),
        }
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|n| n.is_object()) {
        if kind == "LocalSubjectAccessReview" {
            return Err(invalid(
                "spec.nonResourceAttributes",
                "disallowed on this kind of request",
            ));
        }
        Attributes::non_resource(&string(&n["verb"]), &string(&n["path"]))
    } else {
        return Err(invalid(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let decision = ctx.hub.authorizer.authorize(user, ctx.cluster.name(), &attrs);
    let status = match decision {
        crate::auth::rbac::Decision::Allow(reason) if reason.is_empty() => json!({"allowed": true}),
        crate::auth::rbac::Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        crate::auth::rbac::Decision::Deny => json!({"allowed": false}),
    };
    let mut answer = created(kind, &ctx.kind.api_version(), spec, status);
    if let Some(ns) = &ctx.req.namespace {
        answer["metadata"]["namespace"] = ns.clone().into();
    }
    Ok(response::json(StatusCode::CREATED, &answer))
}

/// A review for the user, groups and extra named in the spec (a webhook authorizer asking
/// on behalf of its caller).
fn subject_access_review(ctx: &Ctx, obj: Value, kind: &str) -> ApiResult<Response> {
    let spec = &obj["spec"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let user = crate::auth::User {
        name: string(&spec["user"]),
        groups: strings(&spec["groups"]),
        uid: string(&spec["uid"]),
        extra: spec["extra"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(ApiError::invalid(
            kind,
            AUTHORIZATION,
            "",
            vec![FieldError::invalid(
                "spec.user",
                "at least one of user or group must be specified",
            )],
        ));
    }
    access_review(ctx, obj, &user, kind)
}

/// Whose a bearer token is, for the audiences the spec names (the hub's when none).
fn token_review(ctx: &Ctx, obj: Value) -> ApiResult<Response> {
    let spec = obj["spec"].clone();
    let token = spec["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let requested: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let status = match ctx.hub.authenticator.review(token, &requested, &ctx.hub.cache) {
        Some((user, audiences)) => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = user.uid.into();
            }
            if !user.extra.is_empty() {
                info["extra"] = json!(user.extra);
            }
            json!({"authenticated": true, "user": info, "audiences": audiences})
        }
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    // The question comes back with the answer, token included, as kube-apiserver sends it
    // (clients' typed forms require it).
    let answer = created("TokenReview", &ctx.kind.api_version(), spec, status);
    Ok(response::json(StatusCode::CREATED, &answer))
}

fn rules_review(ctx: &Ctx, obj: Value) -> Response {
    let spec = obj["spec"].clone();
    let namespace = string(&spec["namespace"]);
    let mut rules = ctx.hub.authorizer.rules_for(&ctx.user, ctx.cluster.name(), &namespace);
    if ctx.user.is_master() {
        // system:masters holds everything, whatever the bindings say.
        let everything = Rule::all();
        rules.retain(|r| !everything.contains(r));
        rules.splice(0..0, everything);
    }
    let (non_resource, resource): (Vec<&Rule>, Vec<&Rule>) =
        rules.iter().partition(|r| !r.non_resource_urls.is_empty());
    let status = json!({
        "resourceRules": resource.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        "nonResourceRules": non_resource.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        "incomplete": false,
    });
    response::json(
        StatusCode::CREATED,
        &created("SelfSubjectRulesReview", &ctx.kind.api_version(), spec, status),
    )
}

fn self_review(ctx: &Ctx) -> Response {
    let user = &ctx.user;
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = user.uid.clone().into();
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    response::json(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": ctx.kind.api_version(),
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": info},
        }),
    )
}

fn token_request(ctx: &Ctx, obj: Value) -> ApiResult<Response> {
    let namespace = ctx.req.namespace.clone().unwrap_or_default();
    let name = ctx.req.name.clone().unwrap_or_default();
    let invalid = |field: &str, message: String| {
        ApiError::invalid(
            "TokenRequest",
            AUTHENTICATION,
            &name,
            vec![FieldError::invalid(field, message)],
        )
    };
    let sa = ctx
        .hub
        .cache
        .get(
            &faros_storage::Prefix::resource("", "serviceaccounts")
                .cluster(ctx.cluster.name())
                .namespace(&namespace)
                .name(&name),
        )
        .map(|sa| sa.value())
        .filter(|sa| !faros_machinery::object::is_deleting(sa))
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", &name))?;
    let Some(tokens) = ctx.hub.authenticator.service_accounts() else {
        return Err(ApiError::internal("ServiceAccount token signing is not configured"));
    };
    let spec = &obj["spec"];
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION,
        v => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| invalid("spec.expirationSeconds", format!("{v}: must be an integer")))?,
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("{expiration}: may not specify a duration less than 10 minutes"),
        ));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("{expiration}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    let bound = bound_object(ctx, &namespace, &name, &spec["boundObjectRef"])?;
    let sa_uid = faros_machinery::object::uid(&sa).to_string();
    let token_spec = TokenSpec {
        cluster: ctx.cluster.name(),
        namespace: &namespace,
        name: &name,
        uid: &sa_uid,
        audiences: audiences.clone(),
        expiration_seconds: expiration,
        bound: bound.clone(),
    };
    let (token, exp) = tokens
        .issue(&token_spec)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let audiences = if audiences.is_empty() {
        tokens.audiences().to_vec()
    } else {
        audiences
    };
    let expires = jiff::Timestamp::from_second(exp)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(b) = &bound {
        out_spec["boundObjectRef"] = json!({"kind": b.kind, "apiVersion": b.api_version, "name": b.name, "uid": b.uid});
    }
    Ok(response::json(
        StatusCode::CREATED,
        &json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": faros_api::meta::now_rfc3339()},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": expires},
        }),
    ))
}

/// Resolves a TokenRequest's `boundObjectRef`: a Secret, or any object of a kind served in the
/// workspace, in the ServiceAccount's namespace for namespaced kinds. The uid, when given,
/// must match; when left out it is filled in.
fn bound_object(ctx: &Ctx, namespace: &str, sa_name: &str, bound: &Value) -> ApiResult<Option<BoundObject>> {
    if !bound.is_object() {
        return Ok(None);
    }
    let invalid = |field: &str, message: String| {
        ApiError::invalid(
            "TokenRequest",
            AUTHENTICATION,
            sa_name,
            vec![FieldError::invalid(field, message)],
        )
    };
    let kind_name = string(&bound["kind"]);
    let api_version = bound["apiVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .unwrap_or("v1")
        .to_string();
    let name = string(&bound["name"]);
    if name.is_empty() {
        return Err(invalid("spec.boundObjectRef.name", "name is required".into()));
    }
    let kind = ctx
        .hub
        .catalog
        .all_kinds(ctx.cluster.name())
        .into_iter()
        .find(|k| k.kind == kind_name && k.api_version() == api_version && k.rest.is_none())
        .ok_or_else(|| {
            ApiError::invalid(
                "TokenRequest",
                AUTHENTICATION,
                sa_name,
                vec![FieldError::not_supported(
                    "spec.boundObjectRef.kind",
                    format!("{api_version}/{kind_name}: not a kind served in this workspace"),
                )],
            )
        })?;
    let key = kind.key(ctx.cluster.name(), kind.namespaced.then_some(namespace), &name);
    let object = ctx
        .hub
        .cache
        .get(&key)
        .map(|o| o.value())
        .filter(|o| !faros_machinery::object::is_deleting(o))
        .ok_or_else(|| ApiError::not_found(&kind.group, &kind.resource, &name))?;
    let uid = faros_machinery::object::uid(&object).to_string();
    if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
        && want != uid
    {
        return Err(ApiError::conflict(
            &kind.group,
            &kind.kind,
            &name,
            &format!(
                "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok(Some(BoundObject {
        api_version,
        kind: kind_name,
        name,
        uid,
        key,
    }))
}
