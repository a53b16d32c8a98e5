//! The connect-scan engine behind `check`, `check_many`, `scan` and their
//! iterators.
//!
//! Shape (DESIGN.md section 8, measured): a few long-lived worker threads
//! take jobs from one shared atomic counter. Each worker keeps a spare
//! nonblocking socket per address family. After `connect()` answers
//! EINPROGRESS it calls `connect()` again at once: on loopback and on a fast
//! LAN the handshake has usually finished by then, so the answer is 0 /
//! EISCONN (open) or ECONNREFUSED (closed) without any reactor round trip.
//! Only EALREADY (still in flight) puts the socket in the worker's poll set
//! with its deadline. After a refusal Linux lets the same socket connect
//! again, which saves a `socket()` + `close()` per closed port.
//!
//! A reactor task per port (tokio) measured 1.0-1.9 s for a full loopback
//! scan against 0.35-0.45 s for this shape, so the engine uses plain threads
//! and poll(2): nearly all the time is kernel work, and the fewer wakeups
//! cross threads, the better.
//!
//! States follow nmap's connect scan: `open` (handshake completed),
//! `closed` (RST / ECONNREFUSED, and self-connections), `filtered` (no answer
//! before the timeout, or an ICMP unreachable), `error` (anything else).
//! EMFILE / ENFILE / ENOBUFS / EADDRNOTAVAIL are "retry later", never a
//! state. Results are streamed to the consumer in batches; `Combiner` folds
//! the per-address results of a target into one result per target.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::error::{Error, Result};
use crate::wait::{poll_many, Interrupt, SLICE};

/// How long a worker sleeps at most before it looks at the cancel flag.
const WORKER_SLICE: Duration = Duration::from_millis(20);
/// A worker hands its results over once it has this many.
const BATCH: usize = 512;
/// How often one job may hit "retry later" errors before it is reported as
/// an error (with the reason): at the capped delay, about 30 s of waiting.
const MAX_RETRIES: u32 = 300;
/// The first pause before a job that hit EMFILE and friends is tried again;
/// it doubles per retry up to `MAX_RETRY_DELAY`.
const RETRY_DELAY: Duration = Duration::from_millis(5);
const MAX_RETRY_DELAY: Duration = Duration::from_millis(100);

fn retry_delay(tries: u32) -> Duration {
    RETRY_DELAY
        .saturating_mul(1u32 << tries.min(10))
        .min(MAX_RETRY_DELAY)
}
/// File descriptors left for the rest of the process when capping concurrency.
const FD_RESERVE: u64 = 64;

/// The state of one probed port, with nmap's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Closed,
    Filtered,
    Error,
    /// UDP only: no answer and no ICMP unreachable.
    OpenFiltered,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Closed => "closed",
            State::Filtered => "filtered",
            State::Error => "error",
            State::OpenFiltered => "open|filtered",
        }
    }
}

/// The result of one probe of one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: State,
    /// Time from `connect()` to the answer (open or closed).
    pub rtt: Option<Duration>,
    /// Why, for errors and for filtered results an ICMP error explains.
    pub error: Option<String>,
}

impl Outcome {
    fn new(state: State, rtt: Option<Duration>, error: Option<String>) -> Self {
        Outcome { state, rtt, error }
    }
}

/// A host as the user named it and the addresses it resolved to (or why
/// it did not resolve).
#[derive(Debug, Clone)]
pub struct HostEntry {
    pub label: String,
    pub addrs: std::result::Result<Vec<IpAddr>, String>,
}

/// What to probe: hosts, and (host, port) targets in input order. A target
/// whose host has several addresses is probed on each; it is open if any
/// address accepts.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub hosts: Vec<HostEntry>,
    pub targets: Vec<(u32, u16)>,
}

