//! What travels on the tunnel's streams besides the exchanged bodies: the session numbers the
//! hub sends down the control stream, and the request and response heads that open each
//! accepted stream.
//!
//! A head is `[length: u32][payload]`, big-endian, the payload binary so that every header
//! value crosses unchanged (HTTP allows bytes that are not UTF-8):
//!
//! - request: `[method: u16 + bytes][target: u32 + bytes][headers]`
//! - response: `[status: u16][headers]`
//! - headers: `[count: u16]` then `[name: u16 + bytes][value: u32 + bytes]` each.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// The largest head either end accepts (names, values and target together).
pub const MAX_HEAD: usize = 64 * 1024;

/// A session number as the control stream carries it.
pub fn session_frame(id: u64) -> Bytes {
    Bytes::copy_from_slice(&id.to_be_bytes())
}

/// Session numbers out of a control stream that arrives in arbitrary pieces.
#[derive(Default)]
pub struct SessionReader {
    buf: BytesMut,
}

impl SessionReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn next_session(&mut self) -> Option<u64> {
        (self.buf.len() >= 8).then(|| self.buf.get_u64())
    }
}

/// Why a head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("the stream ended before its head")]
    Ended,
    #[error("a head of {0} bytes is larger than the {MAX_HEAD} allowed")]
    TooLarge(usize),
    #[error("malformed head: {0}")]
    Malformed(String),
    #[error("reading the head: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The head of a request to the device.
pub fn encode_request_head(method: &Method, target: &Uri, headers: &HeaderMap) -> Bytes {
    let target = target.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut payload = BytesMut::new();
    put_short(&mut payload, method.as_str().as_bytes());
    put_long(&mut payload, target.as_bytes());
    put_headers(&mut payload, headers);
    framed(payload)
}

/// The head of the device's answer.
pub fn encode_response_head(status: StatusCode, headers: &HeaderMap) -> Bytes {
    let mut payload = BytesMut::new();
    payload.put_u16(status.as_u16());
    put_headers(&mut payload, headers);
    framed(payload)
}

/// Reads a request head off the front of `body`: the request, its body what follows.
pub async fn read_request<B>(body: B) -> Result<http::Request<Prefixed<B>>, HeadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut payload, rest) = read_head(body).await?;
    let method = Method::from_bytes(&take_short(&mut payload)?).map_err(malformed)?;
    let target = Uri::from_maybe_shared(take_long(&mut payload)?).map_err(malformed)?;
    let headers = take_headers(&mut payload)?;
    let mut request = http::Request::new(rest);
    *request.method_mut() = method;
    *request.uri_mut() = target;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Reads a response head off the front of `body`: the response, its body what follows.
pub async fn read_response<B>(body: B) -> Result<http::Response<Prefixed<B>>, HeadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut payload, rest) = read_head(body).await?;
    if payload.remaining() < 2 {
        return Err(HeadError::Malformed("no status".into()));
    }
    let status = StatusCode::from_u16(payload.get_u16()).map_err(malformed)?;
    let headers = take_headers(&mut payload)?;
    let mut response = http::Response::new(rest);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A body that yields `prefix` first, then `inner`: what was read past a head, put back.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    inner: B,
}

impl<B> Prefixed<B> {
    pub fn new(prefix: Bytes, inner: B) -> Prefixed<B> {
        Prefixed {
            prefix: (!prefix.is_empty()).then_some(prefix),
            inner,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Prefixed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if let Some(prefix) = &self.prefix {
            let extra = prefix.len() as u64;
            hint.set_lower(hint.lower() + extra);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + extra);
            }
        }
        hint
    }
}

fn framed(payload: BytesMut) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + payload.len());
    out.put_u32(payload.len() as u32);
    out.extend_from_slice(&payload);
    out.freeze()
}

