//! HTTP/1.1 connections, served by Larder itself rather than by hyper.
//!
//! A lookup (`POST /get-online-features`) goes from the bytes read off the socket to the JSON
//! handler and back out in one `writev`: no `http::Request`, header map, body stream or router
//! on the way (hyper + axum cost about a quarter of a single-entity lookup's instructions).
//! Every other request is read the same way, then handed to the axum router as a complete
//! `http::Request` and its answer written back with a `content-length`.
//!
//! What the loop implements of RFC 9112: persistent connections (HTTP/1.1 by default, HTTP/1.0
//! with `connection: keep-alive`), pipelined requests answered in order, bodies framed by
//! `content-length` or `transfer-encoding: chunked` (trailers read and dropped),
//! `expect: 100-continue`, `HEAD`. Requests it cannot frame are answered 400 (bad syntax,
//! conflicting lengths, both framings, an HTTP/1.1 request without exactly one `Host`, HTTP/1.0
//! with a transfer coding), closed without an answer (a request line that is not HTTP/1.x), 413 (body over [`MAX_BODY_BYTES`]), 431 (head over
//! [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`] headers) or 501 (another transfer coding), and the
//! connection is closed after them. Once shutdown begins an idle connection is closed and a
//! request in progress is answered with `connection: close`.
//!
//! Limits ([`super::Limits`]): a head must be complete within the header timeout of its first
//! byte and a body within the body timeout of its head (else 408 and the connection closes); a
//! kept-alive connection waits the idle timeout for its next request; an answer must be written
//! within the write timeout. A body is buffered as its bytes arrive, never reserved from the
//! length it declares. Every request passes the endpoint's [`super::Gate`] before a handler
//! sees it, on the fast path and the router's alike.

use std::{cell::RefCell, io, mem::MaybeUninit};

use axum::{
    body::{Body, Bytes},
    http::{self, StatusCode},
};
use bytes::{Buf, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    time::Instant,
};
use tower::ServiceExt;

