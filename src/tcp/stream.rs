//! A connected TCP socket: the read buffer behind every recv method, a write
//! lock so reads and writes run from two threads at once, and the calls that
//! wait with a deadline and an interrupt check. Every byte goes through the
//! transport (`transport.rs`): the socket itself, or a TLS session over it
//! once `start_tls_*` ran, so each recv/send method works the same under TLS.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::error::{Error, Phase, Result};
use crate::framing::{resume_from, ReadBuffer};
use crate::options::{read_back, OptValue, Proto};
use crate::sock::{SockHandle, Timeout};
use crate::tls::TlsSession;
use crate::wait::{wait_fd, Deadline, Interrupt};

pub use super::info::socket_tcp_info;
use super::info::TcpInfo;

#[derive(Debug)]
pub struct TcpConnection {
    pub(super) sock: SockHandle,
    /// Plaintext received and not yet returned (decrypted bytes under TLS).
    pub(super) rbuf: Mutex<ReadBuffer>,
    pub(super) wlock: Mutex<()>,
    pub(super) timeout: Timeout,
    local: OnceLock<SocketAddr>,
    pub(super) peer: SocketAddr,
    /// Set once by `start_tls_*`; from then on every byte goes through it.
    pub(super) tls: OnceLock<Arc<TlsSession>>,
}

/// How a blocking recv begins: with a read, or, right after a nonblocking
/// attempt found the socket empty (`inline.rs`), with the wait, so an idle
/// socket costs one failed read per call rather than two.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Start {
    Read,
    Wait,
}

