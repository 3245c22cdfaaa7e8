//! An auto-pipelining connection to one Redis server, for the standalone store.
//!
//! Loopback and LAN round trips cost far more in system calls than in Redis work: every write
//! to a socket also runs the receiver's wake-up. So the connection's task gathers the commands
//! of every request that is ready in the same scheduler pass (it yields once after the first
//! before writing) and writes them with one system call; Redis answers them with one, and the
//! replies are handed back in order. A request's commands stay contiguous, so a request's
//! pipeline is still answered as one. The response timeout is the connection's: when the
//! oldest request has waited that long, the connection is given up and every request on it
//! fails (the ones behind it could not be answered sooner anyway).
//!
//! It implements [`redis::aio::ConnectionLike`], so `redis::Cmd` and `redis::Pipeline` run on
//! it unchanged. Replies are framed here and decoded to [`redis::Value`] (server errors and
//! the rarer RESP3 types through redis-rs's own parser) — or, for the store's lookups
//! ([`Pipe::request_raw`]), handed back as the bytes Redis sent, framed but undecoded, so a
//! 100-entity lookup does not allocate one value per field. A broken connection fails the
//! requests in flight and is replaced on the next request.
//!
//! Replies are untrusted bytes: framing is not recursive and refuses nesting beyond
//! [`MAX_DEPTH`], lengths beyond Redis's own limits ([`MAX_BULK_LEN`], [`MAX_AGGREGATE_LEN`]),
//! overlong lines, a CR without its LF and a bulk string without its CRLF; nothing is
//! allocated from a declared length. A malformed reply fails the requests waiting on the
//! connection, which is dropped like a broken one. The queue is bounded too: at most
//! [`QUEUED_REQUESTS`] waiting to be written and [`IN_FLIGHT_REQUESTS`] written and not yet
//! answered; beyond that, a request waits for room.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt;
use redis::{ErrorKind, RedisError, RedisFuture, RedisResult, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, oneshot},
};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PipeConfig {
    pub host: String,
    pub port: u16,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

/// How many requests may wait for the connection's task to take them. Beyond this a request
/// waits to be queued (backpressure) rather than failing: a full queue means Redis is behind,
/// and waiting keeps requests in order without turning a burst into errors; the wait is
/// bounded anyway, since a Redis that does not answer fails every request on the connection,
/// queued or waiting to be, after the response timeout.
pub const QUEUED_REQUESTS: usize = 4096;
/// How many requests may be written to Redis and not yet answered; while this many are, the
/// connection's task takes no more from the queue (so its own queue is bounded too).
pub const IN_FLIGHT_REQUESTS: usize = 4096;

struct Job {
    bytes: Vec<u8>,
    replies: usize,
    raw: bool,
    done: oneshot::Sender<RedisResult<Replies>>,
}

/// What a request gets back: decoded values, or (asked for with [`Pipe::request_raw`]) the
/// replies' bytes as Redis sent them, framed but not decoded.
enum Replies {
    Values(Vec<Value>),
    Raw(Bytes),
}

/// A cloneable handle; clones share the connection.
#[derive(Clone)]
pub struct Pipe {
    inner: Arc<Inner>,
}

struct Inner {
    config: PipeConfig,
    sender: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    /// Held while connecting, so concurrent first requests make one connection.
    connecting: tokio::sync::Mutex<()>,
}

fn io_error(kind: std::io::ErrorKind, message: String) -> RedisError {
    RedisError::from(std::io::Error::new(kind, message))
}

impl Pipe {
    /// Connects now (so a bad address or password fails here, not on the first request).
    pub async fn connect(config: PipeConfig) -> RedisResult<Self> {
        let pipe = Self {
            inner: Arc::new(Inner {
                config,
                sender: std::sync::Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        };
        pipe.sender().await?;
        Ok(pipe)
    }

    fn live_sender(&self) -> Option<mpsc::Sender<Job>> {
        self.inner
            .sender
            .lock()
            .expect("not poisoned")
            .as_ref()
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    async fn sender(&self) -> RedisResult<mpsc::Sender<Job>> {
        if let Some(tx) = self.live_sender() {
            return Ok(tx);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(tx) = self.live_sender() {
            return Ok(tx);
        }
        let c = &self.inner.config;
        let open = async {
            let mut stream = TcpStream::connect((c.host.as_str(), c.port)).await?;
            stream.set_nodelay(true)?;
            handshake(&mut stream, c).await?;
            RedisResult::Ok(stream)
        };
        let stream = tokio::time::timeout(c.connect_timeout, open)
            .await
            .map_err(|_| {
                io_error(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {}:{} timed out", c.host, c.port),
                )
            })??;
        let (tx, rx) = mpsc::channel(QUEUED_REQUESTS);
        tokio::spawn(drive(stream, rx, c.response_timeout));
        *self.inner.sender.lock().expect("not poisoned") = Some(tx.clone());
        Ok(tx)
    }

    /// Sends encoded commands and waits for `replies` replies.
    pub async fn request(&self, bytes: Vec<u8>, replies: usize) -> RedisResult<Vec<Value>> {
        if replies == 0 {
            return Ok(Vec::new());
        }
        match self.send(bytes, replies, false).await? {
            Replies::Values(v) => Ok(v),
            Replies::Raw(_) => unreachable!("values were asked for"),
        }
    }

    /// Sends encoded commands and waits for `replies` replies, returned as the bytes Redis sent
    /// (complete replies, undecoded; read them with [`RawReplies`]): no value is allocated.
    pub async fn request_raw(&self, bytes: Vec<u8>, replies: usize) -> RedisResult<RawReplies> {
        if replies == 0 {
            return Ok(RawReplies::new(Bytes::new()));
        }
        match self.send(bytes, replies, true).await? {
            Replies::Raw(b) => Ok(RawReplies::new(b)),
            Replies::Values(_) => unreachable!("raw replies were asked for"),
        }
    }

    async fn send(&self, bytes: Vec<u8>, replies: usize, raw: bool) -> RedisResult<Replies> {
        let tx = self.sender().await?;
        let (done, wait) = oneshot::channel();
        // Waits while the queue is full (see [`QUEUED_REQUESTS`]).
        tx.send(Job {
            bytes,
            replies,
            raw,
            done,
        })
        .await
        .map_err(|_| {
            io_error(
                std::io::ErrorKind::BrokenPipe,
                "the connection to redis closed".into(),
            )
        })?;
        // The connection's task enforces the response timeout (one timer for the connection,
        // not one per request: a timer per request costs a wake-up of the runtime).
        wait.await.unwrap_or_else(|_| {
            Err(io_error(
                std::io::ErrorKind::ConnectionAborted,
                "the connection to redis closed".into(),
            ))
        })
    }
}

impl redis::aio::ConnectionLike for Pipe {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut v = self.request(cmd.get_packed_command(), 1).await?;
            Ok(v.pop().unwrap_or(Value::Nil))
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            if pipeline.is_transaction() {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "transactions are not supported on this connection",
                )));
            }
            let mut v = self
                .request(pipeline.get_packed_pipeline(), offset + count)
                .await?;
            Ok(v.split_off(offset))
        }
        .boxed()
    }

    fn get_db(&self) -> i64 {
        self.inner.config.db
    }
}

