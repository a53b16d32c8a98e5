//! The TCP server object: a listening socket made at construction, served
//! by one of the modes once started, and a stop that wakes, drains, closes
//! and joins.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::Socket;

use crate::addr::HostPort;
use crate::error::{Error, Result};
use crate::options::{Proto, SocketOptions};
use crate::resolve::resolve;
use crate::tcp::TcpConnection;
use crate::wait::{Deadline, Interrupt};

use super::lifecycle::Lifecycle;
use super::listener::{self, Accepted, StopSignal};
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
    /// The event loop echoes every byte back.
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
}

pub struct TcpServerCore {
    listener: Mutex<Option<Arc<Socket>>>,
    local: SocketAddr,
    stop: Arc<StopSignal>,
    stats: Arc<Stats>,
    limits: Limits,
    mode: Mode,
    hooks: ThreadHooks,
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
    ) -> Result<Self> {
        opts.validate(Proto::Tcp)?;
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
        let s = listener::bind_tcp(addr, &opts, backlog)?;
        let local = listener::local_addr(&s)?;
        Ok(TcpServerCore {
            listener: Mutex::new(Some(Arc::new(s))),
            local,
            stop: Arc::new(StopSignal::new()?),
            stats: Arc::new(Stats::default()),
            limits,
            mode,
            hooks,
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
            )?),
            Mode::Message { handler, framing } => Running::Evented(evented::Running::start(
                &l,
                self.stats.clone(),
                self.limits,
                evented::Responder::Handler(handler.clone()),
                *framing,
                self.hooks.clone(),
            )?),
            Mode::Echo => Running::Evented(evented::Running::start(
                &l,
                self.stats.clone(),
                self.limits,
                evented::Responder::Echo,
                Framing::Raw,
                ThreadHooks::none(), // no caller's code runs
            )?),
        })
    }

    /// Wait for one connection (hand-written loops); its timeout is
    /// `idle_timeout`. Interruptible, woken by `stop()` (then `Error::Stopped`).
    pub fn accept(
        &self,
        timeout: Option<Duration>,
        intr: &dyn Interrupt,
    ) -> Result<(TcpConnection, SocketAddr)> {
        let l = self.listener()?;
        match listener::accept(&l, &self.stop, Deadline::after(timeout), intr)? {
            Accepted::Conn(s, peer) => {
                Stats::add(&self.stats.accepted, 1);
                Ok((TcpConnection::new(s, self.limits.idle_timeout)?, peer))
            }
            Accepted::Stopped => Err(Error::Stopped),
            Accepted::TimedOut => Err(Error::timeout(
                crate::error::Phase::Accept,
                Some(self.local.to_string()),
            )),
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
        let Some(running) = self.life.begin_stop(timeout) else {
            return;
        };
        let deadline = Deadline::after(Some(timeout));
        match running {
            Some(Running::Threaded(r)) => r.stop(deadline),
            Some(Running::Evented(r)) => r.stop(deadline),
            Some(Running::Accept) | None => {}
        }
        lock(&self.listener).take();
        self.stop.close();
        self.life.finish();
    }

    fn stats_items(&self) -> Vec<(&'static str, u64)> {
        self.stats.snapshot().items().to_vec()
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
        match self.life.abandon() {
            Some(Running::Threaded(r)) => r.abandon(),
            Some(Running::Evented(r)) => r.abandon(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{ConnOutcome, Outcome, ThreadHooks};
    use crate::wait::NoInterrupt;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn server(mode: Mode, limits: Limits) -> TcpServerCore {
        let s = TcpServerCore::bind(
            "127.0.0.1:0".parse().unwrap(),
            SocketOptions::default(),
            128,
            limits,
            mode,
            ThreadHooks::none(),
        )
        .unwrap();
        s.start().unwrap();
        s
    }

    fn client(s: &TcpServerCore) -> TcpStream {
        let c = TcpStream::connect(s.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    }

    fn read_n(c: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        c.read_exact(&mut b).unwrap();
        b
    }

    /// Reads until EOF or reset: true if the server closed the connection.
    fn closed_by_server(c: &mut TcpStream) -> bool {
        let mut b = [0u8; 64];
        loop {
            match c.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    struct Upper;
    impl MessageHandler for Upper {
        fn handle(&self, _: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Outcome> {
            msgs.iter()
                .map(|m| match m.as_slice() {
                    b"fail" => Outcome::Failed,
                    b"quiet" => Outcome::NoReply,
                    _ => Outcome::Reply(m.to_ascii_uppercase()),
                })
                .collect()
        }
    }

    fn message_mode(framing: Framing) -> Mode {
        Mode::Message {
            handler: Arc::new(Upper),
            framing,
        }
    }

    #[test]
    fn echo_mode_echoes_and_stops() {
        let s = server(Mode::Echo, Limits::default());
        let mut c = client(&s);
        c.write_all(b"hello").unwrap();
        assert_eq!(read_n(&mut c, 5), b"hello");
        s.stop(Duration::from_secs(1));
        assert!(closed_by_server(&mut c));
        assert!(TcpStream::connect(s.local_addr()).is_err());
        assert_eq!(s.stats().snapshot().bytes_out, 5);
    }

    #[test]
    fn line_messages_pipelined_and_failures_close() {
        let s = server(message_mode(Framing::Line), Limits::default());
        let mut c = client(&s);
        c.write_all(b"ab\nquiet\ncd\n").unwrap();
        assert_eq!(read_n(&mut c, 6), b"AB\nCD\n");
        c.write_all(b"fail\n").unwrap();
        assert!(closed_by_server(&mut c));
        let mut c2 = client(&s);
        c2.write_all(b"ok\n").unwrap();
        assert_eq!(read_n(&mut c2, 3), b"OK\n");
        s.stop(Duration::from_secs(1));
        assert_eq!(s.stats().snapshot().handler_errors, 1);
    }

    #[test]
    fn length_frames_and_max_message() {
        let limits = Limits {
            max_message: 8,
            ..Limits::default()
        };
        let s = server(message_mode(Framing::Length), limits);
        let mut c = client(&s);
        c.write_all(&[0, 0, 0, 3, b'a', b'b', b'c']).unwrap();
        assert_eq!(read_n(&mut c, 7), [0, 0, 0, 3, b'A', b'B', b'C']);
        let mut big = client(&s);
        big.write_all(&[0, 0, 0, 9]).unwrap();
        assert!(closed_by_server(&mut big));
        c.write_all(&[0, 0, 0, 1, b'z']).unwrap();
        assert_eq!(read_n(&mut c, 5), [0, 0, 0, 1, b'Z']);
        s.stop(Duration::from_secs(1));
    }

    /// Blocks on "slow" until released; echoes everything else.
    struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);
    impl MessageHandler for Gate {
        fn handle(&self, _: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Outcome> {
            if msgs.iter().any(|m| m == b"slow") {
                let (open, cv) = &*self.0;
                let g = lock(open);
                let _g = cv.wait_while(g, |open| !*open).unwrap();
            }
            msgs.iter().map(|m| Outcome::Reply(m.clone())).collect()
        }
    }

    #[test]
    fn a_blocked_handler_leaves_the_other_connections_served() {
        for _ in 0..5 {
            let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
            let mode = Mode::Message {
                handler: Arc::new(Gate(gate.clone())),
                framing: Framing::Line,
            };
            let s = server(mode, Limits::default());
            let mut slow = client(&s);
            slow.write_all(b"slow\n").unwrap();
            let t0 = Instant::now();
            while s.stats().snapshot().bytes_in < 5 && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut fast: Vec<TcpStream> = (0..20).map(|_| client(&s)).collect();
            for (i, c) in fast.iter_mut().enumerate() {
                c.write_all(format!("{i}\n").as_bytes()).unwrap();
            }
            for (i, c) in fast.iter_mut().enumerate() {
                let want = format!("{i}\n");
                assert_eq!(read_n(c, want.len()), want.as_bytes());
            }
            *lock(&gate.0) = true;
            gate.1.notify_all();
            assert_eq!(read_n(&mut slow, 5), b"slow\n");
            s.stop(Duration::from_secs(1));
        }
    }

    #[test]
    fn max_connections_rejects_and_idle_closes() {
        let limits = Limits {
            max_connections: 2,
            idle_timeout: Some(Duration::from_millis(200)),
            ..Limits::default()
        };
        let s = server(Mode::Echo, limits);
        let mut a = client(&s);
        let mut b = client(&s);
        a.write_all(b"x").unwrap();
        b.write_all(b"y").unwrap();
        assert_eq!(read_n(&mut a, 1), b"x");
        assert_eq!(read_n(&mut b, 1), b"y");
        let mut third = client(&s);
        assert!(closed_by_server(&mut third));
        let start = Instant::now();
        assert!(closed_by_server(&mut a));
        assert!(start.elapsed() < Duration::from_secs(3));
        s.stop(Duration::from_secs(1));
        assert_eq!(s.stats().snapshot().rejected, 1);
    }

    struct EchoLines;
    impl ConnHandler for EchoLines {
        fn handle(&self, conn: TcpConnection, _: SocketAddr, _: &StopSignal) -> ConnOutcome {
            loop {
                match conn.recv_line(1024, &NoInterrupt) {
                    Ok(l) if l.is_empty() => return ConnOutcome::Done,
                    Ok(l) if l == b"boom\n" => return ConnOutcome::Failed,
                    Ok(l) => {
                        if conn.send_all(&l, &NoInterrupt).is_err() {
                            return ConnOutcome::Done;
                        }
                    }
                    Err(_) => return ConnOutcome::Done,
                }
            }
        }
    }

    #[test]
    fn handler_mode_serves_counts_and_stop_closes_blocked_handlers() {
        let s = server(Mode::Handler(Arc::new(EchoLines)), Limits::default());
        let mut c = client(&s);
        c.write_all(b"hi\n").unwrap();
        assert_eq!(read_n(&mut c, 3), b"hi\n");
        let mut bad = client(&s);
        bad.write_all(b"boom\n").unwrap();
        assert!(closed_by_server(&mut bad));
        // `c`'s handler is blocked in recv: stop must close it and join.
        s.stop(Duration::from_millis(100));
        assert!(closed_by_server(&mut c));
        let st = s.stats().snapshot();
        assert_eq!((st.accepted, st.active, st.handler_errors), (2, 0, 1));
        assert!(st.bytes_in >= 8 && st.bytes_out >= 3, "{st:?}");
    }

    #[test]
    fn accept_mode_and_stop_wakes_accept() {
        let s = Arc::new(server(Mode::Accept, Limits::default()));
        let _c = client(&s);
        let (conn, peer) = s.accept(None, &NoInterrupt).unwrap();
        assert_eq!(conn.peer_addr(), peer);
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.accept(None, &NoInterrupt).map(|_| ()));
        std::thread::sleep(Duration::from_millis(20));
        s.stop(Duration::from_secs(1));
        assert!(matches!(t.join().unwrap(), Err(Error::Stopped)));
        assert!(s.start().is_err());
        s.wait_stopped(&NoInterrupt).unwrap();
    }
}