/// What a recv-until search does when the peer closes first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AtEof {
    /// `recv_until`: raise ConnectionClosedError with what arrived.
    Raise,
    /// `recv_line`: return what arrived, like `file.readline()`.
    ReturnRest,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TcpConnection {
    /// Wrap a connected socket; makes it nonblocking (every wait is ours).
    pub fn new(sock: Socket, timeout: Option<Duration>) -> Result<Self> {
        if sock
            .r#type()
            .map_err(|e| Error::io(Phase::Connect, None, e))?
            != Type::STREAM
        {
            return Err(Error::invalid("sock", "not a SOCK_STREAM socket"));
        }
        let peer = sock
            .peer_addr()
            .map_err(|e| Error::io(Phase::Connect, None, e))?
            .as_socket()
            .ok_or_else(|| Error::invalid("sock", "not an IPv4 or IPv6 socket"))?;
        let local = sock
            .local_addr()
            .map_err(|e| Error::io(Phase::Connect, None, e))?
            .as_socket()
            .ok_or_else(|| Error::invalid("sock", "not an IPv4 or IPv6 socket"))?;
        sock.set_nonblocking(true)
            .map_err(|e| Error::io(Phase::Connect, Some(&peer), e))?;
        let conn = Self::connected(sock, peer, timeout);
        let _ = conn.local.set(local);
        Ok(conn)
    }

    /// Wrap a socket this crate connected itself (nonblocking, TCP, `peer`
    /// known): no system calls, which is most of a loopback connect's cost.
    pub fn connected(sock: Socket, peer: SocketAddr, timeout: Option<Duration>) -> Self {
        TcpConnection {
            sock: SockHandle::new(Some(sock)),
            rbuf: Mutex::new(ReadBuffer::new()),
            wlock: Mutex::new(()),
            timeout: Timeout::new(timeout),
            local: OnceLock::new(),
            peer,
            tls: OnceLock::new(),
        }
    }

    /// A connection over a socket lent by an async client (`aio`) for a
    /// blocking exchange on a helper thread (a STARTTLS preset, a
    /// dialogue): the bytes it had buffered and its TLS session carry over;
    /// [`Self::give_back`] returns what is left of them.
    pub fn lent(
        sock: Socket,
        peer: SocketAddr,
        timeout: Option<Duration>,
        buffered: &[u8],
        tls: Option<Arc<TlsSession>>,
    ) -> Result<Self> {
        let conn = Self::connected(sock, peer, timeout);
        lock(&conn.rbuf).extend_from_slice(buffered)?;
        if let Some(t) = tls {
            let _ = conn.tls.set(t);
        }
        Ok(conn)
    }

    /// Put `bytes` back in front of what the next recv returns.
    pub fn unread(&self, bytes: &[u8]) -> Result<()> {
        lock(&self.rbuf).unread(bytes)
    }

    /// A lent connection's unread bytes and TLS session (see [`Self::lent`]).
    pub fn give_back(self) -> (Vec<u8>, Option<Arc<TlsSession>>) {
        let rest = lock(&self.rbuf).take_all();
        (rest, self.tls.get().cloned())
    }

    /// This end's address, asked of the kernel on first use (and at the
    /// latest by `close`/`detach`, so a closed connection still reports
    /// the address it had, as its peer address stays readable too).
    pub fn local_addr(&self) -> SocketAddr {
        *self.local.get_or_init(|| {
            self.sock
                .get()
                .ok()
                .and_then(|s| s.local_addr().ok())
                .and_then(|a| a.as_socket())
                .unwrap_or_else(|| SocketAddr::new(self.peer.ip(), 0))
        })
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout.get()
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        self.timeout.set(t)
    }

    pub fn is_open(&self) -> bool {
        self.sock.is_open()
    }

    pub fn fileno(&self) -> RawFd {
        self.sock.fileno()
    }

    /// Bytes read from the kernel that no recv call has returned yet.
    pub fn buffered(&self) -> usize {
        lock(&self.rbuf).len()
    }

    /// Close (idempotent). Bytes received and not read are dropped: no
    /// call can return them once the socket is closed, and a closed
    /// client should not hold them (issue 15 item 11).
    pub fn close(&self) -> bool {
        // A closed client reported port 0 when its address was never asked.
        let _ = self.local_addr();
        let closed = self.sock.close();
        // Not `lock`: a reader blocked in another thread holds the buffer
        // until the close wakes it. Then its bytes stay until the object
        // goes, unreadable (every recv asks for the open socket first).
        // Replaced, not drained: draining copies the bytes out, and a close
        // right after MemoryError must not allocate what was just refused.
        if let Ok(mut rb) = self.rbuf.try_lock() {
            *rb = ReadBuffer::new();
        }
        closed
    }

    /// Hand the socket back (blocking again if there is no timeout); refused
    /// while unread bytes sit in the read buffer, since they would be lost.
    /// A closed connection raises the closed-socket error of every other
    /// call (there is no descriptor to hand back), not a complaint about
    /// bytes it dropped when it closed.
    pub fn detach(&self) -> Result<Socket> {
        if !self.is_open() {
            return Err(Error::ClosedSocket);
        }
        if self.is_tls() {
            // The fd alone cannot carry the TLS session's keys and state:
            // a stdlib socket would see ciphertext.
            return Err(Error::invalid(
                "detach",
                "refused on a TLS connection: the TLS session cannot be handed over with the socket",
            ));
        }
        let pending = self.buffered();
        if pending > 0 {
            return Err(Error::invalid(
                "detach",
                format!("{pending} bytes already received are still buffered; read them first"),
            ));
        }
        let _ = self.local_addr();
        let s = self.sock.take()?;
        if self.timeout().is_none() {
            s.set_nonblocking(false)
                .map_err(|e| Error::io(Phase::Recv, Some(&self.peer), e))?;
        }
        Ok(s)
    }

    pub(super) fn peer(&self) -> Option<&SocketAddr> {
        Some(&self.peer)
    }

    /// One send; returns how many bytes the kernel (or, under TLS, the
    /// session) took.
    pub fn send(&self, data: &[u8], intr: &dyn Interrupt) -> Result<usize> {
        let s = self.sock.get()?;
        let _w = lock(&self.wlock);
        if data.is_empty() {
            return Ok(0);
        }
        self.write_some(&s, data, self.timeout.deadline(), intr)
    }

    /// Send all of `data` within one timeout.
    pub fn send_all(&self, data: &[u8], intr: &dyn Interrupt) -> Result<()> {
        let s = self.sock.get()?;
        let _w = lock(&self.wlock);
        self.write_all(&s, data, self.timeout.deadline(), intr)
    }

    /// Up to `n` bytes: what is buffered, else one read. Empty at EOF.
    pub fn recv(&self, n: usize, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        self.recv_from(n, Start::Read, intr)
    }

    pub fn recv_from(&self, n: usize, start: Start, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        if n == 0 {
            return Ok(Vec::new());
        }
        if rb.is_empty() {
            let spare = rb.spare(n)?;
            let k = n.min(spare.len());
            let got = self.read_from(&s, &mut spare[..k], start, self.timeout.deadline(), intr)?;
            rb.commit(got);
        }
        Ok(rb.take(n))
    }

    /// Fill `dst` with what is buffered, else with one read straight from
    /// the kernel (no intermediate copy). 0 at EOF.
    pub fn recv_into(&self, dst: &mut [u8], intr: &dyn Interrupt) -> Result<usize> {
        self.recv_into_from(dst, Start::Read, intr)
    }

    pub fn recv_into_from(
        &self,
        dst: &mut [u8],
        start: Start,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        if dst.is_empty() {
            return Ok(0);
        }
        if !rb.is_empty() {
            return Ok(rb.take_into(dst));
        }
        self.read_from(&s, dst, start, self.timeout.deadline(), intr)
    }

    /// One read, after waiting for the socket first when `start` says so.
    /// Under TLS the session may hold decrypted bytes the socket does not
    /// show, so it always reads first.
    fn read_from(
        &self,
        s: &Socket,
        buf: &mut [u8],
        start: Start,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        if start == Start::Wait
            && !self.is_tls()
            && !wait_fd(s.as_raw_fd(), libc::POLLIN, deadline, intr)?
        {
            return Err(Error::timeout(Phase::Recv, Some(self.peer.to_string())));
        }
        self.read(s, buf, deadline, intr)
    }

    /// Read more into the buffer; returns 0 at EOF. Only the first read of
    /// a call may start with the wait: `start` becomes `Read` after it.
    fn fill(
        &self,
        s: &Socket,
        rb: &mut ReadBuffer,
        want: usize,
        start: &mut Start,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        let n = self.read_from(s, rb.spare(want)?, *start, deadline, intr)?;
        *start = Start::Read;
        rb.commit(n);
        Ok(n)
    }

    /// Exactly `n` bytes, or ConnectionClosedError carrying what arrived.
    pub fn recv_exact(&self, n: usize, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        self.recv_exact_from(n, Start::Read, intr)
    }

    pub fn recv_exact_from(
        &self,
        n: usize,
        mut start: Start,
        intr: &dyn Interrupt,
    ) -> Result<Vec<u8>> {
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        let deadline = self.timeout.deadline();
        while rb.len() < n {
            let want = n - rb.len();
            if self.fill(&s, &mut rb, want, &mut start, deadline, intr)? == 0 {
                return Err(Error::Closed {
                    partial: rb.take_all(),
                    expected: format!("{n}"),
                });
            }
        }
        Ok(rb.take(n))
    }

    /// Bytes up to and including `delim`, at most `max_size` of them.
    pub fn recv_until(
        &self,
        delim: &[u8],
        max_size: usize,
        intr: &dyn Interrupt,
    ) -> Result<Vec<u8>> {
        self.read_delimited(delim, max_size, AtEof::Raise, Start::Read, intr)
    }

    /// One line including its `\n`; at EOF the unterminated rest, then b"".
    pub fn recv_line(&self, max_size: usize, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        self.read_delimited(b"\n", max_size, AtEof::ReturnRest, Start::Read, intr)
    }

    pub(super) fn read_delimited(
        &self,
        delim: &[u8],
        max_size: usize,
        at_eof: AtEof,
        mut start: Start,
        intr: &dyn Interrupt,
    ) -> Result<Vec<u8>> {
        if delim.is_empty() {
            return Err(Error::invalid("delimiter", "must not be empty"));
        }
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        let deadline = self.timeout.deadline();
        let mut from = 0;
        loop {
            if let Some(r) = take_delimited(&mut rb, delim, from, max_size) {
                return r;
            }
            from = resume_from(rb.len(), delim.len());
            if self.fill(&s, &mut rb, 0, &mut start, deadline, intr)? == 0 {
                return at_eof.finish(&mut rb, delim);
            }
        }
    }

    /// Send `data`, then read one reply: up to `until`, or `exact` bytes.
    pub fn request(&self, data: &[u8], reply: Reply<'_>, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        self.send_all(data, intr)?;
        match reply {
            Reply::Until(delim, max) => self.recv_until(delim, max, intr),
            Reply::Exact(n) => self.recv_exact(n, intr),
        }
    }

    pub fn options(&self) -> Result<Vec<(&'static str, OptValue)>> {
        let s = self.sock.get()?;
        read_back(&s, Proto::Tcp, Domain::for_address(self.peer))
    }

    pub fn tcp_info(&self) -> Result<TcpInfo> {
        let s = self.sock.get()?;
        socket_tcp_info(&s)
    }

    /// The shared socket, for callers (servers) that need the raw fd.
    pub fn socket(&self) -> Result<Arc<Socket>> {
        self.sock.get()
    }
}