/// AUTH and SELECT before the connection is shared.
async fn handshake(stream: &mut TcpStream, c: &PipeConfig) -> RedisResult<()> {
    let mut cmds = Vec::new();
    if let Some(p) = &c.password {
        let mut auth = redis::cmd("AUTH");
        if let Some(u) = &c.username {
            auth.arg(u);
        }
        auth.arg(p);
        cmds.push(auth);
    }
    if c.db != 0 {
        cmds.push(redis::cmd("SELECT").arg(c.db).to_owned());
    }
    if cmds.is_empty() {
        return Ok(());
    }
    let mut out = Vec::new();
    for cmd in &cmds {
        out.extend_from_slice(&cmd.get_packed_command());
    }
    stream.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(256);
    let mut got = 0;
    while got < cmds.len() {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io_error(
                std::io::ErrorKind::UnexpectedEof,
                "redis closed the connection during the handshake".into(),
            ));
        }
        while let Some((reply, end)) = parse(&buf, 0)? {
            buf.advance(end);
            got += 1;
            if let Value::ServerError(e) = reply {
                let kind = if got == 1 && c.password.is_some() {
                    ErrorKind::AuthenticationFailed
                } else {
                    ErrorKind::InvalidClientConfig
                };
                return Err(RedisError::from((
                    kind,
                    "redis refused the connection setup",
                    format!("{e:?}"),
                )));
            }
        }
    }
    Ok(())
}

/// What a waiting request has received so far.
enum Got {
    /// Its replies, decoded.
    Values(Vec<Value>),
    /// A raw request: how many of its replies are complete, and where the last one ends.
    Raw { framed: usize, end: usize },
}

impl Got {
    fn new(raw: bool, replies: usize) -> Self {
        if raw {
            Got::Raw { framed: 0, end: 0 }
        } else {
            Got::Values(Vec::with_capacity(replies))
        }
    }
}

struct Waiting {
    sent: tokio::time::Instant,
    replies: usize,
    got: Got,
    done: oneshot::Sender<RedisResult<Replies>>,
}

/// The connection's task: gathers ready requests into one write, hands replies back in order,
/// and gives up on the connection when the oldest request has waited `timeout`.
async fn drive(stream: TcpStream, mut jobs: mpsc::Receiver<Job>, timeout: Duration) {
    let (mut rd, mut wr) = stream.into_split();
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // Until every handle is gone; then until the requests already sent are answered.
    let mut open = true;
    let failure = loop {
        if !open && waiting.is_empty() {
            return;
        }
        // Large replies (many entities, many features) read in large chunks.
        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        tokio::select! {
            biased;
            read = rd.read_buf(&mut rbuf) => {
                match read {
                    Ok(0) => break "redis closed the connection".to_owned(),
                    Err(e) => break e.to_string(),
                    Ok(_) => {}
                }
                if let Err(e) = dispatch(&mut rbuf, &mut waiting) {
                    break e;
                }
            }
            job = jobs.recv(), if open && waiting.len() < IN_FLIGHT_REQUESTS => {
                let Some(job) = job else {
                    open = false;
                    continue;
                };
                if waiting.is_empty() {
                    deadline.as_mut().reset(tokio::time::Instant::now() + timeout);
                }
                let mut batch = vec![job];
                // Let the other requests of this scheduler pass queue theirs: one write for all.
                requeue().await;
                while waiting.len() + batch.len() < IN_FLIGHT_REQUESTS
                    && let Ok(job) = jobs.try_recv()
                {
                    batch.push(job);
                }
                let sent = tokio::time::Instant::now();
                for job in batch {
                    wbuf.extend_from_slice(&job.bytes);
                    waiting.push_back(Waiting {
                        sent,
                        replies: job.replies,
                        got: Got::new(job.raw, job.replies),
                        done: job.done,
                    });
                }
                if let Err(e) = wr.write_all(&wbuf).await {
                    break e.to_string();
                }
                wbuf.clear();
                if wbuf.capacity() > 1 << 20 {
                    wbuf.shrink_to(16 * 1024);
                }
            }
            () = &mut deadline, if !waiting.is_empty() => {
                let due = waiting.front().expect("waiting").sent + timeout;
                if due <= tokio::time::Instant::now() {
                    break format!("redis did not answer within {timeout:?}");
                }
                deadline.as_mut().reset(due);
            }
        }
    };
    jobs.close();
    for w in waiting {
        let _ = w.done.send(Err(io_error(
            std::io::ErrorKind::ConnectionAborted,
            failure.clone(),
        )));
    }
}

