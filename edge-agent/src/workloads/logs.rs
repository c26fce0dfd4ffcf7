//! A workload instance's log as `kubectl logs` asks for it (the `PodLogOptions` query:
//! `container`, `follow`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`,
//! `limitBytes`, `previous`), read on the device: `podman logs` for containers, the log
//! files of the process runtime for processes. The bytes come out as a stream of chunks;
//! what carries them to the hub is not this module's business.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::podman::{PodmanConfig, container_name};
use super::process::{STDERR, STDOUT};

/// How often a followed process log is checked for more.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// Chunks in flight between the reader and whoever sends them on.
const CHUNKS_IN_FLIGHT: usize = 16;
const CHUNK: usize = 16 * 1024;

/// What `kubectl logs` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub tail_lines: Option<u64>,
    /// RFC 3339, from `sinceTime` or computed from `sinceSeconds`.
    pub since: Option<String>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
    pub previous: bool,
}

impl LogOptions {
    /// Parses the query of a `pods/log` request; errors name the parameter.
    pub fn parse(query: &str) -> Result<LogOptions, String> {
        let mut opts = LogOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let flag = || matches!(value.as_ref(), "true" | "1" | "");
            let number = |what: &str| {
                value
                    .parse::<i64>()
                    .map_err(|_| format!("{what}: {value:?} is not a number"))
            };
            match key.as_ref() {
                "container" => opts.container = Some(value.to_string()).filter(|c| !c.is_empty()),
                "follow" => opts.follow = flag(),
                "timestamps" => opts.timestamps = flag(),
                "previous" => opts.previous = flag(),
                "tailLines" => {
                    let n = number("tailLines")?;
                    opts.tail_lines = Some(u64::try_from(n).map_err(|_| "tailLines: must be 0 or more".to_string())?);
                }
                "limitBytes" => {
                    let n = number("limitBytes")?;
                    if n < 1 {
                        return Err("limitBytes: must be greater than 0".into());
                    }
                    opts.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = number("sinceSeconds")?;
                    if n < 1 {
                        return Err("sinceSeconds: must be greater than 0".into());
                    }
                    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(n);
                    opts.since = Some(since.to_string());
                }
                "sinceTime" => {
                    let t: jiff::Timestamp = value
                        .parse()
                        .map_err(|_| format!("sinceTime: {value:?} is not an RFC 3339 time"))?;
                    opts.since = Some(t.to_string());
                }
                _ => {}
            }
        }
        Ok(opts)
    }
}

/// Why a log cannot be read; `bad_request` marks the caller's mistakes.
#[derive(Debug, PartialEq, Eq)]
pub struct LogError {
    pub bad_request: bool,
    pub message: String,
}

impl LogError {
    fn bad(message: impl Into<String>) -> LogError {
        LogError {
            bad_request: true,
            message: message.into(),
        }
    }
}

/// Where an instance's log lives.
pub enum LogSource<'a> {
    /// A container of the podman runtime.
    Podman {
        config: &'a PodmanConfig,
        placement: &'a str,
        container: &'a str,
    },
    /// The process of the process runtime: the files in its placement directory.
    Process { dir: PathBuf },
}

/// Starts reading; chunks arrive on the receiver until the log ends (or, following, until
/// the receiver is dropped or the instance goes away).
pub fn open(source: LogSource<'_>, opts: &LogOptions) -> Result<mpsc::Receiver<Bytes>, LogError> {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    match source {
        LogSource::Podman {
            config,
            placement,
            container,
        } => {
            if opts.previous {
                return Err(LogError::bad(
                    "previous: a restarted container keeps one log on this device; read it without --previous",
                ));
            }
            let mut command = tokio::process::Command::new(&config.binary);
            command.arg("logs");
            if opts.follow {
                command.arg("--follow");
            }
            if let Some(n) = opts.tail_lines {
                command.arg(format!("--tail={n}"));
            }
            if let Some(since) = &opts.since {
                command.arg(format!("--since={since}"));
            }
            if opts.timestamps {
                command.arg("--timestamps");
            }
            command
                .arg(container_name(placement, container))
                .envs(config.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = command.spawn().map_err(|e| LogError {
                bad_request: false,
                message: format!("running {}: {e}", config.binary.display()),
            })?;
            let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
                return Err(LogError {
                    bad_request: false,
                    message: "podman logs has no output pipes".into(),
                });
            };
            let limit = opts.limit_bytes;
            tokio::spawn(async move {
                // The container's stdout and stderr come out of podman's; both are the log.
                let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(limit.unwrap_or(u64::MAX)));
                let reader_gone = tx.clone();
                let a = pump(stdout, tx.clone(), budget.clone());
                let b = pump(stderr, tx, budget);
                // A quiet followed container may never give the pumps a chance to notice the
                // reader left: stop `podman logs` as soon as it has.
                tokio::select! {
                    _ = async { tokio::join!(a, b) } => {}
                    () = reader_gone.closed() => {}
                }
                let _ = child.kill().await;
            });
        }
        LogSource::Process { dir } => {
            if opts.since.is_some() || opts.timestamps {
                return Err(LogError::bad(
                    "the process runtime keeps no timestamps: --since, --since-time and --timestamps work for containers only",
                ));
            }
            if opts.previous {
                return Err(LogError::bad(
                    "previous: a restarted process keeps one log on this device; read it without --previous",
                ));
            }
            // The log as of the request, then what follows: where "now" is, is fixed here.
            let now = [STDOUT, STDERR].map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0));
            let opts = opts.clone();
            tokio::spawn(async move { follow_files(&dir, now, &opts, tx).await });
        }
    }
    Ok(rx)
}

