//! The shared backend: etcd v3, so that several hub processes serve one store.
//!
//! Every key the hub stores is put under a prefix (`/faros` by default), and the snapshot and
//! the watch cover that prefix only. The revision is etcd's own: it counts every write to the
//! etcd cluster, so it also moves when keys outside the prefix change, and the first write of
//! a fresh hub is not revision 1.
//!
//! Writes are single transactions: a create compares the key's `create_revision` with 0, an
//! update or delete compares its `mod_revision` with the expected one (and that the key
//! exists). A refused update or delete reads the key in the transaction's other branch, so
//! "not found" and "conflict" are told apart from the same revision, without a second read.
//!
//! **Following changes.** A snapshot is a linearizable range read of the prefix, in pages
//! that all read at the first page's revision, followed by an etcd watch from the next
//! revision (with the previous values, for deletes). When the
//! watch stream breaks (a member restarted, the network failed), it is opened again from the
//! revision after the last one reported, with backoff, so nothing is lost or repeated. When
//! etcd has compacted that revision, a gapless stream is impossible: the backend reports
//! [`Change::Lost`] and stops, and the cache reloads (see `cache.rs`).
//!
//! **Reads after other replicas' writes.** [`Backend::current_revision`] is a quorum read of
//! one key, whose response header carries the cluster's revision; the cache waits until its
//! changes reach it. Events under the prefix get it there. When the revision moved because of
//! keys outside the prefix, a barrier does: while a reader waits for a revision the watch has
//! not reported (for [`PROGRESS_DELAY`], since an event on its way makes it unnecessary), the
//! watch writes the prefix's barrier key ([`BARRIER`]), whose event comes after every event
//! before it, in revision order, on the same stream; the barrier itself is never reported as
//! an object. Progress notifications cannot serve: etcd before 3.4.25 and 3.5.8 may send one
//! before events it covers, and a reader would then see a state without them. An event at
//! or below a revision already reported is still never skipped: the stream is reported lost
//! and the cache reloads.
//!
//! **Losing a member.** The client spreads requests over every member, but it does not
//! notice on its own that one went away: it keeps handing requests to it, and each fails.
//! So every member is checked each [`PROBE_INTERVAL`] with a linearizable read, and a member
//! that fails it is taken out of the rotation until it answers again (unless none answers:
//! then all stay in). A request the client could not even send, because connecting to its
//! member failed, is sent again at once (to another member); a read is also sent again after
//! any other "unavailable" answer, a write never is, since it may have been applied.
//!
//! **Compaction** keeps a window: each call compacts to the revision the previous call saw,
//! so history younger than one compaction interval stays (as kube-apiserver does). Replicas
//! compacting concurrently are harmless: compacting to a revision that is already compacted
//! succeeds.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchResponse,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::backend::{Backend, Change, KeyValue, Revision, Snapshot, StorageError, StoreEvent, WriteOp, WriteOutcome};
use crate::observe::{Commit, CommitObserver, ObserverSlot};

/// How often every member is checked, and how long its answer may take.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to one member may take (at most the request timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request that could not reach a member keeps being sent again, at most.
const FAILOVER_BUDGET: Duration = Duration::from_secs(3);
/// How long the watch may stay behind a revision a reader waits for before it writes the
/// barrier, and then between barriers.
const PROGRESS_DELAY: Duration = Duration::from_millis(200);
/// The barrier key, after the prefix: under the watched range, but no key the hub stores
/// (those all start with `/` and printable characters), and never reported.
const BARRIER: &str = "/\u{0}barrier";
/// Longest pause between attempts to open a broken watch again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// etcd refuses requests above 1.5 MiB by default but answers with pages and watch batches
/// of many objects: accept large responses.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// How to reach etcd and where the hub's keys live there.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs (`http://host:2379`, `https://...`) of the cluster's members.
    pub endpoints: Vec<String>,
    /// CA bundle that signed the members' serving certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for members that require one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Every key is stored under this prefix (`/faros`); a trailing `/` is ignored.
    pub prefix: String,
    /// How long one request may take before the store is reported unavailable.
    pub request_timeout: Duration,
    /// Keys per page of a snapshot.
    pub page_size: i64,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            ca_file: None,
            cert_file: None,
            key_file: None,
            prefix: "/faros".into(),
            request_timeout: Duration::from_secs(10),
            page_size: 1000,
        }
    }
}

pub struct EtcdBackend {
    client: Client,
    /// The endpoints, for messages.
    endpoints: String,
    /// Prepended to every key; empty or starting with `/`, never ending with `/`.
    prefix: String,
    /// `<prefix>/`: the range of every stored key (stored keys start with `/`).
    range: Vec<u8>,
    /// The first key after the range.
    range_end: Vec<u8>,
    request_timeout: Duration,
    page_size: i64,
    /// The highest revision a reader waits for the cache to reach; a watch behind it asks
    /// etcd for progress.
    wanted: watch::Sender<Revision>,
    /// The revision the previous compaction saw: the next one compacts up to it.
    compact_to: Mutex<Option<Revision>>,
    /// Checks the members and keeps the client's rotation to those that answer; stopped
    /// with the backend.
    probes: Option<tokio::task::JoinHandle<()>>,
    observer: ObserverSlot,
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        if let Some(probes) = &self.probes {
            probes.abort();
        }
    }
}