/// Puts the current task at the back of its scheduler's run queue once. Unlike
/// `tokio::task::yield_now`, which defers the task until the runtime has polled the OS for I/O
/// (one more `epoll_wait` per Redis write), this only lets the tasks already queued run first:
/// the requests of the same readiness pass, which is what the batching needs.
fn requeue() -> impl std::future::Future<Output = ()> {
    let mut queued = false;
    std::future::poll_fn(move |cx| {
        if queued {
            return std::task::Poll::Ready(());
        }
        queued = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
}

/// Hands every complete reply in `buf` to the oldest waiting request.
fn dispatch(buf: &mut BytesMut, waiting: &mut VecDeque<Waiting>) -> Result<(), String> {
    loop {
        let Some(front) = waiting.front_mut() else {
            return match parse(buf, 0).map_err(|e| e.to_string())? {
                Some(_) => Err("redis sent a reply nobody asked for".into()),
                None => Ok(()),
            };
        };
        let replies = match &mut front.got {
            Got::Raw { framed, end } => {
                // Frame the replies (resuming where the last read stopped); hand them over in
                // one piece, without copying, when all are in.
                while *framed < front.replies {
                    match reply_end(buf, *end).map_err(|e| e.to_string())? {
                        Some(e) => {
                            *end = e;
                            *framed += 1;
                        }
                        None => return Ok(()),
                    }
                }
                Replies::Raw(buf.split_to(*end).freeze())
            }
            Got::Values(got) => {
                let Some((value, end)) = parse(buf, 0).map_err(|e| e.to_string())? else {
                    return Ok(());
                };
                buf.advance(end);
                got.push(value);
                if got.len() < front.replies {
                    continue;
                }
                Replies::Values(std::mem::take(got))
            }
        };
        let w = waiting.pop_front().expect("a front");
        let _ = w.done.send(Ok(replies));
    }
}

/// Complete RESP replies as Redis sent them, read in order without allocating.
pub struct RawReplies {
    buf: Bytes,
    pos: usize,
}

/// One reply that is not what the reader expected.
#[derive(Debug, Clone, PartialEq)]
pub enum UnexpectedReply {
    /// An error reply: its text, error code first (`WRONGTYPE Operation against a key ...`).
    Error(String),
    /// A reply of another type than asked for, or a malformed or truncated one: a description.
    Other(String),
}

impl std::fmt::Display for UnexpectedReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnexpectedReply::Error(text) | UnexpectedReply::Other(text) => f.write_str(text),
        }
    }
}

impl UnexpectedReply {
    #[cold]
    fn truncated() -> Self {
        UnexpectedReply::Other("a truncated reply".into())
    }

    #[cold]
    fn malformed(m: Malformed) -> Self {
        UnexpectedReply::Other(m.0.to_owned())
    }
}

impl RawReplies {
    fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next reply, which must be an array: its length (`None` for a nil array). An error
    /// reply comes back as its text (and is consumed); a failed read consumes nothing else.
    #[inline]
    pub fn array(&mut self) -> Result<Option<usize>, UnexpectedReply> {
        match header(&self.buf, self.pos) {
            Ok(Some((b'*', n, after))) => match length(n, MAX_AGGREGATE_LEN) {
                Ok(n) => {
                    self.pos = after;
                    Ok(n)
                }
                Err(e) => Err(UnexpectedReply::malformed(e)),
            },
            Ok(Some((b'-', text, after))) => {
                let text = String::from_utf8_lossy(text).into_owned();
                self.pos = after;
                Err(UnexpectedReply::Error(text))
            }
            Ok(Some(_)) => Err(self.not_a("an array")),
            Ok(None) => Err(UnexpectedReply::truncated()),
            Err(e) => Err(UnexpectedReply::malformed(e)),
        }
    }

    /// The next reply or array item, which must be a bulk string or nil: its bytes, as a range
    /// of [`Self::bytes`]. A failed read consumes nothing.
    #[inline]
    pub fn bulk(&mut self) -> Result<Option<std::ops::Range<usize>>, UnexpectedReply> {
        let buf = &self.buf[..];
        match header(buf, self.pos) {
            Ok(Some((b'$', n, after))) => match length(n, MAX_BULK_LEN) {
                Ok(Some(n)) => match payload_end(buf, after, n) {
                    Ok(Some(end)) => {
                        self.pos = end;
                        Ok(Some(after..after + n))
                    }
                    Ok(None) => Err(UnexpectedReply::truncated()),
                    Err(e) => Err(UnexpectedReply::malformed(e)),
                },
                Ok(None) => {
                    self.pos = after;
                    Ok(None)
                }
                Err(e) => Err(UnexpectedReply::malformed(e)),
            },
            Ok(Some((b'_', _, after))) => {
                self.pos = after;
                Ok(None)
            }
            Ok(Some(_)) => Err(self.not_a("a bulk string")),
            Ok(None) => Err(UnexpectedReply::truncated()),
            Err(e) => Err(UnexpectedReply::malformed(e)),
        }
    }

