//! The cap on requests served at once, as kube-apiserver's `--max-requests-inflight` and
//! `--max-mutating-requests-inflight`.
//!
//! A hub is CPU-bound: once more requests arrive than it can answer, every one of them
//! waits longer, clients time out and send again, and the work done for the abandoned
//! requests is lost. A whole fleet reconnecting after a hub restart does exactly that.
//! Beyond the cap a request is refused at once, cheaply, with 429 and `Retry-After`, which
//! clients (client-go, kube-rs' retry policy, the agent) wait for before they try again, so
//! that the requests the hub does take are answered in time.
//!
//! Not counted, as in kube-apiserver: long-running requests (watches, and the streams to
//! devices and workloads, which last as long as someone uses them). Members of
//! `system:masters` (the in-process controllers among them) always get an answer: where
//! kube-apiserver counts them but never refuses them, they are not counted at all, so that
//! they take no place from others. The user is the effective one, after impersonation.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::request::{ResourceRequest, Target, Verb};
use crate::auth::User;
use faros_machinery::status::{ApiError, Reason};

/// Subresources whose requests stream for as long as they are used.
const LONG_RUNNING_SUBRESOURCES: &[&str] = &[
    "attach",
    "exec",
    "log",
    "portforward",
    "proxy",
    faros_tunnel::TUNNEL_SUBRESOURCE,
];

/// How long a refused client is told to wait, in seconds.
const RETRY_AFTER_SECONDS: u32 = 1;

/// The two caps and how many requests each counts now.
pub(crate) struct InflightLimits {
    read_only: Limit,
    mutating: Limit,
}

struct Limit {
    /// 0: no cap.
    max: usize,
    current: AtomicUsize,
}

/// A counted request: its place is given back when this drops.
pub(crate) struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which cap a refused request met, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    ReadOnly,
    Mutating,
}

impl RequestKind {
    /// GET, HEAD and OPTIONS read; every other method writes.
    pub(crate) fn of(method: &http::Method) -> RequestKind {
        if matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS) {
            RequestKind::ReadOnly
        } else {
            RequestKind::Mutating
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestKind::ReadOnly => "readOnly",
            RequestKind::Mutating => "mutating",
        }
    }
}

impl InflightLimits {
    /// Caps of `read_only` and `mutating` requests at once; 0 leaves that kind uncapped.
    pub(crate) fn new(read_only: usize, mutating: usize) -> InflightLimits {
        InflightLimits {
            read_only: Limit {
                max: read_only,
                current: AtomicUsize::new(0),
            },
            mutating: Limit {
                max: mutating,
                current: AtomicUsize::new(0),
            },
        }
    }

    /// Counts `target`, asked by `user` with `method`, against its cap: None when it is not
    /// counted, Err(kind) when that cap is reached.
    pub(crate) fn admit(
        &self,
        method: &http::Method,
        target: &Target,
        user: &User,
    ) -> Result<Option<Permit<'_>>, RequestKind> {
        if user.is_master() || long_running(target) {
            return Ok(None);
        }
        let kind = RequestKind::of(method);
        let limit = match kind {
            RequestKind::ReadOnly => &self.read_only,
            RequestKind::Mutating => &self.mutating,
        };
        if limit.max == 0 {
            return Ok(None);
        }
        // Taken first and given back when over: the count never stays above the cap, and no
        // lock is held.
        if limit.current.fetch_add(1, Ordering::AcqRel) >= limit.max {
            limit.current.fetch_sub(1, Ordering::AcqRel);
            return Err(kind);
        }
        Ok(Some(Permit(&limit.current)))
    }
}

/// What a refused request is answered, as kube-apiserver words it.
pub(crate) fn too_many_requests() -> ApiError {
    let mut err = ApiError::new(Reason::TooManyRequests, "Too many requests, please try again later.");
    err.retry_after = Some(RETRY_AFTER_SECONDS);
    err
}

fn long_running(target: &Target) -> bool {
    match target {
        Target::Resource(ResourceRequest { verb, subresource, .. }) => {
            *verb == Verb::Watch
                || subresource
                    .as_deref()
                    .is_some_and(|sub| LONG_RUNNING_SUBRESOURCES.contains(&sub))
        }
        Target::NonResource(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn user(groups: &[&str]) -> User {
        User {
            name: "someone".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn resource(verb: Verb, subresource: Option<&str>) -> Target {
        Target::Resource(ResourceRequest {
            verb,
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            namespace: Some("default".into()),
            name: Some("p".into()),
            subresource: subresource.map(str::to_string),
        })
    }

    #[test]
    fn each_kind_is_capped_apart_and_a_place_comes_back_when_its_request_ends() {
        let limits = InflightLimits::new(1, 1);
        let alice = user(&["system:authenticated"]);
        let get = resource(Verb::Get, None);
        let update = resource(Verb::Update, None);
        let reading = limits.admit(&Method::GET, &get, &alice).unwrap();
        assert!(reading.is_some());
        assert_eq!(
            limits.admit(&Method::GET, &get, &alice).err(),
            Some(RequestKind::ReadOnly)
        );
        // The mutating cap is another.
        let writing = limits.admit(&Method::PUT, &update, &alice).unwrap();
        assert!(writing.is_some());
        assert_eq!(
            limits.admit(&Method::PUT, &update, &alice).err(),
            Some(RequestKind::Mutating)
        );
        drop(reading);
        assert!(limits.admit(&Method::GET, &get, &alice).unwrap().is_some());
        drop(writing);
        assert!(limits.admit(&Method::PUT, &update, &alice).unwrap().is_some());
    }

    #[test]
    fn watches_streams_and_masters_are_not_counted() {
        let limits = InflightLimits::new(1, 1);
        let alice = user(&["system:authenticated"]);
        let _held = limits.admit(&Method::GET, &resource(Verb::Get, None), &alice).unwrap();
        let _held_too = limits
            .admit(&Method::POST, &resource(Verb::Create, None), &alice)
            .unwrap();
        for (method, target) in [
            (Method::GET, resource(Verb::Watch, None)),
            (Method::GET, resource(Verb::Get, Some("log"))),
            (Method::POST, resource(Verb::Create, Some("exec"))),
            (Method::POST, resource(Verb::Create, Some("portforward"))),
            (Method::GET, resource(Verb::Get, Some("proxy"))),
            (
                Method::GET,
                resource(Verb::Create, Some(faros_tunnel::TUNNEL_SUBRESOURCE)),
            ),
        ] {
            assert!(matches!(limits.admit(&method, &target, &alice), Ok(None)), "{target:?}");
        }
        let admin = user(&["system:masters", "system:authenticated"]);
        assert!(matches!(
            limits.admit(&Method::GET, &resource(Verb::Get, None), &admin),
            Ok(None)
        ));
        // A status write is an ordinary write.
        assert!(
            limits
                .admit(&Method::PUT, &resource(Verb::Update, Some("status")), &alice)
                .is_err()
        );
    }

    #[test]
    fn zero_leaves_a_kind_uncapped() {
        let limits = InflightLimits::new(0, 0);
        let alice = user(&[]);
        let held: Vec<_> = (0..100)
            .map(|_| limits.admit(&Method::GET, &resource(Verb::List, None), &alice).unwrap())
            .collect();
        assert!(held.iter().all(Option::is_none));
    }

    #[test]
    fn the_refusal_is_a_429_with_retry_after() {
        let err = too_many_requests();
        assert_eq!(err.code(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.retry_after, Some(1));
    }
}
