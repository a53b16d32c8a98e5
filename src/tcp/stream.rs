//! A connected TCP socket: the read buffer behind every recv method, a write
//! lock so reads and writes run from two threads at once, and the calls that
//! wait with a deadline and an interrupt check.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::error::{Error, Phase, Result};
use crate::framing::{resume_from, ReadBuffer};
use crate::options::{read_back, OptValue, Proto};
use crate::sock::{read_some, write_all, write_some, SockHandle, Timeout};
use crate::wait::{wait_fd, Deadline, Interrupt};

#[derive(Debug)]
pub struct TcpConnection {
    sock: SockHandle,
    rbuf: Mutex<ReadBuffer>,
    wlock: Mutex<()>,
    timeout: Timeout,
    local: OnceLock<SocketAddr>,
    peer: SocketAddr,
}

/// What a recv-until search does when the peer closes first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AtEof {
    /// `recv_until`: raise ConnectionClosedError with what arrived.
    Raise,
    /// `recv_line`: return what arrived, like `file.readline()`.
    ReturnRest,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
        }
    }

    /// This end's address, asked of the kernel on first use.
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

    pub fn close(&self) -> bool {
        self.sock.close()
    }

    /// Hand the socket back (blocking again if there is no timeout); refused
    /// while unread bytes sit in the read buffer, since they would be lost.
    pub fn detach(&self) -> Result<Socket> {
        let pending = self.buffered();
        if pending > 0 {
            return Err(Error::invalid(
                "detach",
                format!("{pending} bytes already received are still buffered; read them first"),
            ));
        }
        let s = self.sock.take()?;
        if self.timeout().is_none() {
            s.set_nonblocking(false)
                .map_err(|e| Error::io(Phase::Recv, Some(&self.peer), e))?;
        }
        Ok(s)
    }

    fn peer(&self) -> Option<&SocketAddr> {
        Some(&self.peer)
    }

    /// One send; returns how many bytes the kernel took.
    pub fn send(&self, data: &[u8], intr: &dyn Interrupt) -> Result<usize> {
        let s = self.sock.get()?;
        let _w = lock(&self.wlock);
        if data.is_empty() {
            return Ok(0);
        }
        write_some(&s, data, self.timeout.deadline(), intr, self.peer())
    }

    /// Send all of `data` within one timeout.
    pub fn send_all(&self, data: &[u8], intr: &dyn Interrupt) -> Result<()> {
        let s = self.sock.get()?;
        let _w = lock(&self.wlock);
        write_all(&s, data, self.timeout.deadline(), intr, self.peer())
    }

    /// Up to `n` bytes: what is buffered, else one read. Empty at EOF.
    pub fn recv(&self, n: usize, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        if n == 0 {
            return Ok(Vec::new());
        }
        if rb.is_empty() {
            let spare = rb.spare(n)?;
            let k = n.min(spare.len());
            let got = self.read(&s, &mut spare[..k], self.timeout.deadline(), intr)?;
            rb.commit(got);
        }
        Ok(rb.take(n))
    }

    /// Fill `dst` with what is buffered, else with one read straight from
    /// the kernel (no intermediate copy). 0 at EOF.
    pub fn recv_into(&self, dst: &mut [u8], intr: &dyn Interrupt) -> Result<usize> {
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        if dst.is_empty() {
            return Ok(0);
        }
        if !rb.is_empty() {
            return Ok(rb.take_into(dst));
        }
        self.read(&s, dst, self.timeout.deadline(), intr)
    }

    /// One read; 0 at EOF. When `close()` ran in another thread while this
    /// call waited, its shutdown looks like EOF: report the closed socket
    /// instead, so the woken call fails rather than returning b"".
    fn read(
        &self,
        s: &Socket,
        buf: &mut [u8],
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        let n = read_some(s, buf, deadline, intr, self.peer())?;
        if n == 0 && !buf.is_empty() && !self.sock.is_open() {
            return Err(Error::ClosedSocket);
        }
        Ok(n)
    }

    /// Read more into the buffer; returns 0 at EOF.
    fn fill(
        &self,
        s: &Socket,
        rb: &mut ReadBuffer,
        want: usize,
        deadline: Deadline,
        intr: &dyn Interrupt,
    ) -> Result<usize> {
        let n = self.read(s, rb.spare(want)?, deadline, intr)?;
        rb.commit(n);
        Ok(n)
    }

    /// Exactly `n` bytes, or ConnectionClosedError carrying what arrived.
    pub fn recv_exact(&self, n: usize, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        let s = self.sock.get()?;
        let mut rb = lock(&self.rbuf);
        let deadline = self.timeout.deadline();
        while rb.len() < n {
            let want = n - rb.len();
            if self.fill(&s, &mut rb, want, deadline, intr)? == 0 {
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
        self.read_delimited(delim, max_size, AtEof::Raise, intr)
    }

    /// One line including its `\n`; at EOF the unterminated rest, then b"".
    pub fn recv_line(&self, max_size: usize, intr: &dyn Interrupt) -> Result<Vec<u8>> {
        self.read_delimited(b"\n", max_size, AtEof::ReturnRest, intr)
    }

    fn read_delimited(
        &self,
        delim: &[u8],
        max_size: usize,
        at_eof: AtEof,
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
            if let Some(end) = rb.find(delim, from) {
                if end > max_size {
                    return Err(Error::LimitExceeded {
                        what: "message",
                        limit: max_size,
                    });
                }
                return Ok(rb.take(end));
            }
            if rb.len() >= max_size {
                return Err(Error::LimitExceeded {
                    what: "message",
                    limit: max_size,
                });
            }
            from = resume_from(rb.len(), delim.len());
            if self.fill(&s, &mut rb, 0, deadline, intr)? == 0 {
                return match at_eof {
                    AtEof::ReturnRest => Ok(rb.take_all()),
                    AtEof::Raise => Err(Error::Closed {
                        partial: rb.take_all(),
                        expected: format!("a delimiter {delim:?}"),
                    }),
                };
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

    /// Zero-copy send of `count` bytes (all to EOF when `None`) of the file
    /// `in_fd` from `offset`, via sendfile(2). Returns the bytes sent.
    pub fn sendfile(
        &self,
        in_fd: RawFd,
        offset: u64,
        count: Option<u64>,
        intr: &dyn Interrupt,
    ) -> Result<u64> {
        let s = self.sock.get()?;
        let _w = lock(&self.wlock);
        let deadline = self.timeout.deadline();
        let mut off = offset as libc::off_t;
        let mut sent: u64 = 0;
        loop {
            let left = match count {
                Some(c) if sent >= c => break,
                Some(c) => (c - sent).min(1 << 30),
                None => 1 << 30,
            };
            // SAFETY: both fds are open for the duration; off is a valid out-pointer.
            let n = unsafe { libc::sendfile(s.as_raw_fd(), in_fd, &mut off, left as usize) };
            if n > 0 {
                sent += n as u64;
                continue;
            }
            if n == 0 {
                break; // end of file
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => {
                    if !wait_fd(s.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                        return Err(Error::SendAll {
                            bytes_sent: sent as usize,
                            source: Box::new(Error::timeout(
                                Phase::Send,
                                Some(self.peer.to_string()),
                            )),
                        });
                    }
                }
                io::ErrorKind::Interrupted => intr.check()?,
                _ => {
                    return Err(Error::SendAll {
                        bytes_sent: sent as usize,
                        source: Box::new(Error::io(Phase::Send, self.peer(), e)),
                    })
                }
            }
        }
        Ok(sent)
    }

    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        let s = self.sock.get()?;
        match s.shutdown(how) {
            Ok(()) => Ok(()),
            // Already shut down by the peer: nothing left to do.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            Err(e) => Err(Error::io(Phase::Send, self.peer(), e)),
        }
    }

    pub fn options(&self) -> Result<Vec<(&'static str, OptValue)>> {
        let s = self.sock.get()?;
        read_back(&s, Proto::Tcp, Domain::for_address(self.peer))
    }

    pub fn tcp_info(&self) -> Result<TcpInfo> {
        let s = self.sock.get()?;
        tcp_info(&s)
    }

    /// The shared socket, for callers (servers) that need the raw fd.
    pub fn socket(&self) -> Result<Arc<Socket>> {
        self.sock.get()
    }
}

/// How `request` reads its reply.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    Until(&'a [u8], usize),
    Exact(usize),
}

/// The kernel's view of a connection (Linux TCP_INFO), times in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: u8,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub min_rtt_us: u32,
    pub rto_us: u32,
    pub retransmits: u8,
    pub total_retrans: u32,
    pub lost: u32,
    pub unacked: u32,
    pub snd_cwnd: u32,
    pub snd_ssthresh: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub pmtu: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
}