    /// The next reply is not `what` was asked for: a description of what it is.
    #[cold]
    #[inline(never)]
    fn not_a(&self, what: &str) -> UnexpectedReply {
        UnexpectedReply::Other(format!("not {what}: {}", self.describe_next()))
    }

    /// The bytes the ranges of [`Self::bulk`] point into.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The next reply, decoded for a message (at most about 200 bytes of it).
    fn describe_next(&self) -> String {
        let mut text = match parse(&self.buf, self.pos) {
            Ok(Some((v, _))) => format!("{v:?}"),
            Ok(None) => "a truncated reply".to_owned(),
            Err(e) => e.to_string(),
        };
        if text.len() > 200 {
            let mut cut = 200;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        text
    }
}

/// The deepest nesting of aggregate replies read. Larder's deepest reply nests 3 deep
/// (`CLUSTER SLOTS`: ranges, nodes, node fields); a deeper one is refused as malformed (framing
/// keeps one counter per open level in a fixed array, so nesting costs no stack or heap).
pub const MAX_DEPTH: usize = 16;
/// The longest bulk string accepted: Redis's own limit (`proto-max-bulk-len`, 512 MiB).
pub const MAX_BULK_LEN: usize = 512 << 20;
/// The most items an aggregate reply may declare (pairs, for a map). Larder's largest
/// aggregates are one entity's HMGET fields or HKEYS, and SCAN pages of about 1000 keys; a
/// declared count beyond this is garbage, refused rather than waited for.
pub const MAX_AGGREGATE_LEN: usize = 1 << 24;
/// The longest line of a simple reply (simple string, error, integer, double, ...): Redis's
/// are short (its error messages quote at most 128 bytes of a command). Beyond this a line is
/// refused, so bytes without a CR do not pile up.
pub const MAX_LINE_LEN: usize = 64 << 10;
/// The longest line of a length header: a sign and 19 digits.
const MAX_LENGTH_LINE: usize = 20;

/// What is wrong with a malformed reply. Small and `Copy`, so the framing functions of the hot
/// path return it cheaply; a [`RedisError`] (kind `Parse`) at the connection's boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed(&'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl From<Malformed> for RedisError {
    fn from(m: Malformed) -> Self {
        RedisError::from((ErrorKind::Parse, m.0))
    }
}

/// A reply's first line: its type byte, the rest of the line without CRLF, and where the line
/// ends (after its CRLF).
type Header<'a> = (u8, &'a [u8], usize);

/// The reply header at `pos`: its type byte, the rest of its line (without CRLF) and where the
/// line ends (after its CRLF); `None` while the line is incomplete. An unknown type byte, a CR
/// not followed by LF, or an overlong line is an error.
#[inline]
fn header(buf: &[u8], pos: usize) -> Result<Option<Header<'_>>, Malformed> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let max = match kind {
        b'$' | b'*' | b'%' | b'~' | b'>' | b'|' | b'!' | b'=' => MAX_LENGTH_LINE,
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => MAX_LINE_LEN,
        _ => return Err(Malformed("unknown redis reply type")),
    };
    let from = pos + 1;
    let window = &buf[from..buf.len().min(from + max + 1)];
    match window.iter().position(|&b| b == b'\r') {
        Some(i) => {
            let cr = from + i;
            match buf.get(cr + 1) {
                Some(b'\n') => Ok(Some((kind, &buf[from..cr], cr + 2))),
                Some(_) => Err(Malformed("a CR not followed by LF in a redis reply")),
                None => Ok(None),
            }
        }
        None if window.len() > max => Err(Malformed("an overlong line in a redis reply")),
        None => Ok(None),
    }
}

/// A signed decimal integer, checked for overflow.
fn int(s: &[u8]) -> Result<i64, Malformed> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(Malformed("an empty integer in a redis reply"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Malformed("an invalid integer in a redis reply"));
        }
        let d = i64::from(d - b'0');
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if neg {
                    n.checked_sub(d)
                } else {
                    n.checked_add(d)
                }
            })
            .ok_or(Malformed("an integer out of range in a redis reply"))?;
    }
    Ok(n)
}

/// A length header's value: `None` for -1 (RESP2's nil); any other negative length, or one
/// beyond `max` (at most [`MAX_BULK_LEN`], 9 digits), is an error.
#[inline]
fn length(s: &[u8], max: usize) -> Result<Option<usize>, Malformed> {
    match s {
        b"-1" => Ok(None),
        [] => Err(Malformed("an empty length in a redis reply")),
        [b'-', ..] => Err(Malformed("a negative length in a redis reply")),
        // More digits than any length within the limits has (and than a u64 could hold).
        _ if s.len() > 10 => Err(Malformed("a length beyond redis's limits in a redis reply")),
        _ => {
            let mut n: u64 = 0;
            for &d in s {
                if !d.is_ascii_digit() {
                    return Err(Malformed("an invalid length in a redis reply"));
                }
                n = n * 10 + u64::from(d - b'0');
            }
            if n > max as u64 {
                return Err(Malformed("a length beyond redis's limits in a redis reply"));
            }
            Ok(Some(n as usize))
        }
    }
}

/// Where a payload of `n` bytes at `from` ends, after the CRLF that must follow it; `None`
/// while incomplete.
#[inline]
fn payload_end(buf: &[u8], from: usize, n: usize) -> Result<Option<usize>, Malformed> {
    let end = from
        .checked_add(n)
        .ok_or(Malformed("a length beyond redis's limits in a redis reply"))?;
    match buf.get(end..end + 2) {
        Some(crlf) if crlf == b"\r\n" => Ok(Some(end + 2)),
        Some(_) => Err(Malformed(
            "a bulk string not followed by CRLF in a redis reply",
        )),
        None if buf.get(end).is_some_and(|&b| b != b'\r') => Err(Malformed(
            "a bulk string not followed by CRLF in a redis reply",
        )),
        None => Ok(None),
    }
}