impl Plan {
    /// The per-address jobs: (target index, address).
    fn jobs(&self) -> Vec<(u32, SocketAddr)> {
        let mut jobs = Vec::with_capacity(self.targets.len());
        for (i, &(h, port)) in self.targets.iter().enumerate() {
            if let Ok(addrs) = &self.hosts[h as usize].addrs {
                for ip in addrs {
                    jobs.push((i as u32, SocketAddr::new(*ip, port)));
                }
            }
        }
        jobs
    }
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-connect timeout; `None` leaves it to the kernel (~2 min).
    pub timeout: Option<Duration>,
    /// Most connects in flight at once.
    pub concurrency: usize,
    /// Most new connects per second.
    pub rate: Option<f64>,
    /// Worker threads; `None` = one per CPU.
    pub workers: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Some(Duration::from_secs(1)),
            concurrency: 512,
            rate: None,
            workers: None,
        }
    }
}

/// nmap's --max-rate: connects are spaced at least 1/rate apart, shared
/// by every worker through one atomic "next free slot" time.
struct RateLimit {
    start: Instant,
    interval_ns: u64,
    next_ns: AtomicU64,
}

impl RateLimit {
    fn new(rate: f64) -> Self {
        RateLimit {
            start: Instant::now(),
            interval_ns: (1e9 / rate).max(1.0) as u64,
            next_ns: AtomicU64::new(0),
        }
    }

    /// Take a slot now, or say how long until the next one frees.
    fn acquire(&self) -> std::result::Result<(), Duration> {
        let now = self.start.elapsed().as_nanos() as u64;
        let mut cur = self.next_ns.load(Ordering::Relaxed);
        loop {
            if cur > now {
                return Err(Duration::from_nanos(cur - now));
            }
            let next = now.max(cur) + self.interval_ns;
            match self
                .next_ns
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(c) => cur = c,
            }
        }
    }
}

struct Queue {
    items: Vec<(u32, Outcome)>,
    workers_left: usize,
}

struct Shared {
    jobs: Vec<(u32, SocketAddr)>,
    next: AtomicUsize,
    cancel: AtomicBool,
    queue: Mutex<Queue>,
    ready: Condvar,
    timeout: Option<Duration>,
    rate: Option<RateLimit>,
}

impl Shared {
    fn push(&self, batch: &mut Vec<(u32, Outcome)>) {
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
    pub total_jobs: usize,
}

/// Raise the soft RLIMIT_NOFILE to the hard limit once, and return the
/// number of descriptors a run may use.
pub fn fd_budget() -> usize {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
        unsafe {
            let mut rl: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: rl.rlim_max,
                    rlim_max: rl.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &want);
            }
        }
    });
    // SAFETY: as above.
    let soft = unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            1024
        } else {
            rl.rlim_cur as u64
        }
    };
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(64);
    let reserve = FD_RESERVE.min(soft / 4);
    soft.saturating_sub(open + reserve).max(1) as usize
}

impl Run {
    /// Start probing every address of every target of `plan`.
    pub fn start(plan: &Plan, cfg: &Config) -> Result<Run> {
        let jobs = plan.jobs();
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
        Ok(Run {
            shared,
            handles,
            total_jobs,
        })
    }

    /// The next results, waiting at most `wait`. `Ok(None)` once every
    /// result has been handed out; an empty vector if none came in time.
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

struct Flight {
    job: u32,
    sock: Socket,
    start: Instant,
    deadline: Option<Instant>,
}

enum Started {
    Done(Outcome),
    InFlight(Socket, Instant),
    RetryLater(io::Error),
}

struct Worker<'a> {
    sh: &'a Shared,
    cap: usize,
    limit: usize,
    spare4: Option<Socket>,
    spare6: Option<Socket>,
    flights: Vec<Flight>,
    retry: VecDeque<(u32, u32, Instant)>,
    out: Vec<(u32, Outcome)>,
    exhausted: bool,
}

impl<'a> Worker<'a> {
    fn new(sh: &'a Shared, cap: usize) -> Self {
        Worker {
            sh,
            cap: cap.max(1),
            limit: cap.max(1),
            spare4: None,
            spare6: None,
            flights: Vec::new(),
            retry: VecDeque::new(),
            out: Vec::with_capacity(BATCH),
            exhausted: false,
        }
    }

    fn finish(&mut self, job: u32, o: Outcome) {
        self.out.push((job, o));
        if self.out.len() >= BATCH {
            self.sh.push(&mut self.out);
        }
    }