use super::{Denied, FastPath, Gate, Handlers, Limits, RequestParts};

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Request heads larger than this are refused with 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Requests with more headers than this are refused with 431.
pub const MAX_HEADERS: usize = 100;
/// Room kept free in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// An idle connection's read buffer larger than this is replaced by a small one.
const KEPT_CAPACITY: usize = 256 * 1024;

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// The parts of a request head the loop acts on; the head's bytes stay in the read buffer.
#[derive(Debug)]
struct Head {
    /// Bytes of the head, its final empty line included.
    len: usize,
    /// Answered by the endpoint's [`FastPath`], without the router.
    fast: bool,
    /// Set when the gate refused the request (it is answered with this, unread by handlers).
    denied: Option<Denied>,
    is_head: bool,
    http10: bool,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// A request the loop refuses before any handler sees it; the connection closes after.
#[derive(Debug, PartialEq)]
struct Refusal(StatusCode);

/// Parses a request head at the start of `buf` and puts it to the gate: `Ok(None)` when more
/// bytes are needed.
fn parse_head(buf: &[u8], fast: &impl FastPath, gate: &dyn Gate) -> Result<Option<Head>, Refusal> {
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        }
        // Not HTTP/1.x at all (an h2 client's damaged preface, say): see `serve`.
        Err(httparse::Error::Version) => {
            return Err(Refusal(StatusCode::HTTP_VERSION_NOT_SUPPORTED));
        }
        Err(_) => return Err(Refusal(StatusCode::BAD_REQUEST)),
    };
    let method = req.method.unwrap_or_default();
    let http10 = req.version == Some(0);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(Refusal(StatusCode::BAD_REQUEST))?;
            if length.is_some_and(|m| m != n) {
                return Err(Refusal(StatusCode::BAD_REQUEST));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // `chunked` alone, once: no other coding is implemented (RFC 9112 §6.1).
            let mut codings = tokens(h.value);
            match (codings.next(), codings.next()) {
                (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") && !chunked => chunked = true,
                _ => return Err(Refusal(StatusCode::NOT_IMPLEMENTED)),
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in tokens(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if h.value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = !http10;
            } else {
                return Err(Refusal(StatusCode::EXPECTATION_FAILED));
            }
        }
    }
    // An HTTP/1.1 request names its host exactly once; no request names two (RFC 9112 §3.2).
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(Refusal(StatusCode::BAD_REQUEST));
    }
    let framing = match (length, chunked) {
        // HTTP/1.0 has no transfer codings: such a message's framing is faulty (RFC 9112 §6.1).
        (_, true) if http10 => return Err(Refusal(StatusCode::BAD_REQUEST)),
        // Both framings at once is how requests are smuggled past proxies (RFC 9112 §6.3).
        (Some(_), true) => return Err(Refusal(StatusCode::BAD_REQUEST)),
        (_, true) => Framing::Chunked,
        (n, false) => Framing::Length(n.unwrap_or(0)),
    };
    if let Framing::Length(n) = framing
        && n > MAX_BODY_BYTES
    {
        return Err(Refusal(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let path = req.path.unwrap_or("/");
    Ok(Some(Head {
        len,
        fast: fast.handles(method, path),
        denied: gate
            .admit(&RequestParts::h1(method, path, req.headers))
            .err(),
        is_head: method == "HEAD",
        http10,
        framing,
        keep_alive: if http10 { keep_alive && !close } else { !close },
        expect_continue,
    }))
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// A chunked body being read: where the next chunk starts (relative to the body's start) and
/// the data so far.
#[derive(Default)]
struct Dechunk {
    pos: usize,
    body: Vec<u8>,
}

impl Dechunk {
    /// Reads the chunks `data` (the bytes after the head) holds from `pos` on: `Ok(true)` once
    /// the last chunk and the trailers are in.
    fn advance(&mut self, data: &[u8]) -> Result<bool, Refusal> {
        let bad = || Refusal(StatusCode::BAD_REQUEST);
        loop {
            let rest = &data[self.pos..];
            let (used, size) = match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete(x)) => x,
                Ok(httparse::Status::Partial) => return Ok(false),
                Err(_) => return Err(bad()),
            };
            if size == 0 {
                let mut trailers = [httparse::EMPTY_HEADER; 16];
                return match httparse::parse_headers(&rest[used..], &mut trailers) {
                    Ok(httparse::Status::Complete((n, _))) => {
                        self.pos += used + n;
                        Ok(true)
                    }
                    Ok(httparse::Status::Partial) => Ok(false),
                    Err(_) => Err(bad()),
                };
            }
            let size = usize::try_from(size).map_err(|_| bad())?;
            if self.body.len().saturating_add(size) > MAX_BODY_BYTES {
                return Err(Refusal(StatusCode::PAYLOAD_TOO_LARGE));
            }
            let Some(chunk) = rest.get(used..used + size + 2) else {
                return Ok(false);
            };
            if &chunk[size..] != b"\r\n" {
                return Err(bad());
            }
            self.body.extend_from_slice(&chunk[..size]);
            self.pos += used + size + 2;
        }
    }
}

/// Serves HTTP/1.1 requests on `io` until the peer closes, a request asks to close, a request
/// is refused or times out, the connection idles past the idle timeout, or `stop` turns true
/// while the connection is idle. `buf` holds bytes already read from `io` (the protocol
/// sniff's).
pub async fn serve<IO: AsyncRead + AsyncWrite + Unpin, F: FastPath>(
    io: &mut IO,
    buf: BytesMut,
    handlers: &Handlers<F>,
    limits: &Limits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let mut buf = Reported(buf);
    serve_requests(io, &mut buf.0, handlers, limits, stop).await
}

/// A connection's read buffer, reported to the thread's housekeeping when freed large.
struct Reported(BytesMut);

impl Drop for Reported {
    fn drop(&mut self) {
        super::freed(self.0.capacity());
    }
}

async fn serve_requests<IO: AsyncRead + AsyncWrite + Unpin, F: FastPath>(
    io: &mut IO,
    buf: &mut BytesMut,
    handlers: &Handlers<F>,
    limits: &Limits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    // Deadlines are read off the clock only when a wait needs one: a request that arrives
    // whole in one read needs just the idle one. The head's runs from the read that brought
    // its first bytes.
    let mut head_deadline: Option<Instant> = None;
    let mut timer = Timer::new(Instant::now() + limits.idle_timeout);
    loop {
        let head = loop {
            match parse_head(buf, &handlers.fast, &*handlers.gate) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() >= MAX_HEAD_BYTES => {
                    return refuse(io, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
                }
                Ok(None) => {}
                // A peer whose request line is not HTTP/1.x would not read an HTTP/1.1 answer
                // (an h2 client reads one as a frame): the connection is closed instead.
                Err(Refusal(StatusCode::HTTP_VERSION_NOT_SUPPORTED)) => {
                    return answer_and_close(io, &[]).await;
                }
                Err(Refusal(status)) => return refuse(io, status).await,
            }
            let deadline = match head_deadline {
                Some(d) => d,
                None if buf.is_empty() => Instant::now() + limits.idle_timeout,
                None => *head_deadline.insert(Instant::now() + limits.header_timeout),
            };
            match read_until(io, buf, deadline, &mut timer, stop).await? {
                Read::Data(_) => {}
                // Idle (nothing of a request has arrived): close without an answer.
                Read::Stopped => return io.shutdown().await,
                Read::TimedOut if buf.is_empty() => return io.shutdown().await,
                Read::TimedOut => return refuse(io, StatusCode::REQUEST_TIMEOUT).await,
                // The peer closed (mid-head: nothing to answer).
                Read::Closed => return Ok(()),
            }
        };

        // The body: borrowed from the buffer (content-length) or decoded (chunked), read as it
        // arrives within the body timeout.
        let mut body_deadline: Option<Instant> = None;
        let mut sent_continue = false;
        let mut dechunk = Dechunk::default();
        let consumed = loop {
            let have = buf.len() - head.len;
            let done = match head.framing {
                Framing::Length(n) => (have >= n).then_some(head.len + n),
                Framing::Chunked => match dechunk.advance(&buf[head.len..]) {
                    Ok(true) => Some(head.len + dechunk.pos),
                    Ok(false) => None,
                    Err(Refusal(status)) => return refuse(io, status).await,
                },
            };
            if let Some(end) = done {
                break end;
            }
            if head.denied.is_some() {
                // Not read for a request that is refused anyway: answered, then closed.
                break buf.len();
            }
            if head.expect_continue && !sent_continue {
                write_all(io, &[b"HTTP/1.1 100 Continue\r\n\r\n"], limits).await?;
                sent_continue = true;
            }
            let deadline =
                *body_deadline.get_or_insert_with(|| Instant::now() + limits.body_timeout);
            match read_until(io, buf, deadline, &mut timer, stop).await? {
                Read::Data(_) | Read::Stopped => {}
                Read::TimedOut => return refuse(io, StatusCode::REQUEST_TIMEOUT).await,
                // The peer closed mid-body.
                Read::Closed => return Ok(()),
            }
        };
        head_deadline = None;
        let body: &[u8] = match head.framing {
            Framing::Length(_) => &buf[head.len..consumed.min(buf.len())],
            Framing::Chunked => &dechunk.body,
        };

        let keep_alive = if let Some(denied) = &head.denied {
            let body = serde_json::to_string(&denied.message).expect("a string serializes");
            let mut out = ResponseHead::new(denied.code.http_status());
            out.header(b"content-type", b"application/json");
            out.finish(Some(body.len()), true, head.http10);
            return answer_and_close(io, &[&out.0, body.as_bytes()]).await;
        } else if head.fast {
            let answer = handlers.fast.answer(body).await;
            let close = !head.keep_alive || *stop.borrow();
            let mut out = ResponseHead::new(answer.status);
            out.header(b"content-type", answer.content_type.as_bytes());
            out.finish(Some(answer.body.len()), close, head.http10);
            write_all(io, &[&out.0, answer.body.as_bytes()], limits).await?;
            !close
        } else {
            let request = match to_request(&buf[..head.len], Bytes::copy_from_slice(body)) {
                Ok(r) => r,
                Err(Refusal(status)) => return refuse(io, status).await,
            };
            let response = handlers
                .router
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            let (parts, body) = response.into_parts();
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(error) => {
                    tracing::warn!(%error, "a response body failed; closing the connection");
                    return refuse(io, StatusCode::INTERNAL_SERVER_ERROR).await;
                }
            };
            let close = !head.keep_alive || *stop.borrow();
            let mut out = ResponseHead::new(parts.status.as_u16());
            // A HEAD answer's body is empty: its length is the one the router stated.
            for (name, value) in &parts.headers {
                if (name != http::header::CONTENT_LENGTH || head.is_head)
                    && name != http::header::TRANSFER_ENCODING
                    && name != http::header::CONNECTION
                {
                    out.header(name.as_str().as_bytes(), value.as_bytes());
                }
            }
            let bodiless = parts.status.is_informational()
                || parts.status == StatusCode::NO_CONTENT
                || parts.status == StatusCode::NOT_MODIFIED;
            let length = (!bodiless && !head.is_head).then_some(body.len());
            out.finish(length, close, head.http10);
            let body: &[u8] = if bodiless || head.is_head { &[] } else { &body };
            write_all(io, &[&out.0, body], limits).await?;
            !close
        };
        if !keep_alive {
            return io.shutdown().await;
        }
        buf.advance(consumed);
        if buf.is_empty() && buf.capacity() > KEPT_CAPACITY {
            // A large body's buffer is not kept for the connection's life.
            super::freed(buf.capacity());
            *buf = BytesMut::with_capacity(READ_CHUNK);
        }
    }
}

