//! A connected TCP stream whose reads and writes are tokio futures, with
//! the same one read buffer (`framing::ReadBuffer`) and framing searches as
//! the blocking `TcpConnection`, so `recv_line` then `recv` never loses
//! bytes here either.
//!
//! Cancellation: each read commits what it got to the buffer before it
//! waits again, so a read future dropped at any await point (a cancelled
//! task, `asyncio.timeout`) loses nothing: the bytes already read stay
//! buffered for the next call. A dropped write may have sent part of its
//! data; the stream stays open.
//!
//! `close()` takes the stream out and wakes every call in flight, which
//! then fails with `ClosedSocket` and drops its reference: the fd closes
//! when the last one lets go, at once if nothing is in flight.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use socket2::{Domain, SockRef};
use std::io::{Read, Write};
use std::net::TcpStream;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{Mutex as AsyncMutex, Notify};

use crate::error::{Error, Phase, Result};
use crate::framing::{resume_from, ReadBuffer};
use crate::options::{read_back, OptValue, Proto};
use crate::sock::Timeout;
use crate::tcp::Reply;
use crate::tls::TlsSession;

use super::outbox::WriteTurn;
use super::within;

/// The read buffer's first size on the event loop's reads (it doubles as
/// reads fill it). With the blocking client's 64 KiB, each of 1,000
/// fresh request/response clients zeroed and faulted in 16 pages on its
/// first reply: ~21,000 page faults per 1,000 clients against ~5,700 for
/// asyncio streams, 0.5-1 us per request over 20 requests each.
const FIRST_READ: usize = 4096;

#[derive(Debug)]
pub struct AsyncConn {
    stream: Mutex<Option<Arc<TcpStream>>>,
    pub(super) rbuf: AsyncMutex<ReadBuffer>,
    /// In an Arc so that a write handed to the outbox can hold it
    /// (`aio/outbox.rs`) and later writes wait their turn behind it.
    pub(super) wlock: Arc<AsyncMutex<()>>,
    closed: AtomicBool,
    pub(super) shut: Notify,
    /// Writes / reads handed to the runtime and not finished: while any
    /// is, the fast paths stand aside so calls keep their order.
    pub(super) writes: AtomicUsize,
    reads: AtomicUsize,
    timeout: Timeout,
    local: SocketAddr,
    pub(super) peer: SocketAddr,
    /// Set once by `start_tls` (`aio/tls.rs`); from then on every byte
    /// goes through it.
    pub(super) tls: OnceLock<Arc<TlsSession>>,
    /// A `start_tls` or a lent exchange is running: reads and writes wait
    /// their turn by failing (`aio/tls.rs`).
    pub(super) busy: AtomicBool,
}

impl AsyncConn {
    /// Wrap a connected stream. It leaves tokio's reactor: the event loop
    /// watches it for reads (`py/aio_reader.rs`), and a second watcher
    /// would wake a runtime thread on every packet for nothing (measured:
    /// 8% of the CPU of 1,000 request/response clients). A write that
    /// must wait registers it for that wait only ([`Self::ready`]).
    pub fn new(
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        timeout: Option<Duration>,
    ) -> Result<Self> {
        let stream = stream
            .into_std()
            .map_err(|e| Error::io(Phase::Connect, Some(&peer), e))?;
        Ok(Self::from_std(stream, peer, timeout))
    }