    /// The next job: a due retry first, then the shared counter.
    fn take_job(&mut self, now: Instant) -> Option<(u32, u32)> {
        if let Some(&(job, n, due)) = self.retry.front() {
            if due <= now {
                self.retry.pop_front();
                return Some((job, n));
            }
        }
        if self.exhausted {
            return None;
        }
        let i = self.sh.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.sh.jobs.len() {
            self.exhausted = true;
            return None;
        }
        Some((i as u32, 0))
    }

    fn has_job(&self, now: Instant) -> bool {
        !self.exhausted || self.retry.front().is_some_and(|r| r.2 <= now)
    }

    fn run(&mut self) {
        loop {
            if self.sh.cancel.load(Ordering::Relaxed) {
                return; // sockets close as the worker drops
            }
            let mut rate_wait: Option<Duration> = None;
            let mut now = Instant::now();
            while self.flights.len() < self.limit && self.has_job(now) {
                if let Some(rl) = &self.sh.rate {
                    if let Err(wait) = rl.acquire() {
                        rate_wait = Some(wait);
                        break;
                    }
                }
                let Some((job, tries)) = self.take_job(now) else {
                    break;
                };
                let addr = self.sh.jobs[job as usize].1;
                match self.start(addr) {
                    Started::Done(o) => self.finish(job, o),
                    Started::InFlight(sock, start) => self.flights.push(Flight {
                        job,
                        sock,
                        start,
                        deadline: self.sh.timeout.map(|t| start + t),
                    }),
                    Started::RetryLater(e) => {
                        if tries >= MAX_RETRIES {
                            self.finish(
                                job,
                                Outcome::new(State::Error, None, Some(crate::probe::os_text(&e))),
                            );
                        } else {
                            // Out of descriptors or ports: fewer at once, later.
                            self.limit = self.flights.len().max(1);
                            self.retry.push_back((
                                job,
                                tries + 1,
                                Instant::now() + retry_delay(tries),
                            ));
                        }
                    }
                }
                now = Instant::now();
            }
            if self.flights.is_empty() && self.exhausted && self.retry.is_empty() {
                break;
            }
            // How long to wait for in-flight connects before starting more.
            now = Instant::now();
            let mut wait = WORKER_SLICE;
            if self.flights.len() < self.limit && self.has_job(now) && rate_wait.is_none() {
                wait = Duration::ZERO;
            }
            if let Some(r) = rate_wait {
                wait = wait.min(r);
            }
            if let Some(&(_, _, due)) = self.retry.front() {
                wait = wait.min(due.saturating_duration_since(now));
            }
            for f in &self.flights {
                if let Some(d) = f.deadline {
                    wait = wait.min(d.saturating_duration_since(now));
                }
            }
            if !wait.is_zero() {
                // About to sleep: let the consumer see what is done.
                self.sh.push(&mut self.out);
            }
            if self.flights.is_empty() {
                if !wait.is_zero() {
                    thread::sleep(wait);
                }
            } else {
                self.poll_flights(wait);
            }
            // A job that keeps failing with EMFILE lowered the limit; win it back.
            if self.limit < self.cap && self.retry.is_empty() {
                self.limit = (self.limit * 2).min(self.cap);
            }
        }
        self.sh.push(&mut self.out);
    }

