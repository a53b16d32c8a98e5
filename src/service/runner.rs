//! Service checks of many targets: a bounded pool of threads, each doing
//! connect + optional TLS / STARTTLS + dialogue for one target at a time
//! under the per-target timeout, results streamed as they finish.
//!
//! The connect-scan engine (`probe/run.rs`) stays the path of plain port
//! checks: a dialogue holds its connection for round trips, which the
//! engine's one-poll-per-connect shape is not built for, and a pool of
//! `concurrency` threads is what a few hundred service checks need.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::addr::HostPort;
use crate::error::{Error, Result};
use crate::options::SocketOptions;
use crate::probe::banner::QUIET;
use crate::probe::classify::{failed, opened, silent};
use crate::probe::{Cancel, Outcome, Plan, State, Timings};
use crate::service::services::service_steps;
use crate::service::starttls::{negotiate, StartTlsProto};
use crate::service::steps::{run_steps, Captures, Step, StepFailure, TlsSetup};
use crate::tcp::connect::connect_addrs;
use crate::tcp::TcpConnection;
use crate::tls::{ClientTls, TlsInfo};
use crate::wait::{Deadline, Interrupt, SLICE};

/// The steps of a check: given, or a named service's (built per host, as
/// HTTP's `Host` header needs).
#[derive(Debug, Clone)]
pub enum Steps {
    Given(Vec<Step>),
    Service(String),
}

/// What to do with each target after the connect.
#[derive(Clone)]
pub struct ServiceSpec {
    pub steps: Steps,
    /// TLS settings: for the handshake right after the connect (`tls_first`)
    /// or for the STARTTLS upgrade.
    pub tls: Option<Arc<ClientTls>>,
    pub tls_first: bool,
    pub starttls: Option<StartTlsProto>,
    pub source: Option<SocketAddr>,
    pub timeout: Option<Duration>,
    /// After the steps, read what the peer says next, up to this many
    /// bytes (`banner(steps=...)`).
    pub banner: Option<usize>,
}

/// One finished service check.
#[derive(Debug, Clone)]
pub struct ServiceResult {
    pub target: usize,
    pub address: Option<SocketAddr>,
    pub outcome: Outcome,
    pub timings: Timings,
    pub captures: Option<Captures>,
    pub failed: Option<StepFailure>,
    pub tls: Option<TlsInfo>,
    pub banner: Option<Vec<u8>>,
}

impl ServiceResult {
    /// The result of target `t` when the run ended before checking it.
    pub fn not_checked(t: usize) -> ServiceResult {
        ServiceResult {
            target: t,
            address: None,
            outcome: Outcome::new(State::Error, None, Some("not checked".into())),
            timings: Timings::default(),
            captures: None,
            failed: None,
            tls: None,
            banner: None,
        }
    }
}

/// What a failed connect says about the target, in the probes' states.
fn connect_failure(e: &Error) -> Outcome {
    match e {
        Error::Connect { attempts, .. } => match attempts.first() {
            Some(a) if a.error.kind() == std::io::ErrorKind::TimedOut => silent(),
            Some(a) => failed(&a.error, Duration::ZERO),
            None => Outcome::new(State::Error, None, Some(e.to_string())),
        },
        Error::Timeout { .. } => silent(),
        Error::Io { source, .. } => failed(source, Duration::ZERO),
        other => Outcome::new(State::Error, None, Some(other.to_string())),
    }
}

