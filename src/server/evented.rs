//! on_message mode (and a TLS echo): a tokio runtime of the server's own
//! accepts, reads, frames and handler calls.
//!
//! A connection is one task: read, frame, give the whole messages of that
//! read to the handler, write the replies, read again. The handler runs in
//! the task, on the runtime's own threads, which the binding attached to the
//! interpreter for their whole life ([`ThreadHooks`]): a request crosses no
//! thread. Measured with benches/server.py (50 connections x 64 B, 2 cores):
//! handing messages to a separate pool of handler threads ran at 0.9-1.05x
//! uvloop even when the pool wrote the replies itself (one handoff per
//! request); calling the handler in the task runs at 1.3-1.4x uvloop,
//! within a few percent of the Rust-only echo.
//!
//! A handler that blocks (a sleep, a database call) holds one of the
//! `IO_THREADS` threads; the others go on serving every other connection
//! (tokio's workers steal ready tasks from a busy one, and the
//! [`super::watchdog`] makes sure one of them polls for I/O), so a slow
//! handler delays only its own connection. As many slow handlers as there
//! are threads at once stall the server, as any event loop would.
//!
//! A TLS server's connection task runs its handshake first, on the same
//! loop, then reads, frames and writes through TLS (`evented_tls`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::error::{Error, Phase, Result};
use crate::tls::ServerTls;
use crate::wait::Deadline;

use super::codec::{encode, Decoder, Framing};
use super::conns::Conns;
use super::stats::ActiveGuard;
use super::watchdog::{Busy, Watchdog};
use super::{Limits, MessageHandler, Outcome, Stats, ThreadHooks};

/// Event-loop threads. Measured: 2 beat 1 by ~1.3-1.6x on 2 cores for both
/// echo and on_message; Python runs one handler at a time anyway (the GIL),
/// and the second thread keeps one slow handler from stalling the server.
const IO_THREADS: usize = 2;
/// How long `stop()` lets the runtime end its tasks once the deadline has
/// passed (a handler still running past it keeps its thread until it returns).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The most messages handed to the handler at once: one GIL acquisition per
/// batch, and a client that pipelines thousands of tiny messages in one read
/// leaves at most this many decoded and waiting while it does not read.
const BATCH: usize = 256;

pub enum Responder {
    Echo,
    Handler(Arc<dyn MessageHandler>),
}

pub(super) struct Ctx {
    pub(super) stats: Arc<Stats>,
    pub(super) limits: Limits,
    pub(super) framing: Framing,
    handler: Option<Arc<dyn MessageHandler>>,
    busy: Arc<Busy>,
    /// TLS servers: every connection's handshake, then reads and writes,
    /// go through it (see `evented_tls`).
    tls: Option<Arc<ServerTls>>,
    /// Where failed handshakes are reported (`ThreadHooks::debug`).
    pub(super) debug: Arc<dyn Fn(&str) + Send + Sync>,
    conns: Arc<Conns>,
}

pub struct Running {
    rt: Runtime,
    stop_tx: watch::Sender<bool>,
    stats: Arc<Stats>,
    watchdog: Option<Watchdog>,
    conns: Arc<Conns>,
    adopter: Adopter,
}

/// Hands connections someone else accepted to a running loop (the plain
/// echo's overflow, see `echo`).
#[derive(Clone)]
pub struct Adopter {
    handle: tokio::runtime::Handle,
    ctx: Arc<Ctx>,
    stop: watch::Receiver<bool>,
}