/// What may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads and compaction: after any "unavailable" answer.
    Idempotent,
    /// Writes: only when the request never left, because no connection could be made.
    Unsent,
}

/// Whether `e` says the request never reached a member: connecting to it failed.
fn unsent(e: &etcd_client::Error) -> bool {
    // The client's error does not name its status as its source.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match e {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        e => Some(e),
    };
    while let Some(error) = cause {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Whether a request that failed with `e` may be sent again.
fn retryable(e: &etcd_client::Error, retry: Retry) -> bool {
    if unsent(e) {
        return true;
    }
    match (retry, e) {
        (Retry::Unsent, _) => false,
        // Unknown: the connection broke under the request (etcd itself answers with codes).
        (Retry::Idempotent, etcd_client::Error::GRpcStatus(status)) => {
            matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
        }
        (Retry::Idempotent, etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_)) => true,
        (Retry::Idempotent, _) => false,
    }
}

/// `endpoint` with a scheme: the one the client would give it.
fn with_scheme(endpoint: &str, tls: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else if tls {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    }
}

/// Checks every member each [`PROBE_INTERVAL`] with a linearizable read of `key` through a
/// client of its own, and keeps `client`'s rotation to the members that answered; when none
/// did, to all of them.
async fn probe_members(client: Client, members: Vec<(String, Client)>, key: Vec<u8>) {
    let mut in_rotation = vec![true; members.len()];
    let mut ticker = tokio::time::interval(PROBE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let answers = futures::future::join_all(members.iter().map(|(_, member)| {
            let mut kv = member.kv_client();
            let key = key.clone();
            async move {
                match tokio::time::timeout(PROBE_TIMEOUT, kv.get(key, None)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(describe(&e)),
                    Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
                }
            }
        }))
        .await;
        let any = answers.iter().any(Result::is_ok);
        for (i, answer) in answers.iter().enumerate() {
            let wanted = answer.is_ok() || !any;
            if wanted == in_rotation[i] {
                continue;
            }
            let url = &members[i].0;
            let changed = if wanted {
                client.add_endpoint(url).await
            } else {
                client.remove_endpoint(url).await
            };
            match changed {
                Ok(()) => {
                    in_rotation[i] = wanted;
                    match answer {
                        Ok(()) => tracing::info!(member = %url, "etcd member answers again; back in rotation"),
                        Err(why) if any => {
                            tracing::warn!(member = %url, "etcd member does not answer; out of rotation: {why}")
                        }
                        Err(_) => tracing::warn!("no etcd member answers; trying them all"),
                    }
                }
                Err(e) => tracing::warn!(member = %url, error = %e, "cannot change the etcd client's rotation"),
            }
        }
    }
}

impl EtcdBackend {
    /// Connects and checks that etcd answers.
    pub async fn connect(options: EtcdOptions) -> Result<EtcdBackend, StorageError> {
        let endpoints = options.endpoints.join(",");
        let tls = tls(&options)?;
        let urls: Vec<String> = options
            .endpoints
            .iter()
            .map(|e| with_scheme(e, tls.is_some()))
            .collect();
        if options.endpoints.is_empty() {
            return Err(StorageError::Unavailable("no etcd endpoints given".into()));
        }
        let prefix = options.prefix.trim_end_matches('/').to_string();
        if !prefix.is_empty() && !prefix.starts_with('/') {
            return Err(StorageError::Unavailable(format!(
                "the etcd prefix must start with '/': {prefix:?}"
            )));
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT.min(options.request_timeout))
            // Dead connections are noticed without waiting for the kernel.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(false)
            // A member cut off from the leader ends its watches instead of going silent.
            .with_require_leader(true);
        if let Some(tls) = tls {
            connect = connect.with_tls(tls);
        }
        let client = tokio::time::timeout(options.request_timeout, Client::connect(&urls, Some(connect.clone())))
            .await
            .map_err(|_| StorageError::Unavailable(format!("connecting to etcd at {endpoints} timed out")))?
            .map_err(|e| StorageError::Unavailable(format!("connecting to etcd at {endpoints}: {}", describe(&e))))?;
        let range = format!("{prefix}/").into_bytes();
        let range_end = prefix_end(&range);
        // With one member there is nothing to fail over to.
        let probes = if urls.len() > 1 {
            let mut members = Vec::new();
            for url in &urls {
                // Connects lazily: a member that is down now is simply not answering yet.
                let member = Client::connect([url], Some(connect.clone()))
                    .await
                    .map_err(|e| StorageError::Unavailable(format!("etcd at {url}: {}", describe(&e))))?;
                members.push((url.clone(), member));
            }
            Some(tokio::spawn(probe_members(client.clone(), members, range.clone())))
        } else {
            None
        };
        let backend = EtcdBackend {
            client,
            endpoints,
            prefix,
            range,
            range_end,
            request_timeout: options.request_timeout,
            page_size: options.page_size.max(1),
            wanted: watch::channel(0).0,
            compact_to: Mutex::new(None),
            probes,
            observer: ObserverSlot::default(),
        };
        backend.read_revision().await?;
        Ok(backend)
    }

