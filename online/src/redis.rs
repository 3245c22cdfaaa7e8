//! Feast's Redis online store layout (spec §3.2): one hash per (project, entity key) named by
//! the entity-key bytes followed by the project name, feature fields named by 4-byte mmh3
//! hashes, `_ts:<view>` holding a serialized `google.protobuf.Timestamp`, values as serialized
//! `feast.types.Value`. Writes skip rows whose event time is not newer than the stored one
//! (unless `skip_dedup`), and set `EXPIRE` when `key_ttl_seconds` is configured.
//!
//! Every view of one read goes out together: one pipeline on standalone and sentinel
//! connections (Larder's auto-pipelining connection, [`crate::resp`], which also merges the
//! pipelines of concurrent requests into one write; on sentinel, to the master the sentinels
//! name); on a cluster, one command per key sent concurrently over the multiplexed
//! per-node connections (a single pipeline may not span slots).
//!
//! Every failed request, on every path and topology, is classified once ([`classify`]):
//! [`OnlineError::Unavailable`] when the server cannot answer now and a retry may work (a
//! lost connection, a timeout, LOADING, BUSY, READONLY, CLUSTERDOWN, ...),
//! [`OnlineError::Backend`] when it answered deliberately (WRONGTYPE, ERR, NOSCRIPT, ...).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use larder_protos::feast::types::Value;
use prost::Message;
use prost_types::Timestamp;
use redis::{
    Cmd, ErrorKind, RedisError, RedisResult, Value as RV,
    aio::ConnectionLike,
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    cluster_routing::{RoutingInfo, SingleNodeRoutingInfo},
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};
use tokio::sync::Mutex;

use crate::{
    layout::ViewLayout,
    resp::{Pipe, PipeConfig, RawReplies, UnexpectedReply},
    store::{
        OlderWrites, OnlineError, OnlineStore, Record, ViewRead, WriteOutcome, WriteRow, ts_nanos,
    },
};

/// `online_store.redis_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisKind {
    Standalone,
    Cluster,
    Sentinel,
}

/// The parts of Feast's `connection_string` (`host:port,host:port,key=value,...`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionString {
    pub nodes: Vec<(String, u16)>,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl: bool,
    pub connect_timeout: Option<Duration>,
    pub response_timeout: Option<Duration>,
}

/// Client options Feast's connection strings may carry that Larder accepts and ignores.
const IGNORED_KWARGS: &[&str] = &[
    "client_name",
    "health_check_interval",
    "retry_on_timeout",
    "decode_responses",
];

impl ConnectionString {
    /// Parses Feast's grammar: items without `=` are `host:port` nodes, items with `=` are
    /// client options whose values are JSON-decoded when possible.
    pub fn parse(s: &str) -> Result<Self, OnlineError> {
        let bad = |m: String| OnlineError::Config(format!("redis connection_string {s:?}: {m}"));
        let mut out = ConnectionString::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Some((k, v)) = item.split_once('=') {
                let (k, v) = (k.trim(), v.trim());
                let json = serde_json::from_str::<serde_json::Value>(v).ok();
                let text = match &json {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    _ => v.to_owned(),
                };
                let secs = |v: &str| -> Result<Duration, OnlineError> {
                    v.parse::<f64>()
                        .ok()
                        .filter(|f| *f > 0.0)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| bad(format!("{k} must be a positive number of seconds")))
                };
                match k {
                    "db" => {
                        out.db = v
                            .parse()
                            .map_err(|_| bad(format!("db must be an integer, not {v:?}")))?
                    }
                    "password" => out.password = Some(text),
                    "username" => out.username = Some(text),
                    "ssl" => {
                        out.ssl = matches!(json, Some(serde_json::Value::Bool(true)))
                            || v.eq_ignore_ascii_case("true")
                    }
                    "socket_connect_timeout" => out.connect_timeout = Some(secs(v)?),
                    "socket_timeout" => out.response_timeout = Some(secs(v)?),
                    k if IGNORED_KWARGS.contains(&k) => {}
                    other => return Err(bad(format!("unsupported option {other:?}"))),
                }
            } else {
                let (host, port) = item
                    .rsplit_once(':')
                    .ok_or_else(|| bad(format!("node {item:?} must be host:port")))?;
                let port = port
                    .parse()
                    .map_err(|_| bad(format!("node {item:?} has an invalid port")))?;
                out.nodes
                    .push((host.trim_matches(['[', ']']).to_owned(), port));
            }
        }
        if out.nodes.is_empty() {
            return Err(bad("no host:port given".into()));
        }
        if out.ssl {
            return Err(bad(
                "ssl=true is not supported by this build of larder yet".into()
            ));
        }
        Ok(out)
    }

    fn url(&self, host: &str, port: u16, with_db: bool) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", enc(u), enc(p)),
            (None, Some(p)) => format!(":{}@", enc(p)),
            (Some(u), None) => format!("{}@", enc(u)),
            (None, None) => String::new(),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        if with_db {
            format!("redis://{auth}{host}:{port}/{}", self.db)
        } else {
            format!("redis://{auth}{host}:{port}")
        }
    }
}