impl Adopter {
    /// Serve `s` on the loop; it holds its slot (`guard`) until it ends.
    pub fn adopt(&self, s: Socket, peer: SocketAddr, guard: ActiveGuard) {
        if s.set_nonblocking(true).is_err() {
            return;
        }
        let _enter = self.handle.enter();
        // Registration fails only when the loop is gone: the socket closes.
        if let Ok(ts) = TcpStream::from_std(s.into()) {
            let conn = serve_conn(ts, peer, self.ctx.clone(), guard, self.stop.clone());
            self.handle.spawn(conn);
        }
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::io(Phase::Accept, None, e)
}

impl Running {
    /// Serve `listener` (none: only what [`Adopter::adopt`] hands over).
    pub fn start(
        listener: Option<&Arc<Socket>>,
        stats: Arc<Stats>,
        limits: Limits,
        responder: Responder,
        framing: Framing,
        hooks: ThreadHooks,
        tls: Option<Arc<ServerTls>>,
    ) -> Result<Self> {
        let (start, stop) = (hooks.start.clone(), hooks.stop.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("socketkit-io")
            .on_thread_start(move || start())
            .on_thread_stop(move || stop())
            .enable_io()
            .enable_time()
            .build()
            .map_err(io_err)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let busy = Arc::new(Busy::default());
        let conns = Arc::new(Conns::default());
        let (handler, watchdog) = match responder {
            Responder::Echo => (None, None),
            Responder::Handler(h) => {
                let w = Watchdog::start(busy.clone(), rt.handle().clone()).map_err(io_err)?;
                (Some(h), Some(w))
            }
        };
        let ctx = Arc::new(Ctx {
            stats: stats.clone(),
            limits,
            framing,
            handler,
            busy,
            tls,
            debug: hooks.debug.clone(),
            conns: conns.clone(),
        });
        if let Some(listener) = listener {
            let std_listener: std::net::TcpListener = listener.try_clone().map_err(io_err)?.into();
            let tl = {
                let _enter = rt.enter();
                TcpListener::from_std(std_listener).map_err(io_err)?
            };
            rt.spawn(accept_loop(tl, ctx.clone(), stop_rx.clone()));
        }
        let adopter = Adopter {
            handle: rt.handle().clone(),
            ctx,
            stop: stop_rx,
        };
        Ok(Running {
            rt,
            stop_tx,
            stats,
            watchdog,
            conns,
            adopter,
        })
    }

    pub fn adopter(&self) -> Adopter {
        self.adopter.clone()
    }

    /// Stop accepting; idle connections close now, a connection in its
    /// handler gets its replies first, until `deadline`; then every socket
    /// still open is shut down (a handler stuck past it cannot reply once
    /// `stop()` has returned), the runtime ends and its threads are joined.
    pub fn stop(mut self, deadline: Deadline) {
        self.stop_tx.send_replace(true);
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called by a handler, on one of the runtime's threads: its own
            // connection waits for it, and a runtime cannot be shut down
            // from inside. Another thread ends it once the handler returns.
            let rt = self.rt;
            let _ = std::thread::Builder::new()
                .name("socketkit-stop".into())
                .spawn(move || rt.shutdown_timeout(SHUTDOWN_GRACE));
            return;
        }
        while self.stats.active.load(std::sync::atomic::Ordering::Relaxed) > 0
            && !deadline.expired()
        {
            std::thread::sleep(deadline.slice().min(Duration::from_millis(2)));
        }
        self.conns.shutdown_all();
        self.rt.shutdown_timeout(SHUTDOWN_GRACE);
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
    }