impl AtEof {
    /// The result of a delimited read once the peer has closed.
    pub(super) fn finish(self, rb: &mut ReadBuffer, delim: &[u8]) -> Result<Vec<u8>> {
        match self {
            AtEof::ReturnRest => Ok(rb.take_all()),
            AtEof::Raise => Err(Error::Closed {
                partial: rb.take_all(),
                expected: format!("a delimiter {delim:?}"),
            }),
        }
    }
}

/// The buffered bytes up to and including `delim` (searching from `from`),
/// the limit error, or `None` while more must be read.
pub(super) fn take_delimited(
    rb: &mut ReadBuffer,
    delim: &[u8],
    from: usize,
    max_size: usize,
) -> Option<Result<Vec<u8>>> {
    let limit = Error::LimitExceeded {
        what: "message",
        limit: max_size,
    };
    match rb.find(delim, from) {
        Some(end) if end > max_size => Some(Err(limit)),
        Some(end) => Some(Ok(rb.take(end))),
        None if rb.len() >= max_size => Some(Err(limit)),
        None => None,
    }
}

/// How `request` reads its reply.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    Until(&'a [u8], usize),
    Exact(usize),
}

#[cfg(test)]
mod tests {
    use super::super::info::TCP_STATES;
    use super::*;
    use crate::wait::NoInterrupt;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpConnection, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        (
            TcpConnection::new(Socket::from(c), Some(Duration::from_secs(5))).unwrap(),
            server,
        )
    }

    #[test]
    fn line_then_recv_loses_nothing() {
        let (c, mut peer) = pair();
        peer.write_all(b"one\ntwo\nrest").unwrap();
        drop(peer);
        assert_eq!(c.recv_line(100, &NoInterrupt).unwrap(), b"one\n");
        let mut got = c.recv(3, &NoInterrupt).unwrap();
        while got.len() < 8 {
            let more = c.recv(100, &NoInterrupt).unwrap();
            assert!(!more.is_empty());
            got.extend(more);
        }
        assert_eq!(got, b"two\nrest");
        assert_eq!(c.recv(10, &NoInterrupt).unwrap(), b"");
    }

    #[test]
    fn recv_exact_reports_partial() {
        let (c, mut peer) = pair();
        peer.write_all(b"abc").unwrap();
        drop(peer);
        match c.recv_exact(5, &NoInterrupt) {
            Err(Error::Closed { partial, .. }) => assert_eq!(partial, b"abc"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recv_until_limit() {
        let (c, mut peer) = pair();
        peer.write_all(&[b'x'; 100]).unwrap();
        assert!(matches!(
            c.recv_until(b"\r\n", 50, &NoInterrupt),
            Err(Error::LimitExceeded { limit: 50, .. })
        ));
    }

    #[test]
    fn recv_times_out() {
        let (c, _peer) = pair();
        c.set_timeout(Some(Duration::from_millis(50)));
        assert!(matches!(
            c.recv(1, &NoInterrupt),
            Err(Error::Timeout {
                phase: Phase::Recv,
                ..
            })
        ));
    }

    #[test]
    fn tcp_info_reads_rtt() {
        let (c, _peer) = pair();
        let info = c.tcp_info().unwrap();
        assert_eq!(TCP_STATES[info.state as usize], "ESTABLISHED");
        assert!(info.snd_cwnd > 0);
    }
}
