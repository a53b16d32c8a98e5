//! on_message and echo modes: a tokio runtime of the server's own accepts,
//! reads and frames.
//!
//! Echo replies from the connection's task. With a handler, the task hands
//! whole messages to a small pool of handler threads and goes back to
//! reading; it never waits for the handler (or its lock, the GIL), so a
//! slow handler delays only the connections whose messages it holds. The
//! handler thread writes the replies to the socket itself when the kernel
//! takes them at once (the common case: one thread handoff per request
//! instead of two), and leaves the rest to the task. A connection is in the
//! handlers' queue at most once, so its messages are handled, and its
//! replies sent, in arrival order. A handler thread keeps the GIL while the
//! queue has connections (one `session`), instead of handing it back and
//! forth with the other handler thread after every message.
//!
//! Measured (perf, 50 connections): the handler threads' time is now
//! nearly all the kernel's send path; Python itself is about 1%.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use socket2::Socket;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};

use crate::error::{Error, Phase, Result};
use crate::wait::Deadline;

use super::codec::{encode, Decoder, Framing};
use super::stats::ActiveGuard;
use super::{spawn, Limits, MessageHandler, Outcome, Stats, ThreadWrap};

/// Threads of the pool that runs message handlers. Python runs one at a time
/// (the GIL); a second thread keeps a handler that blocks (on I/O, a sleep)
/// from holding up every connection, while more only fight over the GIL
/// (measured with benches/server.py: 2 matched or beat 1, and beat 4).
pub const HANDLER_THREADS: usize = 2;
/// Event-loop threads (measured: 2 beat 1 for echo by ~1.6x on 2 cores).
const IO_THREADS: usize = 2;
/// Bytes of messages a connection may have waiting for the handler before
/// its task stops reading (TCP flow control then slows the peer).
const INBOX_LIMIT: usize = 1 << 20;

pub enum Responder {
    Echo,
    Pool {
        handler: Arc<dyn MessageHandler>,
        workers: usize,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a connection's task and the handler threads share.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    state: Mutex<ConnState>,
    /// Handler thread -> task: replies to write, failure, or drained.
    notify: Notify,
}

#[derive(Default)]
struct ConnState {
    /// Messages waiting for the handler.
    inbox: Vec<Vec<u8>>,
    inbox_bytes: usize,
    /// In the queue or in a handler thread's hands.
    scheduled: bool,
    /// Reply bytes the kernel did not take at once; the task writes them.
    outbox: Vec<u8>,
    /// The task is writing the outbox: later replies queue behind it.
    task_writing: bool,
    /// The handler failed or a write failed: the task closes.
    failed: bool,
    /// The task waits for the handler to drain (stop, EOF, backpressure).
    task_waiting: bool,
}

impl ConnState {
    fn busy(&self) -> bool {
        self.scheduled || self.task_writing || !self.outbox.is_empty()
    }
}

/// The handler threads' run queue.
struct Queue {
    inner: Mutex<QueueInner>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueInner {
    conns: VecDeque<Arc<Conn>>,
    idle: usize,
    closed: bool,
}

impl Queue {
    fn push(&self, c: Arc<Conn>) {
        let mut q = lock(&self.inner);
        q.conns.push_back(c);
        if q.idle > 0 {
            self.ready.notify_one();
        }
    }

    /// The next connection; None once closed and empty.
    fn pop(&self) -> Option<Arc<Conn>> {
        let mut q = lock(&self.inner);
        loop {
            if let Some(c) = q.conns.pop_front() {
                return Some(c);
            }
            if q.closed {
                return None;
            }
            q.idle += 1;
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            q.idle -= 1;
        }
    }

    fn try_pop(&self) -> Option<Arc<Conn>> {
        lock(&self.inner).conns.pop_front()
    }

