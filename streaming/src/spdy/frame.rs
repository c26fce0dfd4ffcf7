//! SPDY/3.1 frames on the wire: the 8-byte frame header, the control frames a server meets, and
//! header blocks compressed as one zlib stream per direction against the SPDY/3 dictionary.
//!
//! Everything here is synchronous and bounded: frames longer than the configured limit and
//! header blocks that inflate past theirs are protocol errors, never allocations.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use crate::dictionary::SPDY3_DICTIONARY;

/// Every frame header is 8 bytes: control bit, version and type, or the stream id, then flags
/// and a 24-bit length.
pub(crate) const HEADER_LEN: usize = 8;

const VERSION: u16 = 3;
const FLAG_FIN: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (SPDY/3 section 2.6.3) used by the session.
pub(crate) mod rst {
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
    pub(crate) const REFUSED_STREAM: u32 = 3;
    pub(crate) const CANCEL: u32 = 5;
}

/// GOAWAY status codes (section 2.6.6).
pub(crate) mod goaway {
    pub(crate) const OK: u32 = 0;
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
}

/// Name/value pairs of a header block, names lowercase as SPDY/3 requires.
pub(crate) type HeaderList = Vec<(String, String)>;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream: u32,
        fin: bool,
        headers: HeaderList,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: HeaderList,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: HeaderList,
    },
    /// SETTINGS, WINDOW_UPDATE and control types this server has no use for: parsed far enough
    /// to be skipped. Flow control is deliberately not honoured (kubectl's spdystream never
    /// sends WINDOW_UPDATE, so a sender that waited for one would stall after 64 KiB).
    Ignored,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProtocolError {
    #[error("frame of {0} bytes is over the limit")]
    FrameTooLarge(usize),
    #[error("SPDY version {0} is not 3")]
    Version(u16),
    #[error("truncated {0} frame")]
    Truncated(&'static str),
    #[error("header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header block inflates past {0} bytes")]
    HeaderBlockTooLarge(usize),
}

/// The fixed part of a frame, parsed from its first [`HEADER_LEN`] bytes.
pub(crate) struct FrameHead {
    first: u32,
    flags: u8,
    pub(crate) len: usize,
}

impl FrameHead {
    pub(crate) fn parse(bytes: [u8; HEADER_LEN]) -> Self {
        let first = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let len = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize;
        FrameHead {
            first,
            flags: bytes[4],
            len,
        }
    }
}

/// Decodes frames and inflates the peer's header blocks, which form one zlib stream for the
/// whole connection: a block can only be read after every earlier one.
pub(crate) struct Decoder {
    inflate: Decompress,
    max_header_block: usize,
}

impl Decoder {
    pub(crate) fn new(max_header_block: usize) -> Self {
        Decoder {
            inflate: Decompress::new(true),
            max_header_block,
        }
    }

    /// Decodes one frame from its head and exactly `head.len` payload bytes.
    pub(crate) fn decode(&mut self, head: &FrameHead, payload: Bytes) -> Result<Frame, ProtocolError> {
        let fin = head.flags & FLAG_FIN != 0;
        if head.first & 0x8000_0000 == 0 {
            return Ok(Frame::Data {
                stream: head.first & 0x7fff_ffff,
                fin,
                data: payload,
            });
        }
        let version = ((head.first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(ProtocolError::Version(version));
        }
        let mut p = payload;
        match (head.first & 0xffff) as u16 {
            SYN_STREAM => {
                // stream id, associated stream id, priority and slot come before the block.
                let stream = stream_id(&mut p, 10, "SYN_STREAM")?;
                p.advance(6);
                let headers = self.header_block(&p)?;
                Ok(Frame::SynStream { stream, fin, headers })
            }
            SYN_REPLY => {
                let stream = stream_id(&mut p, 4, "SYN_REPLY")?;
                let headers = self.header_block(&p)?;
                Ok(Frame::SynReply { stream, fin, headers })
            }
            HEADERS => {
                let stream = stream_id(&mut p, 4, "HEADERS")?;
                let headers = self.header_block(&p)?;
                Ok(Frame::Headers { stream, fin, headers })
            }
            RST_STREAM => {
                let stream = stream_id(&mut p, 8, "RST_STREAM")?;
                Ok(Frame::RstStream {
                    stream,
                    status: p.get_u32(),
                })
            }
            PING => {
                if p.len() < 4 {
                    return Err(ProtocolError::Truncated("PING"));
                }
                Ok(Frame::Ping(p.get_u32()))
            }
            GOAWAY => {
                let last_good = stream_id(&mut p, 4, "GOAWAY")?;
                // SPDY/3 added the status; tolerate its absence rather than drop the session.
                let status = if p.len() >= 4 { p.get_u32() } else { goaway::OK };
                Ok(Frame::GoAway { last_good, status })
            }
            SETTINGS | WINDOW_UPDATE => Ok(Frame::Ignored),
            // Section 2.2.1: unknown control frames are ignored.
            _ => Ok(Frame::Ignored),
        }
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<HeaderList, ProtocolError> {
        let raw = self.inflate_block(compressed)?;
        parse_header_block(&raw)
    }

    fn inflate_block(&mut self, input: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let max = self.max_header_block;
        let mut out = Vec::with_capacity(max.min(1024));
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                if out.capacity() >= max {
                    return Err(ProtocolError::HeaderBlockTooLarge(max));
                }
                out.reserve_exact((out.capacity() * 2).min(max) - out.len());
            }
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let result = self
                .inflate
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - in_before) as usize;
            pos += consumed;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(SPDY3_DICTIONARY)
                        .map_err(|_| ProtocolError::HeaderBlock("peer's zlib dictionary is not SPDY/3's"))?;
                    continue;
                }
                Err(_) => return Err(ProtocolError::HeaderBlock("corrupt zlib stream")),
            }
            // Done once all input is in and zlib had room to spare for its output.
            if pos >= input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if consumed == 0 && out.len() == out_before && out.len() < out.capacity() {
                return Err(ProtocolError::HeaderBlock("zlib stream makes no progress"));
            }
        }
    }
}