/// Check target `t` of `plan`. `Err` only when `intr` stops it.
pub fn check_one(
    plan: &Plan,
    t: usize,
    spec: &ServiceSpec,
    intr: &dyn Interrupt,
) -> Result<ServiceResult> {
    let (h, port) = plan.targets[t];
    let host = &plan.hosts[h as usize];
    let resolve = plan.resolve_time(t);
    let mut r = ServiceResult {
        target: t,
        address: None,
        outcome: Outcome::new(State::Error, None, None),
        timings: Timings {
            resolve,
            ..Timings::default()
        },
        captures: None,
        failed: None,
        tls: None,
        banner: None,
    };
    let started = Instant::now();
    let finish = |mut r: ServiceResult| {
        r.timings.total = Some(started.elapsed() + resolve.unwrap_or_default());
        Ok(r)
    };
    let addrs: Vec<SocketAddr> = match &host.addrs {
        Ok(a) if !a.is_empty() => a.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
        Ok(_) => {
            r.outcome.error = Some("no address".into());
            return finish(r);
        }
        Err(why) => {
            r.outcome.error = Some(why.clone());
            return finish(r);
        }
    };
    let deadline = Deadline::after(spec.timeout);
    let target = HostPort::new(host.label.clone(), port);
    let opts = SocketOptions::default();
    let (sock, peer) = match connect_addrs(&target, &addrs, &opts, spec.source, deadline, intr) {
        Ok(c) => c,
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(e) => {
            r.outcome = connect_failure(&e);
            r.address = addrs.first().copied();
            return finish(r);
        }
    };
    let rtt = started.elapsed();
    r.address = Some(peer);
    r.timings.connect = Some(rtt);
    r.outcome = opened(&sock, &peer, rtt);
    if r.outcome.state != State::Open {
        return finish(r);
    }
    let conn = TcpConnection::connected(sock, peer, spec.timeout);
    let result = service_phases(&conn, &host.label, spec, deadline, intr, &mut r);
    conn.close();
    match result {
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(e) => {
            r.outcome = Outcome::new(State::Error, Some(rtt), Some(e.to_string()));
            finish(r)
        }
        Ok(()) => finish(r),
    }
}

/// TLS (or STARTTLS) and the dialogue on a connected `conn`; a failed step
/// is recorded in `r`, other failures are returned.
fn service_phases(
    conn: &TcpConnection,
    host: &str,
    spec: &ServiceSpec,
    deadline: Deadline,
    intr: &dyn Interrupt,
    r: &mut ServiceResult,
) -> Result<()> {
    if let Some(tls) = &spec.tls {
        if spec.starttls.is_some() || spec.tls_first {
            let t0 = Instant::now();
            if let Some(p) = spec.starttls {
                negotiate(conn, p, deadline, intr)?;
            }
            conn.start_tls_client(tls, host, deadline, intr)?;
            r.timings.tls = Some(t0.elapsed());
            r.tls = conn.tls_info();
        }
    }
    let steps = match &spec.steps {
        Steps::Given(s) => s.clone(),
        Steps::Service(name) => service_steps(name, host)?,
    };
    if steps.is_empty() {
        if let Some(max) = spec.banner {
            r.banner = Some(read_banner(conn, Vec::new(), max, deadline, intr)?);
        }
        return Ok(());
    }
    let setup = spec.tls.as_ref().map(|tls| TlsSetup { tls, host });
    let t0 = Instant::now();
    let outcome = run_steps(conn, &steps, setup.as_ref(), deadline, intr)?;
    let took = t0.elapsed();
    match outcome {
        Ok(done) => {
            r.captures = done.captures;
            if done.tls.is_some() {
                r.tls = done.tls;
                r.timings.tls = done.tls_time;
            }
            r.timings.dialogue = Some(took.saturating_sub(done.tls_time.unwrap_or_default()));
            if let Some(max) = spec.banner {
                r.banner = Some(read_banner(conn, done.rest, max, deadline, intr)?);
            }
        }
        Err(f) => {
            r.timings.dialogue = Some(took);
            r.outcome = Outcome::new(
                State::Error,
                r.timings.connect,
                Some(format!("step {}: {}", f.step, f.reason)),
            );
            r.failed = Some(f);
        }
    }
    Ok(())
}