/// Where the reply starting at `pos` ends, or `None` while it is incomplete. Not recursive:
/// each open aggregate is a counter of the items it still needs, at most [`MAX_DEPTH`].
fn reply_end(buf: &[u8], pos: usize) -> Result<Option<usize>, Malformed> {
    let mut open = [0usize; MAX_DEPTH];
    let mut depth = 0;
    let mut at = pos;
    loop {
        let Some((kind, head, after)) = header(buf, at)? else {
            return Ok(None);
        };
        at = match kind {
            b'$' | b'!' | b'=' => match length(head, MAX_BULK_LEN)? {
                Some(n) => match payload_end(buf, after, n)? {
                    Some(end) => end,
                    None => return Ok(None),
                },
                None if kind == b'$' => after,
                None => return Err(Malformed("a nil blob error or verbatim string")),
            },
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let items = match length(head, MAX_AGGREGATE_LEN)? {
                    Some(n) if kind == b'%' => 2 * n,
                    // An attribute map is followed by the reply it describes.
                    Some(n) if kind == b'|' => 2 * n + 1,
                    Some(n) => n,
                    None if kind == b'*' => 0,
                    None => return Err(Malformed("a nil set, map or push in a redis reply")),
                };
                if items > 0 {
                    if depth == MAX_DEPTH {
                        return Err(Malformed("a redis reply nested deeper than 16 levels"));
                    }
                    open[depth] = items;
                    depth += 1;
                    at = after;
                    continue;
                }
                after
            }
            // The one-line types (`header` refuses unknown ones).
            _ => after,
        };
        // One item is complete: so are the aggregates it was the last item of.
        loop {
            let Some(last) = depth.checked_sub(1) else {
                return Ok(Some(at));
            };
            open[last] -= 1;
            if open[last] > 0 {
                break;
            }
            depth = last;
        }
    }
}

/// The reply starting at `pos` and where it ends, or `None` while it is incomplete. Framed
/// first ([`reply_end`]: bounded nesting, nothing allocated for an incomplete reply), then
/// decoded: bulk strings, arrays, integers, nils and simple strings here; everything else
/// (errors, RESP3 types) by redis-rs.
fn parse(buf: &[u8], pos: usize) -> RedisResult<Option<(Value, usize)>> {
    let Some(end) = reply_end(buf, pos)? else {
        return Ok(None);
    };
    let (value, at) = decode(&buf[..end], pos, 0)?;
    if at != end {
        return Err(Malformed("a redis reply framed and decoded differently").into());
    }
    Ok(Some((value, end)))
}

/// Decodes the framed reply at `pos` (`buf` ends where the reply does; `depth` aggregates
/// enclose it).
fn decode(buf: &[u8], pos: usize, depth: usize) -> RedisResult<(Value, usize)> {
    let early = || Malformed("a redis reply framed and decoded differently");
    let (kind, head, after) = header(buf, pos)?.ok_or_else(early)?;
    let value = match kind {
        b'$' => {
            let Some(n) = length(head, MAX_BULK_LEN)? else {
                return Ok((Value::Nil, after));
            };
            let end = payload_end(buf, after, n)?.ok_or_else(early)?;
            return Ok((Value::BulkString(buf[after..after + n].to_vec()), end));
        }
        b'*' => {
            let Some(n) = length(head, MAX_AGGREGATE_LEN)? else {
                return Ok((Value::Nil, after));
            };
            if depth >= MAX_DEPTH {
                return Err(Malformed("a redis reply nested deeper than 16 levels").into());
            }
            // An item takes at least 3 bytes: what the buffer holds bounds the allocation.
            let mut items = Vec::with_capacity(n.min((buf.len() - after) / 3));
            let mut at = after;
            for _ in 0..n {
                let (v, end) = decode(buf, at, depth + 1)?;
                items.push(v);
                at = end;
            }
            return Ok((Value::Array(items), at));
        }
        b':' => Value::Int(int(head)?),
        b'+' if head == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(head).into_owned()),
        b'_' => Value::Nil,
        _ => {
            let end = reply_end(buf, pos)?.ok_or_else(early)?;
            return Ok((redis::parse_redis_value(&buf[pos..end])?, end));
        }
    };
    Ok((value, after))
}