/// What [`read_until`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many more bytes are in the buffer.
    Data(usize),
    /// The peer closed its side.
    Closed,
    /// The deadline passed first.
    TimedOut,
    /// `stop` is (or turned) true while the buffer is empty: nothing of a request has arrived,
    /// so the connection may close.
    Stopped,
}

/// A connection's one timer, for [`read_until`]: armed once, and moved only when a deadline
/// comes sooner than it, so waiting for the next request registers no timer per request (it
/// fires at most once per timeout and is then re-armed to the deadline of that moment).
pub struct Timer(std::pin::Pin<Box<tokio::time::Sleep>>);

impl Timer {
    pub fn new(deadline: Instant) -> Self {
        Self(Box::pin(tokio::time::sleep_until(deadline)))
    }
}

/// Reads more of the connection into `buf` (at most [`READ_CHUNK`] more room at a time: a
/// body's buffer grows with the bytes that arrive, whatever length it declares), until
/// `deadline`; watches `stop` while `buf` is empty.
pub async fn read_until<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    deadline: Instant,
    timer: &mut Timer,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> io::Result<Read> {
    let idle = buf.is_empty();
    if idle && *stop.borrow() {
        return Ok(Read::Stopped);
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    if timer.0.deadline() > deadline {
        timer.0.as_mut().reset(deadline);
    }
    loop {
        tokio::select! {
            biased;
            n = io.read_buf(buf) => {
                return n.map(|n| if n == 0 { Read::Closed } else { Read::Data(n) });
            }
            _ = stop.wait_for(|s| *s), if idle => return Ok(Read::Stopped),
            () = timer.0.as_mut() => {
                // Armed for an earlier deadline that has since moved on: re-armed to this one.
                if Instant::now() >= deadline {
                    return Ok(Read::TimedOut);
                }
                timer.0.as_mut().reset(deadline);
            }
        }
    }
}

/// Answers a refused request (empty body, `connection: close`) and closes: the sending side
/// first, then, after reading what the client still sends for up to [`LINGER`], the rest.
/// (Closing with unread bytes would reset the connection, and the client could lose the
/// answer.)
async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    status: StatusCode,
) -> io::Result<()> {
    let mut out = ResponseHead::new(status.as_u16());
    out.finish(Some(0), true, false);
    answer_and_close(io, &[&out.0]).await
}