    fn new_socket(addr: &SocketAddr) -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), None)?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    fn spare(&mut self, addr: &SocketAddr) -> &mut Option<Socket> {
        if addr.is_ipv4() {
            &mut self.spare4
        } else {
            &mut self.spare6
        }
    }

    /// Keep a refused socket for the next connect of its family (Linux
    /// allows connecting it again); elsewhere let it close.
    fn keep(&mut self, addr: &SocketAddr, sock: Socket) {
        if cfg!(target_os = "linux") {
            let slot = self.spare(addr);
            if slot.is_none() {
                *slot = Some(sock);
            }
        }
    }

    fn start(&mut self, addr: SocketAddr) -> Started {
        let reused = self.spare(&addr).take();
        let was_reused = reused.is_some();
        let sock = match reused {
            Some(s) => s,
            None => match Self::new_socket(&addr) {
                Ok(s) => s,
                Err(e) if retry_later(&e) => return Started::RetryLater(e),
                Err(e) => return Started::Done(error_outcome(e)),
            },
        };
        let target = SockAddr::from(addr);
        let t0 = Instant::now();
        let first = sock.connect(&target);
        let result = match first {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                // The handshake on loopback (and often on a LAN) is done by
                // now: ask again instead of waiting for the reactor.
                match sock.connect(&target) {
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EALREADY) | Some(libc::EINPROGRESS)
                        ) =>
                    {
                        return Started::InFlight(sock, t0)
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EISCONN) => Ok(()),
                    r => r,
                }
            }
            r => r,
        };
        let rtt = t0.elapsed();
        match result {
            Ok(()) => Started::Done(opened(&sock, &addr, rtt)),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                self.keep(&addr, sock);
                Started::Done(Outcome::new(State::Closed, Some(rtt), None))
            }
            Err(e) if retry_later(&e) => Started::RetryLater(e),
            Err(_) if was_reused => {
                // A reused socket in an unexpected state: try a fresh one.
                drop(sock);
                self.start(addr)
            }
            Err(e) => Started::Done(error_outcome(e)),
        }
    }

    fn poll_flights(&mut self, wait: Duration) {
        let (n, pfds) = poll_many(
            self.flights.iter().map(|f| f.sock.as_raw_fd()),
            libc::POLLOUT,
            wait,
        );
        let now = Instant::now();
        // Walk backwards so swap_remove keeps the unvisited indices valid.
        for i in (0..pfds.len()).rev() {
            if n > 0 && pfds[i].revents != 0 {
                let f = self.flights.swap_remove(i);
                let addr = self.sh.jobs[f.job as usize].1;
                let rtt = now.saturating_duration_since(f.start);
                let o = match f.sock.take_error() {
                    Ok(None) => {
                        if f.sock.peer_addr().is_ok() {
                            opened(&f.sock, &addr, rtt)
                        } else {
                            Outcome::new(State::Closed, Some(rtt), None)
                        }
                    }
                    Ok(Some(e)) | Err(e) => {
                        if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                            self.keep(&addr, f.sock);
                            Outcome::new(State::Closed, Some(rtt), None)
                        } else if retry_later(&e) {
                            self.retry
                                .push_back((f.job, 1, Instant::now() + RETRY_DELAY));
                            continue;
                        } else {
                            error_outcome(e)
                        }
                    }
                };
                self.finish(f.job, o);
            } else if self.flights[i].deadline.is_some_and(|d| d <= now) {
                let f = self.flights.swap_remove(i);
                self.finish(f.job, Outcome::new(State::Filtered, None, None));
            }
        }
    }
}

/// A completed handshake: open, unless it connected to itself (a loopback
/// target port inside the ephemeral range can be picked as the source port).
fn opened(sock: &Socket, addr: &SocketAddr, rtt: Duration) -> Outcome {
    let own = sock.local_addr().ok().and_then(|a| a.as_socket());
    if own == Some(*addr) {
        return Outcome::new(
            State::Closed,
            Some(rtt),
            Some("self-connection (nothing listens)".into()),
        );
    }
    Outcome::new(State::Open, Some(rtt.max(Duration::from_nanos(1))), None)
}

/// Errors that mean "not now", never a port state (DESIGN.md section 8).
fn retry_later(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE)
            | Some(libc::ENFILE)
            | Some(libc::ENOBUFS)
            | Some(libc::ENOMEM)
            | Some(libc::EAGAIN)
            | Some(libc::EADDRNOTAVAIL)
            | Some(libc::EINTR)
    )
}

/// An ICMP unreachable is nmap's "filtered"; the rest is an error.
fn error_outcome(e: io::Error) -> Outcome {
    let state = match e.raw_os_error() {
        Some(libc::ETIMEDOUT)
        | Some(libc::EHOSTUNREACH)
        | Some(libc::ENETUNREACH)
        | Some(libc::EHOSTDOWN)
        | Some(libc::EACCES)
        | Some(libc::EPERM) => State::Filtered,
        _ => State::Error,
    };
    Outcome::new(state, None, Some(crate::probe::os_text(&e)))
}