/// Entry points for fuzzing the reply readers with arbitrary bytes (for fuzz targets and
/// property tests; not a stable API). Memory stays proportional to the bytes given, whatever
/// lengths they declare.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::Bytes;
    use redis::{RedisResult, Value};

    use super::{RawReplies, UnexpectedReply};

    /// Where the first reply in `bytes` ends (`None`: incomplete), as the connection frames it.
    pub fn frame(bytes: &[u8]) -> RedisResult<Option<usize>> {
        Ok(super::reply_end(bytes, 0)?)
    }

    /// The first reply in `bytes`, decoded, and where it ends (`None`: incomplete).
    pub fn decode(bytes: &[u8]) -> RedisResult<Option<(Value, usize)>> {
        super::parse(bytes, 0)
    }

    /// Reads `bytes` as the store reads HMGET replies (an array of bulk strings, again and
    /// again) until they end: how many replies were read whole.
    pub fn read_raw(bytes: &[u8]) -> Result<usize, UnexpectedReply> {
        let mut r = RawReplies::new(Bytes::copy_from_slice(bytes));
        let mut read = 0;
        while r.pos < r.buf.len() {
            for _ in 0..r.array()?.unwrap_or(0) {
                r.bulk()?;
            }
            read += 1;
        }
        Ok(read)
    }

    /// Frames, decodes and raw-reads every reply in `bytes` and checks the readers agree: on
    /// where each complete reply ends, on whether it is incomplete, and that a malformed
    /// reply is an error for both. Returns how many complete replies were read, or the first
    /// error. Panics only when the readers disagree (a bug), never on malformed bytes.
    pub fn frame_replies(bytes: &[u8]) -> Result<usize, String> {
        // The raw reader on arbitrary bytes: an answer, never a panic.
        let _ = read_raw(bytes);
        let mut pos = 0;
        let mut replies = 0;
        while pos < bytes.len() {
            let framed = super::reply_end(bytes, pos);
            let decoded = super::parse(bytes, pos);
            let end = match (&framed, &decoded) {
                (Ok(Some(end)), Ok(Some((_, at)))) => {
                    assert_eq!(end, at, "framing and decoding disagree at {pos}");
                    *end
                }
                // Framed whole, but its content is not decodable (`:x`, a non-UTF-8 error).
                (Ok(Some(end)), Err(_)) => *end,
                (Ok(None), Ok(None)) => return Ok(replies),
                (Err(e), Err(_)) => return Err(e.to_string()),
                _ => panic!("framing {framed:?} and decoding {decoded:?} disagree at {pos}"),
            };
            assert!(pos < end && end <= bytes.len(), "reply {pos}..{end}");
            // The raw reader on exactly one framed reply stays inside it, and ends where the
            // framing does when it reads it whole.
            let mut r = RawReplies::new(Bytes::copy_from_slice(&bytes[pos..end]));
            let whole = r.array().and_then(|n| {
                for _ in 0..n.unwrap_or(0) {
                    r.bulk()?;
                }
                Ok(())
            });
            assert!(r.pos <= end - pos, "the raw reader read past the reply");
            if whole.is_ok() {
                assert_eq!(
                    r.pos,
                    end - pos,
                    "raw reading and framing disagree at {pos}"
                );
            }
            pos = end;
            replies += 1;
        }
        Ok(replies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target (`cargo bolero test -p larder-online resp::tests::fuzz_replies` for a
    /// coverage-guided run; `cargo test` runs it on random inputs for a second): any bytes are
    /// framed, decoded and read raw without a panic, and the three readers agree.
    #[test]
    fn fuzz_replies() {
        bolero::check!().for_each(|bytes: &[u8]| {
            let _ = fuzzing::frame_replies(bytes);
        });
    }

    #[test]
    fn frames_and_decodes_replies() {
        let buf = b"*3\r\n$3\r\nabc\r\n$-1\r\n*1\r\n:-7\r\n+OK\r\n-ERR wrong\r\n%1\r\n+a\r\n:1\r\n$4\r\nab";
        let (v, end) = parse(buf, 0).unwrap().unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::BulkString(b"abc".to_vec()),
                Value::Nil,
                Value::Array(vec![Value::Int(-7)]),
            ])
        );
        let (ok, ok_end) = parse(buf, end).unwrap().unwrap();
        assert_eq!(ok, Value::Okay);
        let (err, err_end) = parse(buf, ok_end).unwrap().unwrap();
        assert!(matches!(err, Value::ServerError(_)), "{err:?}");
        let (map, map_end) = parse(buf, err_end).unwrap().unwrap();
        assert!(matches!(map, Value::Map(_)), "{map:?}");
        assert_eq!(parse(buf, map_end).unwrap(), None, "incomplete bulk");
        for cut in 0..buf[..end].len() {
            assert_eq!(parse(&buf[..cut], 0).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse(b"*2\r\n$1\r\na\r\n", 0).unwrap(), None);
        assert!(parse(b"?x\r\n", 0).is_err());
        assert!(parse(b"$x1\r\n", 0).is_err());
        // A bulk string may hold CRLF.
        let b = b"$4\r\n\r\n\r\n\r\n";
        assert_eq!(
            parse(b, 0).unwrap().unwrap(),
            (Value::BulkString(b"\r\n\r\n".to_vec()), b.len())
        );
    }

    fn waiting(replies: usize, raw: bool) -> (Waiting, oneshot::Receiver<RedisResult<Replies>>) {
        let (done, rx) = oneshot::channel();
        let w = Waiting {
            sent: tokio::time::Instant::now(),
            replies,
            got: Got::new(raw, replies),
            done,
        };
        (w, rx)
    }

    #[test]
    fn raw_replies_are_framed_across_reads_and_read_in_order() {
        let wire: &[u8] =
            b"*3\r\n$2\r\nab\r\n$-1\r\n$4\r\n\r\n\r\n\r\n-WRONGTYPE bad\r\n*1\r\n:5\r\n+OK\r\n";
        let (raw, mut raw_rx) = waiting(3, true);
        let (values, mut values_rx) = waiting(1, false);
        let mut queue = VecDeque::from([raw, values]);
        let mut buf = BytesMut::new();
        // Byte by byte: the raw request completes when its third reply is in, not before.
        let raw_end = wire.len() - b"+OK\r\n".len();
        let mut got = None;
        for (i, &b) in wire.iter().enumerate() {
            buf.extend_from_slice(&[b]);
            dispatch(&mut buf, &mut queue).unwrap();
            if got.is_none() {
                match raw_rx.try_recv() {
                    Ok(Ok(Replies::Raw(bytes))) => got = Some((i + 1, bytes)),
                    Ok(_) => panic!("raw replies were asked for"),
                    Err(_) => {}
                }
            }
        }
        let (at, bytes) = got.expect("the raw request was answered");
        assert_eq!(at, raw_end);
        assert_eq!(&bytes[..], &wire[..raw_end]);
        assert!(
            matches!(values_rx.try_recv(), Ok(Ok(Replies::Values(v))) if v == vec![Value::Okay])
        );
        assert!(buf.is_empty() && queue.is_empty());

        let mut r = RawReplies::new(bytes);
        assert_eq!(r.array().unwrap(), Some(3));
        let a = r.bulk().unwrap().unwrap();
        assert_eq!(&r.bytes()[a], b"ab");
        assert_eq!(r.bulk().unwrap(), None);
        let crlf = r.bulk().unwrap().unwrap();
        assert_eq!(&r.bytes()[crlf], b"\r\n\r\n");
        assert_eq!(
            r.array().unwrap_err(),
            UnexpectedReply::Error("WRONGTYPE bad".into())
        );
        let not_bulk = r.bulk().unwrap_err().to_string();
        assert!(not_bulk.starts_with("not a bulk string"), "{not_bulk}");
        assert_eq!(
            r.array().unwrap(),
            Some(1),
            "a failed read consumes nothing"
        );
        assert!(r.bulk().is_err(), "an integer is not a bulk string");
    }

    /// Each reader's answer to `bytes` as a whole: framing, decoding, and reading them as the
    /// store reads HMGET replies.
    fn all_readers(bytes: &[u8]) -> [bool; 3] {
        [
            reply_end(bytes, 0).is_err(),
            parse(bytes, 0).is_err(),
            fuzzing::read_raw(bytes).is_err(),
        ]
    }

    #[test]
    fn malformed_replies_are_errors_for_every_reader() {
        let deep = b"*1\r\n".repeat(100_000);
        let long_line = [b"+".as_slice(), &[b'a'; MAX_LINE_LEN + 1]].concat();
        let long_length = [b"$".as_slice(), &[b'0'; 25]].concat();
        let cases: &[(&str, &[u8])] = &[
            ("an empty line", b"\r\n"),
            ("an empty line in an array", b"*1\r\n\r\n"),
            ("an unknown type byte", b"?x\r\n"),
            ("a NUL type byte", b"\0"),
            ("a bad length", b"$x\r\n"),
            ("an empty length", b"$\r\n"),
            ("a negative length other than -1", b"$-2\r\n"),
            ("a negative array length other than -1", b"*-5\r\n"),
            ("a length overflowing i64", b"*99999999999999999999\r\n"),
            (
                "a bulk length overflowing i64",
                b"$99999999999999999999\r\n",
            ),
            ("a bulk string beyond 512 MiB", b"$536870913\r\n"),
            ("an aggregate beyond its limit", b"*16777217\r\n"),
            ("a huge aggregate", b"*2000000000\r\n"),
            ("a huge map", b"%2000000000\r\n"),
            ("an overlong length line", &long_length),
            ("an overlong simple line", &long_line),
            ("100,000 levels of nesting", &deep),
            ("CR without LF", b"+OK\rX"),
            ("CR without LF in a header", b"*1\rX\n"),
            ("a bulk payload not followed by CRLF", b"$3\r\nabcXY"),
            ("a bulk payload followed by another byte", b"$3\r\nabcX"),
            ("a bulk payload followed by CR and not LF", b"$3\r\nabc\rX"),
            (
                "a nested bulk payload not followed by CRLF",
                b"*1\r\n$3\r\nabcXY",
            ),
            ("a nil blob error", b"!-1\r\n"),
            ("a nil map", b"%-1\r\n"),
        ];
        for (what, bytes) in cases {
            let started = std::time::Instant::now();
            assert_eq!(all_readers(bytes), [true; 3], "{what}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{what} took {:?}",
                started.elapsed()
            );
        }
        // Deep nesting is refused from the 17th level on, whatever follows.
        let nested = |levels: usize| [b"*1\r\n".repeat(levels), b":1\r\n".to_vec()].concat();
        let (v, end) = parse(&nested(MAX_DEPTH), 0).unwrap().unwrap();
        assert_eq!(end, nested(MAX_DEPTH).len());
        assert!(matches!(v, Value::Array(_)));
        assert!(reply_end(&nested(MAX_DEPTH + 1), 0).is_err());
        assert!(parse(&nested(MAX_DEPTH + 1), 0).is_err());
        assert!(
            reply_end(&b"*1\r\n".repeat(MAX_DEPTH + 1), 0).is_err(),
            "even incomplete"
        );
        // A malformed reply fails the waiting requests (the connection is then dropped).
        let (w, _rx) = waiting(1, true);
        let mut queue = VecDeque::from([w]);
        let mut buf = BytesMut::from(&b"*1\r\n$3\r\nabcXY"[..]);
        assert!(dispatch(&mut buf, &mut queue).is_err());
        let (w, _rx) = waiting(1, false);
        let mut queue = VecDeque::from([w]);
        let mut buf = BytesMut::from(&deep[..]);
        assert!(dispatch(&mut buf, &mut queue).is_err());
    }

    #[test]
    fn raw_items_are_checked_like_replies() {
        let mut r = RawReplies::new(Bytes::from_static(b"*2\r\n$-2\r\n$1\r\nab\r\n"));
        assert_eq!(r.array().unwrap(), Some(2));
        assert!(r.bulk().is_err(), "a bad nil");
        let mut r = RawReplies::new(Bytes::from_static(b"*1\r\n$1\r\nab\r\n"));
        assert_eq!(r.array().unwrap(), Some(1));
        assert!(r.bulk().is_err(), "a payload longer than declared");
        let mut r = RawReplies::new(Bytes::from_static(b"*1\r\n$3\r\nab"));
        assert_eq!(r.array().unwrap(), Some(1));
        assert_eq!(r.bulk().unwrap_err(), UnexpectedReply::truncated());
        let mut r = RawReplies::new(Bytes::from_static(b"*1\r\n$2\r\nab\r\n"));
        assert_eq!(r.array().unwrap(), Some(1));
        let ab = r.bulk().unwrap().unwrap();
        assert_eq!(&r.bytes()[ab], b"ab");
    }

    #[test]
    fn huge_declared_lengths_allocate_nothing_and_wait_or_fail_quickly() {
        let started = std::time::Instant::now();
        for bytes in [
            &b"*16777216\r\n:1\r\n"[..],
            b"%16777216\r\n",
            b"$536870912\r\nabc",
            b"*2\r\n$536870912\r\n",
        ] {
            assert_eq!(reply_end(bytes, 0).unwrap(), None);
            assert_eq!(parse(bytes, 0).unwrap(), None, "framed before decoded");
        }
        assert!(started.elapsed() < Duration::from_millis(500));
        // A complete array's items are allocated for what the buffer holds.
        let (v, _) = parse(b"*3\r\n:1\r\n:2\r\n:3\r\n", 0).unwrap().unwrap();
        let Value::Array(items) = v else {
            panic!("an array")
        };
        assert_eq!(items.len(), 3);
        assert!(items.capacity() <= 3);
    }

    #[test]
    fn integers_are_checked_for_overflow() {
        let int_reply = |s: &str| parse(format!(":{s}\r\n").as_bytes(), 0);
        assert_eq!(
            int_reply("9223372036854775807").unwrap().unwrap().0,
            Value::Int(i64::MAX)
        );
        assert_eq!(
            int_reply("-9223372036854775808").unwrap().unwrap().0,
            Value::Int(i64::MIN)
        );
        for bad in [
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "-",
            "1x",
            "+1",
        ] {
            assert!(int_reply(bad).is_err(), "{bad:?}");
        }
    }

    /// A small deterministic PRNG (xorshift64*), so the property test needs no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A byte, most often one that means something in RESP.
        fn byte(&mut self) -> u8 {
            const RESP: &[u8] = b"*$+-:_%~>|!=,#(\r\n\r\n0123456789-";
            if self.below(4) == 0 {
                self.next() as u8
            } else {
                RESP[self.below(RESP.len())]
            }
        }
    }

    /// A valid reply of at most `depth` levels.
    fn valid_reply(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
        let kinds = if depth == 0 { 9 } else { 12 };
        match rng.below(kinds) {
            0 => {
                let n = rng.below(8);
                out.extend_from_slice(format!("${n}\r\n").as_bytes());
                for _ in 0..n {
                    out.push(rng.byte());
                }
                out.extend_from_slice(b"\r\n");
            }
            1 => out.extend_from_slice(b"$-1\r\n"),
            2 => out.extend_from_slice(format!(":{}\r\n", rng.next() as i64).as_bytes()),
            3 => out.extend_from_slice(b"+OK\r\n"),
            4 => out.extend_from_slice(b"+PONG\r\n"),
            5 => out.extend_from_slice(b"-WRONGTYPE Operation against a key\r\n"),
            6 => out.extend_from_slice(b"*-1\r\n"),
            7 => out.extend_from_slice(b"_\r\n"),
            8 => out.extend_from_slice(b",1.5\r\n"),
            9 | 10 => {
                let n = rng.below(4);
                out.extend_from_slice(format!("*{n}\r\n").as_bytes());
                for _ in 0..n {
                    valid_reply(rng, depth - 1, out);
                }
            }
            _ => {
                let n = rng.below(3);
                out.extend_from_slice(format!("%{n}\r\n").as_bytes());
                for _ in 0..2 * n {
                    valid_reply(rng, depth - 1, out);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_the_readers_agree() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Random bytes, mostly RESP's own.
        for _ in 0..3000 {
            let len = rng.below(48);
            let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
            let _ = fuzzing::frame_replies(&bytes);
        }
        for _ in 0..1500 {
            // Valid replies, one after another: every reader reads them all, and decoding
            // agrees with redis-rs's own parser.
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for _ in 0..1 + rng.below(3) {
                valid_reply(&mut rng, 4, &mut bytes);
                ends.push(bytes.len());
            }
            assert_eq!(fuzzing::frame_replies(&bytes), Ok(ends.len()), "{bytes:?}");
            let (ours, end) = parse(&bytes, 0).unwrap().unwrap();
            assert_eq!(end, ends[0]);
            assert_eq!(ours, redis::parse_redis_value(&bytes[..end]).unwrap());
            // Every cut of the first is incomplete, for framing and decoding alike.
            let cut = rng.below(ends[0]);
            assert_eq!(
                reply_end(&bytes[..cut], 0).unwrap(),
                None,
                "{bytes:?} cut {cut}"
            );
            assert_eq!(
                parse(&bytes[..cut], 0).unwrap(),
                None,
                "{bytes:?} cut {cut}"
            );
            // Mutations: never a panic, and the readers still agree.
            for _ in 0..4 {
                let mut m = bytes.clone();
                let at = rng.below(m.len());
                match rng.below(5) {
                    0 => m[at] = rng.byte(),
                    1 => {
                        m.remove(at);
                    }
                    2 => m.insert(at, rng.byte()),
                    3 => m.truncate(at),
                    _ => {
                        let from = rng.below(m.len());
                        let piece = m[from.min(at)..from.max(at)].to_vec();
                        m.splice(at..at, piece);
                    }
                }
                let _ = fuzzing::frame_replies(&m);
            }
        }
    }
}