/// Copies `from` into `tx` while the byte budget lasts.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Bytes>,
    budget: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let left = budget.load(Ordering::Relaxed);
        let take = (n as u64).min(left) as usize;
        budget.fetch_sub(take as u64, Ordering::Relaxed);
        if take > 0 && tx.send(Bytes::copy_from_slice(&buf[..take])).await.is_err() {
            return;
        }
        if take < n {
            return;
        }
    }
}

/// The last `n` lines of `text` (all of it without `n`).
fn tail(text: &[u8], n: Option<u64>) -> &[u8] {
    let Some(n) = n else { return text };
    if n == 0 {
        return &text[text.len()..];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// The process's output so far (the rotated file, then the current one; stdout, then
/// stderr), then, following, what each file gains, until the placement directory goes.
async fn follow_files(dir: &Path, mut offsets: [u64; 2], opts: &LogOptions, tx: mpsc::Sender<Bytes>) {
    let mut so_far = Vec::new();
    for (i, file) in [STDOUT, STDERR].iter().enumerate() {
        let rotated = tokio::fs::read(dir.join(format!("{file}.1"))).await.unwrap_or_default();
        let mut current = tokio::fs::read(dir.join(file)).await.unwrap_or_default();
        // Rotated since the request: all of it is new.
        if (current.len() as u64) < offsets[i] {
            offsets[i] = 0;
        }
        current.truncate(offsets[i] as usize);
        so_far.extend_from_slice(&rotated);
        so_far.extend_from_slice(&current);
    }
    let mut budget = opts.limit_bytes.unwrap_or(u64::MAX);
    let first = tail(&so_far, opts.tail_lines);
    let first = &first[..(first.len() as u64).min(budget) as usize];
    budget -= first.len() as u64;
    if !first.is_empty() && tx.send(Bytes::copy_from_slice(first)).await.is_err() {
        return;
    }
    if !opts.follow {
        return;
    }
    while budget > 0 && !tx.is_closed() {
        if tokio::fs::metadata(dir).await.is_err() {
            return;
        }
        for (i, file) in [STDOUT, STDERR].iter().enumerate() {
            let Ok(mut f) = tokio::fs::File::open(dir.join(file)).await else {
                continue;
            };
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            // Rotated (copied and truncated): read the new file from its start.
            if len < offsets[i] {
                offsets[i] = 0;
            }
            if len == offsets[i] || f.seek(std::io::SeekFrom::Start(offsets[i])).await.is_err() {
                continue;
            }
            let want = (len - offsets[i]).min(budget).min(CHUNK as u64 * 4) as usize;
            let mut buf = vec![0u8; want];
            let Ok(n) = f.read(&mut buf).await else { continue };
            offsets[i] += n as u64;
            budget -= n as u64;
            buf.truncate(n);
            if n > 0 && tx.send(Bytes::from(buf)).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_log_queries() {
        let o = LogOptions::parse("container=web&follow=true&tailLines=5&timestamps=true&limitBytes=100").unwrap();
        assert_eq!(o.container.as_deref(), Some("web"));
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(100)));
        let o = LogOptions::parse("sinceTime=2024-01-01T00%3A00%3A00Z&previous=true").unwrap();
        assert_eq!(o.since.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert!(o.previous);
        assert!(LogOptions::parse("sinceSeconds=600").unwrap().since.is_some());
        for bad in [
            "tailLines=x",
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=0",
            "sinceTime=yesterday",
        ] {
            let err = LogOptions::parse(bad).unwrap_err();
            assert!(err.starts_with(bad.split('=').next().unwrap()), "{bad}: {err}");
        }
    }

    #[test]
    fn tails() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(2)), b"b\nc");
        assert_eq!(tail(b"a\nb\n", Some(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Some(0)), b"");
        assert_eq!(tail(b"a\nb\n", None), b"a\nb\n");
    }

    #[tokio::test]
    async fn process_logs_tail_follow_and_limit() {
        let dir = std::env::temp_dir().join(format!("faros-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(STDOUT), b"one\ntwo\nthree\n").unwrap();
        std::fs::write(dir.join(STDERR), b"oops\n").unwrap();
        let collect = |mut rx: mpsc::Receiver<Bytes>| async move {
            let mut out = Vec::new();
            while let Some(chunk) = rx.recv().await {
                out.extend_from_slice(&chunk);
            }
            String::from_utf8(out).unwrap()
        };
        let opts = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        let rx = open(LogSource::Process { dir: dir.clone() }, &opts).unwrap();
        assert_eq!(collect(rx).await, "three\noops\n");
        let opts = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        let rx = open(LogSource::Process { dir: dir.clone() }, &opts).unwrap();
        assert_eq!(collect(rx).await, "one\nt");
        // Following: what is appended arrives; the stream ends when the placement goes.
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(0),
            ..Default::default()
        };
        let mut rx = open(LogSource::Process { dir: dir.clone() }, &opts).unwrap();
        {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(dir.join(STDOUT)).unwrap();
            f.write_all(b"four\n").unwrap();
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&chunk[..], b"four\n");
        std::fs::remove_dir_all(&dir).unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap();
        assert!(end.is_none());
        // Timestamps are not recorded for processes: said so, not ignored.
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert!(open(LogSource::Process { dir }, &opts).unwrap_err().bad_request);
    }
}
