//! The WebSocket side: remote commands over `v5.channel.k8s.io`/`v4.channel.k8s.io`, and a byte
//! tunnel for the SPDY frames of `SPDY/3.1+portforward.k8s.io`.
//!
//! Every message is binary. For remote commands the first byte is the channel (0 stdin,
//! 1 stdout, 2 stderr, 3 error, 4 resize, 255 close signal, apimachinery
//! `pkg/util/remotecommand/constants.go`); for the tunnel messages are arbitrary slices of one
//! byte stream.
//!
//! The reader waits while stdin's consumer is behind, and tungstenite answers pings only while
//! it reads: kubectl ≥ 1.30 allows 61 s without a pong (1.29 only 16 s), so a consumer should
//! not stop reading stdin for longer than that.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::exec::{ExecOptions, ExecSession, Finisher, Output, Resizes, Stdin, TerminalSize, spawn_if_in_runtime};
use crate::pipe::{self, ChunkWriter, Framing, Outbox, Queued};
use crate::status::ExecOutcome;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5 only: `[255, channel]` says the client closed that channel (its stdin).
const CLOSE: u8 = 255;

/// How long after the upgrade a remote command's first message waits. client-go's WebSocket
/// executor as kubectl 1.30 to 1.33 ship it (fixed upstream in 2025) starts reading the connection before it has registered its streams and
/// drops, with "Unknown stream id", whatever arrives in between; a device answers fast enough
/// through the tunnel to land there (an `echo` came back empty under load). Real kubelets are
/// slow enough to start a command that clients never see this; the hold gives every client
/// that margin, costs an interactive session nothing it would notice, and is spent anyway by
/// commands that take longer to start.
const FIRST_MESSAGE_HOLD: Duration = Duration::from_millis(100);

/// Bounds what one message can make us buffer; kubectl writes at most 32 KiB per message.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

pub(crate) enum WsOut {
    Message(Message),
    /// Send Close 1000 and stop writing.
    Close,
}

/// Frames a channel's data as `[channel][payload]` binary messages.
#[derive(Clone)]
pub(crate) struct ChannelFraming(u8);

impl Framing for ChannelFraming {
    type Item = WsOut;
    fn data(&self, chunk: Bytes) -> WsOut {
        let mut message = BytesMut::with_capacity(chunk.len() + 1);
        message.put_u8(self.0);
        message.put_slice(&chunk);
        WsOut::Message(Message::Binary(message.freeze()))
    }
    fn fin(&self) -> Option<WsOut> {
        // Channels end together, with the Close after the status.
        None
    }
}

pub(crate) struct ExecFinisher {
    outbox: Outbox<WsOut>,
    reader: JoinHandle<()>,
}

impl ExecFinisher {
    pub(crate) fn end(self, outcome: ExecOutcome, grace: Duration) -> bool {
        let mut status = BytesMut::new();
        status.put_u8(ERROR);
        status.put_slice(&outcome.status_json());
        // Only 1000 counts as a clean end for client-go; anything else is exit code 1.
        let sent = self.outbox.send_now(WsOut::Message(Message::Binary(status.freeze())))
            && self.outbox.send_now(WsOut::Close);
        // Keep reading for the client's Close reply for a while, then let the connection go.
        let reader = self.reader;
        spawn_if_in_runtime(async move {
            tokio::time::sleep(grace).await;
            reader.abort();
        });
        sent
    }
}

pub(crate) async fn accept_exec<IO>(io: IO, options: &ExecOptions, v5: bool) -> ExecSession
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
    let (mut sink, mut stream) = ws.split();
    let (outbox, mut out_rx) = Outbox::<WsOut>::new();
    let hold_until = tokio::time::Instant::now() + FIRST_MESSAGE_HOLD;
    tokio::spawn(async move {
        tokio::time::sleep_until(hold_until).await;
        while let Some(Queued { item, _permit }) = out_rx.recv().await {
            let result = match item {
                WsOut::Message(message) => sink.send(message).await,
                WsOut::Close => {
                    let close = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                }
            };
            if result.is_err() {
                break;
            }
        }
        // Writes after this fail, rather than queue for a connection that is gone.
        out_rx.close();
    });

    let (stdin_feed, stdin) = match options.stdin {
        true => {
            let (feed, reader) = pipe::chunk_pipe();
            (Some(feed), Some(Stdin(reader)))
        }
        false => (None, None),
    };
    let (resize_tx, resizes) = match options.tty {
        true => {
            let (tx, rx) = watch::channel(None);
            (Some(tx), Some(Resizes(rx)))
        }
        false => (None, None),
    };
    let (done_tx, client_done) = watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut stdin = stdin_feed;
        while let Some(Ok(message)) = stream.next().await {
            let Message::Binary(data) = message else {
                if matches!(message, Message::Close(_)) {
                    break;
                }
                continue;
            };
            match data.first() {
                Some(&STDIN) => {
                    if let Some(feed) = &stdin
                        && !feed.feed(data.slice(1..)).await
                    {
                        stdin = None;
                    }
                }
                Some(&RESIZE) => {
                    if let (Some(tx), Ok(size)) = (&resize_tx, serde_json::from_slice::<TerminalSize>(&data[1..])) {
                        tx.send_replace(Some(size));
                    }
                }
                Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
        // A client that left without closing stdin did not mean EOF.
        if let Some(feed) = stdin {
            feed.reset();
        }
        let _ = done_tx.send(true);
    });

    let output = |channel| {
        let writer = ChunkWriter::new(ChannelFraming(channel), outbox.clone(), Default::default());
        Output(Box::new(writer))
    };
    ExecSession {
        stdin,
        stdout: options.stdout.then(|| output(STDOUT)),
        stderr: (options.stderr && !options.tty).then(|| output(STDERR)),
        resizes,
        finisher: Some(Finisher::WebSocket(ExecFinisher { outbox, reader })),
        client_done,
    }
}

/// Carries a byte stream in binary messages: what the returned end reads is the concatenated
/// payloads the client sent, and each write goes out as one message. Text messages end it.
pub(crate) async fn byte_tunnel<IO>(io: IO) -> DuplexStream
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await;
    let (ours, theirs) = tokio::io::duplex(pipe::MAX_CHUNK * 2);
    let (mut sink, mut stream) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let inbound = async {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Binary(data) => {
                        if to_session.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    // tungstenite answers pings itself while we read.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    Message::Text(_) | Message::Close(_) => break,
                }
            }
            let _ = to_session.shutdown().await;
        };
        let outbound = async {
            let mut buf = vec![0u8; pipe::MAX_CHUNK];
            while let Ok(n @ 1..) = from_session.read(&mut buf).await {
                if sink
                    .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let close = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(close))).await;
        };
        tokio::pin!(inbound);
        tokio::select! {
            () = &mut inbound => {}
            () = outbound => {
                // Give the client a moment to answer our Close.
                let _ = tokio::time::timeout(Duration::from_secs(5), inbound).await;
            }
        }
    });
    ours
}