/// Folds per-address outcomes into one result per target: open as soon as
/// any address accepts, otherwise the outcome of the first address.
pub struct Combiner {
    /// Per target: addresses not yet answered, or `usize::MAX` once emitted.
    pending: Vec<u32>,
    /// Per target: (address position, outcome) of the best so far.
    best: Vec<Option<(u32, SocketAddr, Outcome)>>,
    /// Per job: its position among its target's addresses.
    position: Vec<u32>,
    job_addr: Vec<(u32, SocketAddr)>,
    pub done: usize,
    pub total: usize,
}

/// One finished target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetResult {
    pub target: usize,
    pub address: Option<SocketAddr>,
    pub outcome: Outcome,
}

const EMITTED: u32 = u32::MAX;

impl Combiner {
    /// Also returns the targets that are finished before any probe (their
    /// host did not resolve).
    pub fn new(plan: &Plan) -> (Combiner, Vec<TargetResult>) {
        let jobs = plan.jobs();
        let n = plan.targets.len();
        let mut pending = vec![0u32; n];
        let mut position = Vec::with_capacity(jobs.len());
        for &(t, _) in &jobs {
            position.push(pending[t as usize]);
            pending[t as usize] += 1;
        }
        let mut early = Vec::new();
        for (i, &(h, _)) in plan.targets.iter().enumerate() {
            if pending[i] == 0 {
                let why = match &plan.hosts[h as usize].addrs {
                    Err(e) => e.clone(),
                    Ok(_) => "no address".into(),
                };
                pending[i] = EMITTED;
                early.push(TargetResult {
                    target: i,
                    address: None,
                    outcome: Outcome::new(State::Error, None, Some(why)),
                });
            }
        }
        let c = Combiner {
            pending,
            best: vec![None; n],
            position,
            job_addr: jobs,
            done: early.len(),
            total: n,
        };
        (c, early)
    }

    /// Take one job's outcome; returns the target's result once final.
    pub fn add(&mut self, job: u32, o: Outcome) -> Option<TargetResult> {
        let (t, addr) = self.job_addr[job as usize];
        let ti = t as usize;
        if self.pending[ti] == EMITTED {
            return None;
        }
        self.pending[ti] -= 1;
        let pos = self.position[job as usize];
        if o.state == State::Open {
            self.pending[ti] = EMITTED;
            self.best[ti] = None;
            self.done += 1;
            return Some(TargetResult {
                target: ti,
                address: Some(addr),
                outcome: o,
            });
        }
        let better = match &self.best[ti] {
            None => true,
            Some((p, _, _)) => pos < *p,
        };
        if better {
            self.best[ti] = Some((pos, addr, o));
        }
        if self.pending[ti] == 0 {
            self.pending[ti] = EMITTED;
            self.done += 1;
            let (_, addr, o) = self.best[ti].take()?;
            return Some(TargetResult {
                target: ti,
                address: Some(addr),
                outcome: o,
            });
        }
        None
    }
}

