//! One worker of a run: the connect state machine.
//!
//! Each worker keeps a spare nonblocking socket per address family. After
//! `connect()` answers EINPROGRESS it calls `connect()` again at once
//! ([`connect_again`]): on loopback and on a fast LAN the answer is then 0 /
//! EISCONN (open) or ECONNREFUSED (closed) without any reactor round trip.
//! Only a connect still in flight goes into the worker's poll set with its
//! deadline. After a refusal Linux lets the same socket connect again, which
//! saves a `socket()` + `close()` per closed port. Finished jobs are handed
//! to the consumer in batches.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::probe::classify::{connect_again, failed, opened, refused, retry_later, settle, silent};
use crate::probe::run::Shared;
use crate::probe::types::{Outcome, State};
use crate::wait::poll_many;

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

pub(super) struct Worker<'a> {
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
    pub(super) fn new(sh: &'a Shared, cap: usize) -> Self {
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

    pub(super) fn run(&mut self) {
        loop {
            if self.sh.cancel.load(Ordering::Relaxed) {
                return; // sockets close as the worker drops
            }
            let mut rate_wait: Option<Duration> = None;
            let mut now = Instant::now();
            while self.flights.len() < self.limit && self.has_job(now) {
                // Refused loopback connects finish inside this loop without
                // ever filling the poll set: without this check a cancelled
                // run went on through every remaining job (issue 15 item 9).
                if self.sh.cancel.load(Ordering::Relaxed) {
                    return;
                }
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

    fn new_socket(addr: &SocketAddr, source: Option<&SocketAddr>) -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), None)?;
        s.set_nonblocking(true)?;
        if let Some(src) = source {
            // A refused socket keeps its binding when it is reused.
            s.bind(&SockAddr::from(*src))?;
        }
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
            None => match Self::new_socket(&addr, self.sh.source.as_ref()) {
                Ok(s) => s,
                Err(e) if retry_later(&e) => return Started::RetryLater(e),
                Err(e) => return Started::Done(failed(&e, Duration::ZERO)),
            },
        };
        let target = SockAddr::from(addr);
        let t0 = Instant::now();
        let Some(result) = connect_again(&sock, &target) else {
            return Started::InFlight(sock, t0);
        };
        let rtt = t0.elapsed();
        match result {
            Ok(()) => Started::Done(opened(&sock, &addr, rtt)),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                self.keep(&addr, sock);
                Started::Done(refused(rtt))
            }
            Err(e) if retry_later(&e) => Started::RetryLater(e),
            Err(_) if was_reused => {
                // A reused socket in an unexpected state: try a fresh one.
                drop(sock);
                self.start(addr)
            }
            Err(e) => Started::Done(failed(&e, rtt)),
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
                let o = match settle(&f.sock) {
                    Ok(true) => opened(&f.sock, &addr, rtt),
                    Ok(false) => refused(rtt),
                    Err(e) => {
                        if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                            self.keep(&addr, f.sock);
                            refused(rtt)
                        } else if retry_later(&e) {
                            self.retry
                                .push_back((f.job, 1, Instant::now() + RETRY_DELAY));
                            continue;
                        } else {
                            failed(&e, rtt)
                        }
                    }
                };
                self.finish(f.job, o);
            } else if self.flights[i].deadline.is_some_and(|d| d <= now) {
                let f = self.flights.swap_remove(i);
                self.finish(f.job, silent());
            }
        }
    }
}
