//! Handler mode: an accept thread, and one worker thread per connection
//! that runs the handler (what `socketserver.ThreadingTCPServer` does, with
//! limits, a stop that wakes at once, and threads that are joined). A TLS
//! server's handshake runs in the connection's worker thread, before the
//! handler.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use socket2::Socket;

use crate::error::Result;
use crate::tcp::TcpConnection;
use crate::tls::ServerTls;
use crate::wait::{Deadline, NoInterrupt};

use super::listener::{accept, Accepted, StopSignal};
use super::tls_accept::{start_tls, Started};
use super::{spawn, ConnHandler, ConnOutcome, Limits, Stats, ThreadHooks};

/// After the drain deadline and closing every connection, how long handlers
/// get to notice and return before their threads are left to finish alone.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Shared {
    stop: Arc<StopSignal>,
    stats: Arc<Stats>,
    limits: Limits,
    handler: Arc<dyn ConnHandler>,
    hooks: ThreadHooks,
    tls: Option<Arc<ServerTls>>,
    /// Every open connection, so stop can close them.
    conns: Mutex<HashMap<u64, Arc<Socket>>>,
    workers: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    next_id: AtomicU64,
    overflow: Option<Overflow>,
}

/// Connections beyond `threads` at once go to an event loop instead of a
/// thread of their own (the plain echo: see `echo`).
pub struct Overflow {
    pub threads: usize,
    pub to: super::evented::Adopter,
}

pub struct Running {
    acceptor: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Running {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        listener: Arc<Socket>,
        stop: Arc<StopSignal>,
        stats: Arc<Stats>,
        limits: Limits,
        handler: Arc<dyn ConnHandler>,
        hooks: ThreadHooks,
        tls: Option<Arc<ServerTls>>,
        overflow: Option<Overflow>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            stop,
            stats,
            limits,
            handler,
            hooks,
            tls,
            conns: Mutex::new(HashMap::new()),
            workers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            overflow,
        });
        let sh = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("socketkit-accept".into())
            .spawn(move || accept_loop(&listener, &sh))
            .map_err(|e| crate::error::Error::io(crate::error::Phase::Accept, None, e))?;
        Ok(Running { acceptor, shared })
    }

    /// The stop signal is set: join the acceptor, end reading on every
    /// connection, let handlers finish until `deadline`, close what is
    /// left, join the workers.
    pub fn stop(self, deadline: Deadline) {
        let _ = self.acceptor.join();
        let me = std::thread::current().id();
        let sh = &self.shared;
        // Reads see EOF at once, so a handler waiting for its client's next
        // request ends as if the client had left, while one busy with a
        // request can still send its reply.
        shutdown_all(sh, Shutdown::Read);
        wait_workers(sh, me, deadline);
        shutdown_all(sh, Shutdown::Both);
        wait_workers(sh, me, Deadline::after(Some(CLOSE_GRACE)));
        let workers = std::mem::take(&mut *lock(&sh.workers));
        for (id, h) in workers {
            // The caller's own thread (stop from a handler) and handlers
            // stuck in code that ignores a closed connection are left to end
            // by themselves; joining them would hang.
            if id != me && h.is_finished() {
                let _ = h.join();
            }
        }
    }

    /// Close everything, join nothing (see `TcpServerCore::drop`).
    pub fn abandon(self) {
        shutdown_all(&self.shared, Shutdown::Both);
    }
}

fn shutdown_all(sh: &Shared, how: Shutdown) {
    for s in lock(&sh.conns).values() {
        let _ = s.shutdown(how);
    }
}

/// Wait until every worker but `me` has finished, or `deadline`.
fn wait_workers(sh: &Shared, me: ThreadId, deadline: Deadline) {
    loop {
        let busy = lock(&sh.workers)
            .iter()
            .any(|(id, h)| *id != me && !h.is_finished());
        if !busy || deadline.expired() {
            return;
        }
        std::thread::sleep(deadline.slice().min(Duration::from_millis(5)));
    }
}

fn reap(sh: &Shared) {
    let mut w = lock(&sh.workers);
    let mut i = 0;
    while i < w.len() {
        if w[i].1.is_finished() {
            let (_, h) = w.swap_remove(i);
            let _ = h.join();
        } else {
            i += 1;
        }
    }
}