fn stream_id(p: &mut Bytes, need: usize, what: &'static str) -> Result<u32, ProtocolError> {
    if p.len() < need {
        return Err(ProtocolError::Truncated(what));
    }
    Ok(p.get_u32() & 0x7fff_ffff)
}

/// Parses an inflated header block: a count, then length-prefixed names and values. Several
/// values of one name arrive joined by NUL; they are kept joined, as nothing here needs them split.
fn parse_header_block(mut raw: &[u8]) -> Result<HeaderList, ProtocolError> {
    fn field(raw: &mut &[u8]) -> Result<String, ProtocolError> {
        if raw.len() < 4 {
            return Err(ProtocolError::HeaderBlock("truncated length"));
        }
        let len = raw.get_u32() as usize;
        if raw.len() < len {
            return Err(ProtocolError::HeaderBlock("truncated field"));
        }
        let (text, rest) = raw.split_at(len);
        *raw = rest;
        String::from_utf8(text.to_vec()).map_err(|_| ProtocolError::HeaderBlock("field is not UTF-8"))
    }
    if raw.len() < 4 {
        return Err(ProtocolError::HeaderBlock("missing count"));
    }
    let count = raw.get_u32() as usize;
    // Each pair needs at least 8 bytes, so a count larger than that is a lie, not a reason to allocate.
    if count > raw.len() / 8 {
        return Err(ProtocolError::HeaderBlock("count exceeds the block"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = field(&mut raw)?;
        let value = field(&mut raw)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Encodes frames, compressing this side's header blocks as one zlib stream.
pub(crate) struct Encoder {
    deflate: Compress,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // Cannot fail on a fresh stream; if it ever did, the peer would reject our first block
        // and close the session, which is the right outcome anyway.
        let _ = deflate.set_dictionary(SPDY3_DICTIONARY);
        Encoder { deflate }
    }

    /// Appends `frame` to `out`. Frames this server never sends encode as nothing.
    pub(crate) fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        match frame {
            Frame::Data { stream, fin, data } => {
                out.put_u32(stream & 0x7fff_ffff);
                put_flags_len(out, *fin, data.len());
                out.put_slice(data);
            }
            Frame::SynReply { stream, fin, headers } => {
                let block = self.header_block(headers);
                control(out, SYN_REPLY, *fin, 4 + block.len());
                out.put_u32(*stream);
                out.put_slice(&block);
            }
            Frame::SynStream { stream, fin, headers } => {
                let block = self.header_block(headers);
                control(out, SYN_STREAM, *fin, 10 + block.len());
                out.put_u32(*stream);
                out.put_u32(0);
                out.put_u16(0);
                out.put_slice(&block);
            }
            Frame::Headers { stream, fin, headers } => {
                let block = self.header_block(headers);
                control(out, HEADERS, *fin, 4 + block.len());
                out.put_u32(*stream);
                out.put_slice(&block);
            }
            Frame::RstStream { stream, status } => {
                control(out, RST_STREAM, false, 8);
                out.put_u32(*stream);
                out.put_u32(*status);
            }
            Frame::Ping(id) => {
                control(out, PING, false, 4);
                out.put_u32(*id);
            }
            Frame::GoAway { last_good, status } => {
                control(out, GOAWAY, false, 8);
                out.put_u32(*last_good);
                out.put_u32(*status);
            }
            Frame::Ignored => {}
        }
    }

    fn header_block(&mut self, headers: &HeaderList) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            if self
                .deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            pos += (self.deflate.total_in() - before) as usize;
            if pos >= raw.len() && out.len() < out.capacity() {
                break;
            }
        }
        out
    }
}

