//! The TCP server object: a listening socket made at construction, served
//! by one of the modes once started, and a stop that wakes, drains, closes
//! and joins.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::Socket;

use crate::addr::HostPort;
use crate::defaults;
use crate::error::{Error, Result};
use crate::options::{Proto, SocketOptions};
use crate::resolve::resolve;
use crate::tcp::TcpConnection;
use crate::tls::ServerTls;
use crate::wait::{Deadline, Interrupt};

use super::lifecycle::Lifecycle;
use super::listener::{self, Accepted, StopSignal};
use super::tls_accept::Handshakes;
use super::{
    evented, threaded, ConnHandler, Framing, Limits, MessageHandler, Server, Stats, ThreadHooks,
};

/// How a started server serves its connections.
pub enum Mode {
    /// Nobody: the caller runs `accept()`.
    Accept,
    /// A thread per connection runs the handler.
    Handler(Arc<dyn ConnHandler>),
    /// The event loop frames and runs the handler.
    Message {
        handler: Arc<dyn MessageHandler>,
        framing: Framing,
    },
    /// Every byte echoed back: a thread per connection, then the event
    /// loop past `ECHO_THREADS` (`echo`); the event loop alone with TLS.
    Echo,
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Accept => "accept",
            Mode::Handler(_) => "handler",
            Mode::Message { .. } => "on_message",
            Mode::Echo => "echo",
        }
    }
}

enum Running {
    Accept,
    Threaded(threaded::Running),
    Evented(evented::Running),
    /// The plain echo: threads first, the loop past them.
    Both(threaded::Running, evented::Running),
}

pub struct TcpServerCore {
    listener: Mutex<Option<Arc<Socket>>>,
    local: SocketAddr,
    stop: Arc<StopSignal>,
    stats: Arc<Stats>,
    limits: Limits,
    mode: Mode,
    hooks: ThreadHooks,
    /// TLS servers: every connection's handshake runs before it is served.
    tls: Option<Arc<ServerTls>>,
    /// A TLS server without a handler: `accept()`'s handshakes.
    handshakes: Option<Handshakes>,
    life: Lifecycle<Running>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The address to bind for `hp`: the literal, or the first IPv4 address of
/// a name (then the first of any family).
pub fn bind_address(hp: &HostPort, intr: &dyn Interrupt) -> Result<SocketAddr> {
    let addrs = resolve(
        &hp.host,
        hp.port,
        Deadline::after(Some(Duration::from_secs(30))),
        intr,
    )?;
    addrs
        .iter()
        .copied()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first().copied())
        .ok_or_else(|| Error::invalid("address", format!("{hp} has no address")))
}

