//! `accept()` on a TLS server: it returns a connection whose handshake is
//! done, yet a client that connects and never speaks TLS must not hold up
//! the next one. So each accepted connection's handshake runs in a thread
//! of its own (bounded by `Limits::handshake_timeout()`, at most
//! `max_connections` at once), and `accept()` returns the first one that
//! finishes, or raises the first one's failure (as Python's
//! `SSLSocket.accept()` raises the `SSLError` of its handshake).
//!
//! A client that connects and leaves without sending a byte (a port check)
//! is dropped quietly: neither returned, raised nor counted.
//!
//! Handshakes run only while somebody waits in `accept()` or one has
//! started: connections the owner does not ask for wait in the kernel's
//! backlog, as on a plain server. Finished ones not yet taken are held
//! here; `stop()` wakes the running handshakes, joins their threads and
//! closes everything held.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use socket2::Socket;

use crate::error::{Error, Phase, Result};
use crate::tcp::TcpConnection;
use crate::tls::ServerTls;
use crate::wait::{poll_millis, wait_fd, Deadline, Interrupt, NoInterrupt};

use super::listener::{is_transient, StopSignal};
use super::{Limits, Stats};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A pipe a finished handshake writes one byte to, so `accept()` waits
/// for the listener, the stop signal and the handshakes in one poll.
struct Bell {
    rd: OwnedFd,
    wr: OwnedFd,
}