#[derive(Clone)]
enum Conn {
    /// Larder's auto-pipelining connection ([`crate::resp`]).
    Standalone(Pipe),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

/// A sentinel-resolved master connection (Larder's auto-pipelining one), re-resolved after a
/// connection error or a READONLY answer (a failover moved the master).
struct SentinelConn {
    client: Mutex<SentinelClient>,
    /// Everything but the address, which the sentinels give.
    template: PipeConfig,
    conn: Mutex<Option<Pipe>>,
    /// Set when a failure says the master may have moved: the next request asks the sentinels.
    stale: AtomicBool,
}

impl SentinelConn {
    async fn get(&self) -> RedisResult<Pipe> {
        let mut guard = self.conn.lock().await;
        if self.stale.swap(false, Ordering::AcqRel) {
            *guard = None;
        }
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let client = self.client.lock().await.async_get_client().await?;
        let redis::ConnectionAddr::Tcp(host, port) = client.get_connection_info().addr().clone()
        else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the sentinels named a master that is not a plain TCP address",
            )));
        };
        let conn = Pipe::connect(PipeConfig {
            host,
            port,
            ..self.template.clone()
        })
        .await?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the master (at the next request).
    fn reset(&self) {
        self.stale.store(true, Ordering::Release);
    }
}

/// The Redis online store.
#[derive(Clone)]
pub struct RedisOnlineStore {
    conn: Conn,
    describe: String,
    key_ttl_seconds: Option<u64>,
    skip_dedup: bool,
}

impl std::fmt::Debug for RedisOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Options of the Redis store beyond the connection.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    pub key_ttl_seconds: Option<u64>,
    pub skip_dedup: bool,
    /// Master name for sentinel setups.
    pub sentinel_master: String,
}

impl RedisOnlineStore {
    /// Connects (and checks the connection) to a standalone server, a cluster or a sentinel-
    /// managed master.
    pub async fn connect(
        kind: RedisKind,
        conn: &ConnectionString,
        opts: RedisOptions,
    ) -> Result<Self, OnlineError> {
        let nodes: Vec<String> = conn.nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        let describe = match kind {
            RedisKind::Standalone => format!("redis {}", nodes[0]),
            RedisKind::Cluster => format!("redis cluster {}", nodes.join(",")),
            RedisKind::Sentinel => format!(
                "redis sentinel {} ({})",
                nodes.join(","),
                opts.sentinel_master
            ),
        };
        let unavailable = |e: redis::RedisError| OnlineError::Unavailable {
            store: describe.clone(),
            message: e.to_string(),
        };
        let connect_timeout = conn.connect_timeout.unwrap_or(Duration::from_secs(5));
        let response_timeout = conn.response_timeout.unwrap_or(Duration::from_secs(10));
        // Larder's own connection, to the one node or to the master the sentinels name.
        let pipe_to = |host: String, port: u16| PipeConfig {
            host,
            port,
            db: conn.db,
            username: conn.username.clone(),
            password: conn.password.clone(),
            connect_timeout,
            response_timeout,
        };
        let c = match kind {
            RedisKind::Standalone => {
                let (h, p) = &conn.nodes[0];
                let pipe = Pipe::connect(pipe_to(h.clone(), *p))
                    .await
                    .map_err(unavailable)?;
                Conn::Standalone(pipe)
            }
            RedisKind::Cluster => {
                if conn.db != 0 {
                    return Err(OnlineError::Config(
                        "redis cluster has no databases other than db=0".into(),
                    ));
                }
                let urls: Vec<String> = conn
                    .nodes
                    .iter()
                    .map(|(h, p)| conn.url(h, *p, false))
                    .collect();
                let client = ClusterClientBuilder::new(urls)
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .build()
                    .map_err(unavailable)?;
                let cc = within(
                    connect_timeout * 2,
                    &describe,
                    client.get_async_connection(),
                )
                .await?;
                Conn::Cluster(cc)
            }
            RedisKind::Sentinel => {
                let urls: Vec<String> = conn
                    .nodes
                    .iter()
                    .map(|(h, p)| format!("redis://{h}:{p}"))
                    .collect();
                let mut redis_info = redis::RedisConnectionInfo::default().set_db(conn.db);
                if let Some(u) = &conn.username {
                    redis_info = redis_info.set_username(u);
                }
                if let Some(p) = &conn.password {
                    redis_info = redis_info.set_password(p);
                }
                let node_info =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(redis_info);
                let client = SentinelClient::build(
                    urls,
                    opts.sentinel_master.clone(),
                    Some(node_info),
                    SentinelServerType::Master,
                )
                .map_err(unavailable)?;
                Conn::Sentinel(Arc::new(SentinelConn {
                    client: Mutex::new(client),
                    template: pipe_to(String::new(), 0),
                    conn: Mutex::new(None),
                    stale: AtomicBool::new(false),
                }))
            }
        };
        let store = Self {
            conn: c,
            describe,
            key_ttl_seconds: opts.key_ttl_seconds,
            skip_dedup: opts.skip_dedup,
        };
        store.check().await?;
        Ok(store)
    }

