//! on_message and echo modes: a tokio runtime of the server's own accepts,
//! reads and frames; whole messages go to a small pool of handler threads
//! through a channel, and the connection's task awaits the replies. The
//! reactor never waits for the handler's lock (the GIL): a slow handler
//! delays only the connections whose messages it holds. One connection's
//! messages are handled in order; replies go out in that order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use socket2::Socket;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

use crate::error::{Error, Phase, Result};
use crate::wait::Deadline;

use super::codec::{encode, Decoder, Framing};
use super::stats::ActiveGuard;
use super::{spawn, Limits, MessageHandler, Outcome, Stats, ThreadWrap};

/// Threads of the pool that runs message handlers. Python runs one at a time
/// (the GIL); a second thread keeps a handler that blocks (on I/O, a sleep)
/// from holding up every connection, while more than two only fight over
/// the GIL (measured with benches/server.py: 2 beat 1 and 4 on 2 cores).
pub const HANDLER_THREADS: usize = 2;
/// Event-loop threads (measured: 2 beat 1 for echo by ~1.6x on 2 cores).
const IO_THREADS: usize = 2;
/// The most queued jobs one handler thread takes at once (one GIL take).
const BATCH: usize = 64;

pub enum Responder {
    Echo,
    Pool {
        handler: Arc<dyn MessageHandler>,
        workers: usize,
    },
}

struct Job {
    peer: SocketAddr,
    msgs: Vec<Vec<u8>>,
    reply: oneshot::Sender<Vec<Outcome>>,
}

struct Ctx {
    stats: Arc<Stats>,
    limits: Limits,
    framing: Framing,
    jobs: Option<crossbeam_channel::Sender<Job>>,
}

pub struct Running {
    rt: Runtime,
    stop_tx: watch::Sender<bool>,
    stats: Arc<Stats>,
    jobs: Option<crossbeam_channel::Sender<Job>>,
    pool: Vec<(ThreadId, JoinHandle<()>)>,
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
        wrap: ThreadWrap,
    ) -> Result<Self> {
        let std_listener: std::net::TcpListener = listener.try_clone().map_err(io_err)?.into();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("socketkit-io")
            .enable_io()
            .enable_time()
            .build()
            .map_err(io_err)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut pool = Vec::new();
        let jobs = match responder {
            Responder::Echo => None,
            Responder::Pool { handler, workers } => {
                let (tx, rx) = crossbeam_channel::unbounded::<Job>();
                for _ in 0..workers.max(1) {
                    let rx = rx.clone();
                    let h = handler.clone();
                    let t = spawn("socketkit-worker", &wrap, move || pool_worker(&rx, &*h))
                        .map_err(io_err)?;
                    pool.push((t.thread().id(), t));
                }
                Some(tx)
            }
        };
        let ctx = Arc::new(Ctx {
            stats: stats.clone(),
            limits,
            framing,
            jobs: jobs.clone(),
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
            jobs,
            pool,
        })
    }

    /// Stop accepting; connections waiting for data close now, those with
    /// a message in a handler get its reply first, until `deadline`; then
    /// the runtime ends (closing the rest) and the pool is joined.
    pub fn stop(mut self, deadline: Deadline) {
        self.stop_tx.send_replace(true);
        while self.stats.active.load(std::sync::atomic::Ordering::Relaxed) > 0
            && !deadline.expired()
        {
            std::thread::sleep(deadline.slice().min(Duration::from_millis(2)));
        }
        self.rt.shutdown_timeout(Duration::from_secs(1));
        // Every task (and its clone of the sender) is gone: the pool's
        // channel disconnects once this one goes.
        self.jobs.take();
        let me = std::thread::current().id();
        let grace = Deadline::after(Some(
            deadline.remaining().unwrap_or_default() + Duration::from_secs(2),
        ));
        while self
            .pool
            .iter()
            .any(|(id, h)| *id != me && !h.is_finished())
            && !grace.expired()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        for (id, h) in self.pool {
            if id != me && h.is_finished() {
                let _ = h.join();
            }
        }
    }

    /// End without waiting (see `TcpServerCore::drop`).
    pub fn abandon(self) {
        self.stop_tx.send_replace(true);
        self.rt.shutdown_background();
    }
}

fn pool_worker(rx: &crossbeam_channel::Receiver<Job>, handler: &dyn MessageHandler) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let batch: Vec<(SocketAddr, Vec<Vec<u8>>)> = jobs
            .iter_mut()
            .map(|j| (j.peer, std::mem::take(&mut j.msgs)))
            .collect();
        let outs = handler.handle(&batch);
        for (j, o) in jobs.into_iter().zip(outs) {
            // The connection may be gone (closed, server stopped).
            let _ = j.reply.send(o);
        }
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

async fn readable(s: &TcpStream, idle: Option<Duration>) -> bool {
    match idle {
        Some(d) => matches!(tokio::time::timeout(d, s.readable()).await, Ok(Ok(()))),
        None => s.readable().await.is_ok(),
    }
}

/// One read into the decoder through a buffer on the thread's stack (a
/// plain function, so the buffer is not part of the connection's future):
/// a connection holds memory only for an unfinished message.
fn read_into(s: &TcpStream, dec: &mut Decoder) -> std::io::Result<usize> {
    let mut chunk = [0u8; 64 * 1024];
    let want = dec.read_size().min(chunk.len());
    let n = s.try_read(&mut chunk[..want])?;
    dec.push(&chunk[..n]);
    Ok(n)
}

async fn serve_conn(
    mut s: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    _guard: ActiveGuard,
    mut stop: watch::Receiver<bool>,
) {
    let mut dec = Decoder::new(ctx.framing, ctx.limits.max_message);
    let mut out = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let ok = tokio::select! {
            biased;
            _ = stop.changed() => return,
            ok = readable(&s, ctx.limits.idle_timeout) => ok,
        };
        if !ok {
            return; // idle too long, or the socket failed
        }
        let n = match read_into(&s, &mut dec) {
            Ok(0) => return, // EOF (also a half-close: every whole message was answered)
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return, // reset
        };
        Stats::add(&ctx.stats.bytes_in, n as u64);
        let mut msgs = Vec::new();
        let mut close = false;
        loop {
            match dec.next_message() {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => break,
                Err(_) => {
                    close = true; // over max_message
                    break;
                }
            }
        }
        if !msgs.is_empty() {
            let outcomes = match &ctx.jobs {
                None => msgs.into_iter().map(Outcome::Reply).collect(),
                Some(tx) => {
                    let (rtx, rrx) = oneshot::channel();
                    let job = Job {
                        peer,
                        msgs,
                        reply: rtx,
                    };
                    if tx.send(job).is_err() {
                        return;
                    }
                    match rrx.await {
                        Ok(o) => o,
                        Err(_) => return,
                    }
                }
            };
            for o in outcomes {
                match o {
                    Outcome::Reply(r) => {
                        if encode(ctx.framing, &r, &mut out).is_err() {
                            close = true;
                            break;
                        }
                    }
                    Outcome::NoReply => {}
                    Outcome::Failed => {
                        Stats::add(&ctx.stats.handler_errors, 1);
                        close = true;
                        break;
                    }
                }
            }
            if !out.is_empty() {
                if s.write_all(&out).await.is_err() {
                    return;
                }
                Stats::add(&ctx.stats.bytes_out, out.len() as u64);
                out.clear();
                if out.capacity() > 1 << 20 {
                    out = Vec::new();
                }
            }
        }
        if close {
            return;
        }
    }
}
