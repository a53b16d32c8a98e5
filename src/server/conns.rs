//! The open connections of an on_message or echo server, so `stop()` can
//! shut down those still open at its deadline: a connection whose handler
//! is stuck in Python keeps its task, and its socket, past the runtime's
//! shutdown, and would get its late reply written after `stop()` returned
//! (handler mode keeps its connections for the same reason).

use std::collections::HashMap;
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpStream;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every open connection's socket, by an id of its own.
#[derive(Default)]
pub(super) struct Conns {
    open: Mutex<HashMap<u64, RawFd>>,
    next: AtomicU64,
}

impl Conns {
    pub(super) fn track(self: &Arc<Self>, stream: TcpStream) -> Tracked {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.open).insert(id, stream.as_raw_fd());
        Tracked {
            conns: self.clone(),
            id,
            stream,
        }
    }

    /// The peers see the close at once; a write after it fails (EPIPE).
    pub(super) fn shutdown_all(&self) {
        for &fd in lock(&self.open).values() {
            // SAFETY: the fd is open: a `Tracked` leaves the map, under this
            // lock, before its stream closes the fd.
            let _ = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
}

/// A connection's stream while it is in [`Conns`]. Dropping it removes the
/// entry first, then (the field's own drop) closes the socket.
pub(super) struct Tracked {
    conns: Arc<Conns>,
    id: u64,
    stream: TcpStream,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(&self.conns.open).remove(&self.id);
    }
}

impl Deref for Tracked {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}