    /// The one way a failed Redis request becomes an [`OnlineError`], on every path
    /// ([`classify`]); on a sentinel setup, a failure that says the master may have moved
    /// (connection lost, READONLY after a failover) makes the next request ask the sentinels.
    fn failed(&self, doing: &str, f: Failure<'_>) -> OnlineError {
        let class = classify(f);
        if class == Class::Reconnect
            && let Conn::Sentinel(s) = &self.conn
        {
            s.reset();
        }
        let store = self.describe.clone();
        let message = match f {
            Failure::Client(e) => format!("{doing} failed: {e}"),
            Failure::Reply(text) => format!("{doing} failed: {text}"),
        };
        match class {
            Class::Backend => OnlineError::Backend { store, message },
            Class::Unavailable | Class::Reconnect => OnlineError::Unavailable { store, message },
        }
    }

    /// [`Self::failed`] for a redis-rs or connection error.
    fn client_failed<'a>(&'a self, doing: &'a str) -> impl Fn(RedisError) -> OnlineError + 'a {
        move |e| self.failed(doing, Failure::Client(&e))
    }

    /// The connection to the master the sentinels name.
    async fn master(&self, s: &SentinelConn) -> Result<Pipe, OnlineError> {
        s.get()
            .await
            .map_err(self.client_failed("connecting to the sentinels' master"))
    }