    /// Wrap a connected nonblocking std stream (`new`, `from_socket`).
    pub fn from_std(stream: TcpStream, peer: SocketAddr, timeout: Option<Duration>) -> Self {
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(peer.ip(), 0));
        AsyncConn {
            stream: Mutex::new(Some(Arc::new(stream))),
            rbuf: AsyncMutex::new(ReadBuffer::new()),
            wlock: Arc::new(AsyncMutex::new(())),
            closed: AtomicBool::new(false),
            shut: Notify::new(),
            writes: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            timeout: Timeout::new(timeout),
            local,
            tls: OnceLock::new(),
            busy: AtomicBool::new(false),
            peer,
        }
    }

    /// Take the stream out for `detach` (see `aio/tls.rs`); the
    /// connection is closed after.
    pub(super) fn take_stream(&self) -> Option<Arc<TcpStream>> {
        let taken = {
            let mut g = self.stream.lock().unwrap_or_else(|p| p.into_inner());
            self.closed.store(true, Ordering::Release);
            g.take()
        };
        self.shut.notify_waiters();
        taken
    }

    pub(super) fn get(&self) -> Result<Arc<TcpStream>> {
        self.stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::ClosedSocket)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
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
        !self.closed.load(Ordering::Acquire)
    }

    pub fn fileno(&self) -> RawFd {
        self.get().map_or(-1, |s| s.as_raw_fd())
    }

    /// Close; false if it was closed already.
    pub fn close(&self) -> bool {
        let taken = {
            let mut g = self.stream.lock().unwrap_or_else(|p| p.into_inner());
            self.closed.store(true, Ordering::Release);
            g.take()
        };
        if let Some(s) = &taken {
            if self.busy.load(Ordering::Acquire) {
                // A lent exchange holds a duplicate of the fd on a helper
                // thread: the shutdown wakes it there.
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        self.shut.notify_waiters();
        taken.is_some()
    }

    pub fn options(&self) -> Result<Vec<(&'static str, OptValue)>> {
        let s = self.get()?;
        read_back(
            &SockRef::from(&*s),
            Proto::Tcp,
            Domain::for_address(self.peer),
        )
    }

    /// `fut` under the client's timeout, failing with `ClosedSocket` as
    /// soon as `close()` runs.
    pub(super) async fn guarded<T>(
        &self,
        phase: Phase,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let shut = self.shut.notified();
        tokio::pin!(shut);
        shut.as_mut().enable();
        if !self.is_open() {
            return Err(Error::ClosedSocket);
        }
        let work = within(self.timeout(), phase, Some(self.peer), fut);
        tokio::select! {
            biased;
            r = work => r,
            _ = shut => Err(Error::ClosedSocket),
        }
    }

    /// Count a write (`write = true`) or read handed to the runtime until
    /// the returned guard is dropped.
    pub fn pending(self: &Arc<Self>, write: bool) -> Pending {
        self.counter(write).fetch_add(1, Ordering::AcqRel);
        Pending(self.clone(), write)
    }

    fn counter(&self, write: bool) -> &AtomicUsize {
        if write {
            &self.writes
        } else {
            &self.reads
        }
    }

    /// Write what the kernel takes now, without waiting: the fast path the
    /// binding layer runs on the event loop's own thread. The bytes taken,
    /// and whether all of them are out (under TLS some may stay queued:
    /// the runtime's `send_all` then sends them). `None` when the write
    /// lock is busy (another write in flight: wait in turn).
    pub fn try_send_now(&self, data: &[u8]) -> Option<Result<(usize, bool)>> {
        let s = match self.get().and_then(|s| self.not_busy("send").map(|()| s)) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        if self.writes.load(Ordering::Acquire) > 0 {
            return None;
        }
        let _w = self.wlock.try_lock().ok()?;
        if let Some(t) = self.tls.get() {
            return Some(t.write_now(&SockRef::from(&*s), data));
        }
        let mut sent = 0;
        while sent < data.len() {
            match (&*s).write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if sent == 0 => {
                    return Some(Err(Error::io(Phase::Send, Some(&self.peer), e)))
                }
                Err(_) => break,
            }
        }
        Some(Ok((sent, true)))
    }

    /// What a read can answer from the buffer alone, without waiting: the
    /// other fast path (`lines()` after one big read). `None`: go and wait.
    pub fn try_buffered(&self, want: Want<'_>) -> Option<Result<Vec<u8>>> {
        if self.reads.load(Ordering::Acquire) > 0 || !self.is_open() {
            return None;
        }
        let mut rb = self.rbuf.try_lock().ok()?;
        if rb.is_empty() {
            return None;
        }
        match want {
            Want::Some(n) => Some(Ok(rb.take(n))),
            Want::Exact(n) => (rb.len() >= n).then(|| Ok(rb.take(n))),
            Want::Line(max) => Self::until(&mut rb, b"\n", max, false, true),
            Want::Until(delim, max) => {
                let end = rb.find(delim, 0)?;
                Some(if end > max {
                    Err(Error::LimitExceeded {
                        what: "message",
                        limit: max,
                    })
                } else {
                    Ok(rb.take(end))
                })
            }
        }
    }

    fn until(
        rb: &mut ReadBuffer,
        delim: &[u8],
        max: usize,
        eof: bool,
        rest: bool,
    ) -> Option<Result<Vec<u8>>> {
        let limit = || {
            Err(Error::LimitExceeded {
                what: "message",
                limit: max,
            })
        };
        match rb.find(delim, 0) {
            Some(end) if end > max => Some(limit()),
            Some(end) => Some(Ok(rb.take(end))),
            None if rb.len() >= max => Some(limit()),
            None if eof => Some(if rest {
                Ok(rb.take_all())
            } else {
                Err(Error::Closed {
                    partial: rb.take_all(),
                    expected: format!("a delimiter {delim:?}"),
                })
            }),
            None => None,
        }
    }

    /// Read what the socket holds now into the buffer, without waiting:
    /// the event loop's reader calls this when the fd is readable.
    /// `Ok(true)` once the peer has closed.
    pub fn fill_now(&self) -> Result<bool> {
        let s = self.get()?;
        let mut rb = self
            .rbuf
            .try_lock()
            .map_err(|_| Error::invalid("recv", "another read is in flight"))?;
        if let Some(t) = self.tls.get() {
            return Self::fill_tls_now(t, &s, &mut rb);
        }
        loop {
            let spare = rb.spare_from(0, FIRST_READ)?;
            let room = spare.len();
            match (&*s).read(spare) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    rb.commit(n);
                    if n < room {
                        return Ok(false);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(Phase::Recv, Some(&self.peer), e)),
            }
        }
    }

    /// The answer to `want` from the buffer (at EOF, the answer EOF
    /// gives: `b""`, the rest of a line, or ConnectionClosedError with
    /// what arrived); `None`: wait for more bytes.
    pub fn answer(&self, want: Want<'_>, eof: bool) -> Option<Result<Vec<u8>>> {
        let mut rb = self.rbuf.try_lock().ok()?;
        match want {
            Want::Some(0) => Some(Ok(Vec::new())),
            Want::Some(n) => (!rb.is_empty() || eof).then(|| Ok(rb.take(n))),
            Want::Exact(n) if rb.len() >= n => Some(Ok(rb.take(n))),
            Want::Exact(n) => eof.then(|| {
                Err(Error::Closed {
                    partial: rb.take_all(),
                    expected: format!("{n}"),
                })
            }),
            Want::Until(delim, max) => Self::until(&mut rb, delim, max, eof, false),
            Want::Line(max) => Self::until(&mut rb, b"\n", max, eof, true),
        }
    }

    /// Bytes waiting in the buffer.
    pub fn buffered(&self) -> usize {
        self.rbuf.try_lock().map_or(0, |rb| rb.len())
    }

    /// Wait until `s` is ready for `interest`, registered with the
    /// runtime's reactor for this wait only.
    pub(super) async fn ready(s: &TcpStream, interest: Interest) -> std::io::Result<()> {
        // SAFETY: the fd stays open while registered: `s` (an Arc clone the
        // caller holds) outlives the AsyncFd, which is dropped (and the fd
        // deregistered) when this function returns.
        let afd = unsafe { AsyncFd::register_with_interest(RawFdRef(s.as_raw_fd()), interest) }
            .map_err(std::io::Error::from)?;
        let mut guard = afd.ready(interest).await?;
        guard.clear_ready();
        Ok(())
    }

    pub(super) async fn write_some(&self, s: &TcpStream, data: &[u8]) -> Result<usize> {
        loop {
            match (&*s).write(data) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(Phase::Send, Some(&self.peer), e)),
            }
            Self::ready(s, Interest::WRITABLE)
                .await
                .map_err(|e| Error::io(Phase::Send, Some(&self.peer), e))?;
            match (&*s).write(data) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(Phase::Send, Some(&self.peer), e)),
            }
        }
    }

    /// One send, in `turn`; how many bytes the kernel took.
    pub async fn send(&self, data: &[u8], turn: WriteTurn) -> Result<usize> {
        let s = self.get()?;
        self.guarded(Phase::Send, async {
            let _w = turn.wait().await;
            if data.is_empty() {
                return Ok(0);
            }
            if let Some(t) = self.tls.get() {
                // A record is not half taken: all of it, as TcpClient does.
                self.tls_send_all(t, &s, data, &mut 0).await?;
                return Ok(data.len());
            }
            self.write_some(&s, data).await
        })
        .await
    }

    /// Send all of `data`; on failure the error says how many bytes went
    /// out (counting `already`, sent by the fast path).
    pub async fn send_all(&self, data: &[u8], already: usize, turn: WriteTurn) -> Result<()> {
        let s = self.get()?;
        let mut sent = already;
        let r = self
            .guarded(Phase::Send, async {
                let _w = turn.wait().await;
                if let Some(t) = self.tls.get() {
                    return self.tls_send_all(t, &s, data, &mut sent).await;
                }
                while sent < data.len() {
                    sent += self.write_some(&s, &data[sent..]).await?;
                }
                Ok(())
            })
            .await;
        r.map_err(|e| match e {
            Error::ClosedSocket => e,
            e => Error::SendAll {
                bytes_sent: sent,
                source: Box::new(e),
            },
        })
    }

    /// Read once into the buffer; 0 at EOF.
    async fn fill(&self, s: &TcpStream, rb: &mut ReadBuffer, want: usize) -> Result<usize> {
        loop {
            let spare = rb.spare(want)?;
            let k = if want == 0 {
                spare.len()
            } else {
                want.min(spare.len())
            };
            if let Some(t) = self.tls.get() {
                if let Some(n) = t.read_now(&SockRef::from(s), &mut spare[..k])? {
                    rb.commit(n);
                    return Ok(n);
                }
            } else {
                match (&*s).read(&mut spare[..k]) {
                    Ok(n) => {
                        rb.commit(n);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(Phase::Recv, Some(&self.peer), e)),
                }
            }
            Self::ready(s, Interest::READABLE)
                .await
                .map_err(|e| Error::io(Phase::Recv, Some(&self.peer), e))?;
        }
    }

    /// Up to `n` bytes: what is buffered, else one read. Empty at EOF.
    pub async fn recv(&self, n: usize) -> Result<Vec<u8>> {
        let s = self.get()?;
        self.guarded(Phase::Recv, async {
            let mut rb = self.rbuf.lock().await;
            if n == 0 {
                return Ok(Vec::new());
            }
            if rb.is_empty() {
                self.fill(&s, &mut rb, n).await?;
            }
            Ok(rb.take(n))
        })
        .await
    }

    /// Exactly `n` bytes, or ConnectionClosedError carrying what arrived.
    pub async fn recv_exact(&self, n: usize) -> Result<Vec<u8>> {
        let s = self.get()?;
        self.guarded(Phase::Recv, async {
            let mut rb = self.rbuf.lock().await;
            while rb.len() < n {
                let want = n - rb.len();
                if self.fill(&s, &mut rb, want).await? == 0 {
                    return Err(Error::Closed {
                        partial: rb.take_all(),
                        expected: format!("{n}"),
                    });
                }
            }
            Ok(rb.take(n))
        })
        .await
    }

    /// Bytes up to and including `delim`, at most `max_size`; at EOF
    /// `recv_line` (`rest`) returns what arrived, `recv_until` raises.
    pub async fn recv_until(&self, delim: &[u8], max_size: usize, rest: bool) -> Result<Vec<u8>> {
        if delim.is_empty() {
            return Err(Error::invalid("delimiter", "must not be empty"));
        }
        let s = self.get()?;
        self.guarded(Phase::Recv, async {
            let mut rb = self.rbuf.lock().await;
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
                if self.fill(&s, &mut rb, 0).await? == 0 {
                    return if rest {
                        Ok(rb.take_all())
                    } else {
                        Err(Error::Closed {
                            partial: rb.take_all(),
                            expected: format!("a delimiter {delim:?}"),
                        })
                    };
                }
            }
        })
        .await
    }

    /// Read one reply as `request` asks for it.
    pub async fn reply(&self, reply: Reply<'_>) -> Result<Vec<u8>> {
        match reply {
            Reply::Until(delim, max) => self.recv_until(delim, max, false).await,
            Reply::Exact(n) => self.recv_exact(n).await,
        }
    }

    pub fn shutdown(&self, how: std::net::Shutdown) -> Result<()> {
        let s = self.get()?;
        if let (Some(t), std::net::Shutdown::Write | std::net::Shutdown::Both) =
            (self.tls.get(), how)
        {
            self.close_notify(t, &s)?;
        }
        SockRef::from(&*s)
            .shutdown(how)
            .map_err(|e| Error::io(Phase::Send, Some(&self.peer), e))
    }
}

/// What a read asks the buffer for (see [`AsyncConn::try_buffered`]).
#[derive(Clone, Copy)]
pub enum Want<'a> {
    Some(usize),
    Exact(usize),
    Until(&'a [u8], usize),
    /// `recv_line`: up to `\n`, at EOF the unterminated rest.
    Line(usize),
}

/// A read or write in flight on the runtime (see [`AsyncConn::pending`]).
pub struct Pending(Arc<AsyncConn>, bool);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.counter(self.1).fetch_sub(1, Ordering::AcqRel);
    }
}

/// An fd to register with the reactor without owning it.
struct RawFdRef(RawFd);

impl AsRawFd for RawFdRef {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}
