//! Servers: a TCP listener with three ways to serve it, and a UDP server.
//!
//! - [`TcpServerCore`] with [`Mode::Accept`]: a listening socket for
//!   hand-written accept loops.
//! - [`Mode::Handler`]: an accept thread and one worker thread per
//!   connection that runs a [`ConnHandler`] (the binding calls Python).
//! - [`Mode::Message`] and [`Mode::Echo`]: a tokio runtime on its own
//!   threads accepts, reads and frames ([`codec`]); whole messages go to a
//!   small pool of threads that run a [`MessageHandler`], so the reactor
//!   never waits for the caller's lock (the GIL in the binding). Echo replies
//!   in the reactor itself.
//!
//! Every thread that may call back into the caller's code runs inside a
//! [`ThreadWrap`] the binding supplies (it attaches the thread to the Python
//! interpreter once for the thread's life, so each callback only takes the
//! GIL). Nothing here imports pyo3.

pub mod codec;
pub mod evented;
pub mod lifecycle;
pub mod listener;
pub mod stats;
pub mod tcp;
pub mod threaded;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use codec::{Decoder, Framing};
pub use listener::StopSignal;
pub use stats::{Stats, StatsSnapshot, UdpStats, UdpStatsSnapshot};
pub use tcp::{Mode, TcpServerCore};
pub use udp::{UdpMode, UdpServerCore};

use crate::tcp::TcpConnection;

/// Runs the body of every thread that calls a handler.
pub type ThreadWrap = Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

/// A wrap that just runs the body (Rust tests, echo servers).
pub fn plain_wrap() -> ThreadWrap {
    Arc::new(|body: Box<dyn FnOnce() + Send>| body())
}

/// Spawn a named thread whose body runs inside `wrap`.
pub(crate) fn spawn(
    name: &str,
    wrap: &ThreadWrap,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let wrap = wrap.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || wrap(Box::new(body)))
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            idle_timeout: None,
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

/// `max_message` unless told otherwise: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

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
    /// (the list may stop early after a `Failed`).
    fn handle(&self, peer: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Outcome>;

    /// Run `work`, which calls `handle` any number of times. The binding
    /// takes the GIL once around all of them, so a handler thread with a
    /// queue of connections does not hand the GIL back and forth.
    fn session(&self, work: &mut dyn FnMut()) {
        work()
    }
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
}

/// Handles one datagram; `Outcome::Failed` is counted, nothing is closed.
pub trait DatagramHandler: Send + Sync + 'static {
    fn handle(&self, data: &[u8], peer: SocketAddr) -> Outcome;
}