    /// Runs one request (made afresh by `request` for each attempt) with the request
    /// timeout; a failure `retry` allows is sent again, to another member if one answers,
    /// for up to [`FAILOVER_BUDGET`]. Failures and timeouts are `Unavailable`.
    async fn call<T, F, Fut>(&self, what: &str, retry: Retry, mut request: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = Instant::now();
        let deadline = started + self.request_timeout;
        let retry_until = started + FAILOVER_BUDGET.min(self.request_timeout);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let e = match tokio::time::timeout(left, request()).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(StorageError::Unavailable(format!(
                        "etcd at {} did not answer ({what}) within {:?}",
                        self.endpoints, self.request_timeout
                    )));
                }
            };
            // At once the first time (the client picks another member), then 50 ms, 100 ms,
            // ... up to 500 ms.
            let pause = match attempts {
                1 => Duration::ZERO,
                n => (Duration::from_millis(50) * 2u32.pow((n - 2).min(4))).min(Duration::from_millis(500)),
            };
            if retryable(&e, retry) && Instant::now() + pause < retry_until {
                tracing::debug!(endpoints = %self.endpoints, attempts, error = %describe(&e), "etcd request failed; sending it again");
                tokio::time::sleep(pause).await;
                continue;
            }
            return Err(StorageError::Unavailable(format!(
                "etcd at {}: {what}: {}",
                self.endpoints,
                describe(&e)
            )));
        }
    }

    /// The cluster's revision, from a linearizable read of one key.
    async fn read_revision(&self) -> Result<Revision, StorageError> {
        let kv = self.client.kv_client();
        // One exact key (no range): the cost does not grow with the number of objects.
        let response = self
            .call("reading the revision", Retry::Idempotent, || {
                let mut kv = kv.clone();
                let key = self.range.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(header_revision(response.header()))
    }

    fn stored_key(&self, key: &str) -> Vec<u8> {
        let mut stored = Vec::with_capacity(self.prefix.len() + key.len());
        stored.extend_from_slice(self.prefix.as_bytes());
        stored.extend_from_slice(key.as_bytes());
        stored
    }

    async fn apply(&self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let stored = self.stored_key(op.key());
        let exists = || Compare::version(stored.clone(), CompareOp::Greater, 0);
        let txn = match &op {
            WriteOp::Create { value, .. } => Txn::new()
                .when([Compare::create_revision(stored.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(stored.clone(), value.to_vec(), None)]),
            WriteOp::Update { value, expected, .. } => Txn::new()
                .when([
                    exists(),
                    Compare::mod_revision(stored.clone(), CompareOp::Equal, *expected as i64),
                ])
                .and_then([TxnOp::put(
                    stored.clone(),
                    value.to_vec(),
                    Some(PutOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(stored.clone(), Some(GetOptions::new().with_keys_only()))]),
            WriteOp::Delete { expected, .. } => Txn::new()
                .when([
                    exists(),
                    Compare::mod_revision(stored.clone(), CompareOp::Equal, *expected as i64),
                ])
                .and_then([TxnOp::delete(stored.clone(), None)])
                .or_else([TxnOp::get(stored.clone(), Some(GetOptions::new().with_keys_only()))]),
        };
        let kv = self.client.kv_client();
        let started = Instant::now();
        let response = self
            .call("writing", Retry::Unsent, || {
                let mut kv = kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await;
        // A transaction whose compare failed still went through etcd's consensus: a commit too.
        self.observer.report(Commit {
            writes: 1,
            duration: started.elapsed(),
            sync: None,
            failed: response.is_err(),
        });
        let response = response?;
        let revision = header_revision(response.header());
        let responses = response.op_responses();
        if !response.succeeded() {
            let present = responses
                .iter()
                .any(|r| matches!(r, TxnOpResponse::Get(get) if !get.kvs().is_empty()));
            return Err(match op {
                WriteOp::Create { .. } => StorageError::AlreadyExists,
                _ if present => StorageError::Conflict,
                _ => StorageError::NotFound,
            });
        }
        let kv = match op {
            WriteOp::Create { key, value } => Some(KeyValue {
                key,
                value,
                create_revision: revision,
                mod_revision: revision,
            }),
            WriteOp::Update { key, value, .. } => {
                let created = responses.iter().find_map(|r| match r {
                    TxnOpResponse::Put(put) => put.prev_key().map(|prev| prev.create_revision() as Revision),
                    _ => None,
                });
                Some(KeyValue {
                    key,
                    value,
                    // The compare guaranteed a previous value.
                    create_revision: created.unwrap_or(revision),
                    mod_revision: revision,
                })
            }
            WriteOp::Delete { .. } => None,
        };
        Ok(WriteOutcome { revision, kv })
    }

    /// Everything under the prefix at one revision, page by page.
    async fn read_all(&self) -> Result<(Vec<KeyValue>, Revision), StorageError> {
        let kv = self.client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        let mut items = Vec::new();
        let mut start = self.range.clone();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(self.range_end.clone())
                .with_limit(self.page_size);
            if revision > 0 {
                options = options.with_revision(revision as i64);
            }
            let mut response = self
                .call("reading everything", Retry::Idempotent, || {
                    let mut kv = kv.clone();
                    let start = start.clone();
                    let options = options.clone();
                    async move { kv.get(start, Some(options)).await }
                })
                .await?;
            if revision == 0 {
                revision = header_revision(response.header());
            }
            let more = response.more();
            let kvs = response.take_kvs();
            let Some(last) = kvs.last() else { break };
            start = last.key().to_vec();
            start.push(0);
            items.extend(kvs.iter().filter_map(|kv| self.key_value(kv)));
            if !more {
                break;
            }
        }
        Ok((items, revision))
    }

    async fn load(&self) -> Result<Snapshot, StorageError> {
        // A page read at the first page's revision fails if a compaction passed it meanwhile
        // (another replica's): start over at the new revision.
        let mut attempts = 0;
        let (items, revision) = loop {
            attempts += 1;
            match self.read_all().await {
                Err(StorageError::Unavailable(why)) if attempts < 3 && why.contains(COMPACTED) => continue,
                result => break result?,
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let follower = Follower {
            client: self.client.clone(),
            endpoints: self.endpoints.clone(),
            prefix_len: self.prefix.len(),
            range: self.range.clone(),
            range_end: self.range_end.clone(),
            request_timeout: self.request_timeout,
            reported: revision,
            changes: tx,
            wanted: self.wanted.subscribe(),
        };
        tokio::spawn(follower.run());
        Ok(Snapshot {
            items,
            revision,
            changes: rx,
        })
    }

    async fn compact_window(&self) -> Result<(), StorageError> {
        let now = self.read_revision().await?;
        let target = self.compact_to.lock().unwrap_or_else(|e| e.into_inner()).replace(now);
        let Some(target) = target.filter(|t| *t > 0) else {
            return Ok(());
        };
        let kv = self.client.kv_client();
        let compacting = self.call("compacting", Retry::Idempotent, || {
            let mut kv = kv.clone();
            async move { kv.compact(target as i64, None).await }
        });
        match compacting.await {
            // Another replica compacted to this revision or past it.
            Err(StorageError::Unavailable(why)) if why.contains(COMPACTED) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => {
                tracing::debug!(revision = target, "etcd compacted");
                Ok(())
            }
        }
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Option<KeyValue> {
        to_key_value(kv, self.prefix.len())
    }
}

/// etcd's message when a revision is older than the last compaction.
const COMPACTED: &str = "required revision has been compacted";

impl Backend for EtcdBackend {
    fn snapshot(&self) -> BoxFuture<'_, Result<Snapshot, StorageError>> {
        self.load().boxed()
    }

    fn write(&self, op: WriteOp) -> BoxFuture<'_, Result<WriteOutcome, StorageError>> {
        self.apply(op).boxed()
    }

    fn compact(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        self.compact_window().boxed()
    }

    fn current_revision(&self) -> BoxFuture<'_, Result<Revision, StorageError>> {
        async move {
            let revision = self.read_revision().await?;
            self.wanted.send_if_modified(|wanted| {
                let higher = revision > *wanted;
                *wanted = (*wanted).max(revision);
                higher
            });
            Ok(revision)
        }
        .boxed()
    }

    fn shared(&self) -> bool {
        true
    }

    fn observe_commits(&self, observer: std::sync::Arc<dyn CommitObserver>) {
        self.observer.set(observer);
    }
}

fn tls(options: &EtcdOptions) -> Result<Option<etcd_client::TlsOptions>, StorageError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| StorageError::Unavailable(format!("reading {}: {e}", path.display())))
    };
    let mut tls = etcd_client::TlsOptions::new();
    let mut any = false;
    if let Some(ca) = &options.ca_file {
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        any = true;
    }
    match (&options.cert_file, &options.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            any = true;
        }
        (None, None) => {}
        _ => {
            return Err(StorageError::Unavailable(
                "an etcd client certificate needs both its certificate and its key file".into(),
            ));
        }
    }
    Ok(any.then_some(tls))
}

/// A readable reason: gRPC statuses say their code, message and cause (a refused connection,
/// say), not their metadata.
fn describe(e: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return e.to_string();
    };
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut cause = std::error::Error::source(status);
    while let Some(e) = cause {
        let line = e.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = e.source();
    }
    text
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map(|h| h.revision().max(0) as Revision).unwrap_or(0)
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xff bytes: no key comes after; etcd reads "\0" as "to the end".
    vec![0]
}

