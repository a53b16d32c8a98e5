//! Servers: a TCP listener with three ways to serve it, and a UDP server.
//!
//! - [`TcpServerCore`] with [`Mode::Accept`]: a listening socket for
//!   hand-written accept loops.
//! - [`Mode::Handler`]: an accept thread and one worker thread per
//!   connection that runs a [`ConnHandler`] (the binding calls Python).
//! - [`Mode::Message`]: a tokio runtime on its own threads accepts, reads
//!   and frames ([`codec`]); the connection's task calls the
//!   [`MessageHandler`] with whole messages and writes the replies (see
//!   [`evented`] for why on the event loop's own threads).
//! - [`Mode::Echo`]: handler mode's threads with a Rust handler that
//!   blocks in `read`, the connections past `ECHO_THREADS` on the runtime
//!   (`echo` says why); with TLS, the runtime alone.
//!
//! Every thread that may call back into the caller's code runs between the
//! [`ThreadHooks`] the binding supplies (they attach the thread to the Python
//! interpreter once for the thread's life, so each callback only takes the
//! GIL). Nothing here imports pyo3.

pub mod codec;
mod conns;
mod echo;
pub mod evented;
mod evented_tls;
pub mod lifecycle;
pub mod listener;
pub mod stats;
pub mod tcp;
pub mod threaded;
mod tls_accept;
pub mod udp;
pub mod watchdog;

#[cfg(test)]
mod tls_tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use codec::{Decoder, Framing};
pub use listener::StopSignal;
pub use stats::{Stats, StatsSnapshot, UdpStats, UdpStatsSnapshot};
pub use tcp::{Mode, TcpServerCore};
pub use udp::{UdpMode, UdpServerCore};

use crate::error::Result;
use crate::tcp::TcpConnection;
use crate::wait::Interrupt;

/// What every server offers its owner, whatever it serves: the lifecycle
/// (bound -> running -> stopping -> stopped) and its read-outs. The
/// binding writes `start`/`serve_forever`/`stop`/`with`/`address`/`stats`
/// once against this trait for both server classes.
pub trait Server: Send + Sync {
    /// Start serving in the background; idempotent.
    fn start(&self) -> Result<()>;
    /// Stop, let handlers finish within `timeout`, close, join. Safe from
    /// any thread, a handler's included; idempotent.
    fn stop(&self, timeout: Duration);
    /// Block until the server has stopped completely. Interruptible.
    fn wait_stopped(&self, intr: &dyn Interrupt) -> Result<()>;
    fn local_addr(&self) -> SocketAddr;
    /// The listening/receiving socket's fd, -1 once stopped.
    fn fileno(&self) -> i32;
    /// "bound", "running", "stopping" or "stopped".
    fn state_name(&self) -> &'static str;
    /// The counters, named as `stats` shows them.
    fn stats_items(&self) -> Vec<(&'static str, u64)>;
    /// Why `serve_forever()` would have nothing to run, if so.
    fn can_serve(&self) -> Result<()> {
        Ok(())
    }
}

/// How a server thread that may call the caller's code enters and leaves
/// the caller's runtime: `start` runs first in every such thread (server
/// threads and the event loop's), `stop` last, also when the body panics.
/// The binding attaches the thread to the Python interpreter for its whole
/// life, so each callback only takes the GIL. `debug` reports what a
/// client did wrong that is no fault of the server (a failed TLS
/// handshake): the binding logs it at DEBUG level, from a server thread.
#[derive(Clone)]
pub struct ThreadHooks {
    pub start: Arc<dyn Fn() + Send + Sync>,
    pub stop: Arc<dyn Fn() + Send + Sync>,
    pub debug: Arc<dyn Fn(&str) + Send + Sync>,
}

impl ThreadHooks {
    /// Hooks that do nothing (Rust tests, echo servers).
    pub fn none() -> Self {
        ThreadHooks {
            start: Arc::new(|| {}),
            stop: Arc::new(|| {}),
            debug: Arc::new(|_| {}),
        }
    }
}

/// Runs `stop` when dropped, so a panicking body still leaves cleanly.
struct StopOnDrop(Arc<dyn Fn() + Send + Sync>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Spawn a named thread whose body runs between the hooks.
pub(crate) fn spawn(
    name: &str,
    hooks: &ThreadHooks,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let hooks = hooks.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            (hooks.start)();
            let _stop = StopOnDrop(hooks.stop);
            body()
        })
}

/// The bounds a server keeps on what clients may cost it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; the one beyond is closed at once.
    pub max_connections: usize,
    /// A client silent this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// The largest message a framed server accepts; a bigger one closes
    /// that connection.
    pub max_message: usize,
    /// `on_message` and echo modes: reply bytes a connection may have
    /// waiting to be sent; past it the server stops reading from that
    /// connection (and handling its messages) until the peer drains it.
    pub max_unsent: usize,
}

impl Limits {
    /// How long a client gets to finish its TLS handshake: `idle_timeout`
    /// when set (the handshake is the client's first exchange), else
    /// `defaults::TLS_HANDSHAKE_TIMEOUT`, so a client that connects and
    /// never speaks TLS costs only its own connection, and not forever.
    pub fn handshake_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(Duration::from_secs_f64(
            crate::defaults::TLS_HANDSHAKE_TIMEOUT,
        ))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: crate::defaults::MAX_CONNECTIONS,
            idle_timeout: None,
            max_message: crate::defaults::MAX_MESSAGE,
            max_unsent: crate::defaults::MAX_UNSENT,
        }
    }
}

/// What a message or datagram handler answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send these bytes back (framed as the request was).
    Reply(Vec<u8>),
    /// Send nothing.
    NoReply,
    /// The handler failed (the caller has reported it): close the connection.
    Failed,
}

/// Handles whole messages.
pub trait MessageHandler: Send + Sync + 'static {
    /// One connection's messages in arrival order; one outcome per message
    /// handled, in order. Called on an event-loop thread with a batch of
    /// messages (the binding takes the GIL once for all of them). It handles
    /// at least one, and may stop early: after a `Failed`, or once the
    /// replies so far total `budget` bytes or more (the server sends them
    /// and hands over the rest later, so a client that never reads cannot
    /// make it build replies without bound).
    fn handle(&self, peer: SocketAddr, msgs: &[Vec<u8>], budget: usize) -> Vec<Outcome>;
}

/// How a connection handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnOutcome {
    Done,
    /// It raised (the caller has reported it): counted in `handler_errors`.
    Failed,
}

/// Serves one connection in its own thread; the server closes the
/// connection when it returns.
pub trait ConnHandler: Send + Sync + 'static {
    fn handle(&self, conn: TcpConnection, peer: SocketAddr, stopping: &StopSignal) -> ConnOutcome;

    /// True when the handler adds to `bytes_in`/`bytes_out` itself; else
    /// the server reads them from TCP_INFO when the connection ends.
    fn counts_bytes(&self) -> bool {
        false
    }
}

/// Handles one datagram; `Outcome::Failed` is counted, nothing is closed.
pub trait DatagramHandler: Send + Sync + 'static {
    fn handle(&self, data: &[u8], peer: SocketAddr) -> Outcome;

    /// A reply the socket refused for a reason that is the handler's (over
    /// the largest datagram the address family carries): the server counts
    /// it in `handler_errors` and calls this so the binding can log it.
    fn reply_failed(&self, _peer: SocketAddr, _len: usize, _err: &std::io::Error) {}
}
