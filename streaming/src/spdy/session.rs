//! A server-side SPDY/3.1 session over any byte stream: one task reads frames, one writes
//! them, and each stream the client opens is handed out as a pair of byte pipes.
//!
//! Only what kubectl's spdystream client needs is implemented: the client opens every stream,
//! the server answers each SYN_STREAM with an empty SYN_REPLY at once, echoes PINGs, honours
//! FIN and RST_STREAM, and says GOAWAY when it closes. Send-side flow control is deliberately
//! absent (see [`super::frame::Frame::Ignored`]); back-pressure is the byte stream's own.
//! That means one stream whose consumer stops reading holds up the reader, and with it every
//! other stream and PING of the connection, as in spdystream. For kubectl that is one exec
//! session or one port-forward command per connection, so it only ever stalls its own user.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::frame::{self, Decoder, Encoder, Frame, FrameHead, HEADER_LEN, HeaderList, ProtocolError};
use crate::pipe::{self, ChunkFeed, ChunkReader, ChunkWriter, Framing, Outbox, Queued};

/// Bounds on what a peer may make the session hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Longest frame payload accepted; SPDY allows 16 MiB, kubectl writes at most 32 KiB.
    pub(crate) max_frame: usize,
    /// Largest inflated header block (kubectl's are under 100 bytes).
    pub(crate) max_header_block: usize,
    /// Streams open at once; port-forward uses two per forwarded TCP connection.
    pub(crate) max_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 256 * 1024,
            max_header_block: 16 * 1024,
            max_streams: 512,
        }
    }
}

/// What the writer task is told to do.
pub(crate) enum Out {
    Frame(Frame),
    /// Say GOAWAY, flush and close the byte stream.
    Close(u32),
}

/// Frames a stream's data as SPDY DATA frames, its end as an empty DATA+FIN.
#[derive(Clone)]
pub(crate) struct SpdyFraming(u32);

impl Framing for SpdyFraming {
    type Item = Out;
    fn data(&self, data: Bytes) -> Out {
        Out::Frame(Frame::Data {
            stream: self.0,
            fin: false,
            data,
        })
    }
    fn fin(&self) -> Option<Out> {
        Some(Out::Frame(Frame::Data {
            stream: self.0,
            fin: true,
            data: Bytes::new(),
        }))
    }
}

/// A stream the client opened: its headers and its two halves.
pub(crate) struct Stream {
    pub(crate) headers: HeaderList,
    pub(crate) reader: ChunkReader,
    pub(crate) writer: ChunkWriter<SpdyFraming>,
    /// Counts this stream against [`Limits::max_streams`] until dropped.
    _slot: StreamSlot,
}

impl Stream {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The caller's handle on a running session.
pub(crate) struct Session {
    outbox: Outbox<Out>,
    reader_done: watch::Receiver<bool>,
}

impl Session {
    /// Starts the reader and writer tasks on `io`; streams the client opens arrive on the receiver.
    pub(crate) fn start<IO>(io: IO, limits: Limits) -> (Session, mpsc::Receiver<Stream>)
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(io);
        let (outbox, out_rx) = Outbox::new();
        let (stream_tx, stream_rx) = mpsc::channel(16);
        let (done_tx, done_rx) = watch::channel(false);
        let last_accepted = Arc::new(AtomicU32::new(0));
        tokio::spawn(write_loop(write_half, out_rx, last_accepted.clone()));
        let reader = Reader {
            outbox: outbox.clone(),
            limits,
            decoder: Decoder::new(limits.max_header_block),
            feeds: HashMap::new(),
            open: Arc::new(AtomicUsize::new(0)),
            last_accepted: last_accepted.clone(),
            new_streams: Some(stream_tx),
        };
        tokio::spawn(async move {
            if let Err(e) = reader.run(read_half).await {
                tracing::debug!(error = %e, "SPDY session ended");
            }
            let _ = done_tx.send(true);
        });
        (
            Session {
                outbox,
                reader_done: done_rx,
            },
            stream_rx,
        )
    }

    /// Changes to true once the client's side of the connection has ended.
    pub(crate) fn client_done(&self) -> watch::Receiver<bool> {
        self.reader_done.clone()
    }

    /// Closes the session once everything queued so far is written: waits up to `grace` for the
    /// client to hang up first (kubectl does once it has read every stream), then says GOAWAY.
    pub(crate) async fn close(mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, self.reader_done.wait_for(|done| *done)).await;
        self.outbox.send_now(Out::Close(frame::goaway::OK));
    }
}

