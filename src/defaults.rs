//! Every default a user sees, defined once. The core builds its `Default`s
//! from these; the binding exports them as `_core.DEFAULTS`, which
//! `probes.py`, the servers' signatures and the CLI read, so a default
//! changed here changes everywhere (issue 10).
//!
//! Seconds are `f64` because that is how Python spells them.

/// `check`, `check_many`, `check_iter`: seconds per connect.
pub const CHECK_TIMEOUT: f64 = 1.0;
/// `check_many`, `check_iter`: connects in flight at once.
pub const CHECK_CONCURRENCY: usize = 512;
/// `scan`, `scan_iter`: ports when none are given (nmap's well-known range).
pub const SCAN_PORTS: &str = "1-1024";
/// `scan`, `scan_iter`: seconds per connect (a scan favours speed).
pub const SCAN_TIMEOUT: f64 = 0.5;
/// `scan`, `scan_iter`: connects in flight at once.
pub const SCAN_CONCURRENCY: usize = 1024;
/// `tcping`: pings, seconds between ping starts, seconds per ping.
pub const PING_COUNT: usize = 4;
pub const PING_INTERVAL: f64 = 1.0;
pub const PING_TIMEOUT: f64 = 1.0;
/// `wait_for`: seconds in all, and the first retry delay (it backs off).
pub const WAIT_TIMEOUT: f64 = 30.0;
pub const WAIT_INTERVAL: f64 = 0.25;
/// `banner`: seconds in all, and the most bytes read.
pub const BANNER_TIMEOUT: f64 = 2.0;
pub const BANNER_MAX_BYTES: usize = 1024;
/// `udp_probe` and `UdpSocket.request`: seconds per try, resends on silence.
pub const UDP_TIMEOUT: f64 = 1.0;
pub const UDP_RETRIES: usize = 2;
/// `recv`/`recvfrom` bufsize, and the `max_size` bound of the framed reads.
pub const RECV_SIZE: usize = 64 * 1024;
/// `recv_many`: datagrams per batch.
pub const RECV_MANY: usize = 64;
/// Servers: listen backlog and the most connections served at once.
pub const BACKLOG: usize = 1024;
pub const MAX_CONNECTIONS: usize = 1024;
/// `on_message` servers: the largest frame (1 MiB).
pub const MAX_MESSAGE: usize = 1 << 20;
/// `on_message` servers: reply bytes one connection may have waiting to be
/// sent (64 KiB, asyncio's and Netty's default high-water mark); past it the
/// server reads no more from that connection, and calls no handler for it,
/// until the client has read enough. A client that sends and never reads
/// costs at most this, one reply and one read.
pub const MAX_UNSENT: usize = 64 * 1024;
/// `TcpServer.echo`: the largest chunk it echoes at once.
pub const ECHO_MAX_MESSAGE: usize = 64 * 1024;
/// `TcpServer.echo` (no TLS): connections served by a blocking thread each
/// at once; the ones past them go to the event loop. Measured (see
/// `server/echo.rs`): threads won 2x at 50 connections driven by client
/// threads, the loop won ~1.3x at 1,000 driven by one asyncio loop.
pub const ECHO_THREADS: usize = 64;
/// TCP_NODELAY on every TCP connection socketkit makes or accepts, unless
/// `nodelay=False`: with Nagle on, a reply written in two parts, or the
/// second of two pipelined replies, waits for the peer's delayed ACK (40 ms
/// on Linux); redis-benchmark -P 16 against a handler server served 18k
/// req/s with Nagle and 53k without (issue 16). asyncio, uvloop, Go and
/// tokio-based servers set it on every TCP socket too.
pub const NODELAY: bool = true;
/// Servers' `stop(timeout=)`: seconds handlers get to finish.
pub const STOP_TIMEOUT: f64 = 5.0;
/// TLS servers: seconds a client gets to finish its handshake when the
/// server has no `idle_timeout` (nginx's `client_header_timeout` is 60 s,
/// Go's usual `ReadHeaderTimeout` 10 s: a live client needs milliseconds).
pub const TLS_HANDSHAKE_TIMEOUT: f64 = 10.0;

/// Name and value of every default, for `_core.DEFAULTS`.
pub enum Value {
    Bool(bool),
    Int(usize),
    Seconds(f64),
    Text(&'static str),
}

/// The table the binding exports: one row per default above.
pub const ALL: &[(&str, Value)] = &[
    ("check_timeout", Value::Seconds(CHECK_TIMEOUT)),
    ("check_concurrency", Value::Int(CHECK_CONCURRENCY)),
    ("scan_ports", Value::Text(SCAN_PORTS)),
    ("scan_timeout", Value::Seconds(SCAN_TIMEOUT)),
    ("scan_concurrency", Value::Int(SCAN_CONCURRENCY)),
    ("ping_count", Value::Int(PING_COUNT)),
    ("ping_interval", Value::Seconds(PING_INTERVAL)),
    ("ping_timeout", Value::Seconds(PING_TIMEOUT)),
    ("wait_timeout", Value::Seconds(WAIT_TIMEOUT)),
    ("wait_interval", Value::Seconds(WAIT_INTERVAL)),
    ("banner_timeout", Value::Seconds(BANNER_TIMEOUT)),
    ("banner_max_bytes", Value::Int(BANNER_MAX_BYTES)),
    ("udp_timeout", Value::Seconds(UDP_TIMEOUT)),
    ("udp_retries", Value::Int(UDP_RETRIES)),
    ("recv_size", Value::Int(RECV_SIZE)),
    ("recv_many", Value::Int(RECV_MANY)),
    ("backlog", Value::Int(BACKLOG)),
    ("max_connections", Value::Int(MAX_CONNECTIONS)),
    ("max_message", Value::Int(MAX_MESSAGE)),
    ("max_unsent", Value::Int(MAX_UNSENT)),
    ("echo_max_message", Value::Int(ECHO_MAX_MESSAGE)),
    ("echo_threads", Value::Int(ECHO_THREADS)),
    ("stop_timeout", Value::Seconds(STOP_TIMEOUT)),
    ("nodelay", Value::Bool(NODELAY)),
    (
        "tls_handshake_timeout",
        Value::Seconds(TLS_HANDSHAKE_TIMEOUT),
    ),
];
