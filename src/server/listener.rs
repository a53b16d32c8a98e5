//! Listening sockets, and the stop signal that wakes every wait on them at
//! once (socketserver's `shutdown()` waits up to a poll interval; this does
//! not: the signal is a pipe polled next to the socket).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::{Error, Phase, Result};
use crate::options::SocketOptions;
use crate::wait::{poll_millis, Deadline, Interrupt};

/// Set once; wakes every poll that includes `fd()`.
#[derive(Debug)]
pub struct StopSignal {
    flag: AtomicBool,
    /// (read end, write end) until [`StopSignal::close`]. Behind a lock so
    /// the wake-up byte never goes to a closed fd whose number was reused.
    pipe: Mutex<Option<(OwnedFd, OwnedFd)>>,
    /// The read end's number for pollers, -1 once closed (poll skips a
    /// negative fd; every wait checks `is_set()` before it polls).
    rd: AtomicI32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StopSignal {
    pub fn new() -> Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if rc != 0 {
            return Err(Error::io(Phase::Bind, None, io::Error::last_os_error()));
        }
        // SAFETY: pipe2 just returned these two open fds, owned by nobody else.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(StopSignal {
            flag: AtomicBool::new(false),
            rd: AtomicI32::new(rd.as_raw_fd()),
            pipe: Mutex::new(Some((rd, wr))),
        })
    }

    /// Set the signal; true the first time.
    pub fn trigger(&self) -> bool {
        if self.flag.swap(true, Ordering::SeqCst) {
            return false;
        }
        // The byte stays unread: the pipe remains readable for every poller.
        if let Some((_, wr)) = lock(&self.pipe).as_ref() {
            // SAFETY: writing one byte from a valid buffer to our own pipe.
            unsafe { libc::write(wr.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        }
        true
    }

    /// Set the signal and close the pipe, so a stopped server holds no fd
    /// until it is garbage-collected. A poller that read the old number
    /// wakes at once (POLLNVAL, or the byte written before the close) or
    /// within its slice, then sees `is_set()`.
    pub fn close(&self) {
        self.trigger();
        let pipe = lock(&self.pipe).take();
        self.rd.store(-1, Ordering::SeqCst);
        drop(pipe);
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Readable once the signal is set.
    pub fn fd(&self) -> RawFd {
        self.rd.load(Ordering::SeqCst)
    }

    /// Wait up to `timeout` for `fd` to be readable or the signal to be
    /// set; false if the wait ended without either (timeout, EINTR).
    pub fn wait_readable(&self, fd: RawFd, timeout: Duration) -> bool {
        let mut pfds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, poll_millis(timeout)) > 0 }
    }

    /// Wait until the signal is set (true) or `deadline` passes (false).
    pub fn wait(&self, deadline: Deadline, intr: &dyn Interrupt) -> Result<bool> {
        loop {
            if self.is_set() {
                return Ok(true);
            }
            if deadline.expired() {
                return Ok(false);
            }
            let mut pfd = libc::pollfd {
                fd: self.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, poll_millis(deadline.slice())) };
            intr.check()?;
        }
    }
}

/// A nonblocking TCP socket bound to `addr` and listening.
pub fn bind_tcp(addr: SocketAddr, opts: &SocketOptions, backlog: i32) -> Result<Socket> {
    let s = new_bound(addr, Type::STREAM, opts)?;
    s.listen(backlog)
        .map_err(|e| Error::io(Phase::Bind, Some(&addr), e))?;
    Ok(s)
}

/// A nonblocking UDP socket bound to `addr`.
pub fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> Result<Socket> {
    new_bound(addr, Type::DGRAM, opts)
}