struct Reader {
    outbox: Outbox<Out>,
    limits: Limits,
    decoder: Decoder,
    /// Streams whose client half is still open.
    feeds: HashMap<u32, ChunkFeed>,
    open: Arc<AtomicUsize>,
    last_accepted: Arc<AtomicU32>,
    /// Dropped after GOAWAY from the client or a full consumer: no new streams then.
    new_streams: Option<mpsc::Sender<Stream>>,
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl Reader {
    async fn run<R: AsyncRead + Unpin>(mut self, mut io: R) -> Result<(), ReadError> {
        let result = self.read_frames(&mut io).await;
        if let Err(ReadError::Protocol(_)) = &result {
            // Tell the client why before the connection drops; it is allowed to be lost.
            self.outbox.send_now(Out::Close(frame::goaway::PROTOCOL_ERROR));
        }
        // The connection is gone: every stream the client had not finished ends abnormally.
        for (_, feed) in self.feeds.drain() {
            feed.reset();
        }
        result
    }

    async fn read_frames<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<(), ReadError> {
        loop {
            let mut head = [0u8; HEADER_LEN];
            match io.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let head = FrameHead::parse(head);
            if head.len > self.limits.max_frame {
                return Err(ProtocolError::FrameTooLarge(head.len).into());
            }
            let mut payload = BytesMut::zeroed(head.len);
            io.read_exact(&mut payload).await?;
            let frame = self.decoder.decode(&head, payload.freeze())?;
            self.handle(frame).await;
        }
    }

    async fn handle(&mut self, frame: Frame) {
        match frame {
            Frame::SynStream { stream, fin, headers } => self.accept(stream, fin, headers).await,
            Frame::Data { stream, fin, data } => {
                if let Some(feed) = self.feeds.get(&stream)
                    && !feed.feed(data).await
                {
                    // Nobody reads this stream any more; drop what the client still sends.
                    self.feeds.remove(&stream);
                }
                if fin {
                    self.feeds.remove(&stream);
                }
            }
            Frame::Headers { stream, fin: true, .. } => {
                self.feeds.remove(&stream);
            }
            Frame::RstStream { stream, .. } => {
                if let Some(feed) = self.feeds.remove(&stream) {
                    feed.reset();
                }
            }
            // Client pings carry odd ids; even ones would be answers to pings this server never sends.
            Frame::Ping(id) if id % 2 == 1 => {
                self.outbox.send(Out::Frame(Frame::Ping(id)), 12).await;
            }
            Frame::GoAway { .. } => self.new_streams = None,
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Ping(_) | Frame::Ignored => {}
        }
    }

    async fn accept(&mut self, id: u32, fin: bool, headers: HeaderList) {
        let refuse = |outbox: &Outbox<Out>, status| {
            outbox.send_now(Out::Frame(Frame::RstStream { stream: id, status }));
        };
        // Clients open odd, increasing ids (SPDY/3 section 2.3.2).
        if id.is_multiple_of(2) || id <= self.last_accepted.load(Ordering::Acquire) {
            return refuse(&self.outbox, frame::rst::PROTOCOL_ERROR);
        }
        let Some(new_streams) = &self.new_streams else {
            return refuse(&self.outbox, frame::rst::REFUSED_STREAM);
        };
        if self.open.load(Ordering::Acquire) >= self.limits.max_streams {
            return refuse(&self.outbox, frame::rst::REFUSED_STREAM);
        }
        self.last_accepted.store(id, Ordering::Release);
        self.open.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot(self.open.clone());
        self.outbox
            .send(
                Out::Frame(Frame::SynReply {
                    stream: id,
                    fin: false,
                    headers: vec![],
                }),
                64,
            )
            .await;
        let (feed, reader) = pipe::chunk_pipe();
        let writer = ChunkWriter::new(SpdyFraming(id), self.outbox.clone(), feed.reset_flag());
        if !fin {
            self.feeds.insert(id, feed);
        }
        let stream = Stream {
            headers,
            reader,
            writer,
            _slot: slot,
        };
        if new_streams.send(stream).await.is_err() {
            // The consumer stopped taking streams (it drops the writer, which FINs, and the slot).
            self.new_streams = None;
            if let Some(feed) = self.feeds.remove(&id) {
                feed.reset();
            }
            refuse(&self.outbox, frame::rst::CANCEL);
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut io: W,
    mut rx: mpsc::UnboundedReceiver<Queued<Out>>,
    last_accepted: Arc<AtomicU32>,
) {
    let mut encoder = Encoder::new();
    let mut buf = BytesMut::with_capacity(pipe::MAX_CHUNK + 64);
    while let Some(queued) = rx.recv().await {
        let close = match &queued.item {
            Out::Frame(frame) => {
                encoder.encode(frame, &mut buf);
                None
            }
            Out::Close(status) => {
                let last_good = last_accepted.load(Ordering::Acquire);
                encoder.encode(
                    &Frame::GoAway {
                        last_good,
                        status: *status,
                    },
                    &mut buf,
                );
                Some(())
            }
        };
        // Batch whatever else is already queued into one write.
        if close.is_none() && buf.len() < pipe::MAX_CHUNK && !rx.is_empty() {
            drop(queued);
            continue;
        }
        let written = io.write_all(&buf).await.and(io.flush().await);
        buf.clear();
        drop(queued);
        if written.is_err() || close.is_some() {
            break;
        }
    }
    let _ = io.shutdown().await;
    // Anything still queued or sent later fails, so handles see BrokenPipe rather than hang.
    rx.close();
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// The client end of a session: kubectl's side, in frames.
    struct Client {
        io: DuplexStream,
        encoder: Encoder,
        decoder: Decoder,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut buf = BytesMut::new();
            self.encoder.encode(&frame, &mut buf);
            self.io.write_all(&buf).await.unwrap();
        }

        async fn recv(&mut self) -> Option<Frame> {
            let mut head = [0u8; HEADER_LEN];
            self.io.read_exact(&mut head).await.ok()?;
            let head = FrameHead::parse(head);
            let mut payload = BytesMut::zeroed(head.len);
            self.io.read_exact(&mut payload).await.unwrap();
            Some(self.decoder.decode(&head, payload.freeze()).unwrap())
        }

        async fn open(&mut self, id: u32, kind: &str) {
            let headers = vec![("streamtype".to_owned(), kind.to_owned())];
            self.send(Frame::SynStream {
                stream: id,
                fin: false,
                headers,
            })
            .await;
        }
    }

    fn start(limits: Limits) -> (Client, Session, mpsc::Receiver<Stream>) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (session, streams) = Session::start(ours, limits);
        let client = Client {
            io: theirs,
            encoder: Encoder::new(),
            decoder: Decoder::new(1 << 16),
        };
        (client, session, streams)
    }

    #[tokio::test]
    async fn streams_pings_fin_and_reset() {
        let (mut client, _session, mut streams) = start(Limits::default());
        client.send(Frame::Ping(1)).await;
        assert_eq!(client.recv().await, Some(Frame::Ping(1)));

        client.open(1, "stdin").await;
        assert_eq!(
            client.recv().await,
            Some(Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![]
            })
        );
        let mut stdin = streams.recv().await.unwrap();
        assert_eq!(stdin.header("streamtype"), Some("stdin"));
        client
            .send(Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::from_static(b"hi"),
            })
            .await;
        let mut got = Vec::new();
        stdin.reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hi");