    fn close(&self) {
        lock(&self.inner).closed = true;
        self.ready.notify_all();
    }
}

struct Ctx {
    stats: Arc<Stats>,
    limits: Limits,
    framing: Framing,
    queue: Option<Arc<Queue>>,
}

pub struct Running {
    rt: Runtime,
    stop_tx: watch::Sender<bool>,
    stats: Arc<Stats>,
    queue: Option<Arc<Queue>>,
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
        let queue = match responder {
            Responder::Echo => None,
            Responder::Pool { handler, workers } => {
                let queue = Arc::new(Queue {
                    inner: Mutex::new(QueueInner::default()),
                    ready: Condvar::new(),
                });
                for _ in 0..workers.max(1) {
                    let (q, h, st) = (queue.clone(), handler.clone(), stats.clone());
                    let t = spawn("socketkit-worker", &wrap, move || {
                        handler_thread(&q, &*h, &st, framing)
                    });
                    match t {
                        Ok(t) => pool.push((t.thread().id(), t)),
                        Err(e) => {
                            queue.close();
                            return Err(io_err(e));
                        }
                    }
                }
                Some(queue)
            }
        };
        let ctx = Arc::new(Ctx {
            stats: stats.clone(),
            limits,
            framing,
            queue: queue.clone(),
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
            queue,
            pool,
        })
    }