/// Writes a last answer and closes as [`refuse`] does.
async fn answer_and_close<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    parts: &[&[u8]],
) -> io::Result<()> {
    // A client that does not read gets LINGER to take the answer.
    match tokio::time::timeout(LINGER, write_parts(io, parts)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    }
    io.shutdown().await?;
    let mut sink = [0u8; 8 * 1024];
    let drain = async {
        while io.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}

/// How long a refused request's connection is read from before it closes.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The request the router is given: method, target, version and headers from the head.
fn to_request(head: &[u8], body: Bytes) -> Result<http::Request<Body>, Refusal> {
    let bad = || Refusal(StatusCode::BAD_REQUEST);
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    req.parse_with_uninit_headers(head, &mut headers)
        .map_err(|_| bad())?;
    let mut builder = http::Request::builder()
        .method(req.method.ok_or_else(bad)?)
        .uri(req.path.ok_or_else(bad)?)
        .version(if req.version == Some(0) {
            http::Version::HTTP_10
        } else {
            http::Version::HTTP_11
        });
    for h in req.headers.iter() {
        builder = builder.header(h.name, h.value);
    }
    builder.body(Body::from(body)).map_err(|_| bad())
}

/// A response's status line and headers, written into one buffer.
struct ResponseHead(Vec<u8>);

impl ResponseHead {
    fn new(status: u16) -> Self {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        out.push(b' ');
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        Self(out)
    }

    fn header(&mut self, name: &[u8], value: &[u8]) {
        self.0.extend_from_slice(name);
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value);
        self.0.extend_from_slice(b"\r\n");
    }

    /// `content-length` (when the status has a body), `date`, `connection` where it is not
    /// the default, and the empty line.
    fn finish(&mut self, content_length: Option<usize>, close: bool, http10: bool) {
        if let Some(n) = content_length {
            self.header(b"content-length", itoa::Buffer::new().format(n).as_bytes());
        }
        DATE.with_borrow_mut(|d| self.header(b"date", d.now()));
        if close {
            self.header(b"connection", b"close");
        } else if http10 {
            self.header(b"connection", b"keep-alive");
        }
        self.0.extend_from_slice(b"\r\n");
    }
}