        client.open(3, "stdout").await;
        client.recv().await;
        let mut stdout = streams.recv().await.unwrap();
        stdout.writer.write_all(b"out").await.unwrap();
        drop(stdout.writer);
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream: 3,
                fin: false,
                data: Bytes::from_static(b"out")
            })
        );
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::new()
            })
        );

        client.open(5, "data").await;
        client.recv().await;
        let mut data = streams.recv().await.unwrap();
        client
            .send(Frame::RstStream {
                stream: 5,
                status: frame::rst::CANCEL,
            })
            .await;
        let read = data.reader.read(&mut [0u8; 8]).await;
        assert_eq!(read.unwrap_err().kind(), ErrorKind::ConnectionReset);
        assert_eq!(
            data.writer.write(b"x").await.unwrap_err().kind(),
            ErrorKind::ConnectionReset
        );

        // Ids must grow: reusing one is a protocol error for that stream.
        client.open(3, "again").await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream: 3,
                status: frame::rst::PROTOCOL_ERROR
            })
        );
    }

    #[tokio::test]
    async fn streams_past_the_limit_are_refused() {
        let (mut client, _session, mut streams) = start(Limits {
            max_streams: 1,
            ..Limits::default()
        });
        client.open(1, "a").await;
        client.recv().await;
        let first = streams.recv().await.unwrap();
        client.open(3, "b").await;
        assert_eq!(
            client.recv().await,
            Some(Frame::RstStream {
                stream: 3,
                status: frame::rst::REFUSED_STREAM
            })
        );
        // Closing one (which FINs it) frees its slot.
        drop(first);
        assert_eq!(
            client.recv().await,
            Some(Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::new()
            })
        );
        client.open(5, "c").await;
        assert_eq!(
            client.recv().await,
            Some(Frame::SynReply {
                stream: 5,
                fin: false,
                headers: vec![]
            })
        );
    }

    #[tokio::test]
    async fn close_says_goaway_and_ends_the_connection() {
        let (mut client, session, _streams) = start(Limits::default());
        client.open(1, "a").await;
        client.recv().await;
        session.close(Duration::ZERO).await;
        assert_eq!(
            client.recv().await,
            Some(Frame::GoAway {
                last_good: 1,
                status: frame::goaway::OK
            })
        );
        assert_eq!(client.recv().await, None);
    }

    #[tokio::test]
    async fn an_oversized_frame_ends_the_session_with_a_protocol_error() {
        let (mut client, _session, _streams) = start(Limits {
            max_frame: 16,
            ..Limits::default()
        });
        client
            .send(Frame::Data {
                stream: 1,
                fin: false,
                data: Bytes::from_static(&[0; 17]),
            })
            .await;
        assert_eq!(
            client.recv().await,
            Some(Frame::GoAway {
                last_good: 0,
                status: frame::goaway::PROTOCOL_ERROR
            })
        );
        assert_eq!(client.recv().await, None);
    }
}