fn accept_loop(listener: &Socket, sh: &Arc<Shared>) {
    loop {
        match accept(listener, &sh.stop, Deadline::NEVER, &NoInterrupt) {
            Ok(Accepted::Conn(s, peer)) => {
                reap(sh);
                serve(sh, s, peer);
            }
            Ok(Accepted::Stopped) => return,
            Ok(Accepted::TimedOut) => {}
            // Out of fds or memory: wait a moment (or for stop) and retry,
            // rather than spin.
            Err(_) => {
                let _ = sh.stop.wait(
                    Deadline::after(Some(Duration::from_millis(100))),
                    &NoInterrupt,
                );
            }
        }
    }
}

/// A TLS server's handshake with a new connection, bounded by
/// `Limits::handshake_timeout()`; true when the handler may run. A failure
/// is counted and reported at DEBUG level, unless stop() caused it or the
/// client left without sending a byte.
fn handshake(sh: &Shared, conn: &TcpConnection, peer: SocketAddr) -> bool {
    let Some(tls) = &sh.tls else {
        return true;
    };
    match start_tls(conn, tls, &sh.limits, &NoInterrupt) {
        Started::Tls => true,
        Started::Left => false,
        Started::Failed(_) if sh.stop.is_set() => false,
        Started::Failed(e) => {
            Stats::add(&sh.stats.tls_failures, 1);
            (sh.hooks.debug)(&format!("TLS handshake with {peer} failed: {e}"));
            false
        }
    }
}

/// The payload bytes of a finished connection from its TCP_INFO. The
/// kernel's counters advance by sequence numbers, and a FIN takes one: a
/// peer's FIN that arrived adds one to `bytes_received`, our FIN once
/// acknowledged adds one to `bytes_acked`. The state says which happened
/// (CLOSE with the fd still held is the end of LAST_ACK: both FINs).
fn payload_bytes(info: &crate::tcp::TcpInfo) -> (u64, u64) {
    // include/net/tcp_states.h
    const FIN_WAIT2: u8 = 5;
    const TIME_WAIT: u8 = 6;
    const CLOSE: u8 = 7;
    const CLOSE_WAIT: u8 = 8;
    const LAST_ACK: u8 = 9;
    const CLOSING: u8 = 11;
    let fin_in = matches!(
        info.state,
        TIME_WAIT | CLOSE | CLOSE_WAIT | LAST_ACK | CLOSING
    );
    let fin_acked = matches!(info.state, FIN_WAIT2 | TIME_WAIT | CLOSE);
    (
        info.bytes_received.saturating_sub(u64::from(fin_in)),
        info.bytes_acked.saturating_sub(u64::from(fin_acked)),
    )
}

fn serve(sh: &Arc<Shared>, s: Socket, peer: SocketAddr) {
    // Over the limit: dropping the socket closes it at once.
    let Some(guard) = sh.stats.admit(sh.limits.max_connections) else {
        return;
    };
    if let Some(o) = &sh.overflow {
        if lock(&sh.conns).len() >= o.threads {
            return o.to.adopt(s, peer, guard);
        }
    }
    let Ok(conn) = TcpConnection::new(s, sh.limits.idle_timeout) else {
        return;
    };
    let Ok(sock) = conn.socket() else { return };
    let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
    lock(&sh.conns).insert(id, sock.clone());
    let sh2 = sh.clone();
    let body = move || {
        // The handshake runs here, not in the accept thread: a slow or
        // silent client holds up only its own worker. stop() wakes it by
        // shutting the socket down.
        if handshake(&sh2, &conn, peer) {
            let outcome = sh2.handler.handle(conn, peer, &sh2.stop);
            if outcome == ConnOutcome::Failed {
                Stats::add(&sh2.stats.handler_errors, 1);
            }
        }
        // The handler's socket calls are the user's; the kernel counted the
        // bytes (TCP_INFO), read them once at the end.
        if !sh2.handler.counts_bytes() {
            if let Ok(info) = crate::tcp::stream::socket_tcp_info(&sock) {
                let (bytes_in, bytes_out) = payload_bytes(&info);
                Stats::add(&sh2.stats.bytes_in, bytes_in);
                Stats::add(&sh2.stats.bytes_out, bytes_out);
            }
        }
        let _ = sock.shutdown(Shutdown::Both);
        lock(&sh2.conns).remove(&id);
        drop(sock);
        drop(guard);
    };
    // Register under the lock so stop() never misses a worker.
    let mut workers = lock(&sh.workers);
    match spawn("socketkit-handler", &sh.hooks, body) {
        Ok(h) => {
            let tid = h.thread().id();
            workers.push((tid, h));
        }
        Err(_) => {
            lock(&sh.conns).remove(&id);
        }
    }
}