    /// Sends `cmds` (`doing`: what they do, for messages) in one round trip; the replies in
    /// order.
    async fn exec(&self, doing: &str, cmds: Vec<Cmd>) -> Result<Vec<RV>, OnlineError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = match &self.conn {
            Conn::Standalone(p) => p.clone(),
            Conn::Sentinel(s) => self.master(s).await?,
            Conn::Cluster(c) => {
                let futs = cmds.into_iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<RV>(&mut c).await }
                });
                return futures::future::try_join_all(futs)
                    .await
                    .map_err(self.client_failed(doing));
            }
        };
        pipeline(cmds)
            .query_async(&mut pipe)
            .await
            .map_err(self.client_failed(doing))
    }

    /// The HMGET commands of `reads`, in order (a key, then each feature's field, then the
    /// view's `_ts` field).
    fn hmget_cmds(reads: &[ViewRead<'_>]) -> Vec<Cmd> {
        let mut cmds = Vec::new();
        for r in reads {
            for key in r.keys {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(redis_key(key, &r.layout.project));
                for &i in r.features {
                    cmd.arg(&r.layout.redis_fields[i][..]);
                }
                cmd.arg(&r.layout.redis_ts_field[..]);
                cmds.push(cmd);
            }
        }
        cmds
    }

    /// Sends the HMGETs of `reads` in one round trip. Standalone and sentinel-named servers
    /// get them encoded straight into one buffer and answer with bytes read in place; a
    /// cluster routes each command by its key.
    async fn hmget(&self, reads: &[ViewRead<'_>]) -> Result<HmgetReplies, OnlineError> {
        let pipe = match &self.conn {
            Conn::Standalone(p) => p.clone(),
            Conn::Sentinel(s) => self.master(s).await?,
            Conn::Cluster(_) => {
                let replies = self.exec("HMGET", Self::hmget_cmds(reads)).await?;
                return Ok(HmgetReplies::Values(replies.into_iter()));
            }
        };
        let per_key = |r: &ViewRead<'_>| 48 + r.layout.redis_ts_field.len() + 10 * r.features.len();
        let mut buf = Vec::with_capacity(reads.iter().map(|r| r.keys.len() * per_key(r)).sum());
        let mut n = 0;
        for r in reads {
            for key in r.keys {
                pack_hmget(&mut buf, key, r);
                n += 1;
            }
        }
        let replies = pipe
            .request_raw(buf, n)
            .await
            .map_err(self.client_failed("HMGET"))?;
        Ok(HmgetReplies::Raw {
            replies,
            fields: Vec::new(),
        })
    }

    /// The next entity's record of view read `r`.
    fn next_record(
        &self,
        replies: &mut HmgetReplies,
        r: &ViewRead<'_>,
    ) -> Result<Option<Record>, OnlineError> {
        match replies {
            HmgetReplies::Values(values) => {
                let reply = values
                    .next()
                    .ok_or_else(|| self.hmget_failed("fewer replies than commands".into()))?;
                let RV::Array(fields) = reply else {
                    return Err(self.hmget_failed(format!("unexpected reply {reply:?}")));
                };
                self.record(r, &fields, as_bytes)
            }
            HmgetReplies::Raw { replies, fields } => {
                fields.clear();
                let unexpected = |e: UnexpectedReply| match e {
                    UnexpectedReply::Error(text) => self.failed("HMGET", Failure::Reply(&text)),
                    UnexpectedReply::Other(m) => self.hmget_failed(m),
                };
                let n = replies.array().map_err(unexpected)?.unwrap_or(0);
                for _ in 0..n {
                    fields.push(replies.bulk().map_err(unexpected)?);
                }
                let b = replies.bytes();
                self.record(r, fields, |f| f.clone().map(|x| &b[x]))
            }
        }
    }

    /// A reply of another shape than an HMGET's.
    fn hmget_failed(&self, message: String) -> OnlineError {
        OnlineError::Backend {
            store: self.describe.clone(),
            message: format!("HMGET failed: {message}"),
        }
    }

    /// One entity's record from its HMGET reply (`fields`: each feature's value, then `_ts`);
    /// `None` when the entity has no `_ts` (never written).
    fn record<'b, F>(
        &self,
        r: &ViewRead<'_>,
        fields: &'b [F],
        bytes: impl Fn(&'b F) -> Option<&'b [u8]>,
    ) -> Result<Option<Record>, OnlineError> {
        let corrupt = |m: String| OnlineError::Corrupt {
            store: self.describe.clone(),
            view: r.layout.name.clone(),
            message: m,
        };
        if fields.len() != r.features.len() + 1 {
            return Err(self.hmget_failed(format!(
                "{} fields for {} features and _ts",
                fields.len(),
                r.features.len()
            )));
        }
        let Some(ts_bytes) = fields.last().and_then(&bytes) else {
            return Ok(None);
        };
        let event_ts =
            decode_ts(ts_bytes).ok_or_else(|| corrupt("undecodable _ts field".into()))?;
        let mut values = Vec::with_capacity(r.features.len());
        for f in &fields[..fields.len() - 1] {
            values.push(match bytes(f) {
                Some(b) => Some(Value::decode(b).map_err(|e| corrupt(e.to_string()))?),
                None => None,
            });
        }
        Ok(Some(Record { event_ts, values }))
    }

    /// Every key of this store that ends with `suffix` (all primaries on a cluster).
    async fn scan_suffix(&self, suffix: &[u8]) -> Result<Vec<Vec<u8>>, OnlineError> {
        let mut pattern = b"*".to_vec();
        for b in suffix {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(*b);
        }
        let mut keys = Vec::new();
        match &self.conn {
            Conn::Standalone(m) => scan_all(&mut m.clone(), None, &pattern, &mut keys).await,
            Conn::Sentinel(s) => {
                let mut c = self.master(s).await?;
                scan_all(&mut c, None, &pattern, &mut keys).await
            }
            Conn::Cluster(c) => {
                let mut c = c.clone();
                let slots: RV = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut c)
                    .await
                    .map_err(self.client_failed("CLUSTER SLOTS"))?;
                for (host, port) in primaries(&slots) {
                    let route =
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                    let mut routed = c.clone();
                    scan_all(&mut c, Some((&mut routed, route)), &pattern, &mut keys)
                        .await
                        .map_err(self.client_failed("SCAN"))?;
                }
                Ok(())
            }
        }
        .map_err(self.client_failed("SCAN"))?;
        Ok(keys)
    }
}

