//! A run of the connect-scan engine: the state its worker threads share
//! (the job list, the counter they take jobs from, the cancel flag, the
//! queue of finished jobs) and the handle that starts and stops them.
//!
//! Shape (DESIGN.md section 8, measured): a few long-lived worker threads
//! take jobs from one shared atomic counter; see `worker.rs` for what one
//! worker does with a job. A reactor task per port (tokio) measured
//! 1.0-1.9 s for a full loopback scan against 0.35-0.45 s for this shape,
//! so the engine uses plain threads and poll(2): nearly all the time is
//! kernel work, and the fewer wakeups cross threads, the better.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::probe::limits::{fd_budget, RateLimit};
use crate::probe::types::{Config, Outcome};
use crate::probe::worker::Worker;

/// The per-address jobs of a plan: (target index, address).
pub type Jobs = Arc<Vec<(u32, SocketAddr)>>;

struct Queue {
    items: Vec<(u32, Outcome)>,
    workers_left: usize,
}

/// What the workers of one run share.
pub(super) struct Shared {
    pub(super) jobs: Jobs,
    pub(super) next: AtomicUsize,
    pub(super) cancel: AtomicBool,
    queue: Mutex<Queue>,
    ready: Condvar,
    pub(super) timeout: Option<Duration>,
    pub(super) rate: Option<RateLimit>,
    pub(super) source: Option<SocketAddr>,
}

impl Shared {
    /// Hand a worker's finished jobs to the consumer.
    pub(super) fn push(&self, batch: &mut Vec<(u32, Outcome)>) {
        if batch.is_empty() {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.items.is_empty() {
            std::mem::swap(&mut q.items, batch);
        } else {
            q.items.append(batch);
        }
        drop(q);
        self.ready.notify_one();
    }

    fn worker_done(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.workers_left -= 1;
        drop(q);
        self.ready.notify_all();
    }
}

/// A started run: workers probing in the background.
pub struct Run {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Run {
    /// Start probing every job.
    pub fn start(jobs: Jobs, cfg: &Config) -> Result<Run> {
        let total_jobs = jobs.len();
        let concurrency = cfg.concurrency.max(1).min(fd_budget());
        let cpus = thread::available_parallelism().map_or(2, |n| n.get());
        let workers = cfg
            .workers
            .unwrap_or(cpus)
            .clamp(1, 64)
            .min(concurrency)
            .min(total_jobs.max(1));
        let shared = Arc::new(Shared {
            jobs,
            next: AtomicUsize::new(0),
            cancel: AtomicBool::new(false),
            queue: Mutex::new(Queue {
                items: Vec::new(),
                workers_left: workers,
            }),
            ready: Condvar::new(),
            timeout: cfg.timeout,
            rate: cfg.rate.map(RateLimit::new),
            source: cfg.source,
        });
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            // Split the in-flight cap; the first workers take the remainder.
            let cap = concurrency / workers + usize::from(w < concurrency % workers);
            let sh = shared.clone();
            let h = thread::Builder::new()
                .name("socketkit-probe".into())
                .spawn(move || {
                    Worker::new(&sh, cap).run();
                    sh.worker_done();
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Fewer workers than planned: account for the missing ones.
                    let missing = workers - handles.len();
                    let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
                    q.workers_left -= missing;
                    drop(q);
                    if handles.is_empty() {
                        return Err(Error::io(crate::error::Phase::Connect, None, e));
                    }
                    break;
                }
            }
        }
        Ok(Run { shared, handles })
    }

    /// The next results, waiting at most `wait`. `None` once every result
    /// has been handed out; an empty vector if none came in time.
    pub fn next_batch(&self, wait: Duration) -> Option<Vec<(u32, Outcome)>> {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.items.is_empty() && q.workers_left > 0 {
            q = self
                .shared
                .ready
                .wait_timeout(q, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if !q.items.is_empty() {
            return Some(std::mem::take(&mut q.items));
        }
        if q.workers_left == 0 {
            return None;
        }
        Some(Vec::new())
    }

    /// Ask every worker to stop; they close their sockets and exit within
    /// one worker slice.
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
    }

    /// A handle that cancels this run from anywhere, without a lock.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.shared.clone())
    }

    /// Cancel and wait for the workers (bounded by their slice).
    pub fn stop(mut self) {
        self.cancel();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Cancels a [`Run`] (see [`Run::canceller`]).
#[derive(Clone)]
pub struct Canceller(Arc<Shared>);

impl Canceller {
    pub fn cancel(&self) {
        self.0.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Never block in drop: the workers notice within one slice.
        self.cancel();
    }
}
