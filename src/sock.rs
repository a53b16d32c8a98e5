//! What TCP and UDP objects share: a socket that one thread may close while
//! another waits on it, a timeout readable without a lock, and the
//! nonblocking read/write loops that wait in interruptible slices.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socket2::Socket;

use crate::error::{Error, Phase, Result};
use crate::wait::{wait_fd, Deadline, Interrupt};

/// The socket of an object, shared with the calls running on it.
///
/// Calls clone the `Arc` for their duration, so `close()` from another
/// thread never frees an fd that a blocked call still polls (no fd reuse
/// race): it shuts the socket down to wake them, and the fd closes when the
/// last of them returns.
#[derive(Debug, Default)]
pub struct SockHandle {
    inner: Mutex<Option<Arc<Socket>>>,
    /// Set (under `inner`'s lock) by `close()`/`take()`, so a lazily made
    /// socket (UDP's first `sendto`) is not made again after a close.
    closed: AtomicBool,
}

impl SockHandle {
    pub fn new(sock: Option<Socket>) -> Self {
        SockHandle {
            inner: Mutex::new(sock.map(Arc::new)),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Socket>>> {
        // A panic while holding this lock cannot leave the Option torn.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The socket, or `Error::ClosedSocket`.
    pub fn get(&self) -> Result<Arc<Socket>> {
        self.lock().clone().ok_or(Error::ClosedSocket)
    }

    pub fn is_open(&self) -> bool {
        self.lock().is_some()
    }

    /// True once `close()` or `take()` ran (not merely "never made").
    pub fn was_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Install a socket if none is there yet (lazy UDP creation); returns the
    /// one that is installed.
    pub fn get_or_insert(&self, make: impl FnOnce() -> Result<Socket>) -> Result<Arc<Socket>> {
        let mut g = self.lock();
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::ClosedSocket);
        }
        let s = Arc::new(make()?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// Close. Returns false if it was already closed.
    pub fn close(&self) -> bool {
        let taken = {
            let mut g = self.lock();
            self.closed.store(true, Ordering::Relaxed);
            g.take()
        };
        match taken {
            None => false,
            Some(s) => {
                if Arc::strong_count(&s) > 1 {
                    // Wake the calls blocked on it; they hold the last refs.
                    let _ = s.shutdown(Shutdown::Both);
                }
                true
            }
        }
    }

    /// Take the socket out for `detach()`; refused while another call uses it.
    pub fn take(&self) -> Result<Socket> {
        let mut g = self.lock();
        let s = g.take().ok_or(Error::ClosedSocket)?;
        match Arc::try_unwrap(s) {
            Ok(sock) => {
                self.closed.store(true, Ordering::Relaxed);
                Ok(sock)
            }
            Err(s) => {
                *g = Some(s);
                Err(Error::invalid(
                    "detach",
                    "another thread is using the socket",
                ))
            }
        }
    }

    pub fn fileno(&self) -> i32 {
        self.lock().as_ref().map_or(-1, |s| s.as_raw_fd())
    }
}

/// A per-operation timeout (`None` blocks forever), as `settimeout` sets it.
#[derive(Debug)]
pub struct Timeout(AtomicU64);

const NO_TIMEOUT: u64 = u64::MAX;

impl Timeout {
    pub fn new(t: Option<Duration>) -> Self {
        let timeout = Timeout(AtomicU64::new(NO_TIMEOUT));
        timeout.set(t);
        timeout
    }

    pub fn set(&self, t: Option<Duration>) {
        let v = t.map_or(NO_TIMEOUT, |d| {
            d.as_nanos().min((NO_TIMEOUT - 1) as u128) as u64
        });
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// The deadline of an operation starting now.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.get())
    }
}

/// One read of at most `buf.len()` bytes; 0 means EOF.
pub fn read_some(
    sock: &Socket,
    buf: &mut [u8],
    deadline: Deadline,
    intr: &dyn Interrupt,
    peer: Option<&SocketAddr>,
) -> Result<usize> {
    loop {
        match (&*sock).read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_fd(sock.as_raw_fd(), libc::POLLIN, deadline, intr)? {
                    return Err(Error::timeout(Phase::Recv, peer.map(|p| p.to_string())));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
            Err(e) => return Err(Error::io(Phase::Recv, peer, e)),
        }
    }
}

/// One send of as much of `buf` as the kernel takes (MSG_NOSIGNAL: a closed
/// peer is an error, not a SIGPIPE).
pub fn write_some(
    sock: &Socket,
    buf: &[u8],
    deadline: Deadline,
    intr: &dyn Interrupt,
    peer: Option<&SocketAddr>,
) -> Result<usize> {
    loop {
        match sock.send(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_fd(sock.as_raw_fd(), libc::POLLOUT, deadline, intr)? {
                    return Err(Error::timeout(Phase::Send, peer.map(|p| p.to_string())));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => intr.check()?,
            Err(e) => return Err(Error::io(Phase::Send, peer, e)),
        }
    }
}

/// Write all of `buf`; on failure the error says how many bytes went out.
pub fn write_all(
    sock: &Socket,
    buf: &[u8],
    deadline: Deadline,
    intr: &dyn Interrupt,
    peer: Option<&SocketAddr>,
) -> Result<()> {
    let mut sent = 0;
    while sent < buf.len() {
        match write_some(sock, &buf[sent..], deadline, intr, peer) {
            Ok(n) => sent += n,
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) => {
                return Err(Error::SendAll {
                    bytes_sent: sent,
                    source: Box::new(e),
                })
            }
        }
    }
    Ok(())
}

/// `how` as the user writes it: "read", "write", "both".
pub fn parse_shutdown(how: &str) -> Result<Shutdown> {
    match how {
        "read" => Ok(Shutdown::Read),
        "write" => Ok(Shutdown::Write),
        "both" => Ok(Shutdown::Both),
        other => Err(Error::invalid(
            "how",
            format!("must be 'read', 'write' or 'both', got {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_round_trips() {
        let t = Timeout::new(None);
        assert_eq!(t.get(), None);
        t.set(Some(Duration::from_millis(250)));
        assert_eq!(t.get(), Some(Duration::from_millis(250)));
        t.set(Some(Duration::ZERO));
        assert_eq!(t.get(), Some(Duration::ZERO));
    }

    #[test]
    fn closed_handle_reports_closed() {
        let h = SockHandle::new(None);
        assert!(matches!(h.get(), Err(Error::ClosedSocket)));
        assert_eq!(h.fileno(), -1);
        assert!(!h.close());
    }

    #[test]
    fn closed_handle_is_not_made_again() {
        let h = SockHandle::new(None);
        let make = || {
            Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .map_err(|e| Error::io(Phase::Bind, None, e))
        };
        assert!(h.get_or_insert(make).is_ok());
        assert!(h.close());
        assert!(matches!(h.get_or_insert(make), Err(Error::ClosedSocket)));
        // Never made, then closed: stays closed too.
        let h = SockHandle::new(None);
        assert!(!h.close());
        assert!(matches!(h.get_or_insert(make), Err(Error::ClosedSocket)));
    }

    #[test]
    fn shutdown_names() {
        assert_eq!(parse_shutdown("write").unwrap(), Shutdown::Write);
        assert!(parse_shutdown("x")
            .unwrap_err()
            .to_string()
            .starts_with("how: "));
    }
}
