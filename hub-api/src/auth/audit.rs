//! The audit log (`--audit-log-path`): one JSON line per request with who (user, groups,
//! impersonator), where (workspace), what (verb, group, resource, subresource, namespace,
//! name, URI), the response code and the latency. Request and response bodies are never
//! recorded. Lines go through a bounded channel to a writer task, so a request never waits
//! on the disk; if the writer falls behind, lines are dropped and counted.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::User;

/// What is known about a request, filled in as it is routed.
#[derive(Debug, Default, Clone)]
pub struct Record {
    pub method: String,
    pub uri: String,
    pub user: Option<User>,
    pub impersonator: Option<User>,
    pub workspace: String,
    pub cluster: String,
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For a request through an APIExport's view: `<export's logical cluster>:<export>`,
    /// the export whose owner's access authorized it.
    pub api_export: Option<String>,
}

impl Record {
    pub fn new(method: &http::Method, uri: &http::Uri) -> Record {
        Record {
            method: method.to_string(),
            uri: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string(),
            ..Record::default()
        }
    }

    fn to_json(&self, code: u16, latency: Duration) -> Value {
        let user = |u: &Option<User>| {
            u.as_ref()
                .map(|u| json!({"username": u.name, "uid": u.uid, "groups": u.groups}))
        };
        let mut line = json!({
            "time": jiff::Timestamp::now().to_string(),
            "auditID": uuid::Uuid::new_v4().to_string(),
            "method": self.method,
            "requestURI": self.uri,
            "user": self.user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
            "groups": self.user.as_ref().map(|u| u.groups.clone()).unwrap_or_default(),
            "workspace": self.workspace,
            "cluster": self.cluster,
            "verb": self.verb,
            "apiGroup": self.group,
            "apiVersion": self.version,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
            "code": code,
            "latencyMs": latency.as_secs_f64() * 1000.0,
        });
        if let Some(export) = &self.api_export {
            line["apiExport"] = export.clone().into();
        }
        if self.impersonator.is_some() {
            line["impersonatedBy"] = user(&self.impersonator).unwrap_or(Value::Null);
        }
        line
    }
}

/// What a streaming session (exec, port-forward) did, recorded when it ends: where it ran,
/// the command, how long it lasted and how many bytes went each way; never the bytes.
#[derive(Debug, Clone)]
pub struct Session {
    /// `<namespace>/<agent>`: the device the session reached.
    pub device: String,
    pub command: Vec<String>,
    pub started: Instant,
    /// From the client towards the device.
    pub bytes_in: u64,
    /// From the device back to the client.
    pub bytes_out: u64,
    /// How it ended: an exit code, or what went wrong.
    pub outcome: String,
}

/// The sending side of the audit log.
pub struct AuditLog {
    tx: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// Lines buffered between requests and the writer.
const QUEUE: usize = 65_536;

impl AuditLog {
    /// Opens (appending, mode 0600) `path` and starts the writer task.
    pub fn open(path: &Path) -> anyhow::Result<AuditLog> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        // A plain task (not a blocking thread) so that it never holds up runtime shutdown;
        // writes go to the page cache and take microseconds.
        tokio::spawn(async move {
            let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
            let mut reported = 0;
            while let Some(line) = rx.recv().await {
                let mut ok = out.write_all(&line).is_ok();
                // Drain what else is queued, then flush once for the whole batch.
                while let Ok(line) = rx.try_recv() {
                    ok &= out.write_all(&line).is_ok();
                }
                ok &= out.flush().is_ok();
                if !ok {
                    tracing::warn!("writing the audit log failed");
                }
                let lost = counter.load(Ordering::Relaxed);
                if lost > reported {
                    tracing::warn!(lines = lost - reported, "audit lines dropped: the writer fell behind");
                    reported = lost;
                }
            }
            let _ = out.flush();
        });
        Ok(AuditLog { tx, dropped })
    }

    /// Queues one line; never blocks.
    pub fn log(&self, record: &Record, code: u16, started: Instant) {
        self.queue(&record.to_json(code, started.elapsed()));
    }

    /// Queues the line of a streaming session that ended (the request's own line, with its
    /// 101, was written when the session began).
    pub fn session(&self, record: &Record, session: &Session) {
        let mut line = record.to_json(101, session.started.elapsed());
        line["stage"] = "SessionEnded".into();
        line["device"] = session.device.clone().into();
        if !session.command.is_empty() {
            line["command"] = session.command.clone().into();
        }
        line["bytesIn"] = session.bytes_in.into();
        line["bytesOut"] = session.bytes_out.into();
        line["outcome"] = session.outcome.clone().into();
        self.queue(&line);
    }

    fn queue(&self, value: &Value) {
        let mut line = serde_json::to_vec(value).unwrap_or_default();
        line.push(b'\n');
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
