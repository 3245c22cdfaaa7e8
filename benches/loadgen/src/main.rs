//! `loadgen`: sends POST requests at a fixed rate, evenly spaced to the microsecond, over
//! keep-alive HTTP/1.1 connections, and reports latency percentiles.
//!
//! Why not oha or wrk: wrk is closed-loop (it waits for each answer, so a slow server lowers
//! the offered load and hides its own delays), and oha's rate limiter releases requests on a
//! 1 ms timer tick, so at 20K req/s the server sees bursts of 20 simultaneous requests every
//! millisecond and the measured latency is mostly the client's own bursts queueing.
//!
//! Here request `i` is due at `start + i / rate`. One thread spins on non-blocking sockets:
//! due requests go to idle connections in order; a request that finds no idle connection waits
//! and its latency still counts from its due time (no coordinated omission). The spinning
//! thread needs a core of its own (run it under `taskset`).
//!
//! Usage: loadgen URL BODY_FILE RATE SECONDS [CONNECTIONS]
//! BODY_FILE holds one request body per line, sent in turn. Prints one CSV line:
//! `offered_per_s,achieved_per_s,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,errors,client_pause_ms`,
//! the last being the longest time the client itself was descheduled.
//! Any non-200 answer or connection error is counted in `errors`, and the exit status is 1.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    /// The due time of the request in flight.
    due: Option<Instant>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: loadgen URL BODY_FILE RATE SECONDS [CONNECTIONS]".into());
    }
    let (addr, path) = parse_url(&args[0])?;
    let bodies: Vec<String> = std::fs::read_to_string(&args[1])
        .map_err(|e| format!("reading {}: {e}", args[1]))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if bodies.is_empty() {
        return Err(format!("{} holds no request bodies", args[1]));
    }
    let rate: f64 = args[2].parse().map_err(|_| "RATE must be a number")?;
    let seconds: f64 = args[3].parse().map_err(|_| "SECONDS must be a number")?;
    let connections: usize = match args.get(4) {
        Some(c) => c.parse().map_err(|_| "CONNECTIONS must be a number")?,
        None => 16,
    };
    if !(rate > 0.0 && seconds > 0.0 && connections > 0) {
        return Err("RATE, SECONDS and CONNECTIONS must be positive".into());
    }
    let requests: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{b}",
                b.len()
            )
            .into_bytes()
        })
        .collect();
    let mut conns = (0..connections)
        .map(|_| {
            let stream =
                TcpStream::connect(&addr).map_err(|e| format!("connecting {addr}: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Conn {
                stream,
                out: Vec::new(),
                written: 0,
                inbuf: Vec::with_capacity(64 * 1024),
                due: None,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;

    let total = (rate * seconds).round() as u64;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(10);
    let mut issued: u64 = 0;
    let mut backlog: VecDeque<Instant> = VecDeque::new();
    let mut latencies: Vec<u32> = Vec::with_capacity(total as usize);
    let mut errors: u64 = 0;
    let mut idle: Vec<usize> = (0..connections).rev().collect();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last_done = start;
    let drain_until = start + Duration::from_secs_f64(seconds) + Duration::from_secs(5);
    // The longest time the spinning loop was away (descheduled): a stall of the client counts
    // as latency of every request due meanwhile, so it is reported beside the percentiles.
    let mut pause = Duration::ZERO;
    let mut last_turn = start;
    loop {
        let now = Instant::now();
        if now > start {
            pause = pause.max(now.saturating_duration_since(last_turn));
            last_turn = now;
        }
        while issued < total && start + gap * (issued as u32) <= now {
            backlog.push_back(start + gap * (issued as u32));
            issued += 1;
        }
        while let (Some(_), Some(&c)) = (backlog.front(), idle.last()) {
            let due = backlog.pop_front().expect("a due request");
            idle.pop();
            let conn = &mut conns[c];
            conn.out.clear();
            conn.out
                .extend_from_slice(&requests[(issued as usize + c) % requests.len()]);
            conn.written = 0;
            conn.due = Some(due);
        }
        let mut busy = false;
        for (i, conn) in conns.iter_mut().enumerate() {
            let Some(due) = conn.due else { continue };
            busy = true;
            if conn.written < conn.out.len() {
                match conn.stream.write(&conn.out[conn.written..]) {
                    Ok(n) => conn.written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(format!("sending: {e}")),
                }
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => return Err("the server closed a connection".into()),
                Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => return Err(format!("receiving: {e}")),
            }
            if let Some((status, len)) = response_end(&conn.inbuf)? {
                let done = Instant::now();
                latencies.push(done.duration_since(due).as_micros().min(u32::MAX as u128) as u32);
                if status != 200 {
                    errors += 1;
                }
                conn.inbuf.drain(..len);
                conn.due = None;
                idle.push(i);
                last_done = done;
            }
        }
        if issued == total && backlog.is_empty() && !busy {
            break;
        }
        if now > drain_until {
            errors +=
                conns.iter().filter(|c| c.due.is_some()).count() as u64 + backlog.len() as u64;
            break;
        }
    }
    latencies.sort_unstable();
    let q = |p: f64| -> f64 {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    let elapsed = last_done.duration_since(start).as_secs_f64();
    println!(
        "{rate:.0},{:.0},{:.3},{:.3},{:.3},{:.3},{:.3},{errors},{:.3}",
        latencies.len() as f64 / elapsed,
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        q(1.0),
        pause.as_secs_f64() * 1000.0,
    );
    if errors > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !addr.contains(':') {
        return Err(format!("{url}: give the port"));
    }
    Ok((addr.to_owned(), path.to_owned()))
}

/// When `buf` starts with a complete response: its status and length (head + body).
fn response_end(buf: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "a response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {head:.60}"))?;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked responses are not supported".into());
            }
        }
    }
    let length = length.ok_or("a response without Content-Length")?;
    let end = head_end + 4 + length;
    Ok((buf.len() >= end).then_some((status, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_complete_only_with_its_whole_body() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(response_end(&r[..r.len() - 1]).unwrap(), None);
        assert_eq!(response_end(r).unwrap(), Some((200, r.len())));
        let two = [
            &r[..],
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        assert_eq!(response_end(&two).unwrap(), Some((200, r.len())));
        assert_eq!(
            response_end(&two[r.len()..]).unwrap(),
            Some((404, two.len() - r.len()))
        );
        assert!(response_end(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn urls_need_a_port() {
        assert_eq!(
            parse_url("http://127.0.0.1:80/x").unwrap(),
            ("127.0.0.1:80".into(), "/x".into())
        );
        assert!(parse_url("http://localhost/x").is_err());
        assert!(parse_url("https://127.0.0.1:1/").is_err());
    }
}