/// TCP state names, indexed by `tcpi_state` (include/net/tcp_states.h).
pub const TCP_STATES: [&str; 13] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

/// TCP_INFO of any connected socket (servers read it for their byte counts).
pub fn socket_tcp_info(s: &Socket) -> Result<TcpInfo> {
    tcp_info(s)
}

#[cfg(target_os = "linux")]
fn tcp_info(s: &Socket) -> Result<TcpInfo> {
    // SAFETY: tcp_info is plain data; zeroed is valid.
    let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: ti/len describe a writable buffer of the right size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut ti as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::io(Phase::Option, None, io::Error::last_os_error()));
    }
    Ok(TcpInfo {
        state: ti.tcpi_state,
        rtt_us: ti.tcpi_rtt,
        rttvar_us: ti.tcpi_rttvar,
        min_rtt_us: ti.tcpi_min_rtt,
        rto_us: ti.tcpi_rto,
        retransmits: ti.tcpi_retransmits,
        total_retrans: ti.tcpi_total_retrans,
        lost: ti.tcpi_lost,
        unacked: ti.tcpi_unacked,
        snd_cwnd: ti.tcpi_snd_cwnd,
        snd_ssthresh: ti.tcpi_snd_ssthresh,
        snd_mss: ti.tcpi_snd_mss,
        rcv_mss: ti.tcpi_rcv_mss,
        pmtu: ti.tcpi_pmtu,
        bytes_acked: ti.tcpi_bytes_acked,
        bytes_received: ti.tcpi_bytes_received,
        segs_out: ti.tcpi_segs_out,
        segs_in: ti.tcpi_segs_in,
        notsent_bytes: ti.tcpi_notsent_bytes,
    })
}

#[cfg(not(target_os = "linux"))]
fn tcp_info(_s: &Socket) -> Result<TcpInfo> {
    Err(Error::Unsupported {
        option: "tcp_info",
        reason: "TCP_INFO is read on Linux only".into(),
    })
}

#[cfg(test)]
mod tests {
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