thread_local! {
    static DATE: RefCell<CachedDate> = const { RefCell::new(CachedDate { secs: u64::MAX, text: Vec::new() }) };
}

/// The `date` header's value (IMF-fixdate), formatted once per second per thread.
struct CachedDate {
    secs: u64,
    text: Vec<u8>,
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            let at = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default();
            self.text = at
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
                .into_bytes();
        }
        &self.text
    }
}

/// Writes every byte of `parts` within the write timeout (else a `TimedOut` error, and the
/// connection ends). Most answers fit the socket's buffer and leave in one `writev` at once;
/// only an answer the socket cannot take yet waits, under the timeout.
async fn write_all<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    parts: &[&[u8]],
    limits: &Limits,
) -> io::Result<()> {
    use futures::FutureExt;
    let mut slices: Vec<io::IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| io::IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match io.write_vectored(rest).now_or_never() {
            Some(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Some(Ok(n)) => io::IoSlice::advance_slices(&mut rest, n),
            Some(Err(e)) => return Err(e),
            // The socket is full: the rest waits for the client, under the timeout.
            None => {
                return match tokio::time::timeout(limits.write_timeout, write_slices(io, rest))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not take the answer within the write timeout",
                    )),
                };
            }
        }
    }
    Ok(())
}

/// Writes every byte of `parts`, vectored (a head and a body leave in one `writev`).
async fn write_parts<IO: AsyncWrite + Unpin>(io: &mut IO, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| io::IoSlice::new(p))
        .collect();
    write_slices(io, &mut slices).await
}