fn put_short(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn put_long(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn put_headers(out: &mut BytesMut, headers: &HeaderMap) {
    out.put_u16(headers.len() as u16);
    for (name, value) in headers {
        put_short(out, name.as_str().as_bytes());
        put_long(out, value.as_bytes());
    }
}

/// The payload of the head at the front of `body`, and the body past it.
async fn read_head<B>(mut body: B) -> Result<(Bytes, Prefixed<B>), HeadError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut buf = BytesMut::new();
    let mut need: Option<usize> = None;
    loop {
        if need.is_none() && buf.len() >= 4 {
            let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if length > MAX_HEAD {
                return Err(HeadError::TooLarge(length));
            }
            need = Some(4 + length);
        }
        if let Some(total) = need
            && buf.len() >= total
        {
            let mut head = buf.split_to(total).freeze();
            head.advance(4);
            return Ok((head, Prefixed::new(buf.freeze(), body)));
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(HeadError::Body(e.into())),
            None => return Err(HeadError::Ended),
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> HeadError {
    HeadError::Malformed(e.to_string())
}

fn take(payload: &mut Bytes, len: usize, what: &str) -> Result<Bytes, HeadError> {
    if payload.remaining() < len {
        return Err(HeadError::Malformed(format!("{what} runs past the head")));
    }
    Ok(payload.split_to(len))
}

fn take_short(payload: &mut Bytes) -> Result<Bytes, HeadError> {
    let len = take(payload, 2, "a length")?.get_u16() as usize;
    take(payload, len, "a field")
}

fn take_long(payload: &mut Bytes) -> Result<Bytes, HeadError> {
    let len = take(payload, 4, "a length")?.get_u32() as usize;
    take(payload, len, "a field")
}

fn take_headers(payload: &mut Bytes) -> Result<HeaderMap, HeadError> {
    let count = take(payload, 2, "the header count")?.get_u16() as usize;
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        let name = HeaderName::from_bytes(&take_short(payload)?).map_err(malformed)?;
        let value = HeaderValue::from_maybe_shared(take_long(payload)?).map_err(malformed)?;
        headers.append(name, value);
    }
    if payload.has_remaining() {
        return Err(HeadError::Malformed("bytes after the headers".into()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    /// A body that delivers `bytes` in pieces of `piece` bytes.
    fn pieces(bytes: Bytes, piece: usize) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = bytes
            .chunks(piece)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures::stream::iter(chunks))
    }

    async fn rest<B: Body<Data = Bytes> + Unpin>(body: B) -> Bytes
    where
        B::Error: std::fmt::Debug,
    {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn heads_cross_whole_in_any_pieces() {
        let mut headers = HeaderMap::new();
        headers.insert("x-latin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        let target: Uri = "/v1/proxy/8080/a%20b?x=1&y=2".parse().unwrap();
        let head = encode_request_head(&Method::PATCH, &target, &headers);
        for piece in [1, 3, 7, 4096] {
            let mut stream = BytesMut::from(&head[..]);
            stream.extend_from_slice(b"the body");
            let request = read_request(pieces(stream.freeze(), piece)).await.unwrap();
            assert_eq!(request.method(), Method::PATCH);
            assert_eq!(request.uri(), &target);
            assert_eq!(request.headers(), &headers);
            assert_eq!(rest(request.into_body()).await, "the body");
        }
        let head = encode_response_head(StatusCode::BAD_GATEWAY, &headers);
        let response = read_response(Full::new(head)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers(), &headers);
        assert_eq!(rest(response.into_body()).await, "");
    }

    #[tokio::test]
    async fn bad_heads_are_errors() {
        let huge = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read_response(Full::new(huge)).await,
            Err(HeadError::TooLarge(_))
        ));
        let cut = encode_response_head(StatusCode::OK, &HeaderMap::new()).slice(..5);
        assert!(matches!(read_response(Full::new(cut)).await, Err(HeadError::Ended)));
        let garbage = Bytes::from_static(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read_request(Full::new(garbage.clone())).await,
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            read_response(Full::new(garbage)).await,
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn session_numbers_arrive_in_pieces() {
        let mut reader = SessionReader::default();
        let mut stream = session_frame(7).to_vec();
        stream.extend_from_slice(&session_frame(u64::MAX));
        for chunk in stream.chunks(3) {
            reader.push(chunk);
        }
        assert_eq!(reader.next_session(), Some(7));
        assert_eq!(reader.next_session(), Some(u64::MAX));
        assert_eq!(reader.next_session(), None);
    }
}
