//! The async core behind `socketkit.aio`: one tokio runtime for the
//! process, an async Happy Eyeballs connect under one deadline, and a TCP
//! stream and a UDP socket whose reads and writes are tokio futures.
//!
//! Why a runtime of our own and not a thread per operation: the target of
//! issue 12 (1,000 concurrent request/response clients in one event loop,
//! faster than asyncio streams and uvloop) leaves no room for a blocking
//! thread per in-flight read, and a cancelled awaitable must stop the work:
//! dropping a tokio future drops its socket, which closes the fd at once.
//! The binding layer (`py/aio.rs`) hands each future's result to the Python
//! event loop. `AsyncTcpClient` reads on the loop's own thread instead
//! (`py/aio_reader.rs`, with [`tcp::AsyncConn::fill_now`] and
//! [`tcp::AsyncConn::answer`]): measured faster than any hop to a
//! runtime thread and back.
//!
//! Fork: the runtime's threads do not exist in a child process. A
//! `pthread_atfork` handler counts forks ([`forks`]); [`handle`] sees the
//! count change and builds a fresh runtime in the child (the parent's is
//! leaked there, never shut down: its threads are gone and waiting on
//! them would hang), so a forked child can use `socketkit.aio` again;
//! objects made before the fork belong to the parent.

pub mod connect;
pub mod outbox;
pub mod tcp;
pub mod tls;
pub mod udp;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::error::{Error, Phase, Result};

/// Idle blocking-pool threads (name resolution) end this long after their
/// last job, so a finished program is not left with a pool of sleepers.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(1);

struct Rt {
    forks: usize,
    rt: &'static Runtime,
}

static FORKS: AtomicUsize = AtomicUsize::new(0);
static WATCH: Once = Once::new();

extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// How many forks this process descends from (counted from the first aio
/// use): what was built under another count belongs to an ancestor.
pub fn forks() -> usize {
    WATCH.call_once(|| {
        // SAFETY: registers a plain function that only bumps an atomic,
        // which is async-signal-safe as a child handler must be.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
    FORKS.load(Ordering::Relaxed)
}

static RUNTIME: Mutex<Option<Rt>> = Mutex::new(None);

/// The process's aio runtime, built on first use: a multi-thread runtime
/// with one worker per two CPUs (at least 1, at most 4;
/// `SOCKETKIT_AIO_THREADS` overrides). On 2 cores one worker beat two for
/// 1,000 request/response clients (40k vs 22k requests/s in one run):
/// the event loop's own thread needs the other core. It lives until the process ends, so
/// no call ever waits for its shutdown (a glibc lookup thread can take 10 s:
/// DESIGN.md section 8).
pub fn handle() -> Result<Handle> {
    Ok(runtime()?.handle().clone())
}

/// The runtime itself (see [`handle`]).
pub fn runtime() -> Result<&'static Runtime> {
    let mut g = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let forks = forks();
    if let Some(r) = g.as_ref() {
        if r.forks == forks {
            return Ok(r.rt);
        }
    }
    let threads = std::env::var("SOCKETKIT_AIO_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()) / 2)
        .clamp(1, 4);
    let rt = Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("socketkit-aio")
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io(Phase::Connect, None, e))?;
    // Leaked on purpose: it lives for the process (and, after a fork, the
    // parent's copy must never be dropped in the child).
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *g = Some(Rt { forks, rt });
    Ok(rt)
}

/// Run `fut` under `timeout` (none: wait forever); a timeout is
/// `Error::Timeout` in `phase`, as the blocking calls raise.
pub async fn within<T>(
    timeout: Option<Duration>,
    phase: Phase,
    peer: Option<std::net::SocketAddr>,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match timeout {
        None => fut.await,
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::timeout(phase, peer.map(|p| p.to_string()))),
        },
    }
}