/// A stored key-value without the prefix; None (logged) for a key that is not UTF-8.
fn to_key_value(kv: &etcd_client::KeyValue, prefix_len: usize) -> Option<KeyValue> {
    if kv.key().get(prefix_len..) == Some(BARRIER.as_bytes()) {
        return None;
    }
    let key = kv.key().get(prefix_len..).map(std::str::from_utf8);
    let Some(Ok(key)) = key else {
        tracing::error!(key = ?String::from_utf8_lossy(kv.key()), "skipping an etcd key that is not UTF-8");
        return None;
    };
    Some(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision().max(0) as Revision,
        mod_revision: kv.mod_revision().max(0) as Revision,
    })
}

/// Follows the prefix with an etcd watch and reports changes in revision order, for one
/// snapshot, until its subscriber is gone or the stream cannot go on.
struct Follower {
    client: Client,
    endpoints: String,
    prefix_len: usize,
    range: Vec<u8>,
    range_end: Vec<u8>,
    request_timeout: Duration,
    /// The last revision reported to the subscriber; a new watch starts after it.
    reported: Revision,
    changes: mpsc::UnboundedSender<Change>,
    wanted: watch::Receiver<Revision>,
}

/// Why one watch stream ended.
enum Ended {
    /// Nobody follows the snapshot any more.
    Unsubscribed,
    /// The stream cannot go on without a gap; the subscriber must take a new snapshot.
    Lost(String),
    /// The stream broke; open another one (`progressed`: it reported something first).
    Broken { why: String, progressed: bool },
}