/// Run `plan` to the end in the calling thread's view: results in target
/// order. `progress(done, total)` is called at most every 100 ms and once
/// at the end; `intr` between waits (Ctrl-C cancels every worker).
pub fn run_all(
    plan: &Plan,
    cfg: &Config,
    intr: &dyn Interrupt,
    progress: &mut dyn FnMut(usize, usize) -> Result<()>,
) -> Result<Vec<TargetResult>> {
    let (mut comb, early) = Combiner::new(plan);
    let mut results: Vec<Option<TargetResult>> = vec![None; plan.targets.len()];
    for r in early {
        let t = r.target;
        results[t] = Some(r);
    }
    let run = Run::start(plan, cfg)?;
    let mut last_check = Instant::now();
    let mut last_progress = Instant::now();
    progress(comb.done, comb.total).inspect_err(|_| run.cancel())?;
    loop {
        let batch = run.next_batch(SLICE / 2);
        let Some(batch) = batch else { break };
        for (job, o) in batch {
            if let Some(r) = comb.add(job, o) {
                let t = r.target;
                results[t] = Some(r);
            }
        }
        let now = Instant::now();
        if now.duration_since(last_check) >= SLICE / 2 {
            last_check = now;
            if let Err(e) = intr.check() {
                run.stop();
                return Err(e);
            }
        }
        if now.duration_since(last_progress) >= SLICE && comb.done < comb.total {
            last_progress = now;
            if let Err(e) = progress(comb.done, comb.total) {
                run.stop();
                return Err(e);
            }
        }
    }
    progress(comb.done, comb.total)?;
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or(TargetResult {
                target: i,
                address: None,
                outcome: Outcome::new(State::Error, None, Some("not probed".into())),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::NoInterrupt;
    use std::net::TcpListener;

    fn plan_for(ip: &str, ports: &[u16]) -> Plan {
        Plan {
            hosts: vec![HostEntry {
                label: ip.into(),
                addrs: Ok(vec![ip.parse().unwrap()]),
            }],
            targets: ports.iter().map(|&p| (0, p)).collect(),
        }
    }

    fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn open_and_closed_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = closed_port();
        let plan = plan_for("127.0.0.1", &[closed, open, closed]);
        let r = run_all(&plan, &Config::default(), &NoInterrupt, &mut |_, _| Ok(())).unwrap();
        let states: Vec<State> = r.iter().map(|x| x.outcome.state).collect();
        assert_eq!(states, [State::Closed, State::Open, State::Closed]);
        assert!(r[1].outcome.rtt.unwrap() > Duration::ZERO);
        assert_eq!(
            r[1].address,
            Some(SocketAddr::new("127.0.0.1".parse().unwrap(), open))
        );
    }

    #[test]
    fn many_ports_with_socket_reuse_and_small_concurrency() {
        let listeners: Vec<TcpListener> = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let open: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let lo = *open.iter().min().unwrap();
        let ports: Vec<u16> = (lo.saturating_sub(300).max(1)..=lo.saturating_add(300)).collect();
        for conc in [1, 3, 1024] {
            let cfg = Config {
                concurrency: conc,
                ..Config::default()
            };
            let plan = plan_for("127.0.0.1", &ports);
            let mut calls = 0;
            let r = run_all(&plan, &cfg, &NoInterrupt, &mut |d, t| {
                calls += 1;
                assert!(d <= t);
                Ok(())
            })
            .unwrap();
            assert!(calls >= 2);
            for (i, x) in r.iter().enumerate() {
                let want = open.contains(&ports[i]);
                assert_eq!(x.outcome.state == State::Open, want, "port {}", ports[i]);
            }
        }
    }

    #[test]
    fn v6_loopback_and_multi_address_targets() {
        let Ok(l6) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this host
        };
        let port = l6.local_addr().unwrap().port();
        let plan = Plan {
            hosts: vec![HostEntry {
                label: "both".into(),
                addrs: Ok(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]),
            }],
            targets: vec![(0, port)],
        };
        let r = run_all(&plan, &Config::default(), &NoInterrupt, &mut |_, _| Ok(())).unwrap();
        assert_eq!(r[0].outcome.state, State::Open);
        assert!(r[0].address.unwrap().is_ipv6());
    }

    #[test]
    fn unresolved_hosts_are_errors_in_place() {
        let plan = Plan {
            hosts: vec![
                HostEntry {
                    label: "bad".into(),
                    addrs: Err("Name or service not known".into()),
                },
                HostEntry {
                    label: "127.0.0.1".into(),
                    addrs: Ok(vec!["127.0.0.1".parse().unwrap()]),
                },
            ],
            targets: vec![(0, 80), (1, closed_port())],
        };
        let r = run_all(&plan, &Config::default(), &NoInterrupt, &mut |_, _| Ok(())).unwrap();
        assert_eq!(r[0].outcome.state, State::Error);
        assert_eq!(r[1].outcome.state, State::Closed);
    }

    #[test]
    fn rate_limit_spaces_connects() {
        let plan = plan_for("127.0.0.1", &[closed_port(); 1]);
        let ports: Vec<u16> = (0..6).map(|_| closed_port()).collect();
        let plan2 = plan_for("127.0.0.1", &ports);
        let cfg = Config {
            rate: Some(20.0),
            ..Config::default()
        };
        let t = Instant::now();
        run_all(&plan, &cfg, &NoInterrupt, &mut |_, _| Ok(())).unwrap();
        run_all(&plan2, &cfg, &NoInterrupt, &mut |_, _| Ok(())).unwrap();
        // 6 connects at 20/s need at least 5 gaps of 50 ms.
        assert!(
            t.elapsed() >= Duration::from_millis(240),
            "{:?}",
            t.elapsed()
        );
    }

    struct After(Instant);
    impl Interrupt for After {
        fn check(&self) -> Result<()> {
            if Instant::now() >= self.0 {
                Err(Error::Interrupted)
            } else {
                Ok(())
            }
        }
    }

    /// A loopback port whose accept queue is full: the kernel drops new
    /// SYNs, so connects hang until their timeout (looks filtered).
    pub(crate) fn full_listener() -> (Socket, Vec<std::net::TcpStream>, u16) {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        l.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
        l.listen(0).unwrap();
        let port = l.local_addr().unwrap().as_socket().unwrap().port();
        let mut fillers = Vec::new();
        for _ in 0..2 {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = s.connect(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], port))));
            fillers.push(std::net::TcpStream::from(s));
        }
        thread::sleep(Duration::from_millis(50));
        (l, fillers, port)
    }

    #[test]
    fn full_backlog_is_filtered() {
        let (_l, _f, port) = full_listener();
        let plan = plan_for("127.0.0.1", &[port]);
        let cfg = Config {
            timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        let r = run_all(&plan, &cfg, &NoInterrupt, &mut |_, _| Ok(())).unwrap();
        assert_eq!(r[0].outcome.state, State::Filtered);
    }

    #[test]
    fn interrupt_stops_a_slow_run() {
        let (_l, _f, port) = full_listener();
        let plan = plan_for("127.0.0.1", &[port; 200]);
        let cfg = Config {
            timeout: Some(Duration::from_secs(30)),
            concurrency: 2,
            ..Config::default()
        };
        let t = Instant::now();
        let r = run_all(
            &plan,
            &cfg,
            &After(Instant::now() + Duration::from_millis(150)),
            &mut |_, _| Ok(()),
        );
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn rate_limit_acquire() {
        let rl = RateLimit::new(1000.0);
        assert!(rl.acquire().is_ok());
        assert!(rl.acquire().is_err());
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use crate::wait::NoInterrupt;

    /// `cargo test --release -- --ignored --nocapture full_scan`: the time of a
    /// full loopback scan (a measurement, not an assertion).
    #[test]
    #[ignore]
    fn full_scan() {
        for workers in [1usize, 2, 3, 4] {
            let plan = Plan {
                hosts: vec![HostEntry {
                    label: "127.0.0.1".into(),
                    addrs: Ok(vec!["127.0.0.1".parse().unwrap()]),
                }],
                targets: (1..=65535u16).map(|p| (0, p)).collect(),
            };
            let cfg = Config {
                timeout: Some(Duration::from_millis(500)),
                concurrency: 1024,
                workers: Some(workers),
                ..Config::default()
            };
            let t = Instant::now();
            let r = run_all(&plan, &cfg, &NoInterrupt, &mut |_, _| Ok(())).unwrap();
            let open = r.iter().filter(|x| x.outcome.state == State::Open).count();
            println!("workers={workers}: {:?}, open={open}", t.elapsed());
        }
    }
}

#[cfg(test)]
mod self_connect {
    use super::*;

    #[test]
    fn a_self_connection_counts_as_closed() {
        // Bind to a port and connect to that same address: TCP simultaneous
        // open connects the socket to itself, as a scan can by accident.
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap();
        let me = s.local_addr().unwrap().as_socket().unwrap();
        s.connect(&SockAddr::from(me)).unwrap();
        let o = opened(&s, &me, Duration::from_micros(5));
        assert_eq!(o.state, State::Closed);
        assert!(o.error.unwrap().contains("self-connection"));
    }
}