    /// Stop accepting; connections with nothing in a handler close now,
    /// the others get their replies first, until `deadline`; then the
    /// runtime ends (closing the rest) and the pool is joined.
    pub fn stop(mut self, deadline: Deadline) {
        self.stop_tx.send_replace(true);
        let me = std::thread::current().id();
        // Called by a handler: its own connection waits for it, so waiting
        // for every connection would only burn the whole timeout.
        let deadline = if self.pool.iter().any(|(id, _)| *id == me) {
            Deadline::after(Some(Duration::ZERO))
        } else {
            deadline
        };
        while self.stats.active.load(std::sync::atomic::Ordering::Relaxed) > 0
            && !deadline.expired()
        {
            std::thread::sleep(deadline.slice().min(Duration::from_millis(2)));
        }
        self.rt.shutdown_timeout(Duration::from_secs(1));
        if let Some(q) = self.queue.take() {
            q.close();
        }
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
        if let Some(q) = &self.queue {
            q.close();
        }
        self.rt.shutdown_background();
    }
}

/// Write as much of `data` as the kernel takes now; returns the bytes
/// written, or an error for a dead connection.
fn write_now(s: &TcpStream, data: &[u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match s.try_write(&data[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Take one connection at a time (one taken with a slow one would wait
/// behind it), with all its waiting messages; keep the handler's session
/// (the GIL) while the queue has more.
fn handler_thread(queue: &Queue, handler: &dyn MessageHandler, stats: &Stats, framing: Framing) {
    while let Some(first) = queue.pop() {
        let mut next = Some(first);
        handler.session(&mut || {
            while let Some(c) = next.take() {
                serve_turn(queue, handler, stats, framing, &c);
                next = queue.try_pop();
            }
        });
    }
}

fn serve_turn(
    queue: &Queue,
    handler: &dyn MessageHandler,
    stats: &Stats,
    framing: Framing,
    c: &Arc<Conn>,
) {
    let msgs = {
        let mut st = lock(&c.state);
        st.inbox_bytes = 0;
        if st.task_waiting {
            c.notify.notify_one(); // room in the inbox again
        }
        std::mem::take(&mut st.inbox)
    };
    let outcomes = handler.handle(c.peer, &msgs);
    let mut reply = Vec::new();
    let mut failed = false;
    for o in outcomes {
        match o {
            Outcome::Reply(r) => {
                if encode(framing, &r, &mut reply).is_err() {
                    failed = true;
                    break;
                }
            }
            Outcome::NoReply => {}
            Outcome::Failed => {
                Stats::add(&stats.handler_errors, 1);
                failed = true;
                break;
            }
        }
    }
    finish(queue, stats, c, reply, failed);
}

/// Deliver one connection's replies and give it back to its task (or
/// requeue it when more messages came meanwhile).
fn finish(queue: &Queue, stats: &Stats, c: &Arc<Conn>, reply: Vec<u8>, failed: bool) {
    let mut st = lock(&c.state);
    let mut wake = false;
    if !reply.is_empty() {
        if st.outbox.is_empty() && !st.task_writing {
            match write_now(&c.stream, &reply) {
                Ok(n) => {
                    Stats::add(&stats.bytes_out, n as u64);
                    if n < reply.len() {
                        st.outbox.extend_from_slice(&reply[n..]);
                        wake = true;
                    }
                }
                Err(_) => {
                    st.failed = true;
                    wake = true;
                }
            }
        } else {
            st.outbox.extend_from_slice(&reply);
            wake = true;
        }
    }
    if failed {
        st.failed = true;
        wake = true;
    }
    if !st.inbox.is_empty() && !st.failed {
        drop(st);
        queue.push(c.clone());
    } else {
        st.scheduled = false;
        st.inbox.clear();
        if st.task_waiting {
            wake = true;
        }
        drop(st);
    }
    if wake {
        c.notify.notify_one();
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
                        let conn = Arc::new(Conn {
                            stream: s,
                            peer,
                            state: Mutex::new(ConnState::default()),
                            notify: Notify::new(),
                        });
                        tokio::spawn(serve_conn(conn, ctx.clone(), guard, stop.clone()));
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

/// Write all of `data`, waiting for the socket as needed.
async fn write_all(s: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        s.writable().await?;
        match s.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The task writes what the handler thread could not; false if the
/// connection is dead or failed.
async fn flush_outbox(c: &Conn, stats: &Stats) -> bool {
    loop {
        let out = {
            let mut st = lock(&c.state);
            if st.failed {
                return false;
            }
            if st.outbox.is_empty() {
                st.task_writing = false;
                return true;
            }
            st.task_writing = true;
            std::mem::take(&mut st.outbox)
        };
        if write_all(&c.stream, &out).await.is_err() {
            lock(&c.state).failed = true;
            return false;
        }
        Stats::add(&stats.bytes_out, out.len() as u64);
    }
}

/// Wait (stop, EOF) until the handler has answered everything queued.
async fn drain(c: &Conn, stats: &Stats) {
    loop {
        {
            let mut st = lock(&c.state);
            if st.failed || !st.busy() {
                return;
            }
            st.task_waiting = true;
        }
        c.notify.notified().await;
        if !flush_outbox(c, stats).await {
            return;
        }
    }
}

async fn serve_conn(
    c: Arc<Conn>,
    ctx: Arc<Ctx>,
    _guard: ActiveGuard,
    mut stop: watch::Receiver<bool>,
) {
    let mut dec = Decoder::new(ctx.framing, ctx.limits.max_message);
    let mut out = Vec::new();
    loop {
        if *stop.borrow() {
            drain(&c, &ctx.stats).await;
            return;
        }
        let full = {
            let mut st = lock(&c.state);
            if st.failed {
                return;
            }
            let full = st.inbox_bytes >= INBOX_LIMIT;
            st.task_waiting = full;
            full
        };
        tokio::select! {
            biased;
            _ = stop.changed() => continue,
            _ = c.notify.notified() => {
                if !flush_outbox(&c, &ctx.stats).await {
                    return;
                }
                continue;
            }
            r = readable(&c.stream, ctx.limits.idle_timeout), if !full => match r {
                Ready::Yes => {}
                // A client waiting for a handler's reply is not idle.
                Ready::TimedOut if lock(&c.state).busy() => continue,
                Ready::TimedOut | Ready::Failed => return,
            }
        }
        let n = match read_into(&c.stream, &mut dec) {
            Ok(0) => {
                // EOF, perhaps a half-close: answer what arrived, then close.
                drain(&c, &ctx.stats).await;
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return, // reset
        };
        Stats::add(&ctx.stats.bytes_in, n as u64);
        let mut msgs = Vec::new();
        let mut too_large = false;
        loop {
            match dec.next_message() {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => break,
                Err(_) => {
                    too_large = true; // over max_message
                    break;
                }
            }
        }
        if !msgs.is_empty() {
            match &ctx.queue {
                None => {
                    // Echo: reply from here.
                    for m in &msgs {
                        let _ = encode(ctx.framing, m, &mut out);
                    }
                    if write_all(&c.stream, &out).await.is_err() {
                        return;
                    }
                    Stats::add(&ctx.stats.bytes_out, out.len() as u64);
                    out.clear();
                    if out.capacity() > 1 << 20 {
                        out = Vec::new();
                    }
                }
                Some(q) => {
                    let schedule = {
                        let mut st = lock(&c.state);
                        st.inbox_bytes += msgs.iter().map(Vec::len).sum::<usize>();
                        st.inbox.append(&mut msgs);
                        !std::mem::replace(&mut st.scheduled, true)
                    };
                    if schedule {
                        q.push(c.clone());
                    }
                }
            }
        }
        if too_large {
            // Answer the whole messages that came before, then close.
            drain(&c, &ctx.stats).await;
            return;
        }
    }
}

enum Ready {
    Yes,
    TimedOut,
    Failed,
}

async fn readable(s: &TcpStream, idle: Option<Duration>) -> Ready {
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