/// What the peer says next, `banner`'s way: up to `max` bytes, until it
/// closes, the deadline passes, or [`QUIET`] passes without more after the
/// first bytes. `got` is what already arrived.
fn read_banner(
    conn: &TcpConnection,
    mut got: Vec<u8>,
    max: usize,
    deadline: Deadline,
    intr: &dyn Interrupt,
) -> Result<Vec<u8>> {
    while got.len() < max {
        let wait = if got.is_empty() {
            deadline
        } else {
            deadline.min(Deadline::after(Some(QUIET)))
        };
        conn.set_timeout(wait.remaining());
        match conn.recv((max - got.len()).min(64 * 1024), intr) {
            Ok(b) if b.is_empty() => break,
            Ok(b) => got.extend_from_slice(&b),
            Err(Error::Timeout { .. }) => break,
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(_) if !got.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    got.truncate(max);
    Ok(got)
}

/// A pool of service checks over a plan: results as they finish.
pub struct ServiceRun {
    rx: Option<mpsc::Receiver<ServiceResult>>,
    cancel: Arc<Cancel>,
    handles: Vec<JoinHandle<()>>,
    plan: Arc<Plan>,
    pub total: usize,
    pub done: usize,
}

impl ServiceRun {
    /// Start `concurrency` threads (fewer for fewer targets) on `plan`.
    pub fn start(plan: Plan, spec: ServiceSpec, concurrency: usize) -> Result<ServiceRun> {
        let plan = Arc::new(plan);
        let total = plan.targets.len();
        let cancel = Arc::new(Cancel::new());
        let next = Arc::new(AtomicUsize::new(0));
        let spec = Arc::new(spec);
        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::new();
        for _ in 0..concurrency.clamp(1, total.max(1)) {
            let (plan, spec, cancel, next, tx) = (
                plan.clone(),
                spec.clone(),
                cancel.clone(),
                next.clone(),
                tx.clone(),
            );
            let h = thread::Builder::new()
                .name("socketkit-service".into())
                .spawn(move || loop {
                    let t = next.fetch_add(1, Ordering::Relaxed);
                    if t >= plan.targets.len() || cancel.is_set() {
                        return;
                    }
                    match check_one(&plan, t, &spec, &*cancel) {
                        Ok(r) => {
                            if tx.send(r).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) if handles.is_empty() => {
                    return Err(Error::io(crate::error::Phase::Connect, None, e))
                }
                // Fewer threads than asked: the ones running take every job.
                Err(_) => break,
            }
        }
        Ok(ServiceRun {
            rx: Some(rx),
            cancel,
            handles,
            plan,
            total,
            done: 0,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn finished(&self) -> bool {
        self.rx.is_none()
    }

    /// A handle that stops the checks from another thread.
    pub fn canceller(&self) -> Arc<Cancel> {
        self.cancel.clone()
    }

    /// The results that finished within `wait`; `None` once all are out.
    pub fn next_batch(&mut self, wait: Duration) -> Option<Vec<ServiceResult>> {
        let rx = self.rx.as_ref()?;
        let mut out = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(r) => out.push(r),
            Err(mpsc::RecvTimeoutError::Timeout) => return Some(out),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.rx = None;
                return None;
            }
        }
        out.extend(rx.try_iter());
        self.done += out.len();
        Some(out)
    }

    /// Wait for at least one more result; empty once all are out. `intr`
    /// is asked every half slice; when it fails the checks stop.
    pub fn wait(&mut self, intr: &dyn Interrupt) -> Result<Vec<ServiceResult>> {
        while let Some(batch) = self.next_batch(SLICE / 2) {
            if !batch.is_empty() {
                return Ok(batch);
            }
            if let Err(e) = intr.check() {
                self.stop();
                return Err(e);
            }
        }
        Ok(Vec::new())
    }

    /// Every result in target order; `progress(done, total)` at most every
    /// 100 ms and once at the end.
    pub fn collect(
        &mut self,
        intr: &dyn Interrupt,
        progress: &mut dyn FnMut(usize, usize) -> Result<()>,
    ) -> Result<Vec<ServiceResult>> {
        let mut out: Vec<Option<ServiceResult>> = vec![None; self.total];
        let mut last = Instant::now();
        if let Err(e) = progress(0, self.total) {
            self.stop();
            return Err(e);
        }
        loop {
            let batch = self.wait(intr)?;
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let t = r.target;
                out[t] = Some(r);
            }
            if last.elapsed() >= SLICE && self.done < self.total {
                last = Instant::now();
                if let Err(e) = progress(self.done, self.total) {
                    self.stop();
                    return Err(e);
                }
            }
        }
        progress(self.done, self.total)?;
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(t, r)| r.unwrap_or_else(|| ServiceResult::not_checked(t)))
            .collect())
    }

    /// Cancel and wait for the threads (each notices within a slice).
    pub fn stop(&mut self) {
        self.cancel.set();
        self.rx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }

    /// Cancel without waiting; the stream ends.
    pub fn close(&mut self) {
        self.cancel.set();
        self.rx = None;
    }
}

impl Drop for ServiceRun {
    fn drop(&mut self) {
        // Never block in drop: the threads notice within a slice.
        self.cancel.set();
    }
}
