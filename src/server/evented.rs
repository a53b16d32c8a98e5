//! on_message and echo modes: a tokio runtime of the server's own accepts,
//! reads, frames and handler calls.
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
}

pub struct Running {
    rt: Runtime,
    stop_tx: watch::Sender<bool>,
    stats: Arc<Stats>,
    watchdog: Option<Watchdog>,
}

fn io_err(e: std::io::Error) -> Error {
    Error::io(Phase::Accept, None, e)
}

impl Running {
    pub fn start(
        listener: &Arc<Socket>,
        stats: Arc<Stats>,
        limits: Limits,
        responder: Responder,
        framing: Framing,
        hooks: ThreadHooks,
        tls: Option<Arc<ServerTls>>,
    ) -> Result<Self> {
        let std_listener: std::net::TcpListener = listener.try_clone().map_err(io_err)?.into();
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
        });
        let tl = {
            let _enter = rt.enter();
            TcpListener::from_std(std_listener).map_err(io_err)?
        };
        rt.spawn(accept_loop(tl, ctx, stop_rx));
        Ok(Running {
            rt,
            stop_tx,
            stats,
            watchdog,
        })
    }

    /// Stop accepting; idle connections close now, a connection in its
    /// handler gets its replies first, until `deadline`; then the runtime
    /// ends (closing the rest) and its threads are joined.
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
    /// Each I/O thread's read buffer, zeroed once: zeroing a fresh 64 KiB
    /// stack buffer for every read was 7% of an echo server's CPU
    /// (perf record, one connection of 64-byte round trips).
    static CHUNK: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; 64 * 1024].into_boxed_slice());
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
async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The framed replies to `msgs` into `out`; false when the connection must
/// close after them (the handler failed, or a reply cannot be framed).
fn respond(ctx: &Ctx, peer: SocketAddr, msgs: &[Vec<u8>], out: &mut Vec<u8>) -> bool {
    let Some(handler) = &ctx.handler else {
        for m in msgs {
            let _ = encode(ctx.framing, m, out);
        }
        return true;
    };
    let outcomes = {
        let _call = ctx.busy.call();
        handler.handle(peer, msgs)
    };
    for o in outcomes {
        match o {
            Outcome::Reply(r) => {
                if encode(ctx.framing, &r, out).is_err() {
                    return false;
                }
            }
            Outcome::NoReply => {}
            Outcome::Failed => {
                Stats::add(&ctx.stats.handler_errors, 1);
                return false;
            }
        }
    }
    true
}

async fn serve_conn(
    s: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    guard: ActiveGuard,
    mut stop: watch::Receiver<bool>,
) {
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
        let n = match read_into(&s, &mut dec) {
            Ok(0) => return, // EOF, perhaps a half-close: all that came is answered
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return, // reset
        };
        Stats::add(&ctx.stats.bytes_in, n as u64);
        let go_on = answer(&ctx, peer, &mut dec, &mut msgs, &mut out);
        if !out.is_empty() {
            if write_all(&s, &out).await.is_err() {
                return;
            }
            Stats::add(&ctx.stats.bytes_out, out.len() as u64);
            recycle(&mut out);
        }
        if !go_on {
            return;
        }
    }
}

/// Cut what `dec` holds into messages and frame their replies into `out`;
/// false when the connection must close once `out` is sent (a message
/// over `max_message`, a failed handler).
pub(super) fn answer(
    ctx: &Ctx,
    peer: SocketAddr,
    dec: &mut Decoder,
    msgs: &mut Vec<Vec<u8>>,
    out: &mut Vec<u8>,
) -> bool {
    let too_large = loop {
        match dec.next_message() {
            Ok(Some(m)) => msgs.push(m),
            Ok(None) => break false,
            Err(_) => break true, // over max_message
        }
    };
    if msgs.is_empty() {
        return !too_large;
    }
    let go_on = respond(ctx, peer, msgs, out) && !too_large;
    msgs.clear();
    go_on
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