async fn write_slices<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    mut rest: &mut [io::IoSlice<'_>],
) -> io::Result<()> {
    while !rest.is_empty() {
        let n = io.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup's fast path, as `larder serve` has it.
    #[derive(Clone)]
    struct Lookup;

    impl FastPath for Lookup {
        fn handles(&self, method: &str, path: &str) -> bool {
            method == "POST" && path == "/get-online-features"
        }

        async fn answer(&self, _: &[u8]) -> super::super::FastAnswer {
            unreachable!("not called by parse_head")
        }
    }

    fn head(req: &str) -> Result<Option<Head>, Refusal> {
        parse_head(req.as_bytes(), &Lookup, &super::super::Open)
    }

    #[test]
    fn heads_are_framed_by_length_or_chunks() {
        let h =
            head("POST /get-online-features HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{}")
                .unwrap()
                .unwrap();
        assert!(h.fast && h.keep_alive && !h.http10 && !h.is_head && h.denied.is_none());
        assert_eq!(h.framing, Framing::Length(12));
        assert_eq!(h.len, 67);
        let h = head("POST /push HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.fast);
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("GET /health HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.http10 && !h.keep_alive);
        assert_eq!(h.framing, Framing::Length(0));
        let h = head("HEAD /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.http10 && h.keep_alive && h.is_head);
        let h = head("GET /health HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        // Only the exact path is the fast path; a query or another method goes to the router.
        for other in [
            "POST /get-online-features?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /get-online-features HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /get-online-features/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert!(!head(other).unwrap().unwrap().fast, "{other}");
        }
        assert!(
            head("POST /get-online-features HTTP/1.1\r\nHost: x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn unframeable_heads_are_refused() {
        let refused = |req: &str| head(req).unwrap_err().0.as_u16();
        assert_eq!(refused("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(refused("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n"), 417);
        assert_eq!(refused("GARBAGE\r\n\r\n"), 400);
        assert_eq!(refused("GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(refused("INVALID CONNECTION PREFACE\r\n\r\n"), 505);
        let big = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(refused(&big), 413);
        // Host: exactly one on HTTP/1.1, at most one on HTTP/1.0 (RFC 9112 §3.2).
        assert_eq!(refused("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(refused("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
        assert!(head("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        // HTTP/1.0 has no transfer codings (RFC 9112 §6.1).
        assert_eq!(
            refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: y\r\n")).collect();
        assert_eq!(refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
        // The same request with repeated but equal lengths is fine.
        assert!(
            head("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n")
                .unwrap()
                .is_some()
        );
    }

    /// Fuzz target (`cargo bolero test -p larder-server --bin larder
    /// net::h1::tests::fuzz_request_framing` for a coverage-guided run; `cargo test` runs it on
    /// random inputs for a second): any bytes are a head, a need for more, or a refusal —
    /// never a panic — and what is framed stays inside the bytes.
    #[test]
    fn fuzz_request_framing() {
        bolero::check!().for_each(|bytes: &[u8]| {
            if let Ok(Some(h)) = parse_head(bytes, &Lookup, &super::super::Open) {
                assert!(h.len <= bytes.len());
                if let Framing::Length(n) = h.framing {
                    assert!(n <= MAX_BODY_BYTES);
                }
            }
            let mut d = Dechunk::default();
            if let Ok(done) = d.advance(bytes) {
                assert!(d.pos <= bytes.len() && d.body.len() <= bytes.len());
                if !done {
                    // More bytes resume where it stopped.
                    let mut more = bytes.to_vec();
                    more.extend_from_slice(b"0\r\n\r\n");
                    let _ = d.advance(&more);
                }
            }
        });
    }

    #[test]
    fn chunked_bodies_are_decoded_as_they_arrive() {
        let all = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        // Fed byte by byte, the body completes exactly once everything up to NEXT is in.
        let mut d = Dechunk::default();
        let end = all.len() - 4;
        for n in 0..=all.len() {
            let done = d.advance(&all[..n]).unwrap();
            assert_eq!(done, n >= end, "{n}");
            if done {
                break;
            }
        }
        assert_eq!(d.body, b"hello world");
        assert_eq!(d.pos, end);
        assert_eq!(
            Dechunk::default().advance(b"5\r\nhelloXX0\r\n\r\n"),
            Err(Refusal(StatusCode::BAD_REQUEST))
        );
        assert_eq!(
            Dechunk::default().advance(b"zz\r\n"),
            Err(Refusal(StatusCode::BAD_REQUEST))
        );
        let huge = format!("{:x}\r\n", MAX_BODY_BYTES + 1);
        assert_eq!(
            Dechunk::default().advance(huge.as_bytes()),
            Err(Refusal(StatusCode::PAYLOAD_TOO_LARGE))
        );
    }

    #[test]
    fn the_date_header_is_an_imf_fixdate() {
        let mut d = CachedDate {
            secs: u64::MAX,
            text: Vec::new(),
        };
        let text = String::from_utf8(d.now().to_vec()).unwrap();
        let parsed = chrono::DateTime::parse_from_rfc2822(&text).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!((parsed.timestamp() - now).abs() <= 2, "{text}");
        assert!(text.ends_with(" GMT") && text.len() == 29, "{text}");
    }
}