impl Follower {
    async fn run(mut self) {
        let mut backoff = Duration::ZERO;
        loop {
            if !backoff.is_zero() {
                tokio::select! {
                    _ = self.changes.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
            match self.follow().await {
                Ended::Unsubscribed => return,
                Ended::Lost(reason) => {
                    let _ = self.changes.send(Change::Lost { reason });
                    return;
                }
                Ended::Broken { why, progressed } => {
                    backoff = if progressed {
                        Duration::from_millis(100)
                    } else {
                        (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF)
                    };
                    tracing::warn!(
                        endpoints = %self.endpoints,
                        resume_from = self.reported + 1,
                        retry_in_ms = backoff.as_millis() as u64,
                        "etcd watch ended: {why}"
                    );
                }
            }
        }
    }

    /// One watch stream, from the revision after the last reported one.
    async fn follow(&mut self) -> Ended {
        let from = self.reported + 1;
        let options = WatchOptions::new()
            .with_range(self.range_end.clone())
            .with_start_revision(from as i64)
            .with_prev_key();
        let mut client = self.client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let opened = tokio::time::timeout(self.request_timeout, client.watch(self.range.clone(), Some(options))).await;
        let stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Ended::Broken {
                    why: describe(&e),
                    progressed: false,
                };
            }
            Err(_) => {
                return Ended::Broken {
                    why: "opening the watch timed out".into(),
                    progressed: false,
                };
            }
        };
        // The sending half stays open for as long as the watch: closing it ends the stream.
        let (_requests, mut responses) = stream.split();
        let mut progressed = false;
        let mut ticker = tokio::time::interval(PROGRESS_DELAY / 2);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut behind_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.changes.closed() => return Ended::Unsubscribed,
                _ = ticker.tick() => {
                    if *self.wanted.borrow() <= self.reported {
                        behind_since = None;
                        continue;
                    }
                    let since = *behind_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= PROGRESS_DELAY {
                        behind_since = Some(Instant::now());
                        // Its event comes after every earlier one; a failed write is
                        // simply tried again on the next tick.
                        let mut barrier = self.range.clone();
                        barrier.pop();
                        barrier.extend_from_slice(BARRIER.as_bytes());
                        let mut kv = self.client.kv_client();
                        let write = kv.put(barrier, "", None);
                        if let Ok(Err(e)) = tokio::time::timeout(self.request_timeout, write).await {
                            tracing::debug!(error = %describe(&e), "writing the etcd barrier failed");
                        }
                    }
                }
                message = responses.message() => match message {
                    Ok(Some(response)) => match self.handle(response) {
                        Ok(reported) => progressed |= reported,
                        Err(ended) => return ended,
                    },
                    Ok(None) => return Ended::Broken { why: "etcd closed the stream".into(), progressed },
                    Err(e) => return Ended::Broken { why: describe(&e), progressed },
                },
            }
        }
    }

    /// Reports one watch response; Ok(true) when it reported anything.
    fn handle(&mut self, response: WatchResponse) -> Result<bool, Ended> {
        if response.compact_revision() != 0 {
            return Err(Ended::Lost(format!(
                "etcd compacted its history up to revision {} before the watch could resume from {}",
                response.compact_revision(),
                self.reported + 1
            )));
        }
        if response.canceled() {
            return Err(Ended::Broken {
                why: format!("etcd cancelled the watch: {}", response.cancel_reason()),
                progressed: false,
            });
        }
        if response.created() {
            return Ok(false);
        }
        let before = self.reported;
        let mut events = Vec::with_capacity(response.events().len());
        let mut last = before;
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let revision = kv.mod_revision().max(0) as Revision;
            if revision <= before {
                return Err(Ended::Lost(format!(
                    "etcd sent revision {revision} after reporting revision {before}: its progress \
                     notification came before events it covered (etcd before 3.4.25 and 3.5.8 may do this)"
                )));
            }
            last = last.max(revision);
            let Some(current) = to_key_value(kv, self.prefix_len) else {
                continue;
            };
            events.push(match event.event_type() {
                EventType::Put => StoreEvent::Put(current),
                EventType::Delete => StoreEvent::Delete {
                    // The previous value is missing only when etcd compacted it; the cache
                    // needs the key alone.
                    prev: event
                        .prev_kv()
                        .and_then(|prev| to_key_value(prev, self.prefix_len))
                        .unwrap_or(KeyValue {
                            value: Bytes::new(),
                            ..current
                        }),
                    revision,
                },
            });
        }
        // A response without events says nothing this stream can rely on (see the module
        // comment); the barrier's events, dropped above, still move the revision.
        let revision = last;
        if revision <= before {
            return Ok(false);
        }
        self.reported = revision;
        if self.changes.send(Change::Batch { events, revision }).is_err() {
            return Err(Ended::Unsubscribed);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conformance::{next_events, put};
    use crate::{Cache, FeedEnded};
    use faros_testkit::etcd::Etcd;

    /// A backend of its own prefix, with small snapshot pages and a short request timeout.
    fn options(endpoints: Vec<String>, prefix: &str) -> EtcdOptions {
        EtcdOptions {
            prefix: prefix.into(),
            request_timeout: Duration::from_secs(2),
            page_size: 4,
            ..EtcdOptions::new(endpoints)
        }
    }

    fn fresh_prefix() -> String {
        format!("/test-{}", uuid::Uuid::new_v4())
    }

    async fn connect(endpoints: Vec<String>, prefix: &str) -> EtcdBackend {
        EtcdBackend::connect(options(endpoints, prefix)).await.unwrap()
    }

    /// A plain client, as another program sharing the etcd cluster.
    async fn raw(etcd: &Etcd) -> Client {
        Client::connect(etcd.endpoints(), None).await.unwrap()
    }

    #[tokio::test]
    async fn conforms() {
        let etcd = Etcd::start();
        crate::conformance::run(|| {
            let endpoints = etcd.endpoints();
            async move { connect(endpoints, &fresh_prefix()).await }
        })
        .await;
    }

    #[tokio::test]
    async fn keys_live_under_the_prefix_and_nothing_else_is_read() {
        let etcd = Etcd::start();
        let mut client = raw(&etcd).await;
        client.put("/elsewhere/x", "1", None).await.unwrap();
        client.put("/faros-other/y", "1", None).await.unwrap();
        let backend = connect(etcd.endpoints(), "/faros/").await;
        let written = backend.write(put("/core/configmaps/c/ns/a", "{}")).await.unwrap();
        let stored = client.get("/faros/core/configmaps/c/ns/a", None).await.unwrap();
        assert_eq!(stored.kvs()[0].mod_revision() as Revision, written.revision);
        let mut snap = backend.snapshot().await.unwrap();
        let keys: Vec<&str> = snap.items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/core/configmaps/c/ns/a"]);
        client.put("/elsewhere/x", "2", None).await.unwrap();
        let deleted = backend
            .write(WriteOp::Delete {
                key: "/core/configmaps/c/ns/a".into(),
                expected: written.revision,
            })
            .await
            .unwrap();
        let events = next_events(&mut snap.changes).await;
        assert_eq!(
            events.iter().map(StoreEvent::revision).collect::<Vec<_>>(),
            [deleted.revision]
        );
    }

    #[tokio::test]
    async fn reads_see_writes_of_other_replicas_and_revisions_moved_elsewhere() {
        let etcd = Etcd::start();
        let prefix = fresh_prefix();
        let a = connect(etcd.endpoints(), &prefix).await;
        let cache = Cache::start(
            Arc::new(connect(etcd.endpoints(), &prefix).await),
            crate::Window::events(100),
        )
        .await
        .unwrap();
        for i in 0..20 {
            let key = format!("/k/{i}");
            a.write(put(&key, "{}")).await.unwrap();
            // Right after the other replica's write, with no waiting of its own.
            cache.sync().await.unwrap();
            assert!(cache.get(&key).is_some(), "{key} was not visible after sync");
        }
        // Revisions taken outside the prefix reach the cache through the barrier.
        let mut client = raw(&etcd).await;
        let elsewhere = client.put("/elsewhere", "1", None).await.unwrap();
        let revision = elsewhere.header().unwrap().revision() as Revision;
        let synced = tokio::time::timeout(Duration::from_secs(5), cache.sync())
            .await
            .expect("sync returned in time")
            .unwrap();
        assert!(synced >= revision, "{synced} < {revision}");
        assert!(cache.revision() >= revision);
    }

    /// The watch breaks when etcd dies and resumes after the last reported revision once it
    /// is back: every write is seen once, in order.
    #[tokio::test]
    async fn the_watch_resumes_after_etcd_is_killed_and_restarted() {
        let mut etcd = Etcd::start();
        let backend = connect(etcd.endpoints(), &fresh_prefix()).await;
        let mut snap = backend.snapshot().await.unwrap();
        let mut written = Vec::new();
        for i in 0..5 {
            written.push(backend.write(put(&format!("/before/{i}"), "x")).await.unwrap().revision);
        }
        etcd.kill(0);
        etcd.restart(0);
        for i in 0..5 {
            let key = format!("/after/{i}");
            // The client reconnects on its own; the first attempts may find no connection yet.
            let deadline = Instant::now() + Duration::from_secs(30);
            let revision = loop {
                match backend.write(put(&key, "x")).await {
                    Ok(outcome) => break outcome.revision,
                    Err(StorageError::AlreadyExists) => panic!("{key} was written twice"),
                    Err(e) => {
                        assert!(Instant::now() < deadline, "etcd did not come back: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            written.push(revision);
        }
        assert_eq!(watched_revisions(&mut snap.changes, written.len()).await, written);
    }

    /// Three members, one killed: writes go on through the other two and the watch, wherever
    /// it was, reports every write once.
    #[tokio::test]
    async fn a_cluster_carries_on_without_one_member() {
        let mut etcd = Etcd::start_cluster(3);
        let prefix = fresh_prefix();
        let backend = connect(etcd.endpoints(), &prefix).await;
        let mut snap = backend.snapshot().await.unwrap();
        let mut written = Vec::new();
        for i in 0..20 {
            if i == 5 {
                etcd.kill(0);
            }
            if i == 15 {
                etcd.restart(0);
            }
            let key = format!("/k/{i}");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut failed = false;
            let revision = loop {
                match backend.write(put(&key, "x")).await {
                    Ok(outcome) => break outcome.revision,
                    // A write that failed when its member died may have been applied all the
                    // same: its revision is the key's.
                    Err(StorageError::AlreadyExists) if failed => {
                        let mut client = Client::connect(etcd.endpoints(), None).await.unwrap();
                        let stored = client.get(format!("{prefix}{key}"), None).await.unwrap();
                        break stored.kvs()[0].mod_revision() as Revision;
                    }
                    Err(e) => {
                        assert!(Instant::now() < deadline, "the cluster did not take {key}: {e}");
                        failed = true;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            written.push(revision);
        }
        assert_eq!(watched_revisions(&mut snap.changes, written.len()).await, written);
    }

    /// The revisions of the next `count` events the watch reports, in order.
    async fn watched_revisions(changes: &mut mpsc::UnboundedReceiver<Change>, count: usize) -> Vec<Revision> {
        let mut seen = Vec::new();
        while seen.len() < count {
            let events = tokio::time::timeout(Duration::from_secs(30), next_events(changes))
                .await
                .expect("the watch reports every write");
            seen.extend(events.iter().map(StoreEvent::revision));
        }
        seen
    }

    /// With one member dead, requests do not fail: the client would hand a share of them to
    /// the dead member, each failing to connect; they are sent to the others instead, and
    /// once the probes noticed, none goes to the dead member any more. Only a write already
    /// on its way over the member's connection when it died may fail (its outcome is
    /// unknown, so it is not sent again). A hub starting meanwhile connects and works too.
    #[tokio::test]
    async fn no_request_fails_while_a_member_is_dead() {
        let mut etcd = Etcd::start_cluster(3);
        let backend = connect(etcd.endpoints(), &fresh_prefix()).await;
        for i in 0..10 {
            // Connections to every member.
            backend.write(put(&format!("/first/{i}"), "x")).await.unwrap();
        }
        // A follower: losing the leader makes writes fail for a moment, whatever the client.
        let leader = etcd.leader();
        let follower = (0..3).find(|i| Some(*i) != leader).unwrap();
        etcd.kill(follower);
        let killed = Instant::now();
        let (mut written, mut failed) = (0, Vec::new());
        while killed.elapsed() < PROBE_INTERVAL * 3 {
            match backend.write(put(&format!("/k/{}", written + failed.len()), "x")).await {
                Ok(_) => written += 1,
                Err(e) => failed.push((killed.elapsed(), e)),
            }
            backend.current_revision().await.unwrap();
        }
        assert!(
            failed.len() <= 1 && failed.iter().all(|(after, _)| *after < PROBE_INTERVAL),
            "{failed:?}"
        );
        assert!(written > 10);
        for _ in 0..5 {
            let other = connect(etcd.endpoints(), &fresh_prefix()).await;
            other.write(put("/other", "x")).await.unwrap();
            assert_eq!(other.snapshot().await.unwrap().items.len(), 1);
        }
        etcd.restart(follower);
        backend.write(put("/after", "x")).await.unwrap();
        // The first ten, every acknowledged write, the last one, and any failed write that
        // was applied all the same.
        let stored = backend.snapshot().await.unwrap().items.len();
        assert!(
            (10 + written + 1..=10 + written + 1 + failed.len()).contains(&stored),
            "{stored}"
        );
    }

    #[tokio::test]
    async fn a_write_while_etcd_is_down_is_unavailable_promptly() {
        let mut etcd = Etcd::start();
        let backend = connect(etcd.endpoints(), &fresh_prefix()).await;
        backend.write(put("/a", "x")).await.unwrap();
        etcd.kill(0);
        let started = Instant::now();
        let err = backend.write(put("/b", "x")).await.unwrap_err();
        assert!(
            matches!(&err, StorageError::Unavailable(why) if why.contains("etcd at")),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let err = backend.current_revision().await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)));
        // Connecting to an etcd that is not there fails with a message, not a hang.
        let started = Instant::now();
        let err = EtcdBackend::connect(options(etcd.endpoints(), "/x"))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, StorageError::Unavailable(why) if why.contains(&etcd.endpoint(0))),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A cache whose watch cannot resume because etcd compacted past it reloads everything
    /// and ends its watches as expired.
    #[tokio::test]
    async fn compaction_past_a_stalled_watch_reloads_the_cache() {
        let etcd = Etcd::start();
        let prefix = fresh_prefix();
        let relay = faros_testkit::relay::Relay::start(format!("127.0.0.1:{}", etcd_port(&etcd)).parse().unwrap());
        let stalled = connect(vec![format!("http://127.0.0.1:{}", relay.port())], &prefix).await;
        let cache = Cache::start(Arc::new(stalled), crate::Window::events(100))
            .await
            .unwrap();
        let writer = connect(etcd.endpoints(), &prefix).await;
        let a = writer.write(put("/k/a", "{}")).await.unwrap().revision;
        assert!(cache.wait_for(a, Duration::from_secs(10)).await);
        let mut live = cache.watch("/k/", None).unwrap().live;

        relay.cut();
        writer.write(put("/k/b", "{}")).await.unwrap();
        writer
            .write(WriteOp::Delete {
                key: "/k/a".into(),
                expected: a,
            })
            .await
            .unwrap();
        // The first call notes the revision, the second compacts to it.
        writer.compact().await.unwrap();
        writer.compact().await.unwrap();
        relay.restore();

        let ended = tokio::time::timeout(Duration::from_secs(30), live.recv())
            .await
            .expect("the watch ended in time");
        assert_eq!(ended.unwrap_err(), FeedEnded::Expired);
        assert!(cache.get("/k/a").is_none());
        assert!(cache.get("/k/b").is_some());
        // And the cache follows again.
        let c = writer.write(put("/k/c", "{}")).await.unwrap().revision;
        assert!(cache.wait_for(c, Duration::from_secs(10)).await);
        assert!(cache.get("/k/c").is_some());
    }

    #[tokio::test]
    async fn compaction_keeps_a_window_and_replicas_may_compact_together() {
        let etcd = Etcd::start();
        let prefix = fresh_prefix();
        let one = connect(etcd.endpoints(), &prefix).await;
        let two = connect(etcd.endpoints(), &prefix).await;
        let first = one.write(put("/a", "1")).await.unwrap().revision;
        // Nothing is compacted by the first round: it only notes where the next one stops.
        one.compact().await.unwrap();
        two.compact().await.unwrap();
        let mut client = raw(&etcd).await;
        let old = GetOptions::new().with_revision(first as i64);
        client.get("/", Some(old.clone())).await.unwrap();
        one.write(put("/b", "1")).await.unwrap();
        one.compact().await.unwrap();
        // The other replica's target is already compacted: that is not an error.
        two.compact().await.unwrap();
        two.compact().await.unwrap();
        let err = client.get("/", Some(old)).await.unwrap_err();
        assert!(describe(&err).contains(COMPACTED), "{err}");
    }

    #[tokio::test]
    async fn tls_with_client_certificates() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
        let dir = crate::conformance::tempdir();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.clone().self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let issue = |name: &str, sans: Vec<SanType>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
            params.subject_alt_names.extend(sans);
            let cert = params.signed_by(&key, &issuer).unwrap();
            let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
            std::fs::write(&cert_file, cert.pem()).unwrap();
            std::fs::write(&key_file, key.serialize_pem()).unwrap();
            (cert_file, key_file)
        };
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let (server_cert, server_key) = issue("localhost", vec![SanType::IpAddress([127, 0, 0, 1].into())]);
        let (client_cert, client_key) = issue("faros-hub", vec![]);
        let etcd = Etcd::start_tls(faros_testkit::etcd::Tls {
            cert_file: server_cert,
            key_file: server_key,
            client_ca_file: ca_file.clone(),
        });
        let mut with_certificate = options(etcd.endpoints(), &fresh_prefix());
        with_certificate.ca_file = Some(ca_file.clone());
        with_certificate.cert_file = Some(client_cert);
        with_certificate.key_file = Some(client_key);
        let backend = EtcdBackend::connect(with_certificate).await.unwrap();
        let written = backend.write(put("/a", "1")).await.unwrap().revision;
        assert_eq!(backend.snapshot().await.unwrap().revision, written);
        // Without a client certificate the member refuses the connection.
        let mut without = options(etcd.endpoints(), &fresh_prefix());
        without.ca_file = Some(ca_file);
        assert!(EtcdBackend::connect(without).await.is_err());
    }

    fn etcd_port(etcd: &Etcd) -> u16 {
        etcd.endpoint(0).rsplit(':').next().unwrap().parse().unwrap()
    }
}