impl TcpServerCore {
    /// Bind and listen now, so `local_addr()` is known and connections
    /// queue in the backlog before `start()`. `reuse_address` defaults to on.
    pub fn bind(
        addr: SocketAddr,
        mut opts: SocketOptions,
        backlog: i32,
        limits: Limits,
        mode: Mode,
        hooks: ThreadHooks,
        tls: Option<Arc<ServerTls>>,
    ) -> Result<Self> {
        opts.validate(Proto::Tcp)?;
        // Accepted connections inherit TCP_NODELAY from the listener.
        if opts.nodelay.is_none() {
            opts.nodelay = Some(crate::defaults::NODELAY);
        }
        if opts.reuse_address.is_none() {
            opts.reuse_address = Some(true);
        }
        if limits.max_connections == 0 {
            return Err(Error::invalid(
                "max_connections",
                "must be at least 1, got 0",
            ));
        }
        if limits.max_message == 0 {
            return Err(Error::invalid("max_message", "must be at least 1, got 0"));
        }
        if limits.max_unsent == 0 {
            return Err(Error::invalid("max_unsent", "must be at least 1, got 0"));
        }
        let s = listener::bind_tcp(addr, &opts, backlog)?;
        let local = listener::local_addr(&s)?;
        let stats = Arc::new(Stats::default());
        let handshakes = match (&tls, &mode) {
            (Some(t), Mode::Accept) => Some(Handshakes::new(t.clone(), stats.clone(), limits)?),
            _ => None,
        };
        Ok(TcpServerCore {
            listener: Mutex::new(Some(Arc::new(s))),
            local,
            stop: Arc::new(StopSignal::new()?),
            stats,
            limits,
            mode,
            hooks,
            tls,
            handshakes,
            life: Lifecycle::default(),
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn listener(&self) -> Result<Arc<Socket>> {
        lock(&self.listener).clone().ok_or(Error::Stopped)
    }

    fn start_mode(&self) -> Result<Running> {
        let l = self.listener()?;
        Ok(match &self.mode {
            Mode::Accept => Running::Accept,
            Mode::Handler(h) => Running::Threaded(threaded::Running::start(
                l,
                self.stop.clone(),
                self.stats.clone(),
                self.limits,
                h.clone(),
                self.hooks.clone(),
                self.tls.clone(),
                None,
            )?),
            Mode::Message { handler, framing } => Running::Evented(evented::Running::start(
                Some(&l),
                self.stats.clone(),
                self.limits,
                evented::Responder::Handler(handler.clone()),
                *framing,
                self.hooks.clone(),
                self.tls.clone(),
            )?),
            Mode::Echo if self.tls.is_none() => {
                let lp = evented::Running::start(
                    None,
                    self.stats.clone(),
                    self.limits,
                    evented::Responder::Echo,
                    Framing::Raw,
                    ThreadHooks::none(),
                    None,
                )?;
                let overflow = threaded::Overflow {
                    threads: defaults::ECHO_THREADS,
                    to: lp.adopter(),
                };
                let threads = threaded::Running::start(
                    l,
                    self.stop.clone(),
                    self.stats.clone(),
                    self.limits,
                    Arc::new(super::echo::Echo(self.stats.clone())),
                    ThreadHooks::none(),
                    None,
                    Some(overflow),
                )?;
                Running::Both(threads, lp)
            }
            Mode::Echo => Running::Evented(evented::Running::start(
                Some(&l),
                self.stats.clone(),
                self.limits,
                evented::Responder::Echo,
                Framing::Raw,
                // A failed TLS handshake is reported (the binding logs it).
                self.hooks.clone(),
                self.tls.clone(),
            )?),
        })
    }

    /// Wait for one connection (hand-written loops); its timeout is
    /// `idle_timeout`. Interruptible, woken by `stop()` (then `Error::Stopped`).
    /// A TLS server returns a connection whose handshake is done, or the
    /// error of one that failed (see `tls_accept`).
    pub fn accept(
        &self,
        timeout: Option<Duration>,
        intr: &dyn Interrupt,
    ) -> Result<(TcpConnection, SocketAddr)> {
        let l = self.listener()?;
        let timed_out =
            || Error::timeout(crate::error::Phase::Accept, Some(self.local.to_string()));
        if let Some(h) = &self.handshakes {
            return match h.accept(&l, &self.stop, Deadline::after(timeout), intr)? {
                Some((conn, peer)) => conn.map(|c| (c, peer)),
                None => Err(timed_out()),
            };
        }
        match listener::accept(&l, &self.stop, Deadline::after(timeout), intr)? {
            Accepted::Conn(s, peer) => {
                Stats::add(&self.stats.accepted, 1);
                // The peer is known from accept(2): asking getpeername again
                // failed (ENOTCONN) for a client that reset while queued,
                // and raised out of the caller's accept loop. Like the
                // stdlib, return it; its first recv reports the reset.
                Ok((
                    TcpConnection::connected(s, peer, self.limits.idle_timeout),
                    peer,
                ))
            }
            Accepted::Stopped => Err(Error::Stopped),
            Accepted::TimedOut => Err(timed_out()),
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_set()
    }
}

impl Server for TcpServerCore {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        lock(&self.listener).as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// "bound", "running", "stopping" or "stopped".
    fn state_name(&self) -> &'static str {
        self.life.name()
    }

    /// Start serving in the background; idempotent. Returns once the
    /// serving threads run (the socket listens since `bind`).
    fn start(&self) -> Result<()> {
        self.life.start(|| self.start_mode())
    }

    /// Block until the server has stopped completely (by `stop()` from
    /// another thread or a handler). Interruptible.
    fn wait_stopped(&self, intr: &dyn Interrupt) -> Result<()> {
        self.stop.wait(Deadline::NEVER, intr)?;
        self.life.wait_stopped(intr)
    }

    /// Stop accepting, let handlers finish within `timeout`, close every
    /// connection, join the threads started (all but the calling one, when
    /// a handler calls it). Safe from any thread, idempotent; a second
    /// caller waits (up to `timeout`) for the first to finish.
    fn stop(&self, timeout: Duration) {
        self.stop.trigger();
        if let Some(h) = &self.handshakes {
            h.close(true);
        }
        let Some(running) = self.life.begin_stop(timeout) else {
            return;
        };
        // The event loop listens on a dup of this socket, and a stop() from
        // inside a handler hands the loop's end to another thread: shutting
        // the listening socket down (Linux moves it out of LISTEN, shared
        // by every dup) makes the port refuse before stop() returns, in
        // every mode.
        if let Some(l) = lock(&self.listener).as_ref() {
            let _ = l.shutdown(std::net::Shutdown::Read);
        }
        let deadline = Deadline::after(Some(timeout));
        match running {
            Some(Running::Threaded(r)) => r.stop(deadline),
            Some(Running::Evented(r)) => r.stop(deadline),
            Some(Running::Both(threads, lp)) => {
                // The accept thread is joined first: nothing is handed to
                // the loop once it stops.
                threads.stop(deadline);
                lp.stop(deadline);
            }
            Some(Running::Accept) | None => {}
        }
        lock(&self.listener).take();
        self.stop.close();
        self.life.finish();
    }

    /// TLS servers add `tls_failures`.
    fn stats_items(&self) -> Vec<(&'static str, u64)> {
        let snap = self.stats.snapshot();
        let mut items = snap.items().to_vec();
        if self.tls.is_some() {
            items.push(("tls_failures", snap.tls_failures));
        }
        items
    }

    fn can_serve(&self) -> Result<()> {
        if matches!(self.mode, Mode::Accept) {
            return Err(Error::invalid(
                "serve_forever()",
                "needs handler= or on_message=; without them, call accept() in a loop",
            ));
        }
        Ok(())
    }
}

impl Drop for TcpServerCore {
    /// A server dropped without `stop()`: wake its threads and close its
    /// connections without waiting for them (the dropping thread may hold a
    /// lock, such as the GIL, that they need to finish).
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(h) = &self.handshakes {
            h.close(false);
        }
        match self.life.abandon() {
            Some(Running::Threaded(r)) => r.abandon(),
            Some(Running::Evented(r)) => r.abandon(),
            Some(Running::Both(threads, lp)) => {
                threads.abandon();
                lp.abandon();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