/// A failed Redis request, as [`classify`] reads it.
#[derive(Debug, Clone, Copy)]
enum Failure<'a> {
    /// An error of redis-rs or of Larder's connection: I/O, timeouts, malformed replies, and
    /// the error replies they decoded.
    Client(&'a RedisError),
    /// The text of an error reply read in place (the standalone and sentinel HMGET path):
    /// its first word is the error code.
    Reply(&'a str),
}

/// What a failed request means, for the caller and for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The server answered deliberately: a problem of the request or of the data
    /// (WRONGTYPE, ERR, NOSCRIPT, any error code not named below); the same request fails the
    /// same way again. [`OnlineError::Backend`].
    Backend,
    /// The server cannot answer now and a retry may work (LOADING, BUSY, MASTERDOWN, ...).
    /// [`OnlineError::Unavailable`].
    Unavailable,
    /// Unavailable, and the connection no longer leads to the server to ask: it was lost
    /// (I/O errors and timeouts, a malformed reply), or the server was demoted (READONLY after
    /// a failover). A sentinel-named master is asked for again.
    Reconnect,
}

/// The one classification of Redis failures, for every path: by the error code when the
/// server sent one (redis-rs's [`redis::ServerErrorKind`] for the codes it knows, the code
/// itself for the others, such as WRONGTYPE and BUSY), by the [`ErrorKind`] otherwise.
fn classify(f: Failure<'_>) -> Class {
    let pipeline_errors;
    let code = match f {
        Failure::Reply(text) => text.split(' ').next(),
        Failure::Client(e) => match e.code() {
            Some(code) => Some(code),
            // A pipeline whose first error reply has a code redis-rs does not know.
            None => {
                pipeline_errors = e.clone().into_server_errors();
                pipeline_errors
                    .as_deref()
                    .and_then(|errors| errors.first())
                    .map(|(_, first)| first.code())
            }
        },
    };
    match (code, f) {
        (Some("READONLY"), _) => Class::Reconnect,
        // Loading a dump, running a script, a master or the cluster down, a slot migrating
        // (MOVED and ASK reach Larder only once redis-rs's redirects gave up), and refusals
        // for a state of the server's own (memory full, snapshots failing, too few replicas,
        // a connection the server no longer accepts as authenticated).
        (
            Some(
                "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK"
                | "OOM" | "MISCONF" | "NOREPLICAS" | "NOAUTH",
            ),
            _,
        ) => Class::Unavailable,
        (Some(_), _) | (None, Failure::Reply(_)) => Class::Backend,
        (None, Failure::Client(e)) => match e.kind() {
            ErrorKind::Io | ErrorKind::Parse => Class::Reconnect,
            ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::ClusterConnectionNotFound
            | ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::NoValidReplicasFoundBySentinel
            | ErrorKind::EmptySentinelList
            | ErrorKind::RESP3NotSupported => Class::Unavailable,
            // A reply of an unexpected type, a client-side refusal.
            _ => Class::Backend,
        },
    }
}