    /// End without waiting (see `TcpServerCore::drop`).
    pub fn abandon(self) {
        self.stop_tx.send_replace(true);
        self.rt.shutdown_background();
    }
}

async fn accept_loop(l: TcpListener, ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            r = l.accept() => match r {
                Ok((s, peer)) => {
                    // Over the limit: dropping the stream closes it at once.
                    if let Some(guard) = ctx.stats.admit(ctx.limits.max_connections) {
                        tokio::spawn(serve_conn(s, peer, ctx.clone(), guard, stop.clone()));
                    }
                }
                Err(e) => {
                    if !super::listener::is_transient(&e) {
                        // Out of fds or memory: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
            _ = stop.changed() => return,
        }
    }
}

thread_local! {
    /// The read buffer of the connections this thread serves, zeroed once:
    /// a fresh 64 KiB array per read was zeroed every time, 18% of an
    /// on_message server's CPU under redis-benchmark -P 16 (perf; 0.40 ->
    /// 0.30 us of server CPU per request).
    static CHUNK: std::cell::RefCell<Box<[u8]>> = std::cell::RefCell::new(vec![0u8; 64 * 1024].into());
}

/// One read into the decoder through the thread's buffer (not part of the
/// connection's future): a connection holds memory only for an unfinished
/// message.
///
/// A short read emptied the socket, so the readiness is dropped as tokio's
/// own `poll_read` does: the next round waits for the next edge at once
/// instead of first trying a read that fails (an echo's round trip was
/// read, write, failed read, epoll_wait; now one syscall fewer). The edge
/// of bytes arriving after this read is still seen: epoll queues it.
fn read_into(s: &TcpStream, dec: &mut Decoder) -> std::io::Result<usize> {
    use std::io::{ErrorKind, Read};
    CHUNK.with_borrow_mut(|chunk| {
        let want = dec.read_size().min(chunk.len());
        let mut got = 0;
        let r = s.try_io(tokio::io::Interest::READABLE, || {
            got = (&*socket2::SockRef::from(s)).read(&mut chunk[..want])?;
            if got > 0 && got < want {
                return Err(ErrorKind::WouldBlock.into());
            }
            Ok(got)
        });
        let n = match r {
            Err(e) if e.kind() == ErrorKind::WouldBlock && got > 0 => got,
            r => r?,
        };
        dec.push(&chunk[..n]);
        Ok(n)
    })
}

/// Write all of `data`, waiting for the socket as needed.
async fn write_all(s: &TcpStream, mut data: &[u8], idle: Option<Duration>) -> std::io::Result<()> {
    while !data.is_empty() {
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => writable(s, idle).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Wait for room to write; a client that reads nothing for `idle_timeout`
/// is idle too (handler mode's `sendall` times out the same way), and its
/// connection ends instead of holding its slot and its replies forever.
pub(super) async fn writable(s: &TcpStream, idle: Option<Duration>) -> std::io::Result<()> {
    match idle {
        Some(d) => tokio::time::timeout(d, s.writable())
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
        None => s.writable().await,
    }
}

/// Frame the replies to the first messages of `msgs` into `out`, until the
/// replies reach `budget` bytes: how many were handled, and false when the
/// connection must close after them (the handler failed, or a reply cannot
/// be framed).
fn respond(
    ctx: &Ctx,
    peer: SocketAddr,
    msgs: &[Vec<u8>],
    budget: usize,
    out: &mut Vec<u8>,
) -> (usize, bool) {
    let Some(handler) = &ctx.handler else {
        for m in msgs {
            let _ = encode(ctx.framing, m, out);
        }
        return (msgs.len(), true);
    };
    let outcomes = {
        let _call = ctx.busy.call();
        handler.handle(peer, msgs, budget)
    };
    let handled = outcomes.len().min(msgs.len());
    for o in outcomes {
        match o {
            Outcome::Reply(r) => {
                if encode(ctx.framing, &r, out).is_err() {
                    return (handled, false);
                }
            }
            Outcome::NoReply => {}
            Outcome::Failed => {
                Stats::add(&ctx.stats.handler_errors, 1);
                return (handled, false);
            }
        }
    }
    (handled.max(1), true)
}

async fn serve_conn(
    s: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    guard: ActiveGuard,
    mut stop: watch::Receiver<bool>,
) {
    let s = ctx.conns.track(s);
    if let Some(tls) = ctx.tls.clone() {
        return super::evented_tls::serve(s, peer, ctx, &tls, guard, stop).await;
    }
    let _guard = guard;
    let mut dec = Decoder::new(ctx.framing, ctx.limits.max_message);
    let mut msgs = Vec::new();
    let mut out = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = readable(&s, ctx.limits.idle_timeout) => match r {
                Ready::Yes => {}
                Ready::TimedOut | Ready::Failed => return,
            }
        }
        let eof = match read_into(&s, &mut dec) {
            Ok(0) => {
                // EOF, perhaps a half-close: all that came is answered, an
                // unterminated last line included.
                dec.finish();
                true
            }
            Ok(n) => {
                Stats::add(&ctx.stats.bytes_in, n as u64);
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return, // reset
        };
        // Replies go out every `max_unsent` bytes: while they do, nothing is
        // read or handled, so a client that does not read stalls only itself.
        loop {
            let step = answer(&ctx, peer, &mut dec, &mut msgs, &mut out);
            if !out.is_empty() {
                if write_all(&s, &out, ctx.limits.idle_timeout).await.is_err() {
                    return;
                }
                Stats::add(&ctx.stats.bytes_out, out.len() as u64);
                recycle(&mut out);
            }
            match step {
                Step::Full => {}
                Step::Drained if !eof => break,
                Step::Drained | Step::Close => return,
            }
        }
    }
}

/// Where [`answer`] left a connection.
pub(super) enum Step {
    /// Every whole message is answered.
    Drained,
    /// `out` holds `max_unsent` bytes or more: send them, then call again.
    Full,
    /// Close once `out` is sent (a message over `max_message`, a failed
    /// handler).
    Close,
}

/// Cut what `dec` holds into messages and frame their replies into `out`,
/// a batch at a time, until they are all answered or `out` is full. The
/// messages decoded and not yet answered wait in `msgs`.
pub(super) fn answer(
    ctx: &Ctx,
    peer: SocketAddr,
    dec: &mut Decoder,
    msgs: &mut Vec<Vec<u8>>,
    out: &mut Vec<u8>,
) -> Step {
    let max_unsent = ctx.limits.max_unsent;
    loop {
        let mut too_large = false;
        while msgs.len() < BATCH {
            match dec.next_message() {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => break,
                // Over max_message; the decoder says so again next time.
                Err(_) => {
                    too_large = true;
                    break;
                }
            }
        }
        if msgs.is_empty() {
            return if too_large {
                Step::Close
            } else {
                Step::Drained
            };
        }
        let budget = max_unsent.saturating_sub(out.len());
        let (handled, go_on) = respond(ctx, peer, msgs, budget, out);
        msgs.drain(..handled);
        if !go_on {
            return Step::Close;
        }
        if out.len() >= max_unsent {
            return Step::Full;
        }
    }
}

/// Empty `out` for the next replies, giving back what a large one took.
pub(super) fn recycle(out: &mut Vec<u8>) {
    out.clear();
    if out.capacity() > 1 << 20 {
        *out = Vec::new();
    }
}

pub(super) enum Ready {
    Yes,
    TimedOut,
    Failed,
}

pub(super) async fn readable(s: &TcpStream, idle: Option<Duration>) -> Ready {
    let r = match idle {
        Some(d) => match tokio::time::timeout(d, s.readable()).await {
            Ok(r) => r,
            Err(_) => return Ready::TimedOut,
        },
        None => s.readable().await,
    };
    match r {
        Ok(()) => Ready::Yes,
        Err(_) => Ready::Failed,
    }
}
