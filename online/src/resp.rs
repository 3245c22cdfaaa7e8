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
    sender: std::sync::Mutex<Option<mpsc::UnboundedSender<Job>>>,
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

    fn live_sender(&self) -> Option<mpsc::UnboundedSender<Job>> {
        self.inner
            .sender
            .lock()
            .expect("not poisoned")
            .as_ref()
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    async fn sender(&self) -> RedisResult<mpsc::UnboundedSender<Job>> {
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
        let (tx, rx) = mpsc::unbounded_channel();
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
        tx.send(Job {
            bytes,
            replies,
            raw,
            done,
        })
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
async fn drive(stream: TcpStream, mut jobs: mpsc::UnboundedReceiver<Job>, timeout: Duration) {
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
            job = jobs.recv(), if open => {
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
                while let Ok(job) = jobs.try_recv() {
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

/// One reply that is not what the reader expected: an error reply's text, or a description.
#[derive(Debug, Clone, PartialEq)]
pub struct UnexpectedReply(pub String);

impl RawReplies {
    fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    fn head(&mut self) -> Result<(u8, &[u8]), UnexpectedReply> {
        let (after, head) = line(&self.buf, self.pos)
            .filter(|(_, h)| !h.is_empty())
            .ok_or_else(|| UnexpectedReply("a truncated reply".into()))?;
        self.pos = after;
        Ok((head[0], &head[1..]))
    }

    fn length(s: &[u8]) -> Result<i64, UnexpectedReply> {
        int(s).map_err(|e| UnexpectedReply(e.to_string()))
    }

    /// The next reply, which must be an array: its length (`None` for a nil array). An error
    /// reply comes back as its text.
    pub fn array(&mut self) -> Result<Option<usize>, UnexpectedReply> {
        let start = self.pos;
        match self.head()? {
            (b'*', n) => {
                let n = Self::length(n)?;
                Ok((n >= 0).then_some(n as usize))
            }
            (b'-', text) => Err(UnexpectedReply(String::from_utf8_lossy(text).into_owned())),
            _ => {
                self.pos = start;
                Err(UnexpectedReply(format!(
                    "not an array: {}",
                    self.describe_next()
                )))
            }
        }
    }

    /// The next reply or array item, which must be a bulk string or nil: its bytes, as a range
    /// of [`Self::bytes`].
    pub fn bulk(&mut self) -> Result<Option<std::ops::Range<usize>>, UnexpectedReply> {
        let start = self.pos;
        match self.head()? {
            (b'$', n) => {
                let n = Self::length(n)?;
                if n < 0 {
                    return Ok(None);
                }
                let from = self.pos;
                let to = from + n as usize;
                if to + 2 > self.buf.len() {
                    return Err(UnexpectedReply("a truncated reply".into()));
                }
                self.pos = to + 2;
                Ok(Some(from..to))
            }
            (b'_', _) => Ok(None),
            _ => {
                self.pos = start;
                Err(UnexpectedReply(format!(
                    "not a bulk string: {}",
                    self.describe_next()
                )))
            }
        }
    }

    /// The bytes the ranges of [`Self::bulk`] point into.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn describe_next(&self) -> String {
        let end = reply_end(&self.buf, self.pos)
            .ok()
            .flatten()
            .unwrap_or(self.buf.len());
        match redis::parse_redis_value(&self.buf[self.pos..end]) {
            Ok(v) => format!("{v:?}"),
            Err(e) => e.to_string(),
        }
    }
}

fn parse_error(m: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Parse, m))
}

/// The end of the line starting at `pos` (after its CRLF), and the line without it.
fn line(buf: &[u8], pos: usize) -> Option<(usize, &[u8])> {
    let rel = buf[pos..].iter().position(|&b| b == b'\r')?;
    let cr = pos + rel;
    (cr + 1 < buf.len()).then_some((cr + 2, &buf[pos..cr]))
}

fn int(s: &[u8]) -> RedisResult<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(parse_error("invalid length in a redis reply"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(parse_error("invalid length in a redis reply"));
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Ok(if neg { -n } else { n })
}

/// Where the reply starting at `pos` ends, or `None` while it is incomplete.
fn reply_end(buf: &[u8], pos: usize) -> RedisResult<Option<usize>> {
    if pos >= buf.len() {
        return Ok(None);
    }
    let Some((after, head)) = line(buf, pos) else {
        return Ok(None);
    };
    match head[0] {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => Ok(Some(after)),
        b'$' | b'!' | b'=' => {
            let n = int(&head[1..])?;
            if n < 0 {
                return Ok(Some(after));
            }
            let end = after + n as usize + 2;
            Ok((end <= buf.len()).then_some(end))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(&head[1..])?;
            if n < 0 {
                return Ok(Some(after));
            }
            let items = if matches!(head[0], b'%' | b'|') {
                n as usize * 2
            } else {
                n as usize
            };
            let mut at = after;
            for _ in 0..items {
                match reply_end(buf, at)? {
                    Some(end) => at = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        _ => Err(parse_error("unknown redis reply type")),
    }
}

/// The reply starting at `pos` and where it ends, or `None` while it is incomplete — one
/// pass. Bulk strings, arrays, integers, nils and simple strings are decoded here; everything
/// else (errors, RESP3 types) by redis-rs once complete.
fn parse(buf: &[u8], pos: usize) -> RedisResult<Option<(Value, usize)>> {
    if pos >= buf.len() {
        return Ok(None);
    }
    let Some((after, head)) = line(buf, pos) else {
        return Ok(None);
    };
    let value = match head[0] {
        b'$' => {
            let n = int(&head[1..])?;
            if n < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let end = after + n as usize;
            if end + 2 > buf.len() {
                return Ok(None);
            }
            return Ok(Some((Value::BulkString(buf[after..end].to_vec()), end + 2)));
        }
        b'*' => {
            let n = int(&head[1..])?;
            if n < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let mut items = Vec::with_capacity(n as usize);
            let mut at = after;
            for _ in 0..n {
                match parse(buf, at)? {
                    Some((v, end)) => {
                        items.push(v);
                        at = end;
                    }
                    None => return Ok(None),
                }
            }
            return Ok(Some((Value::Array(items), at)));
        }
        b':' => Value::Int(int(&head[1..])?),
        b'+' if &head[1..] == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(&head[1..]).into_owned()),
        b'_' => Value::Nil,
        _ => {
            let Some(end) = reply_end(buf, pos)? else {
                return Ok(None);
            };
            return Ok(Some((redis::parse_redis_value(&buf[pos..end])?, end)));
        }
    };
    Ok(Some((value, after)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(r.array().unwrap_err().0, "WRONGTYPE bad");
        let not_bulk = r.bulk().unwrap_err().0;
        assert!(not_bulk.starts_with("not a bulk string"), "{not_bulk}");
        assert_eq!(
            r.array().unwrap(),
            Some(1),
            "a failed read consumes nothing"
        );
        assert!(r.bulk().is_err(), "an integer is not a bulk string");
    }
}