fn new_bound(addr: SocketAddr, ty: Type, opts: &SocketOptions) -> Result<Socket> {
    let domain = Domain::for_address(addr);
    let s = Socket::new(domain, ty.cloexec(), None)
        .map_err(|e| Error::io(Phase::Bind, Some(&addr), e))?;
    s.set_nonblocking(true)
        .map_err(|e| Error::io(Phase::Bind, Some(&addr), e))?;
    opts.apply(&s, domain)?;
    s.bind(&SockAddr::from(addr))
        .map_err(|e| Error::io(Phase::Bind, Some(&addr), e))?;
    Ok(s)
}

/// The address a socket is bound to.
pub fn local_addr(s: &Socket) -> Result<SocketAddr> {
    s.local_addr()
        .map_err(|e| Error::io(Phase::Bind, None, e))?
        .as_socket()
        .ok_or_else(|| Error::invalid("address", "not an IP socket"))
}

/// What one wait for a connection gave.
#[derive(Debug)]
pub enum Accepted {
    Conn(Socket, SocketAddr),
    Stopped,
    TimedOut,
}

/// Whether an accept error concerns only the connection being accepted
/// (accept(2): "Linux passes already-pending network errors on the new
/// socket as an error code"); such errors are skipped.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EINTR
        )
    ) || e.kind() == io::ErrorKind::WouldBlock
}

/// Wait for one connection, the stop signal or the deadline, in slices.
/// The accepted socket is nonblocking.
pub fn accept(
    listener: &Socket,
    stop: &StopSignal,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Accepted> {
    loop {
        if stop.is_set() {
            return Ok(Accepted::Stopped);
        }
        match listener.accept() {
            Ok((s, peer)) => {
                let peer = peer
                    .as_socket()
                    .ok_or_else(|| Error::invalid("peer", "not an IP peer"))?;
                s.set_nonblocking(true)
                    .map_err(|e| Error::io(Phase::Accept, Some(&peer), e))?;
                return Ok(Accepted::Conn(s, peer));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(Error::io(Phase::Accept, None, e)),
        }
        if deadline.expired() {
            return Ok(Accepted::TimedOut);
        }
        if !stop.wait_readable(listener.as_raw_fd(), deadline.slice()) {
            intr.check()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn stop_wakes_accept_at_once() {
        let l = bind_tcp(
            "127.0.0.1:0".parse().unwrap(),
            &SocketOptions::default(),
            16,
        )
        .unwrap();
        let stop = Arc::new(StopSignal::new().unwrap());
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            s2.trigger();
        });
        let start = Instant::now();
        let r = accept(&l, &stop, Deadline::NEVER, &NoInterrupt).unwrap();
        assert!(matches!(r, Accepted::Stopped));
        // Well under the 100 ms slice: the pipe woke the poll.
        assert!(
            start.elapsed() < Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
        t.join().unwrap();
        assert!(!stop.trigger());
        assert!(stop.wait(Deadline::NEVER, &NoInterrupt).unwrap());
    }

    #[test]
    fn close_releases_the_pipe_and_stays_set() {
        let stop = StopSignal::new().unwrap();
        stop.close();
        assert!(lock(&stop.pipe).is_none());
        assert_eq!(stop.fd(), -1);
        assert!(stop.is_set() && !stop.trigger());
        assert!(stop.wait(Deadline::NEVER, &NoInterrupt).unwrap());
        stop.close();
    }

    #[test]
    fn accept_returns_a_connection_and_times_out() {
        let l = bind_tcp(
            "127.0.0.1:0".parse().unwrap(),
            &SocketOptions::default(),
            16,
        )
        .unwrap();
        let addr = local_addr(&l).unwrap();
        let stop = StopSignal::new().unwrap();
        let r = accept(
            &l,
            &stop,
            Deadline::after(Some(Duration::from_millis(20))),
            &NoInterrupt,
        )
        .unwrap();
        assert!(matches!(r, Accepted::TimedOut));
        let _c = std::net::TcpStream::connect(addr).unwrap();
        match accept(&l, &stop, Deadline::NEVER, &NoInterrupt).unwrap() {
            Accepted::Conn(_, peer) => assert!(peer.ip().is_loopback()),
            other => panic!("{other:?}"),
        }
    }
}