impl Bell {
    fn new() -> Result<Bell> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if rc != 0 {
            return Err(Error::io(Phase::Bind, None, io::Error::last_os_error()));
        }
        // SAFETY: pipe2 just returned these two open fds, owned by nobody else.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Bell { rd, wr })
    }

    fn ring(&self) {
        // A full pipe already wakes the poll: the byte may be dropped.
        // SAFETY: one byte from a valid buffer to our own pipe.
        unsafe { libc::write(self.wr.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a valid buffer from our own nonblocking pipe.
        while unsafe { libc::read(self.rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

/// How a connection's TLS start ended, for the blocking modes.
pub(super) enum Started {
    Tls,
    /// The client closed (or reset) without sending a byte: a port check
    /// or a scan, not a TLS client; not counted as a failure.
    Left,
    Failed(Error),
}

/// Wait (within `handshake_timeout`) for the client's first byte, then run
/// the server handshake. Peeking first tells a client that connects and
/// leaves from one whose handshake fails.
pub(super) fn start_tls(
    conn: &TcpConnection,
    tls: &ServerTls,
    limits: &Limits,
    intr: &dyn Interrupt,
) -> Started {
    let deadline = Deadline::after(Some(limits.handshake_timeout()));
    let Ok(sock) = conn.socket() else {
        return Started::Left;
    };
    let peer = conn.peer_addr();
    match wait_fd(sock.as_raw_fd(), libc::POLLIN, deadline, intr) {
        Ok(true) => {}
        Ok(false) => return Started::Failed(Error::timeout(Phase::Tls, Some(peer.to_string()))),
        Err(e) => return Started::Failed(e),
    }
    let mut one = [std::mem::MaybeUninit::<u8>::uninit()];
    match sock.peek(&mut one) {
        Ok(0) => return Started::Left,
        Err(e)
            if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted =>
        {
            return Started::Left
        }
        _ => {}
    }
    match conn.start_tls_server(tls, deadline, intr) {
        Ok(()) => Started::Tls,
        Err(e) => Started::Failed(e),
    }
}

type Done = (Result<TcpConnection>, SocketAddr);

struct Shared {
    tls: Arc<ServerTls>,
    stats: Arc<Stats>,
    limits: Limits,
    bell: Bell,
    done: Mutex<VecDeque<Done>>,
    /// Sockets mid-handshake, so `close()` can wake them.
    pending: Mutex<HashMap<u64, Arc<Socket>>>,
    next_id: AtomicU64,
    /// Set by `close()`: what ends after it is neither counted nor kept.
    closed: AtomicBool,
}

/// The handshakes of a TLS server's `accept()`.
pub struct Handshakes {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Handshakes {
    pub fn new(tls: Arc<ServerTls>, stats: Arc<Stats>, limits: Limits) -> Result<Handshakes> {
        Ok(Handshakes {
            shared: Arc::new(Shared {
                tls,
                stats,
                limits,
                bell: Bell::new()?,
                done: Mutex::new(VecDeque::new()),
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// The next connection whose handshake finished (or its failure), `None`
    /// at `deadline`. `Error::Stopped` once `stop` is set.
    pub fn accept(
        &self,
        listener: &Socket,
        stop: &StopSignal,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<Option<Done>> {
        loop {
            if stop.is_set() {
                return Err(Error::Stopped);
            }
            if let Some(d) = lock(&self.shared.done).pop_front() {
                return Ok(Some(d));
            }
            let room = self.start_waiting(listener)?;
            if deadline.expired() {
                return Ok(None);
            }
            let mut pfds = [
                stop.fd(),
                self.shared.bell.rd.as_raw_fd(),
                listener.as_raw_fd(),
            ]
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // At max_connections handshakes, new clients wait in the backlog.
            let n = if room { 3 } else { 2 };
            // SAFETY: `n` valid pollfds.
            unsafe { libc::poll(pfds.as_mut_ptr(), n, poll_millis(deadline.slice())) };
            self.shared.bell.drain();
            intr.check()?;
        }
    }

    /// Take every connection waiting in the backlog and start its
    /// handshake; false when `max_connections` handshakes are running.
    fn start_waiting(&self, listener: &Socket) -> Result<bool> {
        loop {
            if lock(&self.shared.pending).len() >= self.shared.limits.max_connections {
                return Ok(false);
            }
            match listener.accept() {
                Ok((s, peer)) => {
                    let Some(peer) = peer.as_socket() else {
                        continue;
                    };
                    Stats::add(&self.shared.stats.accepted, 1);
                    self.start(s, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(Error::io(Phase::Accept, None, e)),
            }
        }
    }

    fn start(&self, s: Socket, peer: SocketAddr) {
        let sh = self.shared.clone();
        let conn = match TcpConnection::new(s, sh.limits.idle_timeout) {
            Ok(c) => c,
            Err(e) => {
                lock(&sh.done).push_back((Err(e), peer));
                return;
            }
        };
        let Ok(sock) = conn.socket() else { return };
        let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&sh.pending).insert(id, sock);
        // A close() that already ran would not wake this one.
        if sh.closed.load(Ordering::SeqCst) {
            lock(&sh.pending).remove(&id);
            return;
        }
        let body = move || {
            let r = start_tls(&conn, &sh.tls, &sh.limits, &NoInterrupt);
            lock(&sh.pending).remove(&id);
            if sh.closed.load(Ordering::SeqCst) {
                return;
            }
            let r = match r {
                Started::Tls => Ok(conn),
                Started::Left => return,
                Started::Failed(e) => {
                    Stats::add(&sh.stats.tls_failures, 1);
                    Err(e)
                }
            };
            lock(&sh.done).push_back((r, peer));
            sh.bell.ring();
        };
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        match std::thread::Builder::new()
            .name("socketkit-tls-accept".into())
            .spawn(body)
        {
            Ok(t) => threads.push(t),
            Err(e) => {
                lock(&self.shared.pending).remove(&id);
                let e = Error::io(Phase::Accept, Some(&peer), e);
                lock(&self.shared.done).push_back((Err(e), peer));
            }
        }
    }

    /// Wake every handshake (its socket is shut down), join the threads if
    /// `join`, close the finished connections nobody took.
    pub fn close(&self, join: bool) {
        self.shared.closed.store(true, Ordering::SeqCst);
        for s in lock(&self.shared.pending).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if join {
            for t in std::mem::take(&mut *lock(&self.threads)) {
                let _ = t.join();
            }
        }
        lock(&self.shared.done).clear();
    }
}