/// Awaits a connection attempt for at most `limit`.
async fn within<T>(
    limit: Duration,
    describe: &str,
    fut: impl std::future::Future<Output = RedisResult<T>>,
) -> Result<T, OnlineError> {
    let unavailable = |message: String| OnlineError::Unavailable {
        store: describe.to_owned(),
        message,
    };
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| unavailable("connection timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))
}

fn pipeline(cmds: Vec<Cmd>) -> redis::Pipeline {
    let mut p = redis::pipe();
    for c in cmds {
        p.add_command(c);
    }
    p
}

/// `(host, port)` of every primary in a `CLUSTER SLOTS` reply.
fn primaries(slots: &RV) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    if let RV::Array(ranges) = slots {
        for r in ranges {
            if let RV::Array(parts) = r
                && let Some(RV::Array(node)) = parts.get(2)
                && let (Some(h), Some(RV::Int(p))) = (node.first(), node.get(1))
            {
                let host = match h {
                    RV::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    RV::SimpleString(s) => s.clone(),
                    _ => continue,
                };
                let entry = (host, *p as u16);
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    out
}

/// Pages through `SCAN MATCH pattern` on one server (routed to `route` on a cluster).
async fn scan_all(
    conn: &mut (impl ConnectionLike + Send),
    cluster: Option<(&mut ClusterConnection, RoutingInfo)>,
    pattern: &[u8],
    out: &mut Vec<Vec<u8>>,
) -> RedisResult<()> {
    let mut cluster = cluster;
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let (next, keys): (u64, Vec<Vec<u8>>) = match cluster.as_mut() {
            Some((cc, route)) => {
                redis::from_redis_value(cc.route_command(cmd, route.clone()).await?)?
            }
            None => cmd.query_async(conn).await?,
        };
        out.extend(keys);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn decode_ts(bytes: &[u8]) -> Option<Timestamp> {
    Timestamp::decode(bytes).ok()
}

fn as_bytes(v: &RV) -> Option<&[u8]> {
    match v {
        RV::BulkString(b) => Some(b),
        RV::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// HMGET replies as they come back: decoded by redis-rs (cluster), or the bytes Redis sent,
/// read in place (`fields`: the current reply's field ranges, reused from key to key).
enum HmgetReplies {
    Values(std::vec::IntoIter<RV>),
    Raw {
        replies: RawReplies,
        fields: Vec<Option<std::ops::Range<usize>>>,
    },
}

/// Appends `HMGET <key><project> <fields...> <_ts field>` in RESP.
fn pack_hmget(buf: &mut Vec<u8>, key: &[u8], r: &ViewRead<'_>) {
    let mut n = itoa::Buffer::new();
    let header = |buf: &mut Vec<u8>, kind: u8, len: usize, n: &mut itoa::Buffer| {
        buf.push(kind);
        buf.extend_from_slice(n.format(len).as_bytes());
        buf.extend_from_slice(b"\r\n");
    };
    let arg = |buf: &mut Vec<u8>, a: &[u8], n: &mut itoa::Buffer| {
        header(buf, b'$', a.len(), n);
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    };
    header(buf, b'*', r.features.len() + 3, &mut n);
    arg(buf, b"HMGET", &mut n);
    header(buf, b'$', key.len() + r.layout.project.len(), &mut n);
    buf.extend_from_slice(key);
    buf.extend_from_slice(r.layout.project.as_bytes());
    buf.extend_from_slice(b"\r\n");
    for &i in r.features {
        // Field names are 4 bytes: one fixed-size argument each.
        let f = r.layout.redis_fields[i];
        buf.extend_from_slice(&[
            b'$', b'4', b'\r', b'\n', f[0], f[1], f[2], f[3], b'\r', b'\n',
        ]);
    }
    arg(buf, &r.layout.redis_ts_field, &mut n);
}

fn redis_key(key: &[u8], project: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + project.len());
    k.extend_from_slice(key);
    k.extend_from_slice(project.as_bytes());
    k
}

#[async_trait::async_trait]
impl OnlineStore for RedisOnlineStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn older_writes(&self) -> OlderWrites {
        if self.skip_dedup {
            OlderWrites::Overwrite
        } else {
            OlderWrites::Skip
        }
    }

    async fn read(&self, reads: &[ViewRead<'_>]) -> Result<Vec<Vec<Option<Record>>>, OnlineError> {
        use tracing::Instrument;
        let keys: usize = reads.iter().map(|r| r.keys.len()).sum();
        let span = tracing::info_span!(
            "redis.hmget",
            otel.kind = "client",
            db.system.name = "redis",
            keys
        );
        let mut replies = self.hmget(reads).instrument(span).await?;
        let mut out = Vec::with_capacity(reads.len());
        for r in reads {
            let mut view_out = Vec::with_capacity(r.keys.len());
            for _ in r.keys {
                view_out.push(self.next_record(&mut replies, r)?);
            }
            out.push(view_out);
        }
        Ok(out)
    }

    #[tracing::instrument(name = "redis.write", skip_all,
        fields(otel.kind = "client", db.system.name = "redis", rows = rows.len()))]
    async fn write(
        &self,
        layout: &ViewLayout,
        rows: &[WriteRow],
    ) -> Result<WriteOutcome, OnlineError> {
        let keys: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| redis_key(&r.key, &layout.project))
            .collect();
        let mut latest: HashMap<&[u8], i128> = HashMap::new();
        if !self.skip_dedup {
            let cmds = keys
                .iter()
                .map(|k| {
                    let mut c = redis::cmd("HMGET");
                    c.arg(&k[..]).arg(&layout.redis_ts_field[..]);
                    c
                })
                .collect();
            for (k, reply) in keys
                .iter()
                .zip(self.exec("HMGET of event times", cmds).await?)
            {
                if let RV::Array(v) = reply
                    && let Some(ts) = v.first().and_then(as_bytes).and_then(decode_ts)
                {
                    let e = latest.entry(&k[..]).or_insert(0);
                    *e = (*e).max(ts_nanos(&ts));
                }
            }
        }
        let mut out = WriteOutcome::default();
        let mut cmds = Vec::new();
        for (row, key) in rows.iter().zip(&keys) {
            let new = ts_nanos(&row.event_ts);
            if !self.skip_dedup {
                let max = latest.get(&key[..]).copied().unwrap_or(0);
                if max != 0 && new <= max {
                    out.skipped_not_newer += 1;
                    continue;
                }
                latest.insert(&key[..], new);
            }
            let mut hset = redis::cmd("HSET");
            hset.arg(&key[..])
                .arg(&layout.redis_ts_field[..])
                .arg(row.event_ts.encode_to_vec());
            for (field, value) in layout.redis_fields.iter().zip(&row.values) {
                if let Some(v) = value {
                    hset.arg(&field[..]).arg(v.encode_to_vec());
                }
            }
            cmds.push(hset);
            if let Some(ttl) = self.key_ttl_seconds {
                let mut exp = redis::cmd("EXPIRE");
                exp.arg(&key[..]).arg(ttl);
                cmds.push(exp);
            }
            out.written += 1;
        }
        self.exec("HSET", cmds).await?;
        Ok(out)
    }

    /// Commands of one connection run in the order sent, so a batch's `_ts` reads and writes
    /// can go out while the previous batch's writes are still being answered.
    fn concurrent_disjoint_writes(&self) -> usize {
        4
    }

    async fn drop_view(&self, layout: &ViewLayout) -> Result<(), OnlineError> {
        let keys = self.scan_suffix(layout.project.as_bytes()).await?;
        let hkeys: Vec<Cmd> = keys
            .iter()
            .map(|k| {
                let mut c = redis::cmd("HKEYS");
                c.arg(&k[..]);
                c
            })
            .collect();
        let replies = self.exec("HKEYS", hkeys).await?;
        let mut cmds = Vec::new();
        for (key, reply) in keys.iter().zip(replies) {
            let fields: Vec<Vec<u8>> = redis::from_redis_value(reply).unwrap_or_default();
            if !fields.contains(&layout.redis_ts_field) {
                continue;
            }
            let ts_fields = fields.iter().filter(|f| f.starts_with(b"_ts:")).count();
            if ts_fields == 1 {
                let mut c = redis::cmd("DEL");
                c.arg(&key[..]);
                cmds.push(c);
            } else {
                let mut c = redis::cmd("HDEL");
                c.arg(&key[..]);
                for f in &layout.redis_fields {
                    c.arg(&f[..]);
                }
                c.arg(&layout.redis_ts_field[..]);
                cmds.push(c);
            }
        }
        self.exec("deleting the view", cmds).await?;
        Ok(())
    }

    async fn check(&self) -> Result<(), OnlineError> {
        let replies = self.exec("PING", vec![redis::cmd("PING")]).await?;
        match replies.first() {
            Some(RV::SimpleString(s)) if s == "PONG" => Ok(()),
            Some(RV::Okay) => Ok(()),
            other => Err(OnlineError::Unavailable {
                store: self.describe.clone(),
                message: format!("unexpected PING reply {other:?}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feast_connection_strings() {
        let c = ConnectionString::parse("redis:6379,db=2,password=se,cr=t").unwrap_err();
        assert!(c.to_string().contains("cr"), "{c}");
        let c =
            ConnectionString::parse("redis1:6379,redis2:6380,db=2,password=\"p@ss\",username=u")
                .unwrap();
        assert_eq!(
            c.nodes,
            vec![("redis1".into(), 6379), ("redis2".into(), 6380)]
        );
        assert_eq!(c.db, 2);
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert_eq!(
            c.url("redis1", 6379, true),
            "redis://u:p%40ss@redis1:6379/2"
        );
        assert!(ConnectionString::parse("db=0").is_err());
        assert!(ConnectionString::parse("host:notaport").is_err());
        assert!(
            ConnectionString::parse("localhost:6379,ssl=true")
                .unwrap_err()
                .to_string()
                .contains("ssl")
        );
    }

    /// Error replies seen by Redis: the code decides, on the raw path and through redis-rs
    /// alike.
    #[test]
    fn error_replies_are_classified_by_their_code() {
        let backend = [
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "ERR unknown command 'FOO', with args beginning with: ",
            "NOSCRIPT No matching script. Please use EVAL.",
            "BUSYKEY Target key name already exists.",
            "NOPERM User default has no permissions to run the 'hmget' command",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "EXECABORT Transaction discarded because of previous errors.",
            "loading is not a code in lower case",
            "",
        ];
        let unavailable = [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MOVED 3999 127.0.0.1:6381",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
            "NOREPLICAS Not enough good replicas to write.",
            "NOAUTH Authentication required.",
        ];
        let reconnect = ["READONLY You can't write against a read only replica."];
        for (texts, class) in [
            (&backend[..], Class::Backend),
            (&unavailable[..], Class::Unavailable),
            (&reconnect[..], Class::Reconnect),
        ] {
            for text in texts {
                assert_eq!(classify(Failure::Reply(text)), class, "{text:?}");
                let e = redis::parse_redis_value(format!("-{text}\r\n").as_bytes())
                    .unwrap()
                    .extract_error()
                    .unwrap_err();
                assert_eq!(classify(Failure::Client(&e)), class, "{text:?} as {e:?}");
            }
        }
    }

    /// A connection that answers every pipeline with the same replies.
    struct Canned(Vec<RV>);

    impl ConnectionLike for Canned {
        fn req_packed_command<'a>(&'a mut self, _: &'a Cmd) -> redis::RedisFuture<'a, RV> {
            let first = self.0[0].clone();
            Box::pin(async move { Ok(first) })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a redis::Pipeline,
            _: usize,
            _: usize,
        ) -> redis::RedisFuture<'a, Vec<RV>> {
            let all = self.0.clone();
            Box::pin(async move { Ok(all) })
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    #[tokio::test]
    async fn a_pipeline_failure_is_classified_by_its_first_error_reply() {
        let error = |text: &str| redis::parse_redis_value(format!("-{text}\r\n").as_bytes());
        for (first, class) in [
            ("WRONGTYPE Operation against a key", Class::Backend),
            ("LOADING Redis is loading", Class::Unavailable),
            (
                "READONLY You can't write against a read only replica.",
                Class::Reconnect,
            ),
        ] {
            let mut conn = Canned(vec![
                RV::Okay,
                error(first).unwrap(),
                error("ERR later").unwrap(),
            ]);
            let cmds = vec![redis::cmd("SET"), redis::cmd("HMGET"), redis::cmd("GET")];
            let e = pipeline(cmds)
                .query_async::<RV>(&mut conn)
                .await
                .unwrap_err();
            assert_eq!(classify(Failure::Client(&e)), class, "{first:?} as {e:?}");
        }
    }

    #[test]
    fn client_errors_are_classified_by_their_kind() {
        use std::io::{Error, ErrorKind as Io};
        let cases = [
            (
                RedisError::from(Error::from(Io::ConnectionRefused)),
                Class::Reconnect,
            ),
            (
                RedisError::from(Error::from(Io::TimedOut)),
                Class::Reconnect,
            ),
            (
                RedisError::from(Error::from(Io::ConnectionAborted)),
                Class::Reconnect,
            ),
            (
                RedisError::from((ErrorKind::Parse, "bad reply")),
                Class::Reconnect,
            ),
            (
                RedisError::from((ErrorKind::AuthenticationFailed, "no")),
                Class::Unavailable,
            ),
            (
                RedisError::from((ErrorKind::MasterNameNotFoundBySentinel, "no")),
                Class::Unavailable,
            ),
            (
                RedisError::from((ErrorKind::UnexpectedReturnType, "not a list")),
                Class::Backend,
            ),
            (RedisError::from((ErrorKind::Client, "no")), Class::Backend),
        ];
        for (e, class) in cases {
            assert_eq!(classify(Failure::Client(&e)), class, "{e:?}");
        }
    }

    /// READONLY (a failover demoted the master) and a lost connection make a sentinel store
    /// ask the sentinels again; a request problem does not.
    #[test]
    fn a_sentinel_store_forgets_its_master_when_the_classification_says_so() {
        let client = SentinelClient::build(
            vec!["redis://127.0.0.1:1"],
            "mymaster".into(),
            None,
            SentinelServerType::Master,
        )
        .unwrap();
        let sentinel = Arc::new(SentinelConn {
            client: Mutex::new(client),
            template: PipeConfig {
                host: String::new(),
                port: 0,
                db: 0,
                username: None,
                password: None,
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(1),
            },
            conn: Mutex::new(None),
            stale: AtomicBool::new(false),
        });
        let store = RedisOnlineStore {
            conn: Conn::Sentinel(sentinel.clone()),
            describe: "redis sentinel test".into(),
            key_ttl_seconds: None,
            skip_dedup: false,
        };
        let stale = || sentinel.stale.swap(false, Ordering::AcqRel);
        let e = store.failed("HMGET", Failure::Reply("WRONGTYPE Operation against a key"));
        assert!(matches!(e, OnlineError::Backend { .. }), "{e:?}");
        assert!(!stale());
        let e = store.failed("HMGET", Failure::Reply("READONLY You can't write"));
        assert!(matches!(e, OnlineError::Unavailable { .. }), "{e:?}");
        assert!(stale());
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let e = store.failed("HSET", Failure::Client(&io));
        assert!(matches!(e, OnlineError::Unavailable { .. }), "{e:?}");
        assert!(stale());
        let loading = redis::parse_redis_value(b"-LOADING Redis is loading\r\n")
            .unwrap()
            .extract_error()
            .unwrap_err();
        let e = store.failed("HSET", Failure::Client(&loading));
        assert!(matches!(e, OnlineError::Unavailable { .. }), "{e:?}");
        assert!(!stale(), "the same master, still loading");
    }
}
