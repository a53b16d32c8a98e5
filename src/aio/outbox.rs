//! Small writes of `request` handed off the event loop's thread.
//!
//! On loopback (and any fast path to a peer), `send()` is the most
//! expensive thing a request/response client does on the loop's thread:
//! the kernel runs the whole transmit, the receiver's TCP input and the
//! wake-up of the peer inside the syscall. Measured with 1,000 clients of
//! 64-byte requests: ~27% of the loop thread's CPU time, ~2 us per
//! request. `request` needs no answer from its write (its result is the
//! reply), so it queues the write here instead, and one task on the aio
//! runtime sends everything queued, on another core. The loop pays for a
//! copy and a queue push, plus a wake-up of the runtime once per batch.
//!
//! Order: the queued write holds the connection's write lock and counts
//! as a write in flight, so every later write of the same connection
//! (which then takes the runtime path, `send_all`, behind the lock) goes
//! out after it. A write the kernel does not take at once finishes on the
//! runtime, still holding the lock. A write that fails is reported back
//! to the loop ([`Outbox::failures`], announced on an eventfd the loop's
//! poller watches), which fails the reply that was waiting for it, with
//! the error the inline path raised.

use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::runtime::Handle;
use tokio::sync::OwnedMutexGuard;

use crate::error::{Error, Phase, Result};

use super::tcp::{AsyncConn, Pending};

/// The biggest write handed off; bigger ones are sent inline, where the
/// copy would cost more than the syscall saves.
pub const HAND_OFF_MAX: usize = 16 * 1024;

/// Who to tell when a write fails: the reader's token and the read's id
/// (`py/aio_reader.rs`).
pub type Tag = (u64, u64);

/// A write waiting in the outbox, holding the connection's write lock.
pub struct Out {
    conn: Arc<AsyncConn>,
    data: Vec<u8>,
    tag: Option<Tag>,
    _lock: OwnedMutexGuard<()>,
    _pending: Pending,
}

impl Out {
    /// Whom to tell if this write fails.
    pub fn tag(&mut self, tag: Tag) {
        self.tag = Some(tag);
    }
}

impl AsyncConn {
    /// `data` as a write for the outbox, when it can go there: plaintext,
    /// small, nothing else being written. `None`: send it inline.
    pub fn hand_off(self: &Arc<Self>, data: &[u8]) -> Option<Out> {
        if data.is_empty() || data.len() > HAND_OFF_MAX || self.tls.get().is_some() {
            return None;
        }
        self.get().ok()?;
        self.not_busy("send").ok()?;
        if self.writes.load(Ordering::Acquire) > 0 {
            return None;
        }
        let lock = self.wlock.clone().try_lock_owned().ok()?;
        Some(Out {
            conn: self.clone(),
            data: data.to_vec(),
            tag: None,
            _lock: lock,
            _pending: self.pending(true),
        })
    }
}

/// A place in line for the connection's write lock, taken when the call
/// is made (on the loop's thread) rather than when its task first runs:
/// the runtime does not poll tasks in the order they were spawned (a
/// worker takes from its global queue ahead of its local one every few
/// dozen polls), so locking inside the task let a later write of the
/// same connection go out first (seen with 200 pipelined requests).
pub enum WriteTurn {
    Held(OwnedMutexGuard<()>),
    Waiting(Pin<Box<dyn Future<Output = OwnedMutexGuard<()>> + Send>>),
}

impl WriteTurn {
    pub async fn wait(self) -> OwnedMutexGuard<()> {
        match self {
            WriteTurn::Held(g) => g,
            WriteTurn::Waiting(f) => f.await,
        }
    }
}

impl AsyncConn {
    /// Join the line for the write lock now (see [`WriteTurn`]); dropping
    /// the turn leaves the line.
    pub fn write_turn(&self) -> WriteTurn {
        let mut acquire: Pin<Box<dyn Future<Output = OwnedMutexGuard<()>> + Send>> =
            Box::pin(self.wlock.clone().lock_owned());
        // The lock's queue is FIFO from the first poll; the task that
        // awaits the turn later polls it with its own waker.
        match acquire
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(g) => WriteTurn::Held(g),
            Poll::Pending => WriteTurn::Waiting(acquire),
        }
    }
}

pub struct Outbox {
    queue: Mutex<Vec<Out>>,
    /// A drain task is scheduled or running: pushes do not spawn another.
    draining: AtomicBool,
    failed: Mutex<Vec<(Tag, Error)>>,
    /// Written when `failed` gets an entry; the loop's poller watches it.
    efd: OwnedFd,
    rt: Handle,
}

impl Outbox {
    pub fn new() -> Result<Arc<Self>> {
        // SAFETY: eventfd returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::io(
                Phase::Send,
                None,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Arc::new(Outbox {
            queue: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
            failed: Mutex::new(Vec::new()),
            // SAFETY: a fresh descriptor we own.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
            rt: super::handle()?,
        }))
    }

    /// The eventfd that says failures are waiting.
    pub fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }

    /// Queue `out`; the first push of a batch starts the drain task.
    pub fn push(self: &Arc<Self>, out: Out) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(out);
        if !self.draining.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            self.rt.spawn(async move { me.drain().await });
        }
    }

    /// The failed writes so far (the loop's thread, when `fd` is readable).
    pub fn failures(&self) -> Vec<(Tag, Error)> {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer (EAGAIN is fine).
        unsafe { libc::read(self.efd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
        std::mem::take(&mut *self.failed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn fail(&self, tag: Option<Tag>, e: Error) {
        let Some(tag) = tag else { return };
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((tag, e));
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
        unsafe { libc::write(self.efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    async fn drain(self: Arc<Self>) {
        // Swapped with the queue, so both keep their capacity: no
        // allocation per batch on the loop's side.
        let mut batch = Vec::new();
        loop {
            std::mem::swap(
                &mut batch,
                &mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()),
            );
            if batch.is_empty() {
                self.draining.store(false, Ordering::Release);
                // A push between the take and the store saw `draining`
                // set and left the write to this task.
                let more = !self
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty();
                if more && !self.draining.swap(true, Ordering::AcqRel) {
                    continue;
                }
                return;
            }
            for out in batch.drain(..) {
                self.send(out);
            }
        }
    }

    /// Send what the kernel takes now; the rest waits on the runtime,
    /// still holding the write lock.
    fn send(self: &Arc<Self>, out: Out) {
        let s = match out.conn.get() {
            Ok(s) => s,
            Err(e) => return self.fail(out.tag, e),
        };
        let mut sent = 0;
        while sent < out.data.len() {
            match std::io::Write::write(&mut &*s, &out.data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let e = Error::io(Phase::Send, Some(&out.conn.peer), e);
                    return self.fail(out.tag, sent_error(e, sent));
                }
            }
        }
        if sent == out.data.len() {
            return;
        }
        let me = self.clone();
        self.rt.spawn(async move {
            let conn = out.conn.clone();
            let r = conn
                .guarded(Phase::Send, async {
                    while sent < out.data.len() {
                        sent += conn.write_some(&s, &out.data[sent..]).await?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                // As `send_all`, which the inline path hands the rest to.
                let e = match e {
                    Error::ClosedSocket => e,
                    e => Error::SendAll {
                        bytes_sent: sent,
                        source: Box::new(e),
                    },
                };
                me.fail(out.tag, e);
            }
        });
    }
}

/// The error `request` raised inline: the plain one when nothing went
/// out, else `SendAll` with the count.
fn sent_error(e: Error, sent: usize) -> Error {
    if sent == 0 {
        return e;
    }
    Error::SendAll {
        bytes_sent: sent,
        source: Box::new(e),
    }
}