fn control(out: &mut BytesMut, kind: u16, fin: bool, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    put_flags_len(out, fin, len);
}

fn put_flags_len(out: &mut BytesMut, fin: bool, len: usize) {
    out.put_u8(if fin { FLAG_FIN } else { 0 });
    // Callers keep frames far below 16 MiB; the mask only keeps a mistake from corrupting the flags.
    let len = (len as u32) & 0x00ff_ffff;
    out.put_slice(&len.to_be_bytes()[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(enc: &mut Encoder, dec: &mut Decoder, frame: &Frame) -> Frame {
        let mut buf = BytesMut::new();
        enc.encode(frame, &mut buf);
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&buf[..HEADER_LEN]);
        let head = FrameHead::parse(head);
        assert_eq!(head.len, buf.len() - HEADER_LEN);
        dec.decode(&head, buf.freeze().slice(HEADER_LEN..)).expect("decodes")
    }

    #[test]
    fn frames_round_trip_with_one_zlib_stream_per_direction() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new(64 * 1024));
        let syn = |id| Frame::SynStream {
            stream: id,
            fin: false,
            headers: vec![("streamtype".into(), "data".into()), ("port".into(), "8080".into())],
        };
        // The second block only decodes if the first one's zlib state carried over.
        assert_eq!(roundtrip(&mut enc, &mut dec, &syn(1)), syn(1));
        assert_eq!(roundtrip(&mut enc, &mut dec, &syn(3)), syn(3));
        for frame in [
            Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::from_static(b"hi"),
            },
            Frame::RstStream {
                stream: 5,
                status: rst::CANCEL,
            },
            Frame::Ping(7),
            Frame::GoAway {
                last_good: 3,
                status: goaway::OK,
            },
            Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![],
            },
        ] {
            assert_eq!(roundtrip(&mut enc, &mut dec, &frame), frame);
        }
    }

    #[test]
    fn a_header_bomb_is_refused() {
        let mut enc = Encoder::new();
        let big = "x".repeat(200_000);
        let mut buf = BytesMut::new();
        enc.encode(
            &Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![("a".into(), big)],
            },
            &mut buf,
        );
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&buf[..HEADER_LEN]);
        let err = Decoder::new(64 * 1024).decode(&FrameHead::parse(head), buf.freeze().slice(HEADER_LEN..));
        assert_eq!(err, Err(ProtocolError::HeaderBlockTooLarge(64 * 1024)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(1024);
        for payload in [
            &b""[..],
            b"\x00\x00\x00\x01",
            b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00garbage",
        ] {
            let head = FrameHead::parse([0x80, 3, 0, 1, 0, 0, 0, payload.len() as u8]);
            assert!(dec.decode(&head, Bytes::copy_from_slice(payload)).is_err());
        }
        let head = FrameHead::parse([0x80, 2, 0, 6, 0, 0, 0, 4]);
        assert_eq!(
            dec.decode(&head, Bytes::from_static(&[0; 4])),
            Err(ProtocolError::Version(2))
        );
    }
}
